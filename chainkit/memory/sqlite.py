"""SQLiteStore: every memory in one SQLite file (the default store).

How it stays safe and fast:

* All SQLite work of a store runs on ONE dedicated worker thread, so the event loop never blocks on
  a lock held by another process. The thread owns two connections: a writer and a reader (WAL lets
  the reader see the last commit while another process writes).
* WAL journal, `busy_timeout`, and `BEGIN IMMEDIATE` for every write: the write lock is taken up
  front, so a write never fails half way on a lock upgrade. A lock that outlasts the busy timeout
  ("database is locked") is retried with backoff on the event loop, up to `lock_deadline_s`, then
  raised as `MemoryStoreError`; it never surfaces as a raw `sqlite3.OperationalError`.
* A standalone write is one worker call: BEGIN IMMEDIATE, read the current row, run the handle's pure
  `compute`, write, COMMIT. No await happens while the lock is held.
* `transaction()` groups the operations of the current task (a contextvar) into one BEGIN IMMEDIATE
  transaction taken at its first operation; other tasks' writes to this store wait until it ends.
  Only await memory operations inside it: the write lock is held until the block exits.
* Reads walk primary keys: (memory, scope, version) for documents and (memory, scope, seq) for logs,
  both WITHOUT ROWID so a window of recent entries is a few adjacent pages, whatever the log length.

Tables (all prefixed `chainkit_memory_`, so the journal and trace sink can share the file):
documents (every version of every document), log, records (collections; a deleted record is a
tombstone so versions keep counting), search (FTS5 over collection text fields), meta.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from chainkit.errors import MemoryStoreError, UsageError
from chainkit.memory._records import StoredEntry, StoredRecord
from chainkit.memory._store import Compute, Event, HandleFactory
from chainkit.tracing import emit

R = TypeVar("R")

STORE_FORMAT = 1  # bump with a migration of the tables themselves
_NO_SEQ = 1 << 62

_DDL = [
    """CREATE TABLE IF NOT EXISTS chainkit_memory_documents (
        memory TEXT NOT NULL, scope TEXT NOT NULL, version INTEGER NOT NULL,
        schema_version INTEGER NOT NULL, data TEXT NOT NULL, updated_at REAL NOT NULL,
        PRIMARY KEY (memory, scope, version)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS chainkit_memory_log (
        memory TEXT NOT NULL, scope TEXT NOT NULL, seq INTEGER NOT NULL,
        schema_version INTEGER NOT NULL, data TEXT NOT NULL, created_at REAL NOT NULL,
        is_summary INTEGER NOT NULL DEFAULT 0, covers_first INTEGER, covers_last INTEGER,
        tokens INTEGER NOT NULL,
        PRIMARY KEY (memory, scope, seq)) WITHOUT ROWID""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS chainkit_memory_search USING fts5(
        owner, body, tokenize = 'unicode61 remove_diacritics 2')""",
]


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _owner_token(memory: str, scope: str) -> str:
    """One FTS token per (memory, scope): search filters by it inside the index itself."""
    return "o" + hashlib.sha1(f"{memory}\0{scope}".encode()).hexdigest()[:24]


@dataclass
class _Transaction:
    begun: bool = False
    active: bool = True
    events: list[Event] = field(default_factory=list)
    depth: int = 0
    begin_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SQLiteStore(HandleFactory):
    """Memories in one SQLite file. `async with SQLiteStore("app.db") as store: ...`"""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 5.0,
        lock_deadline_s: float = 30.0,
        synchronous: str = "NORMAL",
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.lock_deadline_s = lock_deadline_s
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise UsageError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
        self.synchronous = synchronous.upper()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._gate: asyncio.Lock | None = None
        self._tx: ContextVar[_Transaction | None] = ContextVar(f"chainkit_sqlite_tx_{id(self)}", default=None)
        self._prepared_indexes: set[str] = set()
        self._handles: dict[int, Any] = {}

    def __repr__(self) -> str:
        return f"<SQLiteStore {str(self.path)!r}{'' if self._executor else ' closed'}>"

    # --- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._executor is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="chainkit-sqlite"
        )
        self._gate = asyncio.Lock()
        try:
            await self._retry(lambda: self._call(self._open_in_worker), None, None)
        except BaseException:
            await self._shutdown()
            raise

    async def close(self) -> None:
        if self._executor is None:
            return
        assert self._gate is not None
        async with self._gate:  # let a running transaction finish first
            await self._shutdown()

    async def _shutdown(self) -> None:
        executor = self._executor
        if executor is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(executor.submit(self._close_in_worker))
        executor.shutdown(wait=False)
        self._executor = None

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout_s
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        return conn

    def _open_in_worker(self) -> None:
        if self._writer is None:
            self._writer = self._connect()
        writer = self._writer
        db = sqlite_utils.Database(writer, recursive_triggers=False, execute_plugins=False)
        db.enable_wal()
        writer.execute(f"PRAGMA synchronous = {self.synchronous}")
        writer.execute("BEGIN IMMEDIATE")  # two processes opening at once create the schema once
        try:
            for statement in _DDL:
                writer.execute(statement)
            records = db.table("chainkit_memory_records")
            records.create(
                {
                    "id": int,
                    "memory": str,
                    "scope": str,
                    "key": str,
                    "version": int,
                    "schema_version": int,
                    "data": str,
                    "updated_at": float,
                },
                pk="id",
                not_null={"memory", "scope", "key", "version", "schema_version", "updated_at"},
                if_not_exists=True,
            )
            records.create_index(
                ["memory", "scope", "key"],
                index_name="chainkit_memory_records_key",
                unique=True,
                if_not_exists=True,
            )
            meta = db.table("chainkit_memory_meta")
            meta.create({"key": str, "value": str}, pk="key", if_not_exists=True)
            row = writer.execute("SELECT value FROM chainkit_memory_meta WHERE key = 'format'").fetchone()
            if row is None:
                writer.execute(
                    "INSERT INTO chainkit_memory_meta (key, value) VALUES ('format', ?)", (str(STORE_FORMAT),)
                )
            elif int(row[0]) > STORE_FORMAT:
                raise MemoryStoreError(f"{self.path} was written by a newer chainkit (store format {row[0]})")
            writer.execute("COMMIT")
        except BaseException:
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            raise
        if self._reader is None:
            self._reader = self._connect()
            self._reader.execute("PRAGMA query_only = 1")

    def _close_in_worker(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
        self._reader = self._writer = None

    # --- running work on the worker thread --------------------------------------------------------

    async def _call(self, fn: Callable[..., R], *args: Any) -> R:
        if self._executor is None:
            raise UsageError(
                f"store {str(self.path)!r} is not open (use `await store.open()` or `async with`)"
            )
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _retry(self, attempt: Callable[[], Any], memory: str | None, scope: Any) -> Any:
        """Run `attempt`; retry while SQLite reports the database locked, up to the deadline."""
        deadline = time.monotonic() + self.lock_deadline_s
        delay = 0.002
        while True:
            try:
                return await attempt()
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc):
                    raise MemoryStoreError(
                        f"SQLite error in {self.path}: {exc}", memory=memory, scope=scope
                    ) from exc
                if time.monotonic() + delay > deadline:
                    raise MemoryStoreError(
                        f"{self.path} stayed locked by another connection for {self.lock_deadline_s:.0f}s",
                        memory=memory,
                        scope=scope,
                    ) from exc
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)
            except sqlite3.Error as exc:
                raise MemoryStoreError(
                    f"SQLite error in {self.path}: {exc}", memory=memory, scope=scope
                ) from exc

    def _write_in_worker(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        conn = self._writer
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _current_tx(self) -> _Transaction | None:
        tx = self._tx.get()
        if tx is not None and not tx.active:
            raise UsageError(
                "a memory operation ran after its store.transaction() block ended "
                "(a task started inside the block outlived it)"
            )
        return tx

    async def _in_tx(
        self, tx: _Transaction, fn: Callable[[sqlite3.Connection], R], memory: str | None, scope: Any
    ) -> R:
        if not tx.begun:
            async with tx.begin_lock:
                if not tx.begun:
                    await self._retry(lambda: self._call(self._begin_in_worker), memory, scope)
                    tx.begun = True
        try:
            return await self._call(fn, self._writer)
        except sqlite3.Error as exc:
            raise MemoryStoreError(f"SQLite error in {self.path}: {exc}", memory=memory, scope=scope) from exc

    def _begin_in_worker(self) -> None:
        assert self._writer is not None
        self._writer.execute("BEGIN IMMEDIATE")

    async def _read(self, fn: Callable[[sqlite3.Connection], R], memory: str, scope: Any) -> R:
        tx = self._current_tx()
        if tx is not None:
            return await self._in_tx(tx, fn, memory, scope)  # see this transaction's own writes
        return await self._retry(lambda: self._call(fn, self._reader), memory, scope)

    async def _write(
        self, fn: Callable[[sqlite3.Connection], R], version_of: Callable[[R], int | None], event: Event
    ) -> R:
        memory, scope = event["memory"], event["scope"]
        tx = self._current_tx()
        if tx is not None:
            result = await self._in_tx(tx, fn, memory, scope)
            version = version_of(result)
            if version is not None:
                tx.events.append({**event, "version": version})
            return result
        assert self._gate is not None
        async with self._gate:  # wait while another task's transaction holds the writer
            result = await self._retry(lambda: self._call(self._write_in_worker, fn), memory, scope)
        version = version_of(result)
        if version is not None:
            emit("memory_write", {**event, "version": version})
        return result

    # --- transactions --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Group every operation on this store awaited in this block (same task, or tasks started
        in it) into one atomic transaction. Commits on exit, rolls back on any exception."""
        outer = self._current_tx()
        if outer is not None:
            async with self._savepoint(outer):
                yield
            return
        if self._executor is None:
            raise UsageError(f"store {str(self.path)!r} is not open")
        assert self._gate is not None
        await self._gate.acquire()
        tx = _Transaction()
        token = self._tx.set(tx)
        try:
            try:
                yield
            except BaseException:
                tx.active = False
                if tx.begun:
                    # Submitted before the gate opens, so it runs before any later write.
                    await self._finish(self._rollback_in_worker)
                raise
            tx.active = False
            if tx.begun:
                try:
                    await self._finish(self._commit_in_worker)
                except sqlite3.Error as exc:
                    raise MemoryStoreError(f"commit failed in {self.path}: {exc}") from exc
            for event in tx.events:
                emit("memory_write", event)
        finally:
            self._tx.reset(token)
            self._gate.release()

    async def _finish(self, fn: Callable[[], None]) -> None:
        assert self._executor is not None
        future = self._executor.submit(fn)
        # Shielded: a cancellation arriving now must not skip the rollback/commit already queued.
        await asyncio.shield(asyncio.wrap_future(future))

    def _commit_in_worker(self) -> None:
        assert self._writer is not None
        try:
            self._writer.execute("COMMIT")
        except BaseException:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
            raise

    def _rollback_in_worker(self) -> None:
        assert self._writer is not None
        if self._writer.in_transaction:
            self._writer.execute("ROLLBACK")

    @contextlib.asynccontextmanager
    async def _savepoint(self, tx: _Transaction) -> AsyncIterator[None]:
        tx.depth += 1
        name = f"chainkit_sp{tx.depth}"
        mark = len(tx.events)
        await self._in_tx(tx, lambda c: c.execute(f"SAVEPOINT {name}"), None, None)
        try:
            yield
        except BaseException:

            def undo(c: sqlite3.Connection) -> None:
                c.execute(f"ROLLBACK TO {name}")
                c.execute(f"RELEASE {name}")

            await self._in_tx(tx, undo, None, None)
            del tx.events[mark:]
            raise
        else:
            await self._in_tx(tx, lambda c: c.execute(f"RELEASE {name}"), None, None)
        finally:
            tx.depth -= 1

    # --- documents -------------------------------------------------------------------------------

    _DOC_COLS = "version, schema_version, data, updated_at"

    @staticmethod
    def _doc_latest_sql(conn: sqlite3.Connection, memory: str, scope: str) -> StoredRecord | None:
        row = conn.execute(
            "SELECT version, schema_version, data, updated_at FROM chainkit_memory_documents "
            "WHERE memory = ? AND scope = ? ORDER BY version DESC LIMIT 1",
            (memory, scope),
        ).fetchone()
        return StoredRecord(*row) if row else None

    async def doc_latest(self, memory: str, scope: str) -> StoredRecord | None:
        return await self._read(lambda c: self._doc_latest_sql(c, memory, scope), memory, scope)

    async def doc_versions(self, memory: str, scope: str) -> list[StoredRecord]:
        def read(c: sqlite3.Connection) -> list[StoredRecord]:
            rows = c.execute(
                f"SELECT {self._DOC_COLS} FROM chainkit_memory_documents "
                "WHERE memory = ? AND scope = ? ORDER BY version",
                (memory, scope),
            ).fetchall()
            return [StoredRecord(*r) for r in rows]

        return await self._read(read, memory, scope)

    async def doc_version(self, memory: str, scope: str, version: int) -> StoredRecord | None:
        def read(c: sqlite3.Connection) -> StoredRecord | None:
            row = c.execute(
                f"SELECT {self._DOC_COLS} FROM chainkit_memory_documents "
                "WHERE memory = ? AND scope = ? AND version = ?",
                (memory, scope, version),
            ).fetchone()
            return StoredRecord(*row) if row else None

        return await self._read(read, memory, scope)

    async def doc_write(
        self, memory: str, scope: str, compute: Compute, schema_version: int, event: Event,
        keep_versions: int | None = None,
    ) -> StoredRecord:
        def write(c: sqlite3.Connection) -> StoredRecord:
            current = self._doc_latest_sql(c, memory, scope)
            data, _ = compute(current)
            record = StoredRecord((current.version if current else 0) + 1, schema_version, data, time.time())
            c.execute(
                "INSERT INTO chainkit_memory_documents (memory, scope, version, schema_version, data, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (memory, scope, record.version, schema_version, data, record.updated_at),
            )
            if keep_versions is not None and record.version > keep_versions:
                c.execute(
                    "DELETE FROM chainkit_memory_documents WHERE memory = ? AND scope = ? AND version <= ?",
                    (memory, scope, record.version - keep_versions),
                )
            return record

        return await self._write(write, lambda r: r.version, event)

    # --- logs ------------------------------------------------------------------------------------

    _LOG_COLS = "seq, schema_version, data, created_at, is_summary, covers_first, covers_last, tokens"

    @staticmethod
    def _entry(row: tuple[Any, ...]) -> StoredEntry:
        seq, schema_version, data, created_at, is_summary, first, last, tokens = row
        return StoredEntry(
            seq,
            schema_version,
            data,
            created_at,
            bool(is_summary),
            (first, last) if first is not None else None,
            tokens,
        )

    async def log_append(
        self,
        memory: str,
        scope: str,
        data: str,
        schema_version: int,
        tokens: int,
        covers: tuple[int, int] | None,
        check: Callable[[int], None],
        event: Event,
    ) -> StoredEntry:
        def write(c: sqlite3.Connection) -> StoredEntry:
            row = c.execute(
                "SELECT max(seq) FROM chainkit_memory_log WHERE memory = ? AND scope = ?", (memory, scope)
            ).fetchone()
            last = row[0] or 0
            check(last)
            entry = StoredEntry(
                last + 1, schema_version, data, time.time(), covers is not None, covers, tokens
            )
            c.execute(
                "INSERT INTO chainkit_memory_log (memory, scope, seq, schema_version, data, created_at, "
                "is_summary, covers_first, covers_last, tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    memory,
                    scope,
                    entry.seq,
                    schema_version,
                    data,
                    entry.created_at,
                    int(entry.is_summary),
                    covers[0] if covers else None,
                    covers[1] if covers else None,
                    tokens,
                ),
            )
            return entry

        return await self._write(write, lambda e: e.seq, event)

    async def log_scan_back(
        self, memory: str, scope: str, before_seq: int | None, limit: int
    ) -> list[StoredEntry]:
        def read(c: sqlite3.Connection) -> list[StoredEntry]:
            rows = c.execute(
                f"SELECT {self._LOG_COLS} FROM chainkit_memory_log WHERE memory = ? AND scope = ? "
                "AND seq < ? ORDER BY seq DESC LIMIT ?",
                (memory, scope, _NO_SEQ if before_seq is None else before_seq, limit),
            ).fetchall()
            return [self._entry(r) for r in rows]

        return await self._read(read, memory, scope)

    async def log_range(self, memory: str, scope: str, start_seq: int, end_seq: int) -> list[StoredEntry]:
        def read(c: sqlite3.Connection) -> list[StoredEntry]:
            rows = c.execute(
                f"SELECT {self._LOG_COLS} FROM chainkit_memory_log WHERE memory = ? AND scope = ? "
                "AND seq BETWEEN ? AND ? ORDER BY seq",
                (memory, scope, start_seq, end_seq),
            ).fetchall()
            return [self._entry(r) for r in rows]

        return await self._read(read, memory, scope)

    async def log_last_seq(self, memory: str, scope: str) -> int:
        def read(c: sqlite3.Connection) -> int:
            row = c.execute(
                "SELECT max(seq) FROM chainkit_memory_log WHERE memory = ? AND scope = ?", (memory, scope)
            ).fetchone()
            return int(row[0] or 0)

        return await self._read(read, memory, scope)

    # --- collections -----------------------------------------------------------------------------

    _REC_COLS = "version, schema_version, data, updated_at"

    async def coll_prepare(self, memory: str, paths: list[str]) -> None:
        """Expression indexes for the fields a collection declares in `indexes`."""
        todo = [p for p in paths if p not in self._prepared_indexes]
        if not todo:
            return

        def write(c: sqlite3.Connection) -> None:
            for path in todo:
                name = "chainkit_memory_records_ix_" + hashlib.sha1(path.encode()).hexdigest()[:12]
                c.execute(
                    f"CREATE INDEX IF NOT EXISTS {name} ON chainkit_memory_records "
                    f"(memory, scope, json_extract(data, '{path}'))"
                )

        await self._write(write, lambda _: None, {"memory": memory, "scope": None, "op": "index"})
        self._prepared_indexes.update(todo)

    @staticmethod
    def _rec_current(
        c: sqlite3.Connection, memory: str, scope: str, key: str
    ) -> tuple[int, StoredRecord] | None:
        row = c.execute(
            "SELECT id, version, schema_version, data, updated_at FROM chainkit_memory_records "
            "WHERE memory = ? AND scope = ? AND key = ?",
            (memory, scope, key),
        ).fetchone()
        return (row[0], StoredRecord(*row[1:])) if row else None

    async def coll_get(self, memory: str, scope: str, key: str) -> StoredRecord | None:
        def read(c: sqlite3.Connection) -> StoredRecord | None:
            found = self._rec_current(c, memory, scope, key)
            return found[1] if found else None

        return await self._read(read, memory, scope)

    async def coll_write(
        self, memory: str, scope: str, key: str, compute: Compute, schema_version: int, event: Event
    ) -> StoredRecord:
        def write(c: sqlite3.Connection) -> StoredRecord:
            found = self._rec_current(c, memory, scope, key)
            data, text = compute(found[1] if found else None)
            record = StoredRecord((found[1].version if found else 0) + 1, schema_version, data, time.time())
            if found:
                rowid = found[0]
                c.execute(
                    "UPDATE chainkit_memory_records SET version = ?, schema_version = ?, data = ?, "
                    "updated_at = ? WHERE id = ?",
                    (record.version, schema_version, data, record.updated_at, rowid),
                )
                c.execute("DELETE FROM chainkit_memory_search WHERE rowid = ?", (rowid,))
            else:
                rowid = c.execute(
                    "INSERT INTO chainkit_memory_records (memory, scope, key, version, schema_version, "
                    "data, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (memory, scope, key, record.version, schema_version, data, record.updated_at),
                ).lastrowid
            if text:
                c.execute(
                    "INSERT INTO chainkit_memory_search (rowid, owner, body) VALUES (?, ?, ?)",
                    (rowid, _owner_token(memory, scope), text),
                )
            return record

        return await self._write(write, lambda r: r.version, event)

    async def coll_delete(
        self, memory: str, scope: str, key: str, check: Callable[[StoredRecord | None], bool], event: Event
    ) -> bool:
        def write(c: sqlite3.Connection) -> int | None:
            found = self._rec_current(c, memory, scope, key)
            if not check(found[1] if found else None) or found is None:
                return None
            rowid, current = found
            c.execute(
                "UPDATE chainkit_memory_records SET version = ?, data = NULL, updated_at = ? WHERE id = ?",
                (current.version + 1, time.time(), rowid),
            )
            c.execute("DELETE FROM chainkit_memory_search WHERE rowid = ?", (rowid,))
            return current.version + 1

        version = await self._write(write, lambda v: v, event)
        return version is not None

    async def coll_query(
        self,
        memory: str,
        scope: str,
        where: list[tuple[str, Any]],
        order_by: tuple[str, bool] | None,
        limit: int | None,
    ) -> list[StoredRecord]:
        # Paths were checked against the model by the handle ([A-Za-z0-9_.] only), so they are
        # inlined: SQLite only uses an expression index when the expression matches literally.
        sql = [
            f"SELECT {self._REC_COLS} FROM chainkit_memory_records WHERE memory = ? AND scope = ? "
            "AND data IS NOT NULL"
        ]
        params: list[Any] = [memory, scope]
        for path, value in where:
            if value is None:
                sql.append(f"AND json_extract(data, '{path}') IS NULL")
            else:
                sql.append(f"AND json_extract(data, '{path}') = ?")
                params.append(value)
        if order_by is not None:
            sql.append(
                f"ORDER BY json_extract(data, '{order_by[0]}') {'DESC' if order_by[1] else 'ASC'}, key"
            )
        else:
            sql.append("ORDER BY key")
        if limit is not None:
            sql.append("LIMIT ?")
            params.append(limit)
        statement = " ".join(sql)

        def read(c: sqlite3.Connection) -> list[StoredRecord]:
            return [StoredRecord(*r) for r in c.execute(statement, params).fetchall()]

        return await self._read(read, memory, scope)

    async def coll_search(self, memory: str, scope: str, terms: list[str], limit: int) -> list[StoredRecord]:
        words = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        match = f'owner : "{_owner_token(memory, scope)}" AND body : ({words})'

        def read(c: sqlite3.Connection) -> list[StoredRecord]:
            rows = c.execute(
                "SELECT r.version, r.schema_version, r.data, r.updated_at FROM chainkit_memory_search s "
                "JOIN chainkit_memory_records r ON r.id = s.rowid "
                "WHERE chainkit_memory_search MATCH ? AND r.memory = ? AND r.scope = ? AND r.data IS NOT NULL "
                "ORDER BY s.rank LIMIT ?",
                (match, memory, scope, limit),
            ).fetchall()
            return [StoredRecord(*r) for r in rows]

        return await self._read(read, memory, scope)


async def open_store(path: str | Path, **options: Any) -> SQLiteStore:
    """Open (creating if needed) the SQLite store at `path`. Close it with `await store.close()`."""
    store = SQLiteStore(path, **options)
    await store.open()
    return store
