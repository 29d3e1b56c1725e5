"""Shared test helpers: request builders, a fake clock, a client factory."""

from __future__ import annotations

from typing import Any

import httpx

from bulkload.sandbox import SandboxServer

TOKEN = "test-token"
UPSERT = "/crm/v3/objects/calls/batch/upsert"
JSON_TYPE = "application/json;charset=utf-8"


class FakeClock:
    """A clock tests move by hand (seconds since the epoch)."""

    def __init__(self, now: float = 1_714_557_600.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def call(n: int | str, trace: bool = True, **props: str) -> dict[str, Any]:
    """One valid upsert input keyed by external_call_id."""
    key = f"call-{n}" if isinstance(n, int) else n
    item: dict[str, Any] = {
        "idProperty": "external_call_id",
        "id": key,
        "properties": {
            "hs_timestamp": "2024-05-01T10:00:00.000Z",
            "hs_call_title": f"Call {n}",
            **props,
        },
    }
    if trace:
        item["objectWriteTraceId"] = f"trace-{key}"
    return item


def batch(*inputs: dict[str, Any]) -> dict[str, Any]:
    return {"inputs": list(inputs)}


def client_for(server: SandboxServer, token: str = TOKEN, **kwargs: Any) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, **kwargs
    )
