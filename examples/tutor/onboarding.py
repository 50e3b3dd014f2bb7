"""Onboarding and the end-of-course report facts: the deterministic steps of graphs/onboarding.yaml and
graphs/report.yaml (and the single-prompt baseline's start).

`start_course` turns the `plan_course` outline into the plan's first version (ids, prerequisites and
statuses assigned by code, `plan.plan_from_outline`), makes the learner profile from the onboarding
answers and puts the learner at the first section. Without structured memory (ablation) the plan and
the profile become two messages in the dialogue instead of documents.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .interaction import data_of, now_iso
from .plan import plan_from_outline
from .profile import LEVELS, PREFERENCE_VALUES, new_profile, profile_brief
from .report import current_mastery


class CourseStart(BaseModel):
    plan: Any
    profile: Any
    progress: Any
    plan_entry: Any
    profile_entry: Any


def plan_message(plan: dict[str, Any]) -> str:
    lines = [f"Course plan: {plan['title']} (goal: {plan['goal']})"]
    for number, section in enumerate(plan["sections"], start=1):
        lines.append(f"{number}. {section['title']}: " + "; ".join(o["text"] for o in section["objectives"]))
    return "\n".join(lines)


def start_course(
    name: str,
    topic: str,
    goal: str,
    background: str,
    level: str,
    language: str,
    pace: str,
    depth: str,
    examples: str,
    structured: bool,
    session: str,
    outline: Any,
) -> CourseStart:
    at = now_iso()
    plan = plan_from_outline(data_of(outline), topic=topic, goal=goal, language=language, at=at)
    profile = new_profile(
        name, background=background, level=level if level in LEVELS else "beginner", goals=[goal] if goal else [],
        language=language,
        pace=pace if pace in PREFERENCE_VALUES["pace"] else "normal",
        depth=depth if depth in PREFERENCE_VALUES["depth"] else "standard",
        examples=examples if examples in PREFERENCE_VALUES["examples"] else "some",
        stated=[key for key, value in (("pace", pace), ("depth", depth), ("examples", examples))
                if value in PREFERENCE_VALUES[key]],
    )
    progress = {"phase": "teaching", "current_section": plan["sections"][0]["id"], "turns_in_section": 0,
                "total_turns": 0, "turns_since_reflection": 0, "objectives_met": [], "pending_quiz": None,
                "sessions": 1, "last_session": session}
    if structured:
        return CourseStart(plan=plan, profile=profile, progress=progress, plan_entry=None, profile_entry=None)
    base = {"role": "tutor", "session": session, "section": None, "intent": "onboarding", "at": at}
    return CourseStart(
        plan=None, profile=None, progress=progress,
        plan_entry={**base, "text": plan_message(plan)},
        profile_entry={**base, "text": f"About you: {profile_brief(profile)} Language: {language}."},
    )


def course_brief(topic: str, goal: str, background: str, level: str, language: str, pace: str, depth: str,
                 examples: str, session: str) -> Any:
    """The single-prompt baseline's only memory of the course: one dialogue entry."""
    text = (f"Course: {topic}. Goal: {goal}. Background: {background or 'not given'}. Level: {level}. "
            f"Pace: {pace}. Depth: {depth}. Examples: {examples}. Language: {language}.")
    return {"role": "tutor", "text": text, "session": session, "section": None, "intent": "onboarding", "at": now_iso()}


class BaselineContext(BaseModel):
    course: str
    recent: list[str]


def dialogue_lines(brief: list[Any], entries: list[Any]) -> BaselineContext:
    """The baseline's prompt parts: the course brief and the recent turns as lines."""
    first = [data_of(e) for e in brief or []]
    lines = [f"{e['role']}: {' '.join(str(e['text']).split())[:300]}" for e in (data_of(x) for x in entries or [])]
    return BaselineContext(course=first[0]["text"] if first else "", recent=lines[-8:])


class ReportFacts(BaseModel):
    title: str
    facts: list[str]
    profile: str
    language: str


def report_facts(session: str, plan: Any, progress: Any, profile: Any, records: list[Any]) -> ReportFacts:
    """Facts for the `course_report` note, all from stored records (the note may use nothing else)."""
    plan_d, progress_d, profile_d = data_of(plan) or {}, data_of(progress) or {}, data_of(profile) or {}
    rows = [data_of(r) for r in records or []]
    in_session = [r for r in rows if r.get("session") == session] if session else rows
    sections = plan_d.get("sections") or []
    done = [s["title"] for s in sections if s.get("status") == "done"]
    facts = [
        f"Sections done: {len(done)} of {sum(1 for s in sections if s.get('status') != 'skipped')}"
        + (f" ({', '.join(done[:4])})" if done else ""),
        f"Quiz answers this session: {len(in_session)}, correct: {sum(1 for r in in_session if r.get('correct'))}",
        f"Quiz answers in the whole course: {len(rows)}, correct: {sum(1 for r in rows if r.get('correct'))}",
        f"Objectives met: {len(progress_d.get('objectives_met') or [])}",
    ]
    mastery = current_mastery(rows)
    weak = [o for o, v in sorted(mastery.items(), key=lambda kv: kv[1]) if v < 0.5][:3]
    if weak:
        facts.append("Needs more practice on: " + ", ".join(weak))
    open_wrong = [m["concept"] for m in profile_d.get("misconceptions") or [] if not m.get("resolved")]
    if open_wrong:
        facts.append("Open misconceptions: " + "; ".join(open_wrong[:3]))
    if progress_d.get("phase") == "finished":
        facts.append("The course is finished.")
    language = (profile_d.get("preferences") or {}).get("language") or plan_d.get("language") or "en"
    return ReportFacts(title=str(plan_d.get("title") or "Your course"), facts=facts,
                       profile=profile_brief(profile_d) if profile_d else "", language=language)


__all__ = ["BaselineContext", "CourseStart", "dialogue_lines", "ReportFacts", "course_brief", "plan_message", "report_facts", "start_course"]
