"""A scripted OpenAI-compatible HTTP server for tests: real sockets on 127.0.0.1, a random port, a
background thread.

Each request to `POST /v1/chat/completions` takes the next `Reply` from the script (or asks a
function of the request for one). A reply sets the status, headers (e.g. Retry-After), a JSON or text
body, or an SSE stream of chunks, plus delays before the headers (to trigger read timeouts) and
between stream chunks. Every request is recorded with its headers, JSON body and arrival time, and
the server tracks how many requests it served at once.

    with ScriptedServer([reply_429(retry_after="0.2"), chat_reply("hi")]) as server:
        backend = OpenAICompatibleBackend(server.base_url, "test-model")
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str -> sent as is
    headers: dict[str, str] = field(default_factory=dict)
    stream: list[Any] | None = None  # SSE: dict -> `data: <json>`, str -> `data: <str>`
    delay_s: float = 0.0  # before the status line: longer than the client's read timeout -> timeout
    chunk_delay_s: float = 0.0  # between SSE chunks
    stall_after: int | None = None  # after this many SSE chunks, pause `stall_s` (a stream that stalls)
    stall_s: float = 0.0


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    at: float  # time.monotonic() on arrival


Script = list[Reply] | Callable[[RecordedRequest], Reply]


class ScriptedServer:
    def __init__(self, script: Script | None = None) -> None:
        self.script: Script = script if script is not None else []
        self.requests: list[RecordedRequest] = []
        self.max_concurrent = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._httpd = _QuietHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            self._in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self._in_flight)
            if callable(self.script):
                script = self.script
            elif self.script:
                return self.script.pop(0)
            else:
                return Reply(599, {"error": {"message": "test server: script exhausted"}})
        return script(request)

    def done(self) -> None:
        with self._lock:
            self._in_flight -= 1


class _QuietHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (read timeouts, pools closed at the end of a test) is expected here;
        # anything else is still reported.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ValueError, OSError)):
            super().handle_error(request, client_address)


def _handler_for(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, chunked streams: what real servers do

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            request = RecordedRequest("POST", self.path, dict(self.headers.items()), body, time.monotonic())
            try:
                reply = server.next_reply(request)
                try:
                    self._send(reply)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (e.g. its read timeout)
            finally:
                server.done()

        def _send(self, reply: Reply) -> None:
            if reply.delay_s:
                time.sleep(reply.delay_s)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.stream is not None:
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for index, item in enumerate(reply.stream):
                    if reply.chunk_delay_s:
                        time.sleep(reply.chunk_delay_s)
                    if index == reply.stall_after:
                        time.sleep(reply.stall_s)
                    data = item if isinstance(item, str) else json.dumps(item)
                    self._write_chunk(f"data: {data}\n\n".encode())
                self._write_chunk(b"")  # the terminating zero-length chunk
                self.wfile.flush()
                return
            if isinstance(reply.body, str):
                payload, kind = reply.body.encode(), "text/plain"
            else:
                payload, kind = json.dumps(reply.body).encode(), "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


# -- replies in the servers' own shapes -------------------------------------------------------------


def chat_reply(
    content: str | dict[str, Any],
    *,
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
    cached_tokens: int | None = None,
    finish_reason: str = "stop",
    logprobs: list[dict[str, Any]] | None = None,
    model: str = "test-model",
    delay_s: float = 0.0,
) -> Reply:
    text = content if isinstance(content, str) else json.dumps(content)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": finish_reason,
    }
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [choice],
        "usage": usage,
    }
    return Reply(200, body, delay_s=delay_s)


def stream_reply(
    deltas: list[str],
    *,
    usage: tuple[int, int] | None = (9, 3),
    finish_reason: str = "stop",
    chunk_delay_s: float = 0.0,
    model: str = "test-model",
) -> Reply:
    """An SSE answer: a role chunk, one chunk per delta, a finish chunk, a usage chunk, [DONE]."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    items: list[Any] = [chunk({"role": "assistant", "content": ""})]
    items += [chunk({"content": text}) for text in deltas]
    items.append(chunk({}, finish_reason))
    if usage is not None:
        items.append(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": usage[0],
                    "completion_tokens": usage[1],
                    "total_tokens": sum(usage),
                },
            }
        )
    items.append("[DONE]")
    return Reply(200, stream=items, chunk_delay_s=chunk_delay_s)


def error_reply(
    status: int, message: str, *, headers: dict[str, str] | None = None, code: Any = None
) -> Reply:
    """An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return Reply(status, body, headers=dict(headers or {}))


def context_length_reply(dialect: str) -> Reply:
    """A context-window overflow as each server reports it."""
    if dialect == "openai":
        return Reply(
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 128000 tokens. However, your messages "
                    "resulted in 130012 tokens. Please reduce the length of the messages.",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "context_length_exceeded",
                }
            },
        )
    if dialect == "vllm":
        return Reply(
            400,
            {
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens. However, you requested 5120 "
                "tokens (4608 in the messages, 512 in the completion). Please reduce the length of the "
                "messages or completion.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
        )
    if dialect == "llamacpp":
        return Reply(
            400,
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 4476,
                    "n_ctx": 4096,
                }
            },
        )
    if dialect == "ollama":
        # Ollama's OpenAI layer wraps runner errors as {"error": {"message", "type": "api_error"}}, with 500.
        return Reply(
            500,
            {
                "error": {
                    "message": "the input length exceeds the context length",
                    "type": "api_error",
                    "param": None,
                    "code": None,
                }
            },
        )
    raise ValueError(f"unknown dialect {dialect!r}")


CONTEXT_LENGTH_DIALECTS = ("openai", "vllm", "llamacpp", "ollama")
