"""Batch upsert of one object's records: HubSpot's request checks, per-input
validation, the 200 / 207 / 400 / 409 decision, and the write.

The checks run in the order HubSpot's own layers would meet them: the body is
read as the request type (Jackson: "Invalid input JSON ..."), then the batch
rules (size, idProperty, duplicate ids), then each input's properties, then
create-vs-update rules (required properties, the portal's validation rules,
unique-value conflicts).

Outcome (HUBSPOT.md 1.4, checklist 7):
  all inputs valid                                   -> 200, all written
  some invalid, mode multi_status, every input with
  a unique objectWriteTraceId                        -> 207, the valid ones written
  otherwise                                          -> the first failing input's
                                                        error for the whole request
                                                        (400, or 409 for a conflict),
                                                        nothing written

Contacts upserted by `email` get no partial upsert (DOC-objects: "Partial upserts
are not supported when using email as the idProperty"): one failing input fails
the whole request, trace ids or not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import orjson

from bulkload.sandbox.config import SandboxConfig
from bulkload.sandbox.objects import CALLS, ObjectType
from bulkload.sandbox.schema import Schema
from bulkload.sandbox.store import Record, RecordStore
from bulkload.sandbox.validate import MAX_STRING_LENGTH, doesnt_exist_issue, read_only_issue
from bulkload.sandbox.wire import (
    RULE_CODE,
    RULE_MESSAGE,
    ApiError,
    ErrorDetail,
    UpsertResult,
    api_error,
    dumps,
    invalid_json,
    iso_from_ms,
    json_kind,
    missing_attributes,
    non_unique_message,
    required_message,
    rule_detail_message,
    too_many_inputs,
)

_BATCH_TYPE = "BatchInputSimplePublicObjectBatchInputUpsert"
_INPUT_TYPE = "SimplePublicObjectBatchInputUpsert"
_DEFAULT_ID_PROPERTY = "hs_object_id"  # what HubSpot upserts by when idProperty is left out

Issue = tuple[str, str, str]  # (property name, code, message)
_STR: set[type] = {str}
_STR_OR_NONE: set[type] = {str, type(None)}


@dataclass(slots=True)
class _Input:
    position: int
    id_property: str
    id_value: str
    trace: str | None
    values: dict[str, str]
    issues: list[Issue] | None
    record: Record | None = None


@dataclass(frozen=True, slots=True)
class _Failure:
    position: int
    kind: str  # "invalid" | "required" | "rule" | "conflict"
    issues: tuple[Issue, ...] = ()  # invalid: the property errors
    missing: tuple[str, ...] = ()  # required, rule: the properties not set
    message: str = ""  # conflict: the message


@dataclass(frozen=True, slots=True)
class UpsertOutcome:
    status: int  # 200 or 207; whole-request failures raise ApiError
    body: bytes
    created: int
    updated: int
    failed: int


class Upserter:
    """Runs batch upserts of one object against its schema and record store."""

    def __init__(
        self,
        schema: Schema,
        store: RecordStore,
        config: SandboxConfig,
        obj: ObjectType = CALLS,
    ) -> None:
        self.schema = schema
        self.store = store
        self.obj = obj
        self.required_groups = obj.required
        self.required_message = required_message(obj.label)
        self.configure(config)

    def configure(self, config: SandboxConfig) -> None:
        # The portal's validation rule: properties every write of this object must set.
        self.rule: tuple[str, ...] = tuple(config.required_properties.get(self.obj.name, ()))
        self.mode = config.mode
        self.max_inputs = config.max_inputs
        self.ignore_unknown = config.unknown_properties == "ignore"
        self.coerce = config.coerce_non_string_values
        self.portal_id = config.portal_id
        self.clock: Callable[[], float] = config.clock

    # --- the request

    def run(self, raw: bytes) -> UpsertOutcome:
        """Process one request body. Raises ApiError for a whole-request failure."""
        requested_ms = int(self.clock() * 1000)
        inputs = self._read_batch(raw)
        self._check_id_properties(inputs)
        self._check_duplicates(inputs)
        failures = self._check_writes(inputs)

        if failures:
            traces = [i.trace for i in inputs]
            unique_traces = None not in traces and len(set(traces)) == len(traces)
            by_email = self.obj.email_key and any(i.id_property == "email" for i in inputs)
            if self.mode != "multi_status" or not unique_traces or by_email:
                raise self._whole_request_error(failures[0])

        failed_at = {f.position for f in failures}
        now_ms = int(self.clock() * 1000)
        now_iso = iso_from_ms(now_ms)
        store = self.store
        multi = self.schema.multi
        created_name, modified_name = store.created_name, store.modified_name
        results: list[UpsertResult] = []
        created = 0
        for item in inputs:
            if failed_at and item.position in failed_at:
                continue
            values = item.values
            record = item.record
            if multi:
                self._merge_appends(record, values)
            if record is None:
                store.create(item.id_property, values, now_ms, now_iso)
                created += 1
            else:
                store.update(record, values, now_ms, now_iso)
            # `values` now carries hs_object_id and the create/modified timestamps.
            result: UpsertResult = {
                "id": values["hs_object_id"],
                "properties": values,
                "createdAt": values[created_name],
                "updatedAt": values[modified_name],
                "archived": False,
                "new": record is None,
            }
            if item.trace is not None:
                result["objectWriteTraceId"] = item.trace
            results.append(result)
        self.store.commit()

        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if failures:
            body["numErrors"] = len(failures)
            body["errors"] = [self._standard_error(f, inputs[f.position].trace) for f in failures]
        body["requestedAt"] = iso_from_ms(requested_ms)
        body["startedAt"] = iso_from_ms(requested_ms)
        body["completedAt"] = iso_from_ms(max(now_ms, int(self.clock() * 1000)))
        return UpsertOutcome(
            207 if failures else 200,
            orjson.dumps(body),
            created,
            len(results) - created,
            len(failures),
        )

    # --- step 1: the body as the request type, and each input's properties

    def _read_batch(self, raw: bytes) -> list[_Input]:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise invalid_json(exc.msg, exc.lineno, exc.colno) from None
        if not isinstance(doc, dict):
            raise invalid_json(
                f"Cannot deserialize value of type `{_BATCH_TYPE}` from {json_kind(doc)} value"
            )
        raw_inputs = doc.get("inputs")
        if raw_inputs is None:
            raise missing_attributes(_BATCH_TYPE, ["inputs"])
        if not isinstance(raw_inputs, list):
            raise invalid_json(
                f"Cannot deserialize value of type `java.util.ArrayList` from {json_kind(raw_inputs)} value"
            )
        if len(raw_inputs) > self.max_inputs:
            raise too_many_inputs(self.max_inputs)
        fast = self._read_plain_batch(raw_inputs)
        if fast is not None:
            return fast
        return self._read_inputs(raw_inputs)

    def _read_plain_batch(self, raw_inputs: list[Any]) -> list[_Input] | None:
        """The common batch, checked in C: well-formed inputs, writable names, short strings.

        Returns None when anything is unusual; `_read_inputs` then finds and
        reports it input by input.
        """
        try:
            ids: list[Any] = list(map(dict.get, raw_inputs, repeat("id")))
            rows: list[Any] = list(map(dict.get, raw_inputs, repeat("properties")))
            id_properties: list[Any] = list(map(dict.get, raw_inputs, repeat("idProperty")))
            traces: list[Any] = list(map(dict.get, raw_inputs, repeat("objectWriteTraceId")))
            # join() fails on a missing or non-dict row and on a non-string
            # value; each input's joined length bounds each of its values.
            joined = list(map("".join, map(dict.values, rows)))
        except TypeError:
            return None
        if (
            not set(map(type, ids)) <= _STR
            or "" in ids
            or not set(map(type, id_properties)) <= _STR_OR_NONE
            or not set(map(type, traces)) <= _STR_OR_NONE
            or not set().union(*rows) <= self.schema.writable
            or max(map(len, joined), default=0) > MAX_STRING_LENGTH
        ):
            return None
        inputs = [
            _Input(position, id_property or _DEFAULT_ID_PROPERTY, id_value, trace, row, None)
            for position, (id_property, id_value, trace, row) in enumerate(
                zip(id_properties, ids, traces, rows, strict=True)
            )
        ]
        self._check_columns(inputs)
        return inputs

    def _read_inputs(self, raw_inputs: list[Any]) -> list[_Input]:
        """Input by input (a batch with something unusual in it), raising the first
        whole-request error HubSpot would and collecting each input's issues."""
        inputs: list[_Input] = []
        for position, item in enumerate(raw_inputs):
            if type(item) is not dict:
                raise invalid_json(
                    f"Cannot deserialize value of type `{_INPUT_TYPE}` from {json_kind(item)} value"
                )
            id_value = item.get("id")
            props = item.get("properties")
            if id_value is None or props is None:
                missing = [k for k in ("id", "properties") if item.get(k) is None]
                raise missing_attributes(_INPUT_TYPE, missing)
            if type(id_value) is not str:
                id_value = self._text(id_value, position, "id")
            if id_value == "":
                raise invalid_json(
                    f"id of input {position} is empty; it must be the idProperty value"
                )
            if type(props) is not dict:
                raise invalid_json(
                    f"Cannot deserialize value of type `java.util.LinkedHashMap` from {json_kind(props)} value"
                )
            id_property = item.get("idProperty")
            if id_property is None:
                id_property = _DEFAULT_ID_PROPERTY
            elif type(id_property) is not str:
                id_property = self._text(id_property, position, "idProperty")
            trace = item.get("objectWriteTraceId")
            if trace is not None and type(trace) is not str:
                trace = self._text(trace, position, "objectWriteTraceId")
            entry = _Input(position, id_property, id_value, trace, props, None)
            entry.issues = self._check_one_by_one(entry)
            inputs.append(entry)
        return inputs

    def _check_columns(self, inputs: list[_Input]) -> None:
        """Check each non-plain property across the inputs at once (see validate.py)."""
        rows = [entry.values for entry in inputs]
        present = set().union(*rows)
        for name, rule in self.schema.checked.items():
            if name not in present:
                continue
            column = list(map(dict.get, rows, repeat(name)))
            values = list(filter(None, column))  # absent (None) and clearing ("") pass
            if not values or (rule.bulk is not None and rule.bulk(values)):
                continue
            for entry, value in zip(inputs, column, strict=True):
                if not value:
                    continue
                normal = rule.normalize(value)
                if normal is None:
                    entry.issues = entry.issues or []
                    entry.issues.append((name, *rule.describe(name, value)))
                elif normal is not value:
                    entry.values[name] = normal

    def _check_one_by_one(self, entry: _Input) -> list[Issue] | None:
        """Each property of one input in turn: non-strings, unknown and read-only names too."""
        rules = self.schema.rules
        props = entry.values
        issues: list[Issue] = []
        for name, value in list(props.items()):
            if type(value) is not str:
                value = props[name] = self._text(value, entry.position, name)
            rule = rules.get(name)
            if rule is None:
                if self.ignore_unknown:
                    del props[name]
                else:
                    issues.append((name, *doesnt_exist_issue(name)))
                continue
            if rule.read_only:
                issues.append((name, *read_only_issue(name)))
                continue
            if value == "":
                continue  # clears the value
            normal = rule.normalize(value)
            if normal is None:
                issues.append((name, *rule.describe(name, value)))
            elif normal is not value:
                props[name] = normal
        return issues or None

    def _text(self, value: Any, position: int, name: str) -> str:
        """A non-string JSON value where HubSpot's schema says string."""
        if self.coerce and not isinstance(value, dict | list):
            if value is None:
                return ""
            if isinstance(value, bool):
                return "true" if value else "false"
            return str(value)
        raise invalid_json(
            f"Cannot deserialize value of type `java.lang.String` from {json_kind(value)} value "
            f'(through reference chain: {_BATCH_TYPE}["inputs"]->java.util.ArrayList[{position}]'
            f'->{_INPUT_TYPE}["{name}"])'
        )

    # --- step 2: batch rules

    def _check_id_properties(self, inputs: list[_Input]) -> None:
        for name in dict.fromkeys(i.id_property for i in inputs):
            if not self.schema.is_id_property(name):
                raise api_error(400, non_unique_message(self.obj.type_id, name), "VALIDATION_ERROR")

    def _check_duplicates(self, inputs: list[_Input]) -> None:
        seen: set[str] = set()
        duplicates: dict[str, None] = {}
        # E-mails are one address whatever their case (HubSpot stores them lower-cased).
        fold = self.obj.email_key
        for item in inputs:
            key = item.id_value.lower() if fold and item.id_property == "email" else item.id_value
            if key in seen:
                duplicates[item.id_value] = None
            seen.add(key)
        if duplicates:
            ids = list(duplicates)
            raise api_error(
                400,
                f"Duplicate IDs found in batch input: [{', '.join(ids)}]. IDs must be unique",
                "VALIDATION_ERROR",
                context={"ids": ids},
            )

    # --- step 3: create-vs-update rules

    def _check_writes(self, inputs: list[_Input]) -> list[_Failure]:
        store = self.store
        rules = self.schema.rules
        plain = self.schema.plain
        unique_names = list(store.index)
        required_groups = self.required_groups
        rule = self.rule
        title = self.obj.title
        failures: list[_Failure] = []
        # Who each unique value will belong to after this batch (see _claims);
        # built only when an input sets a unique property besides its idProperty.
        claims: dict[tuple[str, str], int] | None = None
        for item in inputs:
            if item.issues:
                failures.append(_Failure(item.position, "invalid", tuple(item.issues)))
                continue
            id_property, id_value = item.id_property, item.id_value
            if id_property in plain:
                normal = id_value if len(id_value) <= MAX_STRING_LENGTH else None
            else:
                normal = rules[id_property].normalize(id_value)
            if normal is None:
                code, message = rules[id_property].describe(id_property, id_value)
                failures.append(_Failure(item.position, "invalid", ((id_property, code, message),)))
                continue
            values = item.values
            values[id_property] = item.id_value = normal  # `id` wins over a value in properties
            record = item.record = store.find(id_property, normal)
            if record is None:
                missing: tuple[str, ...] = ()
                for group in required_groups:  # at least one of each group must be set
                    for name in group:
                        if values.get(name):
                            break
                    else:
                        missing += group
                if missing:
                    failures.append(_Failure(item.position, "required", missing=missing))
                    continue
            if rule:
                unset = tuple(name for name in rule if not values.get(name))
                if unset:
                    failures.append(_Failure(item.position, "rule", missing=unset))
                    continue
            for name in unique_names:
                value = values.get(name) if name != id_property else None
                if not value:
                    continue
                holder = store.find(name, value)
                if holder is not None and holder is not record:
                    message = f"{title} already exists. Existing ID: {holder.object_id}"
                    failures.append(_Failure(item.position, "conflict", message=message))
                    break
                if claims is None:
                    claims = self._claims(inputs)
                owner = _owner(item)
                if claims.setdefault((name, value), owner) != owner:
                    message = f"{title} already exists. Another input in this batch sets {name} to {value}"
                    failures.append(_Failure(item.position, "conflict", message=message))
                    break
        return failures

    def _claims(self, inputs: list[_Input]) -> dict[tuple[str, str], int]:
        """(unique property, value) -> the record's object id, or -(position + 1) for a
        record this batch creates, for every input's own id."""
        claims: dict[tuple[str, str], int] = {}
        for item in inputs:
            if item.issues or item.id_property not in self.store.index:
                continue
            key = self._id_key(item)
            if key is None:
                continue
            record = self.store.find(item.id_property, key)
            claims[(item.id_property, key)] = (
                record.object_id if record is not None else -(item.position + 1)
            )
        return claims

    def _id_key(self, item: _Input) -> str | None:
        """The input's id as stored (e-mails lower-cased), or None if it is invalid."""
        if item.id_property in self.schema.plain:
            return item.id_value if len(item.id_value) <= MAX_STRING_LENGTH else None
        return self.schema.rules[item.id_property].normalize(item.id_value)

    # --- step 4: the write (in run)

    def _merge_appends(self, record: Record | None, values: dict[str, str]) -> None:
        """A multi-select value with a leading `;` adds to the stored options."""
        multi = self.schema.multi
        stored = record.properties if record is not None else {}
        for name, value in values.items():
            if name in multi and value.startswith(";"):
                current = [v for v in stored.get(name, "").split(";") if v]
                added = [v for v in value.split(";") if v and v not in current]
                values[name] = ";".join(current + added)

    # --- error bodies

    def _validation_message(self, issues: tuple[Issue, ...]) -> str:
        listing = [
            {
                "isValid": False,
                "message": message,
                "error": code,
                "name": name,
                "localizedErrorMessage": message,
                "portalId": self.portal_id,
            }
            for name, code, message in issues
        ]
        return "Property values were not valid: " + dumps(listing).decode()

    @staticmethod
    def _details(issues: tuple[Issue, ...]) -> list[ErrorDetail]:
        return [
            {"message": message, "code": code, "context": {"propertyName": [name]}}
            for name, code, message in issues
        ]

    def _whole_request_error(self, failure: _Failure) -> ApiError:
        if failure.kind == "invalid":
            return api_error(
                400,
                self._validation_message(failure.issues),
                "VALIDATION_ERROR",
                errors=self._details(failure.issues),
            )
        if failure.kind == "required":
            return api_error(
                400,
                self.required_message,
                "VALIDATION_ERROR",
                context={"properties": list(failure.missing)},
            )
        if failure.kind == "rule":
            # Names the rule's properties, never the input (no trace id, no id).
            return api_error(
                400, RULE_MESSAGE, "VALIDATION_ERROR", errors=_rule_details(failure.missing)
            )
        return api_error(409, failure.message, "CONFLICT")

    def _standard_error(self, failure: _Failure, trace: str | None) -> dict[str, Any]:
        traces = [trace] if trace is not None else []
        if failure.kind == "invalid":
            return {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": self._validation_message(failure.issues),
                "context": {"objectWriteTraceId": traces},
                "errors": self._details(failure.issues),
            }
        if failure.kind == "required":
            return {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": self.required_message,
                "context": {"objectWriteTraceId": traces, "properties": list(failure.missing)},
            }
        if failure.kind == "rule":
            return {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": RULE_MESSAGE,
                "context": {"objectWriteTraceId": traces},
                "errors": _rule_details(failure.missing),
            }
        return {
            "status": "error",
            "category": "CONFLICT",
            "message": failure.message,
            "context": {"objectWriteTraceId": traces},
        }


def _owner(item: _Input) -> int:
    return item.record.object_id if item.record is not None else -(item.position + 1)


def _rule_details(missing: tuple[str, ...]) -> list[ErrorDetail]:
    return [
        {
            "message": rule_detail_message(name),
            "code": RULE_CODE,
            "context": {"propertyName": [name]},
        }
        for name in missing
    ]
