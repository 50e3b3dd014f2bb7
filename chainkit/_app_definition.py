"""Graph and app definition files (YAML) <-> graph specs and processes.

A graph file names its nodes in a mapping, and a node's `input` maps the used tool's (or function's)
input fields to references or literals. The node kind follows from its keys when `kind` is left out
(`tool:`, `function:`, `memory:` with a read or write `op:`, `graph:`, `over:`).

    kind: graph
    name: interaction
    input: {message: str}           # compact fields, {schema: <JSON Schema>}, or a registered model name
    reads: [learner_profile]
    writes: [dialogue]
    nodes:
      classify:
        tool: classify_message
        input: {message: "${input.message}", level: "${memory.learner_profile.level}"}
      reply:
        tool: teach
        when: "${nodes.classify.output.intent} == 'continue'"
        input: {topic: "${input.message}"}
      log:
        memory: dialogue
        op: append
        input: {entry: {role: learner, text: "${input.message}"}}
    output: {reply: "${nodes.reply.output}"}

An app file gathers definitions and declares processes:

    kind: app
    name: tutor
    model: local                    # default model of tools that name none (CLI --model overrides)
    tools: [tutor/*]                # globs: next to this file, or under a tools/ folder above it
    memories: [tutor/*]             # ... or under a memories/ folder above it
    graphs: [graphs/*]
    python: [functions.py]          # app-local modules; each defines register(registry)
    processes:
      interaction: {graph: interaction, trigger: message}
      reflection: {graph: reflection, trigger: {every: 3, after: interaction}, background: true}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chainkit._fieldtypes import compile_fields, compile_json_schema

_READ_OPS = frozenset({"get", "last", "window", "range", "count", "query", "search"})
_WRITE_OPS = frozenset({"replace", "patch", "append", "put", "delete", "summarize"})


def node_kind(node: dict[str, Any]) -> str | None:
    if "kind" in node:
        return node["kind"] if isinstance(node["kind"], str) else None
    if "over" in node:
        return "map"
    if "tool" in node:
        return "tool"
    if "function" in node:
        return "function"
    if "graph" in node:
        return "subgraph"
    if "memory" in node:
        op = node.get("op")
        return "memory_write" if isinstance(op, str) and op in _WRITE_OPS else "memory_read"
    return None


def _node_to_spec(name: str, node: Any) -> Any:
    if not isinstance(node, dict):
        return node  # the spec model reports the type error
    data = dict(node)
    data["name"] = name
    if "input" in data:
        data["inputs"] = data.pop("input")
    kind = node_kind(data)
    if kind is not None:
        data["kind"] = kind
    if kind == "map" and isinstance(data.get("node"), dict):
        data["node"] = _node_to_spec(data["node"].get("name", f"{name}_item"), data["node"])
    return data


def graph_file_to_spec_data(data: dict[str, Any]) -> dict[str, Any]:
    """YAML graph data -> the data of `chainkit.graph.Graph` (input fields are compiled separately)."""
    spec = {k: v for k, v in data.items() if k not in ("kind", "input")}
    nodes = data.get("nodes")
    if isinstance(nodes, dict):
        spec["nodes"] = [_node_to_spec(str(name), node) for name, node in nodes.items()]
    return spec


def spec_path_to_file_path(parts: list[str], data: dict[str, Any]) -> str:
    """Map a key path in the spec data (nodes.3.inputs.x) back to the file (nodes.classify.input.x)."""
    out: list[str] = []
    names = list(data.get("nodes", {})) if isinstance(data.get("nodes"), dict) else None
    i = 0
    while i < len(parts):
        part = parts[i]
        if part == "nodes" and i == 0 and names is not None and i + 1 < len(parts) and parts[i + 1].isdigit():
            index = int(parts[i + 1])
            out += ["nodes", str(names[index]) if index < len(names) else parts[i + 1]]
            i += 2
            continue
        out.append("input" if part == "inputs" else part)
        i += 1
    return ".".join(out)


def graph_spec_data_to_file(spec: dict[str, Any]) -> dict[str, Any]:
    """`Graph.to_data()` -> YAML graph data (the inverse of `graph_file_to_spec_data`)."""
    out: dict[str, Any] = {"kind": "graph"}
    for key, value in spec.items():
        if key == "nodes":
            out["nodes"] = {node["name"]: _node_to_file(node) for node in value}
        else:
            out[key] = value
    return out


def _node_to_file(node: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in node.items() if k != "name"}
    if "inputs" in data:
        data["input"] = data.pop("inputs")
    if data.get("kind") == node_kind({k: v for k, v in data.items() if k != "kind"}):
        data.pop("kind")  # implied by the node's keys
    if isinstance(data.get("node"), dict):
        data["node"] = _node_to_file(data["node"])
    return data


def compile_graph_input(graph_name: str, value: Any, *, file: str | None, locate: Any) -> type[BaseModel] | None:
    """A graph's `input:` given as fields or {schema: ...} -> a model; a string (model name) -> None."""
    if isinstance(value, dict):
        if set(value) == {"schema"}:
            return compile_json_schema(f"{graph_name}_input", value["schema"], path="input.schema", file=file,
                                       locate=locate)
        return compile_fields(f"{graph_name}_input", value, path="input", file=file, locate=locate)
    return None


# -- app files -----------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TriggerDefinition(_Strict):
    """`message`, or one of {after: P}, {every: K, after: P}, {when: CONDITION, after: P}, or the
    explicit form {on: message|after|every|when, process: P, k: K, condition: C}."""

    on: Literal["message", "after", "every", "when"] | None = None
    process: str | None = None
    k: int | None = Field(None, ge=1)
    condition: str | None = None
    after: str | None = None
    every: int | None = Field(None, ge=1)
    when: str | None = None

    def to_trigger_data(self) -> dict[str, Any]:
        if self.on is not None:
            return {"on": self.on, "process": self.process, "k": self.k, "condition": self.condition}
        if self.every is not None:
            return {"on": "every", "process": self.after, "k": self.every}
        if self.when is not None:
            return {"on": "when", "process": self.after, "condition": self.when}
        if self.after is not None:
            return {"on": "after", "process": self.after}
        return {"on": "message"}


class ProcessDefinition(_Strict):
    graph: str
    trigger: Literal["message"] | TriggerDefinition = "message"
    inputs: dict[str, Any] | None = None
    background: bool = False
    max_conflict_reruns: int = Field(3, ge=0, le=100)
    description: str = ""

    def trigger_data(self) -> dict[str, Any]:
        if self.trigger == "message":
            return {"on": "message"}
        return self.trigger.to_trigger_data()


class AppDefinition(_Strict):
    """An app: tools, memories, graphs and Python functions, and the processes that run them."""

    kind: Literal["app"] = "app"
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    description: str = ""
    model: str | None = Field(None, description="Default model of tools that name none.")
    store: str | None = Field(None, description="Default SQLite file (relative to the working directory).")
    tools: list[str] = Field(default_factory=list)
    memories: list[str] = Field(default_factory=list)
    graphs: list[str] = Field(default_factory=list)
    python: list[str] = Field(default_factory=list)
    processes: dict[str, ProcessDefinition] = Field(default_factory=dict)
