"""SandboxConfig: every knob of the sandbox, with its default, in one frozen record.

The same record drives the Python API (`SandboxServer(config)`), the admin
endpoint (`POST /_sandbox/config` takes a JSON object of changes) and the CLI,
so a knob added here is reachable from all three.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from bulkload.sandbox.objects import build_schema, group_by_object, resolve

Mode = Literal["multi_status", "strict"]
UnknownProperties = Literal["error", "ignore"]


class FaultKind(StrEnum):
    """An injected transient failure. The value is the name used in config and on the CLI."""

    BAD_GATEWAY = "502"
    UNAVAILABLE = "503"
    GATEWAY_TIMEOUT = "504"
    ORIGIN_TIMEOUT = "524"  # Cloudflare's HTML page
    LOCKED = "423"
    MIGRATION = "477"  # with Retry-After
    DROP = "drop"  # the socket is closed with no response
    SLOW = "slow"  # answered after `slow_response_s`, beyond a sane client timeout
    MALFORMED = "malformed"  # 200 whose JSON body is cut short
    # A ten-secondly 429 as if another app on the token had spent the window; not
    # part of fault_rate's mix (weight 0), only set on its own.
    RATE_LIMITED = "429"


# Faults after which the client cannot know whether the write happened: the
# sandbox applies the write first or not, by `lost_write_applied`. (MALFORMED
# always writes: the answer was produced, then mangled on the way.)
LOST_RESPONSE_FAULTS = frozenset(
    {
        FaultKind.BAD_GATEWAY,
        FaultKind.UNAVAILABLE,
        FaultKind.GATEWAY_TIMEOUT,
        FaultKind.ORIGIN_TIMEOUT,
        FaultKind.DROP,
        FaultKind.SLOW,
    }
)

# How `fault_rate` is spread over the kinds. Slow answers get a small share:
# each one holds a connection for `slow_response_s`.
FAULT_RATE_WEIGHTS: Mapping[FaultKind, float] = {
    FaultKind.BAD_GATEWAY: 0.15,
    FaultKind.UNAVAILABLE: 0.15,
    FaultKind.GATEWAY_TIMEOUT: 0.10,
    FaultKind.ORIGIN_TIMEOUT: 0.05,
    FaultKind.LOCKED: 0.15,
    FaultKind.MIGRATION: 0.05,
    FaultKind.DROP: 0.15,
    FaultKind.SLOW: 0.05,
    FaultKind.MALFORMED: 0.15,
    FaultKind.RATE_LIMITED: 0.0,
}


def system_clock() -> float:
    return time.time()


PROFESSIONAL_DAILY_LIMIT = 650_000  # HubSpot's changelog figure for Professional accounts


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox behaves. Every field has a HubSpot-like default.

    Tokens: with `tokens` empty, any non-empty bearer token is accepted. The
    tokens of the other lists are always accepted: `read_only_tokens` lack the
    write scopes (403 on writes), `no_schema_read_tokens` the schema-read scope
    (403 on GET properties), `no_owners_read_tokens` the owners scope (403 on GET
    owners), and `oauth_tokens` are OAuth apps' tokens (no daily limit and no
    Daily headers, as HubSpot answers OAuth apps).
    """

    # --- auth
    tokens: tuple[str, ...] = ()
    read_only_tokens: tuple[str, ...] = ()
    oauth_tokens: tuple[str, ...] = ()
    no_schema_read_tokens: tuple[str, ...] = ()
    no_owners_read_tokens: tuple[str, ...] = ()
    # --- schema
    # Added to each object's own unique property: `NAME` (calls) or `OBJECT.NAME`.
    unique_properties: tuple[str, ...] = ()
    unknown_properties: UnknownProperties = "error"  # "ignore": drop them silently
    coerce_non_string_values: bool = False  # JSON numbers/booleans/null read as text
    portal_id: int = 21458763
    # The portal's validation rule (HubSpot's 2026-09 write validation): object name ->
    # properties every create and update of that object must set.
    required_properties: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # --- portal data, seeded deterministically (see owners.py and state.py)
    owners: int = 25  # owner i has id 10_000_000 + 7919 * i
    archived_owners: int = 0  # owners owners+1 .. owners+archived_owners, archived
    contacts: int = 0  # contact i has email contact-{i:05d}@example.com, id 1_000_000 + i
    # --- outcomes
    mode: Mode = "multi_status"
    max_inputs: int = 100
    max_association_inputs: int = 2000
    # How a batch with some failed inputs is answered (numErrors and errors are in the
    # body either way): None answers 207 on v3/v4 paths (200 for v4 associate/default,
    # whose spec has no 207) and 200 on date-based paths; 200 or 207 forces one.
    partial_status: int | None = None
    # --- rate limits (a batch request counts as one request)
    rate_limit_max: int | None = 190  # None: no burst limit
    rate_limit_window_s: float = 10.0
    daily_limit: int | None = PROFESSIONAL_DAILY_LIMIT  # None: no daily limit, no Daily headers
    rate_limit_counts_rejected: bool = False  # do 429'd requests use up the window?
    retry_after: bool = False  # send Retry-After on 429
    # --- latency, applied to every API answer
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0  # uniform in [latency - jitter, latency + jitter]
    # --- faults
    seed: int = 0
    fault_rate: float = 0.0  # spread over the kinds by FAULT_RATE_WEIGHTS
    fault_probabilities: Mapping[str, float] = field(default_factory=dict)  # per kind, added
    fault_reads: bool = False  # also inject faults into the properties API
    # The request kinds that draw faults (routes.Route.kind: upsert, read, associate,
    # properties, owners, association_read); empty: writes, and reads with fault_reads.
    fault_requests: tuple[str, ...] = ()
    lost_write_applied: float = 0.5  # probability (or bool) a lost-response write was applied
    slow_response_s: float = 30.0
    empty_5xx_body_rate: float = 0.5  # share of 502/503/504 answered with an empty body
    migration_retry_after_s: int = 2  # Retry-After on 477
    # --- persistence
    store_path: str | None = None  # SQLite file; None keeps records in memory only
    # --- time, injectable so tests drive the rate windows without sleeping
    clock: Callable[[], float] = field(default=system_clock, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in ("multi_status", "strict"):
            raise ValueError(f"mode must be multi_status or strict, not {self.mode!r}")
        if self.unknown_properties not in ("error", "ignore"):
            raise ValueError("unknown_properties must be error or ignore")
        if self.rate_limit_max is not None and self.rate_limit_max < 1:
            raise ValueError("rate_limit_max must be at least 1 (or None for no limit)")
        if not self.rate_limit_window_s > 0:
            raise ValueError("rate_limit_window_s must be positive")
        if self.daily_limit is not None and self.daily_limit < 1:
            raise ValueError("daily_limit must be at least 1 (or None for no limit)")
        if self.latency_ms < 0 or self.latency_jitter_ms < 0:
            raise ValueError("latency must not be negative")
        for name in ("fault_rate", "lost_write_applied", "empty_5xx_body_rate"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        unknown = set(self.fault_probabilities) - {kind.value for kind in FaultKind}
        if unknown:
            kinds = ", ".join(kind.value for kind in FaultKind)
            raise ValueError(f"unknown fault kind(s) {sorted(unknown)}; known: {kinds}")
        if sum(self.fault_table().values()) > 1.0 + 1e-9:
            raise ValueError("fault probabilities add up to more than 1")
        if self.max_inputs < 1 or self.max_association_inputs < 1:
            raise ValueError("max_inputs and max_association_inputs must be at least 1")
        if self.partial_status not in (None, 200, 207):
            raise ValueError(f"partial_status must be 200 or 207, not {self.partial_status!r}")
        for name in ("owners", "archived_owners", "contacts"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.contacts > 10_000_000:
            raise ValueError("contacts must be at most 10,000,000")
        for key, names in self.required_properties.items():
            obj = resolve(key)
            if obj is None or obj.name != key:
                raise ValueError(f"required_properties: unknown object {key!r}")
            schema = build_schema(obj)
            for name in names:
                prop = schema.get(name)
                if prop is None or prop.read_only_value:
                    raise ValueError(
                        f"required_properties: {obj.name} has no writable property {name!r}"
                    )
        # Building the schemas checks the unique property names (pattern, clashes, at most 10).
        for object_name, names in group_by_object(self.unique_properties).items():
            obj = resolve(object_name)
            assert obj is not None
            build_schema(obj, names)

    def fault_table(self) -> dict[FaultKind, float]:
        """Each kind's probability per request: its own knob plus its share of fault_rate."""
        table: dict[FaultKind, float] = {}
        for kind in FaultKind:
            p = float(self.fault_probabilities.get(kind.value, 0.0))
            if not 0.0 <= p <= 1.0 or math.isnan(p):
                raise ValueError(f"fault probability for {kind.value} must be within [0, 1]")
            p += self.fault_rate * FAULT_RATE_WEIGHTS[kind]
            if p > 0:
                table[kind] = p
        return table

    def replace(self, **changes: Any) -> SandboxConfig:
        """A copy with `changes` applied (validated like a new config)."""
        return dataclasses.replace(self, **_normalise(changes))

    def to_json(self) -> dict[str, Any]:
        """The config as plain JSON (the clock is left out)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "clock":
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out


_TUPLE_FIELDS = (
    "tokens",
    "read_only_tokens",
    "oauth_tokens",
    "no_schema_read_tokens",
    "no_owners_read_tokens",
    "unique_properties",
    "fault_requests",
)


def _normalise(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Accept JSON-shaped values (lists for tuples, bools for probabilities)."""
    known = {f.name for f in dataclasses.fields(SandboxConfig)}
    unknown = set(changes) - known
    if unknown:
        raise ValueError(f"unknown config field(s): {', '.join(sorted(unknown))}")
    out = dict(changes)
    for name in _TUPLE_FIELDS:
        if name in out:
            value = out[name]
            out[name] = (value,) if isinstance(value, str) else tuple(value)
    if "lost_write_applied" in out:
        out["lost_write_applied"] = float(out["lost_write_applied"])
    if "fault_probabilities" in out:
        out["fault_probabilities"] = dict(out["fault_probabilities"])
    if "required_properties" in out:
        out["required_properties"] = normalise_required(out["required_properties"])
    return out


def normalise_required(value: Any) -> dict[str, tuple[str, ...]]:
    """The validation rule from JSON-ish shapes: {"calls": ["hs_call_body"]}, a list of
    `OBJECT.PROPERTY` strings, or one such string. Object names may be any alias
    (`call`, `0-48`); the result is keyed by the plural name."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):
        items = []
        for key, names in value.items():
            obj = resolve(str(key))
            if obj is None:
                raise ValueError(f"required_properties: unknown object {key!r}")
            for name in [names] if isinstance(names, str) else names:
                items.append(f"{obj.name}.{name}")
        value = items
    if not isinstance(value, list | tuple):
        raise ValueError("required_properties must map objects to property names")
    return group_by_object(str(v) for v in value)


def make_config(**fields: Any) -> SandboxConfig:
    """A SandboxConfig from JSON-shaped values (what the CLI and admin endpoint have)."""
    return SandboxConfig(**_normalise(fields))


def parse_rate_limit(text: str) -> tuple[int | None, float]:
    """`N/SECONDS` (e.g. `190/10`) -> (N, SECONDS); `off` or `0` -> (None, 10.0)."""
    if text.strip().lower() in ("off", "none", "0"):
        return None, 10.0
    count, sep, seconds = text.partition("/")
    try:
        n = int(count)
        window = float(seconds) if sep else 10.0
    except ValueError:
        raise ValueError(
            f"rate limit must look like N/SECONDS (e.g. 190/10), not {text!r}"
        ) from None
    if n < 1 or window <= 0:
        raise ValueError(f"rate limit must be positive, not {text!r}")
    return n, window
