"""SandboxState: everything the sandbox knows and counts (every object's schema and
records, the associations, the owners), and the control operations on it
(configure, reset, seed, inspect).

Only the server's event loop touches a state; the thread-side Python API
(`SandboxServer`) hands its calls to that loop, so nothing here needs a lock.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from bulkload.sandbox.associations import AssociationStore, Associator
from bulkload.sandbox.config import FaultKind, SandboxConfig
from bulkload.sandbox.faults import FaultPlan
from bulkload.sandbox.objects import (
    CALLS,
    CONTACTS,
    OBJECT_TYPES,
    ObjectType,
    build_schema,
    group_by_object,
    object_names,
    resolve,
)
from bulkload.sandbox.owners import FIRST_NAMES, LAST_NAMES, Owner, OwnerDirectory
from bulkload.sandbox.ratelimit import RateLimiter
from bulkload.sandbox.reads import Reader
from bulkload.sandbox.schema import PropertyDef, Schema, property_from_json
from bulkload.sandbox.store import Database, RecordStore
from bulkload.sandbox.upsert import Upserter
from bulkload.sandbox.wire import iso_from_ms

CONTACT_SEED_ID_BASE = 1_000_000  # seeded contact i has record id 1_000_000 + i


def seeded_contact_id(i: int) -> str:
    """The record id of seeded contact i (1-based)."""
    return str(CONTACT_SEED_ID_BASE + i)


def seeded_contact(i: int) -> dict[str, str]:
    """The properties of seeded contact i (1-based), as the seeding writes them."""
    return {
        "email": f"contact-{i:05d}@example.com",
        "firstname": FIRST_NAMES[(i - 1) % len(FIRST_NAMES)],
        "lastname": LAST_NAMES[(i - 1) * 11 % len(LAST_NAMES)],
        "external_contact_id": f"contact-{i:05d}",
        "lifecyclestage": "lead",
    }


class CountersJson(TypedDict):
    requests_total: int
    requests_by_status: dict[str, int]  # "200", "207", ..., and "dropped"
    requests_by_family: dict[str, int]  # "v3", "v4", "2026-03"
    requests_by_kind: dict[str, int]  # "upsert", "read", "associate", "properties", "owners", ...
    rate_limited: dict[str, int]  # by policyName
    faults: dict[str, int]  # by FaultKind value
    lost_writes_applied: int
    lost_writes_discarded: int
    requests_per_window: dict[str, int]  # window start (epoch seconds, aligned) -> API requests
    inputs_written: int  # every object
    inputs_created: int
    inputs_updated: int
    input_errors: int  # inputs listed in 207 (or 200-with-errors) errors
    writes_by_object: dict[str, dict[str, int]]  # object name -> {created, updated, failed}
    writes_per_id: dict[str, int]  # calls: record's creating id value -> times written
    reads: int  # batch/read requests answered
    read_inputs: int
    read_found: int
    read_not_found: int
    associations_created: int  # pairs newly associated
    association_inputs: int  # pairs asked for (associate/default and create)
    association_errors: int  # pairs refused (listed in errors)
    associations_archived: int  # pairs asked to be archived
    associations_total: int  # associations held now (both directions)


class Counters:
    """What happened, for tests and benchmarks to assert on."""

    def __init__(self) -> None:
        self.requests_total = 0
        self.by_status: dict[str, int] = {}
        self.by_family: dict[str, int] = {}
        self.by_kind: dict[str, int] = {}
        self.rate_limited: dict[str, int] = {}
        self.faults: dict[str, int] = {}
        self.lost_writes_applied = 0
        self.lost_writes_discarded = 0
        self.per_window: dict[int, int] = {}
        self.inputs_created = 0
        self.inputs_updated = 0
        self.input_errors = 0
        self.by_object: dict[str, dict[str, int]] = {}
        self.reads = 0
        self.read_inputs = 0
        self.read_found = 0
        self.read_not_found = 0
        self.associations_created = 0
        self.association_inputs = 0
        self.association_errors = 0
        self.associations_archived = 0

    def request(self, now: float, window_s: float, family: str = "", kind: str = "") -> None:
        self.requests_total += 1
        start = int(now // window_s * window_s)
        self.per_window[start] = self.per_window.get(start, 0) + 1
        if family:
            self.by_family[family] = self.by_family.get(family, 0) + 1
        if kind:
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

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

    def wrote(self, object_name: str, created: int, updated: int, failed: int) -> None:
        self.inputs_created += created
        self.inputs_updated += updated
        self.input_errors += failed
        counts = self.by_object.get(object_name)
        if counts is None:
            counts = self.by_object[object_name] = {"created": 0, "updated": 0, "failed": 0}
        counts["created"] += created
        counts["updated"] += updated
        counts["failed"] += failed


class ObjectState:
    """One CRM object of the portal: its schema, records, upserts and reads."""

    __slots__ = ("obj", "reader", "schema", "store", "upserter")

    def __init__(
        self, obj: ObjectType, schema: Schema, store: RecordStore, config: SandboxConfig
    ) -> None:
        self.obj = obj
        self.schema = schema
        self.store = store
        self.upserter = Upserter(schema, store, config, obj)
        self.reader = Reader(obj, schema, store, config.clock)
        self.configure(config)

    def configure(self, config: SandboxConfig) -> None:
        self.upserter.configure(config)
        self.reader.clock = config.clock
        self.reader.max_inputs = config.max_inputs
        self.reader.coerce = config.coerce_non_string_values


class SandboxState:
    """The objects, records, associations, owners, limiters and counters of one sandbox."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.db = Database(config.store_path) if config.store_path is not None else None
        self.owners = OwnerDirectory()
        if self.db is not None:
            for saved in self.db.owners():
                self.owners.add(Owner.from_json(saved))
        self._seed_owners(config)
        extra_unique = group_by_object(config.unique_properties)
        self.objects: dict[str, ObjectState] = {}
        for obj in OBJECT_TYPES:
            schema = build_schema(obj, extra_unique.get(obj.name, ()), self.owners.active_ids)
            store = RecordStore(
                schema.index_names(),
                self.db,
                type_id=obj.type_id,
                first_id=obj.first_id,
                created=obj.created_property,
                modified=obj.modified_property,
            )
            state = self.objects[obj.type_id] = ObjectState(obj, schema, store, config)
            for saved in store.saved_properties():
                if saved["name"] not in schema.properties:
                    self._add_property(state, property_from_json(saved), persist=False)
        self.associations = AssociationStore(self.db)
        self.associator = Associator(
            self.associations, {t: o.store for t, o in self.objects.items()}, config.clock
        )
        self.limiter = RateLimiter(config)
        self.faults = FaultPlan(config)
        # Latency draws have their own stream, so turning latency on does not
        # change which requests get faults.
        self.latency_rng = random.Random(config.seed ^ 0x5EED)
        self.counters = Counters()
        self._apply(config)
        self.seed_contacts(config.contacts)

    # --- the calls object, as the single-object sandbox called it

    @property
    def calls(self) -> ObjectState:
        return self.objects[CALLS.type_id]

    @property
    def schema(self) -> Schema:
        return self.calls.schema

    @property
    def store(self) -> RecordStore:
        return self.calls.store

    @property
    def upserter(self) -> Upserter:
        return self.calls.upserter

    def object(self, name: str) -> ObjectState | None:
        """The object a path segment names (plural, singular or type id), or None."""
        obj = resolve(name, self.config.portal_id)
        return self.objects[obj.type_id] if obj is not None else None

    def object_or_error(self, name: str) -> ObjectState:
        state = self.object(name)
        if state is None:
            raise ValueError(f"unknown object {name!r}; known: {object_names()}")
        return state

    # --- control

    def configure(self, **changes: Any) -> SandboxConfig:
        new = self.config.replace(**changes)
        if new.store_path != self.config.store_path:
            raise ValueError("store_path cannot change while the sandbox runs")
        if new.portal_id != self.config.portal_id:
            raise ValueError("portal_id cannot change while the sandbox runs")
        additions: list[tuple[ObjectState, PropertyDef]] = []
        for object_name, names in group_by_object(new.unique_properties).items():
            state = self.object_or_error(object_name)
            for name in names:
                prop = state.schema.new_unique_string(name, self.now_iso())
                if prop is not None:
                    additions.append((state, prop))
        for state, prop in additions:
            self._add_property(state, prop)
        self.config = new
        for state in self.objects.values():
            state.configure(new)
        self.associator.clock = new.clock
        self.associator.max_inputs = new.max_association_inputs
        self.associator.coerce = new.coerce_non_string_values
        self.limiter.configure(new)
        self.faults.configure(new)
        if "seed" in changes:
            self.faults.reseed(new.seed)
            self.latency_rng = random.Random(new.seed ^ 0x5EED)
        if "owners" in changes or "archived_owners" in changes:
            self._seed_owners(new)
        if "contacts" in changes:
            self.seed_contacts(new.contacts)
        self._apply(new)
        return new

    def _apply(self, config: SandboxConfig) -> None:
        self.tokens = frozenset(config.tokens)
        self.read_only_tokens = frozenset(config.read_only_tokens)
        self.no_schema_read_tokens = frozenset(config.no_schema_read_tokens)
        self.no_owners_read_tokens = frozenset(config.no_owners_read_tokens)
        # Tokens of every list are valid credentials, whatever `tokens` says.
        self.known_tokens = (
            self.read_only_tokens
            | self.no_schema_read_tokens
            | self.no_owners_read_tokens
            | frozenset(config.oauth_tokens)
        )
        self.associator.max_inputs = config.max_association_inputs
        self.associator.coerce = config.coerce_non_string_values

    def reset(self, *, store: bool = True, counters: bool = True, limits: bool = True) -> None:
        """Forget records and associations (seeded contacts come back), counters, limits."""
        if store:
            for state in self.objects.values():
                state.store.clear()
            self.associations.clear()
            if self.db is not None:
                self.db.clear()
            self.seed_contacts(self.config.contacts)
        if counters:
            self.counters = Counters()
            for state in self.objects.values():  # writes_per_id is kept on the records
                for record in state.store:
                    record.writes = 0
        if limits:
            self.limiter.reset()

    def reset_daily(self) -> None:
        self.limiter.reset_daily()

    def close(self) -> None:
        if self.db is not None:
            for state in self.objects.values():
                state.store.commit()
            self.associations.commit()
            self.db.close()
            self.db = None

    # --- seeding

    def _seed_owners(self, config: SandboxConfig) -> None:
        changed, removed = self.owners.seed(config.owners, config.archived_owners)
        if self.db is not None and (changed or removed):
            self.db.save_owners([o.to_json() for o in changed], removed)

    def seed_contacts(self, count: int) -> int:
        """Make contacts 1..count exist (never removes any); returns how many were made.

        Contact i has e-mail `contact-{i:05d}@example.com`, record id 1_000_000 + i, and
        `external_contact_id` `contact-{i:05d}`. A contact that exists already (by
        e-mail) is left as it is.
        """
        store = self.objects[CONTACTS.type_id].store
        now_ms = int(self.config.clock() * 1000)
        now_iso = iso_from_ms(now_ms)
        made = 0
        for i in range(1, count + 1):
            values = seeded_contact(i)
            object_id = CONTACT_SEED_ID_BASE + i
            if store.find("email", values["email"]) is not None or store.get(object_id):
                continue
            if store.find("external_contact_id", values["external_contact_id"]) is not None:
                del values["external_contact_id"]
            store.create("email", values, now_ms, now_iso, object_id=object_id)
            made += 1
        store.commit()
        return made

    def create_records(self, object_name: str, rows: Iterable[Mapping[str, str]]) -> list[str]:
        """Admin: create records of any object from property values, checked against the
        object's rules (names, values, unique values) but not its required properties
        or the portal's validation rule. Returns the record ids, in order."""
        state = self.object_or_error(object_name)
        schema, store = state.schema, state.store
        now_ms = int(self.config.clock() * 1000)
        now_iso = iso_from_ms(now_ms)
        checked: list[dict[str, str]] = []
        claimed: set[tuple[str, str]] = set()
        for row in rows:
            values: dict[str, str] = {}
            for name, raw in row.items():
                rule = schema.rules.get(name)
                if rule is None or rule.read_only:
                    raise ValueError(f"{state.obj.name} has no writable property {name!r}")
                value = rule.normalize(str(raw))
                if value is None:
                    raise ValueError(rule.describe(name, str(raw))[1])
                values[name] = value
            for name in store.index:
                value = values.get(name)
                if value is None:
                    continue
                if store.find(name, value) is not None or (name, value) in claimed:
                    raise ValueError(f"{name} {value!r} is already held by another record")
                claimed.add((name, value))
            checked.append(values)
        ids = []
        for values in checked:
            key = next((n for n in store.index if n in values), "hs_object_id")
            ids.append(str(store.create(key, values, now_ms, now_iso).object_id))
        store.commit()
        return ids

    # --- schema

    def create_property(self, state: ObjectState, body: Any) -> PropertyDef:
        prop = state.schema.check_new(body, self.now_iso())
        self._add_property(state, prop)
        return prop

    def _add_property(self, state: ObjectState, prop: PropertyDef, *, persist: bool = True) -> None:
        state.schema.add(prop)
        if prop.has_unique_value:
            state.store.add_unique(prop.name)
        if persist:
            state.store.save_property(prop)

    # --- inspection

    def now_iso(self) -> str:
        return iso_from_ms(int(self.config.clock() * 1000))

    def records(
        self, id_property: str | None = None, object_type: str = "calls"
    ) -> dict[str, dict[str, str]]:
        """Stored records keyed by the id value they were created with (or by `id_property`)."""
        out: dict[str, dict[str, str]] = {}
        for record in self.object_or_error(object_type).store:
            key = record.properties.get(id_property or record.id_property)
            if key is None:
                continue
            out[key] = dict(record.properties)
        return out

    def record_associations(
        self, from_object: str, object_id: str, to_object: str
    ) -> dict[str, list[int]]:
        """{to record id: its association type ids} for one record."""
        source = self.object_or_error(from_object).obj
        target = self.object_or_error(to_object).obj
        if not str(object_id).isdigit():
            return {}
        links = self.associations.targets(source.type_id, int(object_id), target.type_id)
        return {str(k): sorted(t for _c, t in v) for k, v in sorted(links.items())}

    def owners_json(self) -> list[dict[str, Any]]:
        return [o.to_json() for o in self.owners.ordered()]

    def counters_json(self) -> CountersJson:
        c = self.counters
        writes: dict[str, int] = {}
        for record in self.store:
            key = record.properties.get(record.id_property, str(record.object_id))
            writes[key] = record.writes
        return {
            "requests_total": c.requests_total,
            "requests_by_status": dict(c.by_status),
            "requests_by_family": dict(c.by_family),
            "requests_by_kind": dict(c.by_kind),
            "rate_limited": dict(c.rate_limited),
            "faults": dict(c.faults),
            "lost_writes_applied": c.lost_writes_applied,
            "lost_writes_discarded": c.lost_writes_discarded,
            "requests_per_window": {str(k): v for k, v in sorted(c.per_window.items())},
            "inputs_written": c.inputs_created + c.inputs_updated,
            "inputs_created": c.inputs_created,
            "inputs_updated": c.inputs_updated,
            "input_errors": c.input_errors,
            "writes_by_object": {k: dict(v) for k, v in c.by_object.items()},
            "writes_per_id": writes,
            "reads": c.reads,
            "read_inputs": c.read_inputs,
            "read_found": c.read_found,
            "read_not_found": c.read_not_found,
            "associations_created": c.associations_created,
            "association_inputs": c.association_inputs,
            "association_errors": c.association_errors,
            "associations_archived": c.associations_archived,
            "associations_total": self.associations.count(),
        }
