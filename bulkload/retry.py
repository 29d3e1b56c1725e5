"""`bulkload retry`: re-send a job's failed rows, from the journal's copy or a corrected file.

Like HubSpot's own resync, rows go in batches of up to 100 under the same rate
limiter, transient-retry policy and bisection as the load. A success marks the
row's error resolved; a new failure replaces it, so only the most recent error
per row (and so per id value) is current.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from bulkload.config import Connection, JobConfig, Tuning
from bulkload.errors import InputError, MappingError
from bulkload.hubspot.types import UpsertInput
from bulkload.journal import ErrorRecord, JobState, Journal
from bulkload.mapping import ColumnMap, Schema, format_utc, map_chunk, resolve_columns
from bulkload.pipeline import (
    Progress,
    Runtime,
    UsageMeter,
    fetch_schema,
    make_client,
    make_limiter,
    make_sender,
)
from bulkload.sender import Sender
from bulkload.source import SourceChunk
from bulkload.taxonomy import ErrorType

# Rows that carry no id cannot be matched to a record or a corrected row.
UNRETRYABLE = frozenset({ErrorType.MISSING_ID_VALUE.value})


@dataclass(frozen=True)
class FailedRow:
    row_number: int
    line_number: int | None
    id_value: str | None
    batch_no: int | None
    error_type: str
    row_data: dict[str, Any]


@dataclass
class RetryStats:
    selected: int = 0
    matched: int = 0  # rows that had data to send (all of them without --from)
    skipped: int = 0  # no id, or not in the corrected file
    resolved: int = 0
    failed: int = 0
    created: int = 0
    updated: int = 0
    by_error: dict[str, int] = field(default_factory=dict)


def select_failed(journal: Journal, error_types: Sequence[str]) -> list[FailedRow]:
    sql = "SELECT row_number, line_number, id_value, batch_no, error_type, row_data FROM row_errors WHERE resolved = 0"
    args: list[Any] = []
    if error_types:
        sql += f" AND error_type IN ({','.join('?' * len(error_types))})"
        args.extend(error_types)
    sql += " ORDER BY row_number"
    return [
        FailedRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5] or "{}"))
        for r in journal.db.execute(sql, args).fetchall()
    ]


def _as_text(v: Any) -> str | None:
    """A journaled (or Parquet) source value as the text HubSpot would receive."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if hasattr(v, "isoformat") and hasattr(v, "hour"):
        return format_utc(v)
    return str(v)


def read_corrections(path: Path, columns: Sequence[str], id_column: str) -> dict[str, dict[str, Any]]:
    """Rows of a corrected file by id value (the last row wins, as in a load).

    A CSV the report wrote comes back as it is: its bulkload_ columns are dropped
    and the cells it neutralised against spreadsheet formulas are restored.
    """
    from bulkload.report import read_corrected_file

    if not path.exists():
        raise InputError(f"corrected file not found: {path}")
    header, rows = read_corrected_file(path)
    if id_column not in header:
        raise MappingError(f"{path.name} has no id column {id_column!r} (its columns: {', '.join(header)})")
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        id_value = _as_text(row.get(id_column))
        if id_value:
            out[id_value] = row
    return out


def _chunk_for(rows: Sequence[FailedRow], data: Sequence[dict[str, Any]], columns: Sequence[str]) -> SourceChunk:
    table = pa.RecordBatch.from_pydict(
        {c: pa.array([_as_text(d.get(c)) for d in data], pa.string()) for c in columns}
    )
    return SourceChunk(
        table=table,
        row_numbers=pa.array([r.row_number for r in rows], pa.int64()),
        line_numbers=pa.array([r.line_number for r in rows], pa.int64()),
        malformed=(),
    )


def _groups(items: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _where(row: FailedRow, data: dict[str, Any]) -> dict[str, Any]:
    return {"row_number": row.row_number, "line_number": row.line_number, "id_value": row.id_value,
            "batch_no": row.batch_no, "row_data": data}


def retry_rows(
    journal: Journal,
    rows: Sequence[FailedRow],
    data: Sequence[dict[str, Any]],
    column_map: ColumnMap,
    schema: Schema,
    config: JobConfig,
    sender: Sender,
    meter: UsageMeter,
    run_no: int,
    stats: RetryStats,
    progress: Progress,
) -> None:
    """Map and send rows in batches of up to 100; journal each batch's outcome at once."""
    columns = list(dict.fromkeys([*(c for c, _ in column_map.pairs), *(k for d in data for k in d)]))
    for idx in _groups(list(range(len(rows))), config.batch_size):
        part = [rows[i] for i in idx]
        part_data = [data[i] for i in idx]
        mapped = map_chunk(_chunk_for(part, part_data, columns), column_map, schema)
        errors: list[ErrorRecord] = []
        inputs: list[UpsertInput] = []
        by_trace: dict[str, int] = {}
        for i, row in enumerate(part):
            failure = mapped.failures.get(i)
            if failure is not None:
                errors.append(ErrorRecord.from_local(failure, **_where(row, part_data[i])))
                continue
            trace = str(row.row_number)
            by_trace[trace] = i
            inputs.append({"idProperty": config.id_property, "id": mapped.ids[i] or "",
                           "properties": mapped.properties[i] or {}, "objectWriteTraceId": trace})
        resolved: list[int] = []
        created = 0
        if inputs:
            outcome = sender.send(config.object_type, inputs)
            for s in outcome.successes:
                if s.trace_id in by_trace:
                    resolved.append(part[by_trace[s.trace_id]].row_number)
                    created += 1 if s.created else 0
            for f in outcome.failures:
                at = by_trace.get(f.trace_id or "")
                if at is None:
                    continue
                errors.append(ErrorRecord.from_hubspot(f, **_where(part[at], part_data[at])))
        journal.record_retry(resolved, errors, created=created, updated=len(resolved) - created, run_no=run_no)
        meter.flush()
        progress.advance(len(part))
        stats.resolved += len(resolved)
        stats.failed += len(errors)
        stats.created += created
        stats.updated += len(resolved) - created
        for e in errors:
            stats.by_error[e.error_type] = stats.by_error.get(e.error_type, 0) + 1


def retry_job(
    journal: Journal,
    conn: Connection,
    *,
    error_types: Iterable[str] = (),
    corrected: Path | None = None,
    tuning: Tuning | None = None,
    runtime: Runtime | None = None,
) -> RetryStats:
    tuning = tuning or Tuning()
    rt = runtime or Runtime()
    job = journal.job()
    config = JobConfig.from_dict(job.config)
    column_map = resolve_columns(job.columns, config.id_property, config.columns)
    types = [t.strip() for t in error_types if t.strip()]
    stats = RetryStats()
    candidates = select_failed(journal, types)
    stats.selected = len(candidates)
    rows: list[FailedRow] = []
    data: list[dict[str, Any]] = []
    corrections = read_corrections(corrected, job.columns, column_map.id_column) if corrected else None
    for row in candidates:
        if not row.id_value or row.error_type in UNRETRYABLE:
            stats.skipped += 1
            continue
        if corrections is not None:
            fixed = corrections.get(row.id_value)
            if fixed is None:
                stats.skipped += 1
                continue
            rows.append(row)
            data.append(fixed)
        else:
            if "_raw" in row.row_data and len(row.row_data) == 1:
                stats.skipped += 1  # a malformed row has no columns to send
                continue
            rows.append(row)
            data.append(row.row_data)
    stats.matched = len(rows)
    if not rows:
        return stats
    run_no = journal.start_run("retry", {"concurrency": tuning.concurrency, "rate": str(tuning.rate or ""),
                                         "daily_budget": tuning.daily_budget, "from": str(corrected or "")})
    limiter = make_limiter(tuning, rt)
    outcome = "error"
    try:
        meter = UsageMeter(journal, tuning.daily_budget, rt.wall)
        meter.check()  # a spent --daily-budget pauses before any request
        with make_client(conn, tuning, rt) as probe:
            schema = fetch_schema(probe, limiter, config, rt, meter)
        with make_client(conn, tuning, rt, schema) as client:
            sender = make_sender(client, limiter, meter, tuning, rt)
            rt.progress.start(len(rows), 0)
            try:
                retry_rows(journal, rows, data, column_map, schema, config, sender, meter, run_no, stats, rt.progress)
            finally:
                rt.progress.close()
        outcome = "done"
    finally:
        journal.finish_run(run_no, outcome, stats.resolved + stats.failed)
    settle_state(journal)
    return stats


def settle_state(journal: Journal) -> None:
    """A finished job's state follows its rows: no failures left means completed."""
    job = journal.job()
    if job.state not in (JobState.COMPLETED, JobState.COMPLETED_WITH_ERRORS):
        return
    rows = journal.counts()["rows"]
    state = JobState.COMPLETED if rows["failed"] == 0 else JobState.COMPLETED_WITH_ERRORS
    if state != job.state:
        journal.set_state(state, pid=None)

