"""The reflection process's deterministic steps.

Reflection (graphs/reflection.yaml) runs in the background after a turn that `triggers.reflection_due`
selects. Its tools propose; this module disposes:

- `summarize_dialogue` -> a rolling summary entry that stands for the turns read (`summarize` op);
- `update_profile` -> a DELTA merged by `profile.apply_profile_delta` (language untouchable, level one
  step, misconceptions need evidence); a misconception found by key grading is added by code too;
- `judge_progress` -> a signal that code rules bound: `advance` only when every objective of the section
  has a correct graded answer, `remediate` after repeated wrong answers whatever the model says.

In the "no structured memory" ablation the profile delta is not stored in the profile: it becomes a note
in the dialogue (the chat context), where later turns may or may not still see it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .interaction import REMEDIATE_AFTER_WRONG, current_section, data_of, now_iso
from .profile import apply_profile_delta, new_profile, profile_brief

SIGNALS = ("keep_teaching", "offer_quiz", "advance", "remediate", "adjust_plan", "finish")


class ReflectionContext(BaseModel):
    section_id: str
    section_title: str
    objectives: list[str]
    objective_ids: list[str]
    turns: list[str]
    previous_summary: str
    quiz_results: list[str]
    profile: str
    language: str
    turns_in_section: int
    has_profile: bool


def prepare_reflection(structured: bool, plan: Any, progress: Any, profile: Any, window: list[Any],
                       records: list[Any]) -> ReflectionContext:
    plan_d, progress_d, profile_d = data_of(plan), data_of(progress) or {}, data_of(profile)
    section = current_section(plan_d, progress_d) if structured else None
    section_id = str(progress_d.get("current_section") or "")
    entries = [data_of(e) for e in window or []]
    previous = next((e["text"] for e in reversed(entries) if e.get("role") == "summary"), "")
    turns = [f"{e['role']}: {' '.join(str(e['text']).split())[:300]}" for e in entries if e.get("role") != "summary"]
    rows = [data_of(r) for r in records or [] if data_of(r).get("section") == section_id]
    results = [
        f"{r['objective']}: {'right' if r['correct'] else 'wrong'} - Q: {r['question'][:120]} - A: {r['answer'][:60]}"
        + (f" (shows: {r['misconception']})" if r.get("misconception") else "")
        for r in rows[:6]
    ]
    objectives = section.get("objectives") if section else [{"id": f"{section_id or 's1'}.o1", "text": "the goals of this part"}]
    language = ((profile_d or {}).get("preferences") or {}).get("language") or (plan_d or {}).get("language") or "en"
    return ReflectionContext(
        section_id=section_id,
        section_title=section["title"] if section else f"part {section_id.lstrip('s') or '1'} of the course",
        objectives=[f"{o['id']}: {o['text']}" for o in objectives],
        objective_ids=[o["id"] for o in objectives],
        turns=turns[-8:],
        previous_summary=previous[:600],
        quiz_results=results,
        profile=profile_brief(profile_d) if (profile_d and structured) else "(see the notes in the conversation)",
        language=language,
        turns_in_section=int(progress_d.get("turns_in_section") or 0),
        has_profile=profile_d is not None,
    )


class ReflectionOutcome(BaseModel):
    signal: str
    reason: str
    section: str
    evidence: str
    met: list[str]
    profile: Any
    profile_changed: bool
    profile_changes: list[str]
    profile_ignored: list[str]
    summary_entry: Any
    note_entry: Any


def finish_reflection(
    structured: bool,
    session: str,
    context: ReflectionContext,
    progress: Any,
    profile: Any,
    records: list[Any],
    summary: Any,
    delta: Any,
    judge: Any,
) -> ReflectionOutcome:
    at = now_iso()
    progress_d = data_of(progress) or {}
    rows = [data_of(r) for r in records or [] if data_of(r).get("section") == context.section_id]
    summary_d, delta_d, judge_d = data_of(summary), dict(data_of(delta) or {}), data_of(judge) or {}
    # Misconceptions shown by key-graded answers are facts, not opinions: add them with their evidence.
    found = list(delta_d.get("add_misconceptions") or [])
    for row in rows[:3]:
        if not row.get("correct") and row.get("misconception"):
            found.append({"concept": row["misconception"], "evidence": f"answered {row['answer']!r} to {row['question']!r}"})
    delta_d["add_misconceptions"] = found[:5]
    # Without structured memory there is no stored profile: the delta is applied to a blank one and
    # only its description goes into the chat context.
    profile_d = data_of(profile) if structured else new_profile("learner")
    change = apply_profile_delta(profile_d, delta_d, source="reflection") if profile_d else None
    graded_right = {r["objective"] for r in rows if r.get("correct")}
    met = sorted(set(progress_d.get("objectives_met") or []) & set(context.objective_ids))
    claimed = [m for m in judge_d.get("met") or [] if m in graded_right and m in context.objective_ids]
    met = sorted(set(met) | set(claimed))
    wrong: dict[str, int] = {}
    for row in rows:
        if not row.get("correct"):
            wrong[row["objective"]] = wrong.get(row["objective"], 0) + 1
    signal = str(judge_d.get("signal") or "keep_teaching")
    reason = str(judge_d.get("reason") or "")
    all_met = bool(context.objective_ids) and all(o in met for o in context.objective_ids)
    if all_met:
        signal, reason = "advance", f"every objective of {context.section_id} has a correct graded answer"
    elif any(n >= REMEDIATE_AFTER_WRONG for n in wrong.values()):
        worst = max(wrong, key=lambda k: wrong[k])
        signal, reason = "remediate", f"{wrong[worst]} wrong answers on {worst}" + (f"; {reason}" if reason else "")
    elif signal in ("advance", "finish"):
        signal, reason = "keep_teaching", f"not every objective is met yet (model said {judge_d.get('signal')})"
    elif signal == "offer_quiz" and progress_d.get("pending_quiz"):
        signal = "keep_teaching"
    evidence_lines = [r for r in (f"{row['objective']}: {row['answer'][:60]} ({'right' if row['correct'] else 'wrong'})"
                                  for row in rows[:4])]
    if change is not None:
        evidence_lines += [f"misconception: {m['concept']}" for m in change.profile.get("misconceptions") or []
                           if not m.get("resolved")][:3]
    summary_text = str(summary_d.get("summary") or "").strip() if summary_d else ""
    note = None
    if not structured and change is not None and change.changes:
        note = {"role": "summary", "text": "Notes about the learner: " + "; ".join(change.changes), "session": session,
                "section": context.section_id or None, "at": at}
    return ReflectionOutcome(
        signal=signal if signal in SIGNALS else "keep_teaching",
        reason=reason[:300],
        section=context.section_id,
        evidence="\n".join(evidence_lines)[:600],
        met=met,
        profile=change.profile if change is not None else None,
        profile_changed=bool(structured and change is not None and change.changed),
        profile_changes=change.changes if change is not None else [],
        profile_ignored=change.ignored if change is not None else [],
        summary_entry={"role": "summary", "text": summary_text or "(no summary)", "session": session,
                       "section": context.section_id or None, "at": at},
        note_entry=note,
    )


__all__ = ["ReflectionContext", "ReflectionOutcome", "SIGNALS", "finish_reflection", "prepare_reflection"]
