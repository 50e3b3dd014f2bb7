"""Optional OpenTelemetry exporter for chainkit trace events (extra `otel`; never on by default).

    from chainkit._otel import OTelSink, tee
    from chainkit._trace_store import SQLiteTraceSink
    executor = Executor(registry, store=store, trace=tee(SQLiteTraceSink(store.path), OTelSink()))

Runs and nodes become spans (a node span is the child of its parent path's span); LLM calls and memory
writes become span events on the node that made them. Where the spans go is decided by the
application's own OpenTelemetry SDK configuration; chainkit configures no exporter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chainkit.errors import UsageError

TraceSink = Callable[[str, dict[str, Any]], None]


def tee(*sinks: TraceSink) -> TraceSink:
    """One sink that forwards every event to each of `sinks`."""

    def forward(kind: str, data: dict[str, Any]) -> None:
        for sink in sinks:
            sink(kind, data)

    def flush() -> None:
        for sink in sinks:
            getattr(sink, "flush", lambda: None)()

    def close() -> None:
        for sink in sinks:
            getattr(sink, "close", lambda: None)()

    forward.flush = flush  # type: ignore[attr-defined]
    forward.close = close  # type: ignore[attr-defined]
    return forward


def _scalar(value: Any) -> Any:
    return value if isinstance(value, (str, bool, int, float)) else str(value)


class OTelSink:
    """A trace sink that turns chainkit events into OpenTelemetry spans."""

    def __init__(self, tracer: Any = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise UsageError("OpenTelemetry export needs the extra: pip install 'chainkit[otel]'") from exc
        self._trace = trace
        self._tracer = tracer or trace.get_tracer("chainkit")
        self._spans: dict[tuple[str | None, str], Any] = {}

    def _parent_context(self, run_id: str | None, path: str) -> Any:
        while path:
            parent = path.rpartition("/")[0]
            span = self._spans.get((run_id, parent)) if parent else self._spans.get((run_id, ""))
            if span is not None:
                return self._trace.set_span_in_context(span)
            path = parent
        span = self._spans.get((run_id, ""))
        return self._trace.set_span_in_context(span) if span is not None else None

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        run_id = data.get("run_id")
        path = data.get("node_path") or ""
        if kind == "run_start":
            span = self._tracer.start_span(f"run {data.get('graph')}", attributes={
                "chainkit.run_id": str(run_id), "chainkit.graph": str(data.get("graph")),
                "chainkit.process": str(data.get("process"))})
            self._spans[(run_id, "")] = span
        elif kind == "run_end":
            span = self._spans.pop((run_id, ""), None)
            if span is not None:
                span.set_attribute("chainkit.status", str(data.get("status")))
                span.end()
            for key in [k for k in self._spans if k[0] == run_id]:
                self._spans.pop(key).end()
        elif kind == "node_start":
            span = self._tracer.start_span(f"node {path}", context=self._parent_context(run_id, path),
                                           attributes={"chainkit.node_path": path, "chainkit.kind": str(data.get("kind"))})
            self._spans[(run_id, path)] = span
        elif kind == "node_end":
            span = self._spans.pop((run_id, path), None)
            if span is not None:
                span.set_attribute("chainkit.status", str(data.get("status")))
                span.end()
        else:
            span = self._spans.get((run_id, path)) or self._spans.get((run_id, ""))
            if span is not None:
                attributes = {k: _scalar(v) for k, v in data.items() if k not in ("messages", "text", "output")}
                span.add_event(kind, attributes=attributes)
