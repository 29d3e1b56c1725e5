"""Fixtures: a sandbox on a free loopback port per test, and a client for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bulkload.sandbox import SandboxConfig, SandboxServer

from .helpers import TOKEN, client_for


@pytest.fixture
def start_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """start_sandbox(**config fields) -> a running SandboxServer, stopped after the test.

    Without `tokens`, the sandbox accepts only helpers.TOKEN.
    """
    servers: list[SandboxServer] = []

    def start(config: SandboxConfig | None = None, **fields: Any) -> SandboxServer:
        if config is None:
            fields.setdefault("tokens", (TOKEN,))
            config = SandboxConfig(**fields)
        server = SandboxServer(config).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox(start_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return start_sandbox()


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with client_for(sandbox) as c:
        yield c
