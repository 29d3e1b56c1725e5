"""The streaming CSV reader: a UTF-8 CSV file through pyarrow's streaming reader, in numbered
`SourceChunk`s, with restarts for records longer than a read block.

How: pyarrow's streaming CSV reader, with use_threads=False. Only then does pyarrow count
records and hand the invalid-row handler a real `InvalidRow.number` (the 1-based physical
record, header included; with use_threads=True it is None). Parsing is serial anyway in
the streaming reader; threads would only decode columns in parallel, and the reader
already does well over 500,000 rows/s on one core. Blank lines are kept as records
(ignore_empty_lines=False) because pyarrow neither counts nor reports the ones it skips,
which would silently shift every later line number. csv_numbering.py numbers the batches.

Long records: pyarrow refuses a record that spans more than two read blocks ("straddling
object straddles two block boundaries"), i.e. a cell of about 512 KiB with 256 KiB blocks.
When it does, every record before the long one has been handed out; they are numbered
and yielded, and the read restarts at the long record (header glued in front, as a resume
read does), with one first block of 1 MiB, then 2, 4, ... up to `max_record_bytes`
(64 MiB), and ordinary blocks after it. Memory: that one block and pyarrow's parse of
it while it is in use (measured: a 60 MiB cell raises peak RSS by ~270 MiB, 4-5x the
record); the readahead stays ~32 ordinary blocks. A record longer than the cap is a
SourceError naming its data row and line. Nothing is handed out twice: the restart
begins at the first record no chunk holds, numbered where the read stood.

One open file descriptor serves the whole read (restarts, line offsets, the end-of-file
check), so what a read sees is one file even if the path is replaced meanwhile.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv

from bulkload.errors import SourceError
from bulkload.source.arrays import EMPTY_INT64, concat, first_line
from bulkload.source.csv_numbering import Numbering, Piece
from bulkload.source.csv_quirks import (
    FileWindow,
    header_line,
    line_offset,
    refuse_open_quote,
    stream_from,
)
from bulkload.source.fingerprint import FileWatch, Fingerprint, ReadTally
from bulkload.source.records import (
    DelimiterOrigin,
    MalformedRow,
    Source,
    SourceChunk,
    SourceScan,
    StartAt,
)
from bulkload.source.sniff import clean_name, parse_options, probe_csv

if TYPE_CHECKING:
    from sys import UnraisableHookArgs

# Read blocks of 256 KiB: pyarrow reads ahead up to ~32 blocks in the background, so this
# bounds its buffers at ~8 MB whatever the file size; larger blocks were no faster.
CSV_BLOCK_SIZE = 1 << 18
# The longest record (one row, all its cells) a CSV may hold; see the module doc.
MAX_RECORD_BYTES = 64 << 20
_FIRST_GROWN_BLOCK = 4 * CSV_BLOCK_SIZE

_MakeWatch = Callable[[int], FileWatch | None]


class CsvSource(Source):
    """A UTF-8 CSV (or TSV) file with a header row."""

    max_record_bytes = MAX_RECORD_BYTES

    def __init__(
        self,
        path: Path,
        columns: list[str],
        *,
        delimiter: str = ",",
        newline: str = "\n",
        delimiter_origin: DelimiterOrigin = "default",
    ) -> None:
        # `columns` as pyarrow reads them; the public names have a stray BOM stripped.
        super().__init__(path, "csv", [clean_name(c, i) for i, c in enumerate(columns)])
        self.arrow_columns = list(columns)
        self.delimiter: str = delimiter
        self.delimiter_origin = delimiter_origin
        self.newline = newline  # what counts as a line break for line numbers

    def chunks(
        self,
        columns: Sequence[str] | None = None,
        *,
        rows_per_chunk: int = 65_536,
        start: StartAt | None = None,
        expect: Fingerprint | None = None,
    ) -> Iterator[SourceChunk]:
        """Stream the rows: `rows_per_chunk` records per chunk, fewer in the last one, where
        blank records were left out, and before a record longer than a read block. With
        `start`, from that row on (numbered as in a read from the top). With `expect`, see
        `Source.chunks`.

        Every column is read whatever `columns` selects: line breaks in unselected cells
        still move line numbers, and blank rows are only known from all the cells. That
        keeps row and line numbers identical whatever subset a pass reads.
        """

        def watch(fd: int) -> FileWatch | None:
            return None if expect is None else FileWatch.for_send(self.path, fd, expect)

        yield from self._read(columns, rows_per_chunk, start, ReadTally(), watch)

    def scan(self, columns: Sequence[str] | None = None, *, rows_per_chunk: int = 65_536) -> SourceScan:
        """A read from the top that yields what `chunks()` yields and hashes every byte it
        reads on the way (pyarrow reads the file through FileWindow, which feeds them to
        SHA-256): the fingerprint costs no second read."""

        def run(done: Callable[[Fingerprint], None]) -> Iterator[SourceChunk]:
            tally = ReadTally(hashing=True)

            def watch(fd: int) -> FileWatch:
                return FileWatch.for_scan(self.path, fd)

            info = yield from self._read(columns, rows_per_chunk, None, tally, watch)
            assert info is not None  # a scan always watches
            done(Fingerprint(size=info.st_size, mtime_ns=info.st_mtime_ns, sha256=tally.sha256()))

        return SourceScan(run)

    def _read(
        self,
        columns: Sequence[str] | None,
        rows_per_chunk: int,
        start: StartAt | None,
        tally: ReadTally,
        make_watch: _MakeWatch,
    ) -> Generator[SourceChunk, None, os.stat_result | None]:
        """One read; returns the file's final fstat when watched (checked unchanged)."""
        selected = self._selected(columns, rows_per_chunk)
        indices = [self.columns.index(name) for name in selected]
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        reader: _CsvReader | None = None
        watch: FileWatch | None = None
        try:
            watch = make_watch(fd)
            reader = _CsvReader(self, fd, tally, start)
            return (yield from self._pieces(reader, watch, rows_per_chunk, indices, selected))
        except SourceError:
            # A file cut short or rewritten while it is read can look broken to the
            # parser; say that it changed rather than what the parser made of it.
            if watch is not None:
                watch.check()
            raise
        finally:
            if reader is not None:
                reader.detach()
            os.close(fd)

    def _pieces(
        self,
        reader: _CsvReader,
        watch: FileWatch | None,
        rows_per_chunk: int,
        indices: list[int],
        selected: list[str],
    ) -> Generator[SourceChunk, None, os.stat_result | None]:
        numbering = reader.numbering
        held: list[pa.RecordBatch] = []  # pyarrow's batches (~1 block each), not numbered
        count = 0
        while True:
            try:
                for batch in reader.batches():
                    held.append(batch)
                    count += int(batch.num_rows)
                    # Cut only once a record after the chunk is in hand: by then pyarrow
                    # has reported every malformed record before it; they ride with it.
                    while count > rows_per_chunk:
                        group = concat(held)
                        held, count = [group.slice(rows_per_chunk)], count - rows_per_chunk
                        piece = numbering.number(group.slice(0, rows_per_chunk))
                        if watch is not None:
                            watch.check()
                        yield piece.chunk(indices, selected)
                break
            except _LongRecord:
                # Every record before the long one is in hand, and so is every malformed
                # one before it: they make a chunk; then read on from the long record.
                piece = numbering.number(concat(held) if held else reader.empty_batch())
                held, count = [], 0
                if not piece.empty:
                    if watch is not None:
                        watch.check()
                    yield piece.chunk(indices, selected)
                reader.restart()
        last = numbering.number(concat(held)) if held else None
        # The end: the file is still the one the read started on (or the job scanned),
        # then the malformed records after the last row and the end-of-file checks.
        final = watch.check_end(reader.tally) if watch is not None else None
        tail = reader.finish()
        if last is not None and last.empty:
            last = None  # pyarrow's trailing empty batch: nothing to report
        if last is not None or tail:
            if last is None:
                empty = [pa.array([], pa.string()) for _ in selected]
                table = pa.RecordBatch.from_arrays(empty, names=selected)
                last = Piece(table, EMPTY_INT64, EMPTY_INT64, [], 0)
                indices = list(range(len(selected)))
            last.malformed.extend(tail)
            yield last.chunk(indices, selected)
        return final


def open_csv(path: Path, delimiter: str | None = None, *, tsv: bool = False) -> CsvSource:
    """Open a CSV after the cheap checks of its first 64 KiB (sniff.probe_csv)."""
    probe = probe_csv(path, delimiter, tsv=tsv)
    return CsvSource(
        path, probe.names, delimiter=probe.delimiter, newline=probe.newline, delimiter_origin=probe.origin
    )


class _LongRecord(Exception):
    """pyarrow met a record longer than two read blocks (internal: the read restarts)."""


class _CsvReader:
    """One read of a CSV file: one or more pyarrow streams over one file descriptor, one
    after the other (a restart begins a new one at the next record not handed out)."""

    def __init__(self, source: CsvSource, fd: int, tally: ReadTally, start: StartAt | None) -> None:
        self.source = source
        self.fd = fd
        self.tally = tally
        self.numbering = Numbering(source.newline)
        self._newline = source.newline.encode()
        # The current stream: where its records start in the file, the header glued in
        # front of them when that is not the top, and its first block if restarted.
        self.offset = 0
        self.header: bytes | None = None
        self.first_block: int | None = None
        self.anchor = (0, 1)  # a known (offset, line) at or before the stream's start
        self.window: FileWindow | None = None
        self.grown: tuple[int, int] | None = None  # (data row, first block) of the last restart
        # pyarrow decodes a malformed record's text before calling the handler; when that
        # fails (not UTF-8) the handler never runs and pyarrow reports a parse error.
        self.undecodable = False
        if start is not None and start.row_number > 1:
            offset = line_offset(fd, start.line_number, self._newline)
            if offset is None:
                raise SourceError(
                    f"{source.path}: has no line {start.line_number:,}; the file is shorter than the job says"
                )
            # Records and rows are counted from the start row on: blank records before it
            # are already out of the row numbers, so the two counts meet there.
            self.numbering = Numbering(
                source.newline,
                next_record=start.row_number,
                next_line=start.line_number,
                record_base=start.row_number - 1,
            )
            self.offset, self.anchor = offset, (offset, start.line_number)
            self.header = header_line(fd, self._newline)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """pyarrow's batches of the current stream, in file order, not numbered yet; raises
        _LongRecord where a record is too long for its blocks."""
        src = self.source
        self.window = FileWindow(self.fd, self.offset, self.tally)
        stream = stream_from(self.window, self.header, self.first_block, CSV_BLOCK_SIZE)
        try:
            with self._quiet():
                reader = pacsv.open_csv(
                    pa.PythonFile(stream, mode="r"),
                    read_options=pacsv.ReadOptions(
                        block_size=self.first_block or CSV_BLOCK_SIZE, use_threads=False
                    ),
                    parse_options=parse_options(src.delimiter, self.numbering.on_invalid),
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
            if "straddl" in str(exc):
                raise _LongRecord from None
            raise self._error(exc) from None

    def empty_batch(self) -> pa.RecordBatch:
        names = self.source.arrow_columns
        return pa.RecordBatch.from_arrays([pa.array([], pa.string()) for _ in names], names=names)

    def restart(self) -> None:
        """Begin a new stream at the next record, the long one, with a larger first block
        (twice the last one if this record was restarted at already)."""
        num, path = self.numbering, self.source.path
        row, line = num.next_row, num.next_line
        cap = self.source.max_record_bytes
        if self.grown is not None and self.grown[0] == row:
            if self.grown[1] >= cap:
                raise SourceError(
                    f"{path}: data row {row:,} (line {line:,}) is longer than {_size(cap)}: "
                    "a quoted cell that is never closed, or a cell too long to load"
                )
            size = min(self.grown[1] * 2, cap)
        else:
            size = min(_FIRST_GROWN_BLOCK, cap)
        offset = line_offset(self.fd, line, self._newline, anchor=self.anchor)
        if offset is None:
            raise SourceError(f"{path}: the file changed while it was being read: line {line:,} is gone")
        self.detach()
        if self.header is None:
            self.header = header_line(self.fd, self._newline)
        self.grown = (row, size)
        self.offset, self.anchor = offset, (offset, line)
        self.first_block = len(self.header) + size
        num.rebase()

    def detach(self) -> None:
        """Stop the current stream's reads (pyarrow's readahead may still ask)."""
        if self.window is not None:
            self.window.detach()

    def finish(self) -> list[MalformedRow]:
        """Number the malformed records after the last good row; check the file's end."""
        num = self.numbering
        tail = num.finish()
        last_bad = None
        if num.last_malformed is not None and num.last_malformed[0] > num.last_good_record:
            last_bad = num.last_malformed[1]  # the file ends in malformed records
        refuse_open_quote(self.source.path, self.fd, self.source.delimiter, num.last_cell, last_bad)
        return tail

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

    def _error(self, exc: BaseException) -> SourceError:
        path, num = self.source.path, self.numbering
        message = first_line(exc)
        if isinstance(exc, OSError):
            return SourceError(f"{path}: cannot read: {exc.strerror or message}")
        # pyarrow's "Row #N" counts the header and blank records of its stream; blank
        # records not numbered yet are unknown, so the data row is exact unless some sit
        # in between.
        found = re.search(r"Row #(\d+)", message)
        where = None
        if found:
            where = f"data row {int(found.group(1)) + num.record_base - 1 - num.blank_before:,}"
        if "invalid UTF8" in message or self.undecodable:
            column = re.search(r"column #(\d+)", message)
            if column is not None and int(column.group(1)) < len(self.source.columns):
                where = f"{where or 'a row'}, column {self.source.columns[int(column.group(1))]!r}"
            return SourceError(
                f"{path}: not UTF-8: invalid bytes in {where or 'a row'}; save the file as UTF-8"
            )
        return SourceError(f"{path}: cannot parse CSV after data row {num.next_row - 1:,}: {message}")


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and not n % (1 << 20) else f"{n:,} bytes"
