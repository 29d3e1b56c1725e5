"""Batch read of one object's records: `POST .../{object}/batch/read`.

    {"idProperty": "email", "inputs": [{"id": "a@example.com"}], "properties": ["email"]}

Without idProperty (or with `hs_object_id`) ids are record ids; otherwise the
idProperty must be a unique-value property, or contacts' `email` (matched
case-insensitively: HubSpot stores e-mails lower-cased). Ids that match nothing
come back in one OBJECT_NOT_FOUND error with `context.ids`, in HubSpot's wording,
beside the records that were found. Results are in record-id order, never in
input order: a client must map them by id or property, as with HubSpot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bulkload.sandbox.objects import ObjectType
from bulkload.sandbox.schema import Schema
from bulkload.sandbox.store import Record, RecordStore
from bulkload.sandbox.wire import (
    api_error,
    invalid_json,
    iso_from_ms,
    json_kind,
    missing_attributes,
    non_string,
    not_found_message,
    too_many_inputs,
)

_BATCH_TYPE = "BatchReadInputSimplePublicObjectId"
_HISTORY_LIMIT = 50  # batch reads with propertiesWithHistory (HUBSPOT.md 1.2)
_RECORD_ID = "hs_object_id"


@dataclass(frozen=True, slots=True)
class ReadOutcome:
    body: bytes
    inputs: int
    found: int
    missing: int  # ids that matched no record (the body lists them in errors)


class Reader:
    """Batch reads of one object's records."""

    def __init__(
        self,
        obj: ObjectType,
        schema: Schema,
        store: RecordStore,
        clock: Callable[[], float],
        *,
        max_inputs: int = 100,
        coerce: bool = False,
    ) -> None:
        self.obj = obj
        self.schema = schema
        self.store = store
        self.clock = clock
        self.max_inputs = max_inputs
        self.coerce = coerce

    def run(self, raw: bytes) -> ReadOutcome:
        started = iso_from_ms(int(self.clock() * 1000))
        id_property, ids, names, history = self._read_body(raw)
        by_record_id = id_property in (None, _RECORD_ID)
        if not by_record_id and not self.schema.is_id_property(id_property or ""):
            raise api_error(
                400,
                f"Unable to perform read by non-unique {self.obj.type_id} property {id_property}",
                "VALIDATION_ERROR",
            )
        fold = id_property == "email" and self.obj.email_key
        keys = [i.lower() for i in ids] if fold else ids
        _check_duplicates(ids, keys)

        found: dict[int, Record] = {}
        missing: list[str] = []
        for given, key in zip(ids, keys, strict=True):
            if by_record_id:
                record = self.store.get(int(key)) if key.isdigit() else None
            else:
                record = self.store.find(id_property or "", key)
            if record is None:
                missing.append(given)
            else:
                found[record.object_id] = record

        created, modified = self.store.created_name, self.store.modified_name
        wanted = dict.fromkeys((*self.obj.default_read, *names))
        wanted = {n: None for n in wanted if n in self.schema.properties}
        for system in (_RECORD_ID, created, modified):
            wanted[system] = None
        results = []
        for object_id in sorted(found):
            record = found[object_id]
            props = record.properties
            result: dict[str, Any] = {
                "id": str(object_id),
                "properties": {name: props.get(name) for name in wanted},
                "createdAt": props[created],
                "updatedAt": props[modified],
                "archived": False,
            }
            if history:
                result["propertiesWithHistory"] = {
                    name: [
                        {"value": props[name], "timestamp": props[modified], "sourceType": "API"}
                    ]
                    for name in history
                    if name in props
                }
            results.append(result)
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if missing:
            body["numErrors"] = 1
            body["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": not_found_message(self.obj.label),
                    "context": {"ids": missing},
                }
            ]
        body["startedAt"] = started
        body["completedAt"] = iso_from_ms(int(self.clock() * 1000))
        return ReadOutcome(orjson.dumps(body), len(ids), len(found), len(missing))

    def _read_body(self, raw: bytes) -> tuple[str | None, list[str], list[str], list[str]]:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise invalid_json(exc.msg, exc.lineno, exc.colno) from None
        if not isinstance(doc, dict):
            raise invalid_json(
                f"Cannot deserialize value of type `{_BATCH_TYPE}` from {json_kind(doc)} value"
            )
        inputs = doc.get("inputs")
        if inputs is None:
            raise missing_attributes(_BATCH_TYPE, ["inputs"])
        if not isinstance(inputs, list):
            raise invalid_json(
                f"Cannot deserialize value of type `java.util.ArrayList` from {json_kind(inputs)} value"
            )
        names = _string_list(doc.get("properties"), "properties")
        history = _string_list(doc.get("propertiesWithHistory"), "propertiesWithHistory")
        if history and len(inputs) > _HISTORY_LIMIT:
            raise api_error(
                400,
                f"The maximum number of inputs supported in a batch request for property "
                f"histories is {_HISTORY_LIMIT}. Please reduce the number of items and try again",
                "VALIDATION_ERROR",
            )
        if len(inputs) > self.max_inputs:
            raise too_many_inputs(self.max_inputs)
        id_property = doc.get("idProperty")
        if id_property is not None and type(id_property) is not str:
            raise invalid_json(
                "Cannot deserialize value of type `java.lang.String` from "
                f"{json_kind(id_property)} value"
            )
        ids = []
        for position, item in enumerate(inputs):
            if not isinstance(item, dict):
                raise invalid_json(
                    "Cannot deserialize value of type `SimplePublicObjectId` from "
                    f"{json_kind(item)} value"
                )
            value = item.get("id")
            if value is None:
                raise missing_attributes("SimplePublicObjectId", ["id"])
            if type(value) is not str:
                if not (self.coerce and isinstance(value, int) and not isinstance(value, bool)):
                    raise non_string(value, _BATCH_TYPE, position, "id")
                value = str(value)
            ids.append(value)
        return id_property or None, ids, names, history


def _string_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(type(v) is str for v in value):
        raise invalid_json(f"{key} must be an array of property names")
    return value


def _check_duplicates(ids: list[str], keys: list[str]) -> None:
    if len(set(keys)) == len(keys):
        return
    seen: set[str] = set()
    duplicates: dict[str, None] = {}
    for given, key in zip(ids, keys, strict=True):
        if key in seen:
            duplicates[given] = None
        seen.add(key)
    listed = list(duplicates)
    raise api_error(
        400,
        f"Duplicate IDs found in batch input: [{', '.join(listed)}]. IDs must be unique",
        "VALIDATION_ERROR",
        context={"ids": listed},
    )
