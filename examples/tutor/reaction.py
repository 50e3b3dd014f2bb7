"""The reaction process's deterministic steps: act on reflection's signal.

| signal | reaction |
|---|---|
| keep_teaching | nothing (reaction is not even triggered) |
| offer_quiz | progress.phase = quizzing: the next "continue" gets a quiz |
| advance, finish | the section is marked done, the next section whose prerequisites are done becomes active (or the course is finished) |
| remediate, adjust_plan | `adjust_plan` proposes edits; `plan.apply_plan_edits` applies the sound ones with the reason and a new plan version (change_log); a remediation that the model failed to propose is added by code (oracle rule: repeated wrong answers) |

The plan's version here is the change-log version (one per edit set); the stored document's own version
also counts status changes, and the graph writes the plan with the stored version it read, so a
concurrent change is a conflict and the reaction re-runs on fresh data.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .interaction import current_section, data_of, now_iso
from .plan import apply_plan_edits, mark_section, next_section, plan_outline_text
from .profile import profile_brief


class ReactionContext(BaseModel):
    needs_adjust: bool
    plan_text: str
    current_section: str
    signals: list[str]
    evidence: str
    profile: str


def plan_version(plan: Any) -> int:
    log = (data_of(plan) or {}).get("change_log") or []
    return max((int(entry["version"]) for entry in log), default=1)


def prepare_reaction(signal: str, reason: str, evidence: str, structured: bool, plan: Any, progress: Any,
                     profile: Any, window: list[Any]) -> ReactionContext:
    plan_d, progress_d = data_of(plan), data_of(progress) or {}
    current = str(progress_d.get("current_section") or "")
    if structured and plan_d:
        text = plan_outline_text(plan_d, current=current)
    else:
        lines = [data_of(e)["text"] for e in window or [] if str(data_of(e).get("text", "")).startswith("Course plan")]
        text = lines[-1] if lines else "(the plan is no longer in the conversation)"
    return ReactionContext(
        needs_adjust=signal in ("remediate", "adjust_plan"),
        plan_text=text[:1500],
        current_section=current,
        signals=[signal] + ([reason[:150]] if reason else []),
        evidence=evidence[:600],
        profile=profile_brief(data_of(profile)) if (structured and profile is not None) else "",
    )


class ReactionOutcome(BaseModel):
    action: str
    plan: Any
    plan_changed: bool
    plan_version: int
    applied: list[str]
    rejected: list[str]
    progress: Any
    progress_changed: bool
    note_entry: Any


def _start_section(progress: dict[str, Any], section_id: str | None) -> None:
    progress["current_section"] = section_id
    progress["turns_in_section"] = 0
    progress["pending_quiz"] = None
    progress["phase"] = "teaching" if section_id else "finished"


def apply_reaction(
    signal: str,
    reason: str,
    structured: bool,
    session: str,
    context: ReactionContext,
    plan: Any,
    progress: Any,
    records: list[Any],
    adjust: Any = None,
) -> ReactionOutcome:
    at = now_iso()
    plan_d = data_of(plan)
    progress_d = dict(data_of(progress) or {})
    before_progress = data_of(progress_d)
    version = plan_version(plan_d) if plan_d else 0
    applied: list[str] = []
    rejected: list[str] = []
    note = None
    new_plan = plan_d
    action = signal
    current = context.current_section
    if signal == "offer_quiz":
        if not progress_d.get("pending_quiz"):
            progress_d["phase"] = "quizzing"
    elif signal in ("advance", "finish"):
        if structured and plan_d and current_section(plan_d, progress_d) is not None:
            new_plan = mark_section(plan_d, current, "done")
            following = next_section(new_plan)
            if following:
                new_plan = mark_section(new_plan, following, "active")
            _start_section(progress_d, following)
            action = f"advance {current} -> {following}" if following else "finish"
        elif not structured:
            number = int(current.lstrip("s") or "1") + 1
            _start_section(progress_d, f"s{number}")
            note = f"Moving on to part {number} of the course plan."
            action = f"advance {current} -> s{number}"
    elif signal in ("remediate", "adjust_plan"):
        edits = list((data_of(adjust) or {}).get("edits") or [])
        why = str((data_of(adjust) or {}).get("reason") or "").strip() or reason or signal
        if structured and plan_d:
            result = apply_plan_edits(plan_d, edits, reason=why, version=version, source="adjust_plan", at=at)
            rejected = [f"{e.get('op')} {e.get('section')}: {r}" for e, r in result.rejected]
            if not result.changed and signal == "remediate":
                # The oracle rule (repeated wrong answers -> a review section) holds even when the
                # model proposed nothing usable.
                section = current_section(plan_d, progress_d)
                wrong = sorted({data_of(r)["objective"] for r in records or []
                                if data_of(r).get("section") == current and not data_of(r).get("correct")})
                texts = [o["text"] for o in (section or {}).get("objectives") or [] if o["id"] in wrong]
                if section is not None:
                    fallback = {"op": "remediate", "section": current, "title": f"Review: {section['title']}"[:60],
                                "objectives": texts[:3] or [o["text"] for o in section["objectives"]][:1]}
                    result = apply_plan_edits(plan_d, [fallback], reason=f"{reason or 'repeated wrong answers'}",
                                              version=version, source="reaction rule", at=at)
            applied = result.applied
            if result.changed:
                new_plan = result.plan
                version += 1
                active = next((s["id"] for s in new_plan["sections"] if s.get("status") == "active"), None)
                if active and active != current:
                    _start_section(progress_d, active)
        elif not structured and edits:
            note = "Plan change: " + "; ".join(
                f"{e.get('op')} {e.get('section')}" + (f" ({e.get('title')})" if e.get("title") else "") for e in edits
            ) + f". Reason: {why}"
            applied = [f"{e.get('op')} {e.get('section')}" for e in edits]
    return ReactionOutcome(
        action=action,
        plan=new_plan,
        plan_changed=bool(structured and plan_d is not None and new_plan != plan_d),
        plan_version=version,
        applied=applied,
        rejected=rejected,
        progress=progress_d,
        progress_changed=progress_d != before_progress,
        note_entry={"role": "summary", "text": note, "session": session, "section": current or None, "at": at}
        if note else None,
    )


__all__ = ["ReactionContext", "ReactionOutcome", "apply_reaction", "plan_version", "prepare_reaction"]
