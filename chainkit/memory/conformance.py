"""The Store contract as a test suite every store implementation must pass.

Use it from a test module (needs pytest and pytest-asyncio with asyncio_mode=auto)::

    import pytest
    from chainkit.memory import SQLiteStore
    from chainkit.memory.conformance import StoreContract

    class TestSQLiteStore(StoreContract):
        @pytest.fixture
        async def store_factory(self, tmp_path):
            opened = []

            async def factory():
                store = SQLiteStore(tmp_path / "memory.db")   # every call: the SAME database
                await store.open()
                opened.append(store)
                return store

            yield factory
            for store in opened:
                await store.close()

`store_factory()` must open a new store (a new connection or pool) on the same database each
time it is called: the contract uses two of them to check conflicts, isolation and persistence.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from chainkit.errors import MemoryConflict, MemoryStoreError, SchemaMismatch, ScopeError, UsageError
from chainkit.memory._scope import Scope
from chainkit.memory._spec import Collection, Document, Log
from chainkit.memory._store import Store
from chainkit.tracing import ListSink, trace_to

StoreFactory = Callable[[], Awaitable[Store]]


class Address(BaseModel):
    city: str
    zip: str = ""


class Profile(BaseModel):
    name: str
    level: int = Field(default=1, ge=1)
    address: Address | None = None
    tags: list[str] = []


class Turn(BaseModel):
    role: Literal["learner", "tutor", "summary"]
    text: str


class QuizRecord(BaseModel):
    id: str
    topic: str
    question: str
    score: float = 0.0
    correct: bool = False
    note: str | None = None
    asked_at: dt.datetime | None = None


PROFILE = Document("profile", Profile, scope="user")
DIALOGUE = Log("dialogue", Turn, scope="session")
QUIZ = Collection(
    "quiz", QuizRecord, scope="user", key="id", text_fields=["question", "note"], indexes=["topic"]
)
COURSE = Document("course", Profile, scope="global")
ALICE = Scope(user="alice", session="s1")
BOB = Scope(user="bob", session="s1")


class StoreContract:
    """Subclass in a test module and provide the `store_factory` fixture (see the module docstring)."""

    @pytest.fixture
    async def store(self, store_factory: StoreFactory) -> Store:
        return await store_factory()

    # --- documents -----------------------------------------------------------------------------

    async def test_document_roundtrip_and_versions(self, store: Store) -> None:
        docs = store.document(PROFILE)
        assert await docs.get(ALICE) is None
        first = await docs.replace(ALICE, Profile(name="Alice"))
        assert first.version == 1 and first.value == Profile(name="Alice")
        second = await docs.replace(ALICE, {"name": "Alice", "level": 2})
        assert second.version == 2
        got = await docs.get(ALICE)
        assert got is not None and got.value.level == 2 and got.version == 2
        assert isinstance(got.value, Profile) and got.updated_at >= first.updated_at

    @pytest.mark.parametrize("op", ["replace", "patch", "revert"])
    async def test_document_stale_version_conflicts(self, store: Store, op: str) -> None:
        docs = store.document(PROFILE)
        await docs.replace(ALICE, {"name": "Alice"})
        await docs.replace(ALICE, {"name": "Alice", "level": 2})
        with pytest.raises(MemoryConflict) as info:
            if op == "replace":
                await docs.replace(ALICE, {"name": "X"}, expected_version=1)
            elif op == "patch":
                await docs.patch(ALICE, {"level": 5}, expected_version=1)
            else:
                await docs.revert(ALICE, 1, expected_version=1)
        assert info.value.memory == "profile"
        current = await docs.get(ALICE)
        assert current is not None and current.version == 2 and current.value.level == 2

    async def test_document_expected_version_zero_means_create_only(self, store: Store) -> None:
        docs = store.document(PROFILE)
        created = await docs.replace(ALICE, {"name": "Alice"}, expected_version=0)
        assert created.version == 1
        with pytest.raises(MemoryConflict):
            await docs.replace(ALICE, {"name": "Again"}, expected_version=0)
        assert (await docs.replace(ALICE, {"name": "B"}, expected_version=1)).version == 2

    async def test_patch_deep_merges_and_validates(self, store: Store) -> None:
        docs = store.document(PROFILE)
        await docs.replace(
            ALICE, {"name": "Alice", "address": {"city": "Oslo", "zip": "0150"}, "tags": ["a"]}
        )
        patched = await docs.patch(ALICE, {"address": {"city": "Bergen"}, "tags": ["b"]})
        assert patched.value.address == Address(city="Bergen", zip="0150")  # nested dict merged
        assert patched.value.tags == ["b"]  # lists replace
        assert patched.version == 2

    @pytest.mark.parametrize(
        "delta,field",
        [
            ({"level": 0}, "level"),
            ({"level": "high"}, "level"),
            ({"nope": 1}, "nope"),
            ({"address": {"zzz": 1}}, "address.zzz"),
        ],
    )
    async def test_invalid_patch_names_field_and_writes_nothing(
        self, store: Store, delta: dict[str, Any], field: str
    ) -> None:
        docs = store.document(PROFILE)
        await docs.replace(ALICE, {"name": "Alice", "address": {"city": "Oslo"}})
        with pytest.raises(SchemaMismatch) as info:
            await docs.patch(ALICE, delta)
        assert info.value.field is not None and info.value.field.startswith(field)
        assert info.value.memory == "profile"
        assert [v.version for v in await docs.history(ALICE)] == [1]

    async def test_history_and_revert(self, store: Store) -> None:
        docs = store.document(PROFILE)
        for level in (1, 2, 3):
            await docs.replace(ALICE, {"name": "Alice", "level": level})
        history = await docs.history(ALICE)
        assert [(v.version, v.value.level) for v in history] == [(1, 1), (2, 2), (3, 3)]
        reverted = await docs.revert(ALICE, 1)
        assert reverted.version == 4 and reverted.value.level == 1
        assert [v.value.level for v in await docs.history(ALICE)] == [1, 2, 3, 1]
        with pytest.raises(MemoryStoreError):
            await docs.revert(ALICE, 99)

    async def test_history_keeps_the_newest_versions_when_bounded(self, store: Store) -> None:
        bounded = Document("bounded_profile", Profile, scope="user", keep_versions=2)
        docs = store.document(bounded)
        for level in range(1, 6):
            await docs.patch(ALICE, {"name": "Alice", "level": level})
        assert [(v.version, v.value.level) for v in await docs.history(ALICE)] == [(4, 4), (5, 5)]
        assert (await docs.get(ALICE)).version == 5  # versions keep counting
        with pytest.raises(MemoryStoreError):
            await docs.revert(ALICE, 2)  # pruned
        await docs.replace(BOB, {"name": "Bob", "level": 1})
        assert len(await docs.history(BOB)) == 1  # other scopes are untouched

    async def test_patch_creates_when_complete(self, store: Store) -> None:
        docs = store.document(PROFILE)
        with pytest.raises(SchemaMismatch) as info:
            await docs.patch(ALICE, {"level": 2})
        assert info.value.field == "name"
        created = await docs.patch(ALICE, {"name": "Alice"})
        assert created.version == 1

    # --- logs ----------------------------------------------------------------------------------

    async def _fill(self, store: Store, n: int, scope: Scope = ALICE) -> Any:
        log = store.log(DIALOGUE)
        for i in range(1, n + 1):
            await log.append(scope, {"role": "learner" if i % 2 else "tutor", "text": f"turn {i}"})
        return log

    async def test_log_append_last_range_count(self, store: Store) -> None:
        log = await self._fill(store, 7)
        assert await log.count(ALICE) == 7
        assert [e.seq for e in await log.last(ALICE, 3)] == [5, 6, 7]
        assert [e.value.text for e in await log.range(ALICE, 2, 4)] == ["turn 2", "turn 3", "turn 4"]
        assert await log.last(ALICE, 0) == []
        entry = await log.append(ALICE, Turn(role="tutor", text="hi"))
        assert entry.seq == 8 and not entry.is_summary and entry.covers is None

    async def test_window_fits_budget_newest_first_contiguous(self, store: Store) -> None:
        log = await self._fill(store, 20)

        def count(text: str) -> int:
            return 10

        window = await log.window(ALICE, 45, count_tokens=count)
        assert [e.seq for e in window] == [17, 18, 19, 20]
        assert await log.window(ALICE, 5, count_tokens=count) == []
        everything = await log.window(ALICE, 10_000, count_tokens=count)
        assert [e.seq for e in everything] == list(range(1, 21))

    async def test_window_default_counter_counts_real_tokens(self, store: Store) -> None:
        log = store.log(DIALOGUE)
        await log.append(ALICE, {"role": "learner", "text": "short"})
        await log.append(ALICE, {"role": "learner", "text": "word " * 400})
        # The long entry alone is ~400 tokens: a 100-token budget cannot hold it.
        assert await log.window(ALICE, 100) == []
        assert [e.seq for e in await log.window(ALICE, 1000)] == [1, 2]

    async def test_summary_stands_for_covered_entries(self, store: Store) -> None:
        log = await self._fill(store, 10)
        summary = await log.summarize(ALICE, {"role": "summary", "text": "turns 1-8"}, through_seq=8)
        assert summary.seq == 11 and summary.is_summary and summary.covers == (1, 8)
        await log.append(ALICE, {"role": "learner", "text": "turn 12"})
        window = await log.window(ALICE, 10_000, count_tokens=lambda t: 1)
        assert [e.seq for e in window] == [9, 10, 11, 12]
        # A later rolling summary covers the earlier one too.
        await log.summarize(ALICE, {"role": "summary", "text": "turns 1-12"}, through_seq=12)
        window = await log.window(ALICE, 10_000, count_tokens=lambda t: 1)
        assert [e.seq for e in window] == [13]
        assert [e.seq for e in await log.range(ALICE, 1, 3)] == [1, 2, 3]  # raw reads still see all
        with pytest.raises(MemoryStoreError):
            await log.summarize(ALICE, {"role": "summary", "text": "x"}, through_seq=99)

    async def test_log_rejects_invalid_entry(self, store: Store) -> None:
        log = store.log(DIALOGUE)
        with pytest.raises(SchemaMismatch) as info:
            await log.append(ALICE, {"role": "robot", "text": "x"})
        assert info.value.field == "role"
        assert await log.count(ALICE) == 0

    # --- collections ---------------------------------------------------------------------------

    async def test_collection_put_get_delete(self, store: Store) -> None:
        quiz = store.collection(QUIZ)
        first = await quiz.put(ALICE, {"id": "q1", "topic": "bio", "question": "What is a cell?"})
        assert first.version == 1
        assert (
            await quiz.put(ALICE, {"id": "q1", "topic": "bio", "question": "Cells?"}, expected_version=1)
        ).version == 2
        with pytest.raises(MemoryConflict):
            await quiz.put(ALICE, {"id": "q1", "topic": "bio", "question": "?"}, expected_version=1)
        got = await quiz.get(ALICE, "q1")
        assert got is not None and got.value.question == "Cells?"
        assert await quiz.delete(ALICE, "q1") is True
        assert await quiz.delete(ALICE, "q1") is False
        assert await quiz.get(ALICE, "q1") is None
        assert await quiz.query(ALICE) == []
        assert await quiz.search(ALICE, "cells") == []
        again = await quiz.put(ALICE, {"id": "q1", "topic": "bio", "question": "Back"}, expected_version=0)
        assert again.version == 4  # versions keep counting across a delete (no ABA)

    async def test_collection_query(self, store: Store) -> None:
        quiz = store.collection(QUIZ)
        rows = [
            ("q1", "bio", 0.5, True),
            ("q2", "bio", 0.9, False),
            ("q3", "chem", 0.7, True),
            ("q4", "bio", 0.1, True),
        ]
        for key, topic, score, correct in rows:
            await quiz.put(
                ALICE,
                {
                    "id": key,
                    "topic": topic,
                    "question": f"question {key}",
                    "score": score,
                    "correct": correct,
                },
            )
        assert [r.value.id for r in await quiz.query(ALICE, {"topic": "bio"})] == ["q1", "q2", "q4"]
        assert [r.value.id for r in await quiz.query(ALICE, {"topic": "bio"}, order_by="-score")] == [
            "q2",
            "q1",
            "q4",
        ]
        assert [
            r.value.id for r in await quiz.query(ALICE, {"correct": True}, order_by="score", limit=2)
        ] == ["q4", "q1"]
        assert [r.value.id for r in await quiz.query(ALICE, {"topic": "bio", "correct": False})] == ["q2"]
        assert [r.value.id for r in await quiz.query(ALICE, {"note": None}, limit=1)] == ["q1"]
        with pytest.raises(MemoryStoreError):
            await quiz.query(ALICE, {"no_such_field": 1})
        with pytest.raises(MemoryStoreError):
            await quiz.query(ALICE, order_by="-nope")

    async def test_collection_search(self, store: Store) -> None:
        quiz = store.collection(QUIZ)
        await quiz.put(ALICE, {"id": "q1", "topic": "bio", "question": "How does photosynthesis use light?"})
        await quiz.put(
            ALICE, {"id": "q2", "topic": "chem", "question": "What is an acid?", "note": "light acids"}
        )
        await quiz.put(ALICE, {"id": "q3", "topic": "chem", "question": "Name a base."})
        assert [r.value.id for r in await quiz.search(ALICE, "photosynthesis")] == ["q1"]
        assert {r.value.id for r in await quiz.search(ALICE, "light")} == {"q1", "q2"}
        assert await quiz.search(ALICE, 'AND OR NOT "( * ^') == []  # query syntax is not interpreted
        await quiz.put(ALICE, {"id": "q1", "topic": "bio", "question": "Mitochondria?"})
        assert await quiz.search(ALICE, "photosynthesis") == []  # the index follows updates
        assert len(await quiz.search(ALICE, "light acid base", limit=1)) == 1

    # --- scopes --------------------------------------------------------------------------------

    async def test_scope_isolation_through_every_api(self, store: Store) -> None:
        docs, log, quiz = store.document(PROFILE), store.log(DIALOGUE), store.collection(QUIZ)
        await docs.replace(ALICE, {"name": "Alice"})
        await log.append(ALICE, {"role": "learner", "text": "alice secret"})
        await log.summarize(ALICE, {"role": "summary", "text": "alice summary"}, through_seq=1)
        await quiz.put(ALICE, {"id": "q1", "topic": "bio", "question": "alice secret question"})
        # Bob sees nothing of Alice's, whichever way he asks.
        assert await docs.get(BOB) is None
        assert await docs.history(BOB) == []
        with pytest.raises(MemoryStoreError):
            await docs.revert(BOB, 1)
        assert await log.last(BOB, 100) == []
        assert await log.range(BOB, 0, 1 << 40) == []
        assert await log.window(BOB, 1 << 30) == []
        assert await log.count(BOB) == 0
        with pytest.raises(MemoryStoreError):
            await log.summarize(BOB, {"role": "summary", "text": "x"}, through_seq=1)
        assert await quiz.get(BOB, "q1") is None
        assert await quiz.query(BOB) == []
        assert await quiz.query(BOB, {"topic": "bio"}) == []
        assert await quiz.search(BOB, "alice secret question") == []
        assert await quiz.delete(BOB, "q1") is False
        # Bob's writes do not touch Alice's records.
        assert (await docs.patch(BOB, {"name": "Bob"})).version == 1
        await quiz.put(BOB, {"id": "q1", "topic": "bio", "question": "bob"})
        alice = await quiz.get(ALICE, "q1")
        assert alice is not None and alice.value.question == "alice secret question" and alice.version == 1
        assert (await docs.get(ALICE)).value.name == "Alice"  # type: ignore[union-attr]
        # Another session of the same user is another log.
        assert await log.count(Scope(user="alice", session="s2")) == 0

    async def test_scope_values_cannot_forge_other_scopes(self, store: Store) -> None:
        log = store.log(DIALOGUE)
        await log.append({"user": "a", "session": "b|c"}, {"role": "learner", "text": "x"})
        assert await log.count({"user": "a|b", "session": "c"}) == 0
        assert await log.count({"user": 'a", "b', "session": "c"}) == 0

    @pytest.mark.parametrize(
        "scope,missing", [({}, "user"), ({"user": "alice"}, "session"), ({"session": "s1"}, "user")]
    )
    async def test_missing_scope_key_raises(self, store: Store, scope: dict[str, str], missing: str) -> None:
        with pytest.raises(ScopeError) as info:
            await store.log(DIALOGUE).append(scope, {"role": "learner", "text": "x"})
        assert missing in str(info.value) and info.value.memory == "dialogue"

    async def test_global_memory_is_shared_and_extra_keys_ignored(self, store: Store) -> None:
        course = store.document(COURSE)
        await course.replace({}, {"name": "Biology 101"})
        seen = await course.get(ALICE)
        assert seen is not None and seen.value.name == "Biology 101"
        assert (
            await store.document(PROFILE).replace({"user": "alice", "extra": "x"}, {"name": "A"})
        ).version == 1
        assert (await store.document(PROFILE).get(ALICE)) is not None

    # --- transactions --------------------------------------------------------------------------

    async def test_transaction_commits_all(self, store: Store, store_factory: StoreFactory) -> None:
        other = await store_factory()
        async with store.transaction():
            await store.document(PROFILE).replace(ALICE, {"name": "Alice"})
            await store.log(DIALOGUE).append(ALICE, {"role": "learner", "text": "hi"})
            await store.collection(QUIZ).put(ALICE, {"id": "q1", "topic": "bio", "question": "cell"})
            # Own writes are visible inside the transaction...
            assert (await store.document(PROFILE).get(ALICE)) is not None
            # ...and not outside it until commit.
            assert await other.document(PROFILE).get(ALICE) is None
        assert (await other.document(PROFILE).get(ALICE)) is not None
        assert await other.log(DIALOGUE).count(ALICE) == 1
        assert await other.collection(QUIZ).search(ALICE, "cell")

    async def test_transaction_rolls_back_everything(self, store: Store) -> None:
        docs = store.document(PROFILE)
        await docs.replace(ALICE, {"name": "Alice"})
        with pytest.raises(RuntimeError):
            async with store.transaction():
                await docs.patch(ALICE, {"level": 7})
                await store.log(DIALOGUE).append(ALICE, {"role": "learner", "text": "hi"})
                await store.collection(QUIZ).put(ALICE, {"id": "q1", "topic": "bio", "question": "cell"})
                raise RuntimeError("crash in the middle")
        current = await docs.get(ALICE)
        assert current is not None and current.version == 1 and current.value.level == 1
        assert await store.log(DIALOGUE).count(ALICE) == 0
        assert await store.collection(QUIZ).get(ALICE, "q1") is None
        assert await store.collection(QUIZ).search(ALICE, "cell") == []

    async def test_conflict_inside_transaction_rolls_back(self, store: Store) -> None:
        docs = store.document(PROFILE)
        await docs.replace(ALICE, {"name": "Alice"})
        with pytest.raises(MemoryConflict):
            async with store.transaction():
                await store.log(DIALOGUE).append(ALICE, {"role": "learner", "text": "hi"})
                await docs.patch(ALICE, {"level": 2}, expected_version=5)
        assert await store.log(DIALOGUE).count(ALICE) == 0

    async def test_nested_transaction_rolls_back_only_inner(self, store: Store) -> None:
        log = store.log(DIALOGUE)
        async with store.transaction():
            await log.append(ALICE, {"role": "learner", "text": "outer"})
            with pytest.raises(ValueError):
                async with store.transaction():
                    await log.append(ALICE, {"role": "learner", "text": "inner"})
                    raise ValueError
            await log.append(ALICE, {"role": "learner", "text": "outer 2"})
        assert [e.value.text for e in await log.last(ALICE, 10)] == ["outer", "outer 2"]

    async def test_other_tasks_do_not_join_a_transaction(self, store: Store) -> None:
        log = store.log(DIALOGUE)
        inside = asyncio.Event()
        release = asyncio.Event()

        async def in_transaction() -> None:
            async with store.transaction():
                await log.append(ALICE, {"role": "learner", "text": "tx"})
                inside.set()
                await release.wait()
                raise RuntimeError("roll back")

        task = asyncio.create_task(in_transaction())
        await inside.wait()
        outside = asyncio.create_task(log.append(BOB, {"role": "learner", "text": "outside"}))
        await asyncio.sleep(0.05)
        release.set()
        with pytest.raises(RuntimeError):
            await task
        await outside
        assert await log.count(ALICE) == 0  # rolled back
        assert await log.count(BOB) == 1  # committed on its own, not swallowed by the rollback

    async def test_operation_after_transaction_ended_is_refused(self, store: Store) -> None:
        leaked: list[asyncio.Task[Any]] = []
        gate = asyncio.Event()

        async def late() -> None:
            await gate.wait()
            await store.log(DIALOGUE).append(ALICE, {"role": "learner", "text": "late"})

        async with store.transaction():
            leaked.append(asyncio.create_task(late()))
        gate.set()
        with pytest.raises(UsageError):
            await leaked[0]

    # --- concurrency ---------------------------------------------------------------------------

    async def test_concurrent_increments_lose_nothing(
        self, store: Store, store_factory: StoreFactory
    ) -> None:
        other = await store_factory()
        await store.document(PROFILE).replace(ALICE, {"name": "Alice", "level": 1})

        async def bump(s: Store, times: int) -> int:
            conflicts = 0
            docs = s.document(PROFILE)
            for _ in range(times):
                while True:
                    current = await docs.get(ALICE)
                    assert current is not None
                    try:
                        await docs.patch(
                            ALICE, {"level": current.value.level + 1}, expected_version=current.version
                        )
                        break
                    except MemoryConflict:
                        conflicts += 1
            return conflicts

        await asyncio.gather(*(bump(s, 15) for s in (store, other, store, other)))
        final = await store.document(PROFILE).get(ALICE)
        assert final is not None and final.value.level == 61 and final.version == 61

    # --- schema evolution ----------------------------------------------------------------------

    async def test_old_records_are_migrated_on_load(self, store: Store) -> None:
        class V1(BaseModel):
            nick: str

        class V3(BaseModel):
            name: str
            level: int

        old = Document("evolving", V1, scope="user")
        await store.document(old).replace(ALICE, {"nick": "Al"})
        new = Document(
            "evolving",
            V3,
            scope="user",
            version=3,
            migrations={
                1: lambda r: {"name": r.pop("nick")},
                2: lambda r: {**r, "level": 1},
            },
        )
        loaded = await store.document(new).get(ALICE)
        assert loaded is not None and loaded.value == V3(name="Al", level=1)
        patched = await store.document(new).patch(ALICE, {"level": 2})
        assert patched.value == V3(name="Al", level=2)
        # History mixes versions; each loads through the chain it needs.
        assert [v.value for v in await store.document(new).history(ALICE)] == [
            V3(name="Al", level=1),
            V3(name="Al", level=2),
        ]

    async def test_mismatch_names_memory_scope_field_and_keeps_data(self, store: Store) -> None:
        class V1(BaseModel):
            name: str
            level: str

        class V2(BaseModel):
            name: str
            level: int

        await store.document(Document("strict", V1)).replace(ALICE, {"name": "A", "level": "high"})
        # Same schema version, incompatible model: an error naming the field.
        with pytest.raises(SchemaMismatch) as info:
            await store.document(Document("strict", V2)).get(ALICE)
        assert (info.value.memory, info.value.field) == ("strict", "level")
        assert info.value.scope == {"user": "alice"}
        # A bumped version without a migration says so.
        with pytest.raises(SchemaMismatch, match="no migration"):
            await store.document(Document("strict", V2, version=2)).get(ALICE)
        # A failing migration is reported, not half-applied.
        broken = Document("strict", V2, version=2, migrations={1: lambda r: {**r, "level": int(r["level"])}})
        with pytest.raises(SchemaMismatch, match="migration"):
            await store.document(broken).get(ALICE)
        # Nothing was rewritten: the original definition still reads the original data.
        intact = await store.document(Document("strict", V1)).get(ALICE)
        assert intact is not None and intact.value == V1(name="A", level="high") and intact.version == 1

    async def test_record_from_newer_schema_is_refused(self, store: Store) -> None:
        await store.document(Document("future", Profile, version=3, migrations={1: dict, 2: dict})).replace(
            ALICE, {"name": "A"}
        )
        with pytest.raises(SchemaMismatch, match="newer"):
            await store.document(Document("future", Profile, version=2, migrations={1: dict})).get(ALICE)

    async def test_log_and_collection_migrate_too(self, store: Store) -> None:
        class OldTurn(BaseModel):
            who: str
            text: str

        await store.log(Log("chat", OldTurn)).append(ALICE, {"who": "learner", "text": "hello"})
        chat = Log("chat", Turn, version=2, migrations={1: lambda r: {"role": r["who"], "text": r["text"]}})
        assert [e.value for e in await store.log(chat).window(ALICE, 1000)] == [
            Turn(role="learner", text="hello")
        ]

        class OldQuiz(BaseModel):
            id: str
            topic: str
            question: str

        await store.collection(Collection("cards", OldQuiz)).put(
            ALICE, {"id": "c1", "topic": "x", "question": "q"}
        )
        cards = Collection("cards", QuizRecord, version=2, migrations={1: lambda r: {**r, "score": 1.0}})
        got = await store.collection(cards).get(ALICE, "c1")
        assert got is not None and got.value.score == 1.0

    # --- tracing and persistence ---------------------------------------------------------------

    async def test_every_committed_write_is_traced(self, store: Store) -> None:
        sink = ListSink()
        with trace_to(sink):
            await store.document(PROFILE).replace(ALICE, {"name": "Alice"})
            await store.document(PROFILE).patch(ALICE, {"level": 2})
            await store.log(DIALOGUE).append(ALICE, {"role": "learner", "text": "x"})
            await store.collection(QUIZ).put(ALICE, {"id": "q1", "topic": "t", "question": "q"})
            await store.collection(QUIZ).delete(ALICE, "q1")
            with pytest.raises(RuntimeError):
                async with store.transaction():
                    await store.document(PROFILE).patch(ALICE, {"level": 3})
                    raise RuntimeError
            async with store.transaction():
                await store.document(PROFILE).patch(ALICE, {"level": 4})
        events = [(e["memory"], e["op"], e["version"]) for e in sink.of_kind("memory_write")]
        assert events == [
            ("profile", "replace", 1),
            ("profile", "patch", 2),
            ("dialogue", "append", 1),
            ("quiz", "put", 1),
            ("quiz", "delete", 2),
            ("profile", "patch", 3),
        ]
        assert sink.of_kind("memory_write")[0]["scope"] == {"user": "alice"}

    async def test_data_survives_reopen(self, store: Store, store_factory: StoreFactory) -> None:
        await store.document(PROFILE).replace(ALICE, {"name": "Alice"})
        await store.log(DIALOGUE).append(ALICE, {"role": "learner", "text": "x"})
        await store.close()
        again = await store_factory()
        got = await again.document(PROFILE).get(ALICE)
        assert got is not None and got.value.name == "Alice"
        assert await again.log(DIALOGUE).count(ALICE) == 1

    async def test_wrong_kind_handle_is_refused(self, store: Store) -> None:
        with pytest.raises(MemoryStoreError):
            store.log(PROFILE)
        assert store.handle(PROFILE) is store.document(PROFILE)


__all__ = ["StoreContract", "StoreFactory"]
