"""Graph spec, references, safe expressions and static validation."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from chainkit.errors import DefinitionError
from chainkit.graph import (
    FunctionNode,
    Graph,
    LoopSpec,
    MapNode,
    MemoryReadNode,
    MemoryWriteNode,
    Registry,
    Source,
    SubgraphNode,
    ToolNode,
    compile_expression,
    parse_ref,
    parse_template,
)
from chainkit.graph._expr import ExprSyntaxError
from chainkit.graph._refs import RefSyntaxError
from chainkit.memory import Collection, Document, Log
from chainkit.tools import Tool, ToolSpec


class In(BaseModel):
    message: str
    n: int = 2
    items: list[str] = []


class Grade(BaseModel):
    score: float
    feedback: str


class Profile(BaseModel):
    level: int = 1
    topics: list[str] = []


class Turn(BaseModel):
    text: str


class Quiz(BaseModel):
    id: str
    score: float = 0.0


class GradeIn(BaseModel):
    question: str
    answer: str


def make_registry() -> Registry:
    reg = Registry()
    reg.add_model(In)
    reg.add_tool(Tool(ToolSpec(name="grade", input=GradeIn, output=Grade, user="{{ question }} {{ answer }}")))
    reg.add_memory(Document("profile", Profile))
    reg.add_memory(Log("dialog", Turn))
    reg.add_memory(Collection("quizzes", Quiz))

    @reg.function
    def double(x: int) -> int:
        return 2 * x

    @reg.function
    def shout(text: str, times: int = 1) -> str:
        return text.upper() * times

    return reg


# ---- references ----------------------------------------------------------------------------------


def test_parse_refs() -> None:
    ref = parse_ref("nodes.grade.output.score")
    assert (ref.root, ref.target, ref.path) == ("nodes", "grade", ("score",))
    assert parse_ref("nodes.grade.output").path == ()
    assert parse_ref("memory.learner_profile.level").target == "learner_profile"
    assert parse_ref("input.items.0").path == ("items", 0)
    ref = parse_ref("nodes.a.output.x ?? 0.5")
    assert ref.has_default and ref.default == 0.5
    assert parse_ref("nodes.a.output ?? 'none'").default == "none"
    for bad in ("node.a.output", "nodes.a", "nodes.a.result", "input.a-b", "loop.x", "", "input ?? nope"):
        with pytest.raises(RefSyntaxError):
            parse_ref(bad)


def test_templates_single_and_interpolated() -> None:
    assert parse_template("plain text") is None
    single = parse_template("${input.message}")
    assert single is not None and single.single is not None
    mixed = parse_template("Q: ${input.message} (level ${memory.profile.level})")
    assert mixed is not None and mixed.single is None and len(mixed.refs) == 2
    with pytest.raises(RefSyntaxError):
        parse_template("${input.message")


# ---- expressions ---------------------------------------------------------------------------------


def evaluate(text: str, values: dict[str, object]) -> object:
    expr = compile_expression(text)
    return expr.evaluate(lambda ref: values[".".join([ref.root, *(ref.target and [ref.target] or []),
                                                      *map(str, ref.path)])])


def test_expressions() -> None:
    v = {"nodes.g.score": 0.4, "input.items": ["a", "b"], "input.message": "Hi", "memory.profile.level": 3}
    assert evaluate("${nodes.g.output.score} < 0.5", v) is True
    assert evaluate("nodes.g.output.score >= 0.5 or len(input.items) == 2", v) is True
    assert evaluate("not (memory.profile.level > 2 and 'a' in input.items)", v) is False
    assert evaluate("'c' not in ${input.items}", v) is True
    assert evaluate("lower(input.message) == 'hi'", v) is True
    assert evaluate("(memory.profile.level + 1) * 2 // 3 % 5", v) == 2
    assert evaluate("0 < memory.profile.level <= 3", v) is True
    assert evaluate("-memory.profile.level", v) == -3
    assert compile_expression("1 + 2 > 2").is_constant
    assert not compile_expression("input.n > 2").is_constant


@pytest.mark.parametrize(
    "text",
    ["__import__('os')", "input.x.__class__", "open('f')", "a.b", "1 +", "input.x ==", "lambda: 1", "x[0]"],
)
def test_expressions_refuse_anything_else(text: str) -> None:
    with pytest.raises((ExprSyntaxError, RefSyntaxError)):
        compile_expression(text)


# ---- spec round trip -----------------------------------------------------------------------------


def test_graph_round_trips_as_plain_data() -> None:
    data = {
        "name": "tutor",
        "input": "In",
        "reads": ["profile"],
        "writes": ["profile"],
        "nodes": [
            {"name": "grade", "tool": "grade", "inputs": {"question": "${input.message}", "answer": "x"},
             "retry": {"max_attempts": 2}, "timeout_s": 5},
            {"name": "d", "kind": "function", "function": "double", "inputs": {"x": "${input.n}"},
             "when": "${nodes.grade.output.score} < 0.5"},
            {"name": "save", "memory": "profile", "op": "patch", "inputs": {"delta": {"level": "${nodes.d.output}"}}},
            {"name": "each", "over": "${input.items}", "max_concurrency": 2,
             "node": {"name": "s", "function": "shout", "inputs": {"text": "${item}"}}},
            {"name": "again", "function": "double", "inputs": {"x": "${loop.iteration}"},
             "loop": {"until": "${output} > 4", "max_iterations": 5}},
        ],
        "output": {"score": "${nodes.grade.output.score}"},
    }
    graph = Graph.model_validate(data)
    assert [type(n) for n in graph.nodes] == [ToolNode, FunctionNode, MemoryWriteNode, MapNode, FunctionNode]
    assert graph.to_data() == data
    assert Graph.model_validate(graph.to_data()) == graph
    reg = make_registry()
    reg.add_graph(graph)  # and it validates


# ---- static validation ---------------------------------------------------------------------------


def errors_of(reg: Registry, graph: Graph) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        reg.add_graph(graph)
    exc = info.value
    return [str(e) for e in exc.errors] or [str(exc)]


def test_validation_collects_every_error_with_graph_and_node() -> None:
    reg = make_registry()
    graph = Graph(
        name="bad",
        input="In",
        nodes=[
            ToolNode(name="g", tool="grade", inputs={"question": "${input.mesage}", "answer": "${input.n}"}),
            FunctionNode(name="d", function="double", inputs={"x": "${nodes.g.output.feedback}"}),
            FunctionNode(name="e", function="nope"),
            FunctionNode(name="f", function="double", inputs={"x": "${nodes.g.output.grade}"}),
            FunctionNode(name="h", function="double", inputs={"x": 1, "y": 2}),
            FunctionNode(name="i", function="double"),
            FunctionNode(name="j", function="double", inputs={"x": "three"}),
            FunctionNode(name="k", function="double", inputs={"x": 1}, retry={"on": ["Nope"]}),
        ],
    )
    messages = errors_of(reg, graph)
    joined = "\n".join(messages)
    assert len(messages) == 9, joined
    assert "retry.on names unknown error 'Nope'" in joined
    assert "node 'g'" in joined and "input (In) has no field 'mesage'" in joined
    assert "${input.n} is int, but inputs.answer expects str" in joined
    assert "${nodes.g.output.feedback} is str, but inputs.x expects int" in joined
    assert "no function named 'nope'" in joined
    assert "nodes.g.output (Grade) has no field 'grade'" in joined
    assert "unknown input 'y'" in joined
    assert "missing required input 'x'" in joined
    assert "literal 'three' does not fit int" in joined
    assert all(m.startswith("bad.nodes.") for m in messages)


def test_cycles_and_never_running_nodes() -> None:
    reg = make_registry()
    cyc = Graph(name="cyc", input="In", nodes=[
        FunctionNode(name="a", function="double", inputs={"x": "${nodes.b.output}"}),
        FunctionNode(name="b", function="double", inputs={"x": "${nodes.a.output}"}),
    ])
    assert any("dependency cycle among nodes a, b" in m for m in errors_of(reg, cyc))
    never = Graph(name="never", input="In", nodes=[
        FunctionNode(name="a", function="double", inputs={"x": 1}, when="1 > 2"),
        FunctionNode(name="b", function="double", inputs={"x": "${nodes.a.output}"}),
        FunctionNode(name="c", function="double", inputs={"x": "${nodes.a.output ?? 0}"}),
    ])
    messages = errors_of(reg, never)
    assert len(messages) == 2
    assert "node 'a': can never run: its condition is always false" in messages[0]
    assert "node 'b': can never run: it needs a" in messages[1]


def test_memories_must_be_declared_and_fit() -> None:
    reg = make_registry()
    graph = Graph(name="mem", input="In", reads=["profile"], nodes=[
        MemoryReadNode(name="q", memory="quizzes", op="query"),
        MemoryWriteNode(name="w", memory="profile", op="replace", inputs={"value": {"level": 2}}),
        MemoryWriteNode(name="a", memory="dialog", op="put", inputs={"value": {"text": "x"}}),
        FunctionNode(name="d", function="double", inputs={"x": "${memory.profile.levels}"}),
        FunctionNode(name="e", function="shout", inputs={"text": "${memory.dialog.text}"}),
    ])
    joined = "\n".join(errors_of(reg, graph))
    assert "reads memory 'quizzes', which the graph does not declare" in joined
    assert "writes memory 'profile', which the graph does not declare" in joined
    assert "op 'put' does not apply to log memory 'dialog'" in joined
    assert "memory.profile (Profile) has no field 'levels'" in joined
    assert "only document memories can be referenced" in joined


def test_map_loop_subgraph_checks() -> None:
    reg = make_registry()
    reg.add_graph(Graph(name="inner", input="In", nodes=[
        FunctionNode(name="d", function="double", inputs={"x": "${input.n}"})], output="${nodes.d.output}"))
    good = Graph(name="outer", input="In", nodes=[
        SubgraphNode(name="sub", graph="inner", inputs={"message": "${input.message}"}),
        FunctionNode(name="d", function="double", inputs={"x": "${nodes.sub.output}"}),
        MapNode(name="m", over="${input.items}", node=FunctionNode(name="s", function="shout",
                                                                     inputs={"text": "${item}", "times": "${index}"})),
        FunctionNode(name="l", function="double", inputs={"x": "${loop.previous ?? 1}"},
                     loop=LoopSpec(until="${output} > 100", max_iterations=10)),
    ], output={"first": "${nodes.m.output.0}", "sub": "${nodes.sub.output}"})
    reg.add_graph(good)
    bad = Graph(name="bad", input="In", nodes=[
        SubgraphNode(name="sub", graph="missing"),
        MapNode(name="m", over="${input.message}", node=FunctionNode(name="s", function="shout",
                                                                       inputs={"text": "${item}"})),
        FunctionNode(name="x", function="double", inputs={"x": "${item}"}),
        FunctionNode(name="y", function="double", inputs={"x": "${loop.iteration}"}),
        FunctionNode(name="z", function="double", inputs={"x": 1}, loop=LoopSpec(until="${output.nope}",
                                                                                  max_iterations=3)),
    ])
    joined = "\n".join(errors_of(reg, bad))
    assert "no graph named 'missing'" in joined
    assert "over: ${input.message} is str, not a list" in joined
    assert "${item} is only valid inside a map node" in joined
    assert "${loop.iteration} is only valid in a node with loop" in joined
    assert "output is int, which has no field 'nope'" in joined


def test_errors_quote_the_source_location() -> None:
    reg = make_registry()
    node = FunctionNode(name="a", function="double", inputs={"x": "${input.nope}"},
                        source=Source(file="app.yaml", line=12, col=5))
    with pytest.raises(DefinitionError) as info:
        reg.add_graph(Graph(name="g", input="In", nodes=[node]))
    assert str(info.value).startswith("app.yaml:12:5 g.nodes.a.inputs.x: ")
    assert info.value.line == 12
    assert "source" not in node.to_data()
