"""The failed-rows report: which rows failed, why, where to fix them, and the way back in.

It reads a job's journal and presents it, never changes it, modelled on what HubSpot
itself offers (HUBSPOT.md section 5): the import-errors API (each error with its source
row, row and line number, invalid value and property; paged by an opaque cursor), the
sync-errors API (only the most recent error per record is current, a later success
resolves it, resolved errors shown only on request, filters by type), and the
sync-health screen (one card per error category, plus an export).

Modules: `fields` (the vocabulary and CSV cells), `rows` (the rows and pages),
`files` (csv, jsonl, parquet, mode 0600), `cards` (the summary cards).
"""

from __future__ import annotations

from bulkload.reports.cards import (
    CategoryCard,
    readable_message,
    render_summary,
    summary,
    summary_dict,
)
from bulkload.reports.fields import (
    ERROR_COLUMN_PREFIX,
    ERROR_COLUMNS,
    ERROR_FIELDS,
    RAW_KEY,
    ROW_NUMBER_COLUMN,
    SEVERITY_COLUMN,
    SEVERITY_ERROR,
    SEVERITY_WARNING,
    neutralise_cell,
    restore_cell,
)
from bulkload.reports.files import (
    FORMATS,
    STDOUT,
    Format,
    ReportWritten,
    default_report_path,
    describe_written,
    parquet_schema,
    write_report,
)
from bulkload.reports.rows import ReportPage, decode_cursor, encode_cursor, report_rows

__all__ = [
    "ERROR_COLUMNS",
    "ERROR_COLUMN_PREFIX",
    "ERROR_FIELDS",
    "FORMATS",
    "RAW_KEY",
    "ROW_NUMBER_COLUMN",
    "SEVERITY_COLUMN",
    "SEVERITY_ERROR",
    "SEVERITY_WARNING",
    "STDOUT",
    "CategoryCard",
    "Format",
    "ReportPage",
    "ReportWritten",
    "decode_cursor",
    "default_report_path",
    "describe_written",
    "encode_cursor",
    "neutralise_cell",
    "parquet_schema",
    "readable_message",
    "render_summary",
    "report_rows",
    "restore_cell",
    "summary",
    "summary_dict",
    "write_report",
]
