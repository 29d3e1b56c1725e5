"""Read HubSpot's error bodies into bulkload's taxonomy: one FailedRow per input.

HubSpot reports a bad input in two places: in a partial answer's `errors[]`
(StandardError, tied to inputs by `context.objectWriteTraceId` or `context.ids`), or as a
whole-request 400/409 `Error` body. The code that says *what* went wrong sits in
`errors[].code`, or only inside the JSON array embedded in the message ("Property values
were not valid: [{...,"error":"INVALID_OPTION","name":...}]"), and the property in
`context.propertyName` or `context.properties`. This module reads all of those
tolerantly (HubSpot: "treat all fields as optional"), keeps HubSpot's own message, and
lists every problem of an input (a row with three bad values has three), so a person
reading the report sees exactly what HubSpot said.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from bulkload.models import FailedRow, Problem, UpsertInput, trace_id_of
from bulkload.taxonomy import ErrorType

__all__ = [
    "BATCH_WIDE_ERROR_TYPES",
    "Diagnosis",
    "classify",
    "diagnose",
    "embedded_validations",
    "failure_for_input",
    "failures_from_error_body",
    "failures_from_multi_status",
    "unknown_failure",
]

# Error types that describe the request, not any one input: every input of the batch
# fails the same way, so the run stops at the first such answer (see errors.py).
BATCH_WIDE_ERROR_TYPES = frozenset({ErrorType.ID_PROPERTY_NOT_UNIQUE.value})


@dataclass(frozen=True)
class Diagnosis:
    """What one HubSpot error object says, before it is tied to an input."""

    error_type: str
    message: str
    code: str | None
    property_name: str | None
    hubspot_category: str | None
    correlation_id: str | None
    trace_ids: tuple[str, ...]  # context.objectWriteTraceId
    ids: tuple[str, ...]  # context.ids (id values)
    # Every (code, property, message) the body lists for the input, first one first.
    items: tuple[tuple[str | None, str | None, str], ...] = ()


# --- reading loose JSON -------------------------------------------------------


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _strings(value: object) -> list[str]:
    """A context entry: HubSpot types these map<string, string[]>, but accept a bare string."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [v if isinstance(v, str) else str(v) for v in value if v is not None]
    return []


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _details(body: Mapping[str, object]) -> list[Mapping[str, object]]:
    errors = body.get("errors")
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


_EMBEDDED_CODE = re.compile(r'"error"\s*:\s*"([A-Za-z_]+)"')
_EMBEDDED_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')


def embedded_validations(message: str) -> list[dict[str, object]]:
    """The items of every JSON array embedded in a message, e.g.
    "Property values were not valid: [{"isValid":false,"error":"INVALID_OPTION","name":...}]".

    Every '[' is tried as the start of a JSON array, so text before or after the
    array, or several arrays, do not matter. A truncated array (some clients and
    logs cut long messages) falls back to picking "error"/"name" pairs by pattern.
    """
    items: list[dict[str, object]] = []
    decoder = json.JSONDecoder()
    pos = message.find("[")
    while pos != -1:
        try:
            value, end = decoder.raw_decode(message, pos)
        except ValueError:
            pos = message.find("[", pos + 1)
            continue
        if isinstance(value, list):
            found = [v for v in value if isinstance(v, dict) and ("error" in v or "name" in v)]
            items.extend(found)
        pos = message.find("[", end)
    if items:
        return items
    codes = _EMBEDDED_CODE.findall(message)
    names = [_unescape(n) for n in _EMBEDDED_NAME.findall(message)]
    return [
        {"error": code, **({"name": names[i]} if i < len(names) else {})}
        for i, code in enumerate(codes)
    ]


def _unescape(text: str) -> str:
    try:
        value = json.loads(f'"{text}"')
    except ValueError:
        return text
    return value if isinstance(value, str) else text


# --- classification -------------------------------------------------------------

_TIMESTAMP_NAMES = frozenset(
    {
        "hs_timestamp",
        "hs_createdate",
        "hs_lastmodifieddate",
        "createdate",
        "lastmodifieddate",
        "closedate",
        "hs_call_start_time",
        "hs_call_end_time",
    }
)
_TIMESTAMP_NAME = re.compile(r"(timestamp|date|time|_at)$|_date_|_time_")
_NUMBER_NAME = re.compile(r"duration|count|amount|number_of|_num$|_qty|quantity|price")
_DATE_LIKE_VALUE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}")

_NUMBER_CODES = frozenset(
    {"INVALID_INTEGER", "INVALID_NUMBER", "INVALID_DOUBLE", "INVALID_DECIMAL", "INVALID_FLOAT"}
)
_TIME_CODES = frozenset({"INVALID_LONG", "INVALID_DATE", "INVALID_DATETIME", "INVALID_TIMESTAMP"})
_EMAIL_CODES = frozenset({"INVALID_EMAIL", "INVALID_EMAIL_ADDRESS"})
_MISSING_CODES = frozenset(
    {"REQUIRED_PROPERTY_MISSING", "MISSING_REQUIRED_PROPERTY", "REQUIRED_FIELD", "MISSING_REQUIRED"}
)
_CONFLICT_CODES = frozenset({"CONFLICT", "CONFLICTING_UNIQUE_VALUE", "UNIQUE_VALUE_CONFLICT"})


def _property_kind(
    name: str | None, value: str | None, property_types: Mapping[str, str] | None
) -> str | None:
    """'timestamp', 'number', 'other' (a known type that is neither) or None (no idea)."""
    if name is not None and property_types is not None and name in property_types:
        declared = property_types[name]
        if declared in ("datetime", "date"):
            return "timestamp"
        return "number" if declared == "number" else "other"
    if name is not None:
        # No property definitions at hand: guess from the name, as HubSpot names
        # its own properties (hs_timestamp, hs_createdate, hs_call_duration).
        lowered = name.lower()
        if lowered in _TIMESTAMP_NAMES or _TIMESTAMP_NAME.search(lowered):
            return "timestamp"
        if _NUMBER_NAME.search(lowered):
            return "number"
    if value is not None and _DATE_LIKE_VALUE.search(value):
        return "timestamp"
    return None


def classify(
    code: str | None,
    message: str,
    hubspot_category: str | None,
    property_name: str | None = None,
    *,
    invalid_value: str | None = None,
    property_types: Mapping[str, str] | None = None,
) -> ErrorType:
    """The bulkload ErrorType for one HubSpot error (code, message and category)."""
    c = (code or "").upper()
    m = message.lower()
    # Whole-request messages first: they also contain words ("unique") that the
    # per-value rules below would misread.
    if "non-unique" in m and "property" in m:
        return ErrorType.ID_PROPERTY_NOT_UNIQUE
    if "duplicate ids found" in m:
        return ErrorType.DUPLICATE_ID_IN_SOURCE
    if c in ("PROPERTY_DOESNT_EXIST", "PROPERTY_DOES_NOT_EXIST"):
        return ErrorType.PROPERTY_DOESNT_EXIST
    if c == "INVALID_OPTION":
        return ErrorType.INVALID_ENUM_PROPERTY
    if c in _TIME_CODES:
        return _time_or_number(c, property_name, invalid_value, property_types)
    if c in _NUMBER_CODES:
        return ErrorType.INVALID_NUMBER
    if c in _EMAIL_CODES:
        return ErrorType.INVALID_EMAIL_ADDRESS
    if "TOO_LONG" in c or "MAX_LENGTH" in c or "too long" in m or "exceeds the maximum" in m:
        return ErrorType.VALUE_TOO_LONG
    if c in _MISSING_CODES or "required properties were not set" in m:
        return ErrorType.MISSING_REQUIRED_PROPERTY
    if (
        c in _CONFLICT_CODES
        or (hubspot_category or "").upper() == "CONFLICT"
        or ("unique" in m and ("already" in m or "conflict" in m))
    ):
        return ErrorType.CONFLICTING_UNIQUE_VALUE
    # No code we know: read the message, in HubSpot's observed wordings.
    if "does not exist" in m and "propert" in m:
        return ErrorType.PROPERTY_DOESNT_EXIST
    if "not one of the allowed options" in m:
        return ErrorType.INVALID_ENUM_PROPERTY
    if "not a valid long" in m:
        return _time_or_number("INVALID_LONG", property_name, invalid_value, property_types)
    if "not midnight" in m:
        return ErrorType.INVALID_TIMESTAMP
    if "not a valid number" in m or "enter a numb" in m:
        return ErrorType.INVALID_NUMBER
    if "email" in m and "invalid" in m:
        return ErrorType.INVALID_EMAIL_ADDRESS
    if c or (hubspot_category or "").upper() == "VALIDATION_ERROR":
        return ErrorType.INVALID_PROPERTY_VALUE
    return ErrorType.UNKNOWN_ERROR


def _time_or_number(
    code: str,
    property_name: str | None,
    invalid_value: str | None,
    property_types: Mapping[str, str] | None,
) -> ErrorType:
    # INVALID_LONG means "not epoch ms": on a datetime property that is a bad
    # timestamp, on a number property a bad number. Only the property's type tells.
    kind = _property_kind(property_name, invalid_value, property_types)
    if kind == "timestamp":
        return ErrorType.INVALID_TIMESTAMP
    if kind == "number":
        return ErrorType.INVALID_NUMBER
    if kind == "other":
        return ErrorType.INVALID_PROPERTY_VALUE
    return ErrorType.INVALID_TIMESTAMP if code == "INVALID_DATE" else ErrorType.INVALID_NUMBER


# --- reading one error object ---------------------------------------------------------


def diagnose(
    error: Mapping[str, object],
    *,
    default_correlation_id: str | None = None,
    property_types: Mapping[str, str] | None = None,
) -> Diagnosis:
    """Read one StandardError (partial answer) or Error (400/409) body."""
    message = _str(error.get("message")) or ""
    hubspot_category = _str(error.get("category"))
    context = _mapping(error.get("context"))
    details = _details(error)
    embedded = embedded_validations(message) if "[" in message else []

    # Every problem the body lists: errors[] details first (code, context.propertyName),
    # else the items of the array embedded in the message.
    items: list[tuple[str | None, str | None, str]] = []
    for detail in details:
        names = _strings(_mapping(detail.get("context")).get("propertyName"))
        items.append((_str(detail.get("code")), names[0] if names else None, _str(detail.get("message")) or message))
    if not any(code for code, _, _ in items):
        embedded_items = [
            (_str(item.get("error")), _str(item.get("name")), _str(item.get("message")) or message)
            for item in embedded
        ]
        if embedded_items:
            items = embedded_items
    code = next((c for c, _, _ in items if c), None)
    property_name = next((n for _, n, _ in items if n), None)
    if property_name is None:
        # `properties` lists the required properties that were not set.
        names = _strings(context.get("propertyName")) or _strings(context.get("properties"))
        property_name = names[0] if names else None
        if names and not items:
            items = [(None, name, message) for name in names]

    error_type = classify(code, message, hubspot_category, property_name, property_types=property_types)
    return Diagnosis(
        error_type=error_type.value,
        message=message or "HubSpot gave no message",
        code=code,
        property_name=property_name,
        hubspot_category=hubspot_category,
        correlation_id=_str(error.get("correlationId")) or default_correlation_id,
        trace_ids=tuple(_strings(context.get("objectWriteTraceId"))),
        ids=tuple(_strings(context.get("ids"))),
        items=tuple(items),
    )


def _classified(
    diagnosis: Diagnosis, code: str | None, name: str | None, value: str | None,
    property_types: Mapping[str, str] | None,
) -> str:
    error_type = classify(code, diagnosis.message, diagnosis.hubspot_category, name,
                          invalid_value=value, property_types=property_types).value
    if code is None and error_type in (ErrorType.UNKNOWN_ERROR, ErrorType.INVALID_PROPERTY_VALUE):
        return diagnosis.error_type
    return error_type


def failure_for_input(
    diagnosis: Diagnosis,
    inp: UpsertInput | None,
    http_status: int,
    *,
    property_types: Mapping[str, str] | None = None,
) -> FailedRow:
    """Tie a diagnosis to one input (or to none), taking each invalid value from its properties."""
    props = inp["properties"] if inp is not None else {}
    problems: list[Problem] = []
    for code, name, text in diagnosis.items:
        value = props.get(name) if name is not None else None
        kind = _classified(diagnosis, code, name, value, property_types) if code or name else diagnosis.error_type
        problems.append(Problem(kind, text, name, value))
    if problems:
        first = problems[0]
        error_type, property_name, invalid_value = first.error_type, first.property_name, first.invalid_value
    else:
        error_type, property_name = diagnosis.error_type, diagnosis.property_name
        invalid_value = props.get(property_name) if property_name is not None else None
    return FailedRow(
        error_type=error_type,
        message=diagnosis.message,
        property_name=property_name,
        invalid_value=invalid_value,
        origin="hubspot",
        http_status=http_status,
        hubspot_category=diagnosis.hubspot_category,
        hubspot_code=diagnosis.code,
        correlation_id=diagnosis.correlation_id,
        problems=tuple(problems) if len(problems) > 1 else (),
        trace_id=trace_id_of(inp) if inp is not None else None,
    )


def unknown_failure(
    trace_id: str | None,
    message: str,
    http_status: int | None,
    *,
    correlation_id: str | None = None,
) -> FailedRow:
    """An input HubSpot refused (or never answered for) without saying why in a form we read."""
    return FailedRow(
        error_type=ErrorType.UNKNOWN_ERROR.value,
        message=message,
        origin="hubspot",
        http_status=http_status,
        correlation_id=correlation_id,
        trace_id=trace_id,
    )


def with_input(failure: FailedRow, inp: UpsertInput) -> FailedRow:
    """A failure that named no input, tied to `inp` (the only one it can be about)."""
    props = inp["properties"]
    problems = tuple(replace(p, invalid_value=props.get(p.property_name)) if p.property_name else p
                     for p in failure.problems)
    value = props.get(failure.property_name) if failure.property_name is not None else None
    return replace(failure, trace_id=trace_id_of(inp), invalid_value=value, problems=problems)


# --- attribution -----------------------------------------------------------------------


class _Index:
    """Find inputs by trace id or by id value."""

    def __init__(self, inputs: Sequence[UpsertInput]) -> None:
        self.by_trace: dict[str, UpsertInput] = {trace_id_of(i): i for i in inputs}
        self.by_id: dict[str, list[UpsertInput]] = {}
        for inp in inputs:
            self.by_id.setdefault(inp["id"], []).append(inp)

    def lookup(self, diagnosis: Diagnosis) -> list[UpsertInput]:
        found = [self.by_trace[t] for t in diagnosis.trace_ids if t in self.by_trace]
        if found:
            return found
        return [inp for value in diagnosis.ids for inp in self.by_id.get(value, [])]


def _attribute(
    diagnoses: Iterable[Diagnosis],
    inputs: Sequence[UpsertInput],
    http_status: int,
    property_types: Mapping[str, str] | None,
) -> tuple[dict[str, FailedRow], list[FailedRow]]:
    index = _Index(inputs)
    attributed: dict[str, FailedRow] = {}
    unattributed: list[FailedRow] = []
    for diagnosis in diagnoses:
        targets = index.lookup(diagnosis)
        if not targets:
            unattributed.append(
                failure_for_input(diagnosis, None, http_status, property_types=property_types)
            )
        for inp in targets:
            # One failure per input: the first error HubSpot lists for it wins.
            attributed.setdefault(
                trace_id_of(inp),
                failure_for_input(diagnosis, inp, http_status, property_types=property_types),
            )
    return attributed, unattributed


def failures_from_multi_status(
    errors: object,
    inputs: Sequence[UpsertInput],
    *,
    http_status: int = 207,
    correlation_id: str | None = None,
    property_types: Mapping[str, str] | None = None,
) -> tuple[dict[str, FailedRow], list[FailedRow]]:
    """Read a 207 body's `errors[]`: failures by trace id, and those naming no known input."""
    if not isinstance(errors, list):
        return {}, []
    diagnoses = [
        diagnose(error, default_correlation_id=correlation_id, property_types=property_types)
        for error in errors
        if isinstance(error, dict)
    ]
    return _attribute(diagnoses, inputs, http_status, property_types)


def failures_from_error_body(
    http_status: int,
    body: object,
    inputs: Sequence[UpsertInput],
    *,
    correlation_id: str | None = None,
    property_types: Mapping[str, str] | None = None,
    fallback_message: str = "",
) -> tuple[list[FailedRow], str, str | None]:
    """Read a whole-request rejection (400, 409, other 4xx).

    Returns (failures, message, correlation id). A failure carries a trace id
    when the body names its input (context.objectWriteTraceId, context.ids, or
    the batch held only one input); otherwise trace_id is None and the caller
    must bisect to find the culprit.
    """
    error = _mapping(body)
    if not _str(error.get("message")):
        # Not JSON (an HTML error page), or JSON without a message: use the text we have.
        message = fallback_message or f"HubSpot answered HTTP {http_status}"
        error = {**error, "message": message}
    only = inputs[0] if len(inputs) == 1 else None
    diagnosis = diagnose(
        error, default_correlation_id=correlation_id, property_types=property_types
    )
    if http_status == 413 and diagnosis.error_type == ErrorType.UNKNOWN_ERROR:
        # Payload too large: some value in the input is too big to send.
        diagnosis = replace(diagnosis, error_type=ErrorType.VALUE_TOO_LONG.value)
    attributed, unattributed = _attribute([diagnosis], inputs, http_status, property_types)
    if only is not None and not attributed:
        attributed = {
            trace_id_of(only): failure_for_input(
                diagnosis, only, http_status, property_types=property_types
            )
        }
        unattributed = []
    failures = list(attributed.values()) if attributed else unattributed[:1]
    return failures, diagnosis.message, diagnosis.correlation_id
