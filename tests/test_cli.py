"""The `chainkit` command, run through click's runner and as a real subprocess, on the example app."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from chainkit.cli import main
from chainkit.loader import load_app

HELLO = Path(__file__).resolve().parent.parent / "examples" / "hello"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_validate_accepts_the_example(runner: CliRunner):
    result = runner.invoke(main, ["validate", str(HELLO)])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == 9


def test_validate_lists_every_error_and_exits_1(runner: CliRunner, tmp_path: Path):
    copy = tmp_path / "hello"
    shutil.copytree(HELLO, copy)
    quiz = copy / "tools" / "quiz.yaml"
    quiz.write_text(quiz.read_text().replace("description:", "descripton:").replace("max_tokens: 200", "max_tokens: x"))
    result = runner.invoke(main, ["validate", str(quiz), str(copy / "memories")])
    assert result.exit_code == 1
    assert "quiz.yaml:3:1 descripton: unknown key" in result.output
    assert "settings.max_tokens" in result.output
    assert "2 problem(s)" in result.output


def test_run_on_the_fake_backend_prints_json(runner: CliRunner, tmp_path: Path):
    store = tmp_path / "hello.db"
    args = ["run", str(HELLO / "app.yaml"), "--store", str(store), "-s", "user=ann", "-s", "session=s1", "--json"]
    first = runner.invoke(main, [*args, "-i", "message=what is a fraction?"])
    assert first.exit_code == 0, first.output
    data = json.loads(first.output)
    assert data["outputs"]["chat"] == {"intent": "question", "reply": "fake answer"}
    second = runner.invoke(main, [*args, "-i", "message=and decimals?"])
    assert json.loads(second.output)["background"] == ["review"]  # every 2nd chat run
    with sqlite3.connect(store) as db:
        runs = db.execute("SELECT process, status FROM chainkit_runs ORDER BY started_at").fetchall()
    assert runs == [("chat", "succeeded"), ("chat", "succeeded"), ("review", "succeeded")]


def test_run_reports_a_bad_app_without_a_traceback(runner: CliRunner, tmp_path: Path):
    copy = tmp_path / "hello"
    shutil.copytree(HELLO, copy)
    (copy / "graphs" / "chat.yaml").write_text((copy / "graphs" / "chat.yaml").read_text().replace("tool: answer", "tool: nope"))
    result = runner.invoke(main, ["run", str(copy / "app.yaml"), "-i", "message=hi", "--store", str(tmp_path / "x.db")])
    assert result.exit_code == 1
    assert "no tool named 'nope'" in result.output and "Traceback" not in result.output


def test_trace_lists_runs_and_shows_one(runner: CliRunner, tmp_path: Path):
    store = tmp_path / "hello.db"
    runner.invoke(main, ["run", str(HELLO / "app.yaml"), "--store", str(store), "-i", "message=what is pi?"])
    listed = runner.invoke(main, ["trace", "--store", str(store), "--json"])
    runs = json.loads(listed.output)
    assert len(runs) == 1 and runs[0]["status"] == "succeeded"
    tree = runner.invoke(main, ["trace", runs[0]["run_id"][:8], "--store", str(store)])
    assert tree.exit_code == 0, tree.output
    for expected in ("classify", "llm classify #1", "user: Message: what is pi?", "write log append"):
        assert expected in tree.output
    as_json = json.loads(runner.invoke(main, ["trace", runs[0]["run_id"], "--store", str(store), "--json"]).output)
    assert {child["name"] for child in as_json["children"]} >= {"classify", "reply", "log_learner"}


def test_graph_prints_mermaid(runner: CliRunner):
    result = runner.invoke(main, ["graph", str(HELLO / "app.yaml")])
    assert result.exit_code == 0
    assert result.output.startswith("flowchart TD")
    assert "p_chat -->|every 2| p_review" in result.output
    assert "_chat_classify -->|when| _chat_reply" in result.output


def test_schema_prints_and_writes(runner: CliRunner, tmp_path: Path):
    assert json.loads(runner.invoke(main, ["schema", "tool"]).output)["title"] == "chainkit tool"
    result = runner.invoke(main, ["schema", "--out", str(tmp_path)])
    assert result.exit_code == 0 and len(list(tmp_path.glob("*.schema.json"))) == 4


def test_help_texts(runner: CliRunner):
    for command in ([], ["validate"], ["run"], ["trace"], ["graph"], ["schema"], ["setup-local"]):
        result = runner.invoke(main, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


async def test_background_processes_never_meet_a_locked_database(tmp_path: Path):
    """A background process commits while the next message journals and traces, many times over."""
    loaded = load_app(HELLO / "app.yaml")
    async with loaded.app(store=tmp_path / "busy.db") as app:
        for i in range(30):
            await app.send({"message": f"question {i}?"}, scope={"user": "ann", "session": "s"})
        await app.drain()
        quizzes = await app.store.collection(app.registry.memories["quizzes"]).query({"user": "ann"})
        log = await app.store.log(app.registry.memories["log"]).count({"user": "ann", "session": "s"})
    assert len(quizzes) == 15 and log == 60


@pytest.mark.slow
def test_the_console_script_runs_in_a_subprocess(tmp_path: Path):
    command = [sys.executable, "-m", "chainkit.cli", "run", str(HELLO / "app.yaml"), "--store",
               str(tmp_path / "s.db"), "-i", "message=hello?", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"]["chat"]["intent"] == "question"


def test_error_text_with_brackets_is_printed_verbatim(runner: CliRunner, tmp_path: Path):
    copy = tmp_path / "hello"
    shutil.copytree(HELLO, copy)
    (copy / "app.yaml").write_text((copy / "app.yaml").read_text().replace("tools: [tools/*]", "tools: ['toolz/[b]']"))
    result = runner.invoke(main, ["validate", str(copy / "app.yaml")])
    assert "'toolz/[b]' matches no file" in result.output  # "[b]" is not taken for rich markup
