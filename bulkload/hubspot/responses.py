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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from bulkload.hubspot.classify import classify
from bulkload.hubspot.ratelimit import RateLimitInfo
from bulkload.models import FailedRow, Landed, Problem, UpsertInput, trace_id_of
from bulkload.taxonomy import ErrorType

__all__ = [
    "BATCH_WIDE_ERROR_TYPES",
    "Diagnosis",
    "UpsertResponse",
    "classify",
    "diagnose",
    "embedded_validations",
    "fail_by_value",
    "failure_for_input",
    "failures_from_error_body",
    "failures_from_multi_status",
    "read_upsert_answer",
    "refused_values",
    "unknown_failure",
    "value_named",
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


# --- isolation by value: an answer that names no input but names a value -------------------

# HubSpot's verdicts on a value begin with the value itself: "DONE was not one of the
# allowed options: [...]", "tomorrow was not a valid long.", "12m30s was not a valid
# number", "1521225089103 is at 18:31:29.103 UTC, not midnight!".
_VERDICTS = (" was not ", " is at ", " is not ")
_EMAIL_VERDICT = "Email address {} is invalid"

Refused = dict[str, dict[str, FailedRow]]  # property -> invalid value -> its failure (no trace id)


def value_named(message: str, value: str) -> bool:
    """Whether HubSpot's `message` says that `value` itself is invalid.

    Tight on purpose: a row is failed on this reading alone, so the value must stand where
    HubSpot's wordings put it (first, followed by the verdict), never merely occur in the
    text (`A` occurs in "[A, B]", a property's name in 'Property "x" does not exist').
    """
    if not value.strip():
        return False
    if message.startswith(value):
        return message[len(value):].startswith(_VERDICTS)
    return message.startswith(_EMAIL_VERDICT.format(value))


def _statements(failure: FailedRow) -> list[tuple[str, str, str]]:
    """(property, HubSpot's message about its value, errorType) of every problem the
    failure lists, including each item of the JSON array embedded in its message."""
    types = {p.property_name: p.error_type for p in failure.all_problems if p.property_name}
    out = [(p.property_name, p.message, p.error_type) for p in failure.all_problems if p.property_name]
    if "[" in failure.message:
        for item in embedded_validations(failure.message):
            name, text = _str(item.get("name")), _str(item.get("message"))
            if name and text:
                out.append((name, text, types.get(name, failure.error_type)))
    return out


def refused_values(failures: Sequence[FailedRow], inputs: Sequence[UpsertInput]) -> Refused:
    """The values an answer that named no input says are invalid, where some of `inputs`
    carry them: property -> value -> a failure of that one value (trace id None).

    Same property, same value, same verdict: every input carrying the value fails the way
    HubSpot said, so it is isolated by its value without a request of its own. A message
    that names no value (a validation rule, a conflict) gives nothing here.
    """
    refused: Refused = {}
    for failure in failures:
        statements = _statements(failure)
        several = len({name for name, _, _ in statements}) > 1
        for name, text, error_type in statements:
            for inp in inputs:
                value = inp["properties"].get(name)
                if value is None or value in refused.get(name, {}) or not value_named(text, value):
                    continue
                refused.setdefault(name, {})[value] = replace(
                    failure, error_type=error_type, property_name=name, invalid_value=value, problems=(),
                    message=text if several else failure.message, trace_id=None)
    return refused


def fail_by_value(refused: Mapping[str, Mapping[str, FailedRow]], inputs: Sequence[UpsertInput]) -> dict[str, FailedRow]:
    """The inputs that carry a refused value, by trace id, each failed with every refused
    value it carries (and nothing else)."""
    out: dict[str, FailedRow] = {}
    for inp in inputs:
        props = inp["properties"]
        hits = [f for name, values in refused.items()
                if (value := props.get(name)) is not None and (f := values.get(value)) is not None]
        if not hits:
            continue
        first = hits[0]
        problems = tuple(Problem(h.error_type, h.message, h.property_name, h.invalid_value) for h in hits)
        out[trace_id_of(inp)] = replace(first, trace_id=trace_id_of(inp), problems=problems if len(hits) > 1 else ())
    return out


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


# --- a 200 or 207 answer ------------------------------------------------------------

@dataclass(frozen=True)
class UpsertResponse:
    """A 200 or 207 answer, tied to the inputs by trace id (never by position).

    Every input is in exactly one of successes, failures, missing; `missing` holds the
    trace ids the answer did not account for. `unattributed` are errors that named no
    input: the sender splits `missing` until each error stands with its one input.
    `unpaired_created` counts records the answer says it created but could not be tied
    to an input (a later, tied answer of the same rows then says "updated").
    """

    http_status: int
    successes: list[Landed]
    failures: list[FailedRow]
    missing: list[str]
    rate: RateLimitInfo
    unattributed: list[FailedRow] = ()  # type: ignore[assignment]
    unpaired_created: int = 0


def read_upsert_answer(
    body: Mapping[str, object],
    inputs: Sequence[UpsertInput],
    trace_ids: Sequence[str],
    *,
    http_status: int,
    rate: RateLimitInfo,
    correlation_id: str | None = None,
    property_types: Mapping[str, str] | None = None,
    clean: Callable[[FailedRow], FailedRow] = lambda f: f,
) -> UpsertResponse:
    """Tie a 2xx batch answer to its inputs, judged by its body (`results`, `errors`),
    never by the status: HubSpot's 2025-09 and later specs answer partial batches 200."""
    results = body.get("results")
    successes, unmatched = _match_results(results if isinstance(results, list) else [], inputs, trace_ids)
    attributed, unattributed = failures_from_multi_status(
        body.get("errors"), inputs, http_status=http_status, correlation_id=correlation_id,
        property_types=property_types,
    )
    attributed = {t: clean(f) for t, f in attributed.items()}
    unattributed = [clean(f) for f in unattributed]
    # An input listed both as written and as failed is reported failed: the report
    # shows HubSpot's error, and retrying an upsert is harmless.
    for trace in attributed:
        successes.pop(trace, None)
    missing = [t for t in trace_ids if t not in successes and t not in attributed]
    if len(missing) == 1 and len(unattributed) == 1 and not unmatched:
        # One error that names no input, one input unaccounted for: they are each other's.
        only = missing.pop()
        attributed[only] = with_input(unattributed[0], next(i for i in inputs if trace_id_of(i) == only))
        unattributed = []
    unpaired_created = 0
    if missing and not unattributed and len(unmatched) == len(missing):
        # Every unanswered input has a result of its own; only the echo that ties them to
        # inputs is absent, and resending would not tell us more. When the results agree
        # on `new`, each input's flag is exact; otherwise the count is (record ids stay
        # unknown: ""). Fewer results than that stay missing: HubSpot has answered
        # COMPLETE with empty results to a request it did not process.
        flags = [new for _, new in unmatched]
        one_id = unmatched[0][0] if len(unmatched) == 1 else ""
        for k, trace in enumerate(missing):
            created = flags[0] if len(set(flags)) == 1 else k < sum(flags)
            successes[trace] = Landed(trace, one_id, created)
        missing = []
    elif unmatched:
        unpaired_created = sum(1 for _, new in unmatched if new)
    return UpsertResponse(
        http_status=http_status,
        successes=[successes[t] for t in trace_ids if t in successes],
        failures=[attributed[t] for t in trace_ids if t in attributed],
        missing=missing,
        rate=rate,
        unattributed=unattributed,
        unpaired_created=unpaired_created,
    )


def _match_results(
    results: list[object], inputs: Sequence[UpsertInput], trace_ids: Sequence[str]
) -> tuple[dict[str, Landed], list[tuple[str, bool]]]:
    """Results tied to inputs by trace id (else by the echoed idProperty value), and
    the (record id, new) of the results that could not be tied."""
    known = set(trace_ids)
    # Fallback key: the idProperty value HubSpot echoes in the record's properties;
    # built only if a result comes back without a trace id we know.
    by_value: dict[tuple[object, str], str] | None = None
    successes: dict[str, Landed] = {}
    unmatched: list[tuple[str, bool]] = []
    for result in results:
        if not isinstance(result, dict):
            continue
        record_id = result.get("id")
        if isinstance(record_id, int) and not isinstance(record_id, bool):
            record_id = str(record_id)
        if not isinstance(record_id, str) or not record_id:
            continue
        trace = result.get("objectWriteTraceId")
        if trace not in known or not isinstance(trace, str):
            if by_value is None:
                by_value = {(i.get("idProperty"), i["id"]): t for i, t in zip(inputs, trace_ids, strict=True)}
            trace = None
            props = result.get("properties")
            if isinstance(props, dict):
                for prop in {p for i in inputs if (p := i.get("idProperty"))}:
                    value = props.get(prop)
                    if isinstance(value, str) and (prop, value) in by_value:
                        trace = by_value[(prop, value)]
                        break
        if trace is None or trace in successes:
            unmatched.append((record_id, result.get("new") is True))
            continue
        created_at = result.get("createdAt")
        successes[trace] = Landed(trace, record_id, result.get("new") is True,
                                  created_at if isinstance(created_at, str) else None)
    return successes, unmatched
