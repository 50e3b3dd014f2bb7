"""Fuzz the loader: mutated definition files must only ever raise a located DefinitionError."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainkit.errors import DefinitionError
from chainkit.loader import load_app

HELLO = Path(__file__).resolve().parent.parent / "examples" / "hello"
FILES = sorted(str(p.relative_to(HELLO)) for p in HELLO.rglob("*.yaml"))

odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.just("x" * 200_000),
    st.just("${nodes.nowhere.output.x}"),
    st.just("${input.}"),
    st.just("{{ undefined_variable }}"),
    st.just("{% for %}"),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, prefix + (index,))
    return found


def _apply(data: Any, path: tuple, action: str, value: Any) -> Any:
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        del parent[last]
    else:
        parent[last] = value
    return data


@st.composite
def mutations(draw: Any) -> tuple[str, str]:
    name = draw(st.sampled_from(FILES))
    text = (HELLO / name).read_text()
    kind = draw(st.sampled_from(["delete", "replace", "indent", "truncate", "insert"]))
    if kind in ("delete", "replace"):
        data = yaml.safe_load(text)
        path = draw(st.sampled_from(_paths(data)))
        data = _apply(data, path, kind, draw(odd_values) if kind == "replace" else None)
        return name, yaml.safe_dump(data, sort_keys=False)
    lines = text.splitlines(keepends=True)
    if kind == "indent":
        index = draw(st.integers(0, len(lines) - 1))
        lines[index] = " " * draw(st.integers(1, 5)) + lines[index]
        return name, "".join(lines)
    if kind == "truncate":
        return name, text[: draw(st.integers(0, len(text)))]
    position = draw(st.integers(0, len(text)))
    return name, text[:position] + draw(st.sampled_from([":", "- ", "{", "]", "\t", "&a", "*a", "!!python/name:os.system", "'"])) + text[position:]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_mutated_files_only_raise_located_definition_errors(mutation: tuple[str, str]) -> None:
    name, text = mutation
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "hello"
        shutil.copytree(HELLO, root)
        (root / name).write_text(text)
        try:
            load_app(root / "app.yaml")
        except DefinitionError as exc:
            for error in exc.errors or [exc]:
                assert error.file is not None, f"no file in: {error}"
                assert error.line is not None, f"no line in: {error}"
        # any other exception type fails the test by propagating
