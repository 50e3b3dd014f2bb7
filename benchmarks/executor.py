"""Executor overhead, side by side with LangGraph, and parallel tool calls against a slow server.

    python benchmarks/executor.py            # pip install langgraph  (optional, to compare)

Measures, in one process:
  - a chain of 50 no-op async nodes and a fan-out of 50 no-op async nodes: microseconds per node for
    chainkit with journaling off and on (SQLite journal in a temporary file), and for the same graphs in
    LangGraph (no checkpointer) when it is installed, with the ratio chainkit / LangGraph;
  - 16 parallel tool calls (a map node over 16 items) against a local OpenAI-compatible HTTP server
    that answers each request after 100 ms: wall time in milliseconds (target: under 130 ms).
Each figure is the median over REPEATS rounds (spread: min..max). The last line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import operator
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import BaseModel  # noqa: E402

from chainkit.graph import Executor, FunctionNode, Graph, Journal, MapNode, Registry, ToolNode  # noqa: E402

N = 50
REPEATS = 15
INNER = 20  # graph runs per round


class In(BaseModel):
    x: int = 0


async def noop(v: int) -> int:
    return v


def build_registry() -> Registry:
    reg = Registry()
    reg.add_model(In)
    reg.register_function("noop", noop)
    chain = [FunctionNode(name="n0", function="noop", inputs={"v": "${input.x}"})]
    for i in range(1, N):
        chain.append(FunctionNode(name=f"n{i}", function="noop", inputs={"v": f"${{nodes.n{i - 1}.output}}"}))
    reg.add_graph(Graph(name="chain", input="In", nodes=chain, output=f"${{nodes.n{N - 1}.output}}"))
    fan = [FunctionNode(name=f"n{i}", function="noop", inputs={"v": "${input.x}"}) for i in range(N)]
    reg.add_graph(Graph(name="fan", input="In", nodes=fan))
    return reg


async def time_chainkit(executor: Executor, graph: str) -> float:
    """Microseconds per node, one round."""
    await executor.run(graph, {"x": 1})  # warm
    start = time.perf_counter()
    for _ in range(INNER):
        await executor.run(graph, {"x": 1})
    return (time.perf_counter() - start) / (INNER * N) * 1e6


def langgraph_graphs() -> tuple[Any, Any] | None:
    try:
        from langgraph.graph import END, START, StateGraph
    except ImportError:
        return None
    from typing import TypedDict

    class ChainState(TypedDict):
        x: int

    async def step(state: ChainState) -> dict[str, int]:
        return {"x": state["x"]}

    builder = StateGraph(ChainState)
    for i in range(N):
        builder.add_node(f"n{i}", step)
    builder.add_edge(START, "n0")
    for i in range(1, N):
        builder.add_edge(f"n{i - 1}", f"n{i}")
    builder.add_edge(f"n{N - 1}", END)
    chain = builder.compile()

    class FanState(TypedDict):
        x: int
        acc: Annotated[list[int], operator.add]

    async def leaf(state: FanState) -> dict[str, list[int]]:
        return {"acc": [state["x"]]}

    builder2 = StateGraph(FanState)
    for i in range(N):
        builder2.add_node(f"n{i}", leaf)
        builder2.add_edge(START, f"n{i}")
        builder2.add_edge(f"n{i}", END)
    fan = builder2.compile()
    return chain, fan


async def time_langgraph(graph: Any, state: dict[str, Any]) -> float:
    await graph.ainvoke(state)
    start = time.perf_counter()
    for _ in range(INNER):
        await graph.ainvoke(state)
    return (time.perf_counter() - start) / (INNER * N) * 1e6


# ---- 16 parallel tool calls against a slow local server ------------------------------------------


async def slow_server(delay_s: float) -> tuple[asyncio.AbstractServer, int]:
    """A minimal OpenAI-compatible chat endpoint: answers each request after `delay_s`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                await reader.readexactly(length)
                await asyncio.sleep(delay_s)
                body = json.dumps({
                    "id": "x", "object": "chat.completion", "model": "slow",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": json.dumps({"answer": "ok"})}}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
                }).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


class Question(BaseModel):
    question: str


class Answer(BaseModel):
    answer: str


class Questions(BaseModel):
    items: list[str]


async def fanout16() -> list[float]:
    from chainkit.backends.openai import OpenAICompatibleBackend
    from chainkit.tools import Tool, ToolSpec

    server, port = await slow_server(0.1)
    backend = OpenAICompatibleBackend(f"http://127.0.0.1:{port}/v1", "slow", max_in_flight=16)
    tool = Tool(ToolSpec(name="ask", input=Question, output=Answer, user="{{ question }}"), backend=backend)
    reg = Registry()
    reg.add_model(Questions)
    reg.add_tool(tool)
    reg.add_graph(Graph(name="fan16", input="Questions", nodes=[
        MapNode(name="ask_all", over="${input.items}",
                node=ToolNode(name="ask", tool="ask", inputs={"question": "${item}"}))],
        output="${nodes.ask_all.output}"))
    executor = Executor(reg)
    items = {"items": [f"q{i}" for i in range(16)]}
    walls = []
    try:
        await executor.run("fan16", items)  # warm: open connections
        for _ in range(7):
            start = time.perf_counter()
            result = await executor.run("fan16", items)
            walls.append((time.perf_counter() - start) * 1000)
            assert len(result.output) == 16
    finally:
        await backend.aclose()
        server.close()
        await server.wait_closed()
    return walls


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):7.1f}  (min {min(values):.1f}, max {max(values):.1f})"


async def main() -> None:
    reg = build_registry()
    tmp = tempfile.mkdtemp()
    plain = Executor(reg)
    journal = Journal(Path(tmp) / "journal.db")
    journaled = Executor(reg, journal=journal)
    lg = langgraph_graphs()
    rounds: dict[str, list[float]] = {k: [] for k in ("seq", "fan", "seq_journal", "fan_journal", "lg_seq", "lg_fan")}
    for _ in range(REPEATS):  # interleaved so machine noise hits every variant alike
        rounds["seq"].append(await time_chainkit(plain, "chain"))
        rounds["fan"].append(await time_chainkit(plain, "fan"))
        rounds["seq_journal"].append(await time_chainkit(journaled, "chain"))
        rounds["fan_journal"].append(await time_chainkit(journaled, "fan"))
        if lg is not None:
            rounds["lg_seq"].append(await time_langgraph(lg[0], {"x": 1}))
            rounds["lg_fan"].append(await time_langgraph(lg[1], {"x": 1, "acc": []}))
    journal.close()
    print(f"us per node, {N} no-op async nodes, {REPEATS} rounds x {INNER} runs")
    for key, values in rounds.items():
        if values:
            print(f"  {key:12s} {summary(values)}")
    med = {k: statistics.median(v) if v else None for k, v in rounds.items()}
    walls = await fanout16()
    print(f"16 parallel tool calls, server answers after 100 ms: wall ms {summary(walls)}")
    ratio = {}
    if lg is not None:
        ratio = {
            "ratio_seq": round(med["seq"] / med["lg_seq"], 3),
            "ratio_fan": round(med["fan"] / med["lg_fan"], 3),
            "ratio_seq_journal": round(med["seq_journal"] / med["lg_seq"], 3),
            "ratio_fan_journal": round(med["fan_journal"] / med["lg_fan"], 3),
        }
        print(f"chainkit / LangGraph: {ratio}")
    else:
        print("LangGraph not installed (pip install langgraph) - no comparison")
    result = {
        "us_per_node_seq": round(med["seq"], 2),
        "us_per_node_fan": round(med["fan"], 2),
        "us_per_node_seq_journal": round(med["seq_journal"], 2),
        "us_per_node_fan_journal": round(med["fan_journal"], 2),
        "langgraph_us_per_node_seq": round(med["lg_seq"], 2) if med["lg_seq"] else None,
        "langgraph_us_per_node_fan": round(med["lg_fan"], 2) if med["lg_fan"] else None,
        "fanout16_wall_ms": round(statistics.median(walls), 1),
        **ratio,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
