"""`chainkit tutor`: chat with the private tutor (chainkit/cli.py imports this file and calls `main`).

    chainkit tutor                                   first run asks the onboarding questions
    chainkit tutor --name ada                        resume ada's course (any day, same store)
    chainkit tutor --script lines.txt --name demo    non-interactive: learner lines from a file (- = stdin)
    chainkit tutor --model openai-compatible:http://127.0.0.1:8080/v1#qwen --ablation no_reflection

Commands in the chat: /plan /progress /profile [key=value ...] /quiz /history /report /quit /help.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TextIO

from chainkit.errors import ChainkitError
from chainkit.loader import default_store_path

from .profile import LEVELS, PREFERENCE_VALUES
from .runtime import Onboarding, Tutor, describe_plan, describe_profile, describe_progress
from .variants import ABLATIONS

HELP = ("commands: /plan  /progress  /profile [pace=slow depth=deep examples=many language=fr forget=\"...\"]  "
        "/quiz  /history  /report  /quit")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chainkit tutor", description="A private tutor that plans, teaches, quizzes, "
                                "reflects and adjusts the course. Runs offline on the embedded model by default.")
    p.add_argument("--name", help="the learner (resumes this learner's course from the store)")
    p.add_argument("--topic", help="what to learn (first run)")
    p.add_argument("--goal", help="what you want to be able to do (first run)")
    p.add_argument("--background", help="what you already know (first run)")
    p.add_argument("--preferences", help="e.g. 'pace=slow depth=deep examples=many level=beginner' (first run)")
    p.add_argument("--language", help="reply language code, e.g. en, fr (first run; later: /profile language=..)")
    p.add_argument("--model", default=None, help="model string (default: the embedded `local` model; e.g. "
                   "openai-compatible:http://127.0.0.1:8080/v1#model, fake)")
    p.add_argument("--store", default=None, help="SQLite file (default: $CHAINKIT_HOME/tutor.db)")
    p.add_argument("--material", type=Path, help="a folder of .md/.txt notes to teach and quiz from")
    p.add_argument("--script", help="read learner lines from this file (- for stdin) and print the transcript")
    p.add_argument("--ablation", choices=ABLATIONS, default="none", help="evaluation variant (default: none)")
    p.add_argument("--reports", type=Path, help="folder for the reports (default: next to the store)")
    p.add_argument("--every-k", type=int, default=4, help="reflect at least every k on-topic turns (default 4)")
    return p


def parse_preferences(text: str) -> dict[str, str]:
    """`pace=slow depth=deep` or free words ("slow, deep, lots of examples") -> preference values."""
    found: dict[str, str] = {}
    for key, value in re.findall(r"(\w+)\s*=\s*(\w+)", text):
        if key in PREFERENCE_VALUES and value in PREFERENCE_VALUES[key]:
            found[key] = value
        elif key == "level" and value in LEVELS:
            found["level"] = value
    words = set(re.findall(r"\w+", text.lower()))
    for key, values in PREFERENCE_VALUES.items():
        for value in values:
            if key not in found and value in words and value not in ("some", "normal", "standard"):
                found[key] = value
    if "examples" not in found and ({"lots", "many"} & words) and "example" in text.lower():
        found["examples"] = "many"
    for level in LEVELS:
        if "level" not in found and level in words:
            found["level"] = level
    return found


class Conversation:
    """Input and output of one CLI session: a script (plain transcript) or a terminal (rich)."""

    def __init__(self, script: str | None, out: TextIO) -> None:
        self.out = out
        self.lines: Iterator[str] | None = None
        self.console: Any = None
        if script is not None:
            source = sys.stdin if script == "-" else open(script, encoding="utf-8")  # noqa: SIM115
            self.lines = (line.rstrip("\n") for line in source)
        else:
            from rich.console import Console

            self.console = Console()

    @property
    def scripted(self) -> bool:
        return self.lines is not None

    def ask(self, question: str) -> str | None:
        if self.lines is not None:
            for line in self.lines:
                if line.strip() and not line.lstrip().startswith("#"):
                    self.out.write(f"tutor> {question}\nyou> {line.strip()}\n")
                    return line.strip()
            return None
        from rich.prompt import Prompt

        try:
            return Prompt.ask(f"[bold cyan]{question}[/]").strip()
        except (EOFError, KeyboardInterrupt):
            return None

    def next_message(self) -> str | None:
        if self.lines is not None:
            for line in self.lines:
                if line.strip() and not line.lstrip().startswith("#"):
                    self.out.write(f"you> {line.strip()}\n")
                    return line.strip()
            return None
        from rich.prompt import Prompt

        try:
            return Prompt.ask("[bold green]you[/]")
        except (EOFError, KeyboardInterrupt):
            return None

    def tutor(self, text: str, *, markdown: bool = True) -> None:
        if self.console is None:
            self.out.write("tutor> " + text.replace("\n", "\n       ") + "\n")
            self.out.flush()
            return
        from rich.markdown import Markdown
        from rich.panel import Panel
        from rich.text import Text

        # Text(...), never a bare string: "[active]" in a plan or "[b]" from a learner is not markup.
        self.console.print(Panel(Markdown(text) if markdown else Text(text), title="tutor", title_align="left",
                                 border_style="cyan"))

    def info(self, text: str) -> None:
        if self.console is None:
            self.out.write(f"[{text}]\n")
        else:
            from rich.text import Text

            self.console.print(Text(text, style="dim"))

    def working(self, what: str) -> Any:
        """A spinner while the model works (nothing in a script)."""
        return self.console.status(what, spinner="dots") if self.console is not None else nullcontext()


async def _onboard(tutor: Tutor, talk: Conversation, name: str, args: argparse.Namespace) -> bool:
    answers: dict[str, str | None] = {}
    for key, question in (
        ("topic", "What would you like to learn?"),
        ("goal", "What do you want to be able to do at the end?"),
        ("background", "What do you already know about it?"),
        ("preferences", "How do you like to learn (pace slow/normal/fast, depth overview/standard/deep, examples few/some/many)?"),
        ("language", "Which language should I use (a code such as en, fr, de)?"),
    ):
        given = getattr(args, key)
        answers[key] = given if given is not None else talk.ask(question)
        if answers[key] is None:
            talk.info("no answer: the course was not started")
            return False
    preferences = parse_preferences(answers["preferences"] or "")
    language = (answers["language"] or "en").strip().lower() or "en"
    if not re.fullmatch(r"[a-z]{2,3}(-[a-z]{2,4})?", language):
        talk.info(f"{language!r} is not a language code; using en")
        language = "en"
    onboarding = Onboarding(topic=answers["topic"] or "", goal=answers["goal"] or "",
                            background=answers["background"] or "", language=language,
                            level=preferences.get("level", "beginner"), pace=preferences.get("pace", ""),
                            depth=preferences.get("depth", ""), examples=preferences.get("examples", ""))
    with talk.working("Planning your course..."):
        await tutor.start(name, onboarding)
    plan = await tutor.plan(name)
    talk.tutor(describe_plan(plan, await tutor.progress(name)) if plan else
               f"Your course on {onboarding.topic} is ready. Say 'continue' to begin.", markdown=False)
    return True


async def _command(tutor: Tutor, talk: Conversation, name: str, line: str, reports: Path | None) -> bool:
    """Run one /command; False when the session should end."""
    command, _, rest = line.partition(" ")
    command = command.lower()
    if command in ("/quit", "/exit", "/q"):
        return False
    if command == "/help":
        talk.info(HELP)
    elif command == "/plan":
        talk.tutor(describe_plan(await tutor.plan(name), await tutor.progress(name)), markdown=False)
    elif command == "/progress":
        talk.tutor(describe_progress(await tutor.progress(name)), markdown=False)
    elif command == "/profile":
        if rest.strip():
            await tutor.drain()  # a correction wins over a reflection still in flight
            change = await tutor.correct_profile(name, rest)
            talk.info("changed: " + ("; ".join(change.changes) or "nothing")
                      + (" | ignored: " + "; ".join(change.ignored) if change.ignored else ""))
        talk.tutor(describe_profile(await tutor.profile(name)), markdown=False)
    elif command == "/quiz":
        pending = await tutor.pending_quiz(name)
        if pending:
            talk.tutor("Your open quiz question:\n" + pending, markdown=False)
        else:
            await _say(tutor, talk, name, "Quiz me on this section, please.")
    elif command == "/history":
        for entry in await tutor.history(name, last=12):
            talk.info(f"{entry['role']}: {' '.join(entry['text'].split())[:160]}")
    elif command == "/report":
        await tutor.drain()
        with talk.working("Writing your report..."):
            files = await tutor.report(name, reports)
        talk.tutor(files.text)
        talk.info(f"report: {files.markdown}  chart: {files.chart}")
    else:
        talk.info(f"unknown command {command}; {HELP}")
    return True


async def _say(tutor: Tutor, talk: Conversation, name: str, message: str) -> None:
    with talk.working("Thinking..."):
        turn = await tutor.say(name, message)
    talk.tutor(turn.reply)


async def run(args: argparse.Namespace, out: TextIO) -> int:
    talk = Conversation(args.script, out)
    store = args.store or default_store_path("tutor")
    tutor = Tutor(store=store, model=args.model, ablation=args.ablation, every_k=args.every_k)
    async with tutor:
        name = args.name or talk.ask("What is your name?")
        if not name:
            talk.info("no name given")
            return 2
        if await tutor.has_course(name):
            progress = await tutor.progress(name) or {}
            talk.tutor(f"Welcome back, {name}. You are in section {progress.get('current_section')} "
                       f"after {progress.get('total_turns', 0)} turns. {HELP}", markdown=False)
        elif not await _onboard(tutor, talk, name, args):
            return 1
        if args.material is not None:
            found = await tutor.ingest(name, args.material)
            talk.info(f"read {found.files} files into {len(found.records)} note chunks"
                      + (f"; skipped: {'; '.join(found.skipped)}" if found.skipped else ""))
        while True:
            line = talk.next_message()
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            try:
                if line.startswith("/"):
                    if not await _command(tutor, talk, name, line, args.reports):
                        break
                else:
                    await _say(tutor, talk, name, line)
            except ChainkitError as exc:
                talk.info(f"error: {exc}")
        try:
            with talk.working("Finishing..."):
                await tutor.drain()
        except ChainkitError as exc:
            talk.info(f"a background reflection failed: {exc}")
        if await tutor.has_course(name):
            with talk.working("Writing your session report..."):
                files = await tutor.report(name, args.reports, session_only=True)
            talk.info(f"session report: {files.markdown}")
    return 0


def main(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help or a usage error; argparse has printed it
        return int(exc.code or 0)
    try:
        return asyncio.run(run(args, sys.stdout))
    except ChainkitError as exc:
        print(f"chainkit tutor: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
