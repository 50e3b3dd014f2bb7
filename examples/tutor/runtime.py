"""The tutor runtime: the app (one ablation variant) over one store, per learner.

    async with Tutor(store="tutor.db", model="local") as tutor:
        if not await tutor.has_course("ada"):
            await tutor.start("ada", Onboarding(topic="Fractions", goal="add fractions"))
        turn = await tutor.say("ada", "continue")
        print(turn.reply)

Each learner is a scope `{"user": name}`: everything resumes by name, across runs and days. Each
`Tutor` is one session (its id marks the dialogue entries and quiz records of the session).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainkit.app import App
from chainkit.backends.base import Backend
from chainkit.errors import UsageError
from chainkit.loader import LoadedApp, default_store_path, load_app

from .interaction import data_of, quiz_display
from .materials import Ingested, ingest_directory
from .profile import ProfileChange, apply_profile_delta, parse_profile_command
from .report import plot_mastery, render_report
from .variants import check_ablation, processes_for, structured_memory

APP_FILE = Path(__file__).resolve().parent / "app.yaml"


@dataclass
class Onboarding:
    topic: str
    goal: str
    background: str = ""
    level: str = "beginner"
    language: str = "en"
    # "" = not stated: the default applies and reflection may adjust it; a stated value is the learner's own.
    pace: str = ""
    depth: str = ""
    examples: str = ""
    max_sections: int = 3


@dataclass
class TurnReply:
    reply: str
    intent: str
    action: str
    section: str = ""
    graded: bool = False
    correct: bool | None = None
    leak_blocked: bool = False
    reflect: bool = False
    run_id: str = ""


@dataclass
class ReportFiles:
    markdown: Path
    chart: Path
    text: str
    note: str = ""


@dataclass
class Tutor:
    """One tutoring session over a store. `model`: a model string or a Backend (tests pass a FakeBackend)."""

    store: str | Path | None = None
    model: str | Backend | None = None
    ablation: str = "none"
    every_k: int = 4
    session: str = field(default_factory=lambda: dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2))
    loaded: LoadedApp | None = None
    app: App | None = None

    def __post_init__(self) -> None:
        check_ablation(self.ablation)
        self.store = str(self.store or default_store_path("tutor"))
        self.structured = structured_memory(self.ablation)
        self.loaded = load_app(APP_FILE, model=self.model)  # type: ignore[arg-type]  # a Backend works too
        processes = processes_for(self.ablation, self.loaded.processes)
        self.app = App(self.loaded.registry, store=self.store, processes=processes)

    # -- lifecycle -----------------------------------------------------------------------------------

    async def open(self) -> Tutor:
        await self._app().open()
        return self

    async def close(self) -> None:
        if self.app is not None:
            await self.app.close()

    async def __aenter__(self) -> Tutor:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _app(self) -> App:
        assert self.app is not None
        return self.app

    async def drain(self) -> None:
        """Wait for background reflection / reaction runs."""
        await self._app().drain()

    # -- memories ------------------------------------------------------------------------------------

    @staticmethod
    def scope(name: str) -> dict[str, str]:
        if not name or not name.strip():
            raise UsageError("a learner needs a name")
        return {"user": name.strip()}

    def _spec(self, memory: str) -> Any:
        return self._app().registry.memories[memory]

    async def _document(self, name: str, memory: str) -> Any:
        got = await self._app().store.document(self._spec(memory)).get(self.scope(name))
        return data_of(got.value) if got is not None else None

    async def plan(self, name: str) -> dict[str, Any] | None:
        return await self._document(name, "course_plan")

    async def progress(self, name: str) -> dict[str, Any] | None:
        return await self._document(name, "progress")

    async def profile(self, name: str) -> dict[str, Any] | None:
        return await self._document(name, "learner_profile")

    async def plan_versions(self, name: str) -> list[dict[str, Any]]:
        versions = await self._app().store.document(self._spec("course_plan")).history(self.scope(name))
        return [{"version": v.version, "plan": data_of(v.value)} for v in versions]

    async def quiz_records(self, name: str) -> list[dict[str, Any]]:
        rows = await self._app().store.collection(self._spec("quiz_records")).query(self.scope(name), order_by="time")
        return [data_of(r.value) for r in rows]

    async def history(self, name: str, *, session_only: bool = False, last: int = 20) -> list[dict[str, Any]]:
        entries = await self._app().store.log(self._spec("dialogue")).last(self.scope(name), 500)
        rows = [data_of(e.value) for e in entries]
        if session_only:
            rows = [r for r in rows if r.get("session") == self.session]
        return rows[-last:]

    async def has_course(self, name: str) -> bool:
        progress = await self.progress(name)
        return progress is not None and progress.get("phase") != "onboarding"

    async def pending_quiz(self, name: str) -> str | None:
        progress = await self.progress(name) or {}
        pending = progress.get("pending_quiz")
        return quiz_display(pending) if pending else None

    # -- running -------------------------------------------------------------------------------------

    async def start(self, name: str, onboarding: Onboarding) -> dict[str, Any]:
        """Plan a course for a new learner (plan, profile and progress pointer written in one commit)."""
        executor = self._app().executor
        assert executor is not None
        data = {"name": name, "session": self.session, **onboarding.__dict__}
        if self.ablation == "single_prompt":
            data.pop("max_sections")
            result = await executor.run("baseline_start", data, scope=self.scope(name), process="onboarding")
        else:
            result = await executor.run("onboarding", {**data, "structured": self.structured},
                                        scope=self.scope(name), process="onboarding")
        return data_of(result.output)

    async def say(self, name: str, message: str) -> TurnReply:
        """One learner message through the interaction process (reflection and reaction follow in the
        background when due)."""
        if self.ablation == "single_prompt":
            payload: dict[str, Any] = {"message": message, "session": self.session}
        else:
            payload = {"message": message, "session": self.session, "structured": self.structured,
                       "every_k": self.every_k}
        turn = await self._app().send(payload, scope=self.scope(name))
        out = data_of(turn.outputs["interaction"])
        return TurnReply(
            reply=out["reply"], intent=out.get("intent", ""), action=out.get("action", ""),
            section=out.get("section") or "", graded=bool(out.get("graded")), correct=out.get("correct"),
            leak_blocked=bool(out.get("leak_blocked")), reflect=bool(out.get("reflect")),
            run_id=turn.run_ids.get("interaction", ""),
        )

    async def correct_profile(self, name: str, command: str) -> ProfileChange:
        """The learner's own correction (`pace=slow language=fr forget="..."`), through the same validated
        delta as reflection's, with the learner's rights (language, forgetting a misconception)."""
        delta = parse_profile_command(command)
        handle = self._app().store.document(self._spec("learner_profile"))
        got = await handle.get(self.scope(name))
        if got is None:
            raise UsageError("there is no profile yet (structured memory is off, or no course was started)")
        change = apply_profile_delta(data_of(got.value), delta, source="learner")
        if change.changed:
            await handle.replace(self.scope(name), change.profile, expected_version=got.version)
        return change

    async def ingest(self, name: str, directory: str | Path) -> Ingested:
        """The learner's notes (.md, .txt) into the searchable materials collection (ids are stable, so
        ingesting again replaces the chunks)."""
        found = ingest_directory(directory)
        store = self._app().store
        handle = store.collection(self._spec("materials"))
        async with store.transaction():
            for record in found.records:
                await handle.put(self.scope(name), record)
        return found

    async def report(self, name: str, folder: str | Path | None = None, *, session_only: bool = False) -> ReportFiles:
        """The markdown report and the mastery chart, from the stored records; the note from course_report."""
        executor = self._app().executor
        assert executor is not None
        folder = Path(folder) if folder else Path(self.store).parent / "tutor-reports" / name  # type: ignore[arg-type]
        folder.mkdir(parents=True, exist_ok=True)
        plan, progress, profile = await self.plan(name), await self.progress(name), await self.profile(name)
        records = await self.quiz_records(name)
        if session_only:
            records = [r for r in records if r.get("session") == self.session]
        note = ""
        if plan is not None:
            result = await executor.run("report", {"session": self.session if session_only else ""},
                                        scope=self.scope(name), process="report")
            note = str(data_of(result.output)["note"])
        stem = f"session-{self.session}" if session_only else "course"
        chart = plot_mastery(records, folder / f"{stem}.png", title=f"Mastery - {name}")
        text = render_report(
            plan=plan or {"title": "Course", "sections": []}, progress=progress or {}, profile=profile or {},
            quiz_records=records, narrative=note, chart=chart.name,
            title=(f"Session report - {name}" if session_only else None),
        )
        markdown = folder / f"{stem}.md"
        markdown.write_text(text, encoding="utf-8")
        return ReportFiles(markdown=markdown, chart=chart, text=text, note=note)


def describe_plan(plan: Mapping[str, Any] | None, progress: Mapping[str, Any] | None = None) -> str:
    if not plan:
        return "(no stored plan)"
    current = (progress or {}).get("current_section")
    lines = [f"{plan['title']} - goal: {plan['goal']} (plan version {max(c['version'] for c in plan['change_log'])})"]
    for section in plan["sections"]:
        marker = "->" if section["id"] == current else "  "
        lines.append(f"{marker} {section['id']} [{section['status']}] {section['title']}"
                     + (f" ({section['origin']})" if section.get("origin") != "plan" else ""))
        for objective in section["objectives"]:
            lines.append(f"      {objective['id']}: {objective['text']}")
    for change in plan.get("change_log", [])[1:]:
        lines.append(f"   v{change['version']}: {', '.join(change['ops'])} - {change['reason']}")
    return "\n".join(lines)


def describe_profile(profile: Mapping[str, Any] | None) -> str:
    if not profile:
        return "(no stored profile)"
    prefs = profile.get("preferences") or {}
    lines = [
        f"name: {profile['name']}   level: {profile.get('level')}   language: {prefs.get('language')}",
        f"pace: {prefs.get('pace')}   depth: {prefs.get('depth')}   examples: {prefs.get('examples')}",
        f"background: {profile.get('background') or '-'}",
        "strengths: " + ("; ".join(profile.get("strengths") or []) or "-"),
    ]
    for item in profile.get("misconceptions") or []:
        lines.append(f"misconception ({'resolved' if item.get('resolved') else 'open'}): {item['concept']} - {item['evidence']}")
    lines.append('correct me with: /profile pace=slow depth=deep examples=many language=fr forget="concept"')
    return "\n".join(lines)


def describe_progress(progress: Mapping[str, Any] | None) -> str:
    if not progress:
        return "(no progress yet)"
    pending = progress.get("pending_quiz")
    return (f"phase: {progress.get('phase')}   section: {progress.get('current_section')}   "
            f"turns: {progress.get('total_turns')} ({progress.get('turns_in_section')} in this section)   "
            f"sessions: {progress.get('sessions')}\n"
            f"objectives met: {', '.join(progress.get('objectives_met') or []) or '-'}\n"
            f"open quiz: {pending['question'] if pending else '-'}")


__all__ = ["APP_FILE", "Onboarding", "ReportFiles", "Tutor", "TurnReply", "describe_plan", "describe_profile",
           "describe_progress"]
