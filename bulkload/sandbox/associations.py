"""Associations between records: the store (both directions, as HubSpot keeps them)
and the batch endpoints, v4 and date-based alike:

  POST .../{from}/{to}/batch/associate/default  {inputs: [{from: {id}, to: {id}}]}
  POST .../{from}/{to}/batch/create             {inputs: [{from, to, types: [...]}]}
  POST .../{from}/{to}/batch/archive            {inputs: [{from: {id}, to: [{id}]}]}
  GET  /crm/v4/objects/{from}/{id}/associations/{to}   (and /crm/objects/2026-03/...)

A pair naming a record that does not exist is a per-pair error in the body (the
others are still made); associating a pair again is a no-op that still answers
a result. At most `max_association_inputs` (2,000) inputs per request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bulkload.sandbox.objects import AssociationType, ObjectType, PairTypes, association_types
from bulkload.sandbox.store import AssociationRow, Database, RecordStore
from bulkload.sandbox.wire import (
    api_error,
    invalid_json,
    iso_from_ms,
    json_kind,
    missing_attributes,
    non_string,
    too_many_inputs,
)

MAX_READ_LIMIT = 500  # the association read's default and largest page

Links = dict[int, dict[int, set[tuple[str, int]]]]  # from id -> to id -> {(category, typeId)}


class AssociationStore:
    """Every association, per (from object, to object), in both directions."""

    def __init__(self, db: Database | None = None) -> None:
        self.links: dict[tuple[str, str], Links] = {}
        self._db = db
        self._added: list[AssociationRow] = []
        self._removed: list[AssociationRow] = []
        if db is not None:
            for row in db.associations():
                self._put(row)

    def _put(self, row: AssociationRow) -> bool:
        from_type, from_id, to_type, to_id, category, type_id = row
        types = (
            self.links.setdefault((from_type, to_type), {})
            .setdefault(from_id, {})
            .setdefault(to_id, set())
        )
        if (category, type_id) in types:
            return False
        types.add((category, type_id))
        if self._db is not None:
            self._added.append(row)
        return True

    def add(
        self,
        from_type: str,
        from_id: int,
        to_type: str,
        to_id: int,
        kind: AssociationType,
        reverse_type_id: int,
    ) -> bool:
        """Associate the pair with `kind` (and the reverse pair with its reverse type);
        True if the pair was not associated with that type before."""
        new = self._put((from_type, from_id, to_type, to_id, kind.category, kind.type_id))
        self._put((to_type, to_id, from_type, from_id, kind.category, reverse_type_id))
        return new

    def remove(self, from_type: str, from_id: int, to_type: str, to_id: int) -> bool:
        """Remove every association between the two records; True if there was one."""
        found = False
        for a_type, a_id, b_type, b_id in (
            (from_type, from_id, to_type, to_id),
            (to_type, to_id, from_type, from_id),
        ):
            targets = self.links.get((a_type, b_type), {}).get(a_id)
            if not targets or b_id not in targets:
                continue
            found = True
            for category, type_id in targets.pop(b_id):
                if self._db is not None:
                    self._removed.append((a_type, a_id, b_type, b_id, category, type_id))
        return found

    def targets(
        self, from_type: str, from_id: int, to_type: str
    ) -> dict[int, set[tuple[str, int]]]:
        return self.links.get((from_type, to_type), {}).get(from_id, {})

    def count(self) -> int:
        return sum(len(t) for links in self.links.values() for t in links.values())

    def commit(self) -> None:
        if self._db is None or not (self._added or self._removed):
            return
        added, removed = self._added, self._removed
        self._added, self._removed = [], []
        self._db.save_associations(added, removed)

    def clear(self) -> None:
        self.links.clear()
        self._added.clear()
        self._removed.clear()


@dataclass(frozen=True, slots=True)
class AssociationOutcome:
    status: int
    body: bytes
    inputs: int
    created: int  # pairs newly associated
    failed: int


@dataclass(frozen=True, slots=True)
class _Pair:
    from_id: str
    to_id: str
    types: tuple[tuple[str, int], ...] = ()  # batch/create: (category, typeId)


class Associator:
    """The association endpoints over the records of every object."""

    def __init__(
        self,
        store: AssociationStore,
        records: Mapping[str, RecordStore],
        clock: Callable[[], float],
        *,
        max_inputs: int = 2000,
        coerce: bool = False,
    ) -> None:
        self.store = store
        self.records = records
        self.clock = clock
        self.max_inputs = max_inputs
        self.coerce = coerce

    # --- the batch endpoints

    def batch(
        self,
        action: str,
        from_obj: ObjectType,
        to_obj: ObjectType,
        raw: bytes,
        *,
        partial_status: int,
        date_based: bool,
    ) -> AssociationOutcome:
        """`action` is "associate/default", "create" or "archive". Raises ApiError for a
        whole-request failure."""
        started = iso_from_ms(int(self.clock() * 1000))
        pair_types = self._pair_types(from_obj, to_obj)
        if action == "archive":
            pairs = self._read_archive(raw)
            for pair in pairs:
                if pair.from_id.isdigit() and pair.to_id.isdigit():
                    self.store.remove(
                        from_obj.type_id, int(pair.from_id), to_obj.type_id, int(pair.to_id)
                    )
            self.store.commit()
            if not date_based:
                return AssociationOutcome(204, b"", len(pairs), 0, 0)
            done = {
                "status": "COMPLETE",
                "results": [],
                "startedAt": started,
                "completedAt": iso_from_ms(int(self.clock() * 1000)),
            }
            return AssociationOutcome(200, orjson.dumps(done), len(pairs), 0, 0)

        default = action == "associate/default"
        pairs = self._read_pairs(raw, with_types=not default)
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        seen: set[_Pair] = set()
        created = 0
        from_store = self.records[from_obj.type_id]
        to_store = self.records[to_obj.type_id]
        for pair in pairs:
            bad = [
                (obj, value)
                for obj, store, value in (
                    (from_obj, from_store, pair.from_id),
                    (to_obj, to_store, pair.to_id),
                )
                if not value.isdigit() or store.get(int(value)) is None
            ]
            if bad:
                errors.append(_invalid_ids(pair, bad))
                continue
            kinds = [pair_types.default] if default else self._kinds(pair, pair_types)
            if isinstance(kinds, dict):
                errors.append(kinds)
                continue
            for kind in kinds:
                created += self.store.add(
                    from_obj.type_id,
                    int(pair.from_id),
                    to_obj.type_id,
                    int(pair.to_id),
                    kind,
                    pair_types.reverse[kind.type_id],
                )
            if pair in seen:
                continue  # the same pair twice: one result
            seen.add(pair)
            if default:
                results.append(
                    {
                        "from": {"id": pair.from_id},
                        "to": {"id": pair.to_id},
                        "associationSpec": {
                            "associationCategory": kinds[0].category,
                            "associationTypeId": kinds[0].type_id,
                        },
                    }
                )
            else:
                results.append(
                    {
                        "fromObjectTypeId": from_obj.type_id,
                        "fromObjectId": pair.from_id,
                        "toObjectTypeId": to_obj.type_id,
                        "toObjectId": pair.to_id,
                        "labels": [k.label for k in kinds if k.label is not None],
                    }
                )
        self.store.commit()
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
        body["startedAt"] = started
        body["completedAt"] = iso_from_ms(int(self.clock() * 1000))
        status = partial_status if errors else (200 if default else 201)
        return AssociationOutcome(status, orjson.dumps(body), len(pairs), created, len(errors))

    # --- the read of one record's associations

    def read(
        self,
        from_obj: ObjectType,
        record_id: str,
        to_obj: ObjectType,
        query: dict[str, list[str]],
        base_url: str,
    ) -> dict[str, Any]:
        self._pair_types(from_obj, to_obj)
        limit = _int_param(query, "limit", MAX_READ_LIMIT)
        if not 1 <= limit <= MAX_READ_LIMIT:
            raise api_error(
                400,
                f"limit must be between 1 and {MAX_READ_LIMIT}, not {limit}",
                "VALIDATION_ERROR",
            )
        after = _int_param(query, "after", 0)
        targets = (
            self.store.targets(from_obj.type_id, int(record_id), to_obj.type_id)
            if record_id.isdigit()
            else {}
        )
        pair_types = association_types(from_obj.type_id, to_obj.type_id)
        labels = pair_types.types if pair_types is not None else {}
        ordered = sorted(targets)
        page = ordered[after : after + limit]
        results = []
        for to_id in page:
            kinds = sorted(targets[to_id], key=lambda k: (k[1], k[0]))
            results.append(
                {
                    # A number, as HubSpot's own example shows it (the spec says string).
                    "toObjectId": to_id,
                    "associationTypes": [
                        labels.get(k, AssociationType(k[0], k[1])).to_json() for k in kinds
                    ],
                }
            )
        body: dict[str, Any] = {"results": results}
        if after + limit < len(ordered):
            nxt = str(after + limit)
            body["paging"] = {
                "next": {"after": nxt, "link": f"{base_url}?limit={limit}&after={nxt}"}
            }
        return body

    # --- reading the body

    def _pair_types(self, from_obj: ObjectType, to_obj: ObjectType) -> PairTypes:
        pair = association_types(from_obj.type_id, to_obj.type_id)
        if pair is None:
            raise api_error(
                400,
                f"There are no association types from {from_obj.type_id} to {to_obj.type_id}",
                "VALIDATION_ERROR",
            )
        return pair

    def _inputs(self, raw: bytes, batch_type: str) -> list[Any]:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise invalid_json(exc.msg, exc.lineno, exc.colno) from None
        if not isinstance(doc, dict):
            raise invalid_json(
                f"Cannot deserialize value of type `{batch_type}` from {json_kind(doc)} value"
            )
        inputs = doc.get("inputs")
        if inputs is None:
            raise missing_attributes(batch_type, ["inputs"])
        if not isinstance(inputs, list):
            raise invalid_json(
                f"Cannot deserialize value of type `java.util.ArrayList` from {json_kind(inputs)} value"
            )
        if len(inputs) > self.max_inputs:
            raise too_many_inputs(self.max_inputs)
        return inputs

    def _object_id(self, ref: Any, where: str, batch_type: str, position: int) -> str:
        if not isinstance(ref, dict) or ref.get("id") is None:
            raise missing_attributes("PublicObjectId", ["id"])
        value = ref["id"]
        if type(value) is str:
            return value
        if self.coerce and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise non_string(value, batch_type, position, f"{where}.id")

    def _read_pairs(self, raw: bytes, *, with_types: bool) -> list[_Pair]:
        batch_type = (
            "BatchInputPublicAssociationMultiPost"
            if with_types
            else "BatchInputPublicDefaultAssociationMultiPost"
        )
        input_type = (
            "PublicAssociationMultiPost" if with_types else "PublicDefaultAssociationMultiPost"
        )
        pairs = []
        for position, item in enumerate(self._inputs(raw, batch_type)):
            if not isinstance(item, dict):
                raise invalid_json(
                    f"Cannot deserialize value of type `{input_type}` from {json_kind(item)} value"
                )
            required = ["from", "to", "types"] if with_types else ["from", "to"]
            missing = [k for k in required if item.get(k) is None]
            if missing:
                raise missing_attributes(input_type, missing)
            types: tuple[tuple[str, int], ...] = ()
            if with_types:
                raw_types = item["types"]
                if not isinstance(raw_types, list):
                    raise invalid_json(
                        "Cannot deserialize value of type `java.util.ArrayList` from "
                        f"{json_kind(raw_types)} value"
                    )
                types = tuple(_association_spec(t) for t in raw_types)
            pairs.append(
                _Pair(
                    self._object_id(item["from"], "from", batch_type, position),
                    self._object_id(item["to"], "to", batch_type, position),
                    types,
                )
            )
        return pairs

    def _read_archive(self, raw: bytes) -> list[_Pair]:
        batch_type = "BatchInputPublicAssociationMultiArchive"
        pairs = []
        for position, item in enumerate(self._inputs(raw, batch_type)):
            if not isinstance(item, dict):
                raise invalid_json(
                    "Cannot deserialize value of type `PublicAssociationMultiArchive` from "
                    f"{json_kind(item)} value"
                )
            missing = [k for k in ("from", "to") if item.get(k) is None]
            if missing:
                raise missing_attributes("PublicAssociationMultiArchive", missing)
            targets = item["to"]
            if not isinstance(targets, list):
                raise invalid_json(
                    "Cannot deserialize value of type `java.util.ArrayList` from "
                    f"{json_kind(targets)} value"
                )
            from_id = self._object_id(item["from"], "from", batch_type, position)
            for target in targets:
                pairs.append(_Pair(from_id, self._object_id(target, "to", batch_type, position)))
        return pairs

    def _kinds(self, pair: _Pair, pair_types: PairTypes) -> list[AssociationType] | dict[str, Any]:
        """The association types a batch/create input asks for, or its error."""
        if not pair.types:
            return _pair_error(pair, "At least one association type must be given", {})
        kinds = []
        for category, type_id in pair.types:
            kind = pair_types.types.get((category, type_id))
            if kind is None:
                return _pair_error(
                    pair,
                    f"{category} association type {type_id} is not valid for this pair of "
                    "object types",
                    {"associationTypeId": [str(type_id)]},
                )
            kinds.append(kind)
        return kinds


def _association_spec(raw: Any) -> tuple[str, int]:
    if not isinstance(raw, dict):
        raise invalid_json(
            f"Cannot deserialize value of type `AssociationSpec` from {json_kind(raw)} value"
        )
    missing = [k for k in ("associationCategory", "associationTypeId") if raw.get(k) is None]
    if missing:
        raise missing_attributes("AssociationSpec", missing)
    category, type_id = raw["associationCategory"], raw["associationTypeId"]
    categories = ("HUBSPOT_DEFINED", "INTEGRATOR_DEFINED", "USER_DEFINED", "WORK")
    if category not in categories:
        raise invalid_json(
            f"Cannot deserialize value of type `AssociationCategory` from String {category!r}: "
            f"not one of the values accepted for Enum class: [{', '.join(categories)}]"
        )
    if isinstance(type_id, bool) or not isinstance(type_id, int):
        raise invalid_json(
            f"Cannot deserialize value of type `int` from {json_kind(type_id)} value"
        )
    return category, type_id


def _pair_error(pair: _Pair, message: str, context: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": message,
        "context": {"fromObjectId": [pair.from_id], "toObjectId": [pair.to_id], **context},
    }


def _invalid_ids(pair: _Pair, bad: list[tuple[ObjectType, str]]) -> dict[str, Any]:
    """HubSpot's wording for an association to a record that does not exist, naming the
    pair (fromObjectId, toObjectId) besides the invalid record(s)."""
    return _pair_error(
        pair,
        "One or more associations are invalid",
        {
            "INVALID_OBJECT_IDS": [f"{obj.label}={value} is not valid" for obj, value in bad],
            "objectId": [value for _obj, value in bad],
            "objectType": [obj.label for obj, _value in bad],
        },
    )


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[0])
    except ValueError:
        value = -1
    if value < 0:
        raise api_error(
            400,
            f"Unable to process query parameter {name}: {values[0]!r} is not valid",
            "VALIDATION_ERROR",
        )
    return value
