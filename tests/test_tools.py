from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from chainkit import tracing
from chainkit.backends import ModelSettings, resolve_backend
from chainkit.backends.base import Completion, Usage
from chainkit.backends.fake import FakeBackend, example_from_schema
from chainkit.errors import (
    BudgetExceeded,
    DefinitionError,
    RenderError,
    ServerError,
    ToolError,
    ToolOutputError,
    UsageError,
)
from chainkit.testing import block_model_requests, block_network
from chainkit.tokens import count_tokens
from chainkit.tools import Tool, ToolSpec, extract_json


class GradeIn(BaseModel):
    question: str
    answer: str


class GradeOut(BaseModel):
    score: int = Field(ge=0, le=10)
    feedback: str


def grade_spec(**overrides) -> ToolSpec:
    options = dict(
        name="grade",
        input=GradeIn,
        output=GradeOut,
        system="You grade answers.",
        user="Question: {{ question }}\nAnswer: {{ answer }}",
        settings=ModelSettings(temperature=0.0, max_tokens=128),
    )
    options.update(overrides)
    return ToolSpec(**options)


async def test_constrained_backend_gets_the_schema_and_output_is_typed():
    backend = FakeBackend([{"score": 7, "feedback": "good"}], json_schema=True)
    result = await Tool(grade_spec(), backend=backend)(question="2+2?", answer="4")
    assert isinstance(result.output, GradeOut) and result.output.score == 7
    request = backend.requests[0]
    assert request.json_schema is not None
    assert set(request.json_schema["properties"]) == {"score", "feedback"}
    assert request.tool == "grade" and request.settings.max_tokens == 128
    assert result.messages[1]["content"] == "Question: 2+2?\nAnswer: 4"
    assert len(result.attempts) == 1 and result.usage.total_tokens > 0
    assert result.attempts[0].constrained


async def test_unconstrained_backend_is_instructed_without_schema_and_fences_are_tolerated():
    backend = FakeBackend(['Sure!\n```json\n{"score": 3, "feedback": "line1\nline2"}\n```'], json_schema=False)
    result = await Tool(grade_spec(), backend=backend)(question="q", answer="a")
    assert result.output.feedback == "line1\nline2"  # raw control character inside a string
    assert result.attempts[0].text.startswith("Sure!")  # the fake did not constrain the answer
    system = backend.requests[0].messages[0]["content"]
    assert "JSON object" in system and "score" in system and "$defs" not in system and '"type"' not in system


async def test_reask_carries_the_validation_error_and_only_the_last_failed_answer():
    answers = ["not json at all", '{"score": 99, "feedback": "x"}', '{"score": 4, "feedback": "fine"}']
    backend = FakeBackend(answers, json_schema=False)
    result = await Tool(grade_spec(), backend=backend)(question="q", answer="a")
    assert result.output.score == 4
    assert [a.error is None for a in result.attempts] == [False, False, True]
    second, third = backend.requests[1].messages, backend.requests[2].messages
    assert "not valid JSON" in second[-1]["content"]
    assert "score" in third[-1]["content"] and "less than or equal to 10" in third[-1]["content"]
    # bounded context: the third request carries only the second answer, not both failures
    assert len(third) == len(second) == 4
    assert "not json at all" not in json.dumps(third)


async def test_all_attempts_fail_gives_tool_output_error_with_every_attempt():
    backend = FakeBackend(["a", "b", "c"], json_schema=False)
    with pytest.raises(ToolOutputError) as caught:
        await Tool(grade_spec(max_attempts=3), backend=backend)(question="q", answer="a")
    error = caught.value
    assert error.tool == "grade"
    assert [a.text for a in error.attempts] == ["a", "b", "c"]
    assert all(a.error for a in error.attempts)


async def test_reask_stops_at_the_token_budget():
    backend = FakeBackend(["x" * 400] * 5, json_schema=False)
    with pytest.raises(ToolOutputError) as caught:
        await Tool(grade_spec(max_attempts=5, reask_token_budget=150), backend=backend)(question="q", answer="a")
    assert len(caught.value.attempts) < 5
    assert "token budget" in str(caught.value)


async def test_transport_errors_propagate_and_never_reach_a_prompt():
    backend = FakeBackend([ServerError("upstream 503 secret-detail", status=503), '{"score":1,"feedback":"f"}'])
    tool = Tool(grade_spec(), backend=backend)
    with pytest.raises(ServerError):
        await tool(question="q", answer="a")
    result = await tool(question="q", answer="a")
    assert "secret-detail" not in json.dumps([r.messages for r in backend.requests])
    assert len(result.attempts) == 1


async def test_plain_text_tool_and_streaming():
    spec = ToolSpec(name="teach", input=GradeIn, user="Teach {{ question }}")
    backend = FakeBackend(["  Here is a long explanation of addition.  "])
    items = [item async for item in Tool(spec, backend=backend).stream(question="addition", answer="")]
    deltas, result = items[:-1], items[-1]
    assert len(deltas) > 1 and "".join(deltas).strip() == result.output
    assert result.output == "Here is a long explanation of addition."


def test_unknown_template_variable_is_a_definition_error():
    with pytest.raises(DefinitionError) as caught:
        grade_spec(user="{{ questoin }}")
    assert "questoin" in str(caught.value) and "tools.grade.user" in str(caught.value)


def test_template_syntax_error_names_the_tool():
    with pytest.raises(DefinitionError, match="grade"):
        grade_spec(system="{% if %}")


async def test_sandbox_refuses_python_internals():
    spec = grade_spec(user="{{ input.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(RenderError):
        await Tool(spec, backend=FakeBackend())(question="q", answer="a")


async def test_invalid_input_is_a_tool_error():
    with pytest.raises(ToolError, match="question"):
        await Tool(grade_spec(), backend=FakeBackend())(answer="a")


class HistoryIn(BaseModel):
    question: str
    history: list[str]


async def test_trimmable_history_is_trimmed_oldest_first():
    spec = ToolSpec(
        name="answer",
        input=HistoryIn,
        user="{% for turn in history %}{{ turn }}\n{% endfor %}Q: {{ question }}",
        prompt_budget=120,
        trimmable=("history",),
    )
    history = [f"turn {i}: " + "word " * 20 for i in range(30)]
    backend = FakeBackend(["ok"])
    result = await Tool(spec, backend=backend)(question="why?", history=history)
    sent = result.messages[-1]["content"]
    assert "turn 29:" in sent and "turn 0:" not in sent
    assert result.trimmed["history"] > 0
    assert count_tokens(sent) <= 120


async def test_budget_exceeded_names_tool_and_numbers():
    spec = ToolSpec(name="answer", input=HistoryIn, user="{{ question }}", prompt_budget=10)
    with pytest.raises(BudgetExceeded) as caught:
        await Tool(spec, backend=FakeBackend(["ok"]))(question="word " * 50, history=[])
    assert caught.value.tool == "answer" and caught.value.budget == 10 and caught.value.tokens > 10


async def test_sync_facade_refuses_inside_a_running_loop():
    tool = Tool(grade_spec(), backend=FakeBackend())
    with pytest.raises(UsageError, match="running event loop"):
        tool.run_sync(question="q", answer="a")


def test_sync_facade_works_outside_a_loop_and_twice():
    tool = Tool(grade_spec(), backend=FakeBackend())
    assert tool.run_sync(question="q", answer="a").output.feedback == "fake"
    assert tool.run_sync(question="q", answer="a").output.score == 0


async def test_llm_calls_are_traced():
    sink = tracing.ListSink()
    backend = FakeBackend(["bad", '{"score": 1, "feedback": "ok"}'], json_schema=False)
    with tracing.trace_to(sink):
        await Tool(grade_spec(), backend=backend)(question="q", answer="a")
    calls = sink.of_kind("llm_call")
    assert [c["attempt"] for c in calls] == [1, 2]
    assert calls[0]["error"] and calls[1]["error"] is None and calls[1]["response"].startswith("{")


class RealLooking(FakeBackend):
    is_real = True


async def test_block_model_requests_refuses_real_backends_only():
    with block_model_requests():
        with pytest.raises(UsageError, match="blocked"):
            await Tool(grade_spec(), backend=RealLooking())(question="q", answer="a")
        await Tool(grade_spec(), backend=FakeBackend())(question="q", answer="a")


def test_block_network_refuses_non_loopback():
    import socket

    with block_network():
        with socket.socket() as sock, pytest.raises(UsageError, match="blocked"):
            sock.connect(("192.0.2.1", 80))


async def test_backend_concurrency_limit_is_honoured():
    in_flight = peak = 0

    async def slow(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return Completion(text='{"score": 1, "feedback": "ok"}', usage=Usage(1, 1))

    class Slow(FakeBackend):
        async def complete(self, request):
            return await slow(request)

    tool = Tool(grade_spec(), backend=Slow(max_in_flight=2))
    await asyncio.gather(*(tool(question="q", answer=str(i)) for i in range(8)))
    assert peak == 2


def test_model_strings(monkeypatch):
    assert resolve_backend("fake") is resolve_backend("fake")
    with pytest.raises(DefinitionError, match="unknown model string"):
        resolve_backend("nonsense:thing")
    monkeypatch.setenv("CHAINKIT_MODEL", "fake")
    assert resolve_backend(None).name == "fake"


def test_scripted_by_tool_name():
    backend = FakeBackend({"grade": [{"score": 2, "feedback": "a"}]})
    assert Tool(grade_spec(), backend=backend).run_sync(question="q", answer="a").output.score == 2
    other = ToolSpec(name="other", input=GradeIn, user="x")
    with pytest.raises(UsageError, match="no script for tool 'other'"):
        Tool(other, backend=backend).run_sync(question="q", answer="a")


class Level(StrEnum):
    low = "low"
    high = "high"


class Option(BaseModel):
    text: str = Field(min_length=2)
    correct: bool


class Quiz(BaseModel):
    kind: Literal["mc"]
    level: Level
    options: list[Option] = Field(min_length=2)
    answer_index: int = Field(ge=1, le=4)
    note: str | None = None


def test_fake_examples_validate_against_nested_schemas():
    for model in (GradeOut, Quiz, Option):
        model.model_validate(example_from_schema(model.model_json_schema()))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', '{"a": 1}'),
        ('Here: {"a": 1} done', '{"a": 1}'),
        ('```\n{"a": 1}\n```', '{"a": 1}'),
        ("[1, 2]", "[1, 2]"),
    ],
)
def test_extract_json(text, expected):
    assert extract_json(text) == expected


def test_token_counting_is_offline():
    with block_network():
        assert count_tokens("hello world") == 2


async def test_a_truncated_answer_is_asked_afresh_with_different_sampling():
    cut = Completion(text='{"score": 1, "feedback": "' + "ha" * 60, usage=Usage(10, 128), finish_reason="length")
    backend = FakeBackend([cut, '{"score": 2, "feedback": "brief"}'], json_schema=True)
    spec = grade_spec(settings=ModelSettings(temperature=0.2, max_tokens=128, seed=5))
    result = await Tool(spec, backend=backend)(question="q", answer="a")
    assert result.output.feedback == "brief"
    first, second = backend.requests
    assert result.attempts[0].finish_reason == "length"
    assert "haha" not in json.dumps(second.messages)  # the runaway answer is not quoted back
    assert "cut off" in second.messages[-1]["content"] and len(second.messages) == len(first.messages)
    assert (second.settings.seed, second.settings.temperature) == (5 + 1009, 0.5)
    assert second.settings.max_tokens == 128


def test_penalties_and_extra_fields_reach_the_request_body():
    settings = ModelSettings(temperature=0.1, frequency_penalty=0.4, extra={"repeat_penalty": 1.1, "temperature": 9})
    body = settings.apply_to({"model": "m"})
    assert body == {"model": "m", "temperature": 0.1, "frequency_penalty": 0.4, "repeat_penalty": 1.1}


async def test_cost_is_reported_where_prices_are_known():
    priced = FakeBackend([{"score": 1, "feedback": "ok"}])
    priced.capabilities.price_per_million = (2.0, 8.0)
    sink = tracing.ListSink()
    with tracing.trace_to(sink):
        result = await Tool(grade_spec(), backend=priced)(question="q", answer="a")
    expected = (result.usage.prompt_tokens * 2.0 + result.usage.completion_tokens * 8.0) / 1e6
    assert result.cost_usd == pytest.approx(expected) and expected > 0
    assert sink.of_kind("llm_call")[0]["cost_usd"] == pytest.approx(expected)
    unknown = FakeBackend([{"score": 1, "feedback": "ok"}])
    unknown.capabilities.price_per_million = None
    assert (await Tool(grade_spec(), backend=unknown)(question="q", answer="a")).cost_usd is None
