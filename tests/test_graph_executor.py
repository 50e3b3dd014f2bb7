"""The executor: every node kind, conditions, loops, map, retries, timeouts, cancellation, memory commits,
journal and resume, tracing into SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from pydantic import BaseModel

from chainkit._trace_store import list_runs, run_events, run_tree
from chainkit.backends.fake import FakeBackend
from chainkit.errors import MemoryConflict, NodeTimeout, RunCancelled, RunError, ServerError, UsageError
from chainkit.graph import (
    Executor,
    FunctionNode,
    Graph,
    LoopSpec,
    MapNode,
    MemoryReadNode,
    MemoryWriteNode,
    Registry,
    RetryPolicy,
    SubgraphNode,
    ToolNode,
)
from chainkit.memory import Collection, Document, Log, open_store
from chainkit.tools import Tool, ToolSpec
from chainkit.tracing import ListSink, trace_to


class In(BaseModel):
    message: str = "hi"
    n: int = 3
    items: list[int] = []


class Profile(BaseModel):
    level: int = 1
    note: str = ""


class Turn(BaseModel):
    text: str


class Quiz(BaseModel):
    id: str
    score: float = 0.0


class GradeIn(BaseModel):
    answer: str


class Grade(BaseModel):
    score: float
    feedback: str


def registry() -> Registry:
    reg = Registry()
    reg.add_model(In)
    reg.add_memory(Document("profile", Profile))
    reg.add_memory(Log("dialog", Turn))
    reg.add_memory(Collection("quizzes", Quiz))

    @reg.function
    def double(x: int) -> int:
        return 2 * x

    @reg.function
    async def adouble(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    @reg.function
    def add(a: int, b: int = 0) -> int:
        return a + b

    @reg.function
    def shout(text: str) -> str:
        return text.upper()

    return reg


@pytest.fixture
async def store(tmp_path: Path):
    s = await open_store(tmp_path / "app.db")
    yield s
    await s.close()


async def test_function_nodes_wire_through_references() -> None:
    reg = registry()
    reg.add_graph(Graph(name="g", input="In", nodes=[
        FunctionNode(name="a", function="double", inputs={"x": "${input.n}"}),
        FunctionNode(name="b", function="adouble", inputs={"x": "${nodes.a.output}"}),
        FunctionNode(name="c", function="add", inputs={"a": "${nodes.a.output}", "b": "${nodes.b.output}"}),
        FunctionNode(name="s", function="shout", inputs={"text": "${input.message} got ${nodes.c.output}"}),
    ], output={"total": "${nodes.c.output}", "text": "${nodes.s.output}"}))
    result = await Executor(reg).run("g", {"n": 5})
    assert result.output.total == 30 and result.output.text == "HI GOT 30"
    assert result.outputs == {"a": 10, "b": 20, "c": 30, "s": "HI GOT 30"}
    assert type(result.output).model_fields["total"].annotation is int


async def test_independent_async_nodes_run_concurrently() -> None:
    reg = registry()
    seen: list[str] = []
    b_started = asyncio.Event()

    @reg.function
    async def wait_for_b() -> str:
        await b_started.wait()  # deadlocks unless b runs while a waits
        seen.append("a")
        return "a"

    @reg.function
    async def start_b() -> str:
        b_started.set()
        seen.append("b")
        return "b"

    reg.add_graph(Graph(name="g", nodes=[FunctionNode(name="a", function="wait_for_b"),
                                         FunctionNode(name="b", function="start_b")]))
    result = await asyncio.wait_for(Executor(reg).run("g"), timeout=5)
    assert result.outputs == {"a": "a", "b": "b"} and seen == ["b", "a"]


async def test_skips_propagate_unless_defaulted() -> None:
    reg = registry()
    reg.add_graph(Graph(name="g", input="In", nodes=[
        FunctionNode(name="a", function="double", inputs={"x": "${input.n}"}, when="${input.n} > 10"),
        FunctionNode(name="b", function="double", inputs={"x": "${nodes.a.output}"}),  # skipped with a
        FunctionNode(name="c", function="double", inputs={"x": "${nodes.a.output ?? 7}"}),  # default
        FunctionNode(name="d", function="double", inputs={"x": 1}, when="nodes.b.output > 0"),  # skipped
        FunctionNode(name="e", function="double", inputs={"x": 2}, after=["a"]),  # after: ordering only
    ], output={"a": "${nodes.a.output}", "c": "${nodes.c.output}"}))
    small = await Executor(reg).run("g", {"n": 3})
    assert small.skipped == ["a", "b", "d"]
    assert small.outputs == {"c": 14, "e": 4}
    assert small.output.a is None and small.output.c == 14
    big = await Executor(reg).run("g", {"n": 11})
    assert big.skipped == [] and big.outputs["c"] == 44 and big.outputs["d"] == 2


async def test_loop_until_and_max_iterations() -> None:
    reg = registry()
    calls: list[int] = []

    @reg.function
    def grow(prev: int | None, it: int) -> int:
        calls.append(it)
        return (prev or 1) * 3

    reg.add_graph(Graph(name="g", nodes=[
        FunctionNode(name="l", function="grow", inputs={"prev": "${loop.previous}", "it": "${loop.iteration}"},
                     loop=LoopSpec(until="${output} > 50", max_iterations=10)),
        FunctionNode(name="capped", function="grow", inputs={"prev": "${loop.previous}", "it": "${loop.iteration}"},
                     loop=LoopSpec(until="output > 10**2", max_iterations=2)) if False else
        FunctionNode(name="capped", function="grow", inputs={"prev": "${loop.previous}", "it": "${loop.iteration}"},
                     loop=LoopSpec(until="${output} > 1000000", max_iterations=2)),
    ]))
    result = await Executor(reg).run("g")
    assert result.outputs["l"] == 81  # 3, 9, 27, 81
    assert result.outputs["capped"] == 9  # stopped by max_iterations
    assert sorted(calls) == [0, 0, 1, 1, 2, 3]


async def test_map_keeps_order_and_bounds_concurrency() -> None:
    reg = registry()
    running, peak = 0, 0

    @reg.function
    async def slow_square(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01 * (5 - x % 5))  # later items finish first
        running -= 1
        return x * x

    reg.add_graph(Graph(name="g", input="In", nodes=[
        MapNode(name="m", over="${input.items}", max_concurrency=3,
                node=FunctionNode(name="sq", function="slow_square", inputs={"x": "${item}"})),
        MapNode(name="skip_odd", over="${input.items}",
                node=FunctionNode(name="d", function="double", inputs={"x": "${item}"}, when="${index} % 2 == 0")),
    ], output="${nodes.m.output}"))
    result = await Executor(reg).run("g", {"items": list(range(10))})
    assert result.output == [x * x for x in range(10)]
    assert peak == 3
    assert result.outputs["skip_odd"] == [0, None, 4, None, 8, None, 12, None, 16, None]
    empty = await Executor(reg).run("g", {"items": []})
    assert empty.output == []


async def test_subgraph_and_map_of_subgraphs() -> None:
    reg = registry()
    reg.add_graph(Graph(name="inner", input="In", nodes=[
        FunctionNode(name="d", function="double", inputs={"x": "${input.n}"})], output={"v": "${nodes.d.output}"}))
    reg.add_graph(Graph(name="outer", input="In", nodes=[
        SubgraphNode(name="sub", graph="inner", inputs={"n": "${input.n}"}),
        MapNode(name="each", over="${input.items}", node=SubgraphNode(name="s", graph="inner", inputs={"n": "${item}"})),
        FunctionNode(name="sum", function="add", inputs={"a": "${nodes.sub.output.v}", "b": "${nodes.each.output.1.v}"}),
    ], output="${nodes.sum.output}"))
    result = await Executor(reg).run("outer", {"n": 4, "items": [1, 2]})
    assert result.output == 8 + 4
    assert [o.v for o in result.outputs["each"]] == [2, 4]


async def test_retry_then_error_names_the_attempt() -> None:
    reg = registry()
    attempts = {"flaky": 0, "broken": 0}

    @reg.function
    async def flaky() -> int:
        attempts["flaky"] += 1
        if attempts["flaky"] < 3:
            raise ServerError("503", status=503)
        return 1

    @reg.function
    async def broken() -> int:
        attempts["broken"] += 1
        raise ServerError("still down", status=503)

    reg.add_graph(Graph(name="ok", nodes=[FunctionNode(name="f", function="flaky",
                                                       retry=RetryPolicy(max_attempts=3, backoff_s=0))]))
    assert (await Executor(reg).run("ok")).outputs["f"] == 1
    reg.add_graph(Graph(name="interaction", nodes=[FunctionNode(name="grade", function="broken",
                                                                retry=RetryPolicy(max_attempts=2, backoff_s=0))]))
    with pytest.raises(RunError) as info:
        await Executor(reg).run("interaction")
    assert info.value.node_path == "interaction/grade/attempt 2"
    assert isinstance(info.value.__cause__, ServerError) and attempts["broken"] == 2

    @reg.function
    def bad_value() -> int:
        raise ValueError("not transient")

    reg.add_graph(Graph(name="nr", nodes=[FunctionNode(name="v", function="bad_value",
                                                       retry=RetryPolicy(max_attempts=5, backoff_s=0))]))
    with pytest.raises(RunError) as info:
        await Executor(reg).run("nr")
    assert info.value.node_path == "nr/v"  # not retried


async def test_timeout_raises_node_timeout_with_path() -> None:
    reg = registry()

    @reg.function
    async def hang() -> int:
        await asyncio.sleep(30)
        return 0

    reg.add_graph(Graph(name="g", nodes=[FunctionNode(name="h", function="hang", timeout_s=0.05)]))
    with pytest.raises(NodeTimeout) as info:
        await Executor(reg).run("g")
    assert info.value.node_path == "g/h"


async def test_failure_cancels_in_flight_nodes_and_commits_nothing(store) -> None:
    reg = registry()
    cancelled = asyncio.Event()

    @reg.function
    async def long_running() -> int:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    @reg.function
    async def fails(level: int) -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("boom")

    reg.add_graph(Graph(name="g", writes=["profile"], nodes=[
        MemoryWriteNode(name="w", memory="profile", op="replace", inputs={"value": {"level": 9}}),
        FunctionNode(name="long", function="long_running"),
        FunctionNode(name="f", function="fails", inputs={"level": "${nodes.w.output.level}"}),
    ]))
    with pytest.raises(RunError) as info:
        await Executor(reg, store=store).run("g", scope={"user": "u"})
    assert info.value.node_path == "g/f" and cancelled.is_set()
    assert await store.document(reg.memories["profile"]).get({"user": "u"}) is None


async def test_caller_cancel_commits_nothing(store) -> None:
    reg = registry()
    started = asyncio.Event()

    @reg.function
    async def block(level: int) -> int:
        started.set()
        await asyncio.sleep(30)
        return level

    reg.add_graph(Graph(name="g", writes=["profile"], nodes=[
        MemoryWriteNode(name="w", memory="profile", op="replace", inputs={"value": {"level": 9}}),
        FunctionNode(name="b", function="block", inputs={"level": "${nodes.w.output.level}"}),
    ]))
    task = asyncio.ensure_future(Executor(reg, store=store).run("g", scope={"user": "u"}))
    await started.wait()
    task.cancel()
    with pytest.raises(RunCancelled):
        await task
    assert await store.document(reg.memories["profile"]).get({"user": "u"}) is None


async def test_tool_nodes_and_map_of_tools() -> None:
    reg = registry()
    backend = FakeBackend({"grade": lambda request: {"score": 0.25, "feedback": request.messages[-1]["content"]}})
    reg.add_tool(Tool(ToolSpec(name="grade", input=GradeIn, output=Grade, user="answer: {{ answer }}"),
                      backend=backend))
    reg.add_graph(Graph(name="g", input="In", nodes=[
        ToolNode(name="one", tool="grade", inputs={"answer": "${input.message}"}),
        MapNode(name="many", over="${input.items}",
                node=ToolNode(name="each", tool="grade", inputs={"answer": "item ${item}"})),
        FunctionNode(name="low", function="shout", inputs={"text": "${nodes.one.output.feedback}"},
                     when="${nodes.one.output.score} < 0.5"),
    ], output={"score": "${nodes.one.output.score}", "n": "${nodes.many.output}"}))
    sink = ListSink()
    with trace_to(sink):
        result = await Executor(reg).run("g", {"message": "42", "items": [1, 2, 3]})
    assert result.output.score == 0.25
    assert [g.feedback for g in result.outputs["many"]] == ["answer: item 1", "answer: item 2", "answer: item 3"]
    assert result.outputs["low"] == "ANSWER: 42"
    assert len(backend.requests) == 4
    llm_paths = sorted(e["node_path"] for e in sink.of_kind("llm_call"))
    assert llm_paths == ["g/many/item 0", "g/many/item 1", "g/many/item 2", "g/one"]


async def test_memory_reads_writes_commit_atomically(store) -> None:
    reg = registry()
    reg.add_graph(Graph(name="g", input="In", reads=["profile", "dialog", "quizzes"],
                        writes=["profile", "dialog", "quizzes"], nodes=[
        MemoryReadNode(name="p", memory="profile"),
        FunctionNode(name="next", function="add", inputs={"a": "${memory.profile.level}", "b": 1}),
        MemoryWriteNode(name="bump", memory="profile", op="patch", inputs={"delta": {"level": "${nodes.next.output}"}}),
        MemoryReadNode(name="after_bump", memory="profile", after=["bump"]),
        MemoryWriteNode(name="say", memory="dialog", op="append", inputs={"entry": {"text": "${input.message}"}}),
        MemoryReadNode(name="last", memory="dialog", op="last", inputs={"n": 3}, after=["say"]),
        MemoryWriteNode(name="q", memory="quizzes", op="put", inputs={"value": {"id": "q1", "score": 0.5}}),
        MemoryReadNode(name="qget", memory="quizzes", op="get", inputs={"key": "q1"}, after=["q"]),
    ], output={"before": "${nodes.p.output}", "after": "${nodes.after_bump.output.level}",
               "last": "${nodes.last.output}", "quiz": "${nodes.qget.output.score}"}))
    ex = Executor(reg, store=store)
    scope = {"user": "u", "session": "s"}
    r1 = await ex.run("g", {"message": "one"}, scope=scope)
    assert r1.output.before is None and r1.output.after == 2  # read-your-own-staged-writes
    assert [t.text for t in r1.output.last] == ["one"] and r1.output.quiz == 0.5
    r2 = await ex.run("g", {"message": "two"}, scope=scope)
    assert r2.output.before.level == 2 and r2.output.after == 3
    assert [t.text for t in r2.output.last] == ["one", "two"]
    got = await store.document(reg.memories["profile"]).get({"user": "u"})
    assert got.value.level == 3 and got.version == 2


async def test_optimistic_check_detects_a_concurrent_write(store) -> None:
    reg = registry()
    gate = asyncio.Event()

    @reg.function
    async def wait_gate(level: int) -> int:
        await gate.wait()
        return level + 10

    reg.add_graph(Graph(name="g", reads=["profile"], writes=["profile"], nodes=[
        FunctionNode(name="w", function="wait_gate", inputs={"level": "${memory.profile.level}"}),
        MemoryWriteNode(name="save", memory="profile", op="replace", inputs={"value": {"level": "${nodes.w.output}"}}),
    ]))
    spec = reg.memories["profile"]
    await store.document(spec).replace({"user": "u"}, {"level": 1})
    task = asyncio.ensure_future(Executor(reg, store=store).run("g", scope={"user": "u"}))
    await asyncio.sleep(0.05)
    await store.document(spec).replace({"user": "u"}, {"level": 5})  # someone writes first
    gate.set()
    with pytest.raises(MemoryConflict):
        await task
    assert (await store.document(spec).get({"user": "u"})).value.level == 5


async def test_journal_resume_replays_completed_tool_calls(store) -> None:
    reg = registry()
    backend = FakeBackend({"grade": lambda request: {"score": 0.9, "feedback": "ok"}})
    reg.add_tool(Tool(ToolSpec(name="grade", input=GradeIn, output=Grade, user="{{ answer }}"), backend=backend))
    fail = {"on": True}

    @reg.function
    def maybe_fail(score: float) -> float:
        if fail["on"]:
            raise RuntimeError("crash")
        return score

    reg.add_graph(Graph(name="g", input="In", writes=["profile"], nodes=[
        ToolNode(name="a", tool="grade", inputs={"answer": "a"}),
        MapNode(name="m", over="${input.items}", node=ToolNode(name="t", tool="grade", inputs={"answer": "item ${item}"})),
        FunctionNode(name="f", function="maybe_fail", inputs={"score": "${nodes.a.output.score}"}),
        MemoryWriteNode(name="w", memory="profile", op="replace", inputs={"value": {"note": "done"}},
                        after=["f", "m"]),
    ], output="${nodes.f.output}"))
    ex = Executor(reg, store=store, journal=True)
    with pytest.raises(RunError) as info:
        await ex.run("g", {"items": [1, 2]}, scope={"user": "u"}, run_id="run-1")
    assert len(backend.requests) == 3
    fail["on"] = False
    result = await ex.resume(info.value.run_id)
    assert result.output == 0.9 and len(backend.requests) == 3  # nothing asked twice
    # the map either finished before the failure or was cancelled after its items were journaled
    assert sorted(result.replayed) in (["g/a", "g/m"], ["g/a", "g/m/item 0", "g/m/item 1"])
    assert (await store.document(reg.memories["profile"]).get({"user": "u"})).value.note == "done"
    with pytest.raises(RunError, match="already succeeded"):
        await ex.resume("run-1")
    await ex.close()


async def test_trace_events_in_the_store_file(store) -> None:
    reg = registry()
    reg.add_graph(Graph(name="g", input="In", writes=["dialog"], nodes=[
        FunctionNode(name="a", function="double", inputs={"x": "${input.n}"}),
        FunctionNode(name="skip", function="double", inputs={"x": 1}, when="${input.n} > 100"),
        MemoryWriteNode(name="log", memory="dialog", op="append", inputs={"entry": {"text": "x"}}),
    ]))
    ex = Executor(reg, store=store, trace=True)
    result = await ex.run("g", {"n": 2}, scope={"user": "u", "session": "s"})
    await ex.close()
    runs = list_runs(store.path)
    assert runs[0]["run_id"] == result.run_id and runs[0]["status"] == "succeeded"
    kinds = [e["kind"] for e in run_events(store.path, result.run_id)]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert {"node_start", "node_end", "node_skipped", "memory_write"} <= set(kinds)
    tree = run_tree(store.path, result.run_id)
    assert tree["path"] == "g" and {c["name"] for c in tree["children"]} >= {"a", "skip", "log"}
    with sqlite3.connect(store.path) as conn:  # plain SQL
        (n,) = conn.execute("SELECT count(*) FROM chainkit_events WHERE kind='node_end' AND run_id=?",
                            (result.run_id,)).fetchone()
    assert n == 2


async def test_bad_input_and_sync_facade_inside_loop() -> None:
    reg = registry()
    reg.add_graph(Graph(name="g", input="In", nodes=[FunctionNode(name="a", function="double", inputs={"x": "${input.n}"})]))
    with pytest.raises(RunError, match="input does not validate"):
        await Executor(reg).run("g", {"n": "many"})
    with pytest.raises(UsageError):
        Executor(reg).run_sync("g", {"n": 1})


def test_sync_facade_runs_outside_a_loop() -> None:
    reg = registry()
    reg.add_graph(Graph(name="g", input="In", nodes=[FunctionNode(name="a", function="adouble", inputs={"x": "${input.n}"})]))
    assert Executor(reg).run_sync("g", {"n": 4}).outputs["a"] == 8


async def test_blocking_functions_run_off_the_event_loop(store) -> None:
    import threading
    import time

    reg = registry()
    loop_thread = threading.get_ident()
    seen: dict[str, int] = {}

    @reg.function(blocking=True)
    def slow_io(x: int) -> int:
        seen["thread"] = threading.get_ident()
        time.sleep(0.2)  # a blocking call: must not stall the loop
        return x

    reg.add_graph(Graph(name="g", input="In", nodes=[
        FunctionNode(name="s", function="slow_io", inputs={"x": "${input.n}"}, timeout_s=5),
    ], output="${nodes.s.output}"))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.ensure_future(ticker())
    result = await Executor(reg, store=store).run("g", {"n": 3}, scope={"user": "u"})
    ticking.cancel()
    assert result.output == 3 and seen["thread"] != loop_thread
    assert ticks >= 5  # the loop kept running while the function slept
