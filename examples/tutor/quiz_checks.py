"""Checks on a generated quiz item before a learner sees it.

A `make_quiz` output is schema-valid by construction; these checks catch what a schema cannot: a key
that is not among the options, two options that are the same answer, an item that repeats one asked
before, an objective that is not in the plan, a numeric key that is not a number.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from .grading import is_number, key_index, normalize_text, numbers_in, parse_expression, parse_number

NEAR_DUPLICATE_RATIO = 0.85


def similarity(first: str, second: str) -> float:
    """0..1: how alike two questions read (after normalizing case, accents and punctuation)."""
    a, b = normalize_text(first), normalize_text(second)
    if not a or not b:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def is_near_duplicate(question: str, earlier: Iterable[str], *, ratio: float = NEAR_DUPLICATE_RATIO) -> bool:
    """True when `question` reads almost like an earlier one AND asks about the same numbers.

    "What is 1/2 + 1/3?" and "What is 1/4 + 1/2?" read alike but are different items (a parallel form
    is a fair new question); the same wording with the same numbers is a repeat.
    """
    numbers = sorted(numbers_in(question))
    return any(
        similarity(question, other) >= ratio and sorted(numbers_in(other)) == numbers for other in earlier
    )


def check_quiz_item(
    item: Mapping[str, Any] | BaseModel,
    *,
    earlier_questions: Iterable[str] = (),
    objectives: Iterable[str] | None = None,
) -> list[str]:
    """Every problem with `item` ({kind, question, options, answer, rubric, objective?}); [] when it is fine."""
    data = item.model_dump() if isinstance(item, BaseModel) else dict(item)
    problems: list[str] = []
    kind = data.get("kind")
    question = str(data.get("question") or "").strip()
    key = str(data.get("answer") or "").strip()
    options = [str(o) for o in (data.get("options") or [])]
    if not question:
        problems.append("the question is empty")
    if not key:
        problems.append("the answer key is empty")
    if kind == "mc":
        if len(options) < 2:
            problems.append("a multiple-choice item needs at least 2 options")
        normalized = [normalize_text(o) for o in options]
        if len(set(normalized)) != len(normalized):
            problems.append("two options are the same")
        if any(not o for o in normalized):
            problems.append("an option is empty")
        if key and options:
            matches = [o for o in normalized if o == normalize_text(key)]
            if not matches and key_index(options, key) is None:
                problems.append(f"the key {key!r} is not one of the options")
            elif len(matches) > 1:
                problems.append("more than one option equals the key")
            else:
                # Options that are equal numbers ("1/2" and "0.5") would both be correct.
                values = [_whole_number(o) for o in options]
                numeric = [v for v in values if v is not None]
                if len(numeric) != len(set(numeric)):
                    problems.append("two options are the same number, so more than one is correct")
    elif kind == "numeric":
        if options:
            problems.append("a numeric item has no options")
        if key and parse_number(key) is None:
            problems.append(f"the numeric key {key!r} is not a single number")
    elif kind == "expression":
        if key and parse_expression(key) is None:
            problems.append(f"the key {key!r} is not a maths expression")
    elif kind == "short":
        if not str(data.get("rubric") or "").strip():
            problems.append("a free-text item needs a rubric")
    else:
        problems.append(f"unknown item kind {kind!r}")
    if question and is_near_duplicate(question, earlier_questions):
        problems.append("the question nearly repeats one asked before")
    if objectives is not None and data.get("objective") is not None:
        known = set(objectives)
        if data["objective"] not in known:
            problems.append(f"objective {data['objective']!r} is not in the plan")
    if key and question and kind in ("numeric", "expression", "short") and normalize_text(key) in normalize_text(
        question
    ) and len(normalize_text(key)) > 3:
        problems.append("the question gives its own answer away")
    return problems


def _whole_number(option: str) -> Any:
    """The option's value when the option is just a number ("0.5", "1/2", "50%"), else None."""
    return parse_number(option) if is_number(option) else None


__all__ = ["NEAR_DUPLICATE_RATIO", "check_quiz_item", "is_near_duplicate", "similarity"]
