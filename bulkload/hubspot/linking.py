"""HubSpot's answers to the association step's two requests, tied to what was asked.

- `batch/read` by `idProperty` (<= 100 ids): the records found, by the value asked for
  (matched case-insensitively for e-mails, which HubSpot stores lower-cased), and the
  values HubSpot says it has no record for (`errors[].context.ids`, category
  OBJECT_NOT_FOUND). A value the answer does not mention is neither: it is asked again.
- `batch/associate/default` (<= 2,000 pairs): the pairs made, and a failure per pair the
  body names (`context.fromObjectId` / `toObjectId`, or `INVALID_OBJECT_IDS`), whatever
  the HTTP status. An error that names no pair leaves its pairs to be split.

As for upserts, the answer is judged by its body, never by 200 vs 207.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bulkload.hubspot.ratelimit import RateLimitInfo
from bulkload.models import FailedRow
from bulkload.taxonomy import ErrorType

Pair = tuple[str, str]  # (from record id, to record id)


@dataclass(frozen=True)
class ReadAnswer:
    found: dict[str, str]  # value asked for -> record id
    not_found: set[str]
    missing: list[str]  # neither found nor named as not found
    http_status: int
    rate: RateLimitInfo


@dataclass(frozen=True)
class AssociateAnswer:
    made: set[Pair]
    failures: dict[Pair, FailedRow]
    missing: list[Pair]
    unattributed: list[FailedRow] = field(default_factory=list)
    http_status: int = 200
    rate: RateLimitInfo = field(default_factory=RateLimitInfo)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None and not isinstance(v, dict | list)]
    if isinstance(value, int) and not isinstance(value, bool):
        return [str(value)]
    return []


def _key(value: str, fold: bool) -> str:
    return value.strip().lower() if fold else value.strip()


def read_answer(body: Mapping[str, object], values: Sequence[str], id_property: str, *, fold: bool,
                http_status: int, rate: RateLimitInfo) -> ReadAnswer:
    """Which of `values` HubSpot has a record for. `fold`: compare lower-cased (e-mails)."""
    wanted = {_key(v, fold): v for v in values}
    found: dict[str, str] = {}
    results = body.get("results")
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, dict):
            continue
        record_id = result.get("id")
        if isinstance(record_id, int) and not isinstance(record_id, bool):
            record_id = str(record_id)
        props = result.get("properties")
        if not isinstance(record_id, str) or not record_id:
            continue
        if id_property == "hs_object_id":
            candidates = [record_id]
        else:
            candidates = _strings(props.get(id_property)) if isinstance(props, dict) else []
        for candidate in candidates:
            asked = wanted.get(_key(candidate, fold))
            if asked is not None:
                found.setdefault(asked, record_id)
    not_found: set[str] = set()
    errors = body.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        context = error.get("context")
        ids = _strings(context.get("ids")) if isinstance(context, dict) else []
        for value in ids:
            asked = wanted.get(_key(value, fold))
            if asked is not None and asked not in found:
                not_found.add(asked)
    missing = [v for v in values if v not in found and v not in not_found]
    return ReadAnswer(found, not_found, missing, http_status, rate)


_OBJECT_ID = re.compile(r"=(\d+)\b")


def _pair_failure(error: Mapping[str, object], http_status: int) -> FailedRow:
    message = str(error.get("message") or "HubSpot refused the association")
    context = error.get("context")
    detail = ""
    if isinstance(context, dict):
        detail = "; ".join(_strings(context.get("INVALID_OBJECT_IDS")))
    return FailedRow(
        ErrorType.INVALID_ASSOCIATION.value, f"{message}: {detail}" if detail else message, origin="hubspot",
        http_status=http_status, hubspot_category=str(error.get("category") or "") or None,
        correlation_id=str(error.get("correlationId") or "") or None,
    )


def associate_answer(body: Mapping[str, object], pairs: Sequence[Pair], *, http_status: int,
                     rate: RateLimitInfo) -> AssociateAnswer:
    """Which pairs were made and which HubSpot refused, pair by pair."""
    asked = set(pairs)
    by_from: dict[str, list[Pair]] = {}
    by_to: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_from.setdefault(pair[0], []).append(pair)
        by_to.setdefault(pair[1], []).append(pair)
    made: set[Pair] = set()
    results = body.get("results")
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, dict):
            continue
        f, t = result.get("from"), result.get("to")
        from_id = _strings(f.get("id") if isinstance(f, dict) else None)
        to_id = _strings(t.get("id") if isinstance(t, dict) else None)
        if from_id and to_id and (from_id[0], to_id[0]) in asked:
            made.add((from_id[0], to_id[0]))
    failures: dict[Pair, FailedRow] = {}
    unattributed: list[FailedRow] = []
    errors = body.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        failure = _pair_failure(error, http_status)
        context = error.get("context")
        context = context if isinstance(context, dict) else {}
        froms, tos = _strings(context.get("fromObjectId")), _strings(context.get("toObjectId"))
        named = [p for p in pairs if (not froms or p[0] in froms) and (not tos or p[1] in tos)] if froms or tos else []
        if not named:
            # "CONTACT=999 is not valid": the record ids it names.
            bad_ids = {m for text in _strings(context.get("INVALID_OBJECT_IDS")) for m in _OBJECT_ID.findall(text)}
            bad_ids |= set(_strings(context.get("objectId")))
            named = [p for i in bad_ids for p in (*by_to.get(i, []), *by_from.get(i, []))]
        if not named:
            unattributed.append(failure)
        for pair in named:
            if pair not in made:
                failures.setdefault(pair, failure)
    missing = [p for p in pairs if p not in made and p not in failures]
    return AssociateAnswer(made, failures, missing, unattributed, http_status, rate)
