"""The run journal: each completed node's output, in the store's SQLite file, for resume.

Tables (own prefix, next to the memories):

    chainkit_journal_runs(run_id PK, graph, process, scope, input, status, error, started_at, ended_at)
    chainkit_journal_nodes(run_id, path, output, created_at)  PK (run_id, path)

Records are buffered and written in one transaction at each flush. The executor flushes when a tool
node (an LLM call) finishes, before it commits memory writes, and when the run ends, so a completed
LLM call is never paid twice and a commit never uses an output the journal could lose. The file is in
WAL mode with synchronous=NORMAL: a flushed record survives the process being killed (`kill -9`);
set `durable_fsync=True` to also survive power loss (synchronous=FULL, slower).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainkit._sqlite_writer import SQLiteWriter
from chainkit.errors import RunError, UsageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chainkit_journal_runs (
    run_id TEXT PRIMARY KEY, graph TEXT NOT NULL, process TEXT, scope TEXT NOT NULL, input TEXT,
    status TEXT NOT NULL, error TEXT, started_at REAL NOT NULL, ended_at REAL);
CREATE TABLE IF NOT EXISTS chainkit_journal_nodes (
    run_id TEXT NOT NULL, path TEXT NOT NULL, output TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (run_id, path));
"""


@dataclass(slots=True)
class JournaledRun:
    run_id: str
    graph: str
    process: str | None
    scope: dict[str, str]
    input: Any
    status: str
    error: str | None
    nodes: dict[str, str] = field(default_factory=dict)  # path -> output JSON


class Journal:
    """Buffered journal writer/reader over one SQLite file. Writes run on a background thread
    (`chainkit._sqlite_writer`), so a flush never blocks the event loop on another writer's lock."""

    def __init__(self, path: str | Path, *, durable_fsync: bool = False) -> None:
        self.path = str(path)
        self._writer = SQLiteWriter(self.path, schema=_SCHEMA, synchronous="FULL" if durable_fsync else "NORMAL")
        self._runs: list[tuple[Any, ...]] = []
        self._nodes: list[tuple[str, str, str, float]] = []
        self._ends: list[tuple[str, str | None, float, str]] = []
        self._closed = False

    # -- writing -----------------------------------------------------------------------------------

    def begin_run(self, run_id: str, graph: str, process: str | None, scope: dict[str, str], input_json: str | None) -> None:
        self._runs.append((run_id, graph, process, json.dumps(scope, sort_keys=True), input_json, "running", time.time()))

    def record(self, run_id: str, path: str, output_json: str) -> None:
        self._nodes.append((run_id, path, output_json, time.time()))

    def end_run(self, run_id: str, status: str, error: str | None = None) -> None:
        self._ends.append((status, error, time.time(), run_id))

    def _take(self) -> Callable[[sqlite3.Connection], None] | None:
        """Swap the buffers out (on the caller's thread, so no record is lost) into one write job."""
        if not (self._runs or self._nodes or self._ends):
            return None
        if self._closed:
            raise UsageError("the journal is closed")
        runs, nodes, ends = self._runs, self._nodes, self._ends
        self._runs, self._nodes, self._ends = [], [], []

        def write(conn: sqlite3.Connection) -> None:
            if runs:
                conn.executemany(
                    "INSERT INTO chainkit_journal_runs (run_id, graph, process, scope, input, status, started_at)"
                    " VALUES (?,?,?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE SET status='running', error=NULL,"
                    " ended_at=NULL",
                    runs,
                )
            if nodes:
                conn.executemany(
                    "INSERT OR REPLACE INTO chainkit_journal_nodes (run_id, path, output, created_at) VALUES (?,?,?,?)",
                    nodes,
                )
            if ends:
                conn.executemany("UPDATE chainkit_journal_runs SET status=?, error=?, ended_at=? WHERE run_id=?", ends)

        return write

    async def aflush(self) -> None:
        """Write everything recorded so far, durably, without blocking the event loop."""
        job = self._take()
        if job is not None:
            await self._writer.write(job)

    def flush(self) -> None:
        """Blocking flush, for synchronous callers (close, readers)."""
        job = self._take()
        if job is not None:
            self._writer.submit(job).result()

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._writer.close()

    # -- reading -----------------------------------------------------------------------------------

    def load(self, run_id: str) -> JournaledRun:
        self.flush()
        row, nodes = self._writer.read(
            lambda conn: (
                conn.execute(
                    "SELECT graph, process, scope, input, status, error FROM chainkit_journal_runs WHERE run_id=?",
                    (run_id,),
                ).fetchone(),
                dict(conn.execute("SELECT path, output FROM chainkit_journal_nodes WHERE run_id=?", (run_id,)).fetchall()),
            )
        )
        if row is None:
            raise RunError(f"no journaled run {run_id!r} in {self.path}", run_id=run_id)
        return JournaledRun(
            run_id=run_id,
            graph=row[0],
            process=row[1],
            scope=json.loads(row[2]),
            input=json.loads(row[3]) if row[3] is not None else None,
            status=row[4],
            error=row[5],
            nodes=nodes,
        )

    def runs(self, status: str | None = None) -> list[tuple[str, str, str]]:
        """(run_id, graph, status) of journaled runs, oldest first; e.g. status='running' after a crash."""
        self.flush()
        sql = "SELECT run_id, graph, status FROM chainkit_journal_runs"
        args: tuple[Any, ...] = ()
        if status is not None:
            sql += " WHERE status=?"
            args = (status,)
        rows = self._writer.read(lambda conn: conn.execute(sql + " ORDER BY started_at", args).fetchall())
        return [tuple(r) for r in rows]  # type: ignore[misc]
