"""The SQLite trace sink: runs and events in the same file as the memories, plain SQL to query.

    chainkit_runs(run_id PK, graph, process, scope, status, error, started_at, ended_at, input, output)
    chainkit_events(id PK, run_id, ts, kind, node_path, data)     data is JSON

Event kinds: run_start, run_end, node_start, node_end, node_skipped, node_retry, llm_call, memory_write.
For example, the tokens each tool spent:

    SELECT json_extract(data, '$.tool') AS tool,
           sum(json_extract(data, '$.usage.prompt_tokens') + json_extract(data, '$.usage.completion_tokens'))
    FROM chainkit_events WHERE kind = 'llm_call' GROUP BY tool;

Events are buffered in memory and written in one transaction when a run ends (or every 500 events),
so tracing costs a list append per event while the run is going.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from chainkit._sqlite_writer import SQLiteWriter

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chainkit_runs (
    run_id TEXT PRIMARY KEY, graph TEXT, process TEXT, scope TEXT, status TEXT NOT NULL, error TEXT,
    started_at REAL, ended_at REAL, input TEXT, output TEXT);
CREATE TABLE IF NOT EXISTS chainkit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, ts REAL NOT NULL, kind TEXT NOT NULL,
    node_path TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chainkit_events_run ON chainkit_events (run_id, id);
"""

_FLUSH_EVERY = 500


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_default, ensure_ascii=False)


class SQLiteTraceSink:
    """A `chainkit.tracing` sink writing into a SQLite file. Call it as sink(kind, data).

    Events are buffered; a run's end (or every 500 events) queues one write transaction on a
    background thread, so tracing never waits for a database lock on the event loop. `flush()` waits
    until everything queued is written.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._writer = SQLiteWriter(self.path, schema=_SCHEMA)
        self._lock = threading.Lock()
        self._events: list[tuple[Any, ...]] = []
        self._runs: list[tuple[str, tuple[Any, ...]]] = []
        self._pending: list[Any] = []
        self._closed = False

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        now = time.time()
        run_id = data.get("run_id")
        if kind == "run_start":
            self._runs.append(("start", (run_id, data.get("graph"), data.get("process"), _dumps(data.get("scope")),
                                         "running", now, _dumps(data.get("input")))))
        elif kind == "run_end":
            self._runs.append(("end", (data.get("status"), data.get("error"), now, _dumps(data.get("output")), run_id)))
        self._events.append((run_id, now, kind, data.get("node_path"), data))
        if kind == "run_end" or len(self._events) >= _FLUSH_EVERY:
            self._queue()

    def _queue(self) -> None:
        with self._lock:
            if self._closed or not (self._events or self._runs):
                return
            events, runs = self._events, self._runs
            self._events, self._runs = [], []
            # Serialize now, on the caller's thread: the data may change after this returns.
            rows = [(r, ts, k, p, _dumps(d)) for r, ts, k, p, d in events]

            def write(conn: sqlite3.Connection) -> None:
                for what, args in runs:
                    if what == "start":
                        conn.execute(
                            "INSERT INTO chainkit_runs (run_id, graph, process, scope, status, started_at, input)"
                            " VALUES (?,?,?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE SET status='running', ended_at=NULL",
                            args,
                        )
                    else:
                        conn.execute(
                            "UPDATE chainkit_runs SET status=?, error=?, ended_at=?, output=? WHERE run_id=?", args
                        )
                conn.executemany(
                    "INSERT INTO chainkit_events (run_id, ts, kind, node_path, data) VALUES (?,?,?,?,?)", rows
                )

            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._writer.submit(write))

    def flush(self) -> None:
        """Write everything buffered and wait until it is on disk."""
        self._queue()
        for future in list(self._pending):
            future.result()
        self._pending = []

    def close(self) -> None:
        if not self._closed:
            self.flush()
            self._closed = True
            self._writer.close()


# ---- reading (the `chainkit trace` command uses these) -------------------------------------------


def _connect(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30)
    conn.row_factory = sqlite3.Row
    conn.executescript(_SCHEMA)
    return conn


def list_runs(path: str | Path, *, limit: int = 20, process: str | None = None,
              status: str | None = None) -> list[dict[str, Any]]:
    """Newest runs first: run_id, graph, process, scope, status, error, started_at, ended_at, duration_s."""
    sql = "SELECT * FROM chainkit_runs"
    where, args = [], []
    if process is not None:
        where.append("process = ?")
        args.append(process)
    if status is not None:
        where.append("status = ?")
        args.append(status)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at DESC LIMIT ?"
    args.append(limit)
    with _connect(path) as conn:
        rows = conn.execute(sql, args).fetchall()
    out = []
    for row in rows:
        item = dict(row)
        for key in ("scope", "input", "output"):
            item[key] = json.loads(item[key]) if item[key] else None
        ended, started = item.get("ended_at"), item.get("started_at")
        item["duration_s"] = (ended - started) if ended and started else None
        out.append(item)
    return out


def run_events(path: str | Path, run_id: str) -> list[dict[str, Any]]:
    """Every event of a run, in order: id, ts, kind, node_path, data."""
    with _connect(path) as conn:
        rows = conn.execute(
            "SELECT id, ts, kind, node_path, data FROM chainkit_events WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
    return [{**dict(row), "data": json.loads(row["data"])} for row in rows]


def run_tree(path: str | Path, run_id: str) -> dict[str, Any]:
    """A run's events as a tree by node path: {"path", "events": [...], "children": [...]}, root = graph."""
    events = run_events(path, run_id)
    root: dict[str, Any] = {"path": "", "name": "", "events": [], "children": []}
    index: dict[str, dict[str, Any]] = {"": root}

    def node_for(node_path: str) -> dict[str, Any]:
        found = index.get(node_path)
        if found is not None:
            return found
        parent_path, _, name = node_path.rpartition("/")
        parent = node_for(parent_path)
        found = {"path": node_path, "name": name, "events": [], "children": []}
        parent["children"].append(found)
        index[node_path] = found
        return found

    for event in events:
        node_for(event["node_path"] or "")["events"].append(event)
    if len(root["children"]) == 1 and not root["events"]:
        return root["children"][0]
    return root
