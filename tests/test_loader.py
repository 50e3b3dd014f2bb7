"""YAML definitions: every file kind, every error class with its location, round trips, JSON Schemas."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from chainkit._schemas import json_schema
from chainkit._tool_definition import tool_fingerprint
from chainkit.app import Process, on_message
from chainkit.errors import DefinitionError
from chainkit.graph import Graph, Registry, ToolNode
from chainkit.loader import (
    dump_app,
    dump_graph,
    dump_memory,
    dump_tool,
    load_app,
    load_file,
    load_memory_file,
    load_tool_file,
)
from chainkit.memory import Document
from chainkit.tools import Tool, ToolSpec

HELLO = Path(__file__).resolve().parent.parent / "examples" / "hello"


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    target = tmp_path / "hello"
    shutil.copytree(HELLO, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def error_of(fn, *args) -> DefinitionError:
    with pytest.raises(DefinitionError) as caught:
        fn(*args)
    return caught.value


def test_every_file_kind_of_the_example_loads():
    loaded = load_app(HELLO / "app.yaml")
    kinds = sorted(loaded.files.values())
    assert kinds.count("tool") == 3 and kinds.count("memory") == 3 and kinds.count("graph") == 2
    assert set(loaded.registry.tools) == {"classify", "answer", "quiz"}
    assert {p.name: p.trigger.on for p in loaded.processes} == {"chat": "message", "review": "every"}
    assert loaded.registry.tools["classify"].spec.output.model_fields["intent"].annotation is not None


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        # YAML syntax
        ("tools/quiz.yaml", "name: quiz\n", "name: quiz\n  bad: indent\n", "invalid YAML"),
        ("tools/quiz.yaml", "kind: tool\n", "kind: tool\nkind: tool\n", "duplicate key 'kind'"),
        # unknown and missing keys, wrong types
        ("tools/quiz.yaml", "description:", "descripton:", "unknown key 'descripton'"),
        ("tools/quiz.yaml", "prompt:\n  user:", "prompt:\n  usr:", "required key 'user' is missing"),
        ("tools/quiz.yaml", "max_tokens: 200", "max_tokens: lots", "max_tokens"),
        # field syntax and templates
        ("tools/quiz.yaml", "topic: str", "topic: strng", "topic"),
        ("tools/quiz.yaml", "about {{ topic }}", "about {{ topik }}", "topik"),
        ("tools/quiz.yaml", "about {{ topic }}", "about {{ topic ", "does not parse"),
        # memories
        ("memories/profile.yaml", "scope: user", "scope: planet", "unknown scope"),
        ("memories/profile.yaml", "level: int = 1", "level: int = high", "level"),
    ],
)
def test_file_errors_name_file_line_and_key(hello: Path, file: str, old: str, new: str, expected: str):
    path = hello / file
    edit(path, old, new)
    error = error_of(load_file, path)
    assert expected in str(error)
    located = error.errors or [error]
    assert all(e.file == str(path) and e.line is not None for e in located), [str(e) for e in located]


@pytest.mark.parametrize(
    ("old", "new", "expected_path", "expected"),
    [
        ("${nodes.classify.output.topic}", "${nodes.classify.output.text}", "nodes.remember_topic.input.topic",
         "has no field 'text' (fields: intent, topic)"),
        ("{role: learner,", "{role: robot,", "nodes.log_learner.input.entry.role", "does not fit"),
        ("tool: answer", "tool: answr", "nodes.reply.tool", "no tool named 'answr'"),
        ("memory: log\n    op: append\n    input: {entry: {role: learner",
         "memory: logs\n    op: append\n    input: {entry: {role: learner", "nodes.log_learner", "logs"),
        ("${input.message}\"}", "${input.mesage}\"}", "nodes.classify.input.message", "mesage"),
        ("when: \"${nodes.classify.output.intent} == 'question'\"\n    input:\n      question",
         "when: \"${nodes.classify.output.intent} ==\"\n    input:\n      question", "nodes.reply.when", "when"),
        ("writes: [log, profile]", "writes: [log]", "nodes.save_topics", "does not declare in writes"),
    ],
)
def test_graph_errors_point_at_the_key(hello: Path, old: str, new: str, expected_path: str, expected: str):
    graph_file = hello / "graphs" / "chat.yaml"
    edit(graph_file, old, new)
    error = error_of(load_app, hello / "app.yaml")
    errors = error.errors or [error]
    match = [e for e in errors if expected in str(e)]
    assert match, [str(e) for e in errors]
    assert match[0].file == str(graph_file) and match[0].line is not None
    assert match[0].path.startswith(expected_path), match[0].path


def test_the_issue_example_error_format(hello: Path):
    edit(hello / "graphs" / "chat.yaml", "${nodes.classify.output.topic}", "${nodes.classify.output.text}")
    error = error_of(load_app, hello / "app.yaml")
    text = str(error)
    assert "graphs/chat.yaml:23:" in text
    assert "nodes.remember_topic.input.topic: " in text


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("tools: [tools/*]", "tools: [toolz/*]", "matches no file"),
        ("graph: review", "graph: reviews", "reviews"),
        ("after: chat}", "after: chatter}", "chatter"),
        ("python: [functions.py]", "python: [nothere.py]", "no Python file"),
        ("kind: app", "kind: ap", "kind"),
    ],
)
def test_app_errors(hello: Path, old: str, new: str, expected: str):
    edit(hello / "app.yaml", old, new)
    error = error_of(load_app, hello / "app.yaml")
    assert expected in str(error)


def test_all_errors_are_listed_at_once(hello: Path):
    edit(hello / "graphs" / "chat.yaml", "${nodes.classify.output.topic}", "${nodes.classify.output.text}")
    edit(hello / "graphs" / "review.yaml", "${input.topic}\"}", "${input.topik}\"}")
    error = error_of(load_app, hello / "app.yaml")
    assert len(error.errors) == 2


def test_module_without_register(hello: Path):
    (hello / "functions.py").write_text("def add_topic(topics, topic):\n    return topics\n")
    assert "register" in str(error_of(load_app, hello / "app.yaml"))


def test_tool_round_trip_load_dump_load(tmp_path: Path):
    for source in sorted((HELLO / "tools").glob("*.yaml")):
        first = load_tool_file(source)
        dumped = tmp_path / source.name
        dumped.write_text(dump_tool(first))
        second = load_tool_file(dumped)
        assert tool_fingerprint(first) == tool_fingerprint(second)
        assert yaml.safe_load(dumped.read_text()) == yaml.safe_load(dump_tool(second))


def test_graph_round_trip(tmp_path: Path):
    loaded = load_app(HELLO / "app.yaml")
    for graph in loaded.registry.graphs.values():
        path = tmp_path / f"{graph.name}.yaml"
        path.write_text(dump_graph(graph))
        again = load_file(path)
        assert again.to_data() == graph.to_data()


def test_memory_round_trip(tmp_path: Path):
    for source in sorted((HELLO / "memories").glob("*.yaml")):
        first = load_memory_file(source)
        path = tmp_path / source.name
        path.write_text(dump_memory(first))
        second = load_memory_file(path)
        assert (first.kind, first.scope, first.key, first.text_fields) == (
            second.kind, second.scope, second.key, second.text_fields)
        schema_a, schema_b = first.model.model_json_schema(), second.model.model_json_schema()
        schema_a.pop("title"), schema_b.pop("title")
        assert schema_a["properties"].keys() == schema_b["properties"].keys()
        example = {"level": 3, "topics": ["x"]} if first.name == "profile" else None
        if example:
            assert first.model.model_validate(example).model_dump() == second.model.model_validate(example).model_dump()


class AskIn(BaseModel):
    question: str


class AskOut(BaseModel):
    answer: str
    confidence: float


def test_a_python_defined_app_dumps_to_yaml_that_loads(tmp_path: Path):
    registry = Registry()
    registry.add_tool(Tool(ToolSpec(name="ask", input=AskIn, output=AskOut, user="Q: {{ question }}")))
    registry.add_memory(Document("notes", AskOut, scope="user"))
    registry.add_model(AskIn)
    registry.add_graph(Graph(name="main", input=AskIn, nodes=[ToolNode(name="a", tool="ask",
                                                                         inputs={"question": "${input.question}"})],
                             output="${nodes.a.output}"))
    path = dump_app(tmp_path / "dumped", name="mini", registry=registry,
                    processes=[Process(name="main", graph="main", trigger=on_message())], model="fake")
    loaded = load_app(path)
    assert set(loaded.registry.tools) == {"ask"} and set(loaded.registry.graphs) == {"main"}
    assert tool_fingerprint(loaded.registry.tools["ask"].spec)["output"]["properties"].keys() == {"answer", "confidence"}


@pytest.mark.parametrize("kind", ["tool", "memory", "graph", "app"])
def test_json_schemas_are_valid_and_accept_the_example(kind: str):
    schema = json_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    kinds = {"tool": "tool", "document": "memory", "log": "memory", "collection": "memory", "graph": "graph",
             "app": "app"}
    checked = 0
    for path in HELLO.rglob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if kinds[data["kind"]] == kind:
            jsonschema.validate(data, schema)
            checked += 1
    assert checked


def test_json_schema_rejects_an_unknown_key():
    data = yaml.safe_load((HELLO / "tools" / "quiz.yaml").read_text()) | {"colour": "red"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json_schema("tool"))


def test_published_schema_files_are_current():
    folder = HELLO.parent.parent / "docs" / "schemas"
    for kind in ("tool", "memory", "graph", "app"):
        published = json.loads((folder / f"{kind}.schema.json").read_text())
        assert published == json_schema(kind), f"run: chainkit schema --out docs/schemas ({kind} changed)"
