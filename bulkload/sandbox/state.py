"""SandboxState: everything the sandbox knows and counts, and the control
operations on it (configure, reset, inspect).

Only the server's event loop touches a state; the thread-side Python API
(`SandboxServer`) hands its calls to that loop, so nothing here needs a lock.
"""

from __future__ import annotations

import random
from typing import Any, TypedDict

from bulkload.sandbox.config import FaultKind, SandboxConfig
from bulkload.sandbox.faults import FaultPlan
from bulkload.sandbox.ratelimit import RateLimiter
from bulkload.sandbox.schema import PropertyDef, Schema, property_from_json
from bulkload.sandbox.store import RecordStore
from bulkload.sandbox.upsert import Upserter
from bulkload.sandbox.wire import iso_from_ms


class CountersJson(TypedDict):
    requests_total: int
    requests_by_status: dict[str, int]  # "200", "207", ..., and "dropped"
    rate_limited: dict[str, int]  # by policyName
    faults: dict[str, int]  # by FaultKind value
    lost_writes_applied: int
    lost_writes_discarded: int
    requests_per_window: dict[str, int]  # window start (epoch seconds, aligned) -> API requests
    inputs_written: int
    inputs_created: int
    inputs_updated: int
    input_errors: int  # inputs listed in 207 errors
    writes_per_id: dict[str, int]  # record's creating id value -> times written


class Counters:
    """What happened, for tests and benchmarks to assert on."""

    def __init__(self) -> None:
        self.requests_total = 0
        self.by_status: dict[str, int] = {}
        self.rate_limited: dict[str, int] = {}
        self.faults: dict[str, int] = {}
        self.lost_writes_applied = 0
        self.lost_writes_discarded = 0
        self.per_window: dict[int, int] = {}
        self.inputs_created = 0
        self.inputs_updated = 0
        self.input_errors = 0

    def request(self, now: float, window_s: float) -> None:
        self.requests_total += 1
        start = int(now // window_s * window_s)
        self.per_window[start] = self.per_window.get(start, 0) + 1

    def status(self, key: int | str) -> None:
        name = str(key)
        self.by_status[name] = self.by_status.get(name, 0) + 1

    def limited(self, policy: str) -> None:
        self.rate_limited[policy] = self.rate_limited.get(policy, 0) + 1

    def fault(self, kind: FaultKind, applied: bool | None) -> None:
        self.faults[kind.value] = self.faults.get(kind.value, 0) + 1
        if applied is True:
            self.lost_writes_applied += 1
        elif applied is False:
            self.lost_writes_discarded += 1


class SandboxState:
    """The schema, the records, the limiters and the counters of one sandbox."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.schema = Schema(config.unique_properties)
        self.store = RecordStore(self.schema.unique_names(), config.store_path)
        for saved in self.store.saved_properties():
            if saved["name"] not in self.schema.properties:
                self._add_property(property_from_json(saved), persist=False)
        self.upserter = Upserter(self.schema, self.store, config)
        self.limiter = RateLimiter(config)
        self.faults = FaultPlan(config)
        # Latency draws have their own stream, so turning latency on does not
        # change which requests get faults.
        self.latency_rng = random.Random(config.seed ^ 0x5EED)
        self.counters = Counters()
        self._apply(config)

    # --- control

    def configure(self, **changes: Any) -> SandboxConfig:
        new = self.config.replace(**changes)
        if new.store_path != self.config.store_path:
            raise ValueError("store_path cannot change while the sandbox runs")
        for name in new.unique_properties:
            prop = self.schema.new_unique_string(name, self.now_iso())
            if prop is not None:
                self._add_property(prop)
        self.config = new
        self.upserter.configure(new)
        self.limiter.configure(new)
        self.faults.configure(new)
        if "seed" in changes:
            self.faults.reseed(new.seed)
            self.latency_rng = random.Random(new.seed ^ 0x5EED)
        self._apply(new)
        return new

    def _apply(self, config: SandboxConfig) -> None:
        self.tokens = frozenset(config.tokens)
        self.read_only_tokens = frozenset(config.read_only_tokens)

    def reset(self, *, store: bool = True, counters: bool = True, limits: bool = True) -> None:
        if store:
            self.store.clear()
        if counters:
            self.counters = Counters()
            for record in self.store:  # writes_per_id is kept on the records
                record.writes = 0
        if limits:
            self.limiter.reset()

    def reset_daily(self) -> None:
        self.limiter.reset_daily()

    def close(self) -> None:
        self.store.close()

    # --- schema

    def create_property(self, body: Any) -> PropertyDef:
        prop = self.schema.check_new(body, self.now_iso())
        self._add_property(prop)
        return prop

    def _add_property(self, prop: PropertyDef, *, persist: bool = True) -> None:
        self.schema.add(prop)
        if prop.has_unique_value:
            self.store.add_unique(prop.name)
        if persist:
            self.store.save_property(prop)

    # --- inspection

    def now_iso(self) -> str:
        return iso_from_ms(int(self.config.clock() * 1000))

    def records(self, id_property: str | None = None) -> dict[str, dict[str, str]]:
        """Stored records keyed by the id value they were created with (or by `id_property`)."""
        out: dict[str, dict[str, str]] = {}
        for record in self.store:
            key = record.properties.get(id_property or record.id_property)
            if key is None:
                continue
            out[key] = dict(record.properties)
        return out

    def counters_json(self) -> CountersJson:
        c = self.counters
        writes: dict[str, int] = {}
        for record in self.store:
            key = record.properties.get(record.id_property, str(record.object_id))
            writes[key] = record.writes
        return {
            "requests_total": c.requests_total,
            "requests_by_status": dict(c.by_status),
            "rate_limited": dict(c.rate_limited),
            "faults": dict(c.faults),
            "lost_writes_applied": c.lost_writes_applied,
            "lost_writes_discarded": c.lost_writes_discarded,
            "requests_per_window": {str(k): v for k, v in sorted(c.per_window.items())},
            "inputs_written": c.inputs_created + c.inputs_updated,
            "inputs_created": c.inputs_created,
            "inputs_updated": c.inputs_updated,
            "input_errors": c.input_errors,
            "writes_per_id": writes,
        }
