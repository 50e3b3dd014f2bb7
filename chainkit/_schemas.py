"""JSON Schemas of the definition files, for editors (`# yaml-language-server: $schema=...`).

`chainkit schema KIND` prints one; `chainkit schema --out DIR` writes them all. The schemas are made
from the same models the loader validates with, so they cannot drift from what loads.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chainkit._app_definition import AppDefinition
from chainkit._tool_definition import ToolDefinition
from chainkit.graph._spec import NODE_TYPES

KINDS = ("tool", "memory", "graph", "app")
_FIELDS_DOC = (
    "Fields in the compact syntax: name -> type (str, int, float, bool, date, datetime, any, list[T], "
    "dict[str, T], enum(a, b), T? for optional, 'T = default'), a nested mapping, [ {nested} ], or the long "
    "form {type, description, default, optional, min, max, min_length, max_length, pattern}."
)


class _MemoryFile(BaseModel):
    """A memory definition (kind: document, log or collection)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["document", "log", "collection"]
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    scope: Literal["global", "user", "session"] | list[str] | None = None
    description: str = ""
    version: int = Field(1, ge=1)
    fields: dict[str, Any] | None = Field(None, description=_FIELDS_DOC)
    json_schema: dict[str, Any] | None = Field(None, alias="schema", description="A JSON Schema instead of fields.")
    key: str | None = Field(None, description="Collections: the key field (default id).")
    text_fields: list[str] = Field(default_factory=list, description="Fields searched with full-text search.")
    indexes: list[str] = Field(default_factory=list, description="Collections: fields to index for query().")
    keep_versions: int | None = Field(None, ge=1, description="Documents: versions kept in history (default all).")
    migrations: dict[int, dict[str, Any]] = Field(
        default_factory=dict, description="from_version -> {rename: {old: new}, add: {field: default}, drop: [field]}"
    )


def _graph_schema() -> dict[str, Any]:
    """The graph file: nodes as a mapping name -> node, `input` instead of `inputs`, `kind` optional."""
    variants = []
    defs: dict[str, Any] = {}
    for node_type in NODE_TYPES:
        schema = copy.deepcopy(node_type.model_json_schema(mode="validation"))
        defs.update(schema.pop("$defs", {}))
        props = schema["properties"]
        props.pop("name", None)
        props.pop("source", None)
        if "inputs" in props:
            props["input"] = props.pop("inputs")
            props["input"]["description"] = "Input fields of the tool/function/op -> references or literals."
        if "node" in props:  # a map's inner node: same relaxations
            props["node"] = {"type": "object", "description": "The node run per item (tool, function or subgraph)."}
        schema["required"] = [r for r in schema.get("required", []) if r not in ("name", "kind")]
        variants.append(schema)
    graph: dict[str, Any] = {
        "title": "chainkit graph",
        "type": "object",
        "additionalProperties": False,
        "required": ["kind", "name"],
        "properties": {
            "kind": {"const": "graph"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "input": {
                "description": "Input fields (compact syntax), {schema: <JSON Schema>}, or a registered model name.",
                "anyOf": [{"type": "object"}, {"type": "string"}],
            },
            "reads": {"type": "array", "items": {"type": "string"}},
            "writes": {"type": "array", "items": {"type": "string"}},
            "nodes": {"type": "object", "additionalProperties": {"anyOf": variants}},
            "output": {
                "description": "Output field -> reference or literal, or one reference (the whole output).",
                "anyOf": [{"type": "object"}, {"type": "string"}],
            },
        },
    }
    if defs:
        graph["$defs"] = defs
    return graph


def json_schema(kind: str) -> dict[str, Any]:
    if kind == "tool":
        schema = ToolDefinition.model_json_schema(by_alias=True)
        schema["title"] = "chainkit tool"
    elif kind == "memory":
        schema = _MemoryFile.model_json_schema(by_alias=True)
        schema["title"] = "chainkit memory"
    elif kind == "graph":
        schema = _graph_schema()
    elif kind == "app":
        schema = AppDefinition.model_json_schema(by_alias=True)
        schema["title"] = "chainkit app"
    else:
        raise ValueError(f"unknown kind {kind!r} (one of {', '.join(KINDS)})")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
