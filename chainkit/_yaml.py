"""Safe YAML loading that remembers where every key and item came from.

`load_yaml(text, file)` returns the plain data (as `yaml.safe_load` would) and a `Positions` map from
key paths (`nodes.grade.input.answer`, `sections[2].title` or `sections.2.title`) to 1-based
(line, column). Duplicate keys, which PyYAML would silently let the last one win, are errors.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from chainkit.errors import DefinitionError

_INDEX = re.compile(r"\[(\d+)\]")


class Positions:
    """Key path -> (line, column), both 1-based."""

    def __init__(self) -> None:
        self._at: dict[str, tuple[int, int]] = {}

    def add(self, path: str, mark: yaml.Mark) -> None:
        self._at.setdefault(path, (mark.line + 1, mark.column + 1))

    def __call__(self, path: str) -> tuple[int, int] | None:
        """The position of `path`, or of its nearest ancestor that has one."""
        path = _INDEX.sub(r".\1", path).strip(".")
        while True:
            found = self._at.get(path)
            if found is not None or not path:
                return found
            path = path.rpartition(".")[0]

    def error(self, message: str, path: str, file: str | None) -> DefinitionError:
        where = self(path)
        line, column = where if where else (None, None)
        return DefinitionError(message, file=file, line=line, column=column, path=path or None)


def load_yaml(text: str, file: str | None = None) -> tuple[Any, Positions]:
    positions = Positions()
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = _build(loader, root, "", positions, file) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise DefinitionError(
            f"invalid YAML: {problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(f"invalid YAML: {exc}", file=file) from exc
    finally:
        loader.dispose()
    return data, positions


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: str, positions: Positions, file: str | None) -> Any:
    positions.add(path, node.start_mark)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<:` merge keys
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                raise DefinitionError(
                    "a key must be a plain value, not a list or mapping",
                    file=file, line=key_node.start_mark.line + 1, column=key_node.start_mark.column + 1, path=path,
                )
            child = f"{path}.{key}" if path else str(key)
            if key in result:
                raise DefinitionError(
                    f"duplicate key {key!r}",
                    file=file, line=key_node.start_mark.line + 1, column=key_node.start_mark.column + 1, path=child,
                )
            positions.add(child, key_node.start_mark)
            result[key] = _build(loader, value_node, child, positions, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, f"{path}.{i}" if path else str(i), positions, file) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def dump_yaml(data: Any) -> str:
    """YAML text for plain data: block style, multi-line strings as literal blocks, keys in given order."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)
