"""Spaced review of objectives with FSRS (the `fsrs` package).

One review card per objective, stored in the `review_cards` collection. Each graded quiz answer is a
review of its objective: the score becomes an FSRS rating and the scheduler computes when the objective
is due again. `due_reviews` picks the weakest due objectives for a review quiz at the start of a session.
Fuzzing is off so that a schedule is reproducible (the tests and the evaluation depend on it).
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from chainkit.errors import UsageError

try:
    import fsrs
except ImportError as exc:  # pragma: no cover - the tutor extra is missing
    raise ImportError("spaced review needs the fsrs package: pip install 'chainkit[tutor]'") from exc

_SCHEDULER = fsrs.Scheduler(enable_fuzzing=False)


def _utc(value: dt.datetime | str | None) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def rating_for(score: float) -> fsrs.Rating:
    """A graded score (0..1) as an FSRS rating: wrong -> Again, partly right -> Hard, right -> Good;
    Easy is never inferred from one quiz answer."""
    if not 0.0 <= score <= 1.0:
        raise UsageError(f"rating_for: score must be within 0..1, not {score}")
    if score < 0.5:
        return fsrs.Rating.Again
    if score < 0.9:
        return fsrs.Rating.Hard
    return fsrs.Rating.Good


def new_card(objective: str, *, section: str = "", now: dt.datetime) -> dict[str, Any]:
    """A fresh card (a `review_cards` record), due now."""
    return {
        "objective": objective, "section": section, "state": int(fsrs.State.Learning), "step": 0,
        "stability": None, "difficulty": None, "due": _utc(now).isoformat(), "last_review": None,
        "reviews": 0, "lapses": 0,
    }


def _card(record: Mapping[str, Any]) -> fsrs.Card:
    return fsrs.Card(
        card_id=zlib.crc32(str(record["objective"]).encode()) or 1,
        state=fsrs.State(int(record["state"])),
        step=record.get("step"),
        stability=record.get("stability"),
        difficulty=record.get("difficulty"),
        due=_utc(record["due"]),
        last_review=_utc(record.get("last_review")),
    )


def review_card(record: Mapping[str, Any] | BaseModel, score: float, *, now: dt.datetime) -> dict[str, Any]:
    """The card after a review with `score` at `now`."""
    data = record.model_dump(mode="json") if isinstance(record, BaseModel) else dict(record)
    rating = rating_for(score)
    card, _ = _SCHEDULER.review_card(_card(data), rating, _utc(now))
    return {
        **data,
        "state": int(card.state), "step": card.step, "stability": card.stability, "difficulty": card.difficulty,
        "due": card.due.isoformat(), "last_review": card.last_review.isoformat() if card.last_review else None,
        "reviews": int(data.get("reviews") or 0) + 1,
        "lapses": int(data.get("lapses") or 0) + (1 if rating == fsrs.Rating.Again else 0),
    }


def retrievability(record: Mapping[str, Any] | BaseModel, *, now: dt.datetime) -> float:
    """The probability (0..1) that the learner still recalls the objective at `now`."""
    data = record.model_dump(mode="json") if isinstance(record, BaseModel) else dict(record)
    return float(_SCHEDULER.get_card_retrievability(_card(data), _utc(now)))


def due_reviews(
    records: Iterable[Mapping[str, Any] | BaseModel], *, now: dt.datetime, limit: int = 3
) -> list[str]:
    """Objectives whose card is due at `now`, least retained first (never-reviewed cards are not
    "due for review": they have not been taught and tested yet)."""
    due = []
    moment = _utc(now)
    for record in records:
        data = record.model_dump(mode="json") if isinstance(record, BaseModel) else dict(record)
        if not data.get("reviews"):
            continue
        if _utc(data["due"]) <= moment:
            due.append((retrievability(data, now=moment), data["objective"]))
    due.sort()
    return [objective for _, objective in due[:limit]]


__all__ = ["due_reviews", "new_card", "rating_for", "retrievability", "review_card"]
