"""SQLiteStore specifics: real processes on one file, lock handling, lifecycle."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from pydantic import BaseModel

from chainkit.errors import MemoryStoreError, UsageError
from chainkit.memory import Document, Log, Scope, SQLiteStore, open_store


class Counter(BaseModel):
    value: int


class Note(BaseModel):
    text: str


COUNTER = Document("counter", Counter, scope="global")
NOTES = Log("notes", Note, scope="user")

_WORKER = textwrap.dedent("""
    import asyncio, sys, time
    from pathlib import Path
    from pydantic import BaseModel
    from chainkit.errors import MemoryConflict
    from chainkit.memory import Document, Log, open_store

    class Counter(BaseModel):
        value: int

    class Note(BaseModel):
        text: str

    COUNTER = Document("counter", Counter, scope="global")
    NOTES = Log("notes", Note, scope="user")

    async def main(db, start_file, name, times):
        store = await open_store(db)
        while not Path(start_file).exists():   # start both processes' loops together
            await asyncio.sleep(0.001)
        docs, notes = store.document(COUNTER), store.log(NOTES)
        conflicts = 0
        for i in range(times):
            while True:
                current = await docs.get({})
                try:
                    await docs.replace({}, {"value": current.value.value + 1}, expected_version=current.version)
                    break
                except MemoryConflict:
                    conflicts += 1
            await notes.append({"user": "shared"}, {"text": f"{name} {i}"})
        await store.close()
        print("conflicts", conflicts)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
""")


@pytest.mark.slow
async def test_two_processes_never_lose_an_update_or_see_a_lock(tmp_path: Path) -> None:
    db, start = tmp_path / "shared.db", tmp_path / "start"
    async with await open_store(db) as store:
        await store.document(COUNTER).replace({}, {"value": 0})
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    times = 200
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(db), str(start), name, str(times)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    await asyncio.sleep(0.5)  # both import and open before the race starts
    start.touch()
    outputs = [await asyncio.to_thread(p.communicate, timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err.lower() and "locked" not in out.lower()
    async with await open_store(db) as store:
        final = await store.document(COUNTER).get({})
        assert final is not None and final.value.value == 2 * times  # no lost update
        assert final.version == 2 * times + 1
        assert await store.log(NOTES).count({"user": "shared"}) == 2 * times
        seqs = [e.seq for e in await store.log(NOTES).range({"user": "shared"}, 1, 10_000)]
        assert seqs == list(range(1, 2 * times + 1))  # no gap, no duplicate seq
    conflicts = sum(int(out.split()[-1]) for out, _ in outputs)
    print(f"conflicts retried: {conflicts}")


def _hold_write_lock(db: Path, locked: threading.Event, release: threading.Event) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    locked.set()
    release.wait(10)
    conn.execute("ROLLBACK")
    conn.close()


async def test_lock_held_elsewhere_becomes_a_typed_error_and_reads_go_on(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    store = SQLiteStore(db, busy_timeout_s=0.05, lock_deadline_s=0.4)
    await store.open()
    await store.log(NOTES).append({"user": "u"}, {"text": "before"})
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(db, locked, release))
    holder.start()
    await asyncio.to_thread(locked.wait, 5)
    try:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticking = asyncio.create_task(ticker())
        with pytest.raises(MemoryStoreError) as info:
            await store.log(NOTES).append({"user": "u"}, {"text": "blocked"})
        ticking.cancel()
        assert "locked" in str(info.value) and not isinstance(info.value.__cause__, type(None))
        assert info.value.memory == "notes"
        assert ticks > 0  # the event loop kept running while the write waited
        # WAL: reads are not blocked by another connection's write lock.
        assert [e.value.text for e in await store.log(NOTES).last({"user": "u"}, 5)] == ["before"]
    finally:
        release.set()
        await asyncio.to_thread(holder.join)
    # Once the lock is gone, writes go through again.
    assert (await store.log(NOTES).append({"user": "u"}, {"text": "after"})).seq == 2
    await store.close()


async def test_waits_out_a_short_lock(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    async with SQLiteStore(db, busy_timeout_s=0.01, lock_deadline_s=10) as store:
        locked, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(db, locked, release))
        holder.start()
        await asyncio.to_thread(locked.wait, 5)
        write = asyncio.create_task(store.log(NOTES).append({"user": "u"}, {"text": "x"}))
        await asyncio.sleep(0.1)
        assert not write.done()  # still retrying, with backoff on the event loop
        release.set()
        assert (await write).seq == 1
        await asyncio.to_thread(holder.join)


async def test_lifecycle_and_file_layout(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "sub" / "app.db")
    with pytest.raises(UsageError):
        await store.document(COUNTER).get({})
    async with store:
        assert store.path == tmp_path / "sub" / "app.db"
        await store.document(COUNTER).replace(Scope(), {"value": 1})
    with pytest.raises(UsageError):
        await store.document(COUNTER).get({})
    conn = sqlite3.connect(tmp_path / "sub" / "app.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert all(t.startswith("chainkit_memory_") or t.startswith("sqlite_") for t in tables)
    row = conn.execute(
        "SELECT memory, scope, version, schema_version, data FROM chainkit_memory_documents"
    ).fetchone()
    assert row == ("counter", "[]", 1, 1, '{"value":1}')
    conn.close()


async def test_refuses_a_file_from_a_newer_store_format(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "m.db"):
        pass
    conn = sqlite3.connect(tmp_path / "m.db")
    conn.execute("UPDATE chainkit_memory_meta SET value = '99' WHERE key = 'format'")
    conn.commit()
    conn.close()
    with pytest.raises(MemoryStoreError, match="newer"):
        await open_store(tmp_path / "m.db")


async def test_corrupt_row_is_a_schema_mismatch_not_a_crash(tmp_path: Path) -> None:
    from chainkit.errors import SchemaMismatch

    async with SQLiteStore(tmp_path / "m.db") as store:
        await store.log(NOTES).append({"user": "u"}, {"text": "ok"})
        conn = sqlite3.connect(tmp_path / "m.db")
        conn.execute("UPDATE chainkit_memory_log SET data = '{\"txt\": 1}'")
        conn.commit()
        conn.close()
        with pytest.raises(SchemaMismatch) as info:
            await store.log(NOTES).last({"user": "u"}, 1)
        assert info.value.memory == "notes" and info.value.scope == {"user": "u"}
