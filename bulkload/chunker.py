"""Mapped rows -> upsert batches of at most `batch_size` inputs.

Chunking is deterministic: the same file and config give the same batch N on
every run, so a resume can skip the batches the journal has done and re-send
the ones it claimed but never recorded. Every source row lands in exactly one
batch's row range (`first_row..last_row`), whether it is sent, failed locally
(malformed, no id, unreadable datetime) or superseded by a later row with the
same id. No batch holds two inputs with the same id: superseded rows (decided
once, by the scan) are never sent, so every id is sent at most once per job.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bulkload.hubspot.types import UpsertInput
from bulkload.mapping import LocalFailure, MappedChunk, row_data
from bulkload.source import MalformedRow
from bulkload.taxonomy import ErrorType


@dataclass(frozen=True)
class KnownBatch:
    """A batch the journal already has: its boundaries are reused as they are."""

    batch_no: int
    first_row: int
    last_row: int
    done: bool


@dataclass
class RowFailure:
    row_number: int
    line_number: int | None
    id_value: str | None
    failure: LocalFailure
    row_data: dict[str, Any]


@dataclass
class RowSuperseded:
    row_number: int
    line_number: int | None
    id_value: str
    superseded_by: int
    row_data: dict[str, Any]


@dataclass
class PlannedBatch:
    batch_no: int
    first_row: int
    last_row: int = 0
    inputs: list[UpsertInput] = field(default_factory=list)
    input_lines: list[int | None] = field(default_factory=list)  # aligned with inputs
    failures: list[RowFailure] = field(default_factory=list)
    superseded: list[RowSuperseded] = field(default_factory=list)
    first_line: int | None = None  # the line first_row starts on (CSV): where a resume may start reading
    fixed: bool = False  # boundaries come from the journal
    done: bool = False  # the journal has its outcome: skip it
    # (chunk table, row index) of each input, aligned with inputs: source data
    # is built only for the rows that fail.
    _refs: list[tuple[Any, int]] = field(default_factory=list, repr=False)

    @property
    def n_rows(self) -> int:
        return self.last_row - self.first_row + 1

    def _position(self, trace_id: str) -> int | None:
        for k, inp in enumerate(self.inputs):
            if inp["objectWriteTraceId"] == trace_id:
                return k
        return None

    def row_data_for(self, trace_id: str) -> dict[str, Any]:
        k = self._position(trace_id)
        return row_data(*self._refs[k]) if k is not None else {}

    def line_for(self, trace_id: str) -> int | None:
        k = self._position(trace_id)
        return self.input_lines[k] if k is not None else None


class Chunker:
    """Feeds mapped chunks in file order, yields batches as they fill."""

    def __init__(
        self,
        *,
        batch_size: int,
        id_property: str,
        next_batch_no: int = 1,
        known: Sequence[KnownBatch] = (),
        dup_ids: Mapping[str, int] | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.id_property = id_property
        self.next_batch_no = next_batch_no
        self._known = deque(sorted(known, key=lambda k: k.batch_no))
        # id -> its winning (last) row, for the ids the scan saw more than once.
        self._dups: Mapping[str, int] = dup_ids or {}
        self._cur: PlannedBatch | None = None
        self._last_row = 0

    def _open(self, row_number: int, out: list[PlannedBatch], line: int | None = None) -> PlannedBatch:
        """The batch row `row_number` belongs to; batches that end before it go to `out`."""
        while True:
            cur = self._cur
            if cur is not None:
                if not (cur.fixed and row_number > cur.last_row):
                    return cur
                self._cur = None
                if not cur.done:
                    out.append(cur)
                continue
            if self._known:
                kb = self._known.popleft()
                self._cur = PlannedBatch(kb.batch_no, kb.first_row, kb.last_row, fixed=True, done=kb.done)
                self.next_batch_no = max(self.next_batch_no, kb.batch_no + 1)
                continue
            self._cur = PlannedBatch(self.next_batch_no, row_number, first_line=line)
            self.next_batch_no += 1

    def _add_failure(
        self, row_number: int, line: int | None, id_value: str | None, failure: LocalFailure,
        data: dict[str, Any], out: list[PlannedBatch],
    ) -> None:
        cur = self._open(row_number, out, line)
        cur.failures.append(RowFailure(row_number, line, id_value, failure, data))
        self._last_row = row_number

    def _add_malformed(self, m: MalformedRow, out: list[PlannedBatch]) -> None:
        failure = LocalFailure(ErrorType.MALFORMED_ROW, m.message, None, m.text[:1000])
        self._add_failure(m.row_number, m.line_number, None, failure, {"_raw": m.text}, out)

    def feed(self, mapped: MappedChunk) -> list[PlannedBatch]:
        """Add a chunk's rows in order; return the batches they completed."""
        if self._known or mapped.chunk.malformed:
            return self._feed_rows(mapped)
        return self._feed_runs(mapped)

    def _special_rows(self, mapped: MappedChunk) -> list[int]:
        """Indices of the rows that are not plain inputs: local failures and superseded rows."""
        special = set(mapped.failures)
        dups = self._dups
        if dups:
            special.update(
                i for i, (v, r) in enumerate(zip(mapped.ids, mapped.row_numbers, strict=True))
                if v is not None and v in dups and dups[v] != r
            )
        return sorted(special)

    def _feed_runs(self, mapped: MappedChunk) -> list[PlannedBatch]:
        """The common case: runs of plain rows become inputs a slice at a time.

        Every input's objectWriteTraceId is its source row number as text: unique per
        input, and it maps an outcome straight back to its row (pipeline, retry).
        """
        out: list[PlannedBatch] = []
        table = mapped.chunk.table
        ids, props, lines, rows = mapped.ids, mapped.properties, mapped.line_numbers, mapped.row_numbers
        id_property = self.id_property
        n = len(rows)
        pos = 0
        for stop in [*self._special_rows(mapped), n]:
            while pos < stop:
                cur = self._cur if self._cur is not None else self._open(rows[pos], out, lines[pos])
                end = pos + min(stop - pos, self.batch_size - len(cur.inputs))
                cur.inputs.extend(
                    [
                        {"idProperty": id_property, "id": ids[k], "properties": props[k],  # type: ignore[typeddict-item]
                         "objectWriteTraceId": str(rows[k])}
                        for k in range(pos, end)
                    ]
                )
                cur.input_lines.extend(lines[pos:end])
                cur._refs.extend([(table, k) for k in range(pos, end)])
                self._last_row = rows[end - 1]
                if len(cur.inputs) >= self.batch_size:
                    cur.last_row = self._last_row
                    self._cur = None
                    out.append(cur)
                pos = end
            if stop < n:
                self._special_row(mapped, stop, out)
                pos = stop + 1
        return out

    def _special_row(self, mapped: MappedChunk, i: int, out: list[PlannedBatch]) -> None:
        row_number = mapped.row_numbers[i]
        id_value = mapped.ids[i]
        winner = self._dups.get(id_value) if id_value is not None else None
        table = mapped.chunk.table
        if winner is not None and winner != row_number:
            cur = self._open(row_number, out, mapped.line_numbers[i])
            cur.superseded.append(
                RowSuperseded(row_number, mapped.line_numbers[i], id_value or "", winner, row_data(table, i))
            )
            self._last_row = row_number
            return
        failure = mapped.failures[i]
        self._add_failure(row_number, mapped.line_numbers[i], id_value, failure, row_data(table, i), out)

    def _feed_rows(self, mapped: MappedChunk) -> list[PlannedBatch]:
        """Row by row: for chunks with malformed rows, and for resumes (journaled boundaries)."""
        out: list[PlannedBatch] = []
        table = mapped.chunk.table
        malformed = deque(mapped.chunk.malformed)
        failures = mapped.failures
        ids, props, lines = mapped.ids, mapped.properties, mapped.line_numbers
        id_property = self.id_property
        batch_size = self.batch_size
        dups = self._dups
        for i, row_number in enumerate(mapped.row_numbers):
            while malformed and malformed[0].row_number < row_number:
                self._add_malformed(malformed.popleft(), out)
            if dups:
                id_value = ids[i]
                winner = dups.get(id_value) if id_value is not None else None
                if winner is not None and winner != row_number:
                    # A later row has this id: it wins, this one is never sent.
                    cur = self._open(row_number, out, lines[i])
                    cur.superseded.append(
                        RowSuperseded(row_number, lines[i], id_value or "", winner, row_data(table, i))
                    )
                    self._last_row = row_number
                    continue
            failure = failures.get(i) if failures else None
            if failure is not None:
                self._add_failure(row_number, lines[i], ids[i], failure, row_data(table, i), out)
                continue
            open_batch = self._cur
            if open_batch is None or (open_batch.fixed and row_number > open_batch.last_row):
                open_batch = self._open(row_number, out, lines[i])
            cur = open_batch
            trace = str(row_number)
            cur.inputs.append(
                {"idProperty": id_property, "id": ids[i], "properties": props[i], "objectWriteTraceId": trace}  # type: ignore[typeddict-item]
            )
            cur.input_lines.append(lines[i])
            cur._refs.append((table, i))
            self._last_row = row_number
            if not cur.fixed and len(cur.inputs) >= batch_size:
                cur.last_row = row_number
                self._cur = None
                out.append(cur)
        for m in malformed:  # trailing malformed rows of this chunk
            self._add_malformed(m, out)
        return out

    def finish(self) -> list[PlannedBatch]:
        """The last, partly filled batch."""
        out: list[PlannedBatch] = []
        cur, self._cur = self._cur, None
        if cur is not None:
            if not cur.fixed:
                cur.last_row = self._last_row
            if not cur.done:
                out.append(cur)
        return out
