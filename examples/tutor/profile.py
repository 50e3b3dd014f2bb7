"""The learner profile: made at onboarding, changed only by validated deltas.

A profile (the `learner_profile` memory)::

    {name, background, level, goals, preferences: {pace, depth, examples, language},
     strengths: [str], misconceptions: [{concept, evidence, resolved}]}

`update_profile` (the reflection tool) returns a delta, never a profile; `apply_profile_delta` merges it
under rules a model cannot talk its way around: the session language changes only when the learner
says so (`source="learner"`), the level moves one step at a time, misconceptions need evidence, lists
stay bounded. The learner sees the profile with /profile and corrects it with the same deltas.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from chainkit.errors import UsageError

from .grading import normalize_text

LEVELS = ("beginner", "intermediate", "advanced")
PREFERENCE_VALUES: dict[str, tuple[str, ...]] = {
    "pace": ("slow", "normal", "fast"),
    "depth": ("overview", "standard", "deep"),
    "examples": ("few", "some", "many"),
}
MAX_STRENGTHS = 12
MAX_MISCONCEPTIONS = 20
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{2,4})?$")


def _data(value: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else copy.deepcopy(dict(value))


def new_profile(
    name: str, *, background: str = "", level: str = "beginner", goals: list[str] | None = None,
    language: str = "en", pace: str = "normal", depth: str = "standard", examples: str = "some",
    stated: tuple[str, ...] | list[str] = (),
) -> dict[str, Any]:
    """A fresh profile. `stated` names the preferences the learner gave (reflection leaves those alone)."""
    if level not in LEVELS:
        raise UsageError(f"new_profile: level must be one of {', '.join(LEVELS)}, not {level!r}")
    preferences = {"pace": pace, "depth": depth, "examples": examples}
    for key, value in preferences.items():
        if value not in PREFERENCE_VALUES[key]:
            raise UsageError(f"new_profile: {key} must be one of {', '.join(PREFERENCE_VALUES[key])}, not {value!r}")
    if not _LANGUAGE.match(language):
        raise UsageError(f"new_profile: language must be a language code such as 'en' or 'pt-BR', not {language!r}")
    return {
        "name": name, "background": background, "level": level, "goals": list(goals or []),
        "preferences": {**preferences, "language": language,
                        "stated": sorted(k for k in stated if k in PREFERENCE_VALUES)},
        "strengths": [], "misconceptions": [],
    }


@dataclass
class ProfileChange:
    profile: dict[str, Any]
    changes: list[str] = field(default_factory=list)  # one line per change, for the log and /profile
    ignored: list[str] = field(default_factory=list)  # parts of the delta that were not applied, and why

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _find(misconceptions: list[dict[str, Any]], concept: str) -> dict[str, Any] | None:
    wanted = normalize_text(concept)
    for item in misconceptions:
        if normalize_text(item["concept"]) == wanted:
            return item
    return None


def apply_profile_delta(
    profile: Mapping[str, Any] | BaseModel, delta: Mapping[str, Any] | BaseModel, *, source: str = "reflection"
) -> ProfileChange:
    """Merge a delta {level?, pace?, depth?, examples?, language?, add_strengths, add_misconceptions:
    [{concept, evidence}], resolved: [concept], forget: [concept]} into a copy of `profile`.

    `language` and `forget` are honoured only from the learner (`source="learner"`).
    """
    data = _data(profile)
    d = _data(delta)
    result = ProfileChange(profile=data)
    preferences = data.setdefault("preferences", {})

    level = d.get("level")
    if level:
        if level not in LEVELS:
            result.ignored.append(f"level {level!r} is not one of {', '.join(LEVELS)}")
        elif level != data.get("level"):
            old = LEVELS.index(data["level"]) if data.get("level") in LEVELS else 0
            step = max(-1, min(1, LEVELS.index(level) - old))
            if source == "learner":
                data["level"] = level
            else:  # reflection moves one step at a time
                data["level"] = LEVELS[old + step]
            result.changes.append(f"level: {LEVELS[old]} -> {data['level']}")

    for key, allowed in PREFERENCE_VALUES.items():
        value = d.get(key)
        if value is None:
            continue
        stated = preferences.setdefault("stated", [])
        if value not in allowed:
            result.ignored.append(f"{key} {value!r} is not one of {', '.join(allowed)}")
        elif source != "learner" and key in stated:
            result.ignored.append(f"{key} was set by the learner; only the learner changes it")
        elif preferences.get(key) != value:
            result.changes.append(f"{key}: {preferences.get(key)} -> {value}")
            preferences[key] = value
        if source == "learner" and value in allowed and key not in stated:
            stated.append(key)

    language = d.get("language")
    if language:
        if source != "learner":
            result.ignored.append("the session language changes only when the learner asks")
        elif not _LANGUAGE.match(str(language)):
            result.ignored.append(f"language {language!r} is not a language code")
        elif preferences.get("language") != language:
            result.changes.append(f"language: {preferences.get('language')} -> {language}")
            preferences["language"] = language

    strengths: list[str] = data.setdefault("strengths", [])
    for strength in d.get("add_strengths") or []:
        text = str(strength).strip()
        if text and normalize_text(text) not in {normalize_text(s) for s in strengths}:
            strengths.append(text)
            result.changes.append(f"strength: {text}")
    del strengths[: max(0, len(strengths) - MAX_STRENGTHS)]

    misconceptions: list[dict[str, Any]] = data.setdefault("misconceptions", [])
    for item in d.get("add_misconceptions") or []:
        concept = str(item.get("concept") or "").strip()
        evidence = str(item.get("evidence") or "").strip()
        if not concept or not evidence:
            result.ignored.append(f"misconception {concept or '?'!r} without evidence")
            continue
        known = _find(misconceptions, concept)
        if known is None:
            misconceptions.append({"concept": concept, "evidence": evidence, "resolved": False})
            result.changes.append(f"misconception: {concept}")
        elif known.get("resolved"):
            known.update(resolved=False, evidence=evidence)
            result.changes.append(f"misconception reopened: {known['concept']}")
    for concept in d.get("resolved") or []:
        known = _find(misconceptions, str(concept))
        if known is None or known.get("resolved"):
            result.ignored.append(f"no open misconception {concept!r} to resolve")
            continue
        known["resolved"] = True
        result.changes.append(f"resolved: {known['concept']}")
    for concept in d.get("forget") or []:
        known = _find(misconceptions, str(concept))
        if source != "learner":
            result.ignored.append("only the learner can remove a misconception")
        elif known is None:
            result.ignored.append(f"no misconception {concept!r} to remove")
        else:
            misconceptions.remove(known)
            result.changes.append(f"removed: {known['concept']}")
    while len(misconceptions) > MAX_MISCONCEPTIONS:
        resolved = [m for m in misconceptions if m.get("resolved")]
        misconceptions.remove(resolved[0] if resolved else misconceptions[0])
    return result


def open_misconceptions(profile: Mapping[str, Any] | BaseModel) -> list[str]:
    data = _data(profile)
    return [m["concept"] for m in data.get("misconceptions") or [] if not m.get("resolved")]


def profile_brief(profile: Mapping[str, Any] | BaseModel) -> str:
    """One short paragraph for prompts (a small model reads this, not the JSON)."""
    data = _data(profile)
    prefs = data.get("preferences") or {}
    parts = [
        f"Level: {data.get('level', 'beginner')}.",
        f"Pace: {prefs.get('pace', 'normal')}. Depth: {prefs.get('depth', 'standard')}. "
        f"Examples: {prefs.get('examples', 'some')}.",
    ]
    if data.get("background"):
        parts.append(f"Background: {data['background']}.")
    if data.get("strengths"):
        parts.append("Strong at: " + "; ".join(data["strengths"][-3:]) + ".")
    if wrong := open_misconceptions(data):
        parts.append("Watch for: " + "; ".join(wrong[-3:]) + ".")
    return " ".join(parts)


_ASSIGNMENT = re.compile(r"(\w+)\s*[=:]\s*(\"[^\"]*\"|'[^']*'|[^\s]+)")


def parse_profile_command(text: str) -> dict[str, Any]:
    """The learner's correction `/profile pace=slow depth=deep language=fr level=beginner forget="x"`
    as a delta. Unknown keys raise UsageError naming them (the CLI shows the message)."""
    delta: dict[str, Any] = {}
    rest = _ASSIGNMENT.sub(" ", text).strip()
    if rest:
        raise UsageError(f"/profile: cannot read {rest!r}; write key=value, e.g. /profile pace=slow")
    for key, raw in _ASSIGNMENT.findall(text):
        value = raw.strip("\"'")
        key = key.lower()
        if key in ("level", "language", *PREFERENCE_VALUES):
            delta[key] = value
        elif key == "forget":
            delta.setdefault("forget", []).append(value)
        elif key == "resolved":
            delta.setdefault("resolved", []).append(value)
        else:
            raise UsageError(
                f"/profile: unknown key {key!r} (level, pace, depth, examples, language, forget, resolved)"
            )
    return delta


__all__ = [
    "LEVELS",
    "PREFERENCE_VALUES",
    "ProfileChange",
    "apply_profile_delta",
    "new_profile",
    "open_misconceptions",
    "parse_profile_command",
    "profile_brief",
]
