"""The optional OpenTelemetry exporter turns runs and nodes into spans and LLM calls into span events."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

pytest.importorskip("opentelemetry.sdk", reason="OpenTelemetry SDK not installed (pip install 'chainkit[dev]')")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from chainkit import Executor, Graph, Registry, Tool, ToolNode, ToolSpec, open_store  # noqa: E402
from chainkit._otel import OTelSink, tee  # noqa: E402
from chainkit._trace_store import SQLiteTraceSink, list_runs  # noqa: E402
from chainkit.testing import FakeBackend  # noqa: E402


class Q(BaseModel):
    text: str


class A(BaseModel):
    answer: str


async def test_runs_nodes_and_llm_calls_become_spans(tmp_path):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = Registry()
    registry.add_model(Q)
    registry.add_tool(Tool(ToolSpec(name="ask", input=Q, output=A, user="{{ text }}"), backend=FakeBackend()))
    registry.add_graph(Graph(name="g", input="Q", nodes=[ToolNode(name="ask", tool="ask", inputs={"text": "${input.text}"})],
                             output="${nodes.ask.output}"))
    store = await open_store(tmp_path / "t.db")
    sqlite_sink = SQLiteTraceSink(store.path)
    executor = Executor(registry, store=store, trace=tee(sqlite_sink, OTelSink(provider.get_tracer("test"))))
    await executor.run("g", {"text": "hi"}, scope={})
    await executor.close()
    sqlite_sink.close()
    await store.close()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"run g", "node g/ask"}
    node, run = spans["node g/ask"], spans["run g"]
    assert node.parent is not None and node.parent.span_id == run.context.span_id
    assert [event.name for event in node.events] == ["llm_call"]
    assert node.events[0].attributes["tool"] == "ask"
    assert run.attributes["chainkit.status"] == "succeeded"
    assert list_runs(tmp_path / "t.db")[0]["status"] == "succeeded"  # the SQLite sink got the same run
