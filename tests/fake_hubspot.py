"""A small in-process HubSpot for the defects the sandbox cannot show: answers that drop
the echoes a loader leans on, errors that name no input, a refused properties read, an
endpoint that vanishes mid-job. It plugs in at httpx's seam (`Runtime(transport=...)`).

It is deliberately minimal: calls only, one unique id property, `hs_call_status` checked
against HubSpot's options, everything else taken as it comes. Each knob is one way a real
HubSpot answer (or an independent fake of it) may differ from what the sandbox does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

STATUSES = ("BUSY", "CALLING_CRM_USER", "CANCELED", "COMPLETED", "CONNECTING", "FAILED",
            "IN_PROGRESS", "NO_ANSWER", "QUEUED", "RINGING")

PROPERTIES: list[dict[str, Any]] = [
    {"name": "external_call_id", "type": "string", "hasUniqueValue": True},
    {"name": "hs_timestamp", "type": "datetime", "hasUniqueValue": False},
    {"name": "hs_call_title", "type": "string", "hasUniqueValue": False},
    {"name": "hs_call_body", "type": "string", "hasUniqueValue": False},
    {"name": "hs_call_direction", "type": "enumeration", "hasUniqueValue": False,
     "options": [{"value": "INBOUND", "label": "Inbound"}, {"value": "OUTBOUND", "label": "Outbound"}]},
    {"name": "hs_call_status", "type": "enumeration", "hasUniqueValue": False,
     "options": [{"value": s, "label": s.title()} for s in STATUSES]},
    {"name": "hs_call_duration", "type": "number", "hasUniqueValue": False},
    {"name": "hs_call_from_number", "type": "string", "hasUniqueValue": False},
    {"name": "hs_call_to_number", "type": "string", "hasUniqueValue": False},
    {"name": "hubspot_owner_id", "type": "enumeration", "hasUniqueValue": False, "referencedObjectType": "OWNER"},
    {"name": "hs_call_recording_url", "type": "string", "hasUniqueValue": False},
    {"name": "hs_call_disposition", "type": "enumeration", "hasUniqueValue": False},
]


@dataclass
class FakeHubSpot(httpx.BaseTransport):
    """Knobs (all off: a well-behaved HubSpot that answers partial batches with 207)."""

    echo_trace_ids: bool = True  # results carry objectWriteTraceId
    echo_id_property: bool = True  # results' properties carry the idProperty value
    error_context: bool = True  # errors carry context.objectWriteTraceId
    properties_status: int = 200  # 403: the token lacks the schema scope
    unique: frozenset[str] = frozenset({"external_call_id"})  # what counts as hasUniqueValue
    conflict_ids: frozenset[str] = frozenset()  # ids whose write conflicts with another record
    token_in_messages: str | None = None  # a (buggy) HubSpot echoing the Authorization token
    # (n, status): the n-th upsert request (1-based) answers `status` with a JSON error body.
    fail_request: tuple[int, int] | None = None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"object_id", "props"}
    upserts: int = 0
    writes: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    on_upsert: Callable[[int], None] | None = None  # called with the request number, before answering
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 70_000_000_001

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append((request.method, request.url.path))
        path = request.url.path
        if request.method == "GET" and path.startswith(("/crm/v3/properties/", "/crm/properties/2026-03/")):
            if self.properties_status != 200:
                return _json(self.properties_status, {
                    "status": "error", "category": "MISSING_SCOPES",
                    "message": "This app hasn't been granted all required scopes to make this call."})
            return _json(200, {"results": PROPERTIES})
        if request.method == "GET" and path.startswith(("/crm/v3/owners", "/crm/owners/2026-03")):
            return _json(200, {"results": [{"id": "10007919", "email": "owner-001@example.com", "archived": False}]})
        if request.method == "POST" and path.endswith("/batch/upsert"):
            with self._lock:
                self.upserts += 1
                n = self.upserts
            if self.on_upsert is not None:
                self.on_upsert(n)
            if self.fail_request is not None and self.fail_request[0] == n:
                status = self.fail_request[1]
                return _json(status, {"status": "error", "category": "OBJECT_NOT_FOUND",
                                      "message": f"HTTP {status}: no such endpoint"})
            return self._upsert(json.loads(request.content))
        return _json(404, {"status": "error", "message": "not found", "category": "OBJECT_NOT_FOUND"})

    def _upsert(self, body: dict[str, Any]) -> httpx.Response:
        inputs = body["inputs"]
        id_property = inputs[0].get("idProperty")
        if id_property not in self.unique:
            return _json(400, {"status": "error", "category": "VALIDATION_ERROR",
                               "message": f"Unable to perform update/upsert by non-unique 0-48 property {id_property}"})
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        with self._lock:
            for inp in inputs:
                trace = inp.get("objectWriteTraceId")
                props = inp["properties"]
                status = props.get("hs_call_status")
                context = {"objectWriteTraceId": [trace]} if self.error_context and trace else None
                if status is not None and status not in STATUSES:
                    message = (
                        'Property values were not valid: [{"isValid":false,"message":"'
                        f"{status} was not one of the allowed options"
                        '","error":"INVALID_OPTION","name":"hs_call_status"}]'
                    )
                    if self.token_in_messages:
                        message += f" (request by {self.token_in_messages})"
                    errors.append(_error("VALIDATION_ERROR", message, context))
                    continue
                if inp["id"] in self.conflict_ids:
                    errors.append(_error("CONFLICT", "Call already exists. Existing ID: 12345", context))
                    continue
                record = self.records.get(inp["id"])
                created = record is None
                if record is None:
                    record = self.records[inp["id"]] = {"object_id": str(self._next_id), "props": {}}
                    self._next_id += 1
                record["props"].update(props)
                self.writes[inp["id"]] = self.writes.get(inp["id"], 0) + 1
                shown = {k: v for k, v in record["props"].items()}
                if self.echo_id_property:
                    shown[id_property] = inp["id"]
                result: dict[str, Any] = {
                    "id": record["object_id"], "new": created, "archived": False,
                    "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-01T00:00:00.000Z",
                    "properties": shown,
                }
                if self.echo_trace_ids and trace:
                    result["objectWriteTraceId"] = trace
                results.append(result)
        out: dict[str, Any] = {"status": "COMPLETE", "results": results,
                               "startedAt": "2024-01-01T00:00:00.000Z", "completedAt": "2024-01-01T00:00:00.100Z"}
        if errors:
            out["numErrors"] = len(errors)
            out["errors"] = errors
        return _json(207 if errors else 200, out)


def _error(category: str, message: str, context: dict[str, list[str]] | None) -> dict[str, Any]:
    error: dict[str, Any] = {"status": "error", "category": category, "message": message}
    if context is not None:
        error["context"] = context
    return error


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(),
                          headers={"content-type": "application/json;charset=utf-8"})


class Passthrough(httpx.BaseTransport):
    """Forward to a real server (the sandbox) except where `intercept` answers first."""

    def __init__(self, intercept: Callable[[httpx.Request], httpx.Response | None]) -> None:
        self._inner = httpx.HTTPTransport()
        self._intercept = intercept

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self._intercept(request)
        return answer if answer is not None else self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
