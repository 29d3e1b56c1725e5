"""The sandbox's HTTP face: a raw ASGI app (no framework, for speed) that routes
HubSpot's paths and the `/_sandbox/` admin paths.

For every API request, in order: latency, auth (401), rate limits (429),
method and object type (405/404), scopes (403), an injected fault, and the
handler. Every API answer after auth carries the rate-limit headers.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from bulkload.sandbox.config import LOST_RESPONSE_FAULTS, FaultKind
from bulkload.sandbox.faults import Fault, gateway_timeout, truncate
from bulkload.sandbox.state import SandboxState
from bulkload.sandbox.wire import (
    JSON_CONTENT_TYPE,
    ApiError,
    api_error,
    dumps,
    invalid_json,
    missing_scopes,
    not_found,
    rate_limited,
    unauthorized,
)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]

CALL_TYPES = frozenset({"calls", "0-48"})
WRITE_SCOPES = ["crm.objects.contacts.write"]  # the calls upsert's security scope (SPEC-calls)
SCHEMA_WRITE_SCOPES = ["crm.schemas.calls.write"]

_UPSERT = re.compile(r"/crm/(?:v3/objects|objects/2026-03)/([^/]+)/batch/upsert")
_PROPERTIES = re.compile(r"/crm/v3/properties/([^/]+)(?:/([^/]+))?")


@dataclass(frozen=True, slots=True)
class Route:
    kind: str  # "upsert" | "properties"
    object_type: str
    name: str | None = None  # a property name in /crm/v3/properties/{type}/{name}


def route(path: str) -> Route | None:
    match = _UPSERT.fullmatch(path)
    if match:
        return Route("upsert", match[1])
    match = _PROPERTIES.fullmatch(path)
    if match:
        return Route("properties", match[1], match[2])
    return None


class SandboxApp:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        path: str = scope["path"]
        if path.startswith("/_sandbox/"):
            status, payload = self._admin(scope["method"], path, scope["query_string"], body)
            await _send(send, status, dumps(payload), ())
            return
        target = route(path)
        if target is None:
            # Unknown paths answer before auth, like a gateway that has no route.
            await _send(send, 404, dumps(not_found().body), ())
            return
        await self._api(target, scope, body, send)

    # --- HubSpot API

    async def _api(self, target: Route, scope: Scope, body: bytes, send: Send) -> None:
        state = self.state
        config = state.config
        state.counters.request(config.clock(), 10.0)
        if config.latency_ms or config.latency_jitter_ms:
            jitter = config.latency_jitter_ms
            delay_ms = config.latency_ms + (
                state.latency_rng.uniform(-jitter, jitter) if jitter else 0.0
            )
            await asyncio.sleep(max(0.0, delay_ms) / 1000)

        token = _bearer(scope["headers"])
        valid = token is not None and (
            not state.tokens or token in state.tokens or token in state.read_only_tokens
        )
        if token is None or not valid:
            await self._error(send, unauthorized(), ())
            return

        verdict = state.limiter.check(token, config.clock())
        headers = verdict.headers
        if verdict.policy is not None:
            state.counters.limited(verdict.policy)
            extra = (
                [(b"retry-after", str(verdict.retry_after_s).encode())]
                if config.retry_after
                else []
            )
            await self._send(send, 429, dumps(rate_limited(verdict.policy)), [*headers, *extra])
            return

        method: str = scope["method"]
        try:
            handler = self._handler(target, method, token in state.read_only_tokens)
        except ApiError as exc:
            await self._error(send, exc, headers)
            return

        fault = None
        if target.kind == "upsert" or config.fault_reads:
            fault = state.faults.draw()
        if fault is None:
            status, payload = _run(handler, body)
            await self._send(send, status, payload, headers)
        else:
            await self._faulty(fault, handler, body, send, headers)

    def _handler(
        self, target: Route, method: str, read_only: bool
    ) -> Callable[[bytes], tuple[int, bytes]]:
        """The function that answers this request, after the checks that come before faults."""
        if target.object_type not in CALL_TYPES:
            # The sandbox has only the calls object.
            raise not_found(f"Unable to infer object type from: {target.object_type}")
        if target.kind == "upsert":
            if method != "POST":
                raise _method_not_allowed(method)
            if read_only:
                raise missing_scopes(WRITE_SCOPES)
            return self._upsert
        if target.name is not None:
            if method != "GET":
                raise _method_not_allowed(method)
            name = target.name
            return lambda _body: self._get_property(name)
        if method == "GET":
            return self._list_properties
        if method == "POST":
            if read_only:
                raise missing_scopes(SCHEMA_WRITE_SCOPES)
            return self._create_property
        raise _method_not_allowed(method)

    async def _faulty(
        self,
        fault: Fault,
        handler: Callable[[bytes], tuple[int, bytes]],
        body: bytes,
        send: Send,
        headers: Headers,
    ) -> None:
        state = self.state
        kind = fault.kind
        lost = kind in LOST_RESPONSE_FAULTS
        state.counters.fault(kind, fault.write_applied if lost else None)
        if kind is FaultKind.MALFORMED:
            status, payload = _run(handler, body)
            await self._send(send, status, truncate(payload), headers)
            return
        result = _run(handler, body) if fault.write_applied else None
        if kind is FaultKind.DROP:
            state.counters.status("dropped")
            await _drop(send)
            return
        if kind is FaultKind.SLOW:
            await asyncio.sleep(state.config.slow_response_s)
            if result is not None:
                await self._send(send, result[0], result[1], headers)
            else:
                late = gateway_timeout()
                await self._send(send, late.status, late.body, headers)
            return
        answer = state.faults.response(fault)
        await self._send(
            send, answer.status, answer.body, [*headers, *answer.extra_headers], answer.content_type
        )

    # --- handlers: body -> (status, JSON bytes); ApiError for failures

    def _upsert(self, body: bytes) -> tuple[int, bytes]:
        outcome = self.state.upserter.run(body)
        counters = self.state.counters
        counters.inputs_created += outcome.created
        counters.inputs_updated += outcome.updated
        counters.input_errors += outcome.failed
        return outcome.status, outcome.body

    def _list_properties(self, _body: bytes) -> tuple[int, bytes]:
        return 200, dumps({"results": self.state.schema.to_json()})

    def _get_property(self, name: str) -> tuple[int, bytes]:
        prop = self.state.schema.get(name)
        if prop is None:
            raise not_found(f"Unable to find property {name} for object type 0-48")
        return 200, dumps(prop.to_json())

    def _create_property(self, body: bytes) -> tuple[int, bytes]:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise invalid_json(exc.msg, exc.lineno, exc.colno) from None
        prop = self.state.create_property(doc)
        return 201, dumps(prop.to_json())

    # --- sending

    async def _send(
        self,
        send: Send,
        status: int,
        payload: bytes,
        headers: Headers,
        content_type: bytes = JSON_CONTENT_TYPE,
    ) -> None:
        self.state.counters.status(status)
        await _send(send, status, payload, headers, content_type)

    async def _error(self, send: Send, exc: ApiError, headers: Headers) -> None:
        await self._send(send, exc.status, dumps(exc.body), headers)

    # --- admin

    def _admin(self, method: str, path: str, query: bytes, body: bytes) -> tuple[int, Any]:
        state = self.state
        action = path.removeprefix("/_sandbox/").rstrip("/")
        params = urllib.parse.parse_qs(query.decode())
        try:
            doc = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError as exc:
            return 400, {"error": f"invalid JSON: {exc}"}
        try:
            if (method, action) == ("GET", "health"):
                return 200, {"status": "ok"}
            if (method, action) == ("GET", "config"):
                return 200, state.config.to_json()
            if (method, action) == ("POST", "config"):
                if not isinstance(doc, dict):
                    return 400, {"error": "expected a JSON object of config changes"}
                return 200, state.configure(**doc).to_json()
            if (method, action) == ("GET", "store"):
                id_property = params.get("id_property", [None])[0]
                records = state.records(id_property)
                return 200, {"count": len(records), "records": records}
            if (method, action) == ("GET", "counters"):
                return 200, state.counters_json()
            if (method, action) == ("POST", "reset"):
                what = doc if isinstance(doc, dict) else {}
                state.reset(
                    store=bool(what.get("store", True)),
                    counters=bool(what.get("counters", True)),
                    limits=bool(what.get("limits", True)),
                )
                return 200, {"status": "ok"}
            if (method, action) == ("POST", "reset-daily"):
                state.reset_daily()
                return 200, {"status": "ok"}
        except (TypeError, ValueError) as exc:
            return 400, {"error": str(exc)}
        return 404, {"error": f"no admin endpoint {method} /_sandbox/{action}"}


def _run(handler: Callable[[bytes], tuple[int, bytes]], body: bytes) -> tuple[int, bytes]:
    try:
        return handler(body)
    except ApiError as exc:
        return exc.status, dumps(exc.body)


def _method_not_allowed(method: str) -> ApiError:
    return api_error(405, f"HTTP {method} is not supported by this endpoint", "VALIDATION_ERROR")


def _bearer(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                return token
            return None
    return None


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def _send(
    send: Send,
    status: int,
    payload: bytes,
    headers: Headers,
    content_type: bytes = JSON_CONTENT_TYPE,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _drop(send: Send) -> None:
    """Close the connection without answering.

    ASGI has no message for this, so reach the server's transport through the
    bound `send` (uvicorn's RequestResponseCycle has `.transport`).
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        # Another server: promise a body and never send it; the server closes the connection.
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]}
        )
        return
    transport.close()
    # Let the server notice the disconnect before the app returns, or it would
    # try to answer 500 on the closed connection.
    for _ in range(100):
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0.001)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
