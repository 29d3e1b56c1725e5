"""Corrected files for `retry --from`: a report a person fixed in a spreadsheet (or any
CSV or Parquet file with the job's columns), read back row by row.

A CSV the report wrote comes back as it is: its `bulkload_*` error columns are dropped,
the cells it neutralised against spreadsheet formulas are restored, warning rows
(superseded duplicates) are skipped, and each row says which source row it corrects
(`bulkload_rowNumber`), so a row whose id was the fault can be matched by its number.
Spreadsheets in some locales save with `;` or tabs: the delimiter is sniffed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bulkload.errors import InputError
from bulkload.reports.fields import (
    CATEGORY_COLUMN,
    ERROR_COLUMN_PREFIX,
    ERROR_COLUMN_SET,
    INVALID_VALUE_COLUMN,
    RAW_KEY,
    ROW_NUMBER_COLUMN,
    SEVERITY_COLUMN,
    SEVERITY_WARNING,
    SOURCE_COLUMN_COLUMN,
    restore_cell,
)
from bulkload.reports.files import PARQUET_META_COLUMNS, PARQUET_META_REPORT
from bulkload.source import sniff_delimiter


def is_malformed(row_data: dict[str, Any], columns: Sequence[str]) -> bool:
    return RAW_KEY in row_data and len(row_data) == 1 and RAW_KEY not in columns


@dataclass(frozen=True)
class CorrectedRow:
    values: dict[str, Any]  # source column -> value (CSV: text, restored; Parquet: as stored)
    row_number: int | None  # the source row it corrects (bulkload_rowNumber), when the file says
    file_line: int  # where it is in the corrected file, for messages
    category: str | None = None  # the report's category of the row (bulkload_category), when the file says
    # A failed association's line: the column of its target and the value that failed
    # (bulkload_sourceColumn, bulkload_invalidValue).
    source_column: str | None = None
    invalid_value: str | None = None

    @property
    def is_association(self) -> bool:
        """A failed association's row: its cells correct the association, not the record."""
        return (self.category or "").strip() == "ASSOCIATIONS"


def _is_error_column(name: str, keep: frozenset[str]) -> bool:
    return name not in keep and (name in ERROR_COLUMN_SET or name.startswith(ERROR_COLUMN_PREFIX))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _cell(cells: list[str], i: int | None) -> str:
    """A corrected file's cell, neutralising undone; "" where a short row has none."""
    return restore_cell(cells[i]) if i is not None and i < len(cells) else ""


def _open_csv(
    path: Path, keep: frozenset[str], include_warnings: bool
) -> tuple[list[str], Iterator[CorrectedRow]]:
    # Rows with long values (VALUE_TOO_LONG, malformed rows) exceed csv's 128 KiB field default.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            sample = f.read(1 << 16)
            f.seek(0)
            # Spreadsheets in some locales save with ';' or tabs.
            delimiter = sniff_delimiter(sample, complete=len(sample) < 1 << 16) or ","
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
    category_at = index.get(CATEGORY_COLUMN)
    column_at, invalid_at = index.get(SOURCE_COLUMN_COLUMN), index.get(INVALID_VALUE_COLUMN)

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
                        category=_cell(cells, category_at) if category_at is not None else None,
                        source_column=_cell(cells, column_at) if column_at is not None else None,
                        invalid_value=_cell(cells, invalid_at) if invalid_at is not None else None,
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
            for batch in pf.iter_batches(columns=["severity", "category", "sourceColumn", "invalidValue",
                                                  "sourceData"]):
                for entry in batch.to_pylist():
                    n += 1
                    if entry["severity"] == SEVERITY_WARNING and not include_warnings:
                        continue
                    src = entry["sourceData"] or {}
                    data = json.loads(src["rowData"]) if src.get("rowData") else {}
                    if is_malformed(data, columns):
                        data = {}
                    yield CorrectedRow({c: data.get(c) for c in columns}, src.get("rowNumber"), n,
                                       entry["category"], entry["sourceColumn"], entry["invalidValue"])

        return columns, report_rows_()
    names = [n for n in pf.schema_arrow.names if not _is_error_column(n, keep)]
    if not names:
        raise InputError(f"{path} has no source columns")
    extra = [c for c in (SEVERITY_COLUMN, ROW_NUMBER_COLUMN, CATEGORY_COLUMN) if c in pf.schema_arrow.names]

    def plain_rows() -> Iterator[CorrectedRow]:
        n = 0
        for batch in pf.iter_batches(columns=names + extra):
            for entry in batch.to_pylist():
                n += 1
                if entry.get(SEVERITY_COLUMN) == SEVERITY_WARNING and not include_warnings:
                    continue
                rn = entry.get(ROW_NUMBER_COLUMN)
                yield CorrectedRow({c: entry[c] for c in names}, _int_or_none(rn) if rn is not None else None, n,
                                   entry.get(CATEGORY_COLUMN))

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
