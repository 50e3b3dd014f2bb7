"""Test-suite settings shared by every test module."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from chainkit.backends.openai import OpenAICompatibleBackend
from tests._openai_server import ScriptedServer

# CI replays the same generated examples on every run (a submission must not land or fail by chance);
# local runs keep drawing new ones, which is how the fuzz tests find new bugs.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    """Start scripted OpenAI-compatible servers on 127.0.0.1; all are stopped after the test."""
    servers: list[ScriptedServer] = []

    def start(script: Any = None) -> ScriptedServer:
        server = ScriptedServer(script).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
async def make_backend() -> AsyncIterator[Callable[..., OpenAICompatibleBackend]]:
    """Backends for a scripted server, with tiny backoff so retry tests stay fast; closed after the test."""
    made: list[OpenAICompatibleBackend] = []

    def make(server: ScriptedServer, **options: Any) -> OpenAICompatibleBackend:
        options = {"backoff_initial": 0.001, "backoff_max": 0.01, "max_retries": 3, "read_timeout": 5.0, **options}
        backend = OpenAICompatibleBackend(server.base_url, "test-model", **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()
