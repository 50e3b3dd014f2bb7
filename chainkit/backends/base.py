"""The backend protocol: what every model backend implements, and the request/response types.

A backend turns a `CompletionRequest` (chat messages, settings, an optional JSON Schema for the
answer) into a `Completion`. It knows nothing of tools, memories or graphs.

Streaming yields `str` text deltas and finishes with exactly one `Completion` (full text and usage),
so a consumer that only wants the final answer can keep the last item.
"""

from __future__ import annotations

import abc
import asyncio
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]  # {"role": "system" | "user" | "assistant", "content": str}


@dataclass(slots=True)
class ModelSettings:
    """Sampling settings. `None` means the backend's default."""

    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    top_p: float | None = None
    # OpenAI-style penalties against repetition (llama.cpp, vLLM and Ollama accept them too).
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    # Server-specific body fields passed through as they are, e.g. {"repeat_penalty": 1.1} for
    # llama.cpp or {"min_p": 0.05} for vLLM. Keys chainkit sets itself are not overridden.
    extra: dict[str, Any] | None = None

    def merged(self, override: ModelSettings | None) -> ModelSettings:
        if override is None:
            return self
        return ModelSettings(
            **{
                name: getattr(override, name) if getattr(override, name) is not None else getattr(self, name)
                for name in SETTING_NAMES
            }
        )

    def apply_to(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Add the sampling fields that are set to an OpenAI-style request body."""
        for name in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"):
            value = getattr(self, name)
            if value is not None:
                payload[name] = value
        if self.stop:
            payload["stop"] = list(self.stop)
        for key, value in (self.extra or {}).items():
            payload.setdefault(key, value)
        return payload


SETTING_NAMES = (
    "temperature", "max_tokens", "stop", "seed", "top_p", "frequency_penalty", "presence_penalty", "extra"
)


@dataclass(slots=True)
class CompletionRequest:
    messages: list[Message]
    settings: ModelSettings = field(default_factory=ModelSettings)
    # JSON Schema the answer must match; a backend with constrained decoding enforces it.
    json_schema: dict[str, Any] | None = None
    schema_name: str = "output"
    # Return this many top log-probs per generated token (backends with `logprobs` capability).
    top_logprobs: int | None = None
    # Who asks (for traces and fake-backend scripts); never sent to a server.
    tool: str | None = None


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def cost(self, price_per_million: tuple[float, float] | None) -> float | None:
        """US dollars for these tokens at (prompt, completion) prices per million; None if unknown."""
        if price_per_million is None:
            return None
        prompt, completion = price_per_million
        return (self.prompt_tokens * prompt + self.completion_tokens * completion) / 1e6

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
        )


@dataclass(slots=True)
class Completion:
    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str | None = None
    latency_s: float = 0.0
    # True when the backend enforced `json_schema` (the answer should parse and validate).
    constrained: bool = False
    # Per generated token: {"token": str, "logprob": float, "top": [(token, logprob), ...]}.
    logprobs: list[dict[str, Any]] | None = None
    # Time to first token, where the backend streamed or measured it.
    ttft_s: float | None = None


@dataclass(slots=True)
class Capabilities:
    json_schema: bool = False
    streaming: bool = True
    logprobs: bool = False
    context_window: int | None = None
    # Counts tokens the way this backend's model does; None means "use cl100k_base".
    tokenizer: Callable[[str], int] | None = None
    # How many requests this backend serves at once; callers queue beyond it.
    max_in_flight: int = 16
    # (prompt, completion) US dollars per million tokens; None when unknown. Traces and ToolResult
    # report the cost of each call where it is known.
    price_per_million: tuple[float, float] | None = None


class _RequestGate:
    """Process-wide switch that test suites flip to forbid requests to real backends."""

    allowed: bool = True


request_gate = _RequestGate()


class Backend(abc.ABC):
    """A model backend. Subclasses implement `complete` and `stream`.

    `limit` is the per-backend concurrency limit: tools acquire it around each request so that at
    most `capabilities.max_in_flight` requests are in flight on this backend at once.
    """

    #: Identifies the backend and model in traces, e.g. "openai:gpt-4o-mini".
    name: str = "backend"
    #: False for test doubles. `chainkit.testing.block_model_requests()` refuses calls to real backends.
    is_real: bool = True

    def __init__(self) -> None:
        # One semaphore per event loop: asyncio primitives are bound to the loop that first waits on
        # them, and a shared backend may outlive a loop (tests, the sync facade).
        self._limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    def limit(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        semaphore = self._limits.get(loop)
        if semaphore is None:
            semaphore = self._limits[loop] = asyncio.Semaphore(max(1, self.capabilities.max_in_flight))
        return semaphore

    @abc.abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion: ...

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | Completion]:
        """Default: one delta with the whole answer, then the completion."""
        completion = await self.complete(request)
        if completion.text:
            yield completion.text
        yield completion

    async def aclose(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing to release
        """Release connections or models. Safe to call twice."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
