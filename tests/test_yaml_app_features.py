"""YAML expresses everything: loops, map, subgraphs, retries, timeouts, tool folders found by name."""

from __future__ import annotations

import textwrap
from pathlib import Path

from chainkit.loader import dump_graph, load_app, load_file

FILES = {
    "tools/study/grade.yaml": """
        kind: tool
        name: grade
        input: {answer: str}
        output: {score: {type: float, min: 0, max: 1}, feedback: {type: str, max_length: 80}}
        prompt: {user: "Grade: {{ answer }}"}
    """,
    "apps/study/functions.py": """
        def grow(prev: int | None, it: int) -> int:
            return (prev or 1) * 3 + it

        def total(values: list[int]) -> int:
            return sum(values)

        def register(registry):
            registry.register_function("grow", grow)
            registry.register_function("total", total)
    """,
    "apps/study/graphs/inner.yaml": """
        kind: graph
        name: inner
        input: {n: int}
        nodes:
          doubled: {function: total, input: {values: ["${input.n}", "${input.n}"]}}
        output: "${nodes.doubled.output}"
    """,
    "apps/study/graphs/main.yaml": """
        kind: graph
        name: main
        input:
          items: list[int]
          answers: list[str]
        nodes:
          grow:
            function: grow
            input: {prev: "${loop.previous}", it: "${loop.iteration}"}
            loop: {until: "${output} > 50", max_iterations: 10}
          per_item:
            over: "${input.items}"
            max_concurrency: 2
            node: {graph: inner, input: {n: "${item}"}}
          sum:
            function: total
            input: {values: "${nodes.per_item.output}"}
          graded:
            over: "${input.answers}"
            node: {tool: grade, input: {answer: "answer ${index}: ${item}"}}
            retry: {max_attempts: 2, backoff_s: 0}
            timeout_s: 30
        output:
          grown: "${nodes.grow.output}"
          doubled_sum: "${nodes.sum.output}"
          scores: "${nodes.graded.output}"
    """,
    "apps/study/app.yaml": """
        kind: app
        name: study
        model: fake
        tools: [study/*]          # found under the nearest tools/ folder above this file
        graphs: [graphs/*]
        python: [functions.py]
        processes:
          main: {graph: main, trigger: message}
    """,
}


def write(root: Path) -> Path:
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root / "apps" / "study" / "app.yaml"


async def test_loops_maps_and_subgraphs_declared_in_yaml_run(tmp_path: Path):
    loaded = load_app(write(tmp_path))
    assert loaded.files[str(tmp_path / "tools" / "study" / "grade.yaml")] == "tool"
    async with loaded.app(store=tmp_path / "s.db") as app:
        turn = await app.send({"items": [1, 2, 3], "answers": ["x", "y"]}, scope={})
    out = turn.output
    assert out.grown == 99  # 1*3+0=3, 3*3+1=10, 10*3+2=32, 32*3+3=99: the first value over 50
    assert out.doubled_sum == 12
    assert len(out.scores) == 2 and all(0 <= s.score <= 1 for s in out.scores)


def test_graph_with_loop_map_and_retry_round_trips(tmp_path: Path):
    loaded = load_app(write(tmp_path))
    graph = loaded.registry.graphs["main"]
    path = tmp_path / "again.yaml"
    path.write_text(dump_graph(graph))
    assert load_file(path).to_data() == graph.to_data()
