"""Static validation and planning: a Graph + Registry -> a Plan the executor runs.

Checked before any node runs (every error collected, then raised as one DefinitionError with
`.errors`): unknown tools/functions/memories/graphs; references to missing fields or of the wrong
type; missing or unknown inputs; literals that do not validate; memories used but not declared in
`reads`/`writes`; dependency cycles; nodes that can never run (a condition that is always false, or a
required input from such a node); bad expressions.
"""

from __future__ import annotations

import builtins
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from chainkit import errors as _errors
from chainkit.errors import DefinitionError
from chainkit.graph._expr import Expression, ExprSyntaxError, compile_expression
from chainkit.graph._refs import (
    Getter,
    Ref,
    RefSyntaxError,
    Resolver,
    compile_mapping,
    compile_value,
    iter_refs,
    parse_template,
)
from chainkit.graph._spec import Graph, MapNode, RetryPolicy, Source
from chainkit.graph._types import PathError, assignable, strip_optional, type_name, walk

# ---- the plan ------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class NodePlan:
    index: int
    name: str
    kind: str
    spec: Any
    deps: tuple[int, ...] = ()
    dependents: list[int] = field(default_factory=list)
    build_inputs: Callable[[Resolver], dict[str, Any]] = lambda r: {}
    when: Expression | None = None
    until: Expression | None = None
    max_iterations: int = 1
    timeout_s: float | None = None
    retry: RetryPolicy | None = None
    retry_on: tuple[type[BaseException], ...] = ()
    output_type: Any = Any
    output_adapter: TypeAdapter[Any] | None = None
    inline: bool = False  # a sync function without timeout/retry/loop: called in the scheduler
    durable: bool = False  # journal durably as soon as it finishes (LLM calls)
    tool: Any = None
    function: Any = None
    memory: Any = None
    op: str = ""
    subplan: Plan | None = None
    inner: NodePlan | None = None
    over: Getter | None = None
    max_concurrency: int | None = None


@dataclass(slots=True, eq=False)
class Plan:
    graph: Graph
    name: str
    input_model: type[BaseModel] | None
    nodes: list[NodePlan]
    index: dict[str, int]
    roots: tuple[int, ...]
    dep_counts: tuple[int, ...]
    build_output: Callable[[Resolver], Any]
    output_type: Any
    output_adapter: TypeAdapter[Any]
    memory_refs: tuple[str, ...]  # document memories read through ${memory.X}
    reads: frozenset[str]
    writes: frozenset[str]


# ---- memory op signatures ------------------------------------------------------------------------

# op -> (memory kinds it applies to, {input: (type or "model", required)})
_READ_OPS: dict[str, tuple[tuple[str, ...], dict[str, tuple[Any, bool]]]] = {
    "get": (("document", "collection"), {"key": (Any, True)}),
    "last": (("log",), {"n": (int, True)}),
    "window": (("log",), {"max_tokens": (int, True)}),
    "range": (("log",), {"start_seq": (int, True), "end_seq": (int, True)}),
    "count": (("log", "collection"), {}),
    "query": (
        ("collection",),
        {"where": (dict[str, Any], False), "order_by": (str | None, False), "limit": (int | None, False)},
    ),
    "search": (("collection",), {"text": (str, True), "limit": (int, False)}),
}
_WRITE_OPS: dict[str, tuple[tuple[str, ...], dict[str, tuple[Any, bool]]]] = {
    "replace": (("document",), {"value": ("model", True)}),
    "patch": (("document",), {"delta": (dict[str, Any], True)}),
    "append": (("log",), {"entry": ("model", True)}),
    "summarize": (("log",), {"summary": ("model", True), "through_seq": (int, True)}),
    "put": (("collection",), {"value": ("model", True)}),
    "delete": (("collection",), {"key": (Any, True)}),
}


def _read_output_type(spec: Any, op: str) -> Any:
    model = spec.model
    if op == "get":
        return model | None
    if op == "count":
        return int
    return list[model]


def _write_output_type(spec: Any, op: str) -> Any:
    if op == "patch":
        return dict[str, Any]
    if op == "delete":
        return bool
    return spec.model


def _error_types(names: list[str]) -> tuple[type[BaseException], ...]:
    found = []
    for name in names:
        cls = getattr(_errors, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
        elif name in ("TimeoutError", "Exception", "ValueError", "RuntimeError", "OSError"):
            found.append(getattr(builtins, name))
    return tuple(found)


# ---- compile -------------------------------------------------------------------------------------


class _Checker:
    def __init__(self, graph: Graph, registry: Any, plans: dict[str, Plan], stack: tuple[str, ...]) -> None:
        self.graph = graph
        self.registry = registry
        self.plans = plans
        self.stack = stack
        self.errors: list[DefinitionError] = []

    def error(self, message: str, node: Any = None, key: str | None = None) -> None:
        g = self.graph.name
        where = f"graph {g!r}" + (f" node {node.name!r}" if node is not None else "")
        path = f"{g}" + (f".nodes.{node.name}" if node is not None else "") + (f".{key}" if key else "")
        source: Source | None = (getattr(node, "source", None) if node is not None else None) or self.graph.source
        self.errors.append(
            DefinitionError(
                f"{where}: {message}",
                file=source.file if source else None,
                line=source.line if source else None,
                column=source.col if source else None,
                path=path,
            )
        )


def compile_graph(graph: Graph, registry: Any, plans: dict[str, Plan], stack: tuple[str, ...] = ()) -> Plan:
    chk = _Checker(graph, registry, plans, stack + (graph.name,))
    try:
        plan = _compile(chk)
    except (RefSyntaxError, ExprSyntaxError) as exc:
        # A malformed reference already reported where it was found stops the build later on;
        # one that was not reported is reported now. Either way: a DefinitionError, never this.
        plan = None
        if not chk.errors:
            chk.error(str(exc))
    if chk.errors:
        if len(chk.errors) == 1:
            raise chk.errors[0]
        lines = "\n".join(f"  - {e}" for e in chk.errors)
        raise DefinitionError(f"{len(chk.errors)} errors in graph {graph.name!r}:\n{lines}", errors=chk.errors)
    assert plan is not None
    return plan


def _subplan(chk: _Checker, name: str, node: Any) -> Plan | None:
    registry = chk.registry
    if name in chk.stack:
        chk.error(f"subgraph {name!r} includes itself ({' -> '.join(chk.stack + (name,))})", node, "graph")
        return None
    if name not in registry.graphs:
        chk.error(f"no graph named {name!r} (registered: {', '.join(registry.graphs) or 'none'})", node, "graph")
        return None
    if name in chk.plans:
        return chk.plans[name]
    try:
        sub = compile_graph(registry.graphs[name], registry, chk.plans, chk.stack)
    except DefinitionError as exc:
        chk.error(f"subgraph {name!r} is invalid: {exc}", node, "graph")
        return None
    chk.plans[name] = sub
    return sub


def _node_target(chk: _Checker, node: Any) -> dict[str, Any]:
    """Resolve what a node calls; returns {input_fields, output_type, ...} or {} on error."""
    reg = chk.registry
    kind = node.kind
    if kind == "tool":
        tool = reg.tools.get(node.tool)
        if tool is None:
            chk.error(f"no tool named {node.tool!r} (registered: {', '.join(reg.tools) or 'none'})", node, "tool")
            return {}
        spec = tool.spec
        return {"tool": tool, "input_model": spec.input, "output_type": spec.output or str}
    if kind == "function":
        fn = reg.functions.get(node.function)
        if fn is None:
            chk.error(
                f"no function named {node.function!r} (registered: {', '.join(reg.functions) or 'none'})",
                node,
                "function",
            )
            return {}
        return {"function": fn, "input_model": fn.input_model, "output_type": fn.output_type}
    if kind == "subgraph":
        sub = _subplan(chk, node.graph, node)
        if sub is None:
            return {}
        for name in sub.reads - set(chk.graph.reads) - set(chk.graph.writes):
            chk.error(f"subgraph {node.graph!r} reads memory {name!r}, which this graph does not declare", node)
        for name in sub.writes - set(chk.graph.writes):
            chk.error(f"subgraph {node.graph!r} writes memory {name!r}, which this graph does not declare", node)
        return {"subplan": sub, "input_model": sub.input_model, "output_type": sub.output_type}
    if kind in ("memory_read", "memory_write"):
        spec = reg.memories.get(node.memory)
        if spec is None:
            chk.error(f"no memory named {node.memory!r} (registered: {', '.join(reg.memories) or 'none'})",
                      node, "memory")
            return {}
        table = _READ_OPS if kind == "memory_read" else _WRITE_OPS
        kinds, params = table[node.op]
        if spec.kind not in kinds:
            chk.error(f"op {node.op!r} does not apply to {spec.kind} memory {node.memory!r}", node, "op")
            return {}
        if kind == "memory_read":
            if node.memory not in chk.graph.reads and node.memory not in chk.graph.writes:
                chk.error(f"reads memory {node.memory!r}, which the graph does not declare in reads", node, "memory")
            if spec.kind == "document":
                params = {}
            out = _read_output_type(spec, node.op)
        else:
            if node.memory not in chk.graph.writes:
                chk.error(f"writes memory {node.memory!r}, which the graph does not declare in writes", node,
                          "memory")
            out = _write_output_type(spec, node.op)
        fields = {k: ((spec.model if t == "model" else t), req) for k, (t, req) in params.items()}
        return {"memory": spec, "fields": fields, "output_type": out}
    return {}


def _compile(chk: _Checker) -> Plan | None:
    graph, reg = chk.graph, chk.registry
    input_model = None
    if graph.input is not None:
        input_model = reg.input_model(graph)
        if input_model is None:
            chk.error(f"input model {graph.input!r} is not registered (registry.add_model)", key="input")
    names: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        if node.name in names:
            chk.error("node name is used twice", node, "name")
        names.setdefault(node.name, i)
    for name in graph.reads + graph.writes:
        if name not in reg.memories:
            chk.error(f"declares memory {name!r}, which is not registered", key="reads" if name in graph.reads else "writes")

    # what each node calls and its output type
    targets: list[dict[str, Any]] = []
    out_types: dict[str, Any] = {}
    for node in graph.nodes:
        if isinstance(node, MapNode):
            inner = _node_target(chk, node.node)
            target = {"inner": inner, "output_type": list[inner.get("output_type", Any)]}  # type: ignore[misc]
            if node.node.loop is not None or node.node.after:
                chk.error("a map's inner node cannot have loop or after (put them on the map node)", node, "node")
        else:
            target = _node_target(chk, node)
        targets.append(target)
        out_types[node.name] = target.get("output_type", Any)

    memory_refs: set[str] = set()

    def ref_type(ref: Ref, node: Any, key: str, ctx: dict[str, Any]) -> Any:
        """Static type of a reference, or None after recording an error."""
        root = ref.root
        try:
            if root == "input":
                if input_model is None:
                    chk.error(f"{ref} used, but the graph has no input model", node, key)
                    return None
                return walk(input_model, ref.path, what="input")
            if root == "nodes":
                target = ref.target or ""
                if target not in names:
                    chk.error(f"{ref} names unknown node {target!r} (nodes: {', '.join(names)})", node, key)
                    return None
                if node is not None and target == node.name:
                    chk.error(f"{ref} refers to the node itself (use loop.previous inside a loop)", node, key)
                    return None
                ctx.setdefault("deps", set()).add(names[target])
                return walk(out_types[target], ref.path, what=f"nodes.{target}.output")
            if root == "memory":
                name = ref.target or ""
                spec = reg.memories.get(name)
                if spec is None:
                    chk.error(f"{ref} names unknown memory {name!r}", node, key)
                    return None
                if spec.kind != "document":
                    chk.error(f"{ref}: only document memories can be referenced; read a {spec.kind} "
                              f"with a memory_read node", node, key)
                    return None
                if name not in graph.reads and name not in graph.writes:
                    chk.error(f"{ref} reads memory {name!r}, which the graph does not declare in reads", node, key)
                    return None
                memory_refs.add(name)
                return walk(spec.model | None, ref.path, what=f"memory.{name}")
            if root in ("item", "index"):
                if "item" not in ctx:
                    chk.error(f"{ref} is only valid inside a map node", node, key)
                    return None
                return int if root == "index" else walk(ctx["item"], ref.path, what="item")
            if root == "loop":
                if not ctx.get("loop"):
                    chk.error(f"{ref} is only valid in a node with loop", node, key)
                    return None
                if ref.path[0] == "iteration":
                    return int
                return walk(ctx["self_type"] | None, ref.path[1:], what="loop.previous")
            if root == "output":
                if not ctx.get("until"):
                    chk.error(f"{ref} is only valid in loop.until", node, key)
                    return None
                return walk(ctx["self_type"], ref.path, what="output")
        except PathError as exc:
            chk.error(f"{ref}: {exc}", node, key)
            return None
        return None

    def check_value(value: Any, dst: Any, node: Any, key: str, ctx: dict[str, Any]) -> None:
        if isinstance(value, str):
            try:
                template = parse_template(value)
            except RefSyntaxError as exc:
                chk.error(str(exc), node, key)
                return
            if template is None:
                _check_literal(value, dst, node, key)
                return
            single = template.single
            for ref in template.refs:
                src = ref_type(ref, node, key, ctx)
                if src is None or single is None:
                    continue
                if ref.has_default and not assignable(type(ref.default), dst) and ref.default is not None:
                    chk.error(f"{ref}: default {ref.default!r} does not fit {type_name(dst)}", node, key)
                if not assignable(src, dst):
                    chk.error(f"{ref} is {type_name(src)}, but {key} expects {type_name(dst)}", node, key)
            if single is None and not assignable(str, dst):
                chk.error(f"text with references is a string, but {key} expects {type_name(dst)}", node, key)
            return
        refs_inside = _safe_refs(value, chk, node, key)
        if not refs_inside:
            _check_literal(value, dst, node, key)
            return
        inner, _ = strip_optional(dst)
        if isinstance(value, dict) and isinstance(inner, type) and issubclass(inner, BaseModel):
            fields = inner.model_fields
            for k, v in value.items():
                if k not in fields:
                    chk.error(f"{key}.{k}: {inner.__name__} has no field {k!r}", node, key)
                else:
                    check_value(v, fields[k].annotation, node, f"{key}.{k}", ctx)
            return
        for ref in refs_inside:
            ref_type(ref, node, key, ctx)

    def _check_literal(value: Any, dst: Any, node: Any, key: str) -> None:
        if dst is Any:
            return
        try:
            TypeAdapter(dst).validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            chk.error(f"literal {value!r} does not fit {type_name(dst)}: {first['msg']}", node, key)
        except Exception:  # a type pydantic cannot build an adapter for: checked at run time
            pass

    def check_inputs(node: Any, fields: dict[str, tuple[Any, bool]], ctx: dict[str, Any]) -> None:
        for key, value in node.inputs.items():
            if key not in fields:
                chk.error(f"unknown input {key!r} (inputs: {', '.join(fields) or 'none'})", node, f"inputs.{key}")
                _safe_refs(value, chk, node, f"inputs.{key}")
                continue
            check_value(value, fields[key][0], node, f"inputs.{key}", ctx)
        for key, (_, required) in fields.items():
            if required and key not in node.inputs:
                chk.error(f"missing required input {key!r}", node, "inputs")

    def check_expr(text: str, node: Any, key: str, ctx: dict[str, Any]) -> Expression | None:
        try:
            expr = compile_expression(text)
        except (ExprSyntaxError, RefSyntaxError) as exc:
            chk.error(f"bad expression {text!r}: {exc}", node, key)
            return None
        for ref in expr.refs:
            ref_type(ref, node, key, ctx)
        return expr

    def fields_of(target: dict[str, Any]) -> dict[str, tuple[Any, bool]]:
        if "fields" in target:
            return target["fields"]
        model = target.get("input_model")
        if model is None:
            return {}
        return {k: (f.annotation, f.is_required()) for k, f in model.model_fields.items()}

    def build_node(node: Any, index: int, target: dict[str, Any], ctx: dict[str, Any]) -> NodePlan:
        self_type = target.get("output_type", Any)
        ctx["self_type"] = self_type
        ctx["loop"] = node.loop is not None
        if target:
            check_inputs(node, fields_of(target), ctx)
        else:
            for key, value in node.inputs.items():
                _safe_refs(value, chk, node, f"inputs.{key}")
        if node.retry is not None:
            for name in node.retry.on:
                if not _error_types([name]):
                    chk.error(f"retry.on names unknown error {name!r} (use chainkit.errors names)", node, "retry.on")
        when = check_expr(node.when, node, "when", ctx) if node.when else None
        until = None
        if node.loop is not None:
            until = check_expr(node.loop.until, node, "loop.until", {**ctx, "until": True, "deps": set()})
        try:
            adapter = TypeAdapter(self_type)
        except Exception:
            adapter = TypeAdapter(Any)
        fn = target.get("function")
        plan = NodePlan(
            index=index,
            name=node.name,
            kind=node.kind,
            spec=node,
            build_inputs=_safe_compile(node.inputs),
            when=when,
            until=until,
            max_iterations=node.loop.max_iterations if node.loop else 1,
            timeout_s=node.timeout_s,
            retry=node.retry,
            retry_on=_error_types(node.retry.on) if node.retry else (),
            output_type=self_type,
            output_adapter=adapter,
            tool=target.get("tool"),
            function=fn,
            memory=target.get("memory"),
            op=getattr(node, "op", ""),
            subplan=target.get("subplan"),
            durable=node.kind == "tool",
        )
        plan.inline = (
            node.kind == "function"
            and fn is not None
            and not fn.is_async
            and not fn.blocking
            and node.timeout_s is None
            and node.retry is None
            and node.loop is None
        )
        return plan

    plans: list[NodePlan] = []
    deps_of: list[set[int]] = []
    ref_deps_of: list[set[int]] = []
    for i, node in enumerate(graph.nodes):
        ctx: dict[str, Any] = {"deps": set()}
        target = targets[i]
        if isinstance(node, MapNode):
            item_type: Any = Any
            over_getter: Getter | None = None
            try:
                over_t = parse_template(node.over)
            except RefSyntaxError as exc:
                chk.error(str(exc), node, "over")
                over_t = None
            if over_t is None or over_t.single is None:
                if over_t is not None or not isinstance(node.over, str):
                    chk.error("over must be one reference to a list", node, "over")
                else:
                    chk.error("over must be one reference to a list, like ${input.items}", node, "over")
            else:
                src = ref_type(over_t.single, node, "over", ctx)
                if src is not None:
                    inner_src, _ = strip_optional(src)
                    origin = typing.get_origin(inner_src)
                    if inner_src is Any:
                        item_type = Any
                    elif origin in (list, tuple) or inner_src in (list, tuple):
                        args = typing.get_args(inner_src)
                        item_type = args[0] if args else Any
                    else:
                        chk.error(f"over: {over_t.single} is {type_name(src)}, not a list", node, "over")
                over_getter = compile_value(node.over)
            outer = build_node(node, i, {"output_type": target["output_type"]}, ctx)
            inner_ctx = {"deps": ctx["deps"], "item": item_type}
            inner = build_node(node.node, 0, target["inner"], inner_ctx)
            outer.inner, outer.over, outer.max_concurrency = inner, over_getter, node.max_concurrency
            outer.durable = False
            plans.append(outer)
        else:
            plans.append(build_node(node, i, target, ctx))
        ref_deps_of.append(set(ctx["deps"]))
        deps = set(ctx["deps"])
        for name in node.after:
            if name not in names:
                chk.error(f"after names unknown node {name!r}", node, "after")
            elif name == node.name:
                chk.error("after names the node itself", node, "after")
            else:
                deps.add(names[name])
        deps_of.append(deps)

    # which nodes may be skipped at run time (a condition on them or on a required input): their
    # outputs are optional in the graph output
    skippable: dict[int, bool] = {}

    def may_skip(i: int, seen: frozenset[int] = frozenset()) -> bool:
        if i not in skippable:
            if i in seen:
                return False
            node = graph.nodes[i]
            skippable[i] = node.when is not None or any(
                may_skip(d, seen | {i}) and not _defaulted(node, d, graph) for d in ref_deps_of[i]
            )
        return skippable[i]

    def optional_if_skippable(ref: Ref, tp: Any) -> Any:
        if ref.root == "nodes" and ref.target in names and not ref.has_default and may_skip(names[ref.target]):
            return tp | None
        return tp

    # graph output
    out_ctx: dict[str, Any] = {"deps": set()}
    output_type: Any = type(None)
    def build_output(resolve: Resolver) -> Any:
        return None

    if isinstance(graph.output, str):
        template = None
        try:
            template = parse_template(graph.output)
        except RefSyntaxError as exc:
            chk.error(str(exc), key="output")
        if template is not None and template.single is not None:
            found = ref_type(template.single, None, "output", out_ctx)
            output_type = optional_if_skippable(template.single, found) if found is not None else Any
        else:
            output_type = str
            if template is not None:
                for ref in template.refs:
                    ref_type(ref, None, "output", out_ctx)
        build_output = compile_value(graph.output)  # type: ignore[assignment]
    elif isinstance(graph.output, dict):
        fields: dict[str, Any] = {}
        for key, value in graph.output.items():
            tp: Any = Any
            try:
                template = parse_template(value) if isinstance(value, str) else None
            except RefSyntaxError as exc:
                chk.error(str(exc), key=f"output.{key}")
                continue
            if template is not None and template.single is not None:
                found = ref_type(template.single, None, f"output.{key}", out_ctx)
                tp = optional_if_skippable(template.single, found) if found is not None else Any
                if template.single.has_default:
                    tp = tp | type(template.single.default) if template.single.default is not None else tp | None
            elif template is not None:
                tp = str
                for ref in template.refs:
                    ref_type(ref, None, f"output.{key}", out_ctx)
            elif not isinstance(value, str):
                for ref in _safe_refs(value, chk, None, f"output.{key}"):
                    ref_type(ref, None, f"output.{key}", out_ctx)
                tp = Any if _safe_refs(value, chk, None, "") else type(value)
            else:
                tp = str
            fields[key] = (tp, ...)
        output_type = create_model(  # type: ignore[call-overload]
            f"{graph.name}_output", __config__=ConfigDict(arbitrary_types_allowed=True), **fields
        )
        mapping_builder = compile_mapping(graph.output)
        model = output_type

        def build_output(resolve: Resolver) -> Any:
            return model.model_validate(mapping_builder(resolve))

    # cycles (Kahn)
    n = len(plans)
    counts = [len(d) for d in deps_of]
    remaining = list(counts)
    order: list[int] = [i for i in range(n) if remaining[i] == 0]
    dependents: list[list[int]] = [[] for _ in range(n)]
    for i, deps in enumerate(deps_of):
        for d in deps:
            dependents[d].append(i)
    pos = 0
    while pos < len(order):
        for j in dependents[order[pos]]:
            remaining[j] -= 1
            if remaining[j] == 0:
                order.append(j)
        pos += 1
    if len(order) < n:
        stuck = [graph.nodes[i].name for i in range(n) if remaining[i] > 0]
        chk.error(f"dependency cycle among nodes {', '.join(stuck)} (loops must be declared with loop:)")

    # nodes that can never run
    never: set[int] = set()
    for i in order:
        node = graph.nodes[i]
        if plans[i].when is not None and plans[i].when.is_constant:
            try:
                if not plans[i].when.constant_value():
                    never.add(i)
                    chk.error("can never run: its condition is always false", node, "when")
                    continue
            except Exception as exc:
                chk.error(f"condition fails: {exc}", node, "when")
        blockers = [graph.nodes[d].name for d in ref_deps_of[i] if d in never and not _defaulted(node, d, graph)]
        if blockers:
            never.add(i)
            chk.error(f"can never run: it needs {', '.join(blockers)}, which can never run", node)

    if chk.errors:
        return None
    for i, p in enumerate(plans):
        p.deps = tuple(sorted(deps_of[i]))
        p.dependents = sorted(dependents[i])
    return Plan(
        graph=graph,
        name=graph.name,
        input_model=input_model,
        nodes=plans,
        index=names,
        roots=tuple(i for i in range(n) if counts[i] == 0),
        dep_counts=tuple(counts),
        build_output=build_output,
        output_type=output_type,
        output_adapter=TypeAdapter(output_type),
        memory_refs=tuple(sorted(memory_refs)),
        reads=frozenset(graph.reads),
        writes=frozenset(graph.writes),
    )


def _defaulted(node: Any, dep: int, graph: Graph) -> bool:
    """True when every reference from `node` to node `dep` carries a default."""
    name = graph.nodes[dep].name
    refs = list(iter_refs(node.inputs))
    if isinstance(node, MapNode):
        refs += iter_refs(node.node.inputs) + iter_refs(node.over)
    for text in (node.when,):
        if text:
            try:
                refs += list(compile_expression(text).refs)
            except Exception:
                pass
    to_dep = [r for r in refs if r.root == "nodes" and r.target == name]
    return bool(to_dep) and all(r.has_default for r in to_dep)


def _safe_refs(value: Any, chk: _Checker, node: Any, key: str) -> list[Ref]:
    try:
        return iter_refs(value)
    except RefSyntaxError as exc:
        if key:
            chk.error(str(exc), node, key)
        return []


def _safe_compile(mapping: dict[str, Any]) -> Callable[[Resolver], dict[str, Any]]:
    try:
        return compile_mapping(mapping)
    except RefSyntaxError:
        return lambda r: {}
