"""Graph definitions: pure data.

Tools, functions, memories, input models and subgraphs are referenced BY NAME and resolved through a
`Registry` when the graph is compiled, so a graph loads from YAML and dumps back to the same YAML
(`graph.to_data()` omits defaults; `source` locations are never dumped).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    field_serializer,
    model_serializer,
)


class Source(BaseModel):
    """Where a definition came from (filled in by the YAML loader); errors quote it."""

    model_config = ConfigDict(frozen=True)
    file: str | None = None
    line: int | None = None
    col: int | None = None


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_data(self) -> dict[str, Any]:
        """Plain data for YAML/JSON: defaults and source locations left out."""
        return self.model_dump(mode="json", exclude_defaults=True, by_alias=True)


# Error names from chainkit.errors a node retries on by default: transient backend failures.
TRANSIENT_ERRORS = ("TransportError", "RateLimited", "ServerError", "NodeTimeout")


class RetryPolicy(_Data):
    max_attempts: int = Field(3, ge=1, le=100)
    backoff_s: float = Field(0.5, ge=0)  # wait before attempt 2; multiplied by `backoff_factor` after
    backoff_factor: float = Field(2.0, ge=1)
    max_backoff_s: float = Field(30.0, ge=0)
    on: list[str] = Field(default_factory=lambda: list(TRANSIENT_ERRORS))  # error class names (or bases)


class LoopSpec(_Data):
    """Run a node (or subgraph) again until `until` holds, at most `max_iterations` times."""

    until: str
    max_iterations: int = Field(ge=1, le=10_000)


class _NodeFields(_Data):
    name: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    when: str | None = None
    after: list[str] = Field(default_factory=list)  # ordering only: a skipped `after` does not skip
    timeout_s: float | None = Field(None, gt=0)
    retry: RetryPolicy | None = None
    loop: LoopSpec | None = None
    description: str = ""
    source: Source | None = Field(None, exclude=True)

    @model_serializer(mode="wrap")
    def _keep_explicit_kind(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # `kind` may be left out (it is inferred from tool/function/memory+op/graph/over); dump it
        # back only where it was written, so definitions round-trip exactly.
        data = handler(self)
        if "kind" in self.model_fields_set and "kind" not in data:
            data = {"name": data.pop("name"), "kind": self.kind, **data} if "name" in data else {"kind": self.kind, **data}
        return data


_WRITE_OPS = {"replace", "patch", "append", "put", "delete", "summarize"}


def _node_kind(value: Any) -> str | None:
    """The node kind: explicit `kind`, else inferred from which key the node has."""
    if isinstance(value, BaseModel):
        return getattr(value, "kind", None)
    if not isinstance(value, dict):
        return None
    if "kind" in value:
        return value["kind"]
    for key, kind in (("tool", "tool"), ("function", "function"), ("graph", "subgraph"), ("over", "map")):
        if key in value:
            return kind
    if "memory" in value:
        return "memory_write" if value.get("op") in _WRITE_OPS else "memory_read"
    return None


class ToolNode(_NodeFields):
    kind: Literal["tool"] = "tool"
    tool: str


class FunctionNode(_NodeFields):
    kind: Literal["function"] = "function"
    function: str


MemoryReadOp = Literal["get", "last", "window", "range", "count", "query", "search"]
MemoryWriteOp = Literal["replace", "patch", "append", "put", "delete", "summarize"]


class MemoryReadNode(_NodeFields):
    """Read a memory. Inputs per op: document get; log last(n) / window(max_tokens) / range(start_seq,
    end_seq) / count; collection get(key) / query(where, order_by, limit) / search(text, limit) / count."""

    kind: Literal["memory_read"] = "memory_read"
    memory: str
    op: MemoryReadOp = "get"


class MemoryWriteNode(_NodeFields):
    """Stage a write; staged writes commit together when the run succeeds. Inputs per op: replace(value),
    patch(delta), append(entry), put(value), delete(key), summarize(summary, through_seq)."""

    kind: Literal["memory_write"] = "memory_write"
    memory: str
    op: MemoryWriteOp


class SubgraphNode(_NodeFields):
    kind: Literal["subgraph"] = "subgraph"
    graph: str


class MapNode(_NodeFields):
    """Run `node` once per item of the list `over` (in parallel, at most `max_concurrency` at once);
    the output is the list of results in item order. Inside `node`, `${item}` and `${index}` refer to
    the current item."""

    kind: Literal["map"] = "map"
    over: str
    node: Annotated[
        Annotated[ToolNode, Tag("tool")] | Annotated[FunctionNode, Tag("function")]
        | Annotated[SubgraphNode, Tag("subgraph")],
        Discriminator(_node_kind),
    ]
    max_concurrency: int | None = Field(None, ge=1)


Node = Annotated[
    Annotated[ToolNode, Tag("tool")]
    | Annotated[FunctionNode, Tag("function")]
    | Annotated[MemoryReadNode, Tag("memory_read")]
    | Annotated[MemoryWriteNode, Tag("memory_write")]
    | Annotated[SubgraphNode, Tag("subgraph")]
    | Annotated[MapNode, Tag("map")],
    Discriminator(_node_kind),
]
NODE_TYPES = (ToolNode, FunctionNode, MemoryReadNode, MemoryWriteNode, SubgraphNode, MapNode)


class Graph(_Data):
    """A graph: named nodes wired by references, a typed input, a typed output mapping.

    `input` names a model registered with `Registry.model` (or is a pydantic class for Python users).
    `output` maps output field names to references or literals, or is one reference (the whole output).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    name: str
    description: str = ""
    input: str | type[BaseModel] | None = None
    nodes: list[Node] = Field(default_factory=list)
    output: dict[str, Any] | str | None = None
    reads: list[str] = Field(default_factory=list)
    writes: list[str] = Field(default_factory=list)
    source: Source | None = Field(None, exclude=True)

    @field_serializer("input")
    def _input_name(self, value: str | type[BaseModel] | None) -> str | None:
        return None if value is None else _model_name(value)

    def to_data(self) -> dict[str, Any]:
        data = super().to_data()
        if data.get("input", "") is None:
            del data["input"]
        return data

    def node(self, name: str) -> Any:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


def _model_name(model: str | type[BaseModel]) -> str:
    return model if isinstance(model, str) else model.__name__
