"""A single background thread that owns one SQLite connection and runs write transactions in order.

The journal and the trace sink write into the same file as the memory store. Their writes must never
wait for a lock on the event loop's thread: the lock holder may be a memory transaction that needs the
loop to finish, and waiting there would deadlock until the busy timeout. So every write is a job on this
thread, run in FIFO order (a run's end never overtakes its start), retried while the file is locked.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# How long a write may keep retrying a locked database before it fails.
LOCK_DEADLINE_S = 60.0


class SQLiteWriter:
    def __init__(self, path: str | Path, *, schema: str, synchronous: str = "NORMAL") -> None:
        self.path = str(path)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="chainkit-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._pool.submit(self._open, schema, synchronous).result()

    def _open(self, schema: str, synchronous: str) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        self._retrying(lambda: conn.executescript(schema))
        self._conn = conn

    @staticmethod
    def _retrying(fn: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + LOCK_DEADLINE_S
        delay = 0.005
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def _transaction(self, work: Callable[[sqlite3.Connection], None]) -> None:
        conn = self._conn
        assert conn is not None

        def attempt() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        self._retrying(attempt)

    def submit(self, work: Callable[[sqlite3.Connection], None]) -> concurrent.futures.Future[None]:
        """Queue a write transaction; returns at once."""
        return self._pool.submit(self._transaction, work)

    async def write(self, work: Callable[[sqlite3.Connection], None]) -> None:
        """Queue a write transaction and wait for it without blocking the event loop. If the waiting task
        is cancelled, the write still happens (shielded): what was recorded must not be dropped."""
        await asyncio.shield(asyncio.wrap_future(self.submit(work)))

    def read(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run a read on the writer's thread (after every queued write) and return its result."""
        conn = self._conn
        assert conn is not None
        return self._pool.submit(lambda: self._retrying(lambda: work(conn))).result()

    def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self._pool.submit(shut).result()
        self._pool.shutdown(wait=True)
