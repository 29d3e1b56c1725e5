"""Mapped rows -> upsert batches of at most `batch_size` inputs.

Chunking is deterministic: the same file and config give the same batch N on every run,
so a resume can skip the batches the journal has done and re-send the ones it claimed
but never recorded. Every source row lands in exactly one batch's row range
(`first_row..last_row`), whether it is sent, failed locally (malformed, no id, a bad
value) or superseded by a later row with the same id. No batch holds two inputs with the
same id: superseded rows (decided once, by the scan) are never sent, so every id is sent
at most once per job.

A batch the journal knows keeps exactly its recorded rows, and a done one is never
emitted again. A new batch closes when it holds `batch_size` inputs, or `MAX_BATCH_ROWS`
rows in all: a long run of rows that are not sent (superseded, failed) must not pile up
in one batch, in memory or in one journal transaction.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc

from bulkload.mapping import MappedChunk, row_data
from bulkload.models import BatchPlan, FailedRow, KnownBatch, Link, Superseded, UpsertInput
from bulkload.source import MalformedRow
from bulkload.taxonomy import ErrorType

MAX_BATCH_ROWS = 1_000

# ids of a chunk (and the same as Arrow, when at hand) -> {id: its last row} for those
# that repeat (the scan decided it)
Winners = Callable[[Sequence[str | None], pa.Array | None], Mapping[str, int]]


def _no_winners(ids: Sequence[str | None], arrow_ids: pa.Array | None = None) -> Mapping[str, int]:
    return {}


_PLACEHOLDER: UpsertInput = {"idProperty": "", "id": "", "properties": {}, "objectWriteTraceId": ""}


class Chunker:
    """Feeds mapped chunks in file order, yields batches as they close."""

    def __init__(
        self,
        *,
        batch_size: int,
        id_property: str,
        next_batch_no: int = 1,
        known: Sequence[KnownBatch] = (),
        winners: Winners = _no_winners,
        max_rows: int = MAX_BATCH_ROWS,
        count_only: bool = False,
    ) -> None:
        # count_only (a dry run): batches are planned as for a load, but their inputs are
        # one shared placeholder each: only how many there are is wanted.
        self._count_only = count_only
        self.batch_size = batch_size
        self.id_property = id_property
        self.next_batch_no = next_batch_no
        self.max_rows = max(max_rows, batch_size)
        self._known = deque(sorted(known, key=lambda k: k.batch_no))
        self._winners = winners
        self._cur: BatchPlan | None = None
        self._last_row = 0

    # ---- batches -----------------------------------------------------------------------

    def _open(self, row_number: int, out: list[BatchPlan], line: int | None = None) -> BatchPlan:
        """The batch row `row_number` belongs to; batches that end before it go to `out`."""
        while True:
            cur = self._cur
            if cur is not None:
                if not (cur.fixed and row_number > cur.last_row):
                    return cur
                self._close(out)
                continue
            if self._known:
                kb = self._known.popleft()
                self._cur = BatchPlan(kb.batch_no, kb.first_row, kb.last_row, fixed=True, done=kb.done)
                self.next_batch_no = max(self.next_batch_no, kb.batch_no + 1)
                continue
            self._cur = BatchPlan(self.next_batch_no, row_number, first_line=line)
            self.next_batch_no += 1

    def _close(self, out: list[BatchPlan]) -> None:
        cur, self._cur = self._cur, None
        if cur is None:
            return
        if not cur.fixed:
            cur.last_row = self._last_row
        if not cur.done:
            out.append(cur)

    def _after_row(self, cur: BatchPlan, row_number: int, out: list[BatchPlan]) -> None:
        self._last_row = row_number
        if not cur.fixed and (
            len(cur.inputs) >= self.batch_size or row_number - cur.first_row + 1 >= self.max_rows
        ):
            self._close(out)

    # ---- rows ------------------------------------------------------------------------------

    def feed(self, mapped: MappedChunk) -> Iterator[BatchPlan]:
        """Add a chunk's rows in order; yield the batches they close, as they close (so at
        most one batch's source data of rows not sent is held at a time)."""
        rows = mapped.row_numbers
        winners = self._winners(mapped.ids, mapped.id_array) if rows else {}
        if mapped.chunk.malformed:
            return self._feed_rows(mapped, winners)
        return self._feed_runs(mapped, winners)

    def _special(self, mapped: MappedChunk, winners: Mapping[str, int]) -> list[int]:
        """Indices of the rows that are not plain inputs: local failures and superseded rows."""
        special = set(mapped.failures)
        if winners:
            ids, rows = mapped.ids, mapped.row_numbers
            if mapped.id_array is not None:  # the rows whose id repeats, found by one kernel
                hit = pc.fill_null(pc.is_in(mapped.id_array, value_set=pa.array(list(winners), pa.string())), False)
                maybe: Iterable[int] = pc.indices_nonzero(hit).to_pylist()
            else:
                maybe = range(len(ids))
            special.update(i for i in maybe if (v := ids[i]) is not None and v in winners and winners[v] != rows[i])
        return sorted(special)

    def _feed_runs(self, mapped: MappedChunk, winners: Mapping[str, int]) -> Iterator[BatchPlan]:
        """The common case: runs of plain rows become inputs a slice at a time.

        Every input's objectWriteTraceId is its source row number as text: unique per
        input, and it maps an outcome straight back to its row.
        """
        out: list[BatchPlan] = []
        table = mapped.chunk.table
        ids, props, lines, rows = mapped.ids, mapped.properties, mapped.line_numbers, mapped.row_numbers
        id_property = self.id_property
        naive = mapped.naive_rows
        links = mapped.links
        n = len(rows)
        pos = 0
        for stop in [*self._special(mapped, winners), n]:
            while pos < stop:
                cur = self._open(rows[pos], out, lines[pos])
                if cur.fixed:
                    # Exactly the rows the journal recorded for it, however the chunks fall.
                    end = min(stop, bisect_right(rows, cur.last_row, pos, stop))
                else:
                    room = self.batch_size - len(cur.inputs)
                    end = min(stop, pos + room, bisect_right(rows, cur.first_row + self.max_rows - 1, pos, stop))
                    end = max(end, pos + 1)
                if not cur.done and self._count_only:
                    cur.inputs.extend([_PLACEHOLDER] * (end - pos))
                    if links is not None:
                        cur.links.extend(Link(rows[k], t, v) for k in range(pos, end) for t, v in links[k])
                elif not cur.done:
                    if naive:
                        cur.naive_timestamps += bisect_left(naive, end) - bisect_left(naive, pos)
                    cur.inputs.extend(
                        [{"idProperty": id_property, "id": ids[k], "properties": props[k],  # type: ignore[typeddict-item]
                          "objectWriteTraceId": str(rows[k])} for k in range(pos, end)]
                    )
                    if links is not None:
                        cur.links.extend(Link(rows[k], t, v) for k in range(pos, end) for t, v in links[k])
                    cur.input_lines.extend(lines[pos:end])
                    cur.refs.extend([(table, k) for k in range(pos, end)])
                self._after_row(cur, rows[end - 1], out)
                pos = end
                yield from out
                out.clear()
            if stop < n:
                self._special_row(mapped, winners, stop, out)
                pos = stop + 1
                yield from out
                out.clear()

    def _special_row(self, mapped: MappedChunk, winners: Mapping[str, int], i: int, out: list[BatchPlan]) -> None:
        row_number, line, id_value = mapped.row_numbers[i], mapped.line_numbers[i], mapped.ids[i]
        cur = self._open(row_number, out, line)
        winner = winners.get(id_value) if winners and id_value is not None else None
        data = row_data(mapped.chunk.table, i)
        if winner is not None and winner != row_number:
            # A later row has this id: it wins, this one is never sent.
            cur.superseded.append(Superseded(row_number, line, id_value or "", winner, data))
        else:
            cur.failures.append(self._placed(mapped.failures[i], row_number, line, id_value, data))
        self._after_row(cur, row_number, out)

    def _feed_rows(self, mapped: MappedChunk, winners: Mapping[str, int]) -> Iterator[BatchPlan]:
        """Row by row, for chunks with malformed rows (they take their place between rows)."""
        out: list[BatchPlan] = []
        table = mapped.chunk.table
        malformed = deque(mapped.chunk.malformed)
        ids, props, lines, rows = mapped.ids, mapped.properties, mapped.line_numbers, mapped.row_numbers
        special = set(self._special(mapped, winners))
        naive = set(mapped.naive_rows)
        for i, row_number in enumerate(rows):
            while malformed and malformed[0].row_number < row_number:
                self._add_malformed(malformed.popleft(), out)
            if i in special:
                self._special_row(mapped, winners, i, out)
                yield from out
                out.clear()
                continue
            cur = self._open(row_number, out, lines[i])
            if not cur.done:
                cur.naive_timestamps += i in naive
                if mapped.links is not None:
                    cur.links.extend(Link(row_number, t, v) for t, v in mapped.links[i])
                cur.inputs.append({"idProperty": self.id_property, "id": ids[i] or "",
                                   "properties": props[i] or {}, "objectWriteTraceId": str(row_number)})
                cur.input_lines.append(lines[i])
                cur.refs.append((table, i))
            self._after_row(cur, row_number, out)
            yield from out
            out.clear()
        for m in malformed:  # malformed rows after the chunk's last good row
            self._add_malformed(m, out)
        yield from out

    def _add_malformed(self, m: MalformedRow, out: list[BatchPlan]) -> None:
        cur = self._open(m.row_number, out, m.line_number)
        failure = FailedRow(ErrorType.MALFORMED_ROW.value, m.message, None, m.text[:1000])
        cur.failures.append(self._placed(failure, m.row_number, m.line_number, None, {"_raw": m.text}))
        self._after_row(cur, m.row_number, out)

    @staticmethod
    def _placed(failure: FailedRow, row: int, line: int | None, id_value: str | None,
                data: Mapping[str, object]) -> FailedRow:
        return replace(failure, row_number=row, line_number=line, id_value=id_value, row_data=data)

    def finish(self) -> list[BatchPlan]:
        """The last, partly filled batch, and known batches no row reached (never done)."""
        out: list[BatchPlan] = []
        self._close(out)
        return out
