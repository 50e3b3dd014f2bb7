"""YAML definitions -> specs, with errors that name file:line:column and the key path.

File kinds, told apart by their `kind` key:

    kind: tool                          a tool (chainkit._tool_definition)
    kind: document | log | collection   a memory (chainkit.memory._definition)

Nothing reaches a backend before every file checks out: loading only compiles and validates.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from chainkit._app_definition import (
    AppDefinition,
    compile_graph_input,
    graph_file_to_spec_data,
    graph_spec_data_to_file,
    node_kind,
    spec_path_to_file_path,
)
from chainkit._tool_definition import ToolDefinition, tool_definition_from_spec, tool_spec_from_definition
from chainkit._yaml import Positions, dump_yaml, load_yaml
from chainkit.app import App, Process, Trigger
from chainkit.errors import DefinitionError
from chainkit.graph import Graph, Registry, Source
from chainkit.memory import MemorySpec
from chainkit.memory._definition import compile_memory_definition
from chainkit.memory._spec import NAMED_SCOPES
from chainkit.tools import Tool, ToolSpec

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


def validate_data(
    model: type[BaseModel],
    data: Any,
    positions: Positions,
    file: str | None,
    *,
    path_map: Callable[[list[str]], str] | None = None,
) -> Any:
    """`model.model_validate(data)`, with pydantic's errors turned into located DefinitionErrors.
    `path_map` turns a key path of `data` into the file's key path when the two differ."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [_located(error, data, positions, file, path_map) for error in exc.errors(include_url=False)]
        errors = _dedupe(errors)
        if len(errors) == 1:
            raise errors[0] from None
        raise DefinitionError(
            f"{len(errors)} problems:\n" + "\n".join(f"  {e}" for e in errors),
            file=file,
            errors=errors,
        ) from None


def _located(
    error: dict[str, Any], data: Any, positions: Positions, file: str | None,
    path_map: Callable[[list[str]], str] | None = None,
) -> DefinitionError:
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
    path = path_map(path_parts) if path_map else ".".join(path_parts)
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


# -- graphs --------------------------------------------------------------------------------------------


def graph_from_data(
    data: dict[str, Any], positions: Positions, file: str | None, registry: Registry | None = None
) -> Graph:
    """Compile a graph file's data. With a registry, the graph's input model is registered in it; the
    references are checked when the graph is added to the registry (`Registry.add_graph`)."""
    if data.get("kind") != "graph":
        raise positions.error("a graph file needs `kind: graph`", "kind", file)
    if not isinstance(data.get("nodes", {}), dict):
        raise positions.error("`nodes` must be a mapping of node names to nodes", "nodes", file)
    spec_data = graph_file_to_spec_data(data)
    for name, node in (data.get("nodes") or {}).items():
        if isinstance(node, dict) and node_kind(node) is None:
            raise positions.error(
                "cannot tell the node's kind: give `kind`, or one of tool, function, memory, graph, over",
                f"nodes.{name}", file,
            )
    graph = validate_data(Graph, spec_data, positions, file, path_map=lambda parts: spec_path_to_file_path(parts, data))
    input_model = compile_graph_input(graph.name, data.get("input"), file=file, locate=positions)
    updates: dict[str, Any] = {"source": _source(positions, "", file)}
    if input_model is not None:
        updates["input"] = input_model
    elif isinstance(data.get("input"), str):
        updates["input"] = data["input"]
    nodes = []
    for node in graph.nodes:
        nodes.append(node.model_copy(update={"source": _source(positions, f"nodes.{node.name}", file)}))
    updates["nodes"] = nodes
    graph = graph.model_copy(update=updates)
    if input_model is not None and registry is not None:
        registry.add_model(input_model, name=input_model.__name__)
    return graph


def _source(positions: Positions, path: str, file: str | None) -> Source:
    where = positions(path)
    return Source(file=file, line=where[0] if where else None, col=where[1] if where else None)


def dump_graph(graph: Graph) -> str:
    """YAML text of a graph (from Python or YAML). A pydantic input class is written as a JSON Schema."""
    data = graph_spec_data_to_file(graph.to_data())
    if isinstance(graph.input, type):
        data = {"kind": "graph", "name": graph.name, "input": None} | data
        data["input"] = {"schema": graph.input.model_json_schema()}
    return dump_yaml(data)


# -- apps ----------------------------------------------------------------------------------------------


@dataclass
class LoadedApp:
    """Everything an app file defines, checked; `app()` builds the runnable `App`."""

    name: str
    definition: AppDefinition
    registry: Registry
    processes: list[Process]
    file: str
    files: dict[str, str] = field(default_factory=dict)  # path -> kind
    model: str | None = None

    def app(self, *, store: Any = None, journal: bool = True, trace: bool | Any = True) -> App:
        store = store if store is not None else (self.definition.store or default_store_path(self.name))
        return App(self.registry, store=store, processes=self.processes, journal=journal, trace=trace)


def default_store_path(app_name: str) -> str:
    """Where an app keeps its data unless told otherwise: $CHAINKIT_HOME or ~/.local/share/chainkit."""
    home = os.environ.get("CHAINKIT_HOME") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "chainkit"
    )
    os.makedirs(home, exist_ok=True)
    return os.path.join(home, f"{app_name}.db")


def _expand(patterns: list[str], base: Path, folder: str | None, key: str, positions: Positions, file: str) -> list[Path]:
    """Resolve globs next to the app file, else under the nearest `folder` above it."""
    roots = [base]
    if folder is not None:
        roots += [parent / folder for parent in (base, *base.parents) if (parent / folder).is_dir()][:1]
    found: list[Path] = []
    for index, pattern in enumerate(patterns):
        pattern_yaml = pattern if pattern.endswith((".yaml", ".yml")) else pattern + ".yaml"
        matches: list[Path] = []
        for root in roots:
            try:
                matches = sorted(p for p in root.glob(pattern_yaml) if p.is_file())
            except (OSError, ValueError) as exc:  # e.g. a name too long, an absolute or empty pattern
                raise positions.error(f"{pattern[:80]!r} is not a usable file pattern: {exc}", f"{key}.{index}",
                                      file) from None
            if matches:
                break
        if not matches:
            where = " or ".join(str(r) for r in roots)
            raise positions.error(f"{pattern!r} matches no file (looked in {where})", f"{key}.{index}", file)
        found += [m for m in matches if m not in found]
    return found


def load_app(path: str | Path, *, model: str | None = None, registry: Registry | None = None) -> LoadedApp:
    """Load and check an app file and every file it names. Collects all errors before raising.

    `model` overrides the model of every tool (the CLI's --model); else a tool's own `model`, else the
    app's `model`, else CHAINKIT_MODEL / the embedded default. `registry` may bring Python functions
    (and anything else) registered beforehand.
    """
    data, positions, file = read_definition(path)
    if data.get("kind") != "app":
        raise positions.error("an app file needs `kind: app`", "kind", file)
    definition: AppDefinition = validate_data(AppDefinition, data, positions, file)
    base = Path(file).resolve().parent
    registry = registry if registry is not None else Registry()
    loaded = LoadedApp(name=definition.name, definition=definition, registry=registry, processes=[], file=file,
                       model=model or definition.model)
    errors: list[DefinitionError] = []

    def attempt(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except DefinitionError as exc:
            errors.extend(exc.errors or [exc])
            return None

    tool_files = attempt(_expand, definition.tools, base, "tools", "tools", positions, file) or []
    memory_files = attempt(_expand, definition.memories, base, "memories", "memories", positions, file) or []
    graph_files = attempt(_expand, definition.graphs, base, None, "graphs", positions, file) or []
    for tool_file in tool_files:
        spec = attempt(load_tool_file, tool_file)
        if spec is not None:
            registry.add_tool(Tool(spec, backend=model or spec.model or definition.model))
            loaded.files[str(tool_file)] = "tool"
    for memory_file in memory_files:
        spec = attempt(load_memory_file, memory_file)
        if spec is not None:
            registry.add_memory(spec)
            loaded.files[str(memory_file)] = "memory"
    for index, module in enumerate(definition.python):
        attempt(_register_module, base / module, registry, positions, file, f"python.{index}")
    graphs = []
    for graph_file in graph_files:
        graph_data, graph_positions, graph_name = attempt(read_definition, graph_file) or (None, None, None)
        if graph_data is None:
            continue
        graph = attempt(graph_from_data, graph_data, graph_positions, graph_name, registry)
        if graph is not None:
            registry.add_graph(graph, validate=False)
            graphs.append((graph, graph_data, graph_positions, graph_name))
            loaded.files[str(graph_file)] = "graph"
    for graph, graph_data, graph_positions, graph_name in graphs:
        try:
            registry.plan(graph.name)
        except DefinitionError as exc:
            errors.extend(_relocate(e, graph_data, graph_positions, graph_name) for e in (exc.errors or [exc]))
    if not errors:
        for name, process in definition.processes.items():
            loaded.processes.append(
                Process(
                    name=name, graph=process.graph, trigger=Trigger(**process.trigger_data()), inputs=process.inputs,
                    background=process.background, max_conflict_reruns=process.max_conflict_reruns,
                    source=_source(positions, f"processes.{name}", file),
                )
            )
        try:
            App(registry, processes=loaded.processes)  # checks processes and triggers; opens nothing
        except DefinitionError as exc:
            errors.extend(exc.errors or [exc])
    if errors:
        errors = _dedupe(errors)
        if len(errors) == 1:
            raise errors[0]
        raise DefinitionError(f"{len(errors)} problems:\n" + "\n".join(f"  {e}" for e in errors), errors=errors)
    loaded.files[file] = "app"
    return loaded


def _relocate(error: DefinitionError, data: dict[str, Any], positions: Positions, file: str | None) -> DefinitionError:
    """A graph validation error carries `graph.nodes.node.key`; point it at the key's line in the file."""
    if not error.path:
        return error
    parts = error.path.split(".")
    if parts and parts[0] == data.get("name"):
        parts = parts[1:]
    path = spec_path_to_file_path(parts, data)
    where = positions(path)
    if where is None:
        return error
    return DefinitionError(error.message, file=file, line=where[0], column=where[1], path=path)


def _register_module(module_path: Path, registry: Registry, positions: Positions, file: str, key: str) -> None:
    """Run an app-local Python file and let it register its functions: `register(registry)`."""
    try:
        found = module_path.is_file()
    except OSError as exc:
        raise positions.error(f"not a usable Python file name: {exc.strerror}", key, file) from None
    if not found:
        raise positions.error(f"no Python file {str(module_path)[:200]!r}", key, file)
    try:
        module = import_path(module_path)
    except Exception as exc:
        raise positions.error(f"{module_path.name} failed to import: {type(exc).__name__}: {exc}", key, file) from exc
    register = getattr(module, "register", None)
    if not callable(register):
        raise positions.error(f"{module_path.name} defines no register(registry) function", key, file)
    register(registry)


def import_path(module_path: Path) -> Any:
    """Import a Python file by its path, never by a dotted name the app file could choose. A file in a
    folder with `__init__.py` is imported as part of that package (under a private name), so its
    relative imports work."""
    module_path = module_path.resolve()
    folder = module_path.parent
    package = f"chainkit_app_{abs(hash(str(folder))):x}"
    if (folder / "__init__.py").is_file() and package not in sys.modules:
        spec = importlib.util.spec_from_file_location(package, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        spec.loader.exec_module(module)
    if package in sys.modules and module_path.name != "__init__.py":
        return importlib.import_module(f"{package}.{module_path.stem}")
    name = f"{package}_{module_path.stem}"
    spec = importlib.util.spec_from_file_location(name, module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_file(path: str | Path) -> Any:
    """Load any definition file by its `kind`: a ToolSpec, MemorySpec, Graph (unchecked refs) or LoadedApp."""
    data, positions, file = read_definition(path)
    kind = definition_kind(data, positions, file)
    if kind == "tool":
        return tool_from_data(data, positions, file)
    if kind == "memory":
        return memory_from_data(data, positions, file)
    if kind == "graph":
        return graph_from_data(data, positions, file)
    return load_app(path)


def dump_memory(spec: MemorySpec) -> str:
    """YAML text of a memory definition; its model is written as a JSON Schema (Python migrations
    cannot be written as YAML and are left out)."""
    data: dict[str, Any] = {"kind": spec.kind, "name": spec.name}
    scope = next((name for name, keys in NAMED_SCOPES.items() if keys == spec.scope), None)
    data["scope"] = scope if scope is not None else list(spec.scope)
    if spec.description:
        data["description"] = spec.description
    if spec.version != 1:
        data["version"] = spec.version
    if spec.kind == "collection" and spec.key != "id":
        data["key"] = spec.key
    if spec.text_fields:
        data["text_fields"] = list(spec.text_fields)
    if spec.indexes:
        data["indexes"] = list(spec.indexes)
    if spec.keep_versions is not None:
        data["keep_versions"] = spec.keep_versions
    data["schema"] = spec.model.model_json_schema()
    return dump_yaml(data)


def dump_app(
    directory: str | Path,
    *,
    name: str,
    registry: Registry,
    processes: list[Process],
    model: str | None = None,
) -> Path:
    """Write an app (defined in Python or loaded) as YAML files: app.yaml, tools/, memories/, graphs/.

    Python functions cannot be written as YAML: the app file lists none, and `load_app(...,
    registry=...)` takes a registry that already holds them.
    """
    root = Path(directory)
    for folder in ("tools", "memories", "graphs"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for tool in registry.tools.values():
        (root / "tools" / f"{tool.name}.yaml").write_text(dump_tool(tool.spec), encoding="utf-8")
    for spec in registry.memories.values():
        (root / "memories" / f"{spec.name}.yaml").write_text(dump_memory(spec), encoding="utf-8")
    for graph in registry.graphs.values():
        (root / "graphs" / f"{graph.name}.yaml").write_text(dump_graph(graph), encoding="utf-8")
    app: dict[str, Any] = {"kind": "app", "name": name}
    if model:
        app["model"] = model
    app |= {"tools": ["tools/*"], "memories": ["memories/*"], "graphs": ["graphs/*"]}
    app["processes"] = {
        p.name: {
            key: value
            for key, value in p.model_dump(mode="json", exclude_defaults=True, exclude={"name", "source"}).items()
        }
        for p in processes
    }
    for process in app["processes"].values():
        trigger = process.pop("trigger", {"on": "message"})
        process["trigger"] = "message" if trigger.get("on", "message") == "message" else trigger
    path = root / "app.yaml"
    path.write_text(dump_yaml(app), encoding="utf-8")
    return path
