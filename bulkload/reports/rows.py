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


@dataclass(frozen=True)
class Query:
    job: JobInfo
    error_types: tuple[str, ...]
    categories: tuple[str, ...]
    include_resolved: bool
    include_warnings: bool
    start: tuple[int, int] | None  # (rowNumber, kind) of the last row already returned


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
    return JobInfo(job.job_id, job.object_type, job.id_property, Path(job.source_path).name, job.created_at,
                   columns, column_of)


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
                 decode_cursor(after) if after else None)


def _after(kind: int, start: tuple[int, int] | None) -> tuple[int, bool] | None:
    """Where this stream resumes after the cursor: (row, inclusive)."""
    if start is None:
        return None
    row, last_kind = start
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
        "howToFix": how_to_fix(e.error_type),
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
        "howToFix": how_to_fix(kind),
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


def _wants_warnings(q: Query) -> bool:
    return (
        q.include_warnings
        and (not q.error_types or ErrorType.DUPLICATE_ID_IN_SOURCE.value in q.error_types)
        and (not q.categories or Category.DUPLICATES.value in q.categories)
    )


def iter_keyed(journal: Journal, q: Query) -> Iterator[tuple[tuple[int, int], dict[str, Any]]]:
    job = q.job
    rows = journal.iter_error_rows(after=_after(KIND_ERROR, q.start), include_resolved=q.include_resolved,
                                   error_types=q.error_types, categories=q.categories)
    errors = (((e.row_number, KIND_ERROR), error_dict(e, job)) for e in rows)
    streams: list[Iterator[tuple[tuple[int, int], dict[str, Any]]]] = [errors]
    if _wants_warnings(q):
        streams.append(((w.row_number, KIND_WARNING), warning_dict(w, job))
                       for w in journal.iter_warning_rows(after=_after(KIND_WARNING, q.start)))
    # Both tables are read in primary-key order, so a merge streams them without a sort.
    return heapq.merge(*streams, key=lambda kv: kv[0])


# ---- the cursor ------------------------------------------------------------------------------


def encode_cursor(row_number: int, kind: int) -> str:
    """Opaque to users, stable for us: the position (rowNumber, kind) of the last row returned."""
    return base64.urlsafe_b64encode(f"v1:{row_number}:{kind}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        text = base64.urlsafe_b64decode(cursor.strip() + "=" * (-len(cursor.strip()) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    m = re.fullmatch(r"v1:(\d{1,18}):([01])", text)
    if m is None:
        raise InputError(f"invalid cursor {cursor!r}: pass --after the next cursor a report printed")
    return int(m.group(1)), int(m.group(2))


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
