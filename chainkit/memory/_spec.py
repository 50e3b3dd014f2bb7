"""Memory specs: what a memory holds (model), how it is keyed (kind, scope) and its schema version.

`Document`, `Log` and `Collection` build a `MemorySpec`; YAML definitions compile to the same thing.
A spec is pure data: it holds no store and can be shared by any number of stores.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from chainkit.errors import DefinitionError

MemoryKind = Literal["document", "log", "collection"]
Migration = Callable[[dict[str, Any]], dict[str, Any]]

# Named scopes; any other tuple of key names is a custom scope.
NAMED_SCOPES: dict[str, tuple[str, ...]] = {
    "global": (),
    "user": ("user",),
    "session": ("user", "session"),
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def scope_names(scope: str | Sequence[str], *, memory: str = "") -> tuple[str, ...]:
    """'user' -> ('user',); ('course', 'user') stays as it is."""
    if isinstance(scope, str):
        if scope in NAMED_SCOPES:
            return NAMED_SCOPES[scope]
        raise DefinitionError(
            f"memory {memory!r}: unknown scope {scope!r} (use global, user, session or a list of key names)",
            path="scope",
        )
    names = tuple(scope)
    for name in names:
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise DefinitionError(f"memory {memory!r}: invalid scope key name {name!r}", path="scope")
    if len(set(names)) != len(names):
        raise DefinitionError(f"memory {memory!r}: scope key names repeat: {list(names)}", path="scope")
    return names


@dataclass(frozen=True, eq=False)  # identity equality: specs key handle caches
class MemorySpec:
    """A memory definition. Build it with Document(), Log() or Collection()."""

    name: str
    kind: MemoryKind
    model: type[BaseModel]
    scope: tuple[str, ...] = ("user",)
    text_fields: tuple[str, ...] = ()
    key: str | None = None
    version: int = 1
    migrations: Mapping[int, Migration] = field(default_factory=dict)
    description: str = ""
    # Fields of a collection to index (json_extract expression indexes) for fast query().
    indexes: tuple[str, ...] = ()
    # Documents: how many versions history keeps (None: all). A long-running app that patches a
    # document every turn bounds its growth with this; older versions can no longer be reverted to.
    keep_versions: int | None = None

    def __post_init__(self) -> None:
        where = f"memory {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise DefinitionError(f"invalid memory name {self.name!r}", path="name")
        if self.kind not in ("document", "log", "collection"):
            raise DefinitionError(f"{where}: unknown kind {self.kind!r}", path="kind")
        if not (isinstance(self.model, type) and issubclass(self.model, BaseModel)):
            raise DefinitionError(f"{where}: model must be a pydantic BaseModel class", path="model")
        if self.keep_versions is not None and (
            self.kind != "document" or isinstance(self.keep_versions, bool)
            or not isinstance(self.keep_versions, int) or self.keep_versions < 1
        ):
            raise DefinitionError(f"{where}: keep_versions is a number >= 1, for documents only",
                                  path="keep_versions")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise DefinitionError(f"{where}: version must be an integer >= 1", path="version")
        for from_version, migration in self.migrations.items():
            if not isinstance(from_version, int) or not 1 <= from_version < self.version:
                raise DefinitionError(
                    f"{where}: migration key {from_version!r} must be a version from 1 to {self.version - 1}",
                    path=f"migrations.{from_version}",
                )
            if not callable(migration):
                raise DefinitionError(
                    f"{where}: migration from v{from_version} is not callable",
                    path=f"migrations.{from_version}",
                )
        for name in self.text_fields:
            self._check_field(name, "text_fields")
        for name in self.indexes:
            self._check_field(name, "indexes")
        if self.kind == "collection":
            if not self.key:
                raise DefinitionError(f"{where}: a collection needs a key field", path="key")
            if self.key not in self.model.model_fields:
                raise DefinitionError(
                    f"{where}: key field {self.key!r} is not a field of {self.model.__name__}", path="key"
                )
        elif self.key is not None:
            raise DefinitionError(f"{where}: only a collection has a key field", path="key")
        if self.text_fields and self.kind != "collection":
            # Logs accept text_fields for the definition format, but only collections are searched.
            if self.kind == "document":
                raise DefinitionError(f"{where}: a document has no text search", path="text_fields")

    def _check_field(self, dotted: str, where: str) -> None:
        if not isinstance(dotted, str) or not _FIELD.match(dotted):
            raise DefinitionError(f"memory {self.name!r}: invalid field name {dotted!r}", path=where)
        model: Any = self.model
        for part in dotted.split("."):
            fields = getattr(model, "model_fields", None)
            if fields is None or part not in fields:
                raise DefinitionError(
                    f"memory {self.name!r}: {where} names unknown field {dotted!r}", path=where
                )
            model = _unwrap(fields[part].annotation)

    @property
    def scope_label(self) -> str:
        for label, names in NAMED_SCOPES.items():
            if names == self.scope:
                return label
        return ",".join(self.scope)


def _unwrap(annotation: Any) -> Any:
    """Optional[Model] -> Model, so dotted field paths can walk nested models."""
    args = getattr(annotation, "__args__", None)
    if args:
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(models) == 1:
            return models[0]
    return annotation


def Document(  # noqa: N802 - reads as a kind of memory
    name: str,
    model: type[BaseModel],
    *,
    scope: str | Sequence[str] = "user",
    version: int = 1,
    migrations: Mapping[int, Migration] | None = None,
    description: str = "",
    keep_versions: int | None = None,
) -> MemorySpec:
    """One record per scope (a learner profile, a course plan); every write keeps the previous version
    (the newest `keep_versions` of them, when set)."""
    return MemorySpec(
        name=name,
        kind="document",
        model=model,
        scope=scope_names(scope, memory=name),
        version=version,
        migrations=dict(migrations or {}),
        description=description,
        keep_versions=keep_versions,
    )


def Log(  # noqa: N802
    name: str,
    model: type[BaseModel],
    *,
    scope: str | Sequence[str] = "session",
    text_fields: Sequence[str] = (),
    version: int = 1,
    migrations: Mapping[int, Migration] | None = None,
    description: str = "",
) -> MemorySpec:
    """Append-only entries (a dialogue); read the last n, a range, or what fits a token budget."""
    return MemorySpec(
        name=name,
        kind="log",
        model=model,
        scope=scope_names(scope, memory=name),
        text_fields=tuple(text_fields),
        version=version,
        migrations=dict(migrations or {}),
        description=description,
    )


def Collection(  # noqa: N802
    name: str,
    model: type[BaseModel],
    *,
    scope: str | Sequence[str] = "user",
    key: str = "id",
    text_fields: Sequence[str] = (),
    version: int = 1,
    migrations: Mapping[int, Migration] | None = None,
    description: str = "",
    indexes: Sequence[str] = (),
) -> MemorySpec:
    """Keyed records (quiz results); query by field equality, full-text search over text_fields."""
    return MemorySpec(
        name=name,
        kind="collection",
        model=model,
        scope=scope_names(scope, memory=name),
        text_fields=tuple(text_fields),
        key=key,
        version=version,
        migrations=dict(migrations or {}),
        description=description,
        indexes=tuple(indexes),
    )
