"""A backend that tries several backends in order: the next one answers when one is unavailable.

    FallbackBackend(OpenAICompatibleBackend(vllm_url, "qwen"), resolve_backend("openai:gpt-4o-mini"))

It moves on when a backend is down or overloaded — `BackendUnavailable`, `TransportError` (including
timeouts), `ServerError`, `RateLimited` — after that backend's own retries. It does not move on for
`BadRequest` (including `ContextLengthExceeded`) or `AuthenticationError`: those are mistakes in the
request or the configuration that the next backend would most likely repeat, or that should be fixed
rather than hidden. A stream moves on only if its backend failed before the first text delta.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from chainkit.backends.base import Backend, Capabilities, Completion, CompletionRequest
from chainkit.errors import (
    BackendError,
    BackendUnavailable,
    DefinitionError,
    RateLimited,
    ServerError,
    TransportError,
)

log = logging.getLogger("chainkit.backends.fallback")

# Failures that say "this backend cannot serve now", not "this request is wrong".
FALLBACK_ON: tuple[type[BackendError], ...] = (BackendUnavailable, TransportError, ServerError, RateLimited)


class FallbackBackend(Backend):
    def __init__(self, *backends: Backend) -> None:
        super().__init__()
        if not backends:
            raise DefinitionError("FallbackBackend needs at least one backend")
        for backend in backends:
            if not isinstance(backend, Backend):
                raise DefinitionError(f"FallbackBackend takes backends, got {type(backend).__name__}")
        self.backends: tuple[Backend, ...] = backends
        self.name = f"fallback({','.join(backend.name for backend in backends)})"
        self.is_real = any(backend.is_real for backend in backends)

    @property
    def capabilities(self) -> Capabilities:
        first = self.backends[0].capabilities
        every = [backend.capabilities for backend in self.backends]
        windows = [caps.context_window for caps in every if caps.context_window is not None]
        return Capabilities(
            # Only promise constrained output when whichever backend answers can keep the promise.
            json_schema=all(caps.json_schema for caps in every),
            streaming=first.streaming,
            logprobs=all(caps.logprobs for caps in every),
            # The smallest known window: a prompt budgeted for it fits every backend in the chain.
            context_window=min(windows) if windows else None,
            tokenizer=first.tokenizer,
            max_in_flight=first.max_in_flight,
        )

    def _give_up(self, failures: list[tuple[Backend, BackendError]]) -> BackendError:
        last = failures[-1][1]
        if len(failures) > 1:
            last.add_note(
                "earlier backends failed too: "
                + "; ".join(
                    f"{backend.name}: {type(error).__name__}: {error}" for backend, error in failures[:-1]
                )
            )
        return last

    async def complete(self, request: CompletionRequest) -> Completion:
        failures: list[tuple[Backend, BackendError]] = []
        for backend in self.backends:
            try:
                # Each member keeps its own concurrency limit, also when reached through the chain.
                async with backend.limit:
                    return await backend.complete(request)
            except FALLBACK_ON as error:
                failures.append((backend, error))
                log.warning(
                    "%s failed (%s: %s); trying the next backend", backend.name, type(error).__name__, error
                )
        raise self._give_up(failures)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | Completion]:
        failures: list[tuple[Backend, BackendError]] = []
        for backend in self.backends:
            started = False
            try:
                async with backend.limit:
                    async for item in backend.stream(request):
                        started = True
                        yield item
                return
            except FALLBACK_ON as error:
                if started:  # the caller already has part of this answer: switching would splice two answers
                    raise
                failures.append((backend, error))
                log.warning(
                    "%s failed (%s: %s); trying the next backend", backend.name, type(error).__name__, error
                )
        raise self._give_up(failures)

    async def aclose(self) -> None:
        for backend in self.backends:
            await backend.aclose()

    def __repr__(self) -> str:
        return f"<FallbackBackend {self.name}>"


__all__ = ["FALLBACK_ON", "FallbackBackend"]
