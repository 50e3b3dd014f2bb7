"""YAML memory definitions -> MemorySpec.

    name: learner_profile
    kind: document                 # document | log | collection
    scope: user                    # global | user | session | [custom, key, names]
    description: What we know about the learner.
    version: 2                     # schema version of the records (default 1)
    fields:                        # compact field types (chainkit._fieldtypes), or `schema:` JSON Schema
      name: str
      level: int = 1
      goals: list[str] = []
    migrations:                    # optional, declarative: how a v1 record becomes v2
      1: {rename: {nick: name}, add: {goals: []}, drop: [legacy]}

Collections also take `key` (default "id"), `text_fields` (searched with FTS5) and `indexes`;
logs take `text_fields` too. Errors are `DefinitionError` naming the file and key path; a
`locate(path) -> (line, column)` callback adds positions (the YAML loader passes one).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chainkit._fieldtypes import Locate, _Context, compile_fields, compile_json_schema
from chainkit._yaml import load_yaml
from chainkit.errors import DefinitionError
from chainkit.memory._spec import MemorySpec, Migration, scope_names

_KEYS = {
    "name",
    "kind",
    "scope",
    "description",
    "version",
    "key",
    "text_fields",
    "indexes",
    "fields",
    "schema",
    "migrations",
    "keep_versions",
}
_DEFAULT_SCOPE = {"document": "user", "log": "session", "collection": "user"}
_MIGRATION_STEPS = ("rename", "add", "drop")


def compile_memory_definition(
    data: Mapping[str, Any],
    *,
    source: str | None = None,
    locate: Locate | None = None,
    migrations: Mapping[int, Migration] | None = None,
) -> MemorySpec:
    """Compile one parsed YAML memory definition. `migrations` adds Python migration functions
    (from_version -> fn) for upgrades the declarative steps cannot express."""
    ctx = _Context(source, locate)
    if not isinstance(data, Mapping):
        raise ctx.error(f"a memory definition must be a mapping, got {type(data).__name__}", "")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ctx.error(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})", str(unknown[0]))
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ctx.error("'name' is required and must be a string", "name")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _DEFAULT_SCOPE:
        raise ctx.error(f"'kind' must be document, log or collection, got {kind!r}", "kind")
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ctx.error(f"'version' must be an integer >= 1, got {version!r}", "version")
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        raise ctx.error("'description' must be a string", "description")

    scope_value = data.get("scope", _DEFAULT_SCOPE[kind])
    try:
        scope = scope_names(scope_value if isinstance(scope_value, str) else list(scope_value), memory=name)
    except (DefinitionError, TypeError) as exc:
        raise ctx.error(getattr(exc, "message", str(exc)), "scope") from exc

    has_fields, has_schema = "fields" in data, "schema" in data
    if has_fields == has_schema:
        raise ctx.error("give exactly one of 'fields' (compact types) or 'schema' (JSON Schema)", "fields")
    if has_fields:
        model = compile_fields(
            name, data["fields"], path="fields", file=source, locate=locate, description=description or None
        )
    else:
        model = compile_json_schema(name, data["schema"], path="schema", file=source, locate=locate)

    text_fields = _name_list(data.get("text_fields", []), "text_fields", ctx)
    indexes = _name_list(data.get("indexes", []), "indexes", ctx)
    key = data.get("key")
    if kind == "collection":
        key = "id" if key is None else key
        if not isinstance(key, str):
            raise ctx.error("'key' must be a field name", "key")
    elif key is not None:
        raise ctx.error(f"'key' applies to collections only (this memory is a {kind})", "key")
    if indexes and kind != "collection":
        raise ctx.error("'indexes' apply to collections only", "indexes")

    steps = _compile_migrations(data.get("migrations", {}), version, ctx)
    for from_version, fn in (migrations or {}).items():
        if from_version in steps:
            raise ctx.error(
                f"migration from version {from_version} is given both in YAML and in Python",
                f"migrations.{from_version}",
            )
        steps[from_version] = fn
    try:
        return MemorySpec(
            name=name,
            kind=kind,
            model=model,
            scope=scope,
            text_fields=tuple(text_fields),
            key=key,
            version=version,
            migrations=steps,
            description=description,
            indexes=tuple(indexes),
            keep_versions=data.get("keep_versions"),
        )
    except DefinitionError as exc:
        raise ctx.error(exc.message, exc.path or "") from exc


def load_memory_file(
    path: str | Path,
    *,
    locate: Locate | None = None,
    migrations: Mapping[int, Migration] | None = None,
) -> MemorySpec:
    """Read and compile one YAML memory definition file."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"cannot read memory definition: {exc.strerror or exc}", file=file) from exc
    data, positions = load_yaml(text, file)  # syntax errors and duplicate keys come back located
    return compile_memory_definition(
        data if data is not None else {}, source=file, locate=locate or positions, migrations=migrations
    )


def _name_list(value: Any, key: str, ctx: _Context) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ctx.error(f"'{key}' must be a list of field names", key)
    return value


def _compile_migrations(value: Any, version: int, ctx: _Context) -> dict[int, Migration]:
    if not isinstance(value, Mapping):
        raise ctx.error("'migrations' must map a from-version to steps", "migrations")
    steps: dict[int, Migration] = {}
    for raw_version, spec in value.items():
        path = f"migrations.{raw_version}"
        try:
            from_version = int(raw_version)
        except (TypeError, ValueError):
            raise ctx.error(f"migration key {raw_version!r} must be a version number", path) from None
        if not 1 <= from_version < version:
            raise ctx.error(
                f"migration from version {from_version} must be between 1 and {version - 1}", path
            )
        if not isinstance(spec, Mapping) or not spec or set(spec) - set(_MIGRATION_STEPS):
            raise ctx.error(f"migration steps must be a mapping of {', '.join(_MIGRATION_STEPS)}", path)
        rename = spec.get("rename", {}) or {}
        add = spec.get("add", {}) or {}
        drop = spec.get("drop", []) or []
        if not isinstance(rename, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in rename.items()
        ):
            raise ctx.error("'rename' maps old field names to new ones", f"{path}.rename")
        if not isinstance(add, Mapping):
            raise ctx.error("'add' maps new field names to their value for old records", f"{path}.add")
        if not isinstance(drop, list) or not all(isinstance(v, str) for v in drop):
            raise ctx.error("'drop' is a list of field names", f"{path}.drop")
        steps[from_version] = _declarative_migration(dict(rename), dict(add), list(drop))
    return steps


def _declarative_migration(rename: dict[str, str], add: dict[str, Any], drop: list[str]) -> Migration:
    import copy

    def migrate(record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        for old, new in rename.items():
            if old in out:
                out[new] = out.pop(old)
        for name, value in add.items():
            out.setdefault(name, copy.deepcopy(value))
        for name in drop:
            out.pop(name, None)
        return out

    migrate.__doc__ = f"rename {rename}, add {sorted(add)}, drop {drop}"
    return migrate


__all__ = ["compile_memory_definition", "load_memory_file"]
