"""The report's files: csv, jsonl and parquet, each created with mode 0600, atomically.

- ``jsonl``: one row per line, exactly the `report_rows` dicts.
- ``parquet``: the same fields as columns; `sourceData` is a struct whose `rowData` is a
  JSON *string* (source columns differ per job and Parquet sources mix types, so a fixed
  struct would either lose types or need a schema per job). The schema metadata holds
  ``bulkload.columns`` (the job's source columns, in order) so the file can come back
  through `retry --from`.
- ``csv``: a corrected-file template (UTF-8 with a BOM, so spreadsheets detect the
  encoding; CRLF line ends as RFC 4180 says): the job's source columns with the original
  values, then the `bulkload_*` error columns (see fields.py). A malformed source row
  leaves the source columns empty and puts its raw text in ``bulkload_raw``.

`-` as the path writes to standard output instead, as everywhere else.
"""

from __future__ import annotations

import csv
import io
import json
import operator
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any, Literal, get_args

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from bulkload.errors import InputError
from bulkload.journal import Journal
from bulkload.reports.fields import (
    ERROR_COLUMN_SET,
    ERROR_COLUMNS,
    LEADING_FIELDS,
    NEEDS_ESCAPE,
    PROBLEM_FIELDS,
    RAW_KEY,
    SEVERITY_ERROR,
    SEVERITY_WARNING,
    SPREADSHEET_MAX_ROWS,
    TRAILING_FIELDS,
    cell_text,
    joined_message,
    neutralise_cell,
    problem_columns,
)
from bulkload.reports.rows import JobInfo, check_limit, encode_cursor, iter_keyed, prepare

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = get_args(Format)
PARQUET_BATCH_ROWS = 5_000
STDOUT = Path("-")


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
def _stdout() -> Iterator[IO[bytes]]:
    import sys

    out = sys.stdout.buffer
    yield out
    out.flush()


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


_leading = operator.itemgetter(*LEADING_FIELDS)
_trailing = operator.itemgetter(*TRAILING_FIELDS)


def _write_csv(f: IO[bytes], rows: Iterator[dict[str, Any]], job: JobInfo, most: int = 1) -> None:
    clash = sorted(set(job.columns) & ERROR_COLUMN_SET)
    if clash:
        raise InputError(f"source column {', '.join(clash)} clashes with the report's error columns;"
                         " use --format jsonl or parquet")
    # utf-8-sig: the BOM makes spreadsheets read the file as UTF-8 (names, accents).
    text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
    writer = csv.writer(text, lineterminator="\r\n")
    extra = problem_columns(most)
    writer.writerow([neutralise_cell(h) for h in (*job.columns, *ERROR_COLUMNS, *extra)])
    columns = job.columns
    cell, escape = cell_text, NEEDS_ESCAPE
    for row in rows:
        src = row["sourceData"]
        data = src["rowData"] or {}
        raw = ""
        if RAW_KEY in data and len(data) == 1 and RAW_KEY not in columns:
            raw, data = str(data[RAW_KEY]), {}
        problems: list[dict[str, Any]] = row.get("errors") or []
        leading = _leading(row)
        if len(problems) > 1:  # the message says them all; each has its columns after the rest
            leading = (*leading[:3], joined_message(problems), *leading[4:])
        more = [p.get(k) for p in problems[1:most] for k in PROBLEM_FIELDS]
        # Inline fast path for the common case, plain text (this loop runs once per cell).
        values = [*map(data.get, columns), *leading, src["rowNumber"], src["lineNumber"],
                  *_trailing(row), raw, *more, *([""] * (len(extra) - len(more)))]
        writer.writerow(
            [v if type(v) is str and not (v and v[0] in escape) else cell(v) for v in values]
        )
    text.flush()
    text.detach()  # the caller owns (and closes) the binary file


def _write_jsonl(f: IO[bytes], rows: Iterator[dict[str, Any]], job: JobInfo) -> None:
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
        "errors",
        pa.list_(pa.struct([("errorType", pa.string()), ("propertyName", pa.string()),
                            ("invalidValue", pa.string()), ("errorMessage", pa.string())])),
    ),
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


def _write_parquet(f: IO[bytes], rows: Iterator[dict[str, Any]], job: JobInfo) -> None:
    schema = parquet_schema(job.columns)
    with pq.ParquetWriter(f, schema, compression="zstd") as writer:
        wrote = False
        while batch := list(islice(rows, PARQUET_BATCH_ROWS)):
            writer.write_batch(_parquet_batch(batch, schema))
            wrote = True
        if not wrote:  # an empty report still carries its schema (the "headers")
            writer.write_table(schema.empty_table())


_WRITERS: dict[str, Callable[[IO[bytes], Iterator[dict[str, Any]], JobInfo], None]] = {
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
    check_limit(limit)
    q = prepare(journal, error_types=error_types, categories=categories, include_resolved=include_resolved,
                 include_warnings=include_warnings, after=after)
    to_stdout = path == STDOUT
    target = STDOUT if to_stdout else _target(journal, q.job.job_id, fmt, path)
    counts = {SEVERITY_ERROR: 0, SEVERITY_WARNING: 0}
    last: list[tuple[int, int, int]] = []

    def counted(keyed: Iterator[tuple[tuple[int, int, int], dict[str, Any]]]) -> Iterator[dict[str, Any]]:
        for key, row in keyed:
            counts[row["severity"]] += 1
            last[:] = [key]
            yield row

    with journal.snapshot(), (_stdout() if to_stdout else _private_file(target)) as f:
        keyed = iter_keyed(journal, q)
        rows = counted(islice(keyed, limit) if limit is not None else keyed)
        if fmt == "csv":
            _write_csv(f, rows, q.job, journal.most_problems(include_resolved))
        else:
            _WRITERS[fmt](f, rows, q.job)
        more = limit is not None and next(keyed, None) is not None
    return ReportWritten(
        path=target,
        rows=counts[SEVERITY_ERROR] + counts[SEVERITY_WARNING],
        errors=counts[SEVERITY_ERROR],
        warnings=counts[SEVERITY_WARNING],
        next_cursor=encode_cursor(*last[0]) if more and last else None,
        format=fmt,
        job_id=q.job.job_id,
    )


def describe_written(written: ReportWritten, *, filtered: bool = False, job_dir_flag: str = "",
                     limit: int | None = None) -> str:
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
        more = f" --limit {limit}" if limit else ""
        lines.append(f"More rows: bulkload report {written.job_id}{job_dir_flag} --after {written.next_cursor}{more}")
    return "\n".join(lines)

