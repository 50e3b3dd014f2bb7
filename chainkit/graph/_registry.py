"""The registry: names -> tools, Python functions, memories, models and graphs.

Graphs are pure data and name everything they use; the registry resolves those names when a graph
is compiled (validated and planned), so the same graph can come from YAML or from Python.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, create_model

from chainkit.errors import DefinitionError
from chainkit.graph._spec import Graph


@dataclass(slots=True)
class FunctionInfo:
    """A registered Python function. With `input_model` the function receives one model instance;
    otherwise its parameters (type hints) form the input model and it is called with keywords.
    A `blocking` function (file or network I/O, heavy CPU) runs in a worker thread, never on the loop."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    input_model: type[BaseModel]
    output_type: Any
    takes_model: bool
    output_adapter: TypeAdapter[Any]
    blocking: bool = False


def _function_info(
    name: str, fn: Callable[..., Any], input_model: type[BaseModel] | None, output_model: Any,
    blocking: bool = False,
) -> FunctionInfo:
    if not callable(fn):
        raise DefinitionError(f"function {name!r} is not callable", path=f"functions.{name}")
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: treat as Any
        hints = {}
    takes_model = input_model is not None
    if input_model is None:
        fields: dict[str, Any] = {}
        for param in inspect.signature(fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            annotation = hints.get(param.name, Any)
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (annotation, default)
        input_model = create_model(  # type: ignore[call-overload]
            f"{name}_input", __config__=ConfigDict(arbitrary_types_allowed=True), **fields
        )
    output_type = output_model if output_model is not None else hints.get("return", Any)
    if output_type is None or output_type is type(None):
        output_type = type(None)
    return FunctionInfo(
        name=name,
        fn=fn,
        is_async=inspect.iscoroutinefunction(fn),
        input_model=input_model,
        output_type=output_type,
        takes_model=takes_model,
        output_adapter=TypeAdapter(output_type),
        blocking=blocking,
    )


class Registry:
    """Maps names to the parts graphs use. An `App` is built over one registry."""

    def __init__(self) -> None:
        self.tools: dict[str, Any] = {}
        self.functions: dict[str, FunctionInfo] = {}
        self.memories: dict[str, Any] = {}
        self.models: dict[str, type[BaseModel]] = {}
        self.graphs: dict[str, Graph] = {}
        self._plans: dict[str, Any] = {}

    # -- registration ------------------------------------------------------------------------------

    def _changed(self) -> None:
        self._plans.clear()

    def add_tool(self, tool: Any, name: str | None = None) -> Any:
        name = name or tool.name
        self.tools[name] = tool
        self._changed()
        return tool

    def register_function(
        self,
        name: str,
        fn: Callable[..., Any],
        input_model: type[BaseModel] | None = None,
        output_model: Any = None,
        *,
        blocking: bool = False,
    ) -> Callable[..., Any]:
        self.functions[name] = _function_info(name, fn, input_model, output_model, blocking)
        self._changed()
        return fn

    def function(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        input_model: type[BaseModel] | None = None,
        output_model: Any = None,
        blocking: bool = False,
    ) -> Any:
        """Decorator: `@registry.function` or `@registry.function(name="x", blocking=True)`."""

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            return self.register_function(name or f.__name__, f, input_model, output_model, blocking=blocking)

        return register(fn) if fn is not None else register

    def add_memory(self, spec: Any) -> Any:
        self.memories[spec.name] = spec
        self._changed()
        return spec

    def add_model(self, model: type[BaseModel], name: str | None = None) -> type[BaseModel]:
        self.models[name or model.__name__] = model
        self._changed()
        return model

    def add_graph(self, graph: Graph, *, validate: bool = True) -> Graph:
        """Register a graph; validates it (and everything it uses) unless `validate=False`."""
        self.graphs[graph.name] = graph
        self._changed()
        if validate:
            self.plan(graph.name)
        return graph

    # -- lookup ------------------------------------------------------------------------------------

    def input_model(self, graph: Graph) -> type[BaseModel] | None:
        if graph.input is None or isinstance(graph.input, type):
            return graph.input
        return self.models.get(graph.input)

    def plan(self, graph: str | Graph) -> Any:
        """The validated, compiled plan of a graph (cached). Raises DefinitionError with every error."""
        from chainkit.graph._validate import compile_graph

        if isinstance(graph, Graph):
            registered = self.graphs.get(graph.name)
            if registered is not graph:
                return compile_graph(graph, self, {})
            name = graph.name
        else:
            name = graph
            if name not in self.graphs:
                raise DefinitionError(f"no graph named {name!r} (registered: {', '.join(self.graphs) or 'none'})")
        plan = self._plans.get(name)
        if plan is None:
            plan = self._plans[name] = compile_graph(self.graphs[name], self, self._plans)
        return plan
