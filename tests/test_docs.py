"""The README and docs promise things; check the promises hold."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), re.S)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    readme = ROOT / "README.md"
    quick_start = readme.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [block.strip() for block in re.findall(r"```bash\n(.*?)```", quick_start, re.S)]
    assert len(commands) == 2
    assert "chainkit tutor" in commands[0]
    assert commands[1].endswith("pytest")
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_readme_python_example_runs_on_the_fake_backend(tmp_path: Path):
    code = next(block for block in _blocks(ROOT / "README.md", "python") if "ck.tool(" in block)
    assert len(code.strip().splitlines()) <= 13  # "a tool in ten lines" (plus imports and blank lines)
    script = tmp_path / "example.py"
    script.write_text(code)
    env = os.environ | {"CHAINKIT_MODEL": "fake"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "answer='fake'" in done.stdout


def test_testing_doc_example_passes(tmp_path: Path):
    code = _blocks(ROOT / "docs" / "testing.md", "python")[1]
    namespace: dict = {}
    exec(compile(code, "docs/testing.md", "exec"), namespace)
    namespace["test_grading_reasks_after_a_bad_answer"]()


def test_every_doc_linked_from_the_readme_exists():
    for link in re.findall(r"\]\((docs/[^)]+)\)", (ROOT / "README.md").read_text()):
        assert (ROOT / link).is_file(), link
