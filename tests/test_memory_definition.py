"""YAML memory definitions -> MemorySpec, used end to end on a real SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from chainkit.errors import DefinitionError
from chainkit.memory import MemorySpec, Scope, compile_memory_definition, load_memory_file, open_store

EXAMPLES = Path(__file__).resolve().parent.parent / "memories" / "examples"


def test_examples_compile() -> None:
    profile = load_memory_file(EXAMPLES / "learner_profile.yaml")
    assert (profile.kind, profile.scope, profile.version) == ("document", ("user",), 2)
    assert profile.model(name="Ada").progress.lessons_done == 0
    dialogue = load_memory_file(EXAMPLES / "dialogue.yaml")
    assert (dialogue.kind, dialogue.scope) == ("log", ("user", "session"))
    quiz = load_memory_file(EXAMPLES / "quiz_records.yaml")
    assert (quiz.kind, quiz.key, quiz.text_fields, quiz.indexes) == (
        "collection",
        "id",
        ("question", "feedback"),
        ("topic",),
    )


async def test_yaml_memories_work_on_a_real_store(tmp_path: Path) -> None:
    profile = load_memory_file(EXAMPLES / "learner_profile.yaml")
    quiz = load_memory_file(EXAMPLES / "quiz_records.yaml")
    ada = Scope(user="ada")
    async with await open_store(tmp_path / "app.db") as store:
        # A record written under schema version 1 (field `nick`) by an older definition...
        v1 = compile_memory_definition(
            {"name": "learner_profile", "kind": "document", "fields": {"nick": "str"}}
        )
        await store.document(v1).replace(ada, {"nick": "Ada"})
        # ...loads through the YAML's declarative migration.
        loaded = await store.document(profile).get(ada)
        assert loaded is not None and loaded.value.name == "Ada" and loaded.value.goals == []
        await store.document(profile).patch(ada, {"progress": {"lessons_done": 2}})
        records = store.collection(quiz)
        await records.put(
            ada,
            {
                "id": "q1",
                "topic": "bio",
                "question": "What do plants need for photosynthesis?",
                "attempts": [{"answer": "light", "correct": True}],
            },
        )
        await records.put(
            ada, {"id": "q2", "topic": "chem", "question": "What is pH?", "feedback": "review acids"}
        )
        assert [r.value.id for r in await records.search(ada, "acids")] == ["q2"]
        assert [r.value.id for r in await records.query(ada, {"topic": "bio"})] == ["q1"]


def test_python_migrations_join_yaml_ones() -> None:
    spec = compile_memory_definition(
        {
            "name": "m",
            "kind": "document",
            "version": 3,
            "fields": {"a": "int"},
            "migrations": {1: {"add": {"a": 0}}},
        },
        migrations={2: lambda r: {**r, "a": r["a"] + 1}},
    )
    record: dict[str, Any] = {}
    for version in (1, 2):
        record = spec.migrations[version](record)
    assert record == {"a": 1}


def test_definition_in_json_schema_and_custom_scope() -> None:
    spec = compile_memory_definition(
        {
            "name": "notes",
            "kind": "log",
            "scope": ["course", "user"],
            "schema": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
        }
    )
    assert isinstance(spec, MemorySpec) and spec.scope == ("course", "user")


@pytest.mark.parametrize(
    "data,path,message",
    [
        ({"kind": "document", "fields": {"a": "str"}}, "name", "required"),
        ({"name": "m", "kind": "table", "fields": {"a": "str"}}, "kind", "document, log or collection"),
        (
            {"name": "m", "kind": "document", "fields": {"a": "str"}, "scope": "planet"},
            "scope",
            "unknown scope",
        ),
        ({"name": "m", "kind": "document", "fields": {"a": "str"}, "version": 0}, "version", ">= 1"),
        ({"name": "m", "kind": "document"}, "fields", "exactly one"),
        ({"name": "m", "kind": "document", "fields": {"a": "str"}, "schema": {}}, "fields", "exactly one"),
        ({"name": "m", "kind": "document", "fields": {"a": "str"}, "colour": 1}, "colour", "unknown key"),
        ({"name": "m", "kind": "document", "fields": {"a": "bogus"}}, "fields.a", "unknown type"),
        ({"name": "m", "kind": "collection", "fields": {"a": "str"}}, "key", "key field"),
        (
            {"name": "m", "kind": "collection", "key": "a", "fields": {"a": "str"}, "text_fields": ["b"]},
            "text_fields",
            "unknown field",
        ),
        ({"name": "m", "kind": "document", "key": "a", "fields": {"a": "str"}}, "key", "collections only"),
        (
            {"name": "m", "kind": "document", "fields": {"a": "str"}, "migrations": {1: {"add": {}}}},
            "migrations.1",
            "between",
        ),
        (
            {
                "name": "m",
                "kind": "document",
                "version": 2,
                "fields": {"a": "str"},
                "migrations": {1: {"move": {}}},
            },
            "migrations.1",
            "steps",
        ),
    ],
)
def test_definition_errors(data: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        compile_memory_definition(data, source="memories/m.yaml")
    assert info.value.path == path and info.value.file == "memories/m.yaml"
    assert message in str(info.value)


def test_file_errors_carry_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: m\nkind: document\nfields:\n  a: [str\n")
    with pytest.raises(DefinitionError) as info:
        load_memory_file(bad)
    assert info.value.file == str(bad) and info.value.line is not None
    with pytest.raises(DefinitionError):
        load_memory_file(tmp_path / "missing.yaml")


def test_locate_callback_adds_positions(tmp_path: Path) -> None:
    text = "name: m\nkind: document\nfields:\n  a: str\n  b: wat\n"
    (tmp_path / "m.yaml").write_text(text)
    node = yaml.compose(text)

    def locate(path: str) -> tuple[int, int] | None:
        current = node
        for part in path.split("."):
            found = next((v for k, v in current.value if k.value == part), None)  # type: ignore[union-attr]
            if found is None:
                return None
            current = found
        return current.start_mark.line + 1, current.start_mark.column + 1

    with pytest.raises(DefinitionError) as info:
        load_memory_file(tmp_path / "m.yaml", locate=locate)
    assert (info.value.line, info.value.column, info.value.path) == (5, 6, "fields.b")
