"""The session and course report: markdown built from stored records, plus a PNG chart of mastery per
objective over time.

Every figure in the report comes from the memories (plan, progress, profile, quiz records), never from
a model's prose; the `course_report` tool only adds a short narrative paragraph, which is marked as such.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

MASTERY_RATE = 0.5  # how far one graded answer moves the estimate towards its score
MASTERED_AT = 0.8


def _data(value: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else dict(value)


def _time(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def mastery_timeline(records: Iterable[Mapping[str, Any] | BaseModel]) -> dict[str, list[tuple[dt.datetime, float]]]:
    """Per objective, the mastery estimate after each graded answer (oldest first).

    The estimate starts at 0 and moves `MASTERY_RATE` of the way to each score: two right answers
    in a row give 0.75, a wrong one after that halves it.
    """
    rows = sorted((_data(r) for r in records), key=lambda r: _time(r["time"]))
    timeline: dict[str, list[tuple[dt.datetime, float]]] = {}
    for row in rows:
        points = timeline.setdefault(row["objective"], [])
        previous = points[-1][1] if points else 0.0
        score = float(row["score"])
        points.append((_time(row["time"]), round(previous + MASTERY_RATE * (score - previous), 4)))
    return timeline


def current_mastery(records: Iterable[Mapping[str, Any] | BaseModel]) -> dict[str, float]:
    return {objective: points[-1][1] for objective, points in mastery_timeline(records).items()}


def plot_mastery(records: Iterable[Mapping[str, Any] | BaseModel], path: Path | str, *, title: str = "Mastery") -> Path:
    """Write a PNG line chart of mastery per objective over time to `path`."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in threads and CI
    import matplotlib.pyplot as plt

    timeline = mastery_timeline(records)
    figure, axes = plt.subplots(figsize=(7, 3.5), dpi=100)
    try:
        for objective, points in sorted(timeline.items()):
            times = [t for t, _ in points]
            values = [v for _, v in points]
            axes.plot(times, values, marker="o", label=objective)
        axes.axhline(MASTERED_AT, linestyle="--", linewidth=0.8, color="grey")
        axes.set_ylim(0, 1.05)
        axes.set_ylabel("mastery")
        axes.set_title(title)
        if timeline:
            axes.legend(fontsize="small", loc="lower right")
        else:
            axes.text(0.5, 0.5, "no graded answers yet", ha="center", va="center", transform=axes.transAxes)
        figure.autofmt_xdate()
        figure.tight_layout()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, format="png")
    finally:
        plt.close(figure)
    return target


def render_report(
    *,
    plan: Mapping[str, Any] | BaseModel,
    progress: Mapping[str, Any] | BaseModel,
    profile: Mapping[str, Any] | BaseModel,
    quiz_records: Iterable[Mapping[str, Any] | BaseModel],
    narrative: str | None = None,
    chart: str | None = None,
    title: str | None = None,
) -> str:
    """The report as markdown. `chart` is a path (relative to the report) of the mastery PNG."""
    plan_d, progress_d, profile_d = _data(plan), _data(progress), _data(profile)
    records = sorted((_data(r) for r in quiz_records), key=lambda r: _time(r["time"]))
    mastery = current_mastery(records)
    met = set(progress_d.get("objectives_met") or [])
    lines = [f"# {title or plan_d.get('title', 'Course report')}", ""]
    if plan_d.get("goal"):
        lines += [f"Goal: {plan_d['goal']}", ""]
    sections = plan_d.get("sections") or []
    done = sum(1 for s in sections if s.get("status") == "done")
    counted = sum(1 for s in sections if s.get("status") != "skipped")
    correct = sum(1 for r in records if r.get("correct"))
    lines += [
        "## Summary",
        "",
        f"- Sections done: {done} of {counted}",
        f"- Objectives met: {len(met)} of {sum(len(s.get('objectives') or []) for s in sections if s.get('status') != 'skipped')}",
        f"- Quiz answers: {len(records)} graded, {correct} correct",
        f"- Turns: {progress_d.get('total_turns', 0)}",
        f"- Plan version changes: {max(0, len(plan_d.get('change_log') or []) - 1)}",
        "",
        "## Objectives",
        "",
        "| objective | section | mastery | met |",
        "|---|---|---|---|",
    ]
    for section in sections:
        if section.get("status") == "skipped":
            continue
        for objective in section.get("objectives") or []:
            value = mastery.get(objective["id"])
            shown = f"{value:.2f}" if value is not None else "-"
            lines.append(
                f"| {objective['id']} {objective['text']} | {section['title']} | {shown} | "
                f"{'yes' if objective['id'] in met else 'no'} |"
            )
    wrong = [m for m in profile_d.get("misconceptions") or []]
    if wrong:
        lines += ["", "## Misconceptions", ""]
        for item in wrong:
            state = "resolved" if item.get("resolved") else "open"
            lines.append(f"- {item['concept']} ({state}): {item.get('evidence', '')}")
    changes = (plan_d.get("change_log") or [])[1:]
    if changes:
        lines += ["", "## Plan changes", ""]
        for change in changes:
            lines.append(f"- v{change['version']}: {', '.join(change['ops'])} - {change['reason']}")
    if chart:
        lines += ["", "## Mastery over time", "", f"![mastery per objective]({chart})"]
    if narrative:
        lines += ["", "## Tutor's note", "", narrative.strip()]
    return "\n".join(lines) + "\n"


__all__ = ["MASTERED_AT", "MASTERY_RATE", "current_mastery", "mastery_timeline", "plot_mastery", "render_report"]
