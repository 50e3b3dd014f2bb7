"""Tool definition files (YAML) <-> `ToolSpec`.

    name: grade_answer
    description: Grade one free-text answer against a rubric.
    input:
      question: str
      answer: str
    output:                        # compact fields, a `schema:` JSON Schema, or `text` for plain text
      score: {type: int, min: 0, max: 10}
      feedback: str
    prompt:
      system: You grade answers strictly.
      user: |
        Question: {{ question }}
        Answer: {{ answer }}
    settings: {temperature: 0.0, max_tokens: 256}
    model: openai:gpt-4o-mini      # optional; default: CHAINKIT_MODEL or the embedded model
    max_attempts: 3
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chainkit._fieldtypes import Locate, compile_fields, compile_json_schema, model_name_for
from chainkit.backends.base import SETTING_NAMES, ModelSettings
from chainkit.tools import ToolSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptDefinition(_Strict):
    system: str | None = Field(None, description="System message template (Jinja2, sandboxed).")
    user: str = Field(description="User message template (Jinja2, sandboxed). Input fields are variables.")


class SettingsDefinition(_Strict):
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    stop: list[str] | None = None
    seed: int | None = None
    top_p: float | None = Field(None, gt=0, le=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    extra: dict[str, Any] | None = Field(None, description="Server-specific request fields, passed through.")


class SchemaDefinition(_Strict):
    json_schema: dict[str, Any] = Field(alias="schema", description="A JSON Schema of type object.")


Fields = dict[str, Any]


class ToolDefinition(_Strict):
    """One tool: an LLM prompted to do exactly one task."""

    kind: Literal["tool"] = "tool"
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    description: str = ""
    input: SchemaDefinition | Fields = Field(
        union_mode="left_to_right",
        description="Input fields (compact syntax) or {schema: <JSON Schema>}; the prompt's variables."
    )
    output: Literal["text"] | SchemaDefinition | Fields = Field(
        "text",
        union_mode="left_to_right",
        description="Output fields, {schema: ...}, or 'text' for a plain-text answer."
    )
    prompt: PromptDefinition
    settings: SettingsDefinition = Field(default_factory=SettingsDefinition)
    model: str | None = Field(None, description="Model string, e.g. 'openai:gpt-4o-mini', 'local', 'fake'.")
    max_attempts: int = Field(3, ge=1, le=20)
    reask_token_budget: int | None = Field(None, ge=1)
    prompt_budget: int | None = Field(None, ge=1)
    trimmable: list[str] = Field(default_factory=list)


def _compile_model(
    name: str, value: Fields | SchemaDefinition, path: str, file: str | None, locate: Locate | None
) -> type[BaseModel]:
    if isinstance(value, SchemaDefinition):
        return compile_json_schema(name, value.json_schema, path=f"{path}.schema", file=file, locate=locate)
    return compile_fields(name, value, path=path, file=file, locate=locate)


def tool_spec_from_definition(
    definition: ToolDefinition, *, file: str | None = None, locate: Locate | None = None
) -> ToolSpec:
    input_model = _compile_model(f"{definition.name}_input", definition.input, "input", file, locate)
    output_model = None
    if definition.output != "text":
        output_model = _compile_model(f"{definition.name}_output", definition.output, "output", file, locate)
    spec = ToolSpec(
        name=definition.name,
        description=definition.description,
        input=input_model,
        output=output_model,
        system=definition.prompt.system,
        user=definition.prompt.user,
        settings=ModelSettings(**definition.settings.model_dump()),
        model=definition.model,
        max_attempts=definition.max_attempts,
        reask_token_budget=definition.reask_token_budget,
        prompt_budget=definition.prompt_budget,
        trimmable=tuple(definition.trimmable),
        definition=definition,
    )
    return spec


def tool_definition_from_spec(spec: ToolSpec) -> dict[str, Any]:
    """Plain data for a YAML file. A spec loaded from YAML dumps its own field syntax back; a Python
    spec dumps its pydantic models as JSON Schemas (which load back to equivalent models)."""
    loaded = spec.definition
    if isinstance(loaded, ToolDefinition):
        return {"kind": "tool"} | loaded.model_dump(
            mode="json", by_alias=True, exclude_defaults=True, exclude={"kind"}
        )
    data: dict[str, Any] = {"kind": "tool", "name": spec.name}
    if spec.description:
        data["description"] = spec.description
    data["input"] = {"schema": spec.input.model_json_schema()}
    data["output"] = {"schema": spec.output.model_json_schema()} if spec.output is not None else "text"
    prompt = {"system": spec.system} if spec.system else {}
    data["prompt"] = prompt | {"user": spec.user}
    settings = {
        name: getattr(spec.settings, name) for name in SETTING_NAMES if getattr(spec.settings, name) is not None
    }
    if settings:
        data["settings"] = settings
    for name in ("model", "reask_token_budget", "prompt_budget"):
        if getattr(spec, name) is not None:
            data[name] = getattr(spec, name)
    if spec.max_attempts != 3:
        data["max_attempts"] = spec.max_attempts
    if spec.trimmable:
        data["trimmable"] = list(spec.trimmable)
    return data


def tool_fingerprint(spec: ToolSpec) -> dict[str, Any]:
    """What makes two specs equal: every setting plus the JSON Schemas of their models."""
    return {
        "name": spec.name,
        "description": spec.description,
        "input": spec.input.model_json_schema(),
        "output": spec.output.model_json_schema() if spec.output is not None else None,
        "system": spec.system,
        "user": spec.user,
        "settings": [getattr(spec.settings, n) for n in SETTING_NAMES],
        "model": spec.model,
        "max_attempts": spec.max_attempts,
        "reask_token_budget": spec.reask_token_budget,
        "prompt_budget": spec.prompt_budget,
        "trimmable": list(spec.trimmable),
    }


__all__ = ["ToolDefinition", "model_name_for", "tool_definition_from_spec", "tool_fingerprint", "tool_spec_from_definition"]
