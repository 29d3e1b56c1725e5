"""The failed-rows report: which rows failed, why, where to fix them, and the way back in.

One job: read a job's journal (`row_errors`, `superseded`) and present it, never change it.
It is modelled on what HubSpot itself offers (HUBSPOT.md section 5):

- the import-errors API: each error carries its source row (`sourceData.rowData`, the
  original values), its row and line number, the invalid value and the property; results
  are paged by an opaque `after` cursor;
- the sync-errors API: only the most recent error per record (id value) is current, a
  later success resolves it, resolved errors are shown only with `includeResolved`, and
  errors can be filtered by type;
- the sync-health screen: one card per error category with its errors, affected rows,
  top error types and how to fix them, plus an export.

Rows come in the DESIGN.md jsonl shape, ordered by `sourceData.rowNumber`, plus a few
fields of ours: `severity`, `howToFix`, `sourceColumn` (the source column feeding
`propertyName`), `updatedAt`/`resolvedAt`, `origin` (local | hubspot), `batchNo`,
`httpStatus`, `hubspotCategory`, `hubspotCode`, `correlationId`, `supersededBy`.
`createdAt` is when the row first failed, `updatedAt` when its current error (or its
resolution) was recorded; `attempts` counts the tries. Superseded rows (earlier rows of a
repeated id, never sent) are listed as `DUPLICATE_ID_IN_SOURCE` *warnings*
(`"severity": "warning"`, `attempts` 0, `createdAt` the job's start, `rowData` null until
the loader has read the row); failures have `"severity": "error"`.

File formats (`write_report`), every file created with mode 0600 (call data is personal data):

- ``jsonl``: one row per line, exactly the `report_rows` dicts.
- ``parquet``: the same fields as columns; `sourceData` is a struct whose `rowData` is a
  JSON *string* (source columns differ per job and Parquet sources mix types, so a fixed
  struct would either lose types or need a schema per job). The schema metadata holds
  ``bulkload.columns`` (the job's source columns, in order) so the file can come back
  through `retry --from`.
- ``csv``: a corrected-file template (UTF-8 with a BOM, so spreadsheets detect the
  encoding; CRLF line ends as RFC 4180 says). First the job's source columns under their
  original names, in the source's order, holding the original values; then the error
  columns, named ``bulkload_<field>`` for the fields in `ERROR_FIELDS`. A malformed source
  row leaves the source columns empty and puts its raw text in ``bulkload_raw``. Every
  cell (the header too) goes through `neutralise_cell`, so a spreadsheet runs no formula
  from call data. A person fixes values in place and saves; `read_corrected_file` drops
  the error columns, undoes the neutralising and skips the warning rows.
"""

from __future__ import annotations

import base64
import binascii
import csv
import heapq
import io
import json
import operator
import os
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any, Literal, get_args

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from bulkload.config import default_job_dir
from bulkload.errors import InputError
from bulkload.hubspot.errors import embedded_validations
from bulkload.journal import Journal, journal_path
from bulkload.taxonomy import HOW_TO_FIX, Category, ErrorType

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = get_args(Format)

SEVERITY_ERROR = "error"
SEVERITY_WARNING = "warning"

# Rows sharing a row number sort errors first; the cursor records which of the two it stopped at.
_KIND_ERROR = 0
_KIND_WARNING = 1

ERROR_COLUMN_PREFIX = "bulkload_"

# The CSV template's error columns, after the source columns, each named PREFIX + field.
# Each is the report row's field of the same name, except rowNumber and lineNumber (from
# `sourceData`) and raw (a malformed row's text).
_LEADING_FIELDS: tuple[str, ...] = (
    "severity",  # error | warning (warnings are superseded rows: never sent, not failures)
    "errorType",  # what went wrong (taxonomy.ErrorType)
    "category",  # where a person goes to fix it (taxonomy.Category)
    "errorMessage",
    "propertyName",  # the HubSpot property the error is about
    "sourceColumn",  # the source column feeding that property
    "invalidValue",
    "idPropertyValue",
    "howToFix",  # one line from taxonomy.HOW_TO_FIX
)
_TRAILING_FIELDS: tuple[str, ...] = (
    "resolved",  # true | false
    "attempts",
    "createdAt",
    "updatedAt",
    "hubspotCode",
    "correlationId",  # quote it to HubSpot support
    "supersededBy",  # for warnings: the later row with the same id, the one sent
    "id",  # stable report id of the row
)
ERROR_FIELDS: tuple[str, ...] = (
    *_LEADING_FIELDS,
    "rowNumber",  # 1-based data row in the source (header not counted)
    "lineNumber",  # physical line where the row starts (CSV sources)
    *_TRAILING_FIELDS,
    "raw",  # a malformed row's raw text (its source columns are then empty)
)
ERROR_COLUMNS: tuple[str, ...] = tuple(ERROR_COLUMN_PREFIX + f for f in ERROR_FIELDS)
_ERROR_COLUMN_SET = frozenset(ERROR_COLUMNS)
SEVERITY_COLUMN = ERROR_COLUMN_PREFIX + "severity"
ROW_NUMBER_COLUMN = ERROR_COLUMN_PREFIX + "rowNumber"

# row_data of a row the CSV reader could not split into columns.
RAW_KEY = "_raw"

# OWASP "CSV injection": spreadsheets run a cell starting with = + - @ tab or CR as a
# formula. The escape "'" is itself escaped too, so that `restore_cell` is an exact inverse.
_ESCAPE = "'"
_NEEDS_ESCAPE = frozenset("=+-@\t\r" + _ESCAPE)

_PARQUET_BATCH_ROWS = 5_000
SPREADSHEET_MAX_ROWS = 1_048_575  # Excel's and LibreOffice's 1,048,576 rows, less the header
_TOP_TYPES = 3


# ---- cells -----------------------------------------------------------------------------------


def neutralise_cell(value: str) -> str:
    """Prefix a formula-looking cell with "'" so a spreadsheet shows it as text.

    A value already starting with "'" gets one more, so `restore_cell` can undo this
    exactly for every string.
    """
    return _ESCAPE + value if value and value[0] in _NEEDS_ESCAPE else value


def restore_cell(value: str) -> str:
    """The exact inverse of `neutralise_cell`: drop one leading "'"."""
    return value[1:] if value.startswith(_ESCAPE) else value


def _cell_text(value: Any) -> str:
    """A value as a neutralised CSV cell; non-text source values spelled the way HubSpot takes them."""
    if isinstance(value, str):
        return _ESCAPE + value if value and value[0] in _NEEDS_ESCAPE else value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return neutralise_cell(str(int(value)))  # HubSpot's numbers carry no ".0"
    if isinstance(value, int | float):
        return neutralise_cell(str(value))  # "-5"
    return neutralise_cell(json.dumps(value, ensure_ascii=False))


# ---- the query -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What every report row repeats from the job."""

    job_id: str
    object_type: str
    id_property: str
    file: str
    created_at: str
    columns: list[str]
    column_of: dict[str, str]  # property -> the source column that feeds it


@dataclass(frozen=True)
class _Query:
    job: _Job
    error_types: tuple[str, ...]
    categories: tuple[str, ...]
    include_resolved: bool
    include_warnings: bool
    start: tuple[int, int] | None  # (rowNumber, kind) of the last row already returned


def _job_of(journal: Journal) -> _Job:
    job = journal.job()
    columns = list(job.columns)
    if not columns:
        # A journal without its column list (it stopped before reading the header):
        # the columns are the row_data keys, in order of first appearance.
        columns = [
            r[0]
            for r in journal.db.conn.execute(
                "SELECT j.key FROM row_errors e, json_each(e.row_data) j WHERE j.key <> ?"
                " GROUP BY j.key ORDER BY MIN(e.row_number), MIN(j.id)",
                [RAW_KEY],
            ).fetchall()
        ]
    renames: dict[str, str] = dict(job.config.get("columns") or {})
    column_of: dict[str, str] = {}
    for col in columns:
        prop = renames.get(col, col)
        if prop:  # "" drops the column
            column_of.setdefault(prop, col)
    return _Job(
        job_id=job.job_id,
        object_type=job.object_type,
        id_property=job.id_property,
        file=Path(job.source_path).name,
        created_at=job.created_at,
        columns=columns,
        column_of=column_of,
    )


def _split_names(values: Sequence[str]) -> tuple[str, ...]:
    """`--error-type A --error-type B,C` -> (A, B, C), upper-cased, deduplicated, in order."""
    names = (n.strip().upper() for v in values for n in v.split(","))
    return tuple(dict.fromkeys(n for n in names if n))


def _prepare(
    journal: Journal,
    *,
    error_types: Sequence[str],
    categories: Sequence[str],
    include_resolved: bool,
    include_warnings: bool,
    after: str | None,
) -> _Query:
    """Check the filters and the cursor up front, before any file is created."""
    job = _job_of(journal)
    types = _split_names(error_types)
    if types:
        # The journal may hold types newer than this taxonomy; those are valid filters too.
        stored = {r[0] for r in journal.db.conn.execute("SELECT DISTINCT error_type FROM row_errors")}
        known = {t.value for t in ErrorType} | stored
        unknown = [t for t in types if t not in known]
        if unknown:
            raise InputError(
                f"unknown error type {', '.join(unknown)}; known types: {', '.join(sorted(known))}"
            )
    cats = _split_names(categories)
    valid = {c.value for c in Category}
    unknown_cats = [c for c in cats if c not in valid]
    if unknown_cats:
        raise InputError(
            f"unknown category {', '.join(unknown_cats)}; categories: {', '.join(c.value for c in Category)}"
        )
    return _Query(
        job=job,
        error_types=types,
        categories=cats,
        include_resolved=include_resolved,
        include_warnings=include_warnings,
        start=decode_cursor(after) if after else None,
    )


# A row error is current for its record only if no later error exists for the same id value
# (the sync-errors rule: "only the most recent error per externalObjectId"). Rows without an
# id (malformed, MISSING_ID_VALUE) are each their own record.
_LATEST_FOR_ID = """NOT EXISTS (
    SELECT 1 FROM row_errors n
    WHERE n.id_value = e.id_value AND e.id_value <> ''
      AND (n.updated_at > e.updated_at OR (n.updated_at = e.updated_at AND n.row_number > e.row_number)))"""


def _after(column: str, kind: int, start: tuple[int, int] | None) -> tuple[str, list[Any]]:
    """The WHERE part that resumes after the cursor position (rowNumber, kind)."""
    if start is None:
        return "1", []
    row, last_kind = start
    # Same row number: this stream's rows come after the cursor only if its kind sorts later.
    return (f"{column} >= ?" if kind > last_kind else f"{column} > ?"), [row]


def _iter_errors(journal: Journal, q: _Query) -> Iterator[tuple[tuple[int, int], dict[str, Any]]]:
    where, params = _after("e.row_number", _KIND_ERROR, q.start)
    clauses = [where, _LATEST_FOR_ID]
    # The unary "+" keeps SQLite off the (resolved, error_type) index: walking the primary
    # key returns rows already in rowNumber order, so a page stops after `limit` rows
    # instead of sorting every error first.
    if not q.include_resolved:
        clauses.append("+e.resolved = 0")
    if q.error_types:
        clauses.append(f"+e.error_type IN ({','.join('?' * len(q.error_types))})")
        params += q.error_types
    if q.categories:
        clauses.append(f"e.category IN ({','.join('?' * len(q.categories))})")
        params += q.categories
    cur = journal.db.conn.execute(
        "SELECT e.row_number, e.line_number, e.id_value, e.batch_no, e.error_type, e.category, e.message,"
        " e.property_name, e.invalid_value, e.http_status, e.hubspot_category, e.hubspot_code,"
        " e.correlation_id, e.origin, e.row_data, e.attempts, e.resolved, e.created_at, e.updated_at,"
        " e.resolved_at FROM row_errors e WHERE " + " AND ".join(clauses) + " ORDER BY e.row_number",
        params,
    )
    job = q.job
    for (row_number, line_number, id_value, batch_no, error_type, category, message, property_name,
         invalid_value, http_status, hubspot_category, hubspot_code, correlation_id, origin, row_data,
         attempts, resolved, created_at, updated_at, resolved_at) in cur:
        yield (row_number, _KIND_ERROR), {
            "id": f"{job.job_id}:{row_number}",
            "createdAt": created_at,
            "errorType": error_type,
            "category": category,
            "errorMessage": message,
            "propertyName": property_name,
            "invalidValue": invalid_value,
            "idPropertyValue": id_value,
            "objectType": job.object_type,
            "resolved": bool(resolved),
            "attempts": attempts,
            "severity": SEVERITY_ERROR,
            "howToFix": how_to_fix(error_type),
            "sourceColumn": job.column_of.get(property_name) if property_name else None,
            "updatedAt": updated_at,
            "resolvedAt": resolved_at,
            "origin": origin,
            "batchNo": batch_no,
            "httpStatus": http_status,
            "hubspotCategory": hubspot_category,
            "hubspotCode": hubspot_code,
            "correlationId": correlation_id,
            "supersededBy": None,
            "sourceData": {
                "file": job.file,
                "rowNumber": row_number,
                "lineNumber": line_number,
                "rowData": orjson.loads(row_data),
            },
        }


def _iter_warnings(journal: Journal, q: _Query) -> Iterator[tuple[tuple[int, int], dict[str, Any]]]:
    where, params = _after("row_number", _KIND_WARNING, q.start)
    cur = journal.db.conn.execute(
        "SELECT row_number, id_value, superseded_by, line_number, batch_no, row_data FROM superseded"
        f" WHERE {where} ORDER BY row_number",
        params,
    )
    job = q.job
    kind = ErrorType.DUPLICATE_ID_IN_SOURCE.value
    for row_number, id_value, superseded_by, line_number, batch_no, row_data in cur:
        yield (row_number, _KIND_WARNING), {
            "id": f"{job.job_id}:{row_number}:superseded",
            # Superseded rows are decided by the scan, at the job's start.
            "createdAt": job.created_at,
            "errorType": kind,
            "category": Category.DUPLICATES.value,
            "errorMessage": (
                f"not sent: row {superseded_by} has the same {job.id_property} later in the file,"
                " and only the last row of a repeated id is sent"
            ),
            "propertyName": job.id_property,
            "invalidValue": id_value,
            "idPropertyValue": id_value,
            "objectType": job.object_type,
            "resolved": False,
            "attempts": 0,  # never sent
            "severity": SEVERITY_WARNING,
            "howToFix": how_to_fix(kind),
            "sourceColumn": job.column_of.get(job.id_property),
            "updatedAt": job.created_at,
            "resolvedAt": None,
            "origin": "local",
            "batchNo": batch_no,
            "httpStatus": None,
            "hubspotCategory": None,
            "hubspotCode": None,
            "correlationId": None,
            "supersededBy": superseded_by,
            "sourceData": {
                "file": job.file,
                "rowNumber": row_number,
                "lineNumber": line_number,
                # NULL until the loader reaches the row: its values are not known yet.
                "rowData": orjson.loads(row_data) if row_data is not None else None,
            },
        }


def _wants_warnings(q: _Query) -> bool:
    return (
        q.include_warnings
        and (not q.error_types or ErrorType.DUPLICATE_ID_IN_SOURCE.value in q.error_types)
        and (not q.categories or Category.DUPLICATES.value in q.categories)
    )


def _iter_keyed(journal: Journal, q: _Query) -> Iterator[tuple[tuple[int, int], dict[str, Any]]]:
    streams = [_iter_errors(journal, q)]
    if _wants_warnings(q):
        streams.append(_iter_warnings(journal, q))
    # Both tables are read in primary-key order, so a merge streams them without a sort.
    return heapq.merge(*streams, key=lambda kv: kv[0])


@contextmanager
def _snapshot(journal: Journal) -> Iterator[None]:
    """One read transaction, so a report written while the loader runs is self-consistent."""
    conn = journal.db.conn
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")  # read-only: nothing to commit, it only ends the snapshot


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


def _cursor_of(key: tuple[int, int]) -> str:
    return encode_cursor(*key)


# ---- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None  # None: this was the last page


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1 (got {limit})")


def iter_report_rows(
    journal: Journal,
    *,
    error_types: Sequence[str] = (),
    categories: Sequence[str] = (),
    include_resolved: bool = False,
    include_warnings: bool = True,
    after: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Every report row after the cursor, streamed in rowNumber order (no page limit).

    It reads two tables lazily; for one consistent view while a loader writes, consume it
    inside a read transaction (as `report_rows` and `write_report` do).
    """
    q = _prepare(journal, error_types=error_types, categories=categories, include_resolved=include_resolved,
                 include_warnings=include_warnings, after=after)
    return (row for _, row in _iter_keyed(journal, q))


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
    _check_limit(limit)
    q = _prepare(journal, error_types=error_types, categories=categories, include_resolved=include_resolved,
                 include_warnings=include_warnings, after=after)
    with _snapshot(journal):
        keyed = _iter_keyed(journal, q)
        page = list(islice(keyed, limit)) if limit is not None else list(keyed)
        more = limit is not None and next(keyed, None) is not None
    return ReportPage([row for _, row in page], _cursor_of(page[-1][0]) if more and page else None)


# ---- files -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportWritten:
    path: Path
    rows: int
    errors: int
    warnings: int
    next_cursor: str | None
    format: str
    job_id: str = ""


def default_report_path(job_dir: Path, job_id: str, fmt: str) -> Path:
    """Beside the journal: <job_dir>/<job_id>.failed-rows.<ext>."""
    return job_dir / f"{job_id}.failed-rows.{fmt}"


def _target(journal: Journal, job_id: str, fmt: str, path: Path | None) -> Path:
    if path is None:
        return default_report_path(journal.path.parent, job_id, fmt)
    if path.is_dir():
        return default_report_path(path, job_id, fmt)
    if not path.parent.is_dir():
        raise InputError(f"cannot write the report to {path}: no directory {path.parent}")
    return path


@contextmanager
def _private_file(path: Path) -> Iterator[IO[bytes]]:
    """Write `path` with mode 0600, atomically.

    A temp file is created 0600 (fchmod too: the umask must not matter) and renamed over
    the target at the end, so an existing report of a wider mode is replaced, never
    reused, and an interrupted export leaves the previous file whole.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # O_NOFOLLOW: a symlink planted at the temp name must not redirect call data elsewhere.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            yield f
        # No fsync: a report is derived data, written again from the journal at will.
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _is_malformed(row_data: dict[str, Any], columns: Sequence[str]) -> bool:
    return RAW_KEY in row_data and len(row_data) == 1 and RAW_KEY not in columns


_leading = operator.itemgetter(*_LEADING_FIELDS)
_trailing = operator.itemgetter(*_TRAILING_FIELDS)


def _write_csv(f: IO[bytes], rows: Iterator[dict[str, Any]], job: _Job) -> None:
    clash = sorted(set(job.columns) & _ERROR_COLUMN_SET)
    if clash:
        raise InputError(f"source column {', '.join(clash)} clashes with the report's error columns;"
                         " use --format jsonl or parquet")
    # utf-8-sig: the BOM makes spreadsheets read the file as UTF-8 (names, accents).
    text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow([neutralise_cell(h) for h in (*job.columns, *ERROR_COLUMNS)])
    columns = job.columns
    cell, escape = _cell_text, _NEEDS_ESCAPE
    for row in rows:
        src = row["sourceData"]
        data = src["rowData"] or {}
        raw = ""
        if RAW_KEY in data and _is_malformed(data, columns):
            raw, data = str(data[RAW_KEY]), {}
        # Inline fast path for the common case, plain text (this loop runs once per cell).
        values = [*map(data.get, columns), *_leading(row), src["rowNumber"], src["lineNumber"],
                  *_trailing(row), raw]
        writer.writerow(
            [v if type(v) is str and not (v and v[0] in escape) else cell(v) for v in values]
        )
    text.flush()
    text.detach()  # the caller owns (and closes) the binary file


def _write_jsonl(f: IO[bytes], rows: Iterator[dict[str, Any]], job: _Job) -> None:
    for row in rows:
        f.write(orjson.dumps(row) + b"\n")


_PARQUET_FIELDS: list[tuple[str, pa.DataType]] = [
    ("id", pa.string()),
    ("createdAt", pa.string()),
    ("errorType", pa.string()),
    ("category", pa.string()),
    ("errorMessage", pa.string()),
    ("propertyName", pa.string()),
    ("invalidValue", pa.string()),
    ("idPropertyValue", pa.string()),
    ("objectType", pa.string()),
    ("resolved", pa.bool_()),
    ("attempts", pa.int64()),
    ("severity", pa.string()),
    ("howToFix", pa.string()),
    ("sourceColumn", pa.string()),
    ("updatedAt", pa.string()),
    ("resolvedAt", pa.string()),
    ("origin", pa.string()),
    ("batchNo", pa.int64()),
    ("httpStatus", pa.int64()),
    ("hubspotCategory", pa.string()),
    ("hubspotCode", pa.string()),
    ("correlationId", pa.string()),
    ("supersededBy", pa.int64()),
    (
        "sourceData",
        pa.struct(
            [
                ("file", pa.string()),
                ("rowNumber", pa.int64()),
                ("lineNumber", pa.int64()),
                ("rowData", pa.string()),  # JSON text: see the module docstring
            ]
        ),
    ),
]
PARQUET_META_REPORT = b"bulkload.report"
PARQUET_META_COLUMNS = b"bulkload.columns"


def parquet_schema(columns: Sequence[str]) -> pa.Schema:
    return pa.schema(
        _PARQUET_FIELDS,
        metadata={
            PARQUET_META_REPORT: b"1",
            PARQUET_META_COLUMNS: json.dumps(list(columns), ensure_ascii=False).encode(),
            b"bulkload.rowData": b"JSON text of the original source values, keys = source column names",
        },
    )


def _parquet_batch(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Column by column: pyarrow builds each array in C, far faster than from_pylist on dicts."""
    arrays: list[pa.Array] = []
    for field in schema:
        if field.name == "sourceData":
            src = [r["sourceData"] for r in rows]
            data = [s["rowData"] for s in src]
            arrays.append(
                pa.StructArray.from_arrays(
                    [
                        pa.array([s["file"] for s in src], pa.string()),
                        pa.array([s["rowNumber"] for s in src], pa.int64()),
                        pa.array([s["lineNumber"] for s in src], pa.int64()),
                        pa.array([None if d is None else orjson.dumps(d).decode() for d in data], pa.string()),
                    ],
                    fields=list(field.type),
                )
            )
        else:
            arrays.append(pa.array([r[field.name] for r in rows], field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _write_parquet(f: IO[bytes], rows: Iterator[dict[str, Any]], job: _Job) -> None:
    schema = parquet_schema(job.columns)
    with pq.ParquetWriter(f, schema, compression="zstd") as writer:
        wrote = False
        while batch := list(islice(rows, _PARQUET_BATCH_ROWS)):
            writer.write_batch(_parquet_batch(batch, schema))
            wrote = True
        if not wrote:  # an empty report still carries its schema (the "headers")
            writer.write_table(schema.empty_table())


_WRITERS: dict[str, Callable[[IO[bytes], Iterator[dict[str, Any]], _Job], None]] = {
    "csv": _write_csv,
    "jsonl": _write_jsonl,
    "parquet": _write_parquet,
}


def write_report(
    journal: Journal,
    fmt: Format,
    path: Path | None = None,
    *,
    error_types: Sequence[str] = (),
    include_resolved: bool = False,
    limit: int | None = None,
    after: str | None = None,
    categories: Sequence[str] = (),
    include_warnings: bool = True,
) -> ReportWritten:
    """Write the report (or one page of it) as csv, jsonl or parquet, with mode 0600.

    `path` defaults to <job_dir>/<job_id>.failed-rows.<ext> beside the journal; a
    directory puts that file name in it. An empty result still writes the headers.
    """
    if fmt not in _WRITERS:
        raise InputError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    _check_limit(limit)
    q = _prepare(journal, error_types=error_types, categories=categories, include_resolved=include_resolved,
                 include_warnings=include_warnings, after=after)
    target = _target(journal, q.job.job_id, fmt, path)
    counts = {SEVERITY_ERROR: 0, SEVERITY_WARNING: 0}
    last: list[tuple[int, int]] = []

    def counted(keyed: Iterator[tuple[tuple[int, int], dict[str, Any]]]) -> Iterator[dict[str, Any]]:
        for key, row in keyed:
            counts[row["severity"]] += 1
            last[:] = [key]
            yield row

    with _snapshot(journal), _private_file(target) as f:
        keyed = _iter_keyed(journal, q)
        _WRITERS[fmt](f, counted(islice(keyed, limit) if limit is not None else keyed), q.job)
        more = limit is not None and next(keyed, None) is not None
    return ReportWritten(
        path=target,
        rows=counts[SEVERITY_ERROR] + counts[SEVERITY_WARNING],
        errors=counts[SEVERITY_ERROR],
        warnings=counts[SEVERITY_WARNING],
        next_cursor=_cursor_of(last[0]) if more and last else None,
        format=fmt,
        job_id=q.job.job_id,
    )


def describe_written(written: ReportWritten, *, filtered: bool = False) -> str:
    """What the CLI prints after `write_report`: says so plainly when nothing failed."""
    if written.rows == 0:
        what = "No rows match the filters" if filtered else "No failed rows"
        empty = "an empty report" if written.format == "jsonl" else "an empty report with headers"
        lines = [f"{what}: wrote {empty} to {written.path}"]
    else:
        head = "No failed rows; " if written.errors == 0 else ""
        lines = [
            f"{head}{written.rows:,} rows ({written.errors:,} failed, {written.warnings:,} superseded warnings)"
            f" written to {written.path} ({written.format})"
        ]
    if written.format == "csv" and written.rows >= SPREADSHEET_MAX_ROWS:
        lines.append(f"Spreadsheets open at most {SPREADSHEET_MAX_ROWS:,} rows: split the report with"
                     " --limit/--after or --error-type to edit it as a corrected file")
    if written.next_cursor:
        lines.append(f"More rows: bulkload report {written.job_id} --after {written.next_cursor}")
    return "\n".join(lines)


# ---- the summary cards -----------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryCard:
    category: str
    errors: int  # current errors (unresolved, most recent per id)
    affected_rows: int  # distinct source rows with a current error
    top: list[tuple[str, int, str]]  # (errorType, count, the most common message), most first
    fixes: dict[str, str]  # every errorType in the card -> how to fix it


_FIX_BY_TYPE: dict[str, str] = {t.value: fix for t, fix in HOW_TO_FIX.items()}


def how_to_fix(error_type: str) -> str:
    """The taxonomy's one line; types newer than the taxonomy get UNKNOWN_ERROR's."""
    return _FIX_BY_TYPE.get(error_type) or _FIX_BY_TYPE[ErrorType.UNKNOWN_ERROR.value]


def summary(journal: Journal) -> tuple[list[CategoryCard], int]:
    """One card per category, all eight in DESIGN order (empty ones too, so the screen is
    stable), and the number of superseded rows (warnings, not failures)."""
    current = f"FROM row_errors e WHERE e.resolved = 0 AND {_LATEST_FOR_ID}"
    with _snapshot(journal):
        q = journal.db.conn.execute
        by_type = q(f"SELECT e.category, e.error_type, COUNT(*) {current} GROUP BY 1, 2").fetchall()
        rows_by_cat = dict(q(f"SELECT e.category, COUNT(DISTINCT e.row_number) {current} GROUP BY 1").fetchall())
        samples = dict(
            q(
                "SELECT error_type, message FROM (SELECT e.error_type, e.message, ROW_NUMBER() OVER"
                f" (PARTITION BY e.error_type ORDER BY COUNT(*) DESC, e.message) AS rn {current}"
                " GROUP BY e.error_type, e.message) WHERE rn = 1"
            ).fetchall()
        )
        superseded = int(q("SELECT COUNT(*) FROM superseded").fetchone()[0])
    known = {c.value for c in Category}
    types_of: dict[str, list[tuple[str, int]]] = {c.value: [] for c in Category}
    affected = {c.value: 0 for c in Category}
    for category, error_type, n in by_type:
        cat = category if category in known else Category.OTHER.value
        types_of[cat].append((error_type, int(n)))
    for category, n in rows_by_cat.items():
        affected[category if category in known else Category.OTHER.value] += int(n)
    cards = []
    for cat in Category:
        types = sorted(types_of[cat.value], key=lambda t: (-t[1], t[0]))
        cards.append(
            CategoryCard(
                category=cat.value,
                errors=sum(n for _, n in types),
                affected_rows=affected[cat.value],
                top=[(t, n, samples.get(t, "")) for t, n in types[:_TOP_TYPES]],
                fixes={t: how_to_fix(t) for t, _ in types},
            )
        )
    return cards, superseded


def summary_dict(cards: Sequence[CategoryCard], superseded: int) -> dict[str, Any]:
    """The cards as JSON (`report --summary --json`)."""
    return {
        "categories": [
            {
                "category": c.category,
                "errors": c.errors,
                "affectedRows": c.affected_rows,
                "top": [{"errorType": t, "count": n, "sampleMessage": m} for t, n, m in c.top],
                "howToFix": c.fixes,
            }
            for c in cards
        ],
        "errors": sum(c.errors for c in cards),
        "warnings": {ErrorType.DUPLICATE_ID_IN_SOURCE.value: superseded},
    }


def readable_message(message: str) -> str:
    """HubSpot's "Property values were not valid: [{...}]" as the sentence inside it.

    The report keeps HubSpot's message as it came; the cards show what a person reads.
    """
    inner = [str(v["message"]) for v in embedded_validations(message) if isinstance(v.get("message"), str)]
    return "; ".join(inner) if inner else message


def _printable(text: str, width: int = 100) -> str:
    """Messages quote source values: no control characters (escape sequences) reach a terminal."""
    clean = "".join(ch if ch.isprintable() else " " for ch in readable_message(text))
    return clean if len(clean) <= width else clean[: width - 1] + "…"


def render_summary(cards: Sequence[CategoryCard], superseded: int) -> str:
    """The cards as text: one per category with errors, a line for the rest, the superseded line."""
    with_errors = [c for c in cards if c.errors]
    lines: list[str] = []
    if with_errors:
        lines.append("Failed rows by category (current errors, the most recent per id):")
        for c in with_errors:
            lines.append(f"  {c.category}: {c.errors:,} errors, {c.affected_rows:,} rows affected")
            for error_type, n, message in c.top:
                lines.append(f"    {error_type} ×{n:,}" + (f'  e.g. "{_printable(message)}"' if message else ""))
                lines.append(f"      fix: {c.fixes.get(error_type) or how_to_fix(error_type)}")
            more = len(c.fixes) - len(c.top)
            if more > 0:
                lines.append(f"    … and {more} more error type{'s' if more > 1 else ''} (see the report)")
        empty = [c.category for c in cards if not c.errors]
        if empty:
            lines.append(f"  No errors: {', '.join(empty)}")
    else:
        lines.append("No failed rows.")
    if superseded:
        lines.append(
            f"Warnings, not failures: {superseded:,} superseded row{'s' if superseded != 1 else ''}"
            f" ({ErrorType.DUPLICATE_ID_IN_SOURCE.value}): {how_to_fix(ErrorType.DUPLICATE_ID_IN_SOURCE)}"
        )
    return "\n".join(lines)


def demo_report(job_id: str, job_dir: Path) -> str:
    """For `bulkload demo`: write the CSV template; return the cards and how to replay it."""
    journal = Journal.open(journal_path(job_dir, job_id))
    try:
        written = write_report(journal, "csv")
        cards, superseded = summary(journal)
    finally:
        journal.close()
    job_dir_flag = ""
    if job_dir.resolve() != default_job_dir().resolve():
        job_dir_flag = f" --job-dir {shlex.quote(str(job_dir))}"
    return "\n".join(
        [
            render_summary(cards, superseded),
            "",
            f"Failed-rows report (CSV, a corrected-file template): {written.path}",
            "Fix the values in a spreadsheet, save it as CSV, then replay the fixed rows:",
            f"  bulkload retry {job_id}{job_dir_flag} --from {shlex.quote(str(written.path))}",
        ]
    )


# ---- corrected files (`retry --from`) --------------------------------------------------------


@dataclass(frozen=True)
class CorrectedRow:
    values: dict[str, Any]  # source column -> value (CSV: text, restored; Parquet: as stored)
    row_number: int | None  # the source row it corrects (bulkload_rowNumber), when the file says
    file_line: int  # where it is in the corrected file, for messages


def _is_error_column(name: str, keep: frozenset[str]) -> bool:
    return name not in keep and (name in _ERROR_COLUMN_SET or name.startswith(ERROR_COLUMN_PREFIX))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _cell(cells: list[str], i: int | None) -> str:
    """A corrected file's cell, neutralising undone; "" where a short row has none."""
    return restore_cell(cells[i]) if i is not None and i < len(cells) else ""


def _sniff_delimiter(first_line: str) -> str:
    """Spreadsheets in some locales save with ';' or tabs: take the one that splits the header most."""
    best, best_n = ",", 1
    for d in (",", ";", "\t"):
        n = len(next(csv.reader([first_line], delimiter=d), []))
        if n > best_n:
            best, best_n = d, n
    return best


def _open_csv(
    path: Path, keep: frozenset[str], include_warnings: bool
) -> tuple[list[str], Iterator[CorrectedRow]]:
    # Rows with long values (VALUE_TOO_LONG, malformed rows) exceed csv's 128 KiB field default.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            first_line = f.readline()
            f.seek(0)
            delimiter = _sniff_delimiter(first_line)
            header = [restore_cell(h).strip() for h in next(csv.reader(f, delimiter=delimiter), [])]
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8: save it as 'CSV UTF-8'") from e
    except (OSError, csv.Error) as e:
        raise InputError(f"cannot read {path}: {e}") from e
    kept = [(i, h) for i, h in enumerate(header) if h and not _is_error_column(h, keep)]
    names = [h for _, h in kept]
    if not names:
        raise InputError(f"{path} has no source columns (an empty file, or only {ERROR_COLUMN_PREFIX}* columns)")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"{path} has the column {', '.join(dupes)} more than once")
    index = {h: i for i, h in enumerate(header)}
    severity_at, row_at = index.get(SEVERITY_COLUMN), index.get(ROW_NUMBER_COLUMN)

    def rows() -> Iterator[CorrectedRow]:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            try:
                next(reader, None)
                for cells in reader:
                    if not any(c.strip() for c in cells):
                        continue  # blank lines a spreadsheet leaves at the end
                    # Warnings are superseded rows: replaying one would overwrite the newer
                    # row of the same id that was sent, so they stay out unless asked for.
                    if _cell(cells, severity_at).strip() == SEVERITY_WARNING and not include_warnings:
                        continue
                    yield CorrectedRow(
                        values={h: _cell(cells, i) for i, h in kept},
                        row_number=_int_or_none(_cell(cells, row_at)) if row_at is not None else None,
                        file_line=reader.line_num,
                    )
            except UnicodeDecodeError as e:
                raise InputError(f"{path} is not UTF-8: save it as 'CSV UTF-8'") from e
            except csv.Error as e:
                raise InputError(f"{path}, line {reader.line_num}: {e}") from e

    return names, rows()


def _open_parquet(
    path: Path, keep: frozenset[str], include_warnings: bool
) -> tuple[list[str], Iterator[CorrectedRow]]:
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"cannot read {path} as Parquet: {e}") from e
    meta = pf.schema_arrow.metadata or {}
    if PARQUET_META_REPORT in meta:
        # A Parquet report: the rows are the rowData of each entry.
        columns = [str(c) for c in json.loads(meta.get(PARQUET_META_COLUMNS, b"[]"))]

        def report_rows_() -> Iterator[CorrectedRow]:
            n = 0
            for batch in pf.iter_batches(columns=["severity", "sourceData"]):
                for entry in batch.to_pylist():
                    n += 1
                    if entry["severity"] == SEVERITY_WARNING and not include_warnings:
                        continue
                    src = entry["sourceData"] or {}
                    data = json.loads(src["rowData"]) if src.get("rowData") else {}
                    if _is_malformed(data, columns):
                        data = {}
                    yield CorrectedRow({c: data.get(c) for c in columns}, src.get("rowNumber"), n)

        return columns, report_rows_()
    names = [n for n in pf.schema_arrow.names if not _is_error_column(n, keep)]
    if not names:
        raise InputError(f"{path} has no source columns")
    extra = [c for c in (SEVERITY_COLUMN, ROW_NUMBER_COLUMN) if c in pf.schema_arrow.names]

    def plain_rows() -> Iterator[CorrectedRow]:
        n = 0
        for batch in pf.iter_batches(columns=names + extra):
            for entry in batch.to_pylist():
                n += 1
                if entry.get(SEVERITY_COLUMN) == SEVERITY_WARNING and not include_warnings:
                    continue
                rn = entry.get(ROW_NUMBER_COLUMN)
                yield CorrectedRow({c: entry[c] for c in names}, _int_or_none(rn) if rn is not None else None, n)

    return names, plain_rows()


def open_corrected_file(
    path: Path, *, source_columns: Sequence[str] = (), include_warnings: bool = False
) -> tuple[list[str], Iterator[CorrectedRow]]:
    """A corrected file's source columns and its rows, each with the source row it corrects.

    Parquet is recognised by its magic bytes, anything else is read as CSV. The error
    columns (`ERROR_COLUMNS`, and any other `bulkload_*` column a later version may add)
    are dropped, except names listed in `source_columns` (a source that really has such a
    column). Warning rows (superseded duplicates) are skipped unless `include_warnings`.
    """
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e}") from e
    keep = frozenset(source_columns)
    if magic == b"PAR1":
        return _open_parquet(path, keep, include_warnings)
    if path.suffix.lower() in (".jsonl", ".json"):
        raise InputError(f"{path}: use the CSV (or Parquet) report as the corrected file, not JSON lines")
    return _open_csv(path, keep, include_warnings)


def read_corrected_file(
    path: Path, *, source_columns: Sequence[str] = (), include_warnings: bool = False
) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """For `retry --from`: the source columns and rows as {source column: value}.

    CSV values are text with the neutralising undone (`restore_cell`); Parquet values are
    the stored Python values (turning them into HubSpot strings is the loader's job).
    """
    columns, rows = open_corrected_file(path, source_columns=source_columns, include_warnings=include_warnings)
    return columns, (r.values for r in rows)
