"""Scopes: which learner, session or custom key a memory operation is about."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from chainkit.errors import ScopeError


class Scope(Mapping[str, str]):
    """A frozen mapping of scope key names to values: `Scope(user="alice", session="s1")`.

    A memory uses only the keys its scope names; extra keys are ignored, so one Scope can be passed
    to every memory of a run.
    """

    __slots__ = ("_items", "_hash")

    def __init__(self, items: Mapping[str, Any] | None = None, /, **values: Any) -> None:
        merged = {**(dict(items) if items else {}), **values}
        self._items: dict[str, Any] = merged
        self._hash: int | None = None

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._items.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._items.items())
        return f"Scope({inner})"


ScopeLike = Scope | Mapping[str, Any]


def resolve_scope(memory: str, names: tuple[str, ...], scope: ScopeLike | None) -> tuple[dict[str, str], str]:
    """The values this memory uses from `scope` and their storage key.

    Returns ({name: value} for the memory's scope names, key text). The key is a JSON array of the
    values, so no value can forge another scope by containing a separator.
    """
    if scope is None:
        scope = {}
    if not isinstance(scope, Mapping):
        raise ScopeError(f"scope must be a Scope or a mapping, got {type(scope).__name__}", memory=memory)
    used: dict[str, str] = {}
    for name in names:
        if name not in scope:
            raise ScopeError(
                f"scope is missing key {name!r} (this memory is scoped by {list(names)})",
                memory=memory,
                scope=dict(scope),
            )
        value = scope[name]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ScopeError(
                f"scope key {name!r} must be a string or an integer, got {type(value).__name__}",
                memory=memory,
                scope=dict(scope),
            )
        text = str(value)
        if not text:
            raise ScopeError(f"scope key {name!r} is empty", memory=memory, scope=dict(scope))
        used[name] = text
    return used, json.dumps([used[n] for n in names], ensure_ascii=False)
