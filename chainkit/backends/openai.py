"""The OpenAI-compatible chat-completions backend: OpenAI, vLLM, Ollama, llama.cpp server, LM Studio.

All of these speak `POST {base}/chat/completions` with the same JSON and the same SSE stream, but they
differ in what they accept for structured output and in how they word their errors. This module:

- sends the answer's JSON Schema as `response_format` `json_schema` and, when a server refuses it,
  steps down to `json_object` and then to prompt-only, remembering the step for this backend so later
  calls go straight to what works;
- retries connection errors, timeouts, 408, 429 and 5xx with tenacity (exponential backoff with jitter,
  or the server's `Retry-After`), then raises a typed `BackendError`; a stream is only retried before
  its first text delta has been handed out;
- maps 401/403, 400 and context-length overflows (OpenAI, vLLM, llama.cpp server, Ollama wording) to
  typed errors carrying the server's message;
- keeps the API key out of reprs, logs and error messages (server messages are scrubbed of it too).

One `httpx.AsyncClient` (one connection pool) is kept per event loop: a backend is shared process-wide
and outlives short-lived loops (the sync facade, pytest's per-test loops), and an httpx pool must not be
used from a loop other than the one it was created on.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import os
import re
import time
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
import tenacity

from chainkit.backends.base import Backend, Capabilities, Completion, CompletionRequest, Usage
from chainkit.errors import (
    AuthenticationError,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    ContextLengthExceeded,
    DefinitionError,
    RateLimited,
    ServerError,
    TransportError,
)

log = logging.getLogger("chainkit.backends.openai")

OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
COMPATIBLE_KEY_ENV = "CHAINKIT_API_KEY"

StructuredMode = Literal["auto", "json_schema", "json_object", "prompt"]
# From strongest to weakest; "auto" starts at the top and steps down on refusal.
_STRUCTURED_LADDER = ("json_schema", "json_object", "prompt")

# How each server words a context overflow (matched case-insensitively against the raw error body):
#   OpenAI     code "context_length_exceeded", "This model's maximum context length is ..."
#   vLLM       "This model's maximum context length is N tokens. However, you requested ..."
#   llama.cpp  "the request exceeds the available context size", type "exceed_context_size_error"
#   Ollama     "the input length exceeds the context length" (older: "input exceeds context length")
_CONTEXT_OVERFLOW = re.compile(
    r"context_length_exceeded|exceed_context_size|maximum context length"
    r"|exceeds? (?:the )?(?:available |maximum |model'?s? )?context (?:size|length|window)",
    re.IGNORECASE,
)
# A 400 that names one of these is the server refusing our `response_format`, not the request.
_STRUCTURED_REFUSAL = re.compile(r"response_format|json_schema|json_object|structured output", re.IGNORECASE)


class _Secret:
    """Holds the API key; prints as a placeholder so it cannot leak through repr, str or vars()."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


class _RetryableStatus(Exception):
    """An HTTP status worth retrying (408, 429, 5xx); mapped to a typed error once retries run out."""

    def __init__(self, status: int, message: str, retry_after: float | None) -> None:
        self.status = status
        self.message = message
        self.retry_after = retry_after
        super().__init__(f"HTTP {status}: {message}")


class _StructuredRefused(Exception):
    """The server does not accept the `response_format` we sent."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"HTTP {status}: {message}")


def parse_retry_after(headers: httpx.Headers | dict[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or an HTTP date)."""
    headers = httpx.Headers(headers)
    millis = headers.get("retry-after-ms")
    if millis:
        with contextlib.suppress(ValueError):
            return max(0.0, float(millis) / 1000.0)
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def server_message(body: str) -> str:
    """The human-readable error message from an error body in any of the servers' shapes."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:1000] or "(empty response body)"
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, str):
            return error
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                value = error.get(key)
                if isinstance(value, str) and value:
                    return value
                if value:  # FastAPI-style validation details are lists of dicts
                    return json.dumps(value)[:1000]
    return body.strip()[:1000]


def is_context_overflow(body: str) -> bool:
    return bool(_CONTEXT_OVERFLOW.search(body))


class _RetryWait(tenacity.wait.wait_base):
    """The server's Retry-After when it sent one (capped), else exponential backoff with full jitter."""

    def __init__(self, initial: float, maximum: float, retry_after_max: float) -> None:
        self._backoff = tenacity.wait_random_exponential(multiplier=initial, max=maximum)
        self._retry_after_max = retry_after_max

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, _RetryableStatus) and error.retry_after is not None:
            return min(error.retry_after, self._retry_after_max)
        return self._backoff(retry_state)


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, _RetryableStatus):
        return True
    # A bad URL scheme will not fix itself; every other transport failure might.
    return isinstance(error, httpx.TransportError) and not isinstance(error, httpx.UnsupportedProtocol)


class OpenAICompatibleBackend(Backend):
    """Chat completions over HTTP against any OpenAI-compatible server.

    The API key is taken from `api_key`, else from the environment variable named by `api_key_env`
    (read at each request, so a rotated key is picked up). It is never printed.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        api_key: str | None = None,
        api_key_required: bool = False,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        max_retries: int = 4,
        backoff_initial: float = 0.5,
        backoff_max: float = 20.0,
        retry_after_max: float = 60.0,
        max_in_flight: int = 16,
        structured: StructuredMode = "auto",
        context_window: int | None = None,
        price_per_million: tuple[float, float] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        extra_headers: dict[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DefinitionError(
                f"OpenAI-compatible base URL {_without_userinfo(base_url)!r} is not an http(s) URL "
                "with a host; expected e.g. 'http://127.0.0.1:8080/v1'"
            )
        if not model:
            raise DefinitionError(
                f"OpenAI-compatible backend at {_without_userinfo(base_url)!r} needs a model name"
            )
        if structured not in ("auto", *_STRUCTURED_LADDER):
            raise DefinitionError(
                f"structured={structured!r} is not one of 'auto', 'json_schema', 'json_object', 'prompt'"
            )
        if max_retries < 0 or max_in_flight < 1 or connect_timeout <= 0 or read_timeout <= 0:
            raise DefinitionError(
                "OpenAI-compatible backend: max_retries must be >= 0, max_in_flight >= 1 and timeouts > 0"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = name or f"openai-compatible:{_without_userinfo(self.base_url)}#{model}"
        self._key = _Secret(api_key) if api_key else None
        self._api_key_env = api_key_env
        self._api_key_required = api_key_required
        self._timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=None
        )  # pool=None: waiting for a free connection is queueing (max_in_flight), not a failure
        self._max_retries = max_retries
        self._wait = _RetryWait(backoff_initial, backoff_max, retry_after_max)
        self._max_in_flight = max_in_flight
        self._price = price_per_million
        self._structured_fixed = structured != "auto"
        self._mode: str = "json_schema" if structured == "auto" else structured
        self._context_window = context_window
        self._transport = transport
        self._extra_headers = dict(extra_headers or {})
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    # -- configuration ------------------------------------------------------------------------------

    @property
    def structured_mode(self) -> str:
        """What structured output this backend currently sends: json_schema, json_object or prompt."""
        return self._mode

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            json_schema=self._mode == "json_schema",
            streaming=True,
            logprobs=True,
            context_window=self._context_window,
            tokenizer=None,  # the tool layer falls back to cl100k_base
            max_in_flight=self._max_in_flight,
            price_per_million=self._price,
        )

    def _api_key(self) -> str | None:
        if self._key is not None:
            return self._key.reveal()
        if self._api_key_env:
            return os.environ.get(self._api_key_env) or None
        return None

    def _redact(self, text: str) -> str:
        """Remove the API key from text that came from elsewhere (servers echo keys in 401 bodies)."""
        key = self._api_key()
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    def _headers(self) -> dict[str, str]:
        headers = dict(self._extra_headers)
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif self._api_key_required:
            raise AuthenticationError(
                f"no API key: set the environment variable {self._api_key_env}", backend=self.name
            )
        return headers

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            # Forget pools of loops that have ended: their connections hold the loop alive otherwise, and
            # they cannot be closed cleanly any more (the garbage collector closes their sockets).
            for ended in [other for other in self._clients if other.is_closed()]:
                del self._clients[ended]
            client = httpx.AsyncClient(
                base_url=self.base_url + "/",
                timeout=self._timeout,
                limits=httpx.Limits(
                    max_connections=self._max_in_flight, max_keepalive_connections=self._max_in_flight
                ),
                transport=self._transport,
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the connection pools: this loop's, and those of loops running in other threads.

        A pool belongs to its loop's sockets. The pool of a loop that has been closed is dropped (the
        garbage collector closes its sockets); the pool of a loop that is open but not running right now
        is kept, so that calling `aclose()` from that loop later still closes it cleanly.
        """
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, client in list(self._clients.items()):
            if loop is current:
                del self._clients[loop]
                await client.aclose()
            elif loop.is_closed():
                del self._clients[loop]
            elif loop.is_running():
                del self._clients[loop]
                future = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
                with contextlib.suppress(Exception):
                    await asyncio.wrap_future(future)

    # -- requests -----------------------------------------------------------------------------------

    def _payload(self, request: CompletionRequest, mode: str | None, *, stream: bool) -> dict[str, Any]:
        messages = request.messages
        if mode in ("json_object", "prompt") and request.json_schema is not None:
            messages = _with_schema_instruction(messages, request.json_schema)
        payload: dict[str, Any] = {"model": self.model, "messages": messages}
        settings = request.settings
        if settings.max_tokens is not None:
            # `max_tokens` rather than `max_completion_tokens`: every compatible server accepts it.
            payload["max_tokens"] = settings.max_tokens
        if request.top_logprobs:
            payload["logprobs"] = True
            payload["top_logprobs"] = request.top_logprobs
        if mode == "json_schema":
            payload["response_format"] = {
                "type": "json_schema",
                # strict=False: strict mode rejects common pydantic schemas (optional fields, defaults).
                "json_schema": {
                    "name": _schema_name(request.schema_name),
                    "schema": request.json_schema,
                    "strict": False,
                },
            }
        elif mode == "json_object":
            payload["response_format"] = {"type": "json_object"}
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        return settings.apply_to(payload)

    def _mode_for(self, request: CompletionRequest) -> str | None:
        return self._mode if request.json_schema is not None else None

    def _step_down(self, refused_mode: str, refusal: _StructuredRefused) -> None:
        """Remember that the server refused `refused_mode`; the next call uses the next weaker mode."""
        if self._structured_fixed:
            raise BadRequest(
                f"the server refused response_format {refused_mode!r} (structured={refused_mode!r} was "
                f"configured, so there is no fallback): {self._redact(refusal.message)}",
                backend=self.name,
                status=refusal.status,
            )
        if self._mode == refused_mode:  # concurrent refusals step down once
            self._mode = _STRUCTURED_LADDER[_STRUCTURED_LADDER.index(refused_mode) + 1]
            log.warning(
                "%s refused response_format %s (HTTP %s); using %s from now on",
                self.name,
                refused_mode,
                refusal.status,
                self._mode,
            )

    def _failure(self, status: int, headers: httpx.Headers, body: str, sent_format: bool) -> Exception:
        """The exception for an HTTP error status (a retryable marker or a final typed error)."""
        message = self._redact(server_message(body))
        raw = self._redact(body)
        if status in (400, 413, 422, 500) and is_context_overflow(raw):
            # Checked before retries: Ollama reports overflows as 500, and no retry will make it fit.
            return ContextLengthExceeded(
                f"the prompt does not fit the model's context window: {message}",
                backend=self.name,
                status=status,
            )
        if sent_format and (status in (422, 501) or (status == 400 and _STRUCTURED_REFUSAL.search(raw))):
            return _StructuredRefused(status, message)
        if status in (401, 403):
            return AuthenticationError(f"HTTP {status}: {message}", backend=self.name, status=status)
        if status == 404:
            return BackendUnavailable(
                f"HTTP 404 (wrong base URL or unknown model {self.model!r}?): {message}",
                backend=self.name,
                status=status,
            )
        if status in (408, 429) or (status >= 500 and status != 501):
            return _RetryableStatus(status, message, parse_retry_after(headers))
        if status >= 500:
            return ServerError(f"HTTP {status}: {message}", backend=self.name, status=status)
        return BadRequest(f"HTTP {status}: {message}", backend=self.name, status=status)

    def _retrying(self) -> tenacity.AsyncRetrying:
        return tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(_is_retryable),
            stop=tenacity.stop_after_attempt(self._max_retries + 1),
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        sleep = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning(
            "%s: %s; retry %d of %d in %.2fs",
            self.name,
            self._describe(error),
            retry_state.attempt_number,
            self._max_retries,
            sleep,
        )

    def _describe(self, error: BaseException | None) -> str:
        if isinstance(error, _RetryableStatus):
            return str(error)
        if error is None:
            return "unknown error"
        return self._redact(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)

    def _final_error(self, error: BaseException, retrying: tenacity.AsyncRetrying | None) -> BackendError:
        """The typed error for a failure that exhausted its retries (or was not worth retrying)."""
        attempts = retrying.statistics.get("attempt_number", 1) if retrying is not None else 1
        if isinstance(error, _RetryableStatus):
            what = f"HTTP {error.status} after {attempts} attempts: {error.message}"
            if error.status == 429:
                return RateLimited(what, backend=self.name, status=429)
            if error.status == 408:
                return BackendTimeout(what, backend=self.name, status=408)
            return ServerError(what, backend=self.name, status=error.status)
        if isinstance(error, httpx.TimeoutException):
            return BackendTimeout(
                f"{type(error).__name__} after {attempts} attempts (connect timeout "
                f"{self._timeout.connect}s, read timeout {self._timeout.read}s)",
                backend=self.name,
            )
        return TransportError(f"{self._describe(error)} after {attempts} attempts", backend=self.name)

    async def _post_json(self, payload: dict[str, Any]) -> dict[str, Any]:
        client = self._client()
        headers = self._headers()
        retrying = self._retrying()
        try:
            async for attempt in retrying:
                with attempt:
                    response = await client.post("chat/completions", json=payload, headers=headers)
                    if response.status_code >= 400:
                        raise self._failure(
                            response.status_code,
                            response.headers,
                            response.text,
                            "response_format" in payload,
                        )
                    try:
                        data = response.json()
                    except ValueError:
                        raise ServerError(
                            f"HTTP {response.status_code} with a body that is not JSON: "
                            f"{self._redact(response.text[:200])!r}",
                            backend=self.name,
                            status=response.status_code,
                        ) from None
                    return data
        except (_RetryableStatus, httpx.TransportError) as error:
            raise self._final_error(error, retrying) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def complete(self, request: CompletionRequest) -> Completion:
        started = time.perf_counter()
        while True:
            mode = self._mode_for(request)
            try:
                data = await self._post_json(self._payload(request, mode, stream=False))
            except _StructuredRefused as refusal:
                assert mode is not None
                self._step_down(mode, refusal)
                continue
            break
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise ServerError(
                f"the response has no choices: {self._redact(json.dumps(data)[:200])}",
                backend=self.name,
                status=200,
            )
        choice = choices[0]
        message = choice.get("message") or {}
        return Completion(
            text=message.get("content") or "",
            usage=_usage(data.get("usage")),
            model=data.get("model") or self.model,
            finish_reason=choice.get("finish_reason"),
            latency_s=time.perf_counter() - started,
            constrained=mode == "json_schema",
            logprobs=_logprobs(choice.get("logprobs")) if request.top_logprobs else None,
        )

    # -- streaming ----------------------------------------------------------------------------------

    async def _open_stream(
        self, payload: dict[str, Any]
    ) -> tuple[httpx.Response, AsyncIterator[dict[str, Any]], list[dict[str, Any]]]:
        """Send the request and read up to the first text delta, with retries.

        Returns the open response, the rest of its chunks, and the chunks already read. Nothing has been
        handed to the caller yet, so every failure up to here can still be retried.
        """
        client = self._client()
        headers = self._headers()
        sent_format = "response_format" in payload
        retrying = self._retrying()
        try:
            async for attempt in retrying:
                with attempt:
                    response = await client.send(
                        client.build_request("POST", "chat/completions", json=payload, headers=headers),
                        stream=True,
                    )
                    try:
                        if response.status_code >= 400:
                            body = (await response.aread()).decode("utf-8", "replace")
                            raise self._failure(response.status_code, response.headers, body, sent_format)
                        chunks = self._chunks(response, sent_format)
                        read: list[dict[str, Any]] = []
                        async for chunk in chunks:
                            read.append(chunk)
                            if _delta_text(chunk):
                                break
                    except BaseException:
                        await response.aclose()
                        raise
                    return response, chunks, read
        except (_RetryableStatus, httpx.TransportError) as error:
            raise self._final_error(error, retrying) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _chunks(self, response: httpx.Response, sent_format: bool) -> AsyncIterator[dict[str, Any]]:
        """The JSON chunks of an SSE body, up to `data: [DONE]`; an in-band error chunk raises."""
        data: list[str] = []

        def event() -> str:
            joined = "\n".join(data)
            data.clear()
            return joined

        async def events() -> AsyncIterator[str]:
            async for line in response.aiter_lines():
                if not line:
                    if data:
                        yield event()
                elif not line.startswith(":"):  # ":..." lines are keep-alive comments
                    field, _, value = line.partition(":")
                    if field == "data":
                        data.append(value[1:] if value.startswith(" ") else value)
            if data:
                yield event()

        async for text in events():
            if text.strip() == "[DONE]":
                return
            try:
                chunk = json.loads(text)
            except ValueError:
                raise ServerError(
                    f"malformed stream chunk: {self._redact(text[:200])!r}", backend=self.name, status=200
                ) from None
            if isinstance(chunk, dict) and chunk.get("error"):
                # vLLM and llama.cpp report failures inside a 200 stream.
                error = chunk["error"]
                code = error.get("code") if isinstance(error, dict) else None
                status = code if isinstance(code, int) and 400 <= code < 600 else 500
                raise self._failure(status, httpx.Headers(), json.dumps(chunk), sent_format)
            if isinstance(chunk, dict):
                yield chunk

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | Completion]:
        started = time.perf_counter()
        while True:
            mode = self._mode_for(request)
            payload = self._payload(request, mode, stream=True)
            try:
                response, chunks, read = await self._open_stream(payload)
            except _StructuredRefused as refusal:
                assert mode is not None
                self._step_down(mode, refusal)
                continue
            break

        parts: list[str] = []
        usage: Usage | None = None
        finish_reason: str | None = None
        model = self.model
        logprobs: list[dict[str, Any]] = []
        ttft: float | None = None

        async def all_chunks() -> AsyncIterator[dict[str, Any]]:
            for chunk in read:
                yield chunk
            async for chunk in chunks:
                yield chunk

        try:
            async for chunk in all_chunks():
                model = chunk.get("model") or model
                if chunk.get("usage"):
                    usage = _usage(chunk["usage"])
                choices = chunk.get("choices") or []
                if choices and isinstance(choices[0], dict):
                    choice = choices[0]
                    finish_reason = choice.get("finish_reason") or finish_reason
                    if request.top_logprobs:
                        logprobs.extend(_logprobs(choice.get("logprobs")) or [])
                text = _delta_text(chunk)
                if text:
                    if ttft is None:
                        ttft = time.perf_counter() - started
                    parts.append(text)
                    yield text
        except httpx.TimeoutException:
            # After the first delta a retry would repeat text the caller already has: fail instead.
            raise BackendTimeout(
                f"the stream stalled for more than {self._timeout.read}s (read timeout)", backend=self.name
            ) from None
        except httpx.TransportError as error:
            raise TransportError(f"the stream broke: {self._describe(error)}", backend=self.name) from None
        except _RetryableStatus as error:
            # An in-band error after the first delta: too late to retry.
            raise self._final_error(error, None) from None
        finally:
            await response.aclose()

        text = "".join(parts)
        if usage is None:
            # The server sent no usage (it ignored stream_options.include_usage): estimate it with
            # cl100k_base, which is what the tool layer counts with for servers without a tokenizer.
            usage = _estimated_usage(payload["messages"], text)
        yield Completion(
            text=text,
            usage=usage,
            model=model,
            finish_reason=finish_reason,
            latency_s=time.perf_counter() - started,
            constrained=mode == "json_schema",
            logprobs=logprobs if request.top_logprobs else None,
            ttft_s=ttft,
        )

    def __repr__(self) -> str:
        return f"<OpenAICompatibleBackend {self.name} structured={self._mode}>"


def _delta_text(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""
    delta = choices[0].get("delta") or {}
    content = delta.get("content")
    return content if isinstance(content, str) else ""


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    details = raw.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int((details.get("cached_tokens") if isinstance(details, dict) else 0) or 0),
    )


def _estimated_usage(messages: list[dict[str, Any]], text: str) -> Usage:
    from chainkit.tokens import count_messages, count_tokens  # leaf module; loaded only when needed

    return Usage(prompt_tokens=count_messages(messages), completion_tokens=count_tokens(text))


def _logprobs(raw: Any) -> list[dict[str, Any]] | None:
    """OpenAI's `logprobs.content` as [{"token", "logprob", "top": [(token, logprob), ...]}, ...]."""
    if not isinstance(raw, dict) or not isinstance(raw.get("content"), list):
        return None
    tokens = []
    for item in raw["content"]:
        if not isinstance(item, dict):
            continue
        tokens.append(
            {
                "token": item.get("token", ""),
                "logprob": float(item.get("logprob", 0.0)),
                "top": [
                    (top.get("token", ""), float(top.get("logprob", 0.0)))
                    for top in item.get("top_logprobs") or []
                    if isinstance(top, dict)
                ],
            }
        )
    return tokens


def _schema_name(name: str) -> str:
    # OpenAI allows [a-zA-Z0-9_-]{1,64} here.
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", name or "output")[:64]
    return cleaned or "output"


def _with_schema_instruction(messages: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Add a JSON instruction when the prompt has none (json_object and prompt-only modes).

    The tool layer writes its own instruction when the backend reports no json_schema support; this
    covers the call during which the server refused json_schema (that prompt was written for
    constrained decoding) and OpenAI's rule that json_object prompts must mention JSON.
    """
    if any("json" in str(message.get("content") or "").lower() for message in messages):
        return messages
    instruction = (
        "Answer with one JSON object only, no other text. It must match this JSON Schema:\n"
        + json.dumps(schema, separators=(",", ":"))
    )
    # Into the leading system message: several chat templates accept only one, and only first.
    if messages and messages[0].get("role") == "system":
        first = messages[0]
        return [{**first, "content": f"{first.get('content') or ''}\n\n{instruction}"}, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


def _without_userinfo(url: str) -> str:
    """The URL without `user:password@`, for names and messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def backend_from_model_string(prefix: str, rest: str) -> OpenAICompatibleBackend:
    """Build the backend for `openai:<model>` or `openai-compatible:<base URL>#<model>`."""
    if prefix == "openai":
        if not rest or any(ch.isspace() for ch in rest) or "#" in rest or "/" in rest:
            raise DefinitionError(
                f"model string {prefix + ':' + rest!r} is not valid: expected 'openai:<model>', "
                "e.g. 'openai:gpt-4o-mini'"
            )
        return OpenAICompatibleBackend(
            OPENAI_BASE_URL, rest, api_key_env=OPENAI_KEY_ENV, api_key_required=True, name=f"openai:{rest}"
        )
    if prefix == "openai-compatible":
        base_url, sep, model = rest.partition("#")
        parts = urlsplit(base_url)
        if not sep or not model.strip() or parts.scheme not in ("http", "https") or not parts.hostname:
            raise DefinitionError(
                f"model string {prefix + ':' + _without_userinfo(rest)!r} is not valid: expected "
                "'openai-compatible:<http(s) base URL>#<model>', e.g. "
                "'openai-compatible:http://127.0.0.1:8080/v1#qwen2.5-7b-instruct'"
            )
        return OpenAICompatibleBackend(
            base_url,
            model.strip(),
            api_key_env=COMPATIBLE_KEY_ENV,
            name=f"openai-compatible:{_without_userinfo(base_url.rstrip('/'))}#{model.strip()}",
        )
    raise DefinitionError(
        f"model string prefix {prefix!r} is not an OpenAI backend ('openai' or 'openai-compatible')"
    )


__all__ = [
    "OPENAI_BASE_URL",
    "OpenAICompatibleBackend",
    "StructuredMode",
    "backend_from_model_string",
    "is_context_overflow",
    "parse_retry_after",
    "server_message",
]
