"""When reflection runs: adaptively, not after every message.

Reflection costs several tool calls, so it runs when there is something to reflect on: after a graded
quiz, when the learner states a preference or confusion (or asks to change the course), at a section
boundary, and every `k` on-topic turns otherwise. Never on an off-topic turn (including a message that
tries to instruct the tutor): such a turn must change nothing stored, and a reflection would read it.
"""

from __future__ import annotations

from dataclasses import dataclass

INTENTS = ("continue", "question", "quiz_answer", "change_request", "preference", "confusion", "off_topic")
DEFAULT_EVERY_K_TURNS = 4


@dataclass(frozen=True)
class ReflectionDecision:
    run: bool
    reason: str  # quiz_graded | preference | confusion | change_request | section_boundary | every_k_turns | off_topic | not_yet


def reflection_due(
    *,
    intent: str,
    graded: bool = False,
    section_boundary: bool = False,
    turns_since_reflection: int = 0,
    every_k_turns: int = DEFAULT_EVERY_K_TURNS,
) -> ReflectionDecision:
    """Whether to start a reflection after this turn. `turns_since_reflection` counts this turn."""
    if intent == "off_topic":
        return ReflectionDecision(False, "off_topic")
    if graded:
        return ReflectionDecision(True, "quiz_graded")
    if intent in ("preference", "confusion", "change_request"):
        return ReflectionDecision(True, intent)
    if section_boundary:
        return ReflectionDecision(True, "section_boundary")
    if every_k_turns > 0 and turns_since_reflection >= every_k_turns:
        return ReflectionDecision(True, "every_k_turns")
    return ReflectionDecision(False, "not_yet")


__all__ = ["DEFAULT_EVERY_K_TURNS", "INTENTS", "ReflectionDecision", "reflection_due"]
