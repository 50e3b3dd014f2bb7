"""Processes and apps: triggers, staged atomic commits, background runs re-run on version conflicts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import BaseModel

from chainkit.app import App, Process, after, every, on_message, when
from chainkit.errors import DefinitionError, RunError, UsageError
from chainkit.graph import FunctionNode, Graph, MemoryReadNode, MemoryWriteNode, Registry


class Msg(BaseModel):
    message: str


class Reply(BaseModel):
    reply: str
    turns: int


class Profile(BaseModel):
    turns: int = 0
    note: str = ""


class Event(BaseModel):
    text: str


def build(gate: asyncio.Event, calls: list[int]) -> Registry:
    reg = Registry()
    reg.add_model(Msg)
    reg.add_model(Reply)
    from chainkit.memory import Document, Log

    reg.add_memory(Document("profile", Profile))
    reg.add_memory(Log("events", Event, scope="user"))

    @reg.function
    def answer(message: str, turns: int) -> str:
        return f"you said {message!r} (turn {turns})"

    @reg.function
    def inc(x: int) -> int:
        return x + 1

    @reg.function
    async def reflect(turns: int) -> str:
        calls.append(turns)
        await gate.wait()
        return f"reflected at turns {turns}"

    reg.add_graph(Graph(name="interaction", input="Msg", reads=["profile"], writes=["profile"], nodes=[
        FunctionNode(name="turn", function="inc", inputs={"x": "${memory.profile.turns}"}),
        FunctionNode(name="say", function="answer", inputs={"message": "${input.message}", "turns": "${nodes.turn.output}"}),
        MemoryWriteNode(name="save", memory="profile", op="patch", inputs={"delta": {"turns": "${nodes.turn.output}"}}),
    ], output={"reply": "${nodes.say.output}", "turns": "${nodes.turn.output}"}))
    reg.add_graph(Graph(name="reflection", input="Msg", reads=["profile"], writes=["profile"], nodes=[
        FunctionNode(name="r", function="reflect", inputs={"turns": "${memory.profile.turns}"}),
        MemoryWriteNode(name="note", memory="profile", op="patch", inputs={"delta": {"note": "${nodes.r.output}"}}),
    ]))
    reg.add_graph(Graph(name="count", input="Reply", writes=["events"], nodes=[
        MemoryWriteNode(name="log", memory="events", op="append", inputs={"entry": {"text": "at ${input.turns}"}}),
    ]))
    reg.add_graph(Graph(name="react", input="Reply", reads=["events"], nodes=[
        MemoryReadNode(name="n", memory="events", op="count"),
    ], output="${nodes.n.output}"))
    return reg


async def test_triggers_background_conflict_rerun_and_drain(tmp_path: Path) -> None:
    gate, calls = asyncio.Event(), []
    reg = build(gate, calls)
    app = App(reg, store=tmp_path / "tutor.db", processes=[
        Process(name="interaction", graph="interaction", trigger=on_message()),
        Process(name="reflection", graph="reflection", background=True, inputs={"message": "${input.message}"},
                trigger=when("${input.message} == 'first'", after="interaction")),
        Process(name="count", graph="count", trigger=every(2, "interaction")),
        Process(name="react", graph="react", trigger=after("count"),
                inputs={"reply": "${input.reply}", "turns": "${input.turns}"}),
    ])
    scope = {"user": "ada", "session": "s1"}
    async with app:
        t1 = await app.send("first", scope=scope)
        assert t1.output.reply == "you said 'first' (turn 1)" and t1.background == ["reflection"]
        await asyncio.sleep(0.05)
        assert calls == [1]  # reflection read turns=1 and waits
        t2 = await app.send("second", scope=scope)  # commits turns=2 while reflection holds version 1
        assert t2.output.turns == 2 and t2.background == []
        assert t2.outputs["count"] is None and t2.outputs["react"] == 1  # every 2nd run, then after count
        gate.set()
        await app.drain()
        assert calls == [1, 2]  # the conflict re-ran reflection on fresh data
        profile = await app.store.document(reg.memories["profile"]).get({"user": "ada"})
        assert profile.value == Profile(turns=2, note="reflected at turns 2")
        t3 = await app.send("third", scope=scope)
        assert "count" not in t3.outputs
        t4 = await app.send("fourth", scope=scope)
        assert t4.outputs["react"] == 2


async def test_conflicts_rerun_a_bounded_number_of_times(tmp_path: Path) -> None:
    gate, calls = asyncio.Event(), []
    reg = build(gate, calls)
    gate.set()

    @reg.function
    async def meddle(turns: int) -> int:
        # another writer always commits first
        await app.store.document(reg.memories["profile"]).patch({"user": "u"}, {"turns": turns + 100})
        return turns

    reg.add_graph(Graph(name="loser", input="Msg", reads=["profile"], writes=["profile"], nodes=[
        FunctionNode(name="m", function="meddle", inputs={"turns": "${memory.profile.turns}"}),
        MemoryWriteNode(name="w", memory="profile", op="patch", inputs={"delta": {"note": "x"}}),
    ]))
    app = App(reg, store=tmp_path / "a.db", processes=[
        Process(name="loser", graph="loser", max_conflict_reruns=2)])
    async with app:
        with pytest.raises(RunError, match="lost 3 version races"):
            await app.send("hi", scope={"user": "u"})
        profile = await app.store.document(reg.memories["profile"]).get({"user": "u"})
        assert profile.value.note == "" and profile.value.turns == 300


def test_app_definition_errors(tmp_path: Path) -> None:
    reg = build(asyncio.Event(), [])
    with pytest.raises(DefinitionError, match="unknown process 'nope'"):
        App(reg, processes=[Process(name="a", graph="interaction", trigger=after("nope"))])
    with pytest.raises(DefinitionError, match="trigger cycle"):
        App(reg, processes=[Process(name="a", graph="count", trigger=after("b")),
                            Process(name="b", graph="count", trigger=after("a"))])
    with pytest.raises(DefinitionError, match="no graph named 'missing'"):
        App(reg, processes=[Process(name="a", graph="missing")])
    with pytest.raises(DefinitionError, match="bad condition"):
        App(reg, processes=[Process(name="a", graph="interaction"),
                            Process(name="b", graph="count", trigger=when("${nodes.x.output} >", after="a"))])


def test_sync_facade(tmp_path: Path) -> None:
    gate, calls = asyncio.Event(), []
    reg = build(gate, calls)
    app = App(reg, store=tmp_path / "s.db", processes=[Process(name="interaction", graph="interaction")])
    with pytest.raises(UsageError):
        app.send_sync("x", scope={"user": "u"})  # not open
    app.open_sync()
    assert app.send_sync("hello", scope={"user": "u"}).output.turns == 1
    assert app.send_sync("again", scope={"user": "u"}).output.turns == 2
    app.close_sync()


async def test_close_with_a_timeout_cancels_a_stuck_background_run(tmp_path: Path) -> None:
    gate, calls = asyncio.Event(), []  # the gate never opens: reflection hangs
    app = App(build(gate, calls), store=tmp_path / "stuck.db", processes=[
        Process(name="interaction", graph="interaction", trigger=on_message()),
        Process(name="reflection", graph="reflection", background=True, inputs={"message": "${input.message}"},
                trigger=after("interaction")),
    ])
    await app.open()
    await app.send("hi", scope={"user": "u"})
    started = asyncio.get_running_loop().time()
    with pytest.raises(RunError, match="reflection"):
        await app.close(timeout=0.2)
    assert asyncio.get_running_loop().time() - started < 2
    assert calls == [1]
    from chainkit.memory import open_store

    store = await open_store(tmp_path / "stuck.db")
    profile = await store.document(build(gate, []).memories["profile"]).get({"user": "u"})
    await store.close()
    assert profile.value.turns == 1 and profile.value.note == ""  # the cancelled run committed nothing
