"""The async executor: runs a compiled Plan.

Scheduling. The plan carries each node's dependency count and dependents (computed once when the graph
is compiled). A node becomes ready when all its dependencies are done. Ready nodes are started at once:
a sync function node runs inline in the scheduler (no task); an async node runs inline (awaited in the
scheduler) when it is the only thing that can run, otherwise in its own task so independent nodes
overlap. Finished tasks wake the scheduler through one future.

Skipping. A node whose `when` is false is skipped. Reading a skipped node's output through a reference
without a default skips the reader too; `${ref ?? default}` reads the default instead. `after:` orders
without propagating skips. A skipped node's output reads as the default, or None in graph outputs.

Failure and cancellation. When a node fails (after its retries) or the caller cancels, every in-flight
node is cancelled and awaited, and no staged memory write is committed.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from chainkit import tracing
from chainkit.errors import (
    ChainkitError,
    MemoryConflict,
    NodeTimeout,
    RunCancelled,
    RunError,
    UsageError,
)
from chainkit.graph._expr import ExprEvalError
from chainkit.graph._journal import Journal
from chainkit.graph._refs import NO_DEFAULT, MissingValue, Ref, Skipped, follow
from chainkit.graph._spec import Graph
from chainkit.graph._validate import NodePlan, Plan

_PENDING: Any = object()
_SKIPPED: Any = object()


@dataclass(slots=True)
class RunResult:
    run_id: str
    graph: str
    output: Any
    outputs: dict[str, Any]  # top-level node outputs by name (skipped nodes absent)
    skipped: list[str]
    writes: list[tuple[str, str]] = field(default_factory=list)  # (memory, op) committed
    replayed: list[str] = field(default_factory=list)  # node paths taken from the journal


# ---- staged memory writes ------------------------------------------------------------------------


def _deep_merge(base: dict[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in delta.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class Staging:
    """Reads seen and writes staged by one run; commits them in one store transaction."""

    def __init__(self, store: Any, scope: Mapping[str, str]) -> None:
        self.store = store
        self.scope = dict(scope)
        self.seen: dict[tuple[str, Any], int] = {}  # (memory, key) -> version seen (0: absent)
        self.views: dict[tuple[str, Any], Any] = {}  # read-your-own-writes: staged value (None: deleted)
        self.appends: dict[str, list[Any]] = {}
        self.ops: list[tuple[Any, str, Any, dict[str, Any]]] = []  # (spec, op, key, args)
        self.docs: dict[str, Any] = {}  # ${memory.X} values, read once

    def _store(self) -> Any:
        if self.store is None:
            raise UsageError("this graph uses memories: pass store= to the executor (or use an App)")
        return self.store

    async def read_doc(self, spec: Any) -> Any:
        key = (spec.name, None)
        if key in self.views:
            return self.views[key]
        got = await self._store().document(spec).get(self.scope)
        self.seen.setdefault(key, got.version if got is not None else 0)
        return got.value if got is not None else None

    async def prefetch(self, spec: Any) -> None:
        if spec.name not in self.docs:
            self.docs[spec.name] = await self.read_doc(spec)

    def doc_ref(self, ref: Ref, spec: Any) -> Any:
        key = (spec.name, None)
        value = self.views[key] if key in self.views else self.docs.get(spec.name)
        if value is None:
            if ref.default is not NO_DEFAULT:
                return ref.default
            try:
                value = spec.model()  # a missing document reads as its defaults when it has them
            except ValidationError:
                return None
        return follow(value, ref.path) if ref.path else value

    async def read(self, spec: Any, op: str, args: dict[str, Any]) -> Any:
        store = self._store()
        if spec.kind == "document":
            return await self.read_doc(spec)
        if spec.kind == "collection":
            handle = store.collection(spec)
            if op == "get":
                key = (spec.name, args["key"])
                if key in self.views:
                    return self.views[key]
                got = await handle.get(self.scope, args["key"])
                self.seen.setdefault(key, got.version if got is not None else 0)
                return got.value if got is not None else None
            if op == "count":
                return len(await handle.query(self.scope))
            if op == "query":
                rows = await handle.query(self.scope, args.get("where") or {}, order_by=args.get("order_by"),
                                          limit=args.get("limit"))
            else:
                rows = await handle.search(self.scope, args["text"], limit=args.get("limit") or 10)
            for row in rows:
                self.seen.setdefault((spec.name, getattr(row.value, spec.key)), row.version)
            return [row.value for row in rows]
        handle = store.log(spec)
        staged = self.appends.get(spec.name, [])
        if op == "last":
            n = args["n"]
            entries = [e.value for e in await handle.last(self.scope, n)] + staged
            return entries[-n:] if n > 0 else []
        if op == "count":
            return await handle.count(self.scope) + len(staged)
        if op == "window":
            return [e.value for e in await handle.window(self.scope, args["max_tokens"])]
        return [e.value for e in await handle.range(self.scope, args["start_seq"], args["end_seq"])]

    async def stage(self, spec: Any, op: str, args: dict[str, Any]) -> Any:
        model = spec.model
        if op in ("replace", "put", "append", "summarize"):
            field_name = {"replace": "value", "put": "value", "append": "entry", "summarize": "summary"}[op]
            value = model.model_validate(args[field_name])
            if op == "replace":
                self.views[(spec.name, None)] = value
                self.ops.append((spec, op, None, {"value": value}))
            elif op == "put":
                key = getattr(value, spec.key)
                self.views[(spec.name, key)] = value
                self.ops.append((spec, op, key, {"value": value}))
            elif op == "append":
                self.appends.setdefault(spec.name, []).append(value)
                self.ops.append((spec, op, None, {"entry": value}))
            else:
                self.ops.append((spec, op, None, {"summary": value, "through_seq": args["through_seq"]}))
            return value
        if op == "patch":
            current = await self.read_doc(spec)
            base = current.model_dump() if current is not None else {}
            merged = model.model_validate(_deep_merge(base, args["delta"]))
            self.views[(spec.name, None)] = merged
            self.ops.append((spec, op, None, {"delta": dict(args["delta"])}))
            return dict(args["delta"])
        # delete
        key = args["key"]
        self.views[(spec.name, key)] = None
        self.ops.append((spec, op, key, {}))
        return True

    async def commit(self, marker: tuple[Any, str] | None = None) -> list[tuple[str, str]]:
        """Apply every staged write in one transaction; the first write to a record checks the version
        this run read (MemoryConflict when someone wrote since)."""
        if not self.ops:
            return []
        store = self._store()
        checked: set[tuple[str, Any]] = set()
        done: list[tuple[str, str]] = []
        async with store.transaction():
            for spec, op, key, args in self.ops:
                ident = (spec.name, key)
                expected = None
                if ident not in checked:
                    checked.add(ident)
                    expected = self.seen.get(ident)
                if op == "replace":
                    await store.document(spec).replace(self.scope, args["value"], expected_version=expected)
                elif op == "patch":
                    await store.document(spec).patch(self.scope, args["delta"], expected_version=expected)
                elif op == "put":
                    await store.collection(spec).put(self.scope, args["value"], expected_version=expected)
                elif op == "delete":
                    await store.collection(spec).delete(self.scope, key)
                elif op == "append":
                    await store.log(spec).append(self.scope, args["entry"])
                elif op == "summarize":
                    await store.log(spec).summarize(self.scope, args["summary"], through_seq=args["through_seq"])
                done.append((spec.name, op))
            if marker is not None:
                marker_spec, run_id = marker
                await store.collection(marker_spec).put({}, {"id": run_id, "committed_at": time.time()},
                                                        expected_version=0)
        return done


# ---- one run -------------------------------------------------------------------------------------


class _Run:
    """State shared by every frame (graph, subgraph) of one run."""

    __slots__ = ("run_id", "registry", "staging", "journal", "replay", "replayed", "tracing", "memories")

    def __init__(self, run_id: str, registry: Any, staging: Staging, journal: Journal | None,
                 replay: dict[str, str] | None) -> None:
        self.run_id = run_id
        self.registry = registry
        self.staging = staging
        self.journal = journal
        self.replay = replay or {}
        self.replayed: list[str] = []
        self.tracing = tracing.tracing_enabled()
        self.memories = registry.memories

    def journal_output(self, node: NodePlan, path: str, output: Any) -> None:
        """Record a node's output; durable nodes (LLM calls) are then flushed by the caller (`aflush`)."""
        journal = self.journal
        if journal is None:
            return
        adapter = node.output_adapter
        text = adapter.dump_json(output).decode() if adapter is not None else json.dumps(output)
        journal.record(self.run_id, path, text)

    def replayed_output(self, node: NodePlan, path: str) -> Any:
        text = self.replay.get(path)
        if text is None:
            return _PENDING
        self.replayed.append(path)
        adapter = node.output_adapter
        return adapter.validate_json(text) if adapter is not None else json.loads(text)


def _wrap_error(exc: BaseException, path: str, run_id: str) -> RunError:
    if isinstance(exc, RunError):
        return exc
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return NodeTimeout("timed out", node_path=path, run_id=run_id)
    if isinstance(exc, ChainkitError):
        err = RunError(f"{type(exc).__name__}: {exc}", node_path=path, run_id=run_id)
    else:
        err = RunError(f"{type(exc).__name__}: {exc}", node_path=path, run_id=run_id)
    err.__cause__ = exc
    return err


class _Scoped:
    """A resolver with extra roots (map item, loop state) over a frame's resolver."""

    __slots__ = ("frame", "item", "index", "iteration", "previous", "own")

    def __init__(self, frame: _Frame, item: Any = _PENDING, index: int = 0, iteration: int = 0,
                 previous: Any = None, own: Any = _PENDING) -> None:
        self.frame, self.item, self.index = frame, item, index
        self.iteration, self.previous, self.own = iteration, previous, own

    def __call__(self, ref: Ref) -> Any:
        root = ref.root
        if root == "item":
            return follow(self.item, ref.path) if ref.path else self.item
        if root == "index":
            return self.index
        if root == "loop":
            if ref.path[0] == "iteration":
                return self.iteration
            return follow(self.previous, ref.path[1:])
        if root == "output":
            return follow(self.own, ref.path) if ref.path else self.own
        return self.frame.resolve(ref)


class _Frame:
    """One execution of one graph (the top graph or a subgraph)."""

    __slots__ = ("plan", "run", "prefix", "input", "outputs", "done_q", "wake")

    def __init__(self, plan: Plan, run: _Run, prefix: str, input: Any) -> None:
        self.plan = plan
        self.run = run
        self.prefix = prefix
        self.input = input
        self.outputs: list[Any] = [_PENDING] * len(plan.nodes)
        self.done_q: deque[asyncio.Task[Any]] = deque()
        self.wake: asyncio.Future[None] | None = None

    # -- references --------------------------------------------------------------------------------

    def resolve(self, ref: Ref) -> Any:
        root = ref.root
        if root == "nodes":
            out = self.outputs[self.plan.index[ref.target]]  # type: ignore[index]
            if out is _SKIPPED:
                if ref.default is not NO_DEFAULT:
                    return ref.default
                raise Skipped(ref.target or "")
            return follow(out, ref.path) if ref.path else out
        if root == "input":
            return follow(self.input, ref.path) if ref.path else self.input
        if root == "memory":
            return self.run.staging.doc_ref(ref, self.run.memories[ref.target])
        raise MissingValue(f"{ref} is not available here")

    def _output_resolve(self, ref: Ref) -> Any:
        try:
            return self.resolve(ref)
        except Skipped:
            return None

    # -- scheduling --------------------------------------------------------------------------------

    def _on_done(self, task: asyncio.Task[Any]) -> None:
        self.done_q.append(task)
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def execute(self) -> Any:
        plan, run = self.plan, self.run
        nodes = plan.nodes
        for name in plan.memory_refs:
            await run.staging.prefetch(run.memories[name])
        outputs = self.outputs
        remaining = list(plan.dep_counts)
        ready: deque[int] = deque(plan.roots)
        pending = len(nodes)
        inflight: dict[asyncio.Task[Any], int] = {}
        loop = asyncio.get_running_loop()
        prefix = self.prefix
        replay = run.replay
        trace = run.tracing
        try:
            while pending:
                while ready:
                    i = ready.popleft()
                    node = nodes[i]
                    path = f"{prefix}/{node.name}"
                    result = _PENDING
                    if replay and path in replay:
                        result = run.replayed_output(node, path)
                    else:
                        inputs = self._prepare(node, path, self.resolve)
                        if inputs is None:
                            result = _SKIPPED
                            if trace:
                                tracing.emit("node_skipped", {"node_path": path, "node": node.name})
                        elif node.inline:
                            result = self._call_inline(node, inputs, path)
                        elif not inflight and not ready:
                            result = await self._execute(node, inputs, path)
                        else:
                            token = tracing.current_node_path.set(path) if trace else None
                            task = loop.create_task(self._execute(node, inputs, path))
                            if token is not None:
                                tracing.current_node_path.reset(token)
                            inflight[task] = i
                            task.add_done_callback(self._on_done)
                            continue
                    outputs[i] = result
                    pending -= 1
                    for j in node.dependents:
                        remaining[j] -= 1
                        if remaining[j] == 0:
                            ready.append(j)
                if not pending:
                    break
                if not self.done_q:
                    self.wake = loop.create_future()
                    await self.wake
                    self.wake = None
                while self.done_q:
                    task = self.done_q.popleft()
                    i = inflight.pop(task)
                    outputs[i] = task.result()  # raises the node's RunError
                    pending -= 1
                    for j in nodes[i].dependents:
                        remaining[j] -= 1
                        if remaining[j] == 0:
                            ready.append(j)
        except BaseException:
            for task in inflight:
                task.cancel()
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)
            raise
        try:
            return plan.build_output(self._output_resolve)
        except ValidationError as exc:
            raise RunError(f"graph output does not validate: {exc}", node_path=prefix, run_id=run.run_id) from None

    def _prepare(self, node: NodePlan, path: str, resolve: Any) -> dict[str, Any] | None:
        """Evaluate the condition and build the inputs; None when the node is skipped."""
        try:
            if node.when is not None and not node.when.evaluate(resolve):
                return None
            if node.until is not None:
                resolve = _Scoped(self, iteration=0, previous=None)
            return node.build_inputs(resolve)
        except Skipped:
            return None
        except (ExprEvalError, MissingValue) as exc:
            raise RunError(f"{exc}", node_path=path, run_id=self.run.run_id) from None

    def _call_inline(self, node: NodePlan, inputs: dict[str, Any], path: str) -> Any:
        run = self.run
        fn = node.function
        trace = run.tracing
        if trace:
            token = tracing.current_node_path.set(path)
            tracing.emit("node_start", {"node_path": path, "node": node.name, "kind": node.kind})
            started = time.perf_counter()
        try:
            model = fn.input_model.model_validate(inputs)
            out = fn.fn(model) if fn.takes_model else fn.fn(**model.__dict__)
            out = node.output_adapter.validate_python(out)
        except Exception as exc:
            if trace:
                tracing.emit("node_end", {"node_path": path, "node": node.name, "status": "failed",
                                          "error": f"{type(exc).__name__}: {exc}"})
                tracing.current_node_path.reset(token)
            raise _wrap_error(exc, path, run.run_id) from exc
        if run.journal is not None:
            run.journal_output(node, path, out)
        if trace:
            tracing.emit("node_end", {"node_path": path, "node": node.name, "status": "ok",
                                      "latency_s": time.perf_counter() - started, "output": _jsonable(out)})
            tracing.current_node_path.reset(token)
        return out

    async def _execute(self, node: NodePlan, inputs: dict[str, Any], path: str) -> Any:
        """Run a node: loop iterations x retry attempts x timeout, journaling as it goes."""
        run = self.run
        trace = run.tracing
        if trace:
            token = tracing.current_node_path.set(path)
            tracing.emit("node_start", {"node_path": path, "node": node.name, "kind": node.kind})
            started = time.perf_counter()
        try:
            if node.until is None:
                out = await self._attempts(node, inputs, path)
            else:
                out = None
                previous = None
                for iteration in range(node.max_iterations):
                    ipath = f"{path}/iteration {iteration + 1}"
                    if iteration:
                        scoped = _Scoped(self, iteration=iteration, previous=previous)
                        inputs = node.build_inputs(scoped)
                    replayed = run.replayed_output(node, ipath) if run.replay else _PENDING
                    if replayed is not _PENDING:
                        out = replayed
                    else:
                        out = await self._attempts(node, inputs, ipath)
                        run.journal_output(node, ipath, out)
                        if node.durable and run.journal is not None:
                            await run.journal.aflush()
                    if node.until.evaluate(_Scoped(self, iteration=iteration, previous=previous, own=out)):
                        break
                    previous = out
            if node.kind in ("function", "tool", "subgraph", "map") or node.until is not None:
                run.journal_output(node, path, out)
                if node.durable and run.journal is not None:
                    await run.journal.aflush()  # a finished LLM call is never paid for twice
        except asyncio.CancelledError:
            if trace:
                tracing.emit("node_end", {"node_path": path, "node": node.name, "status": "cancelled"})
                tracing.current_node_path.reset(token)
            raise
        except BaseException as exc:
            err = _wrap_error(exc, path, run.run_id) if isinstance(exc, Exception) else exc
            if trace:
                tracing.emit("node_end", {"node_path": path, "node": node.name, "status": "failed",
                                          "error": str(err)})
                tracing.current_node_path.reset(token)
            if err is exc:
                raise
            raise err from exc
        if trace:
            tracing.emit("node_end", {"node_path": path, "node": node.name, "status": "ok",
                                      "latency_s": time.perf_counter() - started, "output": _jsonable(out)})
            tracing.current_node_path.reset(token)
        return out

    async def _attempts(self, node: NodePlan, inputs: dict[str, Any], path: str) -> Any:
        retry = node.retry
        if retry is None:
            return await self._once(node, inputs, path)
        delay = retry.backoff_s
        for attempt in range(1, retry.max_attempts + 1):
            apath = path if attempt == 1 else f"{path}/attempt {attempt}"
            try:
                return await self._once(node, inputs, apath)
            except Exception as exc:
                cause = exc.__cause__ if isinstance(exc, RunError) and exc.__cause__ is not None else exc
                retryable = isinstance(exc, node.retry_on) or isinstance(cause, node.retry_on)
                if attempt == retry.max_attempts or not retryable:
                    raise _wrap_error(exc, apath, self.run.run_id) from exc
                if self.run.tracing:
                    tracing.emit("node_retry", {"node_path": apath, "node": node.name,
                                                "error": f"{type(cause).__name__}: {cause}"})
                if delay:
                    await asyncio.sleep(delay)
                delay = min(delay * retry.backoff_factor, retry.max_backoff_s)
        raise AssertionError("unreachable")

    async def _once(self, node: NodePlan, inputs: dict[str, Any], path: str) -> Any:
        if node.timeout_s is None:
            return await self._call(node, inputs, path)
        try:
            async with asyncio.timeout(node.timeout_s):
                return await self._call(node, inputs, path)
        except TimeoutError:
            raise NodeTimeout(f"timed out after {node.timeout_s} s", node_path=path, run_id=self.run.run_id) from None

    async def _call(self, node: NodePlan, inputs: dict[str, Any], path: str) -> Any:
        kind = node.kind
        run = self.run
        if kind == "function":
            fn = node.function
            model = fn.input_model.model_validate(inputs)
            if fn.blocking:  # off the loop: other nodes and processes keep running, timeouts apply
                out = await asyncio.to_thread(fn.fn, model) if fn.takes_model else await asyncio.to_thread(
                    fn.fn, **model.__dict__)
            else:
                out = fn.fn(model) if fn.takes_model else fn.fn(**model.__dict__)
            if fn.is_async:
                out = await out
            return node.output_adapter.validate_python(out)
        if kind == "tool":
            result = await node.tool(inputs)
            return result.output
        if kind == "memory_read":
            return await run.staging.read(node.memory, node.op, inputs)
        if kind == "memory_write":
            return await run.staging.stage(node.memory, node.op, inputs)
        if kind == "subgraph":
            sub = node.subplan
            value = sub.input_model.model_validate(inputs) if sub.input_model is not None else None
            return await _Frame(sub, run, path, value).execute()
        if kind == "map":
            return await self._map(node, path)
        raise RunError(f"unknown node kind {kind!r}", node_path=path)

    async def _map(self, node: NodePlan, path: str) -> list[Any]:
        items = node.over(self.resolve)
        if items is None:
            items = []
        if not isinstance(items, (list, tuple)):
            raise RunError(f"map over a {type(items).__name__}, not a list", node_path=path, run_id=self.run.run_id)
        inner = node.inner
        assert inner is not None
        run = self.run
        limit = asyncio.Semaphore(node.max_concurrency) if node.max_concurrency else None

        async def one(k: int, item: Any) -> Any:
            ipath = f"{path}/item {k}"
            if run.replay:
                replayed = run.replayed_output(inner, ipath)
                if replayed is not _PENDING:
                    return replayed
            inputs = self._prepare(inner, ipath, _Scoped(self, item=item, index=k))
            if inputs is None:
                return None
            if limit is None:
                out = await self._execute(inner, inputs, ipath)
            else:
                async with limit:
                    out = await self._execute(inner, inputs, ipath)
            return out

        if not items:
            return []
        if len(items) == 1:
            return [await one(0, items[0])]
        tasks = [asyncio.ensure_future(one(k, item)) for k, item in enumerate(items)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            return [task.result() for task in tasks]
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


# ---- the public executor -------------------------------------------------------------------------


class Executor:
    """Runs graphs of a registry against a store, journaling and tracing as configured.

    journal: a `Journal`, a SQLite path, True (the store's file) or None/False (off).
    trace: a trace sink (callable(kind, data)), True (SQLite sink in the store's file) or None (off;
           a sink installed by the caller with `chainkit.tracing.trace_to` is still honoured).
    """

    def __init__(self, registry: Any, *, store: Any = None, journal: Any = None, trace: Any = None) -> None:
        self.registry = registry
        self.store = store
        self._journal_opt = journal
        self._trace_opt = trace
        self._journal: Journal | None = None
        self._sink: Any = None
        self._marker_spec: Any = None

    def _store_path(self) -> str:
        path = getattr(self.store, "path", None)
        if path is None:
            raise UsageError("journal=True / trace=True need a store with a SQLite file (store.path)")
        return str(path)

    @property
    def journal(self) -> Journal | None:
        opt = self._journal_opt
        if self._journal is None and opt:
            if isinstance(opt, Journal):
                self._journal = opt
            else:
                self._journal = Journal(self._store_path() if opt is True else opt)
        return self._journal

    @property
    def sink(self) -> Any:
        opt = self._trace_opt
        if self._sink is None and opt:
            if opt is True or isinstance(opt, str):
                from chainkit._trace_store import SQLiteTraceSink

                self._sink = SQLiteTraceSink(self._store_path() if opt is True else opt)
            else:
                self._sink = opt
        return self._sink

    def _marker(self) -> Any:
        if self._marker_spec is None:
            from pydantic import create_model

            from chainkit.memory import Collection

            model = create_model("chainkit_commit", id=(str, ...), committed_at=(float, 0.0))
            self._marker_spec = Collection("chainkit_run_commits", model, scope="global", key="id")
        return self._marker_spec

    async def close(self) -> None:
        if self._journal is not None and not isinstance(self._journal_opt, Journal):
            self._journal.close()
        self._journal = None
        sink = self._sink
        if sink is not None and hasattr(sink, "close"):
            sink.close()
        self._sink = None

    async def run(
        self,
        graph: str | Graph,
        input: Any = None,
        *,
        scope: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        process: str | None = None,
        commit: bool = True,
        **kwargs: Any,
    ) -> RunResult:
        """Run a graph to completion; commit its staged memory writes when it succeeds."""
        plan: Plan = self.registry.plan(graph)
        if kwargs:
            input = {**(input or {}), **kwargs} if isinstance(input, Mapping) or input is None else input
        value = self._validate_input(plan, input)
        run_id = run_id or uuid.uuid4().hex
        scope_d = {k: str(v) for k, v in (scope or {}).items()}
        journal = self.journal
        if journal is not None:
            input_json = value.model_dump_json() if isinstance(value, BaseModel) else json.dumps(value)
            journal.begin_run(run_id, plan.name, process, scope_d, input_json)
        return await self._go(plan, value, run_id, scope_d, process, None, commit)

    async def resume(self, run_id: str, *, commit: bool = True) -> RunResult:
        """Continue a journaled run: completed nodes are replayed from the journal, the rest run."""
        journal = self.journal
        if journal is None:
            raise UsageError("resume needs a journal (Executor(..., journal=True))")
        record = journal.load(run_id)
        plan: Plan = self.registry.plan(record.graph)
        value = self._validate_input(plan, record.input)
        if record.status == "succeeded":
            raise RunError("the run already succeeded; nothing to resume", run_id=run_id)
        journal.begin_run(run_id, plan.name, record.process, record.scope, None)
        return await self._go(plan, value, run_id, record.scope, record.process, record.nodes, commit)

    def _validate_input(self, plan: Plan, input: Any) -> Any:
        if plan.input_model is None:
            return input
        if isinstance(input, plan.input_model):
            return input
        try:
            return plan.input_model.model_validate(input if input is not None else {})
        except ValidationError as exc:
            raise RunError(f"input does not validate against {plan.input_model.__name__}: {exc}",
                           node_path=plan.name) from None

    async def _go(self, plan: Plan, value: Any, run_id: str, scope: dict[str, str], process: str | None,
                  replay: dict[str, str] | None, commit: bool) -> RunResult:
        sink = self.sink
        if sink is not None:
            with tracing.trace_to(sink):
                return await self._traced(plan, value, run_id, scope, process, replay, commit)
        return await self._traced(plan, value, run_id, scope, process, replay, commit)

    async def _traced(self, plan: Plan, value: Any, run_id: str, scope: dict[str, str], process: str | None,
                      replay: dict[str, str] | None, commit: bool) -> RunResult:
        journal = self.journal
        staging = Staging(self.store, scope)
        run = _Run(run_id, self.registry, staging, journal, replay)
        run_token = tracing.current_run_id.set(run_id)
        path_token = tracing.current_node_path.set(plan.name)
        if run.tracing:
            tracing.emit("run_start", {"graph": plan.name, "process": process, "scope": scope,
                                       "input": _jsonable(value), "resumed": replay is not None})
        frame = _Frame(plan, run, plan.name, value)
        status, error = "failed", None
        try:
            output = await frame.execute()
            writes: list[tuple[str, str]] = []
            if commit and staging.ops:
                if journal is not None:
                    await journal.aflush()  # every output the commit used is durable first
                    marker = self._marker()
                    already = await self.store.collection(marker).get({}, run_id)
                    if already is None:
                        writes = await staging.commit((marker, run_id))
                else:
                    writes = await staging.commit()
            status = "succeeded"
        except asyncio.CancelledError:
            status, error = "cancelled", "cancelled"
            raise RunCancelled("the run was cancelled; nothing was committed", node_path=plan.name,
                               run_id=run_id) from None
        except MemoryConflict as exc:
            status, error = "conflict", str(exc)
            raise
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if journal is not None:
                journal.end_run(run_id, status, error)
                await asyncio.shield(journal.aflush())
            if run.tracing:
                end: dict[str, Any] = {"graph": plan.name, "process": process, "status": status, "error": error}
                if status == "succeeded":
                    end["output"] = _jsonable(output)
                tracing.emit("run_end", end)  # the SQLite sink queues its write on its own thread
            tracing.current_node_path.reset(path_token)
            tracing.current_run_id.reset(run_token)
        outputs = {n.name: o for n, o in zip(plan.nodes, frame.outputs, strict=True) if o is not _SKIPPED and o is not _PENDING}
        skipped = [n.name for n, o in zip(plan.nodes, frame.outputs, strict=True) if o is _SKIPPED]
        return RunResult(run_id, plan.name, output, outputs, skipped, writes, run.replayed)

    def run_sync(self, graph: str | Graph, input: Any = None, **kwargs: Any) -> RunResult:
        from chainkit._sync import run_sync

        return run_sync(self.run(graph, input, **kwargs))
