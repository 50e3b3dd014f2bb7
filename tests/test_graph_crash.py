"""Crash and resume: a real process is killed with SIGKILL mid-run, a new process resumes the run.

The graph makes three LLM calls (a fake backend that appends each call to a file), then blocks in a
function node (after touching a file, so the kill lands at a known point), then writes two memories.
After the kill, no memory is written; after resuming in a fresh process, no completed call is
repeated and both memories are written.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = r'''
import asyncio, json, os, sys, time
from pydantic import BaseModel
from chainkit.backends.fake import FakeBackend
from chainkit.graph import Executor, FunctionNode, Graph, MapNode, MemoryWriteNode, Registry, ToolNode
from chainkit.memory import Document, Log, open_store
from chainkit.tools import Tool, ToolSpec

db, calls_file, ready_file, mode = sys.argv[1:5]

class Q(BaseModel):
    question: str
class A(BaseModel):
    answer: str
class In(BaseModel):
    topics: list[str]
class Profile(BaseModel):
    summary: str = ""
class Turn(BaseModel):
    text: str

def answer(request):
    text = request.messages[-1]["content"]
    with open(calls_file, "a") as f:  # the "bill": one line per paid call
        f.write(text + "\n"); f.flush(); os.fsync(f.fileno())
    return {"answer": "about " + text}

reg = Registry()
reg.add_model(In)
reg.add_tool(Tool(ToolSpec(name="ask", input=Q, output=A, user="{{ question }}"), backend=FakeBackend(answer)))
reg.add_memory(Document("profile", Profile))
reg.add_memory(Log("dialog", Turn))

@reg.function
async def block(a: str, b: list[A]) -> str:
    if mode == "run":
        open(ready_file, "w").close()
        while True:  # killed here
            await asyncio.sleep(0.05)
    return a + " / " + ", ".join(x.answer for x in b)

reg.add_graph(Graph(name="lesson", input="In", writes=["profile", "dialog"], nodes=[
    ToolNode(name="intro", tool="ask", inputs={"question": "intro"}),
    MapNode(name="each", over="${input.topics}", node=ToolNode(name="t", tool="ask", inputs={"question": "${item}"})),
    FunctionNode(name="wait", function="block", inputs={"a": "${nodes.intro.output.answer}", "b": "${nodes.each.output}"}),
    MemoryWriteNode(name="save", memory="profile", op="replace", inputs={"value": {"summary": "${nodes.wait.output}"}}),
    MemoryWriteNode(name="log", memory="dialog", op="append", inputs={"entry": {"text": "${nodes.wait.output}"}}),
], output="${nodes.wait.output}"))

async def main():
    store = await open_store(db)
    ex = Executor(reg, store=store, journal=True, trace=True)
    if mode == "run":
        await ex.run("lesson", {"topics": ["fractions", "decimals"]}, scope={"user": "u", "session": "s"}, run_id="r1")
    else:
        result = await ex.resume("r1")
        print(json.dumps({"output": result.output, "replayed": sorted(result.replayed)}))
    await ex.close()
    await store.close()

asyncio.run(main())
'''


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_in_a_new_process(tmp_path: Path) -> None:
    script = tmp_path / "lesson.py"
    script.write_text(SCRIPT)
    db, calls, ready = tmp_path / "app.db", tmp_path / "calls.txt", tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(calls), str(ready), "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.stderr.read().decode()}")
        assert time.monotonic() < deadline, "the run never reached the blocking node"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    paid = _lines(calls)
    assert sorted(paid) == ["decimals", "fractions", "intro"]
    with sqlite3.connect(db) as conn:  # memory untouched: nothing committed before the kill
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        status = conn.execute("SELECT status FROM chainkit_journal_runs WHERE run_id='r1'").fetchone()
        journaled = {r[0] for r in conn.execute("SELECT path FROM chainkit_journal_nodes WHERE run_id='r1'")}
    assert status == ("running",)
    assert {"lesson/intro", "lesson/each/item 0", "lesson/each/item 1"} <= journaled
    assert "chainkit_journal_nodes" in tables

    done = subprocess.run([sys.executable, str(script), str(db), str(calls), str(ready), "resume"], env=env,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert report["output"] == "about intro / about fractions, about decimals"
    assert _lines(calls) == paid  # no completed LLM call was paid for again
    assert "lesson/intro" in report["replayed"]

    with sqlite3.connect(db) as conn:
        status = conn.execute("SELECT status FROM chainkit_journal_runs WHERE run_id='r1'").fetchone()
        kinds = [r[0] for r in conn.execute("SELECT kind FROM chainkit_events WHERE kind='memory_write'")]
    assert status == ("succeeded",)
    assert len(kinds) >= 2

    check = tmp_path / "check.py"
    check.write_text(
        "import asyncio, sys\n"
        "from pydantic import BaseModel\n"
        "from chainkit.memory import Document, Log, open_store\n"
        "class Profile(BaseModel):\n    summary: str = ''\n"
        "class Turn(BaseModel):\n    text: str\n"
        "async def main():\n"
        "    s = await open_store(sys.argv[1])\n"
        "    p = await s.document(Document('profile', Profile)).get({'user': 'u'})\n"
        "    n = await s.log(Log('dialog', Turn)).count({'user': 'u', 'session': 's'})\n"
        "    print(p.value.summary, n)\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, str(check), str(db)], env=env, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().strip() == "about intro / about fractions, about decimals 1"
