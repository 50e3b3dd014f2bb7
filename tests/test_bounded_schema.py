"""Bounded JSON Schemas for constrained decoding, and the field descriptions put into prompts."""

from __future__ import annotations

import enum
import json
from typing import Any, Literal, Optional

import pytest
from pydantic import BaseModel, Field

from chainkit._bounded_schema import (
    CHARS_PER_TOKEN,
    DEFAULT_MAX_TOKENS,
    MAX_ENUM_SPAN,
    MIN_STRING_LENGTH,
    TOKENS_PER_FIELD,
    bounded_schema,
    describe_fields,
)


class Level(enum.StrEnum):
    easy = "easy"
    hard = "hard"


class Option(BaseModel):
    text: str = Field(description="one possible answer")
    correct: bool = False


class Quiz(BaseModel):
    question: str = Field(max_length=200, description="the question")
    options: list[Option] = Field(min_length=4, max_length=4, description="four possible answers")
    answer_index: int = Field(ge=0, le=3, description="position of the right option")
    explanation: str
    level: Level
    kind: Literal["mcq", "open"] = "mcq"
    hint: Optional[str] = None  # noqa: UP045 - Optional on purpose: the spelling under test
    tags: list[str] = []
    score: float = Field(ge=0, le=1)


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


def nodes(schema: Any) -> list[dict[str, Any]]:
    out = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            out.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return out


def is_free_text(node: dict[str, Any]) -> bool:
    return node.get("type") == "string" and "enum" not in node and "const" not in node


@pytest.mark.parametrize("model", [Quiz, Tree, Option])
@pytest.mark.parametrize("max_tokens", [None, 64, 300, 4000])
def test_every_string_and_list_is_bounded(model: type[BaseModel], max_tokens: int | None) -> None:
    schema = bounded_schema(model, max_tokens=max_tokens)
    for node in nodes(schema):
        if is_free_text(node):
            assert "maxLength" in node, node
        if node.get("type") == "array":
            assert "maxItems" in node, node


def test_declared_constraints_win_and_small_ranges_become_enums() -> None:
    schema = bounded_schema(Quiz, max_tokens=4000)  # room for every declared length
    props = schema["properties"]
    assert props["question"]["maxLength"] == 200
    assert props["options"]["minItems"] == 4 and props["options"]["maxItems"] == 4
    assert props["answer_index"]["enum"] == [0, 1, 2, 3]
    assert "minimum" not in props["answer_index"] and "maximum" not in props["answer_index"]
    # Floats keep their range; enums and Literals get no length.
    assert props["score"]["minimum"] == 0 and "enum" not in props["score"]
    assert "maxLength" not in props["kind"]
    assert "maxLength" not in schema["$defs"]["Level"]
    # Optional[str]: the string branch is bounded, the null branch untouched.
    branches = props["hint"]["anyOf"]
    assert any(b.get("type") == "string" and "maxLength" in b for b in branches)
    assert {"type": "null"} in branches
    # A list of models: bounded list, bounded strings inside the referenced model.
    assert "maxLength" in schema["$defs"]["Option"]["properties"]["text"]


def test_model_json_schema_is_not_modified() -> None:
    before = json.dumps(Quiz.model_json_schema(), sort_keys=True)
    bounded_schema(Quiz, max_tokens=100)
    assert json.dumps(Quiz.model_json_schema(), sort_keys=True) == before


class Ranges(BaseModel):
    stars: int = Field(ge=1, le=5)
    exclusive: int = Field(gt=0, lt=4)
    wide: int = Field(ge=0, le=MAX_ENUM_SPAN)  # MAX_ENUM_SPAN + 1 values: stays a range
    open_ended: int = Field(ge=0)


def test_integer_ranges() -> None:
    props = bounded_schema(Ranges)["properties"]
    assert props["stars"]["enum"] == [1, 2, 3, 4, 5]
    assert props["exclusive"]["enum"] == [1, 2, 3]
    assert "enum" not in props["wide"] and props["wide"]["maximum"] == MAX_ENUM_SPAN
    assert "enum" not in props["open_ended"]


class Essay(BaseModel):
    title: str
    paragraphs: list[str]


def maximal_tokens(schema: dict[str, Any]) -> float:
    """An upper estimate of the tokens of the longest answer the schema allows."""
    props = schema["properties"]
    title = props["title"]["maxLength"]
    paragraphs = props["paragraphs"]["maxItems"] * props["paragraphs"]["items"]["maxLength"]
    fields = 2 + props["paragraphs"]["maxItems"]
    return (title + paragraphs) / CHARS_PER_TOKEN + TOKENS_PER_FIELD * fields


@pytest.mark.parametrize("max_tokens", [200, 512, 1500])
def test_default_bounds_fit_the_token_budget(max_tokens: int) -> None:
    schema = bounded_schema(Essay, max_tokens=max_tokens)
    assert maximal_tokens(schema) <= max_tokens


def test_bounds_grow_with_the_budget() -> None:
    small = bounded_schema(Essay, max_tokens=200)["properties"]["title"]["maxLength"]
    large = bounded_schema(Essay, max_tokens=2000)["properties"]["title"]["maxLength"]
    default = bounded_schema(Essay)["properties"]["title"]["maxLength"]
    assert small < large
    assert default == bounded_schema(Essay, max_tokens=DEFAULT_MAX_TOKENS)["properties"]["title"]["maxLength"]


def test_tiny_budget_keeps_a_usable_minimum_and_respects_min_length() -> None:
    class Named(BaseModel):
        name: str = Field(min_length=40)
        notes: list[str]

    schema = bounded_schema(Named, max_tokens=10)
    assert schema["properties"]["name"]["maxLength"] == 40
    assert schema["properties"]["notes"]["items"]["maxLength"] == MIN_STRING_LENGTH
    assert schema["properties"]["notes"]["maxItems"] >= 1


def test_recursive_model_terminates() -> None:
    schema = bounded_schema(Tree, max_tokens=300)
    assert schema["$defs"]["Tree"]["properties"]["label"]["maxLength"] >= MIN_STRING_LENGTH


def test_bounded_examples_still_validate() -> None:
    from chainkit.backends.fake import example_from_schema

    for model in (Quiz, Tree, Essay, Ranges):
        example = example_from_schema(bounded_schema(model, max_tokens=300))
        model.model_validate(example)


# -- describe_fields ---------------------------------------------------------------------------------


def test_describe_fields_in_words() -> None:
    text = describe_fields(Quiz)
    lines = text.splitlines()
    assert lines[0] == "- question (text, at most 200 characters): the question"
    assert "- options (list of exactly 4 objects with the fields below each): four possible answers" in lines
    assert "  - text (text): one possible answer" in lines  # nested model, indented
    assert "  - correct (true or false, optional)" in lines
    assert "- answer_index (whole number from 0 to 3): position of the right option" in lines
    assert '- level (one of "easy", "hard")' in lines
    assert '- kind (one of "mcq", "open", optional)' in lines
    assert "- hint (text, or null, optional)" in lines
    assert "- tags (list of texts, optional)" in lines
    assert "- score (number from 0 to 1)" in lines


def test_describe_fields_never_pastes_the_json_schema() -> None:
    text = describe_fields(Quiz)
    for keyword in ('"type"', "properties", "$ref", "$defs", "anyOf", "maxLength", "{"):
        assert keyword not in text


def test_describe_recursive_model_lists_it_once() -> None:
    lines = describe_fields(Tree).splitlines()
    assert lines == [
        "- label (text)",
        "- children (list of objects each with the same fields as Tree, optional)",
    ]


class Labelled(BaseModel):
    intent: str = Field(json_schema_extra={"enum": ["a", "b"]})
    note: str = Field("", max_length=120)


def test_declared_lengths_shrink_for_decoding_when_the_budget_cannot_hold_them() -> None:
    tight = bounded_schema(Labelled, max_tokens=80)["properties"]["note"]["maxLength"]
    assert tight < 120 and tight + TOKENS_PER_FIELD * 2 <= 80
    assert bounded_schema(Labelled, max_tokens=2000)["properties"]["note"]["maxLength"] == 120
    assert Labelled.model_json_schema()["properties"]["note"]["maxLength"] == 120  # validation keeps it
