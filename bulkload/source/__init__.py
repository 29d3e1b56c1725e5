"""Read the source file: CSV or Parquet in, Arrow record batches out, every row numbered so
a person can find it in the file; and the file's fingerprint.

This package's one job is to stream a file on disk as `SourceChunk`s without ever holding
it whole, and to refuse (`SourceError`, one line naming the file) a file that cannot be
used at all. It does not interpret values: CSV cells stay text exactly as written (`0012`,
`N/A`, `null`, `NaN`, `1e5`, leading spaces), Parquet columns keep their types; converting
values for HubSpot is mapping.py's job.

    open_source(path, format=None, *, delimiter=None) -> Source
    Source.chunks(columns, *, rows_per_chunk, start: StartAt, expect: Fingerprint)
    Source.scan(columns, *, rows_per_chunk) -> SourceScan   # chunks + .fingerprint, one read
    fingerprint(path) -> Fingerprint; sniff_delimiter(sample) -> str | None

Modules, in the order a read uses them: sniff (format, text checks, delimiter, the
header), csv_reader (the streaming CSV reader and its restarts at long records),
csv_numbering (row and line numbers), csv_quirks (the byte-level file wrappers, line
offsets, quote checks), parquet, fingerprint (hashing and change checks), records (the
records and the Source interface), arrays (small Arrow helpers).

Numbering, CSV:

- `row_number` is the 1-based data row (the header is not counted). A record with the
  wrong number of cells is a `MalformedRow`, not a refusal; it keeps its row number, so
  the good rows around it have a gap there. Rows are numbered 1..N without other gaps,
  so the largest row number is the number of data rows.
- `line_number` is the physical line the record starts on (the header is line 1). Line
  breaks inside quoted cells (LF or CRLF) advance it; they are counted per row from the
  cell values with Arrow compute, never a Python loop per row.
- A blank line (or a record whose every cell is empty, like `,,,,`) is not a data row: it
  takes no row number and is left out, but its line counts, and `SourceChunk.blank_rows`
  says how many a chunk's span held. (A trailing blank line in an Excel export must not
  become a failed row.)

Line breaks are counted by LF (CRLF counts once); a bare CR inside a cell is not a line
break, except in a file whose rows end in a bare CR, which is counted by CR throughout.

Delimiters: `,` `;` tab `|` are detected from the header and the first records when not
given (see sniff.sniff_delimiter); `Source.delimiter` and `Source.delimiter_origin`
("given", "detected", "default") say what was used.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bulkload.errors import SourceError
from bulkload.source.csv_reader import CSV_BLOCK_SIZE, MAX_RECORD_BYTES, CsvSource, open_csv
from bulkload.source.fingerprint import Fingerprint, fingerprint
from bulkload.source.parquet import ParquetSource, open_parquet
from bulkload.source.records import (
    DelimiterOrigin,
    MalformedRow,
    Source,
    SourceChunk,
    SourceFormat,
    SourceScan,
    StartAt,
)
from bulkload.source.sniff import DELIMITERS, check_delimiter, detect_format, sniff_delimiter

__all__ = [
    "CSV_BLOCK_SIZE",
    "DELIMITERS",
    "MAX_RECORD_BYTES",
    "CsvSource",
    "DelimiterOrigin",
    "Fingerprint",
    "MalformedRow",
    "ParquetSource",
    "Source",
    "SourceChunk",
    "SourceFormat",
    "SourceScan",
    "StartAt",
    "detect_format",
    "fingerprint",
    "open_source",
    "sniff_delimiter",
]


def open_source(path: Path, format: str | None = None, *, delimiter: str | None = None) -> Source:
    """Open a source file for streaming, or raise SourceError saying why it is unusable.

    `format`: csv, tsv (CSV split by tabs) or parquet; else from the name and content.
    `delimiter`: one character for a CSV (`\\t` or `tab` for a tab); else detected.
    Cheap checks only (the header, the first 64 KiB); problems further into a CSV file
    (invalid UTF-8, a quote never closed) surface as SourceError from `chunks()`.
    """
    path = Path(path)
    if delimiter is not None:
        delimiter = check_delimiter(delimiter)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SourceError(f"{path}: is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path}: cannot read: permission denied")
    if info.st_size == 0:
        raise SourceError(f"{path}: the file is empty (0 bytes)")
    if detect_format(path, format) == "parquet":
        if delimiter is not None:
            raise SourceError(f"{path}: --delimiter applies to CSV files, but the file is Parquet")
        return open_parquet(path)
    tsv = format is not None and format.strip().lower() == "tsv"
    return open_csv(path, delimiter, tsv=tsv)
