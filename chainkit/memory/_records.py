"""What memory reads return (`Versioned`, `LogEntry`) and the raw rows stores hand to the handles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Versioned(Generic[T]):
    """A validated record and its version (1 for the first write, +1 for every write after)."""

    value: T
    version: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class LogEntry(Generic[T]):
    """One log entry. A summary entry stands for the entries `covers` = (first_seq, last_seq)."""

    seq: int
    value: T
    created_at: float
    is_summary: bool = False
    covers: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A document version or collection record as stored: JSON text plus its schema version."""

    version: int
    schema_version: int
    data: str | None  # None: a deleted collection record (tombstone keeps the version counting)
    updated_at: float


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A log entry as stored. `tokens` is its size under the default token counter."""

    seq: int
    schema_version: int
    data: str
    created_at: float
    is_summary: bool
    covers: tuple[int, int] | None
    tokens: int
