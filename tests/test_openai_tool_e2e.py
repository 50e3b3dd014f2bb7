"""End to end: Tool calls through OpenAICompatibleBackend to a scripted server on 127.0.0.1 (real sockets).

Covers issue 2's "Show" list: schema output; re-ask after invalid JSON; 429 with Retry-After then
success; 5xx until retries are exhausted; a read timeout; a streamed answer; a 400 context-length error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from pydantic import BaseModel, Field

from chainkit.backends.base import ModelSettings, request_gate
from chainkit.backends.openai import OpenAICompatibleBackend
from chainkit.errors import BackendTimeout, ContextLengthExceeded, RateLimited, ServerError, ToolOutputError
from chainkit.tools import Tool, ToolResult, ToolSpec
from chainkit.tracing import ListSink, trace_to
from tests._openai_server import (
    ScriptedServer,
    chat_reply,
    context_length_reply,
    error_reply,
    stream_reply,
)

SECRET = "sk-e2e-Kq2SECRET9x"


class GradeIn(BaseModel):
    question: str
    answer: str


class GradeOut(BaseModel):
    score: int = Field(ge=0, le=5, description="0 (wrong) to 5 (perfect)")
    feedback: str


GRADE = ToolSpec(
    name="grade_answer",
    description="Grade one answer",
    input=GradeIn,
    output=GradeOut,
    system="You grade answers to arithmetic questions.",
    user="Question: {{ question }}\nAnswer: {{ answer }}",
    settings=ModelSettings(temperature=0.0, max_tokens=128),
    max_attempts=3,
)

EXPLAIN = ToolSpec(
    name="explain",
    input=GradeIn,
    output=None,
    user="Explain why {{ answer }} answers {{ question }}.",
)

QUESTION = {"question": "2+2?", "answer": "4"}


@pytest.fixture(autouse=True)
def real_requests_allowed() -> Iterator[None]:
    # These tests call a real (local) HTTP server on purpose; a suite-wide guard must not stop them.
    previous = request_gate.allowed
    request_gate.allowed = True
    yield
    request_gate.allowed = previous


@pytest.fixture
def backend_for(make_backend: Callable[..., OpenAICompatibleBackend]) -> Callable[..., OpenAICompatibleBackend]:
    return lambda server, **options: make_backend(server, **{"max_retries": 2, "api_key": SECRET, **options})


def sent_text(server: ScriptedServer, index: int) -> str:
    return "\n".join(m["content"] for m in server.requests[index].json["messages"])


async def test_structured_output_via_json_schema(serve, backend_for) -> None:
    server = serve([chat_reply({"score": 5, "feedback": "correct"}, prompt_tokens=30, completion_tokens=8)])
    tool = Tool(GRADE, backend=backend_for(server))
    result = await tool(QUESTION)

    assert isinstance(result, ToolResult)
    assert result.output == GradeOut(score=5, feedback="correct")
    assert len(result.attempts) == 1
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (30, 8)
    body = server.requests[0].json
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == tool.output_schema(128)
    assert body["response_format"]["json_schema"]["name"] == "grade_answer"
    assert body["messages"] == result.messages  # what the tool says it sent is what arrived
    assert "Question: 2+2?\nAnswer: 4" in body["messages"][-1]["content"]


async def test_reask_after_invalid_json_carries_the_validation_error_not_transport_errors(
    serve, backend_for
) -> None:
    server = serve(
        [
            error_reply(503, "upstream exploded: shard 7 unavailable"),
            chat_reply("Sure! I would give it a five."),  # not JSON
            error_reply(429, "Rate limit reached for requests", headers={"Retry-After": "0"}),
            chat_reply('{"score": 4, "feedback": "fine"}'),
        ]
    )
    tool = Tool(
        GRADE, backend=backend_for(server, structured="prompt")
    )  # a server without constrained output
    result = await tool(QUESTION)

    assert result.output.score == 4
    assert [attempt.error is None for attempt in result.attempts] == [False, True]
    assert "not valid JSON" in (result.attempts[0].error or "")
    assert all("response_format" not in request.json for request in server.requests)
    reask = server.requests[3].json["messages"]
    assert reask[-2] == {"role": "assistant", "content": "Sure! I would give it a five."}
    assert "not valid JSON" in reask[-1]["content"]
    everything_sent = "\n".join(sent_text(server, i) for i in range(len(server.requests)))
    for transport_text in ("upstream exploded", "shard 7", "503", "Rate limit reached", "429"):
        assert transport_text not in everything_sent


async def test_schema_refused_then_prompt_only_then_reask_on_validation_error(serve, backend_for) -> None:
    server = serve(
        [
            error_reply(400, "Unknown parameter: response_format.json_schema"),
            error_reply(400, "'response_format.type' json_object is not supported by this server"),
            chat_reply('```json\n{"score": 9, "feedback": "great"}\n```'),  # parses, fails ge/le
            chat_reply('{"score": 5, "feedback": "great"}'),
            chat_reply('{"score": 3, "feedback": "later call"}'),
        ]
    )
    backend = backend_for(server)
    tool = Tool(GRADE, backend=backend)
    result = await tool(QUESTION)
    assert result.output.score == 5
    assert (
        "score" in (result.attempts[0].error or "") and "less than or equal to 5" in result.attempts[0].error
    )
    assert "less than or equal to 5" in server.requests[3].json["messages"][-1]["content"]
    assert backend.capabilities.json_schema is False

    # The downgrade is remembered: the next call neither sends a schema nor gets refused again.
    again = await tool(QUESTION)
    assert again.output.feedback == "later call"
    assert len(server.requests) == 5
    assert "response_format" not in server.requests[4].json


async def test_invalid_json_every_time_is_a_tool_output_error_with_every_attempt(serve, backend_for) -> None:
    server = serve([chat_reply("no"), chat_reply("still no"), chat_reply("{broken")])
    tool = Tool(GRADE, backend=backend_for(server, structured="prompt"))
    with pytest.raises(ToolOutputError) as caught:
        await tool(QUESTION)
    assert [attempt.text for attempt in caught.value.attempts] == ["no", "still no", "{broken"]


async def test_429_with_retry_after_then_success(serve, backend_for) -> None:
    server = serve(
        [
            error_reply(429, "slow down", headers={"Retry-After": "0.3"}),
            chat_reply({"score": 2, "feedback": "meh"}),
        ]
    )
    result = await Tool(GRADE, backend=backend_for(server))(QUESTION)
    assert result.output.score == 2
    assert len(result.attempts) == 1  # transport retries are not tool attempts
    assert server.requests[1].at - server.requests[0].at >= 0.28


async def test_429_until_exhausted_is_rate_limited(serve, backend_for) -> None:
    server = serve([error_reply(429, "quota exceeded")] * 3)
    with pytest.raises(RateLimited):
        await Tool(GRADE, backend=backend_for(server))(QUESTION)


async def test_5xx_until_retries_are_exhausted_is_a_typed_error(serve, backend_for) -> None:
    server = serve([error_reply(500, "internal error")] * 3 + [chat_reply({"score": 1, "feedback": "x"})])
    with pytest.raises(ServerError, match="internal error") as caught:
        await Tool(GRADE, backend=backend_for(server, max_retries=2))(QUESTION)
    assert caught.value.status == 500
    assert len(server.requests) == 3


async def test_read_timeout_is_a_typed_error(serve, backend_for) -> None:
    server = serve([chat_reply("{}", delay_s=0.5), chat_reply("{}", delay_s=0.5)])
    with pytest.raises(BackendTimeout):
        await Tool(GRADE, backend=backend_for(server, read_timeout=0.1, max_retries=1))(QUESTION)
    assert len(server.requests) == 2


async def test_context_length_error_is_typed(serve, backend_for) -> None:
    server = serve([context_length_reply("vllm")])
    with pytest.raises(ContextLengthExceeded, match="maximum context length is 4096"):
        await Tool(GRADE, backend=backend_for(server))(QUESTION)
    assert len(server.requests) == 1


async def test_streamed_plain_text_answer(serve, backend_for) -> None:
    server = serve([stream_reply(["Because ", "2 plus 2 ", "is 4."], usage=(17, 6))])
    items = [item async for item in Tool(EXPLAIN, backend=backend_for(server)).stream(QUESTION)]
    *deltas, result = items
    assert deltas == ["Because ", "2 plus 2 ", "is 4."]
    assert isinstance(result, ToolResult)
    assert result.output == "Because 2 plus 2 is 4."
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (17, 6)
    assert server.requests[0].json["stream"] is True


async def test_streamed_structured_answer(serve, backend_for) -> None:
    text = json.dumps({"score": 5, "feedback": "spot on"})
    server = serve([stream_reply([text[:10], text[10:]])])
    items = [item async for item in Tool(GRADE, backend=backend_for(server)).stream(QUESTION)]
    assert "".join(items[:-1]) == text
    assert items[-1].output == GradeOut(score=5, feedback="spot on")


async def test_traces_carry_the_exchange_but_never_the_key(serve, backend_for) -> None:
    server = serve(
        [error_reply(429, f"key {SECRET} is rate limited"), chat_reply({"score": 3, "feedback": "ok"})]
    )
    sink = ListSink()
    with trace_to(sink):
        await Tool(GRADE, backend=backend_for(server))(QUESTION)
    [event] = sink.of_kind("llm_call")
    assert event["tool"] == "grade_answer" and event["constrained"] is True
    assert server.requests[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(sink.events)
