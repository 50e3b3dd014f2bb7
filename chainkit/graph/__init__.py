"""Graphs: typed nodes wired by references, validated when built, run by the async executor."""

from __future__ import annotations

from chainkit.graph._executor import Executor, RunResult, Staging
from chainkit.graph._expr import Expression, compile_expression
from chainkit.graph._journal import Journal, JournaledRun
from chainkit.graph._refs import Ref, parse_ref, parse_template
from chainkit.graph._registry import FunctionInfo, Registry
from chainkit.graph._spec import (
    FunctionNode,
    Graph,
    LoopSpec,
    MapNode,
    MemoryReadNode,
    MemoryWriteNode,
    Node,
    RetryPolicy,
    Source,
    SubgraphNode,
    ToolNode,
)
from chainkit.graph._validate import NodePlan, Plan

__all__ = [
    "Executor",
    "Expression",
    "FunctionInfo",
    "FunctionNode",
    "Graph",
    "Journal",
    "JournaledRun",
    "LoopSpec",
    "MapNode",
    "MemoryReadNode",
    "MemoryWriteNode",
    "Node",
    "NodePlan",
    "Plan",
    "Ref",
    "Registry",
    "RetryPolicy",
    "RunResult",
    "Source",
    "Staging",
    "SubgraphNode",
    "ToolNode",
    "compile_expression",
    "parse_ref",
    "parse_template",
]
