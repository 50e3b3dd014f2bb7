"""OpenAICompatibleBackend against a scripted OpenAI-compatible server on 127.0.0.1 (real sockets)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from chainkit.backends import close_backends, resolve_backend
from chainkit.backends.base import Completion, CompletionRequest, ModelSettings
from chainkit.backends.openai import (
    OPENAI_BASE_URL,
    OpenAICompatibleBackend,
    backend_from_model_string,
    is_context_overflow,
    parse_retry_after,
    server_message,
)
from chainkit.errors import (
    AuthenticationError,
    BackendTimeout,
    BadRequest,
    ContextLengthExceeded,
    DefinitionError,
    RateLimited,
    ServerError,
    TransportError,
)
from tests._openai_server import (
    CONTEXT_LENGTH_DIALECTS,
    Reply,
    chat_reply,
    context_length_reply,
    error_reply,
    stream_reply,
)

SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer"}, "feedback": {"type": "string"}},
    "required": ["score", "feedback"],
}
SECRET = "sk-test-Zq8v1SECRETkey4471"


def ask(schema: dict[str, Any] | None = None, **options: Any) -> CompletionRequest:
    return CompletionRequest(
        messages=[{"role": "system", "content": "You grade answers."}, {"role": "user", "content": "2+2=4?"}],
        json_schema=schema,
        schema_name="grade answer",
        **options,
    )


# -- plain and structured completions ---------------------------------------------------------------


async def test_schema_output_is_sent_as_json_schema_and_parsed(serve, make_backend) -> None:
    server = serve(
        [
            chat_reply(
                {"score": 5, "feedback": "right"}, prompt_tokens=40, completion_tokens=9, cached_tokens=32
            )
        ]
    )
    backend = make_backend(server, api_key=SECRET)
    completion = await backend.complete(
        ask(SCHEMA, settings=ModelSettings(temperature=0.0, max_tokens=64, seed=7))
    )

    assert json.loads(completion.text) == {"score": 5, "feedback": "right"}
    assert completion.constrained is True
    assert (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
        completion.usage.cached_tokens,
    ) == (
        40,
        9,
        32,
    )
    assert completion.finish_reason == "stop"
    assert completion.model == "test-model"
    assert completion.latency_s > 0
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    body = request.json
    assert body["model"] == "test-model"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "grade_answer", "schema": SCHEMA, "strict": False},
    }
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.0, 64, 7)
    assert body["messages"][1] == {"role": "user", "content": "2+2=4?"}
    assert "stream" not in body


async def test_plain_request_sends_no_response_format_and_no_key_when_none(serve, make_backend) -> None:
    server = serve([chat_reply("four")])
    backend = make_backend(server)
    completion = await backend.complete(ask())
    assert completion.text == "four"
    assert completion.constrained is False
    assert "response_format" not in server.requests[0].json
    assert "Authorization" not in server.requests[0].headers


async def test_logprobs_are_requested_and_parsed(serve, make_backend) -> None:
    tokens = [
        {
            "token": "4",
            "logprob": -0.01,
            "top_logprobs": [{"token": "4", "logprob": -0.01}, {"token": "5", "logprob": -4.6}],
        },
        {"token": ".", "logprob": -0.2, "top_logprobs": [{"token": ".", "logprob": -0.2}]},
    ]
    server = serve([chat_reply("4.", logprobs=tokens)])
    backend = make_backend(server)
    completion = await backend.complete(ask(top_logprobs=2))
    assert server.requests[0].json["logprobs"] is True
    assert server.requests[0].json["top_logprobs"] == 2
    assert completion.logprobs == [
        {"token": "4", "logprob": -0.01, "top": [("4", -0.01), ("5", -4.6)]},
        {"token": ".", "logprob": -0.2, "top": [(".", -0.2)]},
    ]


# -- structured-output downgrade --------------------------------------------------------------------


async def test_json_schema_refused_then_json_object_refused_then_prompt_only_is_remembered(
    serve, make_backend
) -> None:
    server = serve(
        [
            error_reply(
                400,
                "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
            ),
            error_reply(400, "response_format type json_object is not supported"),
            chat_reply('{"score": 1, "feedback": "ok"}'),
            chat_reply('{"score": 2, "feedback": "ok"}'),
        ]
    )
    backend = make_backend(server)
    assert backend.capabilities.json_schema is True

    first = await backend.complete(ask(SCHEMA))
    assert first.constrained is False  # prompt-only: the tool layer must validate and re-ask
    formats = [request.json.get("response_format", {}).get("type") for request in server.requests]
    assert formats == ["json_schema", "json_object", None]
    # The prompt had no JSON instruction (it was written for constrained decoding): the backend adds one.
    prompt_only = server.requests[2].json["messages"]
    assert prompt_only[0]["content"].startswith("You grade answers.\n\nAnswer with one JSON object")
    assert json.dumps(SCHEMA, separators=(",", ":")) in prompt_only[0]["content"]
    assert len(prompt_only) == 2
    assert backend.structured_mode == "prompt"
    assert backend.capabilities.json_schema is False

    second = await backend.complete(ask(SCHEMA))
    assert json.loads(second.text)["score"] == 2
    assert len(server.requests) == 4
    assert "response_format" not in server.requests[3].json  # went straight to what works


@pytest.mark.parametrize("status", [422, 501])
async def test_refusal_by_status_steps_down_to_json_object_only(serve, make_backend, status: int) -> None:
    server = serve(
        [
            Reply(status, {"detail": "unsupported field"}),
            chat_reply('{"score": 1, "feedback": "ok"}'),
            chat_reply('{"score": 3, "feedback": "ok"}'),
        ]
    )
    backend = make_backend(server)
    await backend.complete(ask(SCHEMA))
    assert backend.structured_mode == "json_object"
    await backend.complete(ask(SCHEMA))
    assert [r.json.get("response_format", {}).get("type") for r in server.requests] == [
        "json_schema",
        "json_object",
        "json_object",
    ]


async def test_fixed_structured_mode_does_not_step_down(serve, make_backend) -> None:
    server = serve([error_reply(400, "response_format json_schema is not supported")])
    backend = make_backend(server, structured="json_schema")
    with pytest.raises(BadRequest, match="not supported") as caught:
        await backend.complete(ask(SCHEMA))
    assert type(caught.value) is BadRequest
    assert backend.structured_mode == "json_schema"
    assert len(server.requests) == 1


async def test_ordinary_400_is_bad_request_with_server_message_and_no_downgrade(serve, make_backend) -> None:
    server = serve([error_reply(400, "temperature must be at most 2")])
    backend = make_backend(server)
    with pytest.raises(BadRequest, match="temperature must be at most 2") as caught:
        await backend.complete(ask(SCHEMA))
    assert type(caught.value) is BadRequest and caught.value.status == 400
    assert backend.structured_mode == "json_schema"
    assert len(server.requests) == 1


# -- retries ----------------------------------------------------------------------------------------


async def test_429_with_retry_after_is_waited_then_succeeds(serve, make_backend) -> None:
    server = serve([error_reply(429, "slow down", headers={"Retry-After": "0.4"}), chat_reply("ok")])
    backend = make_backend(server)
    completion = await backend.complete(ask())
    assert completion.text == "ok"
    first, second = server.requests
    # The backoff alone would wait at most 0.01 s: the gap proves Retry-After was honoured.
    assert second.at - first.at >= 0.38


async def test_retry_after_is_capped(serve, make_backend) -> None:
    server = serve([error_reply(503, "busy", headers={"Retry-After": "3600"}), chat_reply("ok")])
    backend = make_backend(server, retry_after_max=0.05)
    assert (await backend.complete(ask())).text == "ok"
    assert server.requests[1].at - server.requests[0].at < 5


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"Retry-After": "0.25"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "150", "Retry-After": "9"}) == 0.15
    assert (
        parse_retry_after({"Retry-After": format_datetime(now + timedelta(seconds=30), usegmt=True)}, now=now)
        == 30
    )
    assert (
        parse_retry_after({"Retry-After": format_datetime(now - timedelta(seconds=30), usegmt=True)}, now=now)
        == 0
    )
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


async def test_429_until_exhausted_is_rate_limited(serve, make_backend) -> None:
    server = serve([error_reply(429, "quota")] * 3)
    backend = make_backend(server, max_retries=2)
    with pytest.raises(RateLimited, match="429 after 3 attempts: quota") as caught:
        await backend.complete(ask())
    assert caught.value.status == 429
    assert len(server.requests) == 3


async def test_5xx_until_retries_are_exhausted_is_server_error(serve, make_backend) -> None:
    server = serve([error_reply(503, "overloaded")] * 4 + [chat_reply("never reached")])
    backend = make_backend(server, max_retries=3)
    with pytest.raises(ServerError, match="overloaded") as caught:
        await backend.complete(ask())
    assert caught.value.status == 503
    assert len(server.requests) == 4  # one try + three retries, then it stops


async def test_5xx_then_success(serve, make_backend) -> None:
    server = serve([error_reply(502, "bad gateway"), error_reply(500, "oops"), chat_reply("fine")])
    backend = make_backend(server)
    assert (await backend.complete(ask())).text == "fine"
    assert len(server.requests) == 3


async def test_read_timeout_is_retried_then_backend_timeout(serve, make_backend) -> None:
    server = serve([chat_reply("late", delay_s=0.6), chat_reply("late", delay_s=0.6)])
    backend = make_backend(server, read_timeout=0.15, max_retries=1)
    with pytest.raises(BackendTimeout, match="read timeout 0.15s"):
        await backend.complete(ask())
    assert len(server.requests) == 2


async def test_read_timeout_then_success(serve, make_backend) -> None:
    server = serve([chat_reply("late", delay_s=0.6), chat_reply("on time")])
    backend = make_backend(server, read_timeout=0.15)
    assert (await backend.complete(ask())).text == "on time"


async def test_connection_refused_is_transport_error(make_backend) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAICompatibleBackend(
        f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff_initial=0.001, backoff_max=0.01
    )
    try:
        with pytest.raises(TransportError, match="after 2 attempts") as caught:
            await backend.complete(ask())
        assert not isinstance(caught.value, BackendTimeout)
    finally:
        await backend.aclose()


async def test_401_is_authentication_error_without_retry(serve, make_backend) -> None:
    server = serve([error_reply(401, "invalid token"), chat_reply("never")])
    backend = make_backend(server, api_key="wrong")
    with pytest.raises(AuthenticationError, match="invalid token") as caught:
        await backend.complete(ask())
    assert caught.value.status == 401
    assert len(server.requests) == 1


async def test_403_is_authentication_error(serve, make_backend) -> None:
    server = serve([error_reply(403, "model not allowed for this project")])
    with pytest.raises(AuthenticationError):
        await make_backend(server).complete(ask())


@pytest.mark.parametrize("dialect", CONTEXT_LENGTH_DIALECTS)
async def test_context_length_overflow_in_each_server_dialect(serve, make_backend, dialect: str) -> None:
    server = serve([context_length_reply(dialect), chat_reply("never")])
    backend = make_backend(server)
    with pytest.raises(ContextLengthExceeded) as caught:
        await backend.complete(ask(SCHEMA))
    assert server_message(json.dumps(context_length_reply(dialect).body)) in str(caught.value)
    assert len(server.requests) == 1  # not retried, and not mistaken for a response_format refusal
    assert backend.structured_mode == "json_schema"


def test_context_overflow_detection_does_not_fire_on_other_errors() -> None:
    assert not is_context_overflow('{"error": {"message": "temperature must be at most 2"}}')
    assert not is_context_overflow(
        '{"error": {"message": "Invalid \'response_format\': json_schema unsupported"}}'
    )
    assert is_context_overflow("input exceeds context length")


# -- streaming --------------------------------------------------------------------------------------


async def test_streamed_answer_with_usage(serve, make_backend) -> None:
    server = serve([stream_reply(["The ", "answer ", "is 4."], usage=(21, 5))])
    backend = make_backend(server)
    items = [item async for item in backend.stream(ask())]
    deltas, final = items[:-1], items[-1]
    assert deltas == ["The ", "answer ", "is 4."]
    assert isinstance(final, Completion)
    assert final.text == "The answer is 4."
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (21, 5)
    assert final.finish_reason == "stop"
    assert final.ttft_s is not None and 0 < final.ttft_s <= final.latency_s
    body = server.requests[0].json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_stream_without_usage_estimates_it(serve, make_backend) -> None:
    server = serve([stream_reply(["Hello", " world"], usage=None)])
    backend = make_backend(server)
    final = [item async for item in backend.stream(ask())][-1]
    assert final.text == "Hello world"
    assert final.usage.completion_tokens == 2  # cl100k: "Hello", " world"
    assert final.usage.prompt_tokens > 0


async def test_stream_is_retried_before_the_first_delta(serve, make_backend) -> None:
    server = serve([error_reply(503, "warming up"), stream_reply(["ok"])])
    backend = make_backend(server)
    items = [item async for item in backend.stream(ask())]
    assert items[0] == "ok" and items[-1].text == "ok"
    assert len(server.requests) == 2


async def test_stream_stall_after_first_delta_is_not_retried(serve, make_backend) -> None:
    reply = stream_reply(["partial", " rest"])
    # The role chunk and the first delta arrive, then the server stalls past the read timeout.
    reply.stall_after, reply.stall_s = 2, 0.8
    server = serve([reply, stream_reply(["never"])])
    backend = make_backend(server, read_timeout=0.2)
    received: list[Any] = []
    with pytest.raises(BackendTimeout, match="stalled"):
        async for item in backend.stream(ask()):
            received.append(item)
    assert received == ["partial"]
    assert len(server.requests) == 1  # a retry would repeat text the caller already has


async def test_in_band_stream_error_is_typed(serve, make_backend) -> None:
    server = serve(
        [
            Reply(
                200,
                stream=[
                    {"error": {"message": "the request exceeds the available context size", "code": 400}}
                ],
            )
        ]
    )
    backend = make_backend(server)
    with pytest.raises(ContextLengthExceeded):
        async for _ in backend.stream(ask()):
            pass


# -- keys, model strings, loops, concurrency --------------------------------------------------------


async def test_api_key_never_appears_in_repr_errors_or_logs(serve, make_backend, caplog, monkeypatch) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    monkeypatch.setenv("MY_LLM_KEY", SECRET)
    server = serve(
        [
            error_reply(429, f"rate limit for key {SECRET}"),
            error_reply(401, f"Incorrect API key provided: {SECRET}"),
        ]
    )
    backend = make_backend(server, api_key_env="MY_LLM_KEY", max_retries=2)
    with pytest.raises(AuthenticationError) as caught:
        await backend.complete(ask())
    assert server.requests[0].headers["Authorization"] == f"Bearer {SECRET}"  # it was really used
    texts = [
        repr(backend),
        str(backend.__dict__),
        str(caught.value),
        repr(caught.value),
        caplog.text,
        "\n".join(str(record.args) for record in caplog.records),
    ]
    assert "Incorrect API key provided: ***" in str(caught.value)
    assert any("429" in record.getMessage() for record in caplog.records)  # the retry was logged...
    for text in texts:
        assert SECRET not in text  # ...without the key

    explicit = make_backend(server, api_key=SECRET)
    assert SECRET not in repr(explicit) and SECRET not in str(vars(explicit))


def test_openai_model_string() -> None:
    backend = backend_from_model_string("openai", "gpt-4o-mini")
    assert backend.base_url == OPENAI_BASE_URL
    assert backend.model == "gpt-4o-mini"
    assert backend.name == "openai:gpt-4o-mini"


async def test_openai_without_key_fails_before_any_request(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    seen: list[httpx.Request] = []
    backend = OpenAICompatibleBackend(
        OPENAI_BASE_URL,
        "gpt-4o-mini",
        api_key_env="OPENAI_API_KEY",
        api_key_required=True,
        transport=httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(200)),
    )
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        await backend.complete(ask())
    assert seen == []
    await backend.aclose()


def test_openai_compatible_model_string(monkeypatch) -> None:
    backend = backend_from_model_string("openai-compatible", "http://127.0.0.1:8080/v1#qwen2.5-7b")
    assert (backend.base_url, backend.model) == ("http://127.0.0.1:8080/v1", "qwen2.5-7b")
    assert backend.name == "openai-compatible:http://127.0.0.1:8080/v1#qwen2.5-7b"
    monkeypatch.delenv("CHAINKIT_API_KEY", raising=False)
    assert backend._headers() == {}  # optional key
    monkeypatch.setenv("CHAINKIT_API_KEY", "k-123")
    assert backend._headers() == {"Authorization": "Bearer k-123"}
    with_password = backend_from_model_string("openai-compatible", "http://user:pw@10.0.0.2:8000/v1#m")
    assert "pw" not in with_password.name


@pytest.mark.parametrize(
    ("prefix", "rest"),
    [
        ("openai", ""),
        ("openai", "gpt 4"),
        ("openai-compatible", "http://127.0.0.1:8080/v1"),  # no model
        ("openai-compatible", "http://127.0.0.1:8080/v1#"),
        ("openai-compatible", "127.0.0.1:8080/v1#m"),  # no scheme
        ("openai-compatible", "ftp://host/v1#m"),
    ],
)
def test_bad_model_strings_name_the_string_and_the_expected_form(prefix: str, rest: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        backend_from_model_string(prefix, rest)
    message = str(caught.value)
    assert repr(f"{prefix}:{rest}") in message
    assert "expected" in message


async def test_resolve_backend_builds_one_shared_backend(serve) -> None:
    server = serve([chat_reply("via model string")])
    model = f"openai-compatible:{server.base_url}#test-model"
    try:
        backend = resolve_backend(model)
        assert isinstance(backend, OpenAICompatibleBackend)
        assert resolve_backend(model) is backend
        assert (await backend.complete(ask())).text == "via model string"
    finally:
        await close_backends()


def test_one_client_per_event_loop_and_aclose(serve) -> None:
    server = serve([chat_reply("loop one"), chat_reply("loop two"), chat_reply("loop three")])
    backend = OpenAICompatibleBackend(server.base_url, "test-model")

    async def call() -> tuple[str, int]:
        completion = await backend.complete(ask())
        return completion.text, id(backend._client())

    # Two event loops used in turn (pytest's per-test loops, the sync facade next to asyncio.run):
    # each gets a pool of its own instead of reusing one bound to the other loop.
    with asyncio.Runner() as first, asyncio.Runner() as second:
        text_one, client_one = first.run(call())
        text_two, client_two = second.run(call())
        assert (text_one, text_two) == ("loop one", "loop two")
        assert client_one != client_two
        assert len(backend._clients) == 2

        second.run(backend.aclose())  # closes the second loop's pool; the first loop's stays for it to close
        assert len(backend._clients) == 1
        first.run(backend.aclose())
        first.run(backend.aclose())  # safe twice
        assert len(backend._clients) == 0

    # A loop that has ended leaves a pool that cannot be used any more: it is dropped, not reused.
    with asyncio.Runner() as third:
        third.run(backend.aclose())
        ended = asyncio.new_event_loop()
        ended.close()
        backend._clients[ended] = httpx.AsyncClient()  # stands in for the pool of a loop that has ended
        text_three, _ = third.run(call())
        assert text_three == "loop three"
        assert ended not in backend._clients and len(backend._clients) == 1
        third.run(backend.aclose())


async def test_concurrency_is_limited_to_max_in_flight(serve, make_backend) -> None:
    server = serve(lambda request: chat_reply("ok", delay_s=0.15))
    backend = make_backend(server, max_in_flight=2)
    assert backend.capabilities.max_in_flight == 2

    # Raw calls are capped by the connection pool...
    await asyncio.gather(*(backend.complete(ask()) for _ in range(6)))
    assert server.max_concurrent == 2

    # ...and callers that take `backend.limit` (as tools do) queue on it.
    server.max_concurrent = 0

    async def limited() -> None:
        async with backend.limit:
            await backend.complete(ask())

    await asyncio.gather(*(limited() for _ in range(6)))
    assert server.max_concurrent == 2
    assert len(server.requests) == 12


def test_bad_configuration_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="not an http"):
        OpenAICompatibleBackend("localhost:8080", "m")
    with pytest.raises(DefinitionError, match="structured"):
        OpenAICompatibleBackend("http://localhost:8080/v1", "m", structured="grammar")  # type: ignore[arg-type]
