"""The Store protocol and the typed handles every store shares.

A store implements two things:

* the public `Store` protocol (open/close, handles per spec, `transaction()`), and
* `StoreRecords`, a small set of raw operations on JSON rows keyed by (memory, scope key).

Everything typed lives here, once, for every store: scope resolution, validation of what is written,
migration and validation of what is loaded (`SchemaMismatch`), optimistic version checks
(`MemoryConflict`), patch merging and log windows. A write passes the store a pure `compute`
function that the store runs inside its write transaction, on the current row, so a read-modify-write
is atomic without holding any lock across an `await`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

from chainkit.errors import MemoryConflict, MemoryStoreError, SchemaMismatch
from chainkit.memory._records import LogEntry, StoredEntry, StoredRecord, Versioned
from chainkit.memory._scope import ScopeLike, resolve_scope
from chainkit.memory._spec import MemorySpec, _unwrap
from chainkit.memory._tokens import default_count_tokens

T = TypeVar("T", bound=BaseModel)

# compute(current row or None) -> (JSON text to store, text to index for search or None)
Compute = Callable[[StoredRecord | None], tuple[str, str | None]]
Event = dict[str, Any]


class StoreRecords(Protocol):
    """Raw row operations a store implements; the handles below build everything else on them.

    `memory` is the memory name, `scope` the scope key text from `resolve_scope`. Reads return rows
    as stored; writes run `compute`/`check` inside one write transaction and emit `event` (with
    "version" filled in) after it commits.
    """

    async def doc_latest(self, memory: str, scope: str) -> StoredRecord | None: ...
    async def doc_versions(self, memory: str, scope: str) -> list[StoredRecord]: ...
    async def doc_version(self, memory: str, scope: str, version: int) -> StoredRecord | None: ...
    async def doc_write(
        self, memory: str, scope: str, compute: Compute, schema_version: int, event: Event,
        keep_versions: int | None = None,
    ) -> StoredRecord: ...

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
    ) -> StoredEntry: ...
    async def log_scan_back(
        self, memory: str, scope: str, before_seq: int | None, limit: int
    ) -> list[StoredEntry]: ...
    async def log_range(self, memory: str, scope: str, start_seq: int, end_seq: int) -> list[StoredEntry]: ...
    async def log_last_seq(self, memory: str, scope: str) -> int: ...

    async def coll_get(self, memory: str, scope: str, key: str) -> StoredRecord | None: ...
    async def coll_write(
        self, memory: str, scope: str, key: str, compute: Compute, schema_version: int, event: Event
    ) -> StoredRecord: ...
    async def coll_delete(
        self, memory: str, scope: str, key: str, check: Callable[[StoredRecord | None], bool], event: Event
    ) -> bool: ...
    async def coll_query(
        self,
        memory: str,
        scope: str,
        where: list[tuple[str, Any]],
        order_by: tuple[str, bool] | None,
        limit: int | None,
    ) -> list[StoredRecord]: ...
    async def coll_search(
        self, memory: str, scope: str, terms: list[str], limit: int
    ) -> list[StoredRecord]: ...
    async def coll_prepare(self, memory: str, paths: list[str]) -> None: ...


@runtime_checkable
class Store(Protocol):
    """A place memories live. `SQLiteStore` is the default; every store passes `chainkit.memory.conformance`."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def __aenter__(self) -> Store: ...
    async def __aexit__(self, *exc: object) -> None: ...
    def transaction(self) -> AbstractAsyncContextManager[None]: ...
    def document(self, spec: MemorySpec) -> DocumentHandle[Any]: ...
    def log(self, spec: MemorySpec) -> LogHandle[Any]: ...
    def collection(self, spec: MemorySpec) -> CollectionHandle[Any]: ...
    def handle(self, spec: MemorySpec) -> DocumentHandle[Any] | LogHandle[Any] | CollectionHandle[Any]: ...


class HandleFactory:
    """Mixin for stores: typed handles per spec, cached so repeated lookups are free."""

    _handles: dict[int, Any]

    def _records(self) -> StoreRecords:
        return self  # type: ignore[return-value]

    def _cached(self, spec: MemorySpec, kind: str, cls: type) -> Any:
        if not isinstance(spec, MemorySpec):
            raise MemoryStoreError(f"expected a MemorySpec, got {type(spec).__name__}")
        if spec.kind != kind:
            raise MemoryStoreError(f"is a {spec.kind}, not a {kind}", memory=spec.name)
        cache = self.__dict__.setdefault("_handles", {})
        found = cache.get(id(spec))
        if found is None or found.spec is not spec:
            found = cls(self._records(), spec)
            cache[id(spec)] = found
        return found

    def document(self, spec: MemorySpec) -> DocumentHandle[Any]:
        return self._cached(spec, "document", DocumentHandle)

    def log(self, spec: MemorySpec) -> LogHandle[Any]:
        return self._cached(spec, "log", LogHandle)

    def collection(self, spec: MemorySpec) -> CollectionHandle[Any]:
        return self._cached(spec, "collection", CollectionHandle)

    def handle(self, spec: MemorySpec) -> DocumentHandle[Any] | LogHandle[Any] | CollectionHandle[Any]:
        return {"document": self.document, "log": self.log, "collection": self.collection}[spec.kind](spec)


# --- shared typed logic ----------------------------------------------------------------------


class _Handle(Generic[T]):
    def __init__(self, records: StoreRecords, spec: MemorySpec) -> None:
        self._records = records
        self.spec = spec
        self.name = spec.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} scope={self.spec.scope_label}>"

    def _scope(self, scope: ScopeLike) -> tuple[dict[str, str], str]:
        return resolve_scope(self.name, self.spec.scope, scope)

    def _event(self, used: dict[str, str], op: str) -> Event:
        return {"memory": self.name, "scope": used, "op": op}

    # Loading: migrate old schema versions, then validate. Never writes anything back.
    def _load(self, data: str, schema_version: int, used: dict[str, str]) -> T:
        spec = self.spec
        model: type[T] = spec.model  # type: ignore[assignment]
        if schema_version == spec.version:
            try:
                return model.model_validate_json(data)
            except ValidationError as exc:
                raise self._mismatch(exc, schema_version, used, "stored record") from exc
        if schema_version > spec.version:
            raise SchemaMismatch(
                f"stored record has schema version {schema_version}, newer than this definition "
                f"(version {spec.version}); upgrade the code, do not downgrade the data",
                memory=self.name,
                scope=used,
            )
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise SchemaMismatch(
                f"stored record is not valid JSON: {exc}", memory=self.name, scope=used
            ) from exc
        for version in range(schema_version, spec.version):
            migration = spec.migrations.get(version)
            if migration is None:
                raise SchemaMismatch(
                    f"stored record has schema version {version} and there is no migration from "
                    f"version {version} to {version + 1}",
                    memory=self.name,
                    scope=used,
                )
            try:
                payload = migration(payload)
            except Exception as exc:  # a user migration failed: report it, keep the row as it is
                raise SchemaMismatch(
                    f"migration from schema version {version} failed: {exc!r}", memory=self.name, scope=used
                ) from exc
            if not isinstance(payload, dict):
                raise SchemaMismatch(
                    f"migration from schema version {version} returned {type(payload).__name__}, not a dict",
                    memory=self.name,
                    scope=used,
                )
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise self._mismatch(exc, schema_version, used, "stored record") from exc

    def _mismatch(
        self, exc: ValidationError, schema_version: int | None, used: dict[str, str], what: str
    ) -> SchemaMismatch:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        version_text = f" (schema version {schema_version})" if schema_version is not None else ""
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return SchemaMismatch(
            f"{what}{version_text} does not match {self.spec.model.__name__}: field {field!r}: {first['msg']}{more}",
            memory=self.name,
            scope=used,
            field=field,
        )

    # Writing: validate whatever the caller passed; store compact JSON of the validated model.
    def _validate(self, value: Any, used: dict[str, str]) -> T:
        model: type[T] = self.spec.model  # type: ignore[assignment]
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        if not isinstance(value, Mapping):
            raise SchemaMismatch(
                f"expected a {model.__name__} or a dict, got {type(value).__name__}",
                memory=self.name,
                scope=used,
            )
        try:
            return model.model_validate(dict(value))
        except ValidationError as exc:
            raise self._mismatch(exc, None, used, "value") from exc

    def _search_text(self, value: T) -> str | None:
        if not self.spec.text_fields:
            return None
        parts: list[str] = []
        for dotted in self.spec.text_fields:
            item: Any = value
            for part in dotted.split("."):
                item = getattr(item, part, None) if item is not None else None
            _flatten_text(item, parts)
        return "\n".join(parts)


def _flatten_text(item: Any, out: list[str]) -> None:
    if item is None:
        return
    if isinstance(item, str):
        out.append(item)
    elif isinstance(item, (list, tuple)):
        for sub in item:
            _flatten_text(sub, out)
    elif isinstance(item, BaseModel):
        _flatten_text(list(item.model_dump(mode="json").values()), out)
    elif isinstance(item, dict):
        _flatten_text(list(item.values()), out)
    else:
        out.append(str(item))


def _live_version(current: StoredRecord | None) -> int:
    return current.version if current is not None and current.data is not None else 0


def _check_expected(
    memory: str, used: dict[str, str], current: StoredRecord | None, expected: int | None
) -> None:
    if expected is None:
        return
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise MemoryStoreError(
            f"expected_version must be an integer >= 0, got {expected!r}", memory=memory, scope=used
        )
    found = _live_version(current)
    if found != expected:
        state = "does not exist" if found == 0 else f"is at version {found}"
        raise MemoryConflict(
            f"expected version {expected}, but the record {state} (someone wrote first)",
            memory=memory,
            scope=used,
        )


def _deep_merge(base: dict[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in delta.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _check_delta_keys(model: Any, delta: Mapping[str, Any], prefix: str) -> str | None:
    """The first key of `delta` that is not a field of `model` (walking nested models), or None."""
    fields = getattr(model, "model_fields", None)
    if fields is None:
        return None
    for key, value in delta.items():
        if key not in fields:
            return prefix + str(key)
        nested = _unwrap(fields[key].annotation)
        if isinstance(value, Mapping) and isinstance(nested, type) and issubclass(nested, BaseModel):
            bad = _check_delta_keys(nested, value, f"{prefix}{key}.")
            if bad:
                return bad
    return None


class DocumentHandle(_Handle[T]):
    """One record per scope; every write keeps the previous version."""

    def _versioned(self, row: StoredRecord, used: dict[str, str]) -> Versioned[T]:
        assert row.data is not None
        return Versioned(self._load(row.data, row.schema_version, used), row.version, row.updated_at)

    async def get(self, scope: ScopeLike) -> Versioned[T] | None:
        used, key = self._scope(scope)
        row = await self._records.doc_latest(self.name, key)
        return None if row is None else self._versioned(row, used)

    async def replace(
        self, scope: ScopeLike, value: T | Mapping[str, Any], *, expected_version: int | None = None
    ) -> Versioned[T]:
        used, key = self._scope(scope)
        validated = self._validate(value, used)
        data = validated.model_dump_json()

        def compute(current: StoredRecord | None) -> tuple[str, str | None]:
            _check_expected(self.name, used, current, expected_version)
            return data, None

        row = await self._records.doc_write(
            self.name, key, compute, self.spec.version, self._event(used, "replace"),
            keep_versions=self.spec.keep_versions,
        )
        return Versioned(validated, row.version, row.updated_at)

    async def patch(
        self, scope: ScopeLike, delta: Mapping[str, Any], *, expected_version: int | None = None
    ) -> Versioned[T]:
        """Deep-merge `delta` into the current record (nested dicts merge, anything else replaces),
        validate the result and write it. Runs on the current row inside the write transaction, so
        concurrent patches to different fields never lose each other."""
        used, key = self._scope(scope)
        if not isinstance(delta, Mapping):
            raise SchemaMismatch(
                f"patch needs a dict, got {type(delta).__name__}", memory=self.name, scope=used
            )
        bad = _check_delta_keys(self.spec.model, delta, "")
        if bad:
            raise SchemaMismatch(
                f"patch names unknown field {bad!r}", memory=self.name, scope=used, field=bad
            )
        result: list[T] = []

        def compute(current: StoredRecord | None) -> tuple[str, str | None]:
            _check_expected(self.name, used, current, expected_version)
            base: dict[str, Any] = {}
            if current is not None and current.data is not None:
                base = self._load(current.data, current.schema_version, used).model_dump(mode="json")
            validated = self._validate(_deep_merge(base, delta), used)
            result.append(validated)
            return validated.model_dump_json(), None

        row = await self._records.doc_write(
            self.name, key, compute, self.spec.version, self._event(used, "patch"),
            keep_versions=self.spec.keep_versions,
        )
        return Versioned(result[-1], row.version, row.updated_at)  # compute may rerun on a lock retry

    async def history(self, scope: ScopeLike) -> list[Versioned[T]]:
        """Every version, oldest first; the last one is current."""
        used, key = self._scope(scope)
        rows = await self._records.doc_versions(self.name, key)
        return [self._versioned(row, used) for row in rows]

    async def revert(
        self, scope: ScopeLike, version: int, *, expected_version: int | None = None
    ) -> Versioned[T]:
        """Write the content of `version` again, as a new version (history is never rewritten)."""
        used, key = self._scope(scope)
        old = await self._records.doc_version(self.name, key, version)
        if old is None or old.data is None:
            raise MemoryStoreError(f"has no version {version} to revert to", memory=self.name, scope=used)
        validated = self._load(old.data, old.schema_version, used)
        data = validated.model_dump_json()

        def compute(current: StoredRecord | None) -> tuple[str, str | None]:
            _check_expected(self.name, used, current, expected_version)
            return data, None

        row = await self._records.doc_write(
            self.name, key, compute, self.spec.version, self._event(used, "revert"),
            keep_versions=self.spec.keep_versions,
        )
        return Versioned(validated, row.version, row.updated_at)


class LogHandle(_Handle[T]):
    """Append-only entries with rolling summaries and token-budget windows."""

    def _entry(self, row: StoredEntry, used: dict[str, str]) -> LogEntry[T]:
        return LogEntry(
            row.seq,
            self._load(row.data, row.schema_version, used),
            row.created_at,
            row.is_summary,
            row.covers,
        )

    async def _append(
        self, scope: ScopeLike, entry: Any, covers_from: int | None, through_seq: int | None, op: str
    ) -> LogEntry[T]:
        used, key = self._scope(scope)
        validated = self._validate(entry, used)
        data = validated.model_dump_json()
        # Counted once here so windows read stored sizes instead of re-tokenizing history.
        tokens = default_count_tokens(data)
        covers = None
        check: Callable[[int], None] = _no_check
        if through_seq is not None:
            first = 1 if covers_from is None else covers_from
            if (
                isinstance(through_seq, bool)
                or not isinstance(through_seq, int)
                or not 1 <= first <= through_seq
            ):
                raise MemoryStoreError(
                    f"summary must cover 1 <= from_seq <= through_seq, got {first}..{through_seq}",
                    memory=self.name,
                    scope=used,
                )
            covers = (first, through_seq)

            def check(last_seq: int) -> None:
                if through_seq > last_seq:
                    raise MemoryStoreError(
                        f"cannot summarize through seq {through_seq}: the log ends at {last_seq}",
                        memory=self.name,
                        scope=used,
                    )

        row = await self._records.log_append(
            self.name, key, data, self.spec.version, tokens, covers, check, self._event(used, op)
        )
        return LogEntry(row.seq, validated, row.created_at, row.is_summary, row.covers)

    async def append(self, scope: ScopeLike, entry: T | Mapping[str, Any]) -> LogEntry[T]:
        return await self._append(scope, entry, None, None, "append")

    async def summarize(
        self, scope: ScopeLike, summary: T | Mapping[str, Any], *, through_seq: int, from_seq: int = 1
    ) -> LogEntry[T]:
        """Append a summary entry standing for entries from_seq..through_seq (default: all up to it).

        Windows then return the summary instead of those entries; `last` and `range` still see them.
        """
        return await self._append(scope, summary, from_seq, through_seq, "summarize")

    async def last(self, scope: ScopeLike, n: int) -> list[LogEntry[T]]:
        used, key = self._scope(scope)
        if n <= 0:
            return []
        rows = await self._records.log_scan_back(self.name, key, None, n)
        return [self._entry(row, used) for row in reversed(rows)]

    async def range(self, scope: ScopeLike, start_seq: int, end_seq: int) -> list[LogEntry[T]]:
        """Entries with start_seq <= seq <= end_seq, oldest first."""
        used, key = self._scope(scope)
        rows = await self._records.log_range(self.name, key, start_seq, end_seq)
        return [self._entry(row, used) for row in rows]

    async def count(self, scope: ScopeLike) -> int:
        used, key = self._scope(scope)
        return await self._records.log_last_seq(self.name, key)

    async def window(
        self, scope: ScopeLike, max_tokens: int, *, count_tokens: Callable[[str], int] | None = None
    ) -> list[LogEntry[T]]:
        """The newest entries whose JSON text fits `max_tokens`, oldest first.

        Walks back from the newest entry and stops at the first one that does not fit, so the result
        is contiguous. Entries covered by a summary already taken are skipped (the summary stands for
        them). Cost is O(entries returned), not O(log length): rows are read newest-first from the
        (memory, scope, seq) primary key, and token sizes under the default counter are stored.
        """
        used, key = self._scope(scope)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
            raise MemoryStoreError(
                f"max_tokens must be an integer >= 0, got {max_tokens!r}", memory=self.name, scope=used
            )
        picked: list[LogEntry[T]] = []
        covered: list[tuple[int, int]] = []
        total = 0
        before: int | None = None
        page = 16
        while True:
            rows = await self._records.log_scan_back(self.name, key, before, page)
            if not rows:
                break
            jump: int | None = None
            full = False
            for row in rows:
                hit = next((c for c in covered if c[0] <= row.seq <= c[1]), None)
                if hit is not None:
                    jump = hit[0]  # everything from hit[0] up to this row is covered
                    break
                if count_tokens is None and row.schema_version == self.spec.version:
                    cost = row.tokens
                    entry = None
                else:
                    entry = self._entry(row, used)
                    cost = (count_tokens or default_count_tokens)(entry.value.model_dump_json())
                if total + cost > max_tokens:
                    full = True
                    break
                total += cost
                picked.append(entry if entry is not None else self._entry(row, used))
                if row.is_summary and row.covers is not None:
                    covered.append(row.covers)
            if full:
                break
            if jump is not None:
                before = jump
            elif len(rows) < page:
                break
            else:
                before = rows[-1].seq
            page = min(page * 4, 1024)
        picked.reverse()
        return picked


def _no_check(last_seq: int) -> None:
    return None


_FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class CollectionHandle(_Handle[T]):
    """Keyed records: put/get/delete, query by field equality, full-text search over text fields."""

    _indexed = False

    def _versioned(self, row: StoredRecord, used: dict[str, str]) -> Versioned[T]:
        assert row.data is not None
        return Versioned(self._load(row.data, row.schema_version, used), row.version, row.updated_at)

    def _key_text(self, key: Any, used: dict[str, str]) -> str:
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise MemoryStoreError(
                f"key must be a string or an integer, got {type(key).__name__}", memory=self.name, scope=used
            )
        return str(key)

    def _json_path(self, dotted: str, used: dict[str, str], what: str) -> str:
        model: Any = self.spec.model
        if isinstance(dotted, str) and _FIELD_PATH.match(dotted):
            for part in dotted.split("."):
                fields = getattr(model, "model_fields", None)
                if fields is None or part not in fields:
                    break
                model = _unwrap(fields[part].annotation)
            else:
                return "$." + dotted
        raise MemoryStoreError(
            f"{what} names unknown field {dotted!r} of {self.spec.model.__name__}",
            memory=self.name,
            scope=used,
        )

    async def put(
        self, scope: ScopeLike, value: T | Mapping[str, Any], *, expected_version: int | None = None
    ) -> Versioned[T]:
        used, scope_key = self._scope(scope)
        validated = self._validate(value, used)
        key = self._key_text(getattr(validated, self.spec.key or "id"), used)
        data = validated.model_dump_json()
        text = self._search_text(validated)

        def compute(current: StoredRecord | None) -> tuple[str, str | None]:
            _check_expected(self.name, used, current, expected_version)
            return data, text

        row = await self._records.coll_write(
            self.name, scope_key, key, compute, self.spec.version, {**self._event(used, "put"), "key": key}
        )
        return Versioned(validated, row.version, row.updated_at)

    async def get(self, scope: ScopeLike, key: str | int) -> Versioned[T] | None:
        used, scope_key = self._scope(scope)
        row = await self._records.coll_get(self.name, scope_key, self._key_text(key, used))
        if row is None or row.data is None:
            return None
        return self._versioned(row, used)

    async def delete(self, scope: ScopeLike, key: str | int, *, expected_version: int | None = None) -> bool:
        """Delete a record; False when there was none. The version keeps counting if it is put again."""
        used, scope_key = self._scope(scope)
        key_text = self._key_text(key, used)

        def check(current: StoredRecord | None) -> bool:
            _check_expected(self.name, used, current, expected_version)
            return current is not None and current.data is not None

        return await self._records.coll_delete(
            self.name, scope_key, key_text, check, {**self._event(used, "delete"), "key": key_text}
        )

    async def query(
        self,
        scope: ScopeLike,
        where: Mapping[str, Any] | None = None,
        *,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> list[Versioned[T]]:
        """Records whose fields equal `where` (dotted paths reach nested fields), ordered by a field
        ("-field" for descending; default: key order), at most `limit`."""
        used, scope_key = self._scope(scope)
        conditions: list[tuple[str, Any]] = []
        for field, value in (where or {}).items():
            path = self._json_path(field, used, "where")
            conditions.append((path, _json_scalar(value, self.name, used, field)))
        order: tuple[str, bool] | None = None
        if order_by is not None:
            descending = isinstance(order_by, str) and order_by.startswith("-")
            order = (self._json_path(order_by[1:] if descending else order_by, used, "order_by"), descending)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise MemoryStoreError(
                f"limit must be an integer >= 0, got {limit!r}", memory=self.name, scope=used
            )
        if self.spec.indexes and not self._indexed:
            await self._records.coll_prepare(self.name, ["$." + f for f in self.spec.indexes])
            self._indexed = True
        rows = await self._records.coll_query(self.name, scope_key, conditions, order, limit)
        return [self._versioned(row, used) for row in rows]

    async def search(self, scope: ScopeLike, text: str, *, limit: int = 10) -> list[Versioned[T]]:
        """Best matches for any word of `text` in the text fields, best first. Words are matched as
        plain terms (no query syntax), so user input cannot break the search."""
        used, scope_key = self._scope(scope)
        if not self.spec.text_fields:
            raise MemoryStoreError("has no text_fields to search", memory=self.name, scope=used)
        terms = re.findall(r"\w+", text or "")
        if not terms or limit <= 0:
            return []
        rows = await self._records.coll_search(self.name, scope_key, terms[:64], limit)
        return [self._versioned(row, used) for row in rows]


def _json_scalar(value: Any, memory: str, used: dict[str, str], field: str) -> Any:
    """A query value as json_extract returns it: bools as 0/1, enums and dates as their JSON form."""
    from pydantic_core import to_jsonable_python

    plain = to_jsonable_python(value)
    if isinstance(plain, bool):
        return int(plain)
    if plain is None or isinstance(plain, (str, int, float)):
        return plain
    raise MemoryStoreError(
        f"where {field!r}: only scalar values can be compared, got {type(value).__name__}",
        memory=memory,
        scope=used,
    )
