"""FallbackBackend over fake backends and over a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from chainkit.backends.base import Backend, Capabilities, Completion, CompletionRequest, request_gate
from chainkit.backends.fake import FakeBackend
from chainkit.backends.fallback import FallbackBackend
from chainkit.backends.openai import OpenAICompatibleBackend
from chainkit.errors import (
    AuthenticationError,
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    ContextLengthExceeded,
    DefinitionError,
    RateLimited,
    ServerError,
    TransportError,
)
from chainkit.tools import Tool, ToolSpec
from tests._openai_server import ScriptedServer, error_reply


def ask() -> CompletionRequest:
    return CompletionRequest(messages=[{"role": "user", "content": "hi"}], tool="t")


@pytest.mark.parametrize(
    "error",
    [
        BackendUnavailable("model file missing"),
        TransportError("connection reset"),
        BackendTimeout("read timeout"),
        ServerError("HTTP 503", status=503),
        RateLimited("HTTP 429", status=429),
    ],
)
async def test_moves_on_when_a_backend_cannot_serve(error: Exception) -> None:
    first = FakeBackend([error], name="a")
    second = FakeBackend(["from b"], name="b")
    chain = FallbackBackend(first, second)
    assert chain.name == "fallback(a,b)"
    completion = await chain.complete(ask())
    assert completion.text == "from b"
    assert len(first.requests) == 1 and len(second.requests) == 1


@pytest.mark.parametrize(
    "error",
    [
        BadRequest("HTTP 400: bad temperature", status=400),
        ContextLengthExceeded("too long", status=400),
        AuthenticationError("HTTP 401", status=401),
    ],
)
async def test_does_not_move_on_for_request_or_configuration_errors(error: Exception) -> None:
    second = FakeBackend(["never"], name="b")
    with pytest.raises(type(error)):
        await FallbackBackend(FakeBackend([error], name="a"), second).complete(ask())
    assert second.requests == []


async def test_all_failing_raises_the_last_error_noting_the_others() -> None:
    chain = FallbackBackend(
        FakeBackend([ServerError("a is down", status=500)], name="a"),
        FakeBackend([RateLimited("b is busy", status=429)], name="b"),
    )
    with pytest.raises(RateLimited, match="b is busy") as caught:
        await chain.complete(ask())
    assert any("a: ServerError: a is down" in note for note in caught.value.__notes__)


def test_capabilities_promise_only_what_every_backend_keeps() -> None:
    constrained = FakeBackend(json_schema=True, name="a", max_in_flight=3)
    unconstrained = FakeBackend(json_schema=False, name="b")
    assert FallbackBackend(constrained, unconstrained).capabilities.json_schema is False
    caps = FallbackBackend(constrained, FakeBackend(json_schema=True, name="c")).capabilities
    assert caps.json_schema is True
    assert caps.max_in_flight == 3  # the first's


def test_needs_backends() -> None:
    with pytest.raises(DefinitionError):
        FallbackBackend()
    with pytest.raises(DefinitionError):
        FallbackBackend("openai:gpt-4o-mini")  # type: ignore[arg-type]


class _BreaksMidStream(Backend):
    """Streams one delta, then fails: the chain must not splice another backend's answer onto it."""

    name = "breaks"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def complete(self, request: CompletionRequest) -> Completion:
        raise AssertionError("not used")

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | Completion]:
        yield "half an ans"
        raise ServerError("connection dropped mid-stream")


async def test_stream_moves_on_only_before_the_first_delta() -> None:
    chain = FallbackBackend(
        FakeBackend([ServerError("down")], name="a"), FakeBackend(["streamed by b"], name="b")
    )
    items = [item async for item in chain.stream(ask())]
    assert "".join(i for i in items if isinstance(i, str)) == "streamed by b"

    second = FakeBackend(["never"], name="b")
    received: list[Any] = []
    with pytest.raises(ServerError, match="mid-stream"):
        async for item in FallbackBackend(_BreaksMidStream(), second).stream(ask()):
            received.append(item)
    assert received == ["half an ans"]
    assert second.requests == []


async def test_real_server_exhausting_retries_falls_back() -> None:
    with ScriptedServer([error_reply(503, "overloaded")] * 2) as server:
        primary = OpenAICompatibleBackend(
            server.base_url, "big-model", max_retries=1, backoff_initial=0.001, backoff_max=0.01
        )
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            dead_port = sock.getsockname()[1]
        unreachable = OpenAICompatibleBackend(
            f"http://127.0.0.1:{dead_port}/v1", "m", max_retries=0, backoff_initial=0.001
        )
        spare = FakeBackend(["spare answer"], name="spare")
        chain = FallbackBackend(primary, unreachable, spare)
        try:
            completion = await chain.complete(ask())
        finally:
            await chain.aclose()
        assert completion.text == "spare answer"
        assert len(server.requests) == 2
        assert chain.is_real is True


class _Out(BaseModel):
    word: str


class _In(BaseModel):
    text: str


async def test_tool_on_a_fallback_chain() -> None:
    previous, request_gate.allowed = request_gate.allowed, True
    try:
        with ScriptedServer([error_reply(502, "bad gateway")]) as server:
            primary = OpenAICompatibleBackend(server.base_url, "m", max_retries=0)
            spare = FakeBackend([{"word": "hello"}], name="spare", json_schema=False)
            tool = Tool(
                ToolSpec(name="echo", input=_In, output=_Out, user="{{ text }}"),
                backend=FallbackBackend(primary, spare),
            )
            result = await tool(text="hello")
            await primary.aclose()
        assert result.output.word == "hello"
        # The schema travels with the request; the spare is unconstrained, so the tool validated the answer.
        assert spare.requests[0].json_schema is not None
        assert result.attempts[0].error is None
    finally:
        request_gate.allowed = previous
