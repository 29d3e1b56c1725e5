"""Row and line numbers for a CSV read: pyarrow's record batches and the malformed records
its handler reported, in file order, in; numbered `Piece`s out.

Two counts advance together: records (pyarrow's numbering: every record after the header,
blank ones included) and data rows (blank records are not data rows). Lines are counted
per record from the line breaks inside its cells, with Arrow compute, never a Python loop
per row. The rules themselves are in the package doc (bulkload/source/__init__.py).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from bulkload.source.arrays import arange, ones
from bulkload.source.records import MalformedRow, SourceChunk


@dataclass
class Piece:
    """Consecutive records, numbered, blank records left out."""

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

    @property
    def empty(self) -> bool:
        return not (self.table.num_rows or self.malformed or self.blank_rows)


@dataclass
class Invalid:
    number: int  # the physical record number in the file: header = 1
    expected: int
    actual: int
    text: str


@dataclass
class Numbering:
    """Where a read stands: the next record not numbered yet, its data row and its line."""

    newline: str  # what counts as a line break for line numbers
    next_record: int = 1  # the next record not numbered yet (header = 0)
    blank_before: int = 0  # blank records before it
    next_line: int = 2  # the line it starts on (the header is line 1)
    invalid: deque[Invalid] = field(default_factory=deque)
    # The last cell of the last good record, and the record numbers of the last good and
    # the last malformed record: the end-of-file check needs them.
    last_cell: str | None = None
    last_good_record: int = 0
    last_malformed: tuple[int, MalformedRow] | None = None
    # pyarrow numbers the records of the stream it reads from 1 (the header); a stream
    # that starts in the middle of the file adds `record_base` to be in the file's count.
    record_base: int = 0

    @property
    def next_row(self) -> int:
        """The data row number the next record takes (unless it is blank)."""
        return self.next_record - self.blank_before

    def rebase(self) -> None:
        """A new pyarrow stream starts at the next record (its header glued in front)."""
        self.record_base = self.next_record - 1

    def on_invalid(self, row: pacsv.InvalidRow) -> str:
        # Called by pyarrow while it parses (serially, in file order). The record is
        # skipped here and numbered with the good rows around it in number().
        self.invalid.append(
            Invalid(int(row.number) + self.record_base, int(row.expected_columns), int(row.actual_columns), row.text)
        )
        return "skip"

    def take_invalid(self, n: int | None) -> list[tuple[int, Invalid]]:
        """The pending invalid records that come before good record `n` of the batch
        being numbered (n = its size: after its last record; None: all), with their
        position among its good records, in file order."""
        placed: list[tuple[int, Invalid]] = []
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

    def remember_malformed(self, record: int, row: MalformedRow) -> None:
        if self.last_malformed is None or record > self.last_malformed[0]:
            self.last_malformed = (record, row)

    def finish(self) -> list[MalformedRow]:
        """Number the malformed records after the last good row."""
        tail: list[MalformedRow] = []
        for _, rec in self.take_invalid(None):
            tail.append(malformed(rec, rec.number - 1 - self.blank_before, self.next_line))
            self.next_record += 1
            self.next_line += rec.text.count(self.newline) + 1
            self.remember_malformed(rec.number - 1, tail[-1])
        return tail

    def number(self, batch: pa.RecordBatch) -> Piece:
        """Number the next records of the file (`batch` must follow the previous one)."""
        n = int(batch.num_rows)
        placed = self.take_invalid(n)
        newline = self.newline

        # Lines each good record spans: 1 + the line breaks inside its cells.
        breaks = count_breaks(batch, newline)
        spans = pc.add(breaks, 1) if breaks is not None else ones(n)
        # Blank records take no row number: each one pulls the rows after it down by one.
        blank = blank_mask(batch)
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
        rows = arange(self.next_record - self.blank_before, n)
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
        bad: list[MalformedRow] = []
        earlier = 0
        for (position, rec), span in zip(placed, malformed_spans, strict=True):
            lines_before, blanks = 0, self.blank_before
            if position > 0 and good_lines_before is not None:
                lines_before = int(good_lines_before[position - 1].as_py())
                if blank_seen is not None:
                    blanks += int(blank_seen[position - 1].as_py())
            line = self.next_line + lines_before + earlier
            bad.append(malformed(rec, rec.number - 1 - blanks, line))
            self.remember_malformed(rec.number - 1, bad[-1])
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
        return Piece(batch, rows, starts, bad, blank_count)


def malformed(rec: Invalid, row: int, line: int) -> MalformedRow:
    text = rec.text[:-1] if rec.text.endswith("\r") else rec.text
    return MalformedRow(
        row_number=row,
        line_number=line,
        text=text,
        message=f"expected {rec.expected} columns, got {rec.actual}",
    )


def count_breaks(batch: pa.RecordBatch, newline: str) -> pa.Array | None:
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


def blank_mask(batch: pa.RecordBatch) -> pa.Array | None:
    """True for records whose every cell is empty; None when there are none."""
    if batch.num_rows == 0 or batch.num_columns == 0:
        return None
    blank = pc.equal(pc.binary_length(batch.column(0)), 0)
    if not pc.any(blank).as_py():
        return None
    for column in batch.columns[1:]:
        blank = pc.and_(blank, pc.equal(pc.binary_length(column), 0))
    return blank
