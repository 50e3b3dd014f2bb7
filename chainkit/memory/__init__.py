"""Typed memories: documents, logs and collections, scoped, versioned and transactional.

    from chainkit.memory import Document, open_store, Scope

    profile = Document("profile", Profile, scope="user")
    async with await open_store("app.db") as store:
        docs = store.document(profile)
        await docs.replace(Scope(user="alice"), {"name": "Alice", "level": 1})

See docs/memory.md.
"""

from __future__ import annotations

from chainkit.memory._definition import compile_memory_definition, load_memory_file
from chainkit.memory._records import LogEntry, Versioned
from chainkit.memory._scope import Scope
from chainkit.memory._spec import Collection, Document, Log, MemorySpec
from chainkit.memory._store import CollectionHandle, DocumentHandle, LogHandle, Store
from chainkit.memory.sqlite import SQLiteStore, open_store

__all__ = [
    "Collection",
    "CollectionHandle",
    "Document",
    "DocumentHandle",
    "Log",
    "LogEntry",
    "LogHandle",
    "MemorySpec",
    "SQLiteStore",
    "Scope",
    "Store",
    "Versioned",
    "compile_memory_definition",
    "load_memory_file",
    "open_store",
]
