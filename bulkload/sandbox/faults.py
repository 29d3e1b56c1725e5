"""Injected transient faults: which one (if any) hits a request, and its body.

One seeded `random.Random` draws every fault decision, in request order, so a
run with the same seed and the same request sequence fails the same way.
Bodies follow what reaches clients through HubSpot's Cloudflare edge
(HUBSPOT.md 2.4): JSON or empty 5xx, an HTML 524 page, 423 for a locked
record, 477 with Retry-After.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bulkload.sandbox.config import LOST_RESPONSE_FAULTS, FaultKind, SandboxConfig
from bulkload.sandbox.wire import dumps, error_body

_ORIGIN_TIMEOUT_HTML = (
    b"<html>\r\n<head><title>524 Origin Time-out</title></head>\r\n"
    b'<body bgcolor="white">\r\n<center><h1>524 Origin Time-out</h1></center>\r\n'
    b"<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)

_5XX_MESSAGES = {
    FaultKind.BAD_GATEWAY: (502, "Bad Gateway"),
    FaultKind.UNAVAILABLE: (503, "Service Unavailable"),
    FaultKind.GATEWAY_TIMEOUT: (504, "Gateway Timeout"),
}


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    write_applied: bool  # for lost-response faults: was the write done before the loss?
    empty_body: bool = False


@dataclass(frozen=True, slots=True)
class FaultResponse:
    status: int
    body: bytes
    content_type: bytes
    extra_headers: tuple[tuple[bytes, bytes], ...] = ()


class FaultPlan:
    """Draws faults with the configured per-kind probabilities."""

    def __init__(self, config: SandboxConfig) -> None:
        self.rng = random.Random(config.seed)
        self.configure(config)

    def configure(self, config: SandboxConfig) -> None:
        """New probabilities; the random sequence continues (reseed with `reseed`)."""
        table = config.fault_table()
        self.kinds = list(table)
        self.cumulative: list[float] = []
        total = 0.0
        for kind in self.kinds:
            total += table[kind]
            self.cumulative.append(total)
        self.lost_write_applied = float(config.lost_write_applied)
        self.empty_5xx_body_rate = config.empty_5xx_body_rate
        self.migration_retry_after_s = config.migration_retry_after_s

    def reseed(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def draw(self) -> Fault | None:
        if not self.kinds:
            return None
        r = self.rng.random()
        kind = next(
            (k for k, edge in zip(self.kinds, self.cumulative, strict=True) if r < edge), None
        )
        if kind is None:
            return None
        applied = kind in LOST_RESPONSE_FAULTS and self.rng.random() < self.lost_write_applied
        empty = kind in _5XX_MESSAGES and self.rng.random() < self.empty_5xx_body_rate
        return Fault(kind, applied, empty)

    def response(self, fault: Fault) -> FaultResponse:
        """The answer for a fault that has a status line (not DROP, SLOW or MALFORMED)."""
        json_type = b"application/json;charset=utf-8"
        kind = fault.kind
        if kind in _5XX_MESSAGES:
            status, text = _5XX_MESSAGES[kind]
            if fault.empty_body:
                return FaultResponse(status, b"", b"text/plain")
            body = error_body(text, "INTERNAL_ERROR" if status != 503 else "SERVICE_UNAVAILABLE")
            return FaultResponse(status, dumps(body), json_type)
        if kind is FaultKind.ORIGIN_TIMEOUT:
            return FaultResponse(524, _ORIGIN_TIMEOUT_HTML, b"text/html")
        if kind is FaultKind.LOCKED:
            body = error_body(
                "The record is locked by another request. Locks last for 2 seconds; wait at least "
                "2 seconds before retrying.",
                "LOCKED",
            )
            return FaultResponse(423, dumps(body), json_type)
        if kind is FaultKind.MIGRATION:
            body = error_body(
                "This account is being migrated to another data center; retry after the "
                "Retry-After period.",
                "MIGRATION_IN_PROGRESS",
            )
            return FaultResponse(
                477,
                dumps(body),
                json_type,
                ((b"retry-after", str(self.migration_retry_after_s).encode()),),
            )
        raise ValueError(f"{kind} has no status line")


def gateway_timeout() -> FaultResponse:
    """What a slow request whose write was not applied finally answers."""
    body = error_body("Gateway Timeout", "INTERNAL_ERROR")
    return FaultResponse(504, dumps(body), b"application/json;charset=utf-8")


def truncate(body: bytes) -> bytes:
    """A JSON body cut short: a valid HTTP message whose JSON does not parse."""
    return body[: max(1, len(body) // 2)]
