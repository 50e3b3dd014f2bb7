"""Ablation switches: which processes run, over the same tools, memories and graphs.

| ablation | processes | what changes |
|---|---|---|
| none | interaction, reflection, reaction (app.yaml) | the full tutor |
| no_reflection | interaction, reaction | no summaries, profile updates or progress judgement; reaction acts on the code rules' signal that interaction computes (advance when every objective is met, remediate after repeated wrong answers, offer a quiz) |
| no_reaction | interaction, reflection | reflection still updates the profile and summarizes, but nothing acts on its signal: no plan edits, no advancing |
| no_structured_memory | as none | plan and profile are not stored as documents: onboarding writes them into the dialogue, reflection writes its profile notes there, reaction its plan changes; the tools see them only while they are in the dialogue window |
| single_prompt | single_prompt | one prompt with the course brief and the recent conversation; no tools chain, no keyed grading |
"""

from __future__ import annotations

from collections.abc import Iterable

from chainkit.app import Process, when
from chainkit.errors import UsageError

ABLATIONS = ("none", "no_reflection", "no_reaction", "no_structured_memory", "single_prompt")


def check_ablation(ablation: str) -> str:
    if ablation not in ABLATIONS:
        raise UsageError(f"unknown ablation {ablation!r} (one of: {', '.join(ABLATIONS)})")
    return ablation


def structured_memory(ablation: str) -> bool:
    return check_ablation(ablation) != "no_structured_memory"


def processes_for(ablation: str, defined: Iterable[Process]) -> list[Process]:
    """The processes of one variant, from the app file's processes."""
    check_ablation(ablation)
    by_name = {p.name: p for p in defined}
    if ablation in ("none", "no_structured_memory"):
        return [by_name["interaction"], by_name["reflection"], by_name["reaction"]]
    if ablation == "no_reaction":
        return [by_name["interaction"], by_name["reflection"]]
    if ablation == "no_reflection":
        reaction = by_name["reaction"]
        return [
            by_name["interaction"],
            reaction.model_copy(update={
                "trigger": when("${output.rule_signal} != 'keep_teaching'", after="interaction"),
                "inputs": {"signal": "${output.rule_signal}", "reason": "code rule (no reflection)",
                           "session": "${output.session}", "structured": "${output.structured}"},
                "background": True,
            }),
        ]
    return [Process(name="interaction", graph="single_prompt")]


__all__ = ["ABLATIONS", "check_ablation", "processes_for", "structured_memory"]
