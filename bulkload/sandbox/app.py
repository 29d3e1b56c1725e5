"""The sandbox's HTTP face: a raw ASGI app (no framework, for speed) that routes
HubSpot's paths (routes.py: both path families) and the `/_sandbox/` admin paths.

For every API request, in order: counters, latency, auth (401), rate limits
(429), object type and method (404/405), scopes (403), an injected fault (writes;
reads too with `fault_reads`), and the handler. Every API answer after auth
carries the rate-limit headers.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from bulkload.sandbox.config import LOST_RESPONSE_FAULTS, FaultKind
from bulkload.sandbox.faults import Fault, gateway_timeout, truncate
from bulkload.sandbox.routes import Route, route
from bulkload.sandbox.state import ObjectState, SandboxState
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

# Writes get faults; reads only with `fault_reads`.
WRITE_KINDS = frozenset({"upsert", "associate"})
OWNERS_SCOPES = ["crm.objects.owners.read"]

Handler = Callable[[bytes], tuple[int, bytes]]


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
        state.counters.request(config.clock(), 10.0, target.family, target.kind)
        if config.latency_ms or config.latency_jitter_ms:
            jitter = config.latency_jitter_ms
            delay_ms = config.latency_ms + (
                state.latency_rng.uniform(-jitter, jitter) if jitter else 0.0
            )
            await asyncio.sleep(max(0.0, delay_ms) / 1000)

        token = _bearer(scope["headers"])
        valid = token is not None and (
            not state.tokens or token in state.tokens or token in state.known_tokens
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

        try:
            handler = self._handler(target, scope, token)
        except ApiError as exc:
            await self._error(send, exc, headers)
            return

        fault = None
        if (target.kind in config.fault_requests if config.fault_requests
                else target.kind in WRITE_KINDS or config.fault_reads):
            fault = state.faults.draw()
        if fault is None:
            status, payload = _run(handler, body)
            await self._send(send, status, payload, headers)
        else:
            await self._faulty(fault, handler, body, send, headers)

    def _object(self, name: str) -> ObjectState:
        obj = self.state.object(name)
        if obj is None:
            raise not_found(f"Unable to infer object type from: {name}")
        return obj

    def _handler(self, target: Route, scope: Scope, token: str) -> Handler:
        """The function that answers this request, after the checks that come before faults
        (object types 404, methods 405, scopes 403)."""
        state = self.state
        method: str = scope["method"]
        kind = target.kind
        if kind == "owners":
            _allow(method, "GET")
            if token in state.no_owners_read_tokens:
                raise missing_scopes(OWNERS_SCOPES)
            query = _query(scope)
            if target.name is not None:
                owner_id = target.name
                return lambda _body: self._get_owner(owner_id, query)
            base_url = _base_url(scope)
            return lambda _body: (200, dumps(state.owners.page(query, base_url)))

        obj = self._object(target.object_type)
        read_only = token in state.read_only_tokens
        if kind == "upsert":
            _allow(method, "POST")
            if read_only:
                raise missing_scopes(obj.obj.write_scopes)
            return lambda body: self._upsert(obj, body, target)
        if kind == "read":
            _allow(method, "POST")
            return lambda body: self._read(obj, body, target)
        if kind in ("associate", "association_read"):
            to_obj = self._object(target.to_object_type)
            if kind == "association_read":
                _allow(method, "GET")
                record_id = target.name or ""
                query, base_url = _query(scope), _base_url(scope)
                return lambda _body: (
                    200,
                    dumps(state.associator.read(obj.obj, record_id, to_obj.obj, query, base_url)),
                )
            _allow(method, "POST")
            if read_only:
                raise missing_scopes(obj.obj.write_scopes)
            action = target.name or ""
            return lambda body: self._associate(action, obj, to_obj, body, target)
        # properties
        if method == "GET":
            if token in state.no_schema_read_tokens:
                raise missing_scopes(list(obj.obj.schema_scopes))
            if target.name is not None:
                name = target.name
                return lambda _body: self._get_property(obj, name)
            return lambda _body: (200, dumps({"results": obj.schema.to_json()}))
        if target.name is not None:
            raise _method_not_allowed(method)
        _allow(method, "POST")
        if read_only:
            raise missing_scopes(obj.obj.schema_write_scopes)
        return lambda body: self._create_property(obj, body)

    def _partial_status(self, target: Route, action: str = "") -> int:
        """The status of a batch answer that lists some failed inputs."""
        forced = self.state.config.partial_status
        if forced is not None:
            return forced
        if target.date_based or action == "associate/default":
            return 200  # the 2025-09+ specs, and v4 associate/default's, list no 207
        return 207

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
        if kind is FaultKind.RATE_LIMITED:
            body_429 = rate_limited("TEN_SECONDLY_ROLLING")
            await self._send(send, 429, dumps(body_429), headers)
            return
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

    def _upsert(self, obj: ObjectState, body: bytes, target: Route) -> tuple[int, bytes]:
        outcome = obj.upserter.run(body)
        self.state.counters.wrote(obj.obj.name, outcome.created, outcome.updated, outcome.failed)
        status = self._partial_status(target) if outcome.status == 207 else outcome.status
        return status, outcome.body

    def _read(self, obj: ObjectState, body: bytes, target: Route) -> tuple[int, bytes]:
        outcome = obj.reader.run(body)
        counters = self.state.counters
        counters.reads += 1
        counters.read_inputs += outcome.inputs
        counters.read_found += outcome.found
        counters.read_not_found += outcome.missing
        return (self._partial_status(target) if outcome.missing else 200), outcome.body

    def _associate(
        self, action: str, obj: ObjectState, to_obj: ObjectState, body: bytes, target: Route
    ) -> tuple[int, bytes]:
        outcome = self.state.associator.batch(
            action,
            obj.obj,
            to_obj.obj,
            body,
            partial_status=self._partial_status(target, action),
            date_based=target.date_based,
        )
        counters = self.state.counters
        if action == "archive":
            counters.associations_archived += outcome.inputs
        else:
            counters.association_inputs += outcome.inputs
            counters.associations_created += outcome.created
            counters.association_errors += outcome.failed
        return outcome.status, outcome.body

    def _get_property(self, obj: ObjectState, name: str) -> tuple[int, bytes]:
        prop = obj.schema.get(name)
        if prop is None:
            raise not_found(f"Unable to find property {name} for object type {obj.obj.type_id}")
        return 200, dumps(prop.to_json())

    def _create_property(self, obj: ObjectState, body: bytes) -> tuple[int, bytes]:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise invalid_json(exc.msg, exc.lineno, exc.colno) from None
        prop = self.state.create_property(obj, doc)
        return 201, dumps(prop.to_json())

    def _get_owner(self, owner_id: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
        archived = (query.get("archived") or ["false"])[0].lower() == "true"
        owner = self.state.owners.get(owner_id, archived)
        if owner is None:
            raise not_found(f"Owner {owner_id} not found")
        return 200, dumps(owner.to_json())

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
                object_type = params.get("object_type", ["calls"])[0]
                records = state.records(id_property, object_type)
                return 200, {"count": len(records), "records": records}
            if (method, action) == ("POST", "records"):
                if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
                    return 400, {"error": 'expected {"object_type": ..., "records": [{...}]}'}
                ids = state.create_records(str(doc.get("object_type", "calls")), doc["records"])
                return 200, {"ids": ids}
            if (method, action) == ("GET", "associations"):
                one = {k: v[0] for k, v in params.items()}
                missing = [k for k in ("from", "id", "to") if k not in one]
                if missing:
                    return 400, {"error": f"missing query parameter(s): {', '.join(missing)}"}
                links = state.record_associations(one["from"], one["id"], one["to"])
                return 200, {"results": links}
            if (method, action) == ("GET", "owners"):
                return 200, {"results": state.owners_json()}
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
        except (TypeError, ValueError, KeyError) as exc:
            return 400, {"error": str(exc)}
        return 404, {"error": f"no admin endpoint {method} /_sandbox/{action}"}


def _run(handler: Callable[[bytes], tuple[int, bytes]], body: bytes) -> tuple[int, bytes]:
    try:
        return handler(body)
    except ApiError as exc:
        return exc.status, dumps(exc.body)


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise _method_not_allowed(method)


def _query(scope: Scope) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(scope["query_string"].decode("latin-1"))


def _base_url(scope: Scope) -> str:
    """The request's own URL without the query, for paging links."""
    host = "127.0.0.1"
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
            break
    return f"http://{host}{scope['path']}"


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
    if status == 204:  # No Content: no body, so neither its type nor its length
        start = list(headers)
    else:
        start = [
            (b"content-type", content_type),
            (b"content-length", str(len(payload)).encode()),
            *headers,
        ]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": payload if status != 204 else b""})


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
