"""The report's rows: a job's current errors and superseded rows as dicts, in row order, paged.

Rows come in the DESIGN.md jsonl shape, ordered by `sourceData.rowNumber`, plus a few
fields of ours: `severity`, `howToFix`, `sourceColumn` (the source column feeding
`propertyName`), `updatedAt`/`resolvedAt`, `origin` (local | hubspot), `batchNo`,
`httpStatus`, `hubspotCategory`, `hubspotCode`, `correlationId`, `supersededBy`, and
`errors` (every problem of the row: `errorType`, `propertyName`, `invalidValue`,
`errorMessage`). `createdAt` is when the row first failed, `updatedAt` when its current
error (or its resolution) was recorded; `attempts` counts the tries. Superseded rows
(earlier rows of a repeated id, never sent) are `DUPLICATE_ID_IN_SOURCE` *warnings*
(`"severity": "warning"`, `attempts` 0, `createdAt` the job's start, `rowData` null until
the loader has read the row); failures have `"severity": "error"`. Pages are cut by an
opaque `after` cursor, as HubSpot's import-errors API does.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from bulkload.errors import InputError
from bulkload.journal import ErrorRow, Journal, WarningRow
from bulkload.reports.fields import (
    KIND_ASSOCIATION,
    KIND_ERROR,
    KIND_WARNING,
    RAW_KEY,
    SEVERITY_ERROR,
    SEVERITY_WARNING,
)
from bulkload.taxonomy import Category, ErrorType, how_to_fix


@dataclass(frozen=True)
class JobInfo:
    """What every report row repeats from the job."""

    job_id: str
    object_type: str
    id_property: str
    file: str
    created_at: str
    columns: list[str]
    column_of: dict[str, str]  # property -> the source column that feeds it
    targets: list[str]  # the association columns, by target index


@dataclass(frozen=True)
class Query:
    job: JobInfo
    error_types: tuple[str, ...]
    categories: tuple[str, ...]
    include_resolved: bool
    include_warnings: bool
    start: tuple[int, int, int] | None  # (rowNumber, kind, seq) of the last row already returned


def job_info(journal: Journal) -> JobInfo:
    job = journal.job()
    # A journal without its column list (it stopped before reading the header): the
    # columns are the row_data keys, in order of first appearance.
    columns = list(job.columns) or journal.row_data_columns(RAW_KEY)
    renames: dict[str, str] = dict(job.config.get("columns") or {})
    column_of: dict[str, str] = {}
    for col in columns:
        prop = renames.get(col, col)
        if prop:  # "" drops the column
            column_of.setdefault(prop, col)
    targets = [str(a).split("=", 1)[0] for a in job.config.get("associations") or []]
    return JobInfo(job.job_id, job.object_type, job.id_property, Path(job.source_path).name, job.created_at,
                   columns, column_of, targets)


def split_names(values: Sequence[str]) -> tuple[str, ...]:
    """`--error-type A --error-type B,C` -> (A, B, C), upper-cased, deduplicated, in order."""
    names = (n.strip().upper() for v in values for n in v.split(","))
    return tuple(dict.fromkeys(n for n in names if n))


def prepare(journal: Journal, *, error_types: Sequence[str], categories: Sequence[str], include_resolved: bool,
            include_warnings: bool, after: str | None) -> Query:
    """Check the filters and the cursor up front, before any file is created."""
    types = split_names(error_types)
    if types:
        # The journal may hold types newer than this taxonomy; those are valid filters too.
        known = {t.value for t in ErrorType} | journal.error_types()
        unknown = [t for t in types if t not in known]
        if unknown:
            raise InputError(f"unknown error type {', '.join(unknown)}; known types: {', '.join(sorted(known))}")
    cats = split_names(categories)
    unknown_cats = [c for c in cats if c not in {c.value for c in Category}]
    if unknown_cats:
        raise InputError(
            f"unknown category {', '.join(unknown_cats)}; categories: {', '.join(c.value for c in Category)}")
    return Query(job_info(journal), types, cats, include_resolved, include_warnings,
                 decode_position(after) if after else None)


def _after(kind: int, start: tuple[int, int, int] | None) -> tuple[int, bool] | None:
    """Where this stream resumes after the cursor: (row, inclusive)."""
    if start is None:
        return None
    row, last_kind, _ = start
    # Same row number: this stream's rows come after the cursor only if its kind sorts later.
    return row, kind > last_kind


def _problems(raw: str | None) -> list[dict[str, Any]] | None:
    return orjson.loads(raw) if raw else None


def error_dict(e: ErrorRow, job: JobInfo) -> dict[str, Any]:
    problems = _problems(e.problems) or [{"errorType": e.error_type, "propertyName": e.property_name,
                                         "invalidValue": e.invalid_value, "errorMessage": e.message}]
    return {
        "id": f"{job.job_id}:{e.row_number}",
        "createdAt": e.created_at,
        "errorType": e.error_type,
        "category": e.category,
        "errorMessage": e.message,
        "propertyName": e.property_name,
        "invalidValue": e.invalid_value,
        "idPropertyValue": e.id_value,
        "objectType": job.object_type,
        "resolved": bool(e.resolved),
        "attempts": e.attempts,
        "severity": SEVERITY_ERROR,
        "howToFix": how_to_fix(e.error_type, job.job_id),
        "sourceColumn": job.column_of.get(e.property_name) if e.property_name else None,
        "updatedAt": e.updated_at,
        "resolvedAt": e.resolved_at,
        "origin": e.origin,
        "batchNo": e.batch_no,
        "httpStatus": e.http_status,
        "hubspotCategory": e.hubspot_category,
        "hubspotCode": e.hubspot_code,
        "correlationId": e.correlation_id,
        "supersededBy": None,
        "errors": problems,
        "sourceData": {"file": job.file, "rowNumber": e.row_number, "lineNumber": e.line_number,
                       "rowData": orjson.loads(e.row_data)},
    }


def warning_dict(w: WarningRow, job: JobInfo) -> dict[str, Any]:
    kind = ErrorType.DUPLICATE_ID_IN_SOURCE.value
    message = (f"not sent: row {w.superseded_by} has the same {job.id_property} later in the file,"
               " and only the last row of a repeated id is sent")
    return {
        "id": f"{job.job_id}:{w.row_number}:superseded",
        "createdAt": job.created_at,  # superseded rows are decided by the scan, at the job's start
        "errorType": kind,
        "category": Category.DUPLICATES.value,
        "errorMessage": message,
        "propertyName": job.id_property,
        "invalidValue": w.id_value,
        "idPropertyValue": w.id_value,
        "objectType": job.object_type,
        "resolved": False,
        "attempts": 0,  # never sent
        "severity": SEVERITY_WARNING,
        "howToFix": how_to_fix(kind, job.job_id),
        "sourceColumn": job.column_of.get(job.id_property),
        "updatedAt": job.created_at,
        "resolvedAt": None,
        "origin": "local",
        "batchNo": w.batch_no,
        "httpStatus": None,
        "hubspotCategory": None,
        "hubspotCode": None,
        "correlationId": None,
        "supersededBy": w.superseded_by,
        "errors": [{"errorType": kind, "propertyName": job.id_property, "invalidValue": w.id_value,
                    "errorMessage": message}],
        "sourceData": {
            "file": job.file, "rowNumber": w.row_number, "lineNumber": w.line_number,
            # NULL until the loader reaches the row: its values are not known yet.
            "rowData": orjson.loads(w.row_data) if w.row_data is not None else None,
        },
    }


def association_dict(row: tuple[Any, ...], job: JobInfo) -> dict[str, Any]:
    row_number, target, value, error_type, message, attempts, updated_at, id_value, line = row
    column = job.targets[target] if 0 <= target < len(job.targets) else None
    return {
        "id": f"{job.job_id}:{row_number}:association:{target}:{value}",
        "createdAt": updated_at,
        "errorType": error_type,
        "category": Category.ASSOCIATIONS.value,
        "errorMessage": message,
        "propertyName": column,
        "invalidValue": value,
        "idPropertyValue": id_value,
        "objectType": job.object_type,
        "resolved": False,
        "attempts": attempts,
        "severity": SEVERITY_ERROR,
        "howToFix": how_to_fix(error_type, job.job_id),
        "sourceColumn": column,
        "updatedAt": updated_at,
        "resolvedAt": None,
        "origin": "hubspot",
        "batchNo": None,
        "httpStatus": None,
        "hubspotCategory": None,
        "hubspotCode": None,
        "correlationId": None,
        "supersededBy": None,
        "errors": [{"errorType": error_type, "propertyName": column, "invalidValue": value, "errorMessage": message}],
        # The row landed: its record exists; only this association of it did not. Its id and
        # the value that failed are the data (so that the CSV is a template to correct).
        "sourceData": {"file": job.file, "rowNumber": row_number, "lineNumber": line,
                       "rowData": {job.column_of.get(job.id_property, job.id_property): id_value,
                                   **({column: value} if column else {})}},
    }


def _iter_associations(journal: Journal, q: Query) -> Iterator[tuple[tuple[int, int, int], dict[str, Any]]]:
    """Failed associations: a row may have several, numbered `seq` within the row."""
    kinds = set(q.error_types)
    start = q.start
    inclusive_from = (start[0], start[2] + 1) if start is not None and start[1] == KIND_ASSOCIATION else None
    row_seen, seq = -1, 0
    for p in journal.iter_failed_pairs(after=(start[0], start[1] <= KIND_ASSOCIATION) if start else None):
        row = int(p[0])
        seq = seq + 1 if row == row_seen else 0
        row_seen = row
        if inclusive_from is not None and row == inclusive_from[0] and seq < inclusive_from[1]:
            continue
        if kinds and p[3] not in kinds:
            continue
        yield (row, KIND_ASSOCIATION, seq), association_dict(p, q.job)


def _wants_associations(q: Query) -> bool:
    kinds = {ErrorType.ASSOCIATED_RECORD_NOT_FOUND.value, ErrorType.INVALID_ASSOCIATION.value}
    return (not q.error_types or bool(kinds & set(q.error_types))) and (
        not q.categories or Category.ASSOCIATIONS.value in q.categories)


def _wants_warnings(q: Query) -> bool:
    return (
        q.include_warnings
        and (not q.error_types or ErrorType.DUPLICATE_ID_IN_SOURCE.value in q.error_types)
        and (not q.categories or Category.DUPLICATES.value in q.categories)
    )


def iter_keyed(journal: Journal, q: Query) -> Iterator[tuple[tuple[int, int, int], dict[str, Any]]]:
    job = q.job
    rows = journal.iter_error_rows(after=_after(KIND_ERROR, q.start), include_resolved=q.include_resolved,
                                   error_types=q.error_types, categories=q.categories)
    errors = (((e.row_number, KIND_ERROR, 0), error_dict(e, job)) for e in rows)
    streams: list[Iterator[tuple[tuple[int, int, int], dict[str, Any]]]] = [errors]
    if _wants_warnings(q):
        streams.append(((w.row_number, KIND_WARNING, 0), warning_dict(w, job))
                       for w in journal.iter_warning_rows(after=_after(KIND_WARNING, q.start)))
    if _wants_associations(q) and job.targets:
        streams.append(_iter_associations(journal, q))
    # Both tables are read in primary-key order, so a merge streams them without a sort.
    return heapq.merge(*streams, key=lambda kv: kv[0])


# ---- the cursor ------------------------------------------------------------------------------


def encode_cursor(row_number: int, kind: int, seq: int = 0) -> str:
    """Opaque to users, stable for us: the position (rowNumber, kind, seq) of the last row returned."""
    text = f"v1:{row_number}:{kind}" + (f":{seq}" if seq else "")
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """(rowNumber, kind) of the last row a page returned."""
    row, kind, _ = decode_position(cursor)
    return row, kind


def decode_position(cursor: str) -> tuple[int, int, int]:
    """(rowNumber, kind, seq): `seq` orders a row's several failed associations."""
    try:
        text = base64.urlsafe_b64decode(cursor.strip() + "=" * (-len(cursor.strip()) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    m = re.fullmatch(r"v1:(\d{1,18}):([012])(?::(\d{1,9}))?", text)
    if m is None:
        raise InputError(f"invalid cursor {cursor!r}: pass --after the next cursor a report printed")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


# ---- pages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None  # None: this was the last page


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1 (got {limit})")


def report_rows(
    journal: Journal,
    *,
    error_types: Sequence[str] = (),
    include_resolved: bool = False,
    limit: int | None = None,
    after: str | None = None,
    categories: Sequence[str] = (),
    include_warnings: bool = True,
) -> ReportPage:
    """One page of report rows in rowNumber order; `next_cursor` continues it (None at the end).

    Paging with `limit` and `after=page.next_cursor` returns every row exactly once.
    """
    check_limit(limit)
    q = prepare(journal, error_types=error_types, categories=categories, include_resolved=include_resolved,
                include_warnings=include_warnings, after=after)
    with journal.snapshot():
        keyed = iter_keyed(journal, q)
        page = list(islice(keyed, limit)) if limit is not None else list(keyed)
        more = limit is not None and next(keyed, None) is not None
    return ReportPage([row for _, row in page], encode_cursor(*page[-1][0]) if more and page else None)
