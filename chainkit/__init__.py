"""chainkit: long-running LLM applications from declarative typed tools and typed memories.

    import chainkit as ck

    grade = ck.Tool(ck.ToolSpec(name="grade", input=GradeIn, output=GradeOut, user="..."))
    result = await grade(question="2+2?", answer="4")      # or grade.run_sync(...)

Everything public is importable from here; the subpackages (`chainkit.memory`, `chainkit.graph`,
`chainkit.backends`, `chainkit.testing`, `chainkit.loader`) hold the same names plus their details.
"""

from __future__ import annotations

from chainkit._sync import run_sync
from chainkit.app import App, Process, Trigger, Turn, after, every, on_message, when
from chainkit.backends import (
    Backend,
    Capabilities,
    Completion,
    CompletionRequest,
    ModelSettings,
    Usage,
    close_backends,
    register_backend,
    resolve_backend,
)
from chainkit.backends.fake import FakeBackend
from chainkit.backends.fallback import FallbackBackend
from chainkit.backends.local import LocalBackend
from chainkit.backends.openai import OpenAICompatibleBackend
from chainkit.errors import (
    AuthenticationError,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    BudgetExceeded,
    ChainkitError,
    ContextLengthExceeded,
    DefinitionError,
    MemoryConflict,
    MemoryStoreError,
    NodeTimeout,
    RateLimited,
    RenderError,
    RunCancelled,
    RunError,
    SchemaMismatch,
    ScopeError,
    ServerError,
    ToolError,
    ToolOutputError,
    TransportError,
    UsageError,
)
from chainkit.graph import (
    Executor,
    FunctionNode,
    Graph,
    LoopSpec,
    MapNode,
    MemoryReadNode,
    MemoryWriteNode,
    Registry,
    RetryPolicy,
    RunResult,
    SubgraphNode,
    ToolNode,
)
from chainkit.loader import LoadedApp, load_app, load_file, load_memory_file, load_tool_file
from chainkit.memory import (
    Collection,
    Document,
    Log,
    LogEntry,
    MemorySpec,
    Scope,
    SQLiteStore,
    Store,
    Versioned,
    open_store,
)
from chainkit.tools import Attempt, Tool, ToolResult, ToolSpec, tool

__version__ = "0.1.0"

__all__ = [
    "App", "Attempt", "AuthenticationError", "Backend", "BackendError", "BackendTimeout", "BackendUnavailable",
    "BadRequest", "BudgetExceeded", "Capabilities", "ChainkitError", "Collection", "Completion",
    "CompletionRequest", "ContextLengthExceeded", "DefinitionError", "Document", "Executor", "FakeBackend",
    "FallbackBackend", "FunctionNode", "Graph", "LoadedApp", "LocalBackend", "Log", "LogEntry", "LoopSpec",
    "MapNode", "MemoryConflict", "MemoryReadNode", "MemorySpec", "MemoryStoreError", "MemoryWriteNode",
    "ModelSettings", "NodeTimeout", "OpenAICompatibleBackend", "Process", "RateLimited", "Registry",
    "RenderError", "RetryPolicy", "RunCancelled", "RunError", "RunResult", "SQLiteStore", "SchemaMismatch",
    "Scope", "ScopeError", "ServerError", "Store", "SubgraphNode", "Tool", "ToolError", "ToolNode",
    "ToolOutputError", "ToolResult", "ToolSpec", "TransportError", "Trigger", "Turn", "Usage", "UsageError",
    "Versioned", "after", "close_backends", "every", "load_app", "load_file", "load_memory_file",
    "load_tool_file", "on_message", "open_store", "register_backend", "resolve_backend", "run_sync", "tool",
    "when",
]
