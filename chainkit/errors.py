"""Every error chainkit raises, as one tree.

    ChainkitError
    ├── UsageError                  the API was called the wrong way (e.g. sync facade inside a loop)
    ├── DefinitionError             a tool, memory, graph or app definition is invalid (file:line:col, key path)
    ├── BackendError                a model backend failed; never fed back into a prompt
    │   ├── BackendUnavailable      missing optional extra, model file not found, server unreachable
    │   ├── TransportError          connection failures after all retries
    │   │   └── BackendTimeout      a connect/read timeout after all retries
    │   ├── RateLimited             429 after all retries
    │   ├── ServerError             5xx after all retries
    │   ├── AuthenticationError     401 / 403
    │   └── BadRequest              400, with the server's message
    │       └── ContextLengthExceeded
    ├── ToolError                   a tool call failed (names the tool)
    │   ├── RenderError             a prompt template failed to render
    │   ├── BudgetExceeded          the rendered prompt does not fit the tool's token budget
    │   └── ToolOutputError         no attempt produced a valid output; carries every attempt
    ├── MemoryStoreError            a memory operation failed (names memory and scope)
    │   ├── ScopeError              an operation named a scope the memory does not have
    │   ├── MemoryConflict          optimistic version check failed: someone wrote first
    │   └── SchemaMismatch          a stored record no longer validates (names the field)
    └── RunError                    a graph or process run failed (names the node path)
        ├── NodeTimeout             a node ran past its timeout
        └── RunCancelled            the run was cancelled; nothing was committed

This module imports nothing of chainkit's own.
"""

from __future__ import annotations

from typing import Any


class ChainkitError(Exception):
    """Base of every chainkit error."""


class UsageError(ChainkitError):
    """The API was used in a way it does not support."""


class DefinitionError(ChainkitError):
    """A definition is invalid. Carries where: file, line, column, key path."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
        errors: list[DefinitionError] | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.errors = errors or []
        super().__init__(self.location_text() + message)

    def location_text(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
        if self.path:
            where = f"{where} {self.path}" if where else self.path
        return f"{where}: " if where else ""


class BackendError(ChainkitError):
    """A model backend failed."""

    def __init__(self, message: str, *, backend: str | None = None, status: int | None = None) -> None:
        self.backend = backend
        self.status = status
        prefix = f"[{backend}] " if backend else ""
        super().__init__(prefix + message)


class BackendUnavailable(BackendError):
    pass


class TransportError(BackendError):
    pass


class BackendTimeout(TransportError):
    pass


class RateLimited(BackendError):
    pass


class ServerError(BackendError):
    pass


class AuthenticationError(BackendError):
    pass


class BadRequest(BackendError):
    pass


class ContextLengthExceeded(BadRequest):
    pass


class ToolError(ChainkitError):
    """A tool call failed."""

    def __init__(self, message: str, *, tool: str | None = None) -> None:
        self.tool = tool
        super().__init__(f"tool {tool!r}: {message}" if tool else message)


class RenderError(ToolError):
    pass


class BudgetExceeded(ToolError):
    def __init__(self, message: str, *, tool: str | None = None, tokens: int = 0, budget: int = 0) -> None:
        self.tokens = tokens
        self.budget = budget
        super().__init__(message, tool=tool)


class ToolOutputError(ToolError):
    """Every attempt failed validation. `attempts` holds each raw text and its error."""

    def __init__(self, message: str, *, tool: str | None = None, attempts: list[Any] | None = None) -> None:
        self.attempts = attempts or []
        super().__init__(message, tool=tool)


class MemoryStoreError(ChainkitError):
    """A memory operation failed."""

    def __init__(self, message: str, *, memory: str | None = None, scope: Any = None) -> None:
        self.memory = memory
        self.scope = scope
        where = ""
        if memory:
            where = f"memory {memory!r}"
            if scope is not None:
                where += f" scope {scope!r}"
            where += ": "
        super().__init__(where + message)


class ScopeError(MemoryStoreError):
    pass


class MemoryConflict(MemoryStoreError):
    pass


class SchemaMismatch(MemoryStoreError):
    def __init__(self, message: str, *, memory: str | None = None, scope: Any = None, field: str | None = None) -> None:
        self.field = field
        super().__init__(message, memory=memory, scope=scope)


class RunError(ChainkitError):
    """A graph or process run failed at `node_path` (e.g. 'interaction/grade/attempt 2')."""

    def __init__(self, message: str, *, node_path: str | None = None, run_id: str | None = None) -> None:
        self.node_path = node_path
        self.run_id = run_id
        super().__init__(f"{node_path}: {message}" if node_path else message)


class NodeTimeout(RunError):
    pass


class RunCancelled(RunError):
    pass


__all__ = [
    "AuthenticationError",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BadRequest",
    "BudgetExceeded",
    "ChainkitError",
    "ContextLengthExceeded",
    "DefinitionError",
    "MemoryConflict",
    "MemoryStoreError",
    "NodeTimeout",
    "RateLimited",
    "RenderError",
    "RunCancelled",
    "RunError",
    "SchemaMismatch",
    "ScopeError",
    "ServerError",
    "ToolError",
    "ToolOutputError",
    "TransportError",
    "UsageError",
]
