"""The compact field syntax and JSON Schema compiler (chainkit._fieldtypes)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from chainkit._fieldtypes import compile_fields, compile_json_schema
from chainkit.errors import DefinitionError


def test_scalars_optionals_defaults_and_enums() -> None:
    model = compile_fields(
        "learner_profile",
        {
            "name": "str",
            "level": "int = 3",
            "ratio": "float?",
            "ok": "bool = true",
            "seen": "datetime?",
            "tags": "list[str] = []",
            "grid": "list[list[int]]",
            "scores": "dict[str, float] = {}",
            "mood": "enum(calm, 'very curious') = calm",
            "motto": 'str = "a = b"',
            "born": "date?",
        },
        path="fields",
    )
    assert model.__name__ == "LearnerProfile"
    value = model(name="A", grid=[[1, 2]], seen="2024-01-02T03:04:05Z")
    assert (value.level, value.ratio, value.ok, value.tags, value.mood, value.motto) == (
        3,
        None,
        True,
        [],
        "calm",
        "a = b",
    )
    assert isinstance(value.seen, dt.datetime)
    assert model(name="A", grid=[], mood="very curious").mood == "very curious"
    with pytest.raises(ValidationError):
        model(name="A", grid=[], mood="angry")
    with pytest.raises(ValidationError):
        model(name="A")  # grid is required
    with pytest.raises(ValidationError):
        model(name="A", grid=[], unknown=1)  # compiled models forbid stray keys
    a, b = model(name="A", grid=[]), model(name="B", grid=[])
    a.tags.append("x")
    assert b.tags == []  # mutable defaults are not shared


def test_nested_models_and_lists_of_models() -> None:
    model = compile_fields(
        "plan",
        {
            "title": "str",
            "progress": {"done": "int = 0", "topic": "str?"},
            "steps": [{"name": "str", "minutes": "int = 10"}],
            "owner": {"name": "str"},
        },
        path="fields",
    )
    plan = model(title="T", steps=[{"name": "intro"}], owner={"name": "me"})
    assert plan.progress.done == 0 and plan.steps[0].minutes == 10
    assert type(plan.steps[0]).__name__ == "PlanStepsItem"
    with pytest.raises(ValidationError):
        model(title="T", steps=[{"minutes": 1}], owner={"name": "me"})
    with pytest.raises(ValidationError):
        model(title="T", steps=[])  # owner has a required field, so it is required


def test_long_form_bounds_and_descriptions() -> None:
    model = compile_fields(
        "grade",
        {
            "score": {"type": "float", "min": 0, "max": 1, "description": "How right the answer was"},
            "feedback": {"type": "str", "max": 20, "pattern": "^[A-Z]"},
            "tags": {"type": "list[str]", "min": 1},
            "note": {"type": "str", "optional": True},
            "type": {"type": "str", "default": "quiz"},  # a field named `type` via the long form
            "meta": {"type": {"type": "str", "description": "str"}},  # nested model with such names
        },
        path="fields",
    )
    schema = model.model_json_schema()
    assert schema["properties"]["score"]["description"] == "How right the answer was"
    ok = model(score=0.5, feedback="Good", tags=["a"], meta={"type": "x", "description": "y"})
    assert ok.note is None and ok.type == "quiz"
    for bad in ({"score": 2}, {"feedback": "lowercase"}, {"feedback": "A" * 21}, {"tags": []}):
        with pytest.raises(ValidationError):
            model(
                **{
                    "score": 0.5,
                    "feedback": "Good",
                    "tags": ["a"],
                    "meta": {"type": "x", "description": "y"},
                    **bad,
                }
            )


@pytest.mark.parametrize(
    "fields,path,message",
    [
        ({"x": "strng"}, "fields.x", "unknown type"),
        ({"x": "int = abc"}, "fields.x", "does not fit"),
        ({"x": "enum()"}, "fields.x", "empty"),
        ({"x": "enum(a, a)"}, "fields.x", "repeat"),
        ({"1x": "str"}, "fields.1x", "invalid field name"),
        ({"model_config": "str"}, "fields.model_config", "reserved"),
        ({"copy": "str"}, "fields.copy", "reserved"),
        ({"x": {"y": "nope"}}, "fields.x.y", "unknown type"),
        ({"x": [{"y": "int"}, {"z": "int"}]}, "fields.x", "exactly one"),
        ({"x": {"type": "str", "min": "a"}}, "fields.x.min", "number"),
        ({"x": {"type": "bool", "max": 3}}, "fields.x.max", "applies to"),
        ({"x": {"type": "str", "pattern": "("}}, "fields.x.pattern", "invalid pattern"),
        ({"x": {"type": "int", "default": "no"}}, "fields.x.default", "does not fit"),
        ({"x": 5}, "fields.x", "expected a type"),
        ({}, "fields", "at least one"),
    ],
)
def test_errors_name_the_key_path(fields: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        compile_fields(
            "m", fields, path="fields", file="memories/m.yaml", locate=lambda p: (7, 3) if p == path else None
        )
    assert info.value.path == path
    assert message in str(info.value)
    assert info.value.file == "memories/m.yaml" and (info.value.line, info.value.column) == (7, 3)
    assert str(info.value).startswith("memories/m.yaml:7:3 " + path)


def test_json_schema_objects_refs_and_bounds() -> None:
    model = compile_json_schema(
        "quiz",
        {
            "type": "object",
            "required": ["id", "items"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "minLength": 2, "description": "key"},
                "level": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
                "kind": {"enum": ["mc", "open"]},
                "when": {"type": "string", "format": "date-time"},
                "maybe": {"type": ["string", "null"]},
                "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1},
                "extra": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
            "$defs": {"item": {"type": "object", "required": ["q"], "properties": {"q": {"type": "string"}}}},
        },
        path="schema",
    )
    value = model(id="q1", items=[{"q": "why?"}], when="2024-05-01T00:00:00Z", extra={"a": 1}, either="x")
    assert value.level == 1 and value.kind is None and isinstance(value.when, dt.datetime)
    assert issubclass(model, BaseModel)
    for bad in (
        {"id": "q"},
        {"items": []},
        {"level": 9},
        {"kind": "essay"},
        {"surprise": 1},
        {"extra": {"a": "x"}},
    ):
        with pytest.raises(ValidationError):
            model(**{"id": "q1", "items": [{"q": "a"}], **bad})


@pytest.mark.parametrize(
    "schema,path",
    [
        ({"type": "string"}, "schema"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "schema.properties.a.$ref"),
        ({"type": "object", "properties": {"a": {"allOf": []}}}, "schema.properties.a.allOf"),
        ({"type": "object", "properties": {"a": {"type": "wat"}}}, "schema.properties.a.type"),
        ({"type": "object", "required": ["b"], "properties": {"a": {"type": "string"}}}, "schema.required"),
    ],
)
def test_json_schema_errors(schema: dict[str, Any], path: str) -> None:
    with pytest.raises(DefinitionError) as info:
        compile_json_schema("m", schema, path="schema")
    assert info.value.path == path
