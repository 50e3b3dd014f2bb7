"""The one sync facade: run a coroutine to completion from synchronous code.

chainkit is async at its core; scripts and notebooks call `run_sync(coro)` (through `Tool.run_sync`,
`App.send_sync`, ...). It is the only place in the library that drives an event loop.

- Inside a running event loop it refuses with `UsageError` (blocking a loop from within would
  deadlock or starve it; the caller should `await` instead).
- Otherwise it runs the coroutine on a *persistent* loop owned by the calling thread (one
  `asyncio.Runner` per thread). Keeping the loop alive across calls keeps loop-bound resources
  valid: a shared `httpx.AsyncClient`, a backend's semaphore, an open store connection.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from chainkit.errors import UsageError

T = TypeVar("T")


class _ThreadRunner:
    """Owns one thread's runner; closes it when the thread's locals are collected."""

    __slots__ = ("runner",)

    def __init__(self) -> None:
        self.runner = asyncio.Runner()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.runner.close()

    def __del__(self) -> None:
        self.close()


_local = threading.local()
_main_holder: _ThreadRunner | None = None


def _runner() -> asyncio.Runner:
    global _main_holder
    holder: _ThreadRunner | None = getattr(_local, "holder", None)
    if holder is None:
        holder = _ThreadRunner()
        _local.holder = holder
        if threading.current_thread() is threading.main_thread():
            # Thread-locals of the main thread are not collected before interpreter exit.
            _main_holder = holder
    return holder.runner


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on this thread's persistent event loop and return its result."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()  # never awaited: close it so Python does not warn about it
        raise UsageError(
            "a sync chainkit call was made inside a running event loop; "
            "use the async API (await ...) instead"
        )
    return _runner().run(coro)


def close_thread_loop() -> None:
    """Close the calling thread's persistent loop (a later `run_sync` opens a fresh one)."""
    global _main_holder
    holder: _ThreadRunner | None = getattr(_local, "holder", None)
    if holder is not None:
        _local.holder = None
        if holder is _main_holder:
            _main_holder = None
        holder.close()


@atexit.register
def _close_main_loop() -> None:
    if _main_holder is not None:
        _main_holder.close()


__all__ = ["close_thread_loop", "run_sync"]
