"""The records a source hands to the stages after it (`SourceChunk`, `MalformedRow`), where a
read may start (`StartAt`), and the `Source` interface both readers implement, with its
hashing `SourceScan`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa

from bulkload.errors import SourceError
from bulkload.source.fingerprint import Fingerprint

SourceFormat = Literal["csv", "parquet"]
# How a CSV's delimiter was chosen: named by the caller (`delimiter=` or format "tsv"),
# found in the file's first rows, or the default for its name (`,`; tab for .tsv/.tab).
DelimiterOrigin = Literal["given", "detected", "default"]


@dataclass(frozen=True)
class MalformedRow:
    """A CSV record with the wrong number of cells: a failed row, not a refusal."""

    row_number: int  # 1-based data row number (header not counted) this bad row occupies
    line_number: int | None  # physical line where it starts (CSV)
    text: str  # raw text of the row (for the report)
    message: str  # e.g. "expected 12 columns, got 13"


@dataclass(frozen=True)
class StartAt:
    """Where a CSV read may begin instead of the top: a data row and the line it starts on.

    A resume knows both from its journal; reading from there skips parsing what is done.
    """

    row_number: int
    line_number: int


@dataclass(frozen=True)
class SourceChunk:
    """Consecutive rows of the source, with the numbers that locate them in the file.

    `table`: CSV columns are all pa.string(), values verbatim ("" means no value); Parquet
    columns are as typed in the file (null means no value). `row_numbers[i]` and
    `line_numbers[i]` locate `table` row i. `malformed` holds the malformed rows whose row
    numbers fall before the next chunk's first row (and after the previous chunk's rows).
    """

    table: pa.RecordBatch
    row_numbers: pa.Int64Array
    line_numbers: pa.Int64Array | None
    malformed: tuple[MalformedRow, ...] = ()
    # Blank records (every cell empty) left out in this chunk's span: no row numbers, no
    # rows, only lines; see the package doc. Always 0 for Parquet.
    blank_rows: int = 0

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)


class SourceScan:
    """One read of a source from the top that yields its chunks and fingerprints the file.

    Iterate it once (the same chunks `Source.chunks()` yields); once it is exhausted,
    `fingerprint` is the file's `Fingerprint`, equal to `fingerprint(path)`. A file that
    changed while it was read is refused with SourceError instead.
    """

    def __init__(self, run: Callable[[Callable[[Fingerprint], None]], Iterator[SourceChunk]]) -> None:
        # `run(done)` is the reader's generator; it calls done(fingerprint) at its end.
        self._chunks = run(self._finish)
        self._started = False
        self._fingerprint: Fingerprint | None = None

    def __iter__(self) -> Iterator[SourceChunk]:
        if self._started:
            raise RuntimeError("a scan reads the file once; call Source.scan() again")
        self._started = True
        return self._chunks

    def _finish(self, result: Fingerprint) -> None:
        self._fingerprint = result

    @property
    def done(self) -> bool:
        return self._fingerprint is not None

    @property
    def fingerprint(self) -> Fingerprint:
        if self._fingerprint is None:
            raise RuntimeError("the scan has not read the whole file yet")
        return self._fingerprint


class Source:
    """An opened source file. `chunks()` streams it; each call restarts from the top.

    `delimiter` and `delimiter_origin` say how a CSV is split (None for Parquet), so a
    caller can print e.g. "delimiter ';' (detected)" (`delimiter_note`).
    """

    path: Path
    format: SourceFormat
    columns: list[str]  # header names in file order
    delimiter: str | None = None
    delimiter_origin: DelimiterOrigin | None = None

    def __init__(self, path: Path, format: SourceFormat, columns: list[str]) -> None:
        self.path = path
        self.format = format
        self.columns = columns

    def chunks(
        self,
        columns: Sequence[str] | None = None,
        *,
        rows_per_chunk: int = 65_536,
        start: StartAt | None = None,
        expect: Fingerprint | None = None,
    ) -> Iterator[SourceChunk]:
        """Stream the rows. With `expect` (the job's fingerprint), raise SourceModified
        (exit 75) as soon as the file no longer shows its size and mtime: checked after a
        chunk's bytes were read and before it is yielded, and at the end the read must have
        met the end of the file at `expect.size`."""
        raise NotImplementedError

    def scan(self, columns: Sequence[str] | None = None, *, rows_per_chunk: int = 65_536) -> SourceScan:
        """A read from the top that yields the chunks `chunks()` yields and fingerprints
        the file on the way: see `SourceScan`."""
        raise NotImplementedError

    @property
    def num_rows_hint(self) -> int | None:
        return None

    @property
    def delimiter_note(self) -> str | None:
        """e.g. "delimiter ';' (detected)"; None for Parquet."""
        if self.delimiter is None:
            return None
        name = "tab" if self.delimiter == "\t" else repr(self.delimiter)
        return f"delimiter {name} ({self.delimiter_origin})"

    def _selected(self, columns: Sequence[str] | None, rows_per_chunk: int) -> list[str]:
        if rows_per_chunk < 1:
            raise ValueError("rows_per_chunk must be >= 1")
        if columns is None:
            return list(self.columns)
        unknown = [c for c in columns if c not in self.columns]
        if unknown:
            raise SourceError(
                f"{self.path}: no column named {', '.join(map(repr, unknown))} "
                f"(columns: {', '.join(self.columns)})"
            )
        return list(columns)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, {len(self.columns)} columns)"
