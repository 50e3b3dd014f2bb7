"""What users import to test their own chains offline.

    from chainkit.testing import FakeBackend, block_model_requests, block_network

    def test_grading():
        with block_model_requests():          # any call to a real backend raises UsageError
            tool = Tool(spec, backend=FakeBackend([{"score": 1, "feedback": "ok"}]))
            assert tool.run_sync(answer="4").output.score == 1

As a pytest plugin (`pytest_plugins = ["chainkit.testing"]` in your conftest.py) it also gives the
fixtures `fake_backend` (an unscripted FakeBackend) and `no_model_requests` (blocks real backends and any
network connection that leaves 127.0.0.1 for the test's duration).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

from chainkit.backends.base import request_gate
from chainkit.backends.fake import FakeBackend, example_from_schema
from chainkit.errors import UsageError


@contextlib.contextmanager
def block_model_requests() -> Iterator[None]:
    """Make every tool call to a real backend (OpenAI-compatible, local model) raise `UsageError`."""
    previous = request_gate.allowed
    request_gate.allowed = False
    try:
        yield
    finally:
        request_gate.allowed = previous


def _is_loopback(address: Any) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:
        return True  # unix sockets and the like stay on this machine
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost would need DNS: refuse


@contextlib.contextmanager
def block_network() -> Iterator[None]:
    """Refuse every socket connection that leaves the loopback interface."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def guarded_connect(sock: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            raise UsageError(f"network access to {address!r} is blocked in this test (chainkit.testing)")
        return original_connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            raise UsageError(f"network access to {address!r} is blocked in this test (chainkit.testing)")
        return original_connect_ex(sock, address)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]


try:  # fixtures only when pytest is around; the module stays importable without it
    import pytest

    @pytest.fixture
    def fake_backend() -> FakeBackend:
        return FakeBackend()

    @pytest.fixture
    def no_model_requests() -> Iterator[None]:
        with block_model_requests(), block_network():
            yield

except ImportError:  # pragma: no cover
    pass


__all__ = ["FakeBackend", "block_model_requests", "block_network", "example_from_schema"]
