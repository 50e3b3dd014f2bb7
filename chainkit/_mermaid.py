"""Mermaid flowchart text for an app's graphs and processes (`chainkit graph`)."""

from __future__ import annotations

import re
from typing import Any

from chainkit.graph._expr import compile_expression
from chainkit.graph._refs import iter_refs

_SHAPES = {
    "tool": ('["', '"]'),
    "function": ('[["', '"]]'),
    "memory_read": ('[("', '")]'),
    "memory_write": ('[("', '")]'),
    "subgraph": ('[["', '"]]'),
    "map": ('{{"', '"}}'),
}


def _id(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9_]", "_", p) for p in parts)


def _label(node: Any) -> str:
    kind = node.kind
    if kind == "tool":
        what = f"tool {node.tool}"
    elif kind == "function":
        what = f"fn {node.function}"
    elif kind in ("memory_read", "memory_write"):
        what = f"{node.memory}.{node.op}"
    elif kind == "subgraph":
        what = f"graph {node.graph}"
    else:
        what = f"map over {node.over}"
    text = f"{node.name}<br/><small>{what}</small>"
    return text.replace('"', "'")


def _dependencies(node: Any) -> tuple[set[str], set[str]]:
    """(nodes it reads or waits for, memories it reads through references)."""
    refs = list(iter_refs(node.inputs))
    if node.when:
        refs += list(compile_expression(node.when).refs)
    if getattr(node, "over", None):
        refs += list(iter_refs(node.over))
    nodes = {r.target for r in refs if r.root == "nodes" and r.target}
    memories = {r.target for r in refs if r.root == "memory" and r.target}
    return nodes | set(node.after), memories


def graph_mermaid(graph: Any, prefix: str = "") -> list[str]:
    lines = []
    for node in graph.nodes:
        left, right = _SHAPES.get(node.kind, ('["', '"]'))
        lines.append(f"    {_id(prefix, graph.name, node.name)}{left}{_label(node)}{right}")
    for node in graph.nodes:
        deps, memories = _dependencies(node)
        target = _id(prefix, graph.name, node.name)
        for dep in sorted(deps):
            label = "" if node.when is None else "|when|"
            lines.append(f"    {_id(prefix, graph.name, dep)} -->{label} {target}")
        for memory in sorted(memories):
            lines.append(f"    {_id('mem', memory)}[(\"{memory}\")] -.-> {target}")
        if node.kind == "memory_write":
            lines.append(f"    {target} ==> {_id('mem', node.memory)}[(\"{node.memory}\")]")
    return lines


def app_mermaid(registry: Any, processes: list[Any]) -> str:
    lines = ["flowchart TD"]
    if processes:
        lines.append('    subgraph processes["processes"]')
        for process in processes:
            background = " (background)" if process.background else ""
            lines.append(f'        {_id("p", process.name)}(["{process.name}{background}<br/><small>graph '
                         f'{process.graph}</small>"])')
        for process in processes:
            trigger = process.trigger
            if trigger.on == "message":
                lines.append(f'        message((message)) --> {_id("p", process.name)}')
            else:
                label = {"after": "after", "every": f"every {trigger.k}", "when": "when"}[trigger.on]
                lines.append(f'        {_id("p", trigger.process)} -->|{label}| {_id("p", process.name)}')
        lines.append("    end")
    for graph in registry.graphs.values():
        lines.append(f'    subgraph {_id("g", graph.name)}["graph {graph.name}"]')
        lines += ["    " + line for line in graph_mermaid(graph)]
        lines.append("    end")
    return "\n".join(lines)
