"""The course plan: built from the `plan_course` outline, changed only by validated edit operations.

A plan (the `course_plan` memory) is plain data::

    {title, goal, topic, language,
     sections: [{id, title, objectives: [{id, text}], key_points, prerequisites: [section ids],
                 status: pending|active|done|skipped, origin: plan|learner|remediation|split|merge|adjust,
                 depth: overview|standard|deep}],
     change_log: [{version, ops, reason, source, at}]}

`apply_plan_edits` is the only way a plan changes after it is made. Each edit ({op, section, after,
other, title, objectives, depth}) is applied on its own or rejected with a reason; an edit that would
put a section before one of its prerequisites (or otherwise break the plan's invariants) is rejected
and the plan is left as it was for that edit. Free text never reaches this function: only the
validated output of `adjust_plan` (or a learner's structured command).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from chainkit.errors import UsageError

EDIT_OPS = ("insert", "remove", "reorder", "split", "merge", "depth", "remediate")
DEPTHS = ("overview", "standard", "deep")
_FINISHED = ("done", "skipped")
MAX_OBJECTIVES_PER_SECTION = 6


def _data(value: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else copy.deepcopy(dict(value))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --- building ----------------------------------------------------------------------------------------


def plan_from_outline(
    outline: Mapping[str, Any] | BaseModel, *, topic: str, goal: str, language: str, at: str | None = None
) -> dict[str, Any]:
    """A plan from a `plan_course` output {title, sections: [{title, objectives, key_points, requires?}]}.

    Ids are assigned here (s1, s2, ...; s1.o1, ...). `requires` lists 1-based numbers of EARLIER sections;
    anything else is dropped (a model cannot make a section depend on a later one). Without `requires`
    a section depends on the one before it.
    """
    data = _data(outline)
    raw_sections = data.get("sections") or []
    if not raw_sections:
        raise UsageError("plan_from_outline: the outline has no sections")
    sections = []
    for number, raw in enumerate(raw_sections, start=1):
        sid = f"s{number}"
        objectives = [str(o).strip() for o in raw.get("objectives") or [] if str(o).strip()]
        if not objectives:
            objectives = [f"Understand {str(raw.get('title') or sid).strip()}"]
        requires = raw.get("requires")
        if requires is None:
            prerequisites = [f"s{number - 1}"] if number > 1 else []
        else:
            prerequisites = [f"s{n}" for n in dict.fromkeys(int(n) for n in requires) if 1 <= n < number]
        sections.append(
            {
                "id": sid,
                "title": str(raw.get("title") or f"Section {number}").strip(),
                "objectives": [
                    {"id": f"{sid}.o{k}", "text": text}
                    for k, text in enumerate(objectives[:MAX_OBJECTIVES_PER_SECTION], start=1)
                ],
                "key_points": [str(p).strip() for p in raw.get("key_points") or [] if str(p).strip()],
                "prerequisites": prerequisites,
                "status": "pending",
                "origin": "plan",
                "depth": "standard",
            }
        )
    sections[0]["status"] = "active"
    return {
        "title": str(data.get("title") or topic).strip(),
        "goal": goal,
        "topic": topic,
        "language": language,
        "sections": sections,
        "change_log": [{"version": 1, "ops": ["create"], "reason": "initial plan", "source": "plan_course",
                        "at": at or _now()}],
    }


def section_index(plan: Mapping[str, Any], section_id: str) -> int | None:
    for i, section in enumerate(plan.get("sections") or []):
        if section["id"] == section_id:
            return i
    return None


def objective_ids(plan: Mapping[str, Any], *, include_skipped: bool = False) -> list[str]:
    return [
        o["id"]
        for s in plan.get("sections") or []
        if include_skipped or s.get("status") != "skipped"
        for o in s.get("objectives") or []
    ]


def next_section(plan: Mapping[str, Any], *, done: Iterable[str] = ()) -> str | None:
    """The first section in plan order that is not finished and whose prerequisites are all finished."""
    finished = {s["id"] for s in plan["sections"] if s.get("status") in _FINISHED} | set(done)
    for section in plan["sections"]:
        if section["id"] in finished:
            continue
        if all(p in finished for p in section.get("prerequisites") or []):
            return section["id"]
    return None


def plan_outline_text(plan: Mapping[str, Any], *, current: str | None = None) -> str:
    """A short outline for prompts: one line per section, objectives indented."""
    lines = []
    for section in plan.get("sections") or []:
        marker = " (current)" if section["id"] == current else ""
        requires = f" [needs {', '.join(section['prerequisites'])}]" if section.get("prerequisites") else ""
        lines.append(f"{section['id']}: {section['title']} - {section['status']}{marker}{requires}")
        for objective in section.get("objectives") or []:
            lines.append(f"  {objective['id']}: {objective['text']}")
    return "\n".join(lines)


def check_plan(plan: Mapping[str, Any]) -> list[str]:
    """Every broken invariant of a plan; [] when it is sound."""
    problems: list[str] = []
    sections = plan.get("sections") or []
    ids = [s["id"] for s in sections]
    if len(set(ids)) != len(ids):
        problems.append("section ids repeat")
    objective_list = [o["id"] for s in sections for o in s.get("objectives") or []]
    if len(set(objective_list)) != len(objective_list):
        problems.append("objective ids repeat")
    position = {sid: i for i, sid in enumerate(ids)}
    for i, section in enumerate(sections):
        for prerequisite in section.get("prerequisites") or []:
            if prerequisite not in position:
                problems.append(f"{section['id']} needs {prerequisite}, which is not in the plan")
            elif position[prerequisite] >= i:
                problems.append(f"{section['id']} comes before its prerequisite {prerequisite}")
        if not section.get("objectives"):
            problems.append(f"{section['id']} has no objectives")
    active = [s["id"] for s in sections if s.get("status") == "active"]
    if len(active) > 1:
        problems.append(f"more than one active section: {active}")
    return problems


# --- editing -----------------------------------------------------------------------------------------


@dataclass
class PlanEditResult:
    plan: dict[str, Any]  # the new plan (the old one when nothing applied)
    applied: list[str] = field(default_factory=list)  # a line per applied edit, e.g. "remediate s3 -> r1"
    rejected: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (edit, why)

    @property
    def changed(self) -> bool:
        return bool(self.applied)


class _Rejected(Exception):
    pass


def apply_plan_edits(
    plan: Mapping[str, Any] | BaseModel,
    edits: Sequence[Mapping[str, Any] | BaseModel],
    *,
    reason: str,
    version: int,
    source: str = "reaction",
    at: str | None = None,
) -> PlanEditResult:
    """Apply each edit that keeps the plan sound; reject the others with a reason.

    `version` is the stored version of `plan`; the change-log entry names `version + 1`, the version the
    caller writes (with `expected_version=version`, so a concurrent change is a conflict, not a loss).
    """
    current = _data(plan)
    if problems := check_plan(current):
        raise UsageError(f"apply_plan_edits: the stored plan is already unsound: {'; '.join(problems)}")
    if not reason.strip():
        raise UsageError("apply_plan_edits: a plan edit needs a reason")
    result = PlanEditResult(plan=current)
    for raw in edits:
        edit = _data(raw)
        trial = copy.deepcopy(current)
        try:
            line = _apply_one(trial, edit)
            problems = check_plan(trial)
            if problems:
                raise _Rejected("; ".join(problems))
        except _Rejected as rejected:
            result.rejected.append((edit, str(rejected)))
            continue
        current = trial
        result.applied.append(line)
    if result.applied:
        current.setdefault("change_log", []).append(
            {"version": version + 1, "ops": result.applied, "reason": reason.strip(), "source": source,
             "at": at or _now()}
        )
    result.plan = current
    return result


def _apply_one(plan: dict[str, Any], edit: dict[str, Any]) -> str:
    op = edit.get("op")
    if op not in EDIT_OPS:
        raise _Rejected(f"unknown operation {op!r} (known: {', '.join(EDIT_OPS)})")
    sid = str(edit.get("section") or "").strip()
    if op == "insert":
        return _insert(plan, edit, origin="adjust")
    index = section_index(plan, sid)
    if index is None:
        raise _Rejected(f"there is no section {sid!r}")
    section = plan["sections"][index]
    if op == "remediate":
        return _remediate(plan, index, edit)
    if section.get("status") == "done":
        raise _Rejected(f"section {sid} is done; finished sections stay as they were taught")
    if op == "remove":
        if section.get("status") == "skipped":
            raise _Rejected(f"section {sid} is already skipped")
        section["status"] = "skipped"
        return f"remove {sid}"
    if op == "depth":
        depth = edit.get("depth")
        if depth not in DEPTHS:
            raise _Rejected(f"depth must be one of {', '.join(DEPTHS)}")
        if section.get("depth") == depth:
            raise _Rejected(f"section {sid} is already at depth {depth}")
        section["depth"] = depth
        return f"depth {sid} {depth}"
    if op == "reorder":
        return _reorder(plan, index, edit.get("after"))
    if op == "split":
        return _split(plan, index, edit)
    return _merge(plan, index, edit)


def _new_id(plan: Mapping[str, Any], prefix: str) -> str:
    used = {s["id"] for s in plan["sections"]}
    numbers = [int(m.group(1)) for sid in used if (m := re.fullmatch(rf"{prefix}(\d+)", sid))]
    number = max(numbers, default=0) + 1
    while f"{prefix}{number}" in used:
        number += 1
    return f"{prefix}{number}"


def _objectives(edit: Mapping[str, Any], sid: str) -> list[dict[str, str]]:
    texts = [str(t).strip() for t in edit.get("objectives") or [] if str(t).strip()]
    if not texts:
        raise _Rejected("a new section needs at least one objective")
    return [{"id": f"{sid}.o{k}", "text": t} for k, t in enumerate(texts[:MAX_OBJECTIVES_PER_SECTION], start=1)]


def _title(edit: Mapping[str, Any]) -> str:
    title = str(edit.get("title") or "").strip()
    if not title:
        raise _Rejected("a new section needs a title")
    return title


def _insert(plan: dict[str, Any], edit: Mapping[str, Any], *, origin: str) -> str:
    after = edit.get("after")
    position = 0
    prerequisites: list[str] = []
    if after:
        index = section_index(plan, str(after))
        if index is None:
            raise _Rejected(f"there is no section {after!r} to insert after")
        position = index + 1
        prerequisites = [str(after)]
    sid = _new_id(plan, "s")
    plan["sections"].insert(
        position,
        {"id": sid, "title": _title(edit), "objectives": _objectives(edit, sid), "key_points": [],
         "prerequisites": prerequisites, "status": "pending", "origin": origin,
         "depth": edit.get("depth") if edit.get("depth") in DEPTHS else "standard"},
    )
    return f"insert {sid} after {after}" if after else f"insert {sid} at start"


def _remediate(plan: dict[str, Any], index: int, edit: Mapping[str, Any]) -> str:
    """A remediation section goes right before the section the learner struggles with, which then
    needs it. It becomes the active section when the struggling one was active."""
    target = plan["sections"][index]
    if target.get("status") in _FINISHED:
        raise _Rejected(f"section {target['id']} is {target['status']}; remediate a section still to learn")
    rid = _new_id(plan, "r")
    was_active = target.get("status") == "active"
    section = {
        "id": rid, "title": _title(edit), "objectives": _objectives(edit, rid), "key_points": [],
        "prerequisites": list(target.get("prerequisites") or []),
        "status": "active" if was_active else "pending", "origin": "remediation", "depth": "standard",
    }
    if was_active:
        target["status"] = "pending"
    target["prerequisites"] = [*(target.get("prerequisites") or []), rid]
    plan["sections"].insert(index, section)
    return f"remediate {target['id']} -> {rid}"


def _reorder(plan: dict[str, Any], index: int, after: Any) -> str:
    sections = plan["sections"]
    section = sections.pop(index)
    if after:
        anchor = section_index(plan, str(after))
        if anchor is None or str(after) == section["id"]:
            raise _Rejected(f"there is no other section {after!r} to move after")
        sections.insert(anchor + 1, section)
        return f"reorder {section['id']} after {after}"
    sections.insert(0, section)
    return f"reorder {section['id']} to start"


def _split(plan: dict[str, Any], index: int, edit: Mapping[str, Any]) -> str:
    first = plan["sections"][index]
    objectives = first.get("objectives") or []
    if len(objectives) < 2:
        raise _Rejected(f"section {first['id']} has one objective; there is nothing to split")
    half = (len(objectives) + 1) // 2
    sid = _new_id(plan, "s")
    second_title = str(edit.get("title") or "").strip() or f"{first['title']} (part 2)"
    second = {
        "id": sid, "title": second_title,
        "objectives": [{"id": f"{sid}.o{k}", "text": o["text"]} for k, o in enumerate(objectives[half:], start=1)],
        "key_points": list(first.get("key_points") or []), "prerequisites": [first["id"]],
        "status": "pending", "origin": "split", "depth": first.get("depth", "standard"),
    }
    first["objectives"] = objectives[:half]
    # What needed the whole section now needs its second part (which needs the first).
    for other in plan["sections"]:
        if other is not first and first["id"] in (other.get("prerequisites") or []):
            other["prerequisites"] = [sid if p == first["id"] else p for p in other["prerequisites"]]
    plan["sections"].insert(index + 1, second)
    return f"split {first['id']} -> {first['id']} + {sid}"


def _merge(plan: dict[str, Any], index: int, edit: Mapping[str, Any]) -> str:
    keep = plan["sections"][index]
    other_id = str(edit.get("other") or "").strip()
    other_index = section_index(plan, other_id)
    if other_index is None or other_id == keep["id"]:
        raise _Rejected(f"merge needs another section to merge in (got {other_id!r})")
    other = plan["sections"][other_index]
    if other.get("status") in _FINISHED:
        raise _Rejected(f"section {other_id} is {other['status']}; it cannot be merged")
    if other_index < index:
        raise _Rejected(f"merge the later section into the earlier one: {other_id} comes before {keep['id']}")
    between = plan["sections"][index + 1 : other_index]
    if any(keep["id"] in (s.get("prerequisites") or []) for s in between):
        raise _Rejected(f"sections between {keep['id']} and {other_id} depend on {keep['id']}")
    if len(keep["objectives"]) + len(other["objectives"]) > MAX_OBJECTIVES_PER_SECTION:
        raise _Rejected(f"a merged section would have more than {MAX_OBJECTIVES_PER_SECTION} objectives")
    used = {o["id"] for o in keep["objectives"]}
    start = len(keep["objectives"]) + 1
    for k, objective in enumerate(other["objectives"], start=start):
        new_id = objective["id"] if objective["id"] not in used else f"{keep['id']}.o{k}"
        keep["objectives"].append({"id": new_id, "text": objective["text"]})
    keep["key_points"] = list(dict.fromkeys([*keep.get("key_points", []), *other.get("key_points", [])]))
    keep["prerequisites"] = [
        p for p in dict.fromkeys([*keep.get("prerequisites", []), *other.get("prerequisites", [])])
        if p not in (keep["id"], other_id)
    ]
    # `keep` now stands where `other` stood in the order, so later prerequisites stay earlier.
    title = str(edit.get("title") or "").strip()
    keep["title"] = title or f"{keep['title']} and {other['title']}"
    keep["origin"] = "merge"
    if other.get("status") == "active":
        keep["status"] = "active"
    plan["sections"].pop(other_index)
    plan["sections"].pop(index)
    plan["sections"].insert(other_index - 1, keep)
    for section in plan["sections"]:
        section["prerequisites"] = list(
            dict.fromkeys(keep["id"] if p == other_id else p for p in section.get("prerequisites") or [])
        )
    return f"merge {other_id} into {keep['id']}"


def mark_section(plan: Mapping[str, Any] | BaseModel, section_id: str, status: str) -> dict[str, Any]:
    """A copy of `plan` with one section's status set (advancing is a status change, not an edit).
    Setting a section active makes any other active section pending."""
    data = _data(plan)
    index = section_index(data, section_id)
    if index is None:
        raise UsageError(f"mark_section: there is no section {section_id!r}")
    if status not in ("pending", "active", "done", "skipped"):
        raise UsageError(f"mark_section: unknown status {status!r}")
    if status == "active":
        for section in data["sections"]:
            if section.get("status") == "active":
                section["status"] = "pending"
    data["sections"][index]["status"] = status
    return data


__all__ = [
    "DEPTHS",
    "EDIT_OPS",
    "PlanEditResult",
    "apply_plan_edits",
    "check_plan",
    "mark_section",
    "next_section",
    "objective_ids",
    "plan_from_outline",
    "plan_outline_text",
    "section_index",
]
