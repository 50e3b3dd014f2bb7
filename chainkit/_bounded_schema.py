"""JSON Schemas for constrained decoding, with bounds small models need (placeholder, see issue 6)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def bounded_schema(model: type[BaseModel], *, max_tokens: int | None = None) -> dict[str, Any]:
    """The JSON Schema to send to a constrained backend for `model`."""
    return model.model_json_schema()


def describe_fields(model: type[BaseModel]) -> str:
    """The output fields described in words, for the prompt (never the raw JSON Schema)."""
    lines = []
    for name, info in model.model_fields.items():
        lines.append(f"- {name}: {info.description or info.annotation}")
    return "\n".join(lines)
