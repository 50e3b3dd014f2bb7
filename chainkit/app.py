"""Processes and apps: graphs with triggers over shared memories.

A `Process` is a graph plus a `Trigger`:

    on_message()                 each incoming message (`App.send`)
    after("interaction")         each successful run of another process
    every(3, "interaction")      every 3rd successful run of another process (per scope, counted in the
                                 store, so it keeps counting across restarts)
    when("${output.score} < 0.5", after="interaction")
                                 after each run of that process, if the condition holds; the condition
                                 reads ${input.*} / ${output.*} of that run and ${memory.<document>.*}

The writes of one process run are staged and committed atomically when the run succeeds, with
optimistic version checks (see `chainkit.graph`). A process run that loses a version race
(`MemoryConflict`) is run again on fresh data, at most `max_conflict_reruns` times. A process with
`background=True` runs while `send` returns (the tutor's reflection); `drain()` waits for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chainkit import tracing
from chainkit.errors import DefinitionError, MemoryConflict, RunError, UsageError
from chainkit.graph._executor import Executor, RunResult
from chainkit.graph._expr import ExprSyntaxError, compile_expression
from chainkit.graph._refs import MissingValue, Ref, RefSyntaxError, compile_mapping, follow
from chainkit.graph._registry import Registry
from chainkit.graph._spec import Source


class Trigger(BaseModel):
    """When a process runs. Pure data (see module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    on: Literal["message", "after", "every", "when"]
    process: str | None = None
    k: int | None = Field(None, ge=1)
    condition: str | None = None


def on_message() -> Trigger:
    return Trigger(on="message")


def after(process: str) -> Trigger:
    return Trigger(on="after", process=process)


def every(k: int, process: str) -> Trigger:
    return Trigger(on="every", process=process, k=k)


def when(condition: str, *, after: str) -> Trigger:
    return Trigger(on="when", process=after, condition=condition)


class Process(BaseModel):
    """A graph with a trigger. `inputs` maps graph input fields to references over the trigger's
    `${input.*}` (the message, or the triggering run's input) and `${output.*}` (the triggering run's
    output); without it the message (or the triggering run's output) is the input."""

    model_config = ConfigDict(extra="forbid")
    name: str
    graph: str
    trigger: Trigger = Field(default_factory=on_message)
    inputs: dict[str, Any] | None = None
    background: bool = False
    max_conflict_reruns: int = Field(3, ge=0, le=100)
    source: Source | None = Field(None, exclude=True)


@dataclass(slots=True)
class Turn:
    """What one `send` produced: each foreground process's output and run id."""

    outputs: dict[str, Any] = field(default_factory=dict)
    run_ids: dict[str, str] = field(default_factory=dict)
    background: list[str] = field(default_factory=list)  # background processes started

    @property
    def output(self) -> Any:
        """The output of the first process that ran."""
        return next(iter(self.outputs.values()), None)


class _TriggerResolver:
    __slots__ = ("input", "output", "docs")

    def __init__(self, input: Any, output: Any, docs: dict[str, Any]) -> None:
        self.input, self.output, self.docs = input, output, docs

    def __call__(self, ref: Ref) -> Any:
        if ref.root == "input":
            return follow(self.input, ref.path) if ref.path else self.input
        if ref.root == "output":
            return follow(self.output, ref.path) if ref.path else self.output
        if ref.root == "memory":
            value = self.docs.get(ref.target)
            if value is None and ref.has_default:
                return ref.default
            return follow(value, ref.path) if ref.path else value
        raise MissingValue(f"{ref} is not available in a process trigger")


def _plain(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


class App:
    """Processes over shared memories in one store. Async API with a sync facade (`*_sync`)."""

    def __init__(
        self,
        registry: Registry,
        *,
        store: Any = None,
        processes: list[Process] = (),  # type: ignore[assignment]
        journal: bool = True,
        trace: bool | Any = True,
    ) -> None:
        self.registry = registry
        self._store_arg = store
        self.store: Any = None if isinstance(store, (str, Path)) else store
        self._owns_store = isinstance(store, (str, Path))
        self._journal = journal
        self._trace = trace
        self.processes: dict[str, Process] = {}
        self.executor: Executor | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._failures: list[BaseException] = []
        self._count_spec: Any = None
        self._conditions: dict[str, Any] = {}
        self._input_maps: dict[str, Any] = {}
        for process in processes:
            if process.name in self.processes:
                raise DefinitionError(f"process {process.name!r} is defined twice",
                                      path=f"processes.{process.name}")
            self.processes[process.name] = process
        self.validate()  # all at once: triggers may name processes defined later in the list

    # -- definition --------------------------------------------------------------------------------

    def add_process(self, process: Process) -> Process:
        if process.name in self.processes:
            raise DefinitionError(f"process {process.name!r} is defined twice", path=f"processes.{process.name}")
        self.processes[process.name] = process
        try:
            self.validate()
        except DefinitionError:
            del self.processes[process.name]
            raise
        return process

    def validate(self) -> None:
        """Check every process: its graph, its trigger (named processes exist, no trigger cycles)."""
        errors: list[DefinitionError] = []

        def err(process: Process, message: str, key: str = "") -> None:
            src = process.source
            errors.append(DefinitionError(f"process {process.name!r}: {message}", path=f"processes.{process.name}"
                                          + (f".{key}" if key else ""), file=src.file if src else None,
                                          line=src.line if src else None, column=src.col if src else None))

        for p in self.processes.values():
            try:
                self.registry.plan(p.graph)
            except DefinitionError as exc:
                err(p, f"graph {p.graph!r}: {exc}", "graph")
            t = p.trigger
            if t.on != "message":
                if not t.process:
                    err(p, f"trigger {t.on!r} needs a process", "trigger")
                elif t.process not in self.processes:
                    err(p, f"trigger names unknown process {t.process!r}", "trigger.process")
            if t.on == "every" and not t.k:
                err(p, "trigger every needs k", "trigger.k")
            if t.on == "when":
                try:
                    expr = compile_expression(t.condition or "")
                    for ref in expr.refs:
                        if ref.root not in ("input", "output", "memory"):
                            raise ExprSyntaxError(f"{ref}: a trigger condition reads input, output or memory")
                        if ref.root == "memory":
                            spec = self.registry.memories.get(ref.target)
                            if spec is None or spec.kind != "document":
                                raise ExprSyntaxError(f"{ref}: no document memory {ref.target!r}")
                    self._conditions[p.name] = expr
                except (ExprSyntaxError, RefSyntaxError) as exc:
                    err(p, f"bad condition {t.condition!r}: {exc}", "trigger.condition")
            if p.inputs is not None:
                try:
                    self._input_maps[p.name] = compile_mapping(p.inputs)
                except RefSyntaxError as exc:
                    err(p, str(exc), "inputs")
        # trigger cycles: a -> b means b runs after a
        for p in self.processes.values():
            seen, current = {p.name}, p
            while current.trigger.on != "message" and current.trigger.process in self.processes:
                nxt = current.trigger.process
                if nxt in seen:
                    err(p, f"trigger cycle through {nxt!r}", "trigger")
                    break
                seen.add(nxt)
                current = self.processes[nxt]
        if errors:
            if len(errors) == 1:
                raise errors[0]
            raise DefinitionError(f"{len(errors)} errors in app:\n" + "\n".join(f"  - {e}" for e in errors),
                                  errors=errors)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> App:
        if self.executor is not None:
            return self
        if self.store is None:
            if self._store_arg is None:
                raise UsageError("App needs a store (a SQLite path or an open store)")
            from chainkit.memory import open_store

            self.store = await open_store(str(self._store_arg))
        self.executor = Executor(self.registry, store=self.store, journal=self._journal, trace=self._trace)
        return self

    async def close(self, timeout: float | None = None) -> None:
        """Wait for background runs (at most `timeout` seconds, see `drain`), then release the journal,
        trace sink and (owned) store."""
        try:
            await self.drain(timeout)
        finally:
            if self.executor is not None:
                await self.executor.close()
                self.executor = None
            if self._owns_store and self.store is not None:
                await self.store.close()
                self.store = None

    async def __aenter__(self) -> App:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until no background run is left; raise the first background failure, if any.

        With `timeout` (seconds), background runs still going when it expires are cancelled -- a
        cancelled run commits nothing -- and `RunError` names them.
        """
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while self._background:
            pending = list(self._background)
            left = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if left is not None and left <= 0:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                names = sorted({task.get_name() for task in pending})
                raise RunError(f"background runs still going after {timeout} s were cancelled "
                               f"(nothing of theirs was committed): {', '.join(names)}")
            await asyncio.wait(pending, timeout=left)
        if self._failures:
            first = self._failures[0]
            self._failures.clear()
            raise first

    # -- running -----------------------------------------------------------------------------------

    def _executor(self) -> Executor:
        if self.executor is None:
            raise UsageError("the app is not open (use `async with app:` or `await app.open()`)")
        return self.executor

    async def send(self, message: Any, *, scope: Mapping[str, Any]) -> Turn:
        """Handle one incoming message: run the on_message processes (foreground ones awaited, in order),
        then whatever their runs trigger."""
        self._executor()
        turn = Turn()
        for p in self.processes.values():
            if p.trigger.on == "message":
                await self._start(p, message, None, scope, turn)
        return turn

    async def run_process(self, name: str, input: Any, *, scope: Mapping[str, Any]) -> RunResult:
        """Run one process now (re-running it on a version conflict), then what it triggers."""
        p = self.processes.get(name)
        if p is None:
            raise UsageError(f"no process named {name!r}")
        result = await self._run_with_reruns(p, input, scope)
        await self._cascade(p, input, result, scope, Turn())
        return result

    async def resume(self, run_id: str) -> RunResult:
        """Resume a run interrupted by a crash: journaled nodes are replayed, the rest run, then it commits."""
        return await self._executor().resume(run_id)

    def _graph_input(self, p: Process, event_input: Any, event_output: Any) -> Any:
        if p.inputs is not None:
            return self._input_maps[p.name](_TriggerResolver(_plain(event_input), _plain(event_output), {}))
        value = event_input if p.trigger.on == "message" else event_output
        plan = self.registry.plan(p.graph)
        if isinstance(value, str) and plan.input_model is not None and "message" in plan.input_model.model_fields:
            return {"message": value}
        return _plain(value)

    async def _start(self, p: Process, event_input: Any, event_output: Any, scope: Mapping[str, Any],
                     turn: Turn) -> None:
        graph_input = self._graph_input(p, event_input, event_output)
        if p.background:
            turn.background.append(p.name)
            task = asyncio.get_running_loop().create_task(self._background_run(p, graph_input, scope),
                                                          name=p.name)
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return
        result = await self._run_with_reruns(p, graph_input, scope)
        turn.outputs[p.name] = result.output
        turn.run_ids[p.name] = result.run_id
        await self._cascade(p, graph_input, result, scope, turn)

    async def _background_run(self, p: Process, graph_input: Any, scope: Mapping[str, Any]) -> None:
        try:
            result = await self._run_with_reruns(p, graph_input, scope)
            await self._cascade(p, graph_input, result, scope, Turn())
        except Exception as exc:  # kept for drain(); a background failure must not vanish
            self._failures.append(exc)

    async def _run_with_reruns(self, p: Process, graph_input: Any, scope: Mapping[str, Any]) -> RunResult:
        executor = self._executor()
        for attempt in range(p.max_conflict_reruns + 1):
            try:
                return await executor.run(p.graph, graph_input, scope=scope, process=p.name)
            except MemoryConflict as exc:
                if attempt == p.max_conflict_reruns:
                    raise RunError(f"process {p.name!r} lost {attempt + 1} version races in a row: {exc}",
                                   node_path=p.name) from exc
                tracing.emit("process_rerun", {"process": p.name, "attempt": attempt + 2, "reason": str(exc)})
        raise AssertionError("unreachable")

    async def _cascade(self, done: Process, graph_input: Any, result: RunResult, scope: Mapping[str, Any],
                       turn: Turn) -> None:
        count = None
        if any(p.trigger.on == "every" and p.trigger.process == done.name for p in self.processes.values()):
            count = await self._count_run(done.name, scope)
        for p in list(self.processes.values()):
            t = p.trigger
            if t.on == "message" or t.process != done.name:
                continue
            if t.on == "every" and count is not None and count % (t.k or 1):
                continue
            if t.on == "when" and not await self._condition(p, graph_input, result.output, scope):
                continue
            await self._start(p, graph_input, result.output, scope, turn)

    async def _count_run(self, process: str, scope: Mapping[str, Any]) -> int:
        """Count a successful run of `process` in `scope`, in the store: `every k` triggers keep counting
        across app restarts and worker processes (a crash between the run's commit and this count can
        lose one count)."""
        import json

        from chainkit.memory import Collection

        if self._count_spec is None:
            from pydantic import create_model

            model = create_model("chainkit_trigger_count", id=(str, ...), count=(int, 0))
            self._count_spec = Collection("chainkit_trigger_counts", model, scope="global", key="id")
        counts = self.store.collection(self._count_spec)
        key = f"{process}|{json.dumps({k: str(v) for k, v in sorted(scope.items())})}"
        while True:
            current = await counts.get({}, key)
            value = (current.value.count if current is not None else 0) + 1
            try:
                await counts.put({}, {"id": key, "count": value},
                                 expected_version=current.version if current is not None else 0)
                return value
            except MemoryConflict:
                continue  # another worker counted at the same time: count again on the fresh value

    async def _condition(self, p: Process, event_input: Any, event_output: Any, scope: Mapping[str, Any]) -> bool:
        expr = self._conditions[p.name]
        docs: dict[str, Any] = {}
        for ref in expr.refs:
            if ref.root == "memory" and ref.target not in docs:
                spec = self.registry.memories[ref.target]
                got = await self.store.document(spec).get(dict(scope))
                docs[ref.target] = got.value if got is not None else None
        try:
            return bool(expr.evaluate(_TriggerResolver(_plain(event_input), _plain(event_output), docs)))
        except Exception as exc:
            raise RunError(f"trigger condition {expr.text!r} failed: {exc}", node_path=p.name) from None

    # -- sync facade -------------------------------------------------------------------------------

    def open_sync(self) -> App:
        from chainkit._sync import run_sync

        return run_sync(self.open())

    def send_sync(self, message: Any, *, scope: Mapping[str, Any]) -> Turn:
        from chainkit._sync import run_sync

        return run_sync(self.send(message, scope=scope))

    def drain_sync(self, timeout: float | None = None) -> None:
        from chainkit._sync import run_sync

        run_sync(self.drain(timeout))

    def close_sync(self, timeout: float | None = None) -> None:
        from chainkit._sync import run_sync

        run_sync(self.close(timeout))

    def resume_sync(self, run_id: str) -> RunResult:
        from chainkit._sync import run_sync

        return run_sync(self.resume(run_id))


__all__ = ["App", "Process", "Trigger", "Turn", "after", "every", "on_message", "when"]
