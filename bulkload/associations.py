"""The association step: after a row lands, associate its record with the records its
association columns name (`--associate COLUMN=OBJECT.PROPERTY`).

HubSpot's batch upsert takes no associations (every version up to 2026-09), so this is a
second, journaled step. Every (row, target, value) pair is in the journal: pending from
the transaction that records its row as landed, then created or failed. A crash leaves
pairs pending and the next run finishes them; associating twice is a no-op.

Work is packed full: a value is looked up (`batch/read` by the target's property) once
per job, 100 values a request, and pairs go 2,000 a request (`batch/associate/default`);
a partly filled pack is sent only when nothing else will fill it (the upserts are done).
`hs_object_id` values need no lookup. Both requests go through the sender's request loop
(the rate limiter, the daily budget, retries, splitting) like the upserts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bulkload.errors import MappingError
from bulkload.journal import Journal, LinkResult
from bulkload.models import Target
from bulkload.sender import LinkApi, Sender

LOOKUP_SIZE = 100  # "batch endpoints are limited to 100 inputs per request"
ASSOCIATE_SIZE = 2_000  # "Batch create associations: limited to 2,000 inputs per request body"
OWN = -1  # the target index of lookups of the job's own records (by id value)


CONTACTS = frozenset({"contacts", "contact", "0-1"})


def check_targets(targets: Sequence[Target], properties_of: Callable[[str], list[dict[str, Any]] | None]) -> None:
    """Refuse (exit 2, before any write) a target HubSpot cannot look records up by: its
    property must be `hs_object_id` or a unique-value property (`contacts.email` is
    always allowed). `properties_of(object)` is None when the schema cannot be read (403):
    then only those two are accepted unchecked."""
    read: dict[str, dict[str, dict[str, Any]] | None] = {}
    for target in targets:
        if target.property_name == "hs_object_id" or (target.object_type in CONTACTS and target.folds_case):
            continue
        if target.object_type not in read:
            items = properties_of(target.object_type)
            read[target.object_type] = None if items is None else {str(p.get("name")): p for p in items}
        props = read[target.object_type]
        if props is None:
            # No schema scope: whether the property is unique cannot be known, and a
            # non-unique one would fail every lookup after every call was written.
            raise MappingError(f"--associate {target}: the token may not read the {target.object_type} schema, so "
                               f"{target.property_name!r} cannot be checked to be a unique-value property; use "
                               f"hs_object_id (or contacts.email), or grant the schema read scope")
        prop = props.get(target.property_name)
        if prop is None:
            raise MappingError(f"--associate {target}: {target.object_type} has no property "
                               f"{target.property_name!r}")
        if not prop.get("hasUniqueValue"):
            raise MappingError(f"--associate {target}: {target.property_name!r} is not a unique-value property of "
                               f"{target.object_type}, so a value may name several records; use hs_object_id or a "
                               "property with hasUniqueValue")


@dataclass
class LinkTask:
    """One request of the association step."""

    kind: str  # "lookup" | "associate"
    target: int
    object_type: str
    property_name: str = ""
    values: list[str] = field(default_factory=list)  # lookup
    pairs: list[tuple[int, str, str, str]] = field(default_factory=list)  # (row, value, from id, to id)

    def size(self) -> int:
        return len(self.values) or len(self.pairs)


@dataclass
class AssociationStep:
    """Plans the association requests from the journal and runs them on sender threads."""

    journal: Journal
    targets: tuple[Target, ...]
    object_type: str  # the job's object: the `from` of every pair
    id_property: str
    _looking: dict[int, set[str]] = field(default_factory=dict)
    _linking: dict[int, set[tuple[int, str]]] = field(default_factory=dict)

    def tasks(self, *, final: bool, room: int) -> list[LinkTask]:
        """The requests worth sending now: full packs, or (when `final`) whatever is left."""
        out: list[LinkTask] = []
        own = self.journal.rows_without_record_id(sorted(self._looking.get(OWN, set())), LOOKUP_SIZE)
        if own and (final or len(own) == LOOKUP_SIZE) and len(out) < room:
            out.append(self._start(LinkTask("lookup", OWN, self.object_type, self.id_property, values=own)))
        for t, target in enumerate(self.targets):
            if len(out) >= room:
                break
            if target.needs_lookup:
                values = self.journal.values_to_look_up(t, target.object_type, target.property_name,
                                                        sorted(self._looking.get(t, set())), LOOKUP_SIZE)
                if values and (final or len(values) == LOOKUP_SIZE):
                    out.append(self._start(LinkTask("lookup", t, target.object_type, target.property_name,
                                                    values=values)))
                    continue
            if len(out) >= room:
                break
            pairs = self.journal.pairs_ready(t, sorted(self._linking.get(t, set())), ASSOCIATE_SIZE)
            # A last, partial pack waits while lookups of its target are out: they add to it.
            if pairs and (len(pairs) == ASSOCIATE_SIZE or (final and not self._looking.get(t))):
                out.append(self._start(LinkTask("associate", t, target.object_type, pairs=pairs)))
        return out

    def _start(self, task: LinkTask) -> LinkTask:
        if task.kind == "lookup":
            self._looking.setdefault(task.target, set()).update(task.values)
        else:
            self._linking.setdefault(task.target, set()).update((r, v) for r, v, _, _ in task.pairs)
        return task

    def finished(self, task: LinkTask) -> None:
        """The task came back (recorded or not): its values and pairs may be planned again."""
        if task.kind == "lookup":
            self._looking.get(task.target, set()).difference_update(task.values)
        else:
            self._linking.get(task.target, set()).difference_update((r, v) for r, v, _, _ in task.pairs)

    @property
    def busy(self) -> bool:
        return any(self._looking.values()) or any(self._linking.values())

    def has_work(self) -> bool:
        return self.journal.pending_pairs() > 0

    # ---- on a sender thread ------------------------------------------------------------------

    @staticmethod
    def run(task: LinkTask, sender: Sender, client: LinkApi, from_type: str) -> LinkResult:
        if task.kind == "lookup":
            answer = sender.lookup(client, task.object_type, task.property_name, task.values)
            return LinkResult("lookup", task.target, task.object_type, task.property_name, found=answer.found,
                              not_found=sorted(answer.not_found), unanswered=answer.missing)
        rows_of: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for row, value, from_id, to_id in task.pairs:
            rows_of.setdefault((from_id, to_id), []).append((row, value))
        outcome = sender.associate(client, from_type, task.object_type, list(rows_of))
        made = [rv for pair in outcome.made for rv in rows_of[pair]]
        failed = [(r, v, f) for pair, f in outcome.failures.items() for r, v in rows_of[pair]]
        return LinkResult("associate", task.target, task.object_type, made=made, failed=failed)
