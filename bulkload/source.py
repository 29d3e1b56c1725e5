"""Read the source file: CSV or Parquet in, Arrow record batches out, every row numbered so
a person can find it in the file; and the file's fingerprint.

This module's one job is to stream a file on disk as `SourceChunk`s without ever holding
it whole, and to refuse (`SourceError`, one line naming the file) a file that cannot be
used at all. It does not interpret values: CSV cells stay text exactly as written (`0012`,
`N/A`, `null`, `NaN`, `1e5`, leading spaces), Parquet columns keep their types; converting
values for HubSpot is mapping.py's job.

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

How: pyarrow's streaming CSV reader, with use_threads=False. Only then does pyarrow count
records and hand the invalid-row handler a real `InvalidRow.number` (the 1-based physical
record, header included; with use_threads=True it is None). Parsing is serial anyway in
the streaming reader; threads would only decode columns in parallel, and the reader
already does well over 500,000 rows/s on one core. Blank lines are kept as records
(ignore_empty_lines=False) because pyarrow neither counts nor reports the ones it skips,
which would silently shift every later line number.

Line breaks are counted by LF (CRLF counts once); a bare CR inside a cell is not a line
break, except in a file whose rows end in a bare CR, which is counted by CR throughout.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bulkload.errors import SourceError

if TYPE_CHECKING:
    from sys import UnraisableHookArgs

SourceFormat = Literal["csv", "parquet"]

_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": ","}
_PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
_PARQUET_MAGIC = b"PAR1"

# Read blocks of 256 KiB: pyarrow reads ahead up to ~32 blocks in the background, so this
# bounds its buffers at ~8 MB whatever the file size; larger blocks were no faster.
CSV_BLOCK_SIZE = 1 << 18
# How much of a CSV file open_source looks at for its cheap checks (encoding, header).
_PROBE_SIZE = 1 << 16


# --------------------------------------------------------------------------- fingerprint


@dataclass(frozen=True)
class Fingerprint:
    """What a job remembers of its source file, to refuse a changed file on resume."""

    size: int
    mtime_ns: int
    sha256: str

    def __str__(self) -> str:
        return f"sha256:{self.sha256}"

    def to_dict(self) -> dict[str, object]:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Fingerprint:
        size, mtime_ns, sha256 = d.get("size"), d.get("mtime_ns"), d.get("sha256")
        if not isinstance(size, int) or not isinstance(mtime_ns, int):
            raise ValueError(f"not a fingerprint: {dict(d)!r}")
        if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"not a fingerprint: {dict(d)!r}")
        return cls(size=size, mtime_ns=mtime_ns, sha256=sha256)

    def describe_change(self, current: Fingerprint) -> str | None:
        """None if `current` is the same file; else one human line saying what changed.

        A changed mtime alone is NOT a change: copying the file, restoring it from a backup
        or `touch` moves the mtime without changing a byte, and the rows (hence the row
        numbers the journal holds) are what matters. Size and content hash decide.
        """
        parts: list[str] = []
        if current.size != self.size:
            parts.append(f"size {self.size:,} -> {current.size:,} bytes")
        if current.sha256 != self.sha256:
            parts.append("content hash differs")
        return "; ".join(parts) if parts else None


def fingerprint(path: Path, *, chunk_size: int = 1 << 20) -> Fingerprint:
    """Size, mtime and SHA-256 of the file, read in `chunk_size` pieces (bounded memory)."""
    digest = hashlib.sha256()
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    try:
        with open(path, "rb") as f:
            before = os.fstat(f.fileno())
            while n := f.readinto(buffer):
                digest.update(view[:n])
            after = os.fstat(f.fileno())
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise SourceError(f"{path}: the file changed while it was being read")
    return Fingerprint(size=after.st_size, mtime_ns=after.st_mtime_ns, sha256=digest.hexdigest())


# --------------------------------------------------------------------------- records


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
    # rows, only lines; see the module doc. Always 0 for Parquet.
    blank_rows: int = 0

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)


# --------------------------------------------------------------------------- sources


class Source:
    """An opened source file. `chunks()` streams it; each call restarts from the top."""

    path: Path
    format: SourceFormat
    columns: list[str]  # header names in file order

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
    ) -> Iterator[SourceChunk]:
        raise NotImplementedError

    @property
    def num_rows_hint(self) -> int | None:
        return None

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


class CsvSource(Source):
    """A UTF-8 CSV (or TSV) file with a header row."""

    def __init__(
        self, path: Path, columns: list[str], *, delimiter: str = ",", newline: str = "\n"
    ) -> None:
        # `columns` as pyarrow reads them; the public names have a stray BOM stripped.
        super().__init__(path, "csv", [_clean_name(c, i) for i, c in enumerate(columns)])
        self.arrow_columns = list(columns)
        self.delimiter = delimiter
        self.newline = newline  # what counts as a line break for line numbers

    def chunks(
        self,
        columns: Sequence[str] | None = None,
        *,
        rows_per_chunk: int = 65_536,
        start: StartAt | None = None,
    ) -> Iterator[SourceChunk]:
        """Stream the rows: `rows_per_chunk` records per chunk, fewer in the last one and
        where blank records were left out. With `start`, from that row on (numbered as in
        a read from the top).

        Every column is read whatever `columns` selects: line breaks in unselected cells
        still move line numbers, and blank rows are only known from all the cells. That
        keeps row and line numbers identical whatever subset a pass reads.
        """
        selected = self._selected(columns, rows_per_chunk)
        indices = [self.columns.index(name) for name in selected]
        reader = _CsvReader(self) if start is None or start.row_number <= 1 else _CsvReader.at(self, start)
        held: list[pa.RecordBatch] = []  # pyarrow's batches (~1 block each), not numbered
        count = 0
        for batch in reader.batches():
            held.append(batch)
            count += int(batch.num_rows)
            # Cut only once a record after the chunk is in hand: by then pyarrow has
            # reported every malformed record before it, and they ride with this chunk.
            while count > rows_per_chunk:
                group = _concat(held)
                held, count = [group.slice(rows_per_chunk)], count - rows_per_chunk
                yield reader.number(group.slice(0, rows_per_chunk)).chunk(indices, selected)
        last = reader.number(_concat(held)) if held else None
        tail = reader.finish()  # malformed records after the last row; end-of-file checks
        if last is not None and not (last.table.num_rows or last.malformed or last.blank_rows):
            last = None  # pyarrow's trailing empty batch: nothing to report
        if last is not None or tail:
            if last is None:
                empty = [pa.array([], pa.string()) for _ in selected]
                table = pa.RecordBatch.from_arrays(empty, names=selected)
                last = _Piece(table, _EMPTY_INT64, _EMPTY_INT64, [], 0)
                indices = list(range(len(selected)))
            last.malformed.extend(tail)
            yield last.chunk(indices, selected)


class ParquetSource(Source):
    """A Parquet file; its columns keep their types."""

    def __init__(self, path: Path, columns: list[str], num_rows: int) -> None:
        super().__init__(path, "parquet", columns)
        self._num_rows = num_rows

    @property
    def num_rows_hint(self) -> int | None:
        return self._num_rows

    def chunks(
        self,
        columns: Sequence[str] | None = None,
        *,
        rows_per_chunk: int = 65_536,
        start: StartAt | None = None,
    ) -> Iterator[SourceChunk]:
        """Stream the rows, at most `rows_per_chunk` per chunk, row numbers 1..N.

        `start` is accepted and ignored: Parquet batches are cheap to skip by the caller.
        """
        selected = self._selected(columns, rows_per_chunk)
        next_row = 1
        try:
            # Stream column chunks (no pre-buffering of whole row groups, reads of 1 MiB)
            # and decode on this thread: about half the peak memory, no slower.
            with pq.ParquetFile(self.path, pre_buffer=False, buffer_size=1 << 20) as pf:
                batches = pf.iter_batches(
                    batch_size=rows_per_chunk, columns=selected, use_threads=False
                )
                for batch in batches:
                    n = int(batch.num_rows)
                    if n == 0:
                        continue
                    yield SourceChunk(
                        table=batch,
                        row_numbers=_arange(next_row, n),
                        line_numbers=None,
                    )
                    next_row += n
        except (pa.ArrowException, OSError) as exc:
            raise SourceError(
                f"{self.path}: cannot read Parquet data after row {next_row - 1:,}: "
                f"{_first_line(exc)}"
            ) from None


# --------------------------------------------------------------------------- opening


def detect_format(path: Path, explicit: str | None = None) -> SourceFormat:
    """The file's format: `explicit` if given, else by extension, else by content; always
    checked against the content (Parquet starts with the magic bytes PAR1)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(_PARQUET_MAGIC))
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    looks_parquet = head == _PARQUET_MAGIC
    content = "Parquet" if looks_parquet else "not Parquet (no PAR1 magic bytes; text/CSV?)"
    suffix = path.suffix.lower()

    if explicit is not None:
        wanted = explicit.strip().lower()
        if wanted not in ("csv", "parquet"):
            raise SourceError(f"{path}: unknown format {explicit!r} (use csv or parquet)")
        if (wanted == "parquet") != looks_parquet:
            raise SourceError(f"{path}: --format {wanted} was given, but the file is {content}")
        return cast(SourceFormat, wanted)
    if suffix in _PARQUET_SUFFIXES and not looks_parquet:
        raise SourceError(f"{path}: named {suffix}, but the file is {content}")
    if suffix in _CSV_SUFFIXES and looks_parquet:
        raise SourceError(
            f"{path}: named {suffix}, but the file is Parquet; rename it or pass --format parquet"
        )
    return "parquet" if looks_parquet else "csv"


def open_source(path: Path, format: str | None = None) -> Source:
    """Open a source file for streaming, or raise SourceError saying why it is unusable.

    Cheap checks only (the header, the first 64 KiB); problems further into a CSV file
    (invalid UTF-8, a quote never closed) surface as SourceError from `chunks()`.
    """
    path = Path(path)
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
        return _open_parquet(path)
    return _open_csv(path)


def _open_parquet(path: Path) -> ParquetSource:
    try:
        with pq.ParquetFile(path) as pf:
            names = list(pf.schema_arrow.names)
            num_rows = int(pf.metadata.num_rows)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(
            f"{path}: not a readable Parquet file (truncated or corrupt?): {_first_line(exc)}"
        ) from None
    _check_names(path, names)
    return ParquetSource(path, names, num_rows)


def _open_csv(path: Path) -> CsvSource:
    with open(path, "rb") as f:
        head = f.read(_PROBE_SIZE)
    full = len(head) < _PROBE_SIZE  # the probe holds the whole file
    _check_text(path, head, full)
    delimiter = _CSV_SUFFIXES.get(path.suffix.lower(), ",")
    # A file whose lines end in a bare CR (old Mac exports): pyarrow splits rows on it,
    # so line numbers must count it too.
    first_lf, first_cr = head.find(b"\n"), head.find(b"\r")
    bare_cr = first_cr >= 0 and (first_lf < 0 or first_lf > first_cr + 1)
    newline = "\r" if bare_cr else "\n"

    # The header is the first line: a line break inside a quoted header name is refused
    # (_check_names), so it cannot span lines.
    ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
    if not ends and not full:
        raise SourceError(
            f"{path}: no line break in the first {_PROBE_SIZE >> 10} KiB: no header row?"
        )
    header = head[: min(ends)] if ends else head
    if _ends_inside_quotes(header.decode("utf-8", "replace"), delimiter):
        raise SourceError(
            f"{path}: the header opens a quote that the first line does not close "
            "(a line break inside a column name, or broken quoting)"
        )
    # pyarrow parses the header line alone, so the names are exactly the ones the data
    # pass sees (it also strips a UTF-8 BOM).
    try:
        reader = pacsv.open_csv(
            pa.BufferReader(header + b"\n"),
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=_parse_options(delimiter, None),
        )
        with reader:
            names = list(reader.schema.names)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: cannot read the CSV header: {_first_line(exc)}") from None
    _check_names(path, [_clean_name(name, i) for i, name in enumerate(names)])
    return CsvSource(path, names, delimiter=delimiter, newline=newline)


def _clean_name(name: str, index: int) -> str:
    # pyarrow strips one UTF-8 BOM; strip a stray second one too (Excel round trips).
    return name.lstrip("\ufeff") if index == 0 else name


def _check_text(path: Path, head: bytes, full: bool) -> None:
    """Refuse what is plainly not a UTF-8 text file, from its first bytes."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError(f"{path}: the file is UTF-16 encoded; save it as UTF-8")
    if head.startswith(b"\x1f\x8b"):
        raise SourceError(f"{path}: the file is gzip-compressed; decompress it first")
    if head.startswith(b"PK\x03\x04"):
        raise SourceError(
            f"{path}: the file is a ZIP archive (an Excel workbook?); export it as CSV (UTF-8)"
        )
    if b"\x00" in head:
        raise SourceError(f"{path}: the file contains NUL bytes; it is not a text (CSV) file")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The probe may cut a multi-byte character in two: that is not an error.
        if not (not full and exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"):
            line = head.count(b"\n", 0, exc.start) + 1
            raise SourceError(
                f"{path}: not UTF-8 (byte 0x{head[exc.start]:02x} on line {line}); "
                "save the file as UTF-8"
            ) from None


def _check_names(path: Path, names: list[str]) -> None:
    if not names:
        raise SourceError(f"{path}: no columns")
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if name == "":
            raise SourceError(f"{path}: column {number} of the header has no name")
        if "\n" in name or "\r" in name:
            raise SourceError(
                f"{path}: column {number} of the header holds a line break "
                "(broken quoting in the header?)"
            )
        if name in seen:
            raise SourceError(
                f"{path}: column name {name!r} appears twice (columns {seen[name]} and {number})"
            )
        seen[name] = number


# --------------------------------------------------------------------------- CSV reading


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def tell(self) -> int: ...


class _Prefixed:
    """`prefix`, then the rest of `raw` from where it stands: a header glued onto a file
    read from the middle, so pyarrow sees an ordinary CSV."""

    def __init__(self, prefix: bytes, raw: BinaryIO) -> None:
        self._prefix = prefix
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size < 0 or size >= len(self._prefix):
                head, self._prefix = self._prefix, b""
                return head + self._raw.read(-1 if size < 0 else size - len(head))
            head, self._prefix = self._prefix[:size], self._prefix[size:]
            return head
        return self._raw.read(size)

    def tell(self) -> int:
        return self._raw.tell()


def _line_offset(path: Path, line: int, newline: bytes, block: int = 1 << 20) -> tuple[int, bytes]:
    """The byte offset where `line` (1-based) starts, and the header line's bytes.

    Counting line breaks in raw blocks runs at memory speed, far faster than parsing.
    """
    header = b""
    seen = 0  # line breaks before `pos`
    pos = 0
    with open(path, "rb") as f:
        while True:
            data = f.read(block)
            if not data:
                raise SourceError(f"{path}: has no line {line:,}; the file is shorter than the job says")
            if not header:
                end = data.find(newline)
                if end >= 0:
                    header = data[: end + 1]
            n = data.count(newline)
            if seen + n >= line - 1:
                at = -1
                for _ in range(line - 1 - seen):
                    at = data.index(newline, at + 1)
                return pos + at + 1, header
            seen += n
            pos += len(data)


class _WholeCrlf:
    """A binary file whose reads never stop between a CR and the byte after it.

    pyarrow reads the file in blocks and, when a block ends in CR and the next starts with
    LF, drops that LF (taking it for a row terminator cut in two). Inside a quoted cell
    that LF is data: the cell would lose it and every later line number would be one
    short. Ending each read past any trailing CR means no block ever ends in one.
    """

    def __init__(self, raw: _Readable) -> None:
        self._raw = raw
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        while data.endswith(b"\r"):
            more = self._raw.read(1)
            if not more:
                break
            data += more
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self.closed = True


@dataclass
class _Piece:
    """Consecutive records, numbered, blank records left out (internal)."""

    table: pa.RecordBatch
    row_numbers: pa.Array
    line_numbers: pa.Array
    malformed: list[MalformedRow]
    blank_rows: int

    def chunk(self, indices: list[int], names: list[str]) -> SourceChunk:
        table = self.table.select(indices)
        if list(table.schema.names) != names:
            table = table.rename_columns(names)
        return SourceChunk(
            table=table,
            row_numbers=self.row_numbers,
            line_numbers=self.line_numbers,
            malformed=tuple(self.malformed),
            blank_rows=self.blank_rows,
        )


@dataclass
class _Invalid:
    number: int  # pyarrow's physical record number: header = 1
    expected: int
    actual: int
    text: str


@dataclass
class _CsvReader:
    """One pass over a CSV file: pyarrow batches in, numbered `_Piece`s out.

    Two counts advance together: records (pyarrow's numbering: every record after the
    header, blank ones included) and data rows (blank records are not data rows).
    """

    source: CsvSource
    next_record: int = 1  # the next record not numbered yet (header = 0)
    blank_before: int = 0  # blank records before it
    next_line: int = 2  # the line it starts on (the header is line 1)
    invalid: deque[_Invalid] = field(default_factory=deque)
    # The last cell of the last good record, and the record numbers of the last good and
    # the last malformed record: the end-of-file check needs them.
    last_cell: str | None = None
    last_good_record: int = 0
    last_malformed: tuple[int, MalformedRow] | None = None
    # pyarrow decodes a malformed record's text before calling the handler; when that
    # fails (not UTF-8) the handler never runs and pyarrow reports a parse error.
    undecodable: bool = False
    # Reading from a StartAt: the header's bytes, then the file from `offset`; pyarrow's
    # record numbers restart there, `record_base` puts them back in the file's count.
    offset: int = 0
    header: bytes = b""
    record_base: int = 0

    @classmethod
    def at(cls, source: CsvSource, start: StartAt) -> _CsvReader:
        offset, header = _line_offset(source.path, start.line_number, source.newline.encode())
        # Records and rows are counted from the start row on: blank records before it
        # are already out of the row numbers, so the two counts meet there.
        return cls(
            source,
            next_record=start.row_number,
            next_line=start.line_number,
            offset=offset,
            header=header,
            record_base=start.row_number - 1,
        )

    def _on_invalid(self, row: pacsv.InvalidRow) -> str:
        # Called by pyarrow while it parses (serially, in file order). The record is
        # skipped here and numbered with the good rows around it in number().
        self.invalid.append(
            _Invalid(
                int(row.number) + self.record_base, int(row.expected_columns), int(row.actual_columns), row.text
            )
        )
        return "skip"

    def batches(self) -> Iterator[pa.RecordBatch]:
        """pyarrow's batches, in file order, not numbered yet."""
        src = self.source
        try:
            raw = open(src.path, "rb")  # noqa: SIM115 - closed below, the generator outlives a with
            if self.offset:
                raw.seek(self.offset)
        except OSError as exc:
            raise self._error(exc) from None
        try:
            with self._quiet():
                reader = pacsv.open_csv(
                    pa.PythonFile(_WholeCrlf(_Prefixed(self.header, raw) if self.offset else raw), mode="r"),
                    read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_SIZE, use_threads=False),
                    parse_options=_parse_options(src.delimiter, self._on_invalid),
                    convert_options=pacsv.ConvertOptions(
                        column_types={name: pa.string() for name in src.arrow_columns},
                        # Never guess: every cell is text, an empty cell is "" (no value).
                        null_values=[],
                        strings_can_be_null=False,
                        quoted_strings_can_be_null=False,
                        check_utf8=True,
                    ),
                )
            with reader:
                if list(reader.schema.names) != src.arrow_columns:
                    raise SourceError(f"{src.path}: the header changed since the file was opened")
                while True:
                    with self._quiet():
                        batch = reader.read_next_batch()
                    yield batch
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise self._error(exc) from None
        finally:
            raw.close()

    def finish(self) -> list[MalformedRow]:
        """Number the malformed records after the last good row; check the file's end."""
        tail: list[MalformedRow] = []
        for _, rec in self._take_invalid(None):
            tail.append(_malformed(rec, rec.number - 1 - self.blank_before, self.next_line))
            self.next_record += 1
            self.next_line += rec.text.count(self.source.newline) + 1
            self._remember_malformed(rec.number - 1, tail[-1])
        self._check_unterminated_quote()
        return tail

    # -- numbering

    def _take_invalid(self, n: int | None) -> list[tuple[int, _Invalid]]:
        """The pending invalid records that come before good record `n` of the batch
        being numbered (n = its size: after its last record; None: all), with their
        position among its good records, in file order."""
        placed: list[tuple[int, _Invalid]] = []
        while self.invalid:
            rec = self.invalid[0]
            # pyarrow's number counts the header as 1 and every record after it, good,
            # blank or invalid: so it is this reader's record number + 1.
            position = rec.number - 1 - self.next_record - len(placed)
            if n is not None and position > n:
                break
            self.invalid.popleft()
            placed.append((max(position, 0), rec))
        return placed

    def _remember_malformed(self, record: int, row: MalformedRow) -> None:
        if self.last_malformed is None or record > self.last_malformed[0]:
            self.last_malformed = (record, row)

    def number(self, batch: pa.RecordBatch) -> _Piece:
        """Number the next records of the file (`batch` must follow the previous one)."""
        n = int(batch.num_rows)
        placed = self._take_invalid(n)
        newline = self.source.newline

        # Lines each good record spans: 1 + the line breaks inside its cells.
        breaks = _count_breaks(batch, newline)
        spans = pc.add(breaks, 1) if breaks is not None else _ones(n)
        # Blank records take no row number: each one pulls the rows after it down by one.
        blank = _blank_mask(batch)
        blank_count = int(pc.sum(blank).as_py() or 0) if blank is not None else 0
        blank_seen = pc.cumulative_sum(pc.cast(blank, pa.int64())) if blank_count else None

        # Malformed records before good record i push its row number up by one each, and
        # its line by the lines they span.
        row_bump, line_bump = [0] * n, [0] * n
        malformed_spans = [rec.text.count(newline) + 1 for _, rec in placed]
        for (position, _), span in zip(placed, malformed_spans, strict=True):
            if position < n:
                row_bump[position] += 1
                line_bump[position] += span
        rows = _arange(self.next_record - self.blank_before, n)
        if placed:
            rows = pc.add(rows, pc.cumulative_sum(pa.array(row_bump, pa.int64())))
            with_bumps = pc.add(spans, pa.array(line_bump, pa.int64()))
        else:
            with_bumps = spans
        if blank_seen is not None:
            rows = pc.subtract(rows, blank_seen)
        ends = pc.cumulative_sum(with_bumps)  # the line after record i, from next_line
        starts = pc.add(pc.subtract(ends, spans), self.next_line)

        # Malformed rows: their line comes after the good records before them and the
        # malformed ones before them; their row number skips the blank records before.
        good_lines_before = pc.cumulative_sum(spans) if placed else None
        malformed: list[MalformedRow] = []
        earlier = 0
        for (position, rec), span in zip(placed, malformed_spans, strict=True):
            lines_before, blanks = 0, self.blank_before
            if position > 0 and good_lines_before is not None:
                lines_before = int(good_lines_before[position - 1].as_py())
                if blank_seen is not None:
                    blanks += int(blank_seen[position - 1].as_py())
            line = self.next_line + lines_before + earlier
            malformed.append(_malformed(rec, rec.number - 1 - blanks, line))
            self._remember_malformed(rec.number - 1, malformed[-1])
            earlier += span

        if n:
            self.last_good_record = self.next_record + n - 1 + sum(1 for p, _ in placed if p < n)
            self.last_cell = cast(str, batch.column(batch.num_columns - 1)[n - 1].as_py())
        total_good_lines = int(pc.sum(spans).as_py() or 0) if n else 0
        self.next_record += n + len(placed)
        self.next_line += total_good_lines + earlier
        self.blank_before += blank_count

        if blank is not None and blank_count:
            keep = pc.invert(blank)
            batch, rows, starts = batch.filter(keep), rows.filter(keep), starts.filter(keep)
        return _Piece(batch, rows, starts, malformed, blank_count)

    # -- errors

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """While pyarrow parses: swallow (and remember) its complaint that a malformed
        record is not UTF-8, which it would otherwise print to stderr as an ignored
        exception; the parse error that follows becomes a SourceError in _error()."""
        previous = sys.unraisablehook

        def hook(unraisable: UnraisableHookArgs) -> None:
            if isinstance(unraisable.exc_value, UnicodeDecodeError):
                self.undecodable = True
            else:
                previous(unraisable)

        sys.unraisablehook = hook
        try:
            yield
        finally:
            sys.unraisablehook = previous

    def _check_unterminated_quote(self) -> None:
        """A quote left open swallows the rest of the file into one cell; pyarrow accepts
        that at end of file. Refuse it: the file is truncated or its quoting is broken."""
        path = self.source.path
        if self.last_malformed is not None and self.last_malformed[0] > self.last_good_record:
            last_bad = self.last_malformed[1]
            if _ends_inside_quotes(last_bad.text, self.source.delimiter):
                raise SourceError(
                    f"{path}: a quoted cell opened on line {last_bad.line_number} is never "
                    "closed (truncated file or broken quoting)"
                )
            return
        if self.last_cell is None:
            return
        cell = self.last_cell
        escaped = cell.replace('"', '""').encode("utf-8")
        size = path.stat().st_size
        want = len(escaped) + 2
        with open(path, "rb") as f:
            f.seek(max(size - want, 0))
            tail = f.read()
        if not tail.endswith(escaped):
            return
        head = tail[: len(tail) - len(escaped)]
        delimiter = self.source.delimiter.encode()
        # `<delimiter or line start>"<cell>` at EOF: the last cell's quote never closed.
        if head.endswith(b'"') and (
            len(head) == 1 or head[-2:-1] in (delimiter, b"\n", b"\r") or size < want
        ):
            raise SourceError(
                f"{path}: the last cell of the last row opens a quote that is never closed "
                "(truncated file or broken quoting)"
            )

    def _error(self, exc: BaseException) -> SourceError:
        path = self.source.path
        message = _first_line(exc)
        if isinstance(exc, OSError):
            return SourceError(f"{path}: cannot read: {exc.strerror or message}")
        # pyarrow's "Row #N" counts the header and blank records; blank records not
        # numbered yet are unknown, so the data row is exact unless some sit in between.
        found = re.search(r"Row #(\d+)", message)
        where = f"data row {int(found.group(1)) - 1 - self.blank_before:,}" if found else None
        if "invalid UTF8" in message or self.undecodable:
            column = re.search(r"column #(\d+)", message)
            if column is not None and int(column.group(1)) < len(self.source.columns):
                where = f"{where or 'a row'}, column {self.source.columns[int(column.group(1))]!r}"
            return SourceError(
                f"{path}: not UTF-8: invalid bytes in {where or 'a row'}; save the file as UTF-8"
            )
        after = self.next_record - 1 - self.blank_before
        return SourceError(f"{path}: cannot parse CSV after data row {after:,}: {message}")


def _malformed(rec: _Invalid, row: int, line: int) -> MalformedRow:
    text = rec.text[:-1] if rec.text.endswith("\r") else rec.text
    return MalformedRow(
        row_number=row,
        line_number=line,
        text=text,
        message=f"expected {rec.expected} columns, got {rec.actual}",
    )


def _parse_options(delimiter: str, handler: object) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(
        delimiter=delimiter,
        quote_char='"',
        double_quote=True,
        escape_char=False,
        newlines_in_values=True,
        # Keep blank lines as records: pyarrow does not count the ones it skips.
        ignore_empty_lines=False,
        invalid_row_handler=handler,
    )


def _count_breaks(batch: pa.RecordBatch, newline: str) -> pa.Array | None:
    """Line breaks inside each row's cells, or None if there are none in the batch.

    A column's data buffer holds all its cells back to back, so one memchr-speed `in`
    test on it rules out most columns; count_substring runs only on the ones with a hit.
    """
    token = newline.encode()
    total: pa.Array | None = None
    for column in batch.columns:
        data = column.buffers()[2]
        if data is None or token not in memoryview(data).tobytes():
            continue
        counts = pc.cast(pc.count_substring(column, newline), pa.int64())
        total = counts if total is None else pc.add(total, counts)
    return total


def _blank_mask(batch: pa.RecordBatch) -> pa.Array | None:
    """True for records whose every cell is empty; None when there are none."""
    if batch.num_rows == 0 or batch.num_columns == 0:
        return None
    blank = pc.equal(pc.binary_length(batch.column(0)), 0)
    if not pc.any(blank).as_py():
        return None
    for column in batch.columns[1:]:
        blank = pc.and_(blank, pc.equal(pc.binary_length(column), 0))
    return blank


_QUOTED_CELL = re.compile(r'"(?:[^"]+|"")*"')


def _ends_inside_quotes(text: str, delimiter: str) -> bool:
    """Whether the record `text` ends inside a quoted cell (pyarrow's quoting rules: a
    quote opens a cell only at its start; `""` inside is a literal quote)."""
    unquoted = re.compile(f"[^{re.escape(delimiter)}\r\n]*")
    pos, end = 0, len(text)
    while pos < end:
        if text[pos] == '"':
            match = _QUOTED_CELL.match(text, pos)
            if match is None:
                return True
            pos = match.end()
        match = unquoted.match(text, pos)
        pos = match.end() + 1 if match else pos + 1
    return False


_EMPTY_INT64 = pa.array([], pa.int64())


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    return batches[0] if len(batches) == 1 else pa.concat_batches(batches)


_RANGE: list[pa.Array] = [pa.array([], pa.int64())]


def _arange(start: int, n: int) -> pa.Array:
    """int64 start, start+1, ..., start+n-1, from a cached range (no Python loop per row)."""
    if len(_RANGE[0]) < n:
        size = max(n, 1 << 17)
        _RANGE[0] = pa.array(range(size), pa.int64())
    return pc.add(_RANGE[0].slice(0, n), start)


def _ones(n: int) -> pa.Array:
    return pc.add(pc.multiply(_arange(0, n), 0), 1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
