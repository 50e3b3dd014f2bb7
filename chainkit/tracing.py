"""Trace events: runs, nodes, LLM calls and memory writes.

Producers (tools, the graph executor, memory writes) call `emit(kind, data)`; it is a no-op unless a
sink is installed for the current context with `trace_to(sink)`. The executor installs a sink that
writes events into the same SQLite file as the app's memories (see `SQLiteTraceSink`), so a run can
be inspected with plain SQL or `chainkit trace`. Nothing is ever sent anywhere by default.

Event kinds: run_start, run_end, node_start, node_end, llm_call, memory_write.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

TraceSink = Callable[[str, dict[str, Any]], None]

_sink: contextvars.ContextVar[TraceSink | None] = contextvars.ContextVar("chainkit_trace_sink", default=None)
# The node path that the current code runs under (e.g. "interaction/grade"), stamped on events.
current_node_path: contextvars.ContextVar[str | None] = contextvars.ContextVar("chainkit_node_path", default=None)
current_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("chainkit_run_id", default=None)


def tracing_enabled() -> bool:
    return _sink.get() is not None


def emit(kind: str, data: dict[str, Any]) -> None:
    sink = _sink.get()
    if sink is None:
        return
    data.setdefault("run_id", current_run_id.get())
    data.setdefault("node_path", current_node_path.get())
    sink(kind, data)


@contextlib.contextmanager
def trace_to(sink: TraceSink | None) -> Iterator[None]:
    """Send events emitted in this context (and tasks started from it) to `sink`."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


class ListSink:
    """Collects events in memory; handy in tests."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [data for k, data in self.events if k == kind]
