"""The stage of `retry`: send a job's failed rows again, from the journal's copy of their
source data or from a corrected file.

Like HubSpot's own resync, rows go in batches of up to 100 under the same rate limiter,
retry policy and splitting as the load (the one run loop). A success marks the row's
error resolved; a new failure replaces it, so only the most recent error per row (and so
per record) is current.

A corrected file's row is matched to a failed row by its id value, or by its report row
number (`bulkload_rowNumber`) when the failed row has no usable id or its id was the
fault: giving such a row an id in the spreadsheet is how it is fixed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from bulkload.associations import AssociationStep
from bulkload.config import JobConfig
from bulkload.convert import format_utc
from bulkload.corrections import CorrectedRow, open_corrected_file
from bulkload.errors import InputError, MappingError
from bulkload.journal import BatchResult, Journal, LinkResult, ReplayRow, Usage
from bulkload.mapping import ColumnMap, Schema, association_values, map_chunk
from bulkload.models import BatchPlan, FailedRow, Link, Target
from bulkload.reports.fields import RAW_KEY
from bulkload.source import SourceChunk
from bulkload.taxonomy import ErrorType

# A row whose id was the fault can be replayed only from a corrected file, by row number.
_ID_FAULTS = frozenset({ErrorType.MISSING_ID_VALUE.value, ErrorType.MALFORMED_ROW.value})


@dataclass
class RetryStats:
    selected: int = 0
    matched: int = 0  # rows that had data to send (all of them without --from)
    skipped: int = 0  # no id and no data, or not in the corrected file
    resolved: int = 0
    failed: int = 0
    created: int = 0
    updated: int = 0
    by_error: dict[str, int] = field(default_factory=dict)
    associations_retried: int = 0  # failed associations tried again
    associations_failed: int = 0  # failed associations of the job afterwards

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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


def _id_was_the_fault(row: ReplayRow, id_property: str) -> bool:
    return not row.id_value or row.error_type in _ID_FAULTS or row.property_name == id_property


@dataclass
class Corrections:
    """A corrected file's rows: records by id value and by the row number they correct
    (last wins), and the rows that correct a failed association."""

    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_row: dict[int, dict[str, Any]] = field(default_factory=dict)
    links: list[CorrectedRow] = field(default_factory=list)


def read_corrections(path: Path, id_column: str, source_columns: Sequence[str]) -> Corrections:
    if not path.exists():
        raise InputError(f"corrected file not found: {path}")
    header, rows = open_corrected_file(path, source_columns=source_columns)
    if id_column not in header:
        raise MappingError(f"{path.name} has no id column {id_column!r} (its columns: {', '.join(header)})")
    out = Corrections()
    for row in rows:
        if row.is_association:
            # Its record landed; only its association cells say anything (and its other
            # cells are empty: sending them would blank the record).
            if row.row_number is not None:
                out.links.append(row)
            continue
        _index(row, id_column, out.by_id, out.by_row)
    return out


def link_corrections(rows: Sequence[CorrectedRow], targets: Sequence[Target]
                     ) -> dict[tuple[int, int, str], list[str]]:
    """(row number, target, the value that failed) -> the values its corrected cell names,
    read as a load reads them (trimmed, e-mails lower-cased, `;` between several; an empty
    cell: none, the association is dropped). Each line corrects its own failed pair only:
    a line left out, or another target's cell, changes nothing."""
    by_column = {t.column: i for i, t in enumerate(targets)}
    lines = [r for r in rows if r.row_number is not None and r.source_column in by_column
             and r.invalid_value is not None and r.source_column in r.values]
    if not lines:
        return {}
    out: dict[tuple[int, int, str], list[str]] = {}
    for t, target in enumerate(targets):
        mine = [r for r in lines if by_column[str(r.source_column)] == t]
        if not mine:
            continue
        table = pa.table({target.column: pa.array([_as_text(r.values.get(target.column)) for r in mine],
                                                  pa.string())})
        for r, cells in zip(mine, association_values(table, [target]), strict=True):
            assert r.row_number is not None and r.invalid_value is not None
            out.setdefault((r.row_number, t, r.invalid_value), []).extend(v for _, v in cells)
    return out


def _index(row: CorrectedRow, id_column: str, by_id: dict[str, dict[str, Any]],
           by_row: dict[int, dict[str, Any]]) -> None:
    id_value = _as_text(row.values.get(id_column))
    if id_value and id_value.strip():
        by_id[id_value] = row.values
    if row.row_number is not None:
        by_row[row.row_number] = row.values


@dataclass
class ReplayStage:
    """Failed rows, sent again; journaled as a replay (resolve or replace each row's error)."""

    journal: Journal
    config: JobConfig
    column_map: ColumnMap
    columns: list[str]
    error_types: Sequence[str] = ()
    corrected: Path | None = None
    stats: RetryStats = field(default_factory=RetryStats)
    links: AssociationStep | None = None
    command: str = "retry"
    # (row, target, failed value) -> values: failed associations the corrected file corrects.
    link_fixes: dict[tuple[int, int, str], list[str]] = field(default_factory=dict)
    _rows: list[ReplayRow] = field(default_factory=list)
    _data: list[dict[str, Any]] = field(default_factory=list)

    def select(self) -> int:
        """Choose the rows to send and their data; returns how many will be sent."""
        candidates = self.journal.rows_to_replay(self.error_types)
        self.stats.selected = len(candidates)
        corrections = (read_corrections(self.corrected, self.column_map.id_column, self.columns)
                       if self.corrected is not None else None)
        if corrections is not None:
            self.link_fixes = link_corrections(corrections.links, self.config.associations)
        for row in candidates:
            data = self._data_for(row, corrections)
            if data is None:
                self.stats.skipped += 1
                continue
            self._rows.append(row)
            self._data.append(data)
        self.stats.matched = len(self._rows)
        return len(self._rows)

    def _data_for(self, row: ReplayRow, corrections: Corrections | None) -> dict[str, Any] | None:
        id_fault = _id_was_the_fault(row, self.config.id_property)
        if corrections is not None:
            by_id, by_row = corrections.by_id, corrections.by_row
            if id_fault or row.id_value not in by_id:
                return by_row.get(row.row_number) if (id_fault or row.row_number in by_row) else None
            return by_id[row.id_value]
        if id_fault or (RAW_KEY in row.row_data and len(row.row_data) == 1):
            return None  # no id, or a malformed row: nothing to send until it is corrected
        return row.row_data

    def batches(self, schema: Schema) -> Iterator[BatchPlan]:
        columns = list(dict.fromkeys([*(c for c, _ in self.column_map.pairs), *(k for d in self._data for k in d)]))
        return self._plan(schema, columns)

    def _plan(self, schema: Schema, columns: list[str]) -> Iterator[BatchPlan]:
        size = self.config.batch_size
        for start in range(0, len(self._rows), size):
            rows, data = self._rows[start : start + size], self._data[start : start + size]
            chunk = SourceChunk(
                table=pa.RecordBatch.from_pydict(
                    {c: pa.array([_as_text(d.get(c)) for d in data], pa.string()) for c in columns}),
                row_numbers=pa.array([r.row_number for r in rows], pa.int64()),
                line_numbers=pa.array([r.line_number for r in rows], pa.int64()),
            )
            mapped = map_chunk(chunk, self.column_map, schema, self.config.timezone, self.config.associations)
            plan = BatchPlan(0, rows[0].row_number, rows[-1].row_number, replay=True)
            for i, row in enumerate(rows):
                failure = mapped.failures.get(i)
                if failure is not None:
                    plan.failures.append(replace(failure, row_number=row.row_number, line_number=row.line_number,
                                                 id_value=mapped.ids[i], row_data=data[i]))
                    continue
                plan.inputs.append({"idProperty": self.config.id_property, "id": mapped.ids[i] or "",
                                    "properties": mapped.properties[i] or {},
                                    "objectWriteTraceId": str(row.row_number)})
                plan.input_lines.append(row.line_number)
                plan.refs.append((chunk.table, i))
                if mapped.links is not None:
                    plan.links.extend(Link(row.row_number, t, v) for t, v in mapped.links[i])
            yield plan

    def record(self, journal: Journal, run_no: int, outcomes: list[BatchResult], claims: list[BatchPlan],
               closed: list[BatchPlan], usage: Usage, links: list[LinkResult]) -> None:
        local: list[FailedRow] = [f for plan in (*claims, *closed) for f in plan.failures]
        journal.record_replay(run_no=run_no, outcomes=outcomes, failures=local, usage=usage, links=links)
        for failure in [*local, *(f for r in outcomes for f in r.failures)]:
            self.stats.failed += 1
            self.stats.by_error[failure.error_type] = self.stats.by_error.get(failure.error_type, 0) + 1
        for result in outcomes:
            created = sum(1 for x in result.outcome.landed if x.created)
            self.stats.resolved += len(result.outcome.landed)
            self.stats.created += created
            self.stats.updated += len(result.outcome.landed) - created

    def progress_total(self, journal: Journal) -> tuple[int, int]:
        return len(self._rows), 0
