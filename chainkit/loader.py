"""YAML definitions -> specs, with errors that name file:line:column and the key path.

File kinds, told apart by their `kind` key:

    kind: tool                          a tool (chainkit._tool_definition)
    kind: document | log | collection   a memory (chainkit.memory._definition)

Nothing reaches a backend before every file checks out: loading only compiles and validates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from chainkit._tool_definition import ToolDefinition, tool_definition_from_spec, tool_spec_from_definition
from chainkit._yaml import Positions, dump_yaml, load_yaml
from chainkit.errors import DefinitionError
from chainkit.memory import MemorySpec
from chainkit.memory._definition import compile_memory_definition
from chainkit.tools import ToolSpec

MEMORY_KINDS = ("document", "log", "collection")


def read_definition(path: str | Path) -> tuple[Any, Positions, str]:
    """(data, positions, file name) of one YAML file."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"cannot read: {exc.strerror or exc}", file=file) from exc
    data, positions = load_yaml(text, file)
    if not isinstance(data, dict):
        raise DefinitionError(
            f"a definition file must hold a mapping, got {type(data).__name__}", file=file, line=1, column=1
        )
    return data, positions, file


def validate_data(model: type[BaseModel], data: Any, positions: Positions, file: str | None) -> Any:
    """`model.model_validate(data)`, with pydantic's errors turned into located DefinitionErrors."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [_located(error, data, positions, file) for error in exc.errors(include_url=False)]
        errors = _dedupe(errors)
        if len(errors) == 1:
            raise errors[0] from None
        raise DefinitionError(
            f"{len(errors)} problems:\n" + "\n".join(f"  {e}" for e in errors),
            file=file,
            errors=errors,
        ) from None


def _located(error: dict[str, Any], data: Any, positions: Positions, file: str | None) -> DefinitionError:
    # Pydantic puts union member names ("list[...]", "function-after[...]", tagged-union tags) into `loc`;
    # keep only the parts that are real keys or indexes of the data.
    path_parts: list[str] = []
    node = data
    for part in error["loc"]:
        if isinstance(node, dict) and part in node:
            node = node[part]
            path_parts.append(str(part))
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path_parts.append(str(part))
        elif isinstance(node, dict) and error["type"] in ("extra_forbidden", "missing") and part == error["loc"][-1]:
            path_parts.append(str(part))
    path = ".".join(path_parts)
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = f"unknown key {path_parts[-1]!r}" if path_parts else "unknown key"
    elif error["type"] == "missing":
        message = f"required key {path_parts[-1]!r} is missing" if path_parts else "required key missing"
    else:
        value = error.get("input")
        if not isinstance(value, dict | list):
            message = f"{message} (got {value!r})"
    located = positions.error(message, path, file)
    return located


def _dedupe(errors: list[DefinitionError]) -> list[DefinitionError]:
    seen: set[str] = set()
    unique = []
    for error in errors:
        if str(error) not in seen:
            seen.add(str(error))
            unique.append(error)
    return unique


def definition_kind(data: dict[str, Any], positions: Positions, file: str | None) -> str:
    kind = data.get("kind")
    if kind is None:
        raise positions.error(
            "required key 'kind' is missing (tool, document, log, collection, graph or app)", "", file
        )
    if kind == "tool" or kind in MEMORY_KINDS or kind in ("graph", "app"):
        return "memory" if kind in MEMORY_KINDS else str(kind)
    raise positions.error(f"unknown kind {kind!r} (tool, document, log, collection, graph or app)", "kind", file)


# -- tools ---------------------------------------------------------------------------------------------


def tool_from_data(data: dict[str, Any], positions: Positions, file: str | None) -> ToolSpec:
    definition = validate_data(ToolDefinition, data, positions, file)
    try:
        return tool_spec_from_definition(definition, file=file, locate=positions)
    except DefinitionError as exc:
        if exc.file is None:  # raised by ToolSpec (templates): point at the prompt
            raise positions.error(exc.message, _spec_path(exc.path), file) from None
        raise


def _spec_path(path: str | None) -> str:
    # ToolSpec errors say "tools.NAME.user"; in the file that is "prompt.user".
    if not path:
        return ""
    last = path.rsplit(".", 1)[-1]
    return f"prompt.{last}" if last in ("system", "user") else last


def load_tool_file(path: str | Path) -> ToolSpec:
    data, positions, file = read_definition(path)
    return tool_from_data(data, positions, file)


def dump_tool(spec: ToolSpec) -> str:
    return dump_yaml(tool_definition_from_spec(spec))


# -- memories ------------------------------------------------------------------------------------------


def memory_from_data(data: dict[str, Any], positions: Positions, file: str | None) -> MemorySpec:
    return compile_memory_definition(data, source=file, locate=positions)


def load_memory_file(path: str | Path) -> MemorySpec:
    data, positions, file = read_definition(path)
    return memory_from_data(data, positions, file)
