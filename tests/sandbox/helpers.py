"""Shared test helpers: request builders, a fake clock, a client factory."""

from __future__ import annotations

from typing import Any

import httpx

from bulkload.sandbox import SandboxProcess, SandboxServer

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


def client_for(
    server: SandboxServer | SandboxProcess, token: str = TOKEN, **kwargs: Any
) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, **kwargs
    )


# --- every object, both path families

V3 = "/crm/v3/objects"
DATED = "/crm/objects/2026-03"
ASSOC_V4 = "/crm/v4/associations"
ASSOC_DATED = "/crm/associations/2026-03"
OWNER_1 = "10007919"  # seeded owner 1: 10_000_000 + 7919 * 1


def owner(i: int) -> str:
    return str(10_000_000 + 7919 * i)


def seeded_contact_id(i: int) -> str:
    return str(1_000_000 + i)


def seeded_email(i: int) -> str:
    return f"contact-{i:05d}@example.com"


def upsert_path(obj: str = "calls", family: str = V3) -> str:
    return f"{family}/{obj}/batch/upsert"


def read_path(obj: str = "calls", family: str = V3) -> str:
    return f"{family}/{obj}/batch/read"


def assoc_path(from_obj: str, to_obj: str, action: str, family: str = ASSOC_V4) -> str:
    return f"{family}/{from_obj}/{to_obj}/batch/{action}"


def pair(from_id: str, to_id: str) -> dict[str, Any]:
    return {"from": {"id": from_id}, "to": {"id": to_id}}


def record(key: str, id_property: str, trace: str | None = None, **props: str) -> dict[str, Any]:
    """One upsert input of any object."""
    item: dict[str, Any] = {"idProperty": id_property, "id": key, "properties": dict(props)}
    if trace is not None:
        item["objectWriteTraceId"] = trace
    return item


def make_calls(client: httpx.Client, *keys: str) -> dict[str, str]:
    """Upsert calls by external_call_id; returns {key: record id}."""
    body = batch(*(call(k) for k in keys))
    response = client.post(UPSERT, json=body)
    assert response.status_code == 200, response.text
    return {r["properties"]["external_call_id"]: r["id"] for r in response.json()["results"]}
