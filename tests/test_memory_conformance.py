"""SQLiteStore against the Store contract every store must pass."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chainkit.memory import SQLiteStore
from chainkit.memory.conformance import StoreContract, StoreFactory


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    async def store_factory(self, tmp_path: Path) -> AsyncIterator[StoreFactory]:
        opened: list[SQLiteStore] = []

        async def factory() -> SQLiteStore:
            store = SQLiteStore(tmp_path / "memory.db")
            await store.open()
            opened.append(store)
            return store

        yield factory
        for store in opened:
            await store.close()
