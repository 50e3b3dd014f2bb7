"""Model backends and the model-string registry.

Model strings pick a backend:

    openai:gpt-4o-mini                                   OpenAI (key from OPENAI_API_KEY)
    openai-compatible:http://127.0.0.1:8080/v1#model     any OpenAI-compatible server
    local  |  local:/path/to/model.gguf                  the embedded llama.cpp model
    fake                                                 the deterministic fake backend

`CHAINKIT_MODEL` sets the default when a tool names none; with nothing set the default is `local`.
One backend instance is shared per model string in a process (one HTTP connection pool, one
loaded model).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from chainkit.backends.base import (
    Backend,
    Capabilities,
    Completion,
    CompletionRequest,
    Message,
    ModelSettings,
    Usage,
)
from chainkit.errors import DefinitionError

DEFAULT_MODEL = "local"

BackendFactory = Callable[[str], Backend]  # receives the part after "prefix:" ("" when absent)

_factories: dict[str, BackendFactory] = {}
_instances: dict[str, Backend] = {}
_lock = threading.Lock()


def register_backend(prefix: str, factory: BackendFactory) -> None:
    """Make `prefix:...` model strings build backends with `factory`."""
    _factories[prefix] = factory


def default_model() -> str:
    return os.environ.get("CHAINKIT_MODEL") or DEFAULT_MODEL


def resolve_backend(model: str | Backend | None = None) -> Backend:
    """The shared backend for a model string (or the backend itself, or the default)."""
    if isinstance(model, Backend):
        return model
    model = model or default_model()
    backend = _instances.get(model)
    if backend is not None:
        return backend
    with _lock:
        backend = _instances.get(model)
        if backend is None:
            prefix, _, rest = model.partition(":")
            factory = _factories.get(prefix) or _builtin_factory(prefix)
            if factory is None:
                known = ", ".join(sorted({*_factories, "openai", "openai-compatible", "local", "fake"}))
                raise DefinitionError(f"unknown model string {model!r}: the prefix must be one of {known}")
            backend = factory(rest)
            _instances[model] = backend
    return backend


def _builtin_factory(prefix: str) -> BackendFactory | None:
    # Imported lazily: a backend's dependencies load only when a model string asks for it.
    if prefix == "fake":
        from chainkit.backends.fake import FakeBackend

        return lambda rest: FakeBackend()
    if prefix in ("openai", "openai-compatible"):
        from chainkit.backends.openai import backend_from_model_string

        return lambda rest: backend_from_model_string(prefix, rest)
    if prefix == "local":
        from chainkit.backends.local import LocalBackend

        return lambda rest: LocalBackend(model_path=rest or None)
    return None


async def close_backends() -> None:
    """Close every shared backend (HTTP pools, loaded models)."""
    with _lock:
        backends = list(_instances.values())
        _instances.clear()
    for backend in backends:
        await backend.aclose()


__all__ = [
    "Backend",
    "Capabilities",
    "Completion",
    "CompletionRequest",
    "DEFAULT_MODEL",
    "Message",
    "ModelSettings",
    "Usage",
    "close_backends",
    "default_model",
    "register_backend",
    "resolve_backend",
]
