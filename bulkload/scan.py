"""The first pass over the source: count the rows, find the ids that repeat, hash the file.

Its memory does not grow with the file. A fixed-size bit set over the ids' hashes says
whether an id may have been seen before; an id whose bit is already set goes to the
journal (through `sink`) with its row, in bounded flushes. A false alarm (two ids sharing
a bit) is harmless: an id seen once has that one row as its last row, so it is sent as
usual. Every problem that makes the file unusable surfaces here, before any request.

`RepeatedIds` serves the send pass the same way: a bit set built from the journal's
repeated ids (streamed, never held), so a chunk's ids are looked up in the journal only
where their bit is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from bulkload.errors import SourceError
from bulkload.mapping import ColumnMap, has_id
from bulkload.source import Fingerprint, Source, SourceChunk

DUP_BITS = 1 << 27  # 16 MiB; ~0.75 % false alarms at 1M ids
DUP_FLUSH = 10_000  # maybe-repeated ids held before they go to the journal
FEW_REPEATED = 100_000  # repeated ids the send pass holds in memory (beyond: the bit set only)
SCAN_CHUNK_ROWS = 16_384


class BitSet:
    """A fixed-size set of hashed strings: may say yes wrongly, never no wrongly."""

    def __init__(self, bits: int | None = None) -> None:
        bits = bits or DUP_BITS
        self._bits = bytearray(max(1, bits // 8))
        self._mask = bits - 1

    def add(self, value: str) -> bool:
        """Set `value`'s bit; True if it was already set."""
        h = hash(value) & self._mask
        bit = 1 << (h & 7)
        seen = bool(self._bits[h >> 3] & bit)
        self._bits[h >> 3] |= bit
        return seen

    def __contains__(self, value: str) -> bool:
        h = hash(value) & self._mask
        return bool(self._bits[h >> 3] & (1 << (h & 7)))

    def add_all(self, values: Sequence[str], rows: Sequence[int], seen: dict[str, int]) -> None:
        """`add` each value; those already set go into `seen` with their row. (The loop
        runs once per row of the file: written out, without a call per value.)"""
        bits, mask = self._bits, self._mask
        for row, value in zip(rows, values, strict=True):
            h = hash(value) & mask
            bit = 1 << (h & 7)
            if bits[h >> 3] & bit:
                seen[value] = row
            else:
                bits[h >> 3] |= bit

    def among(self, values: Sequence[str | None]) -> list[str]:
        """The values whose bit is set (None skipped), in order."""
        bits, mask = self._bits, self._mask
        out = []
        for value in values:
            if value is not None:
                h = hash(value) & mask
                if bits[h >> 3] & (1 << (h & 7)):
                    out.append(value)
        return out


@dataclass(frozen=True)
class ScanResult:
    total_rows: int
    rows_with_id: int
    fingerprint: Fingerprint | None


def scan_source(
    source: Source,
    column_map: ColumnMap,
    sink: Callable[[Mapping[str, int]], None],
    chunks: Iterable[SourceChunk] | None = None,
    fingerprint: Callable[[], Fingerprint | None] = lambda: None,
) -> ScanResult:
    """Count the rows and send every maybe-repeated id with its latest row to `sink`.

    `chunks` is the read to scan (a hashing read, whose fingerprint `fingerprint()`
    gives once it is done); by default the id column is read plainly.
    """
    if chunks is None:
        chunks = source.chunks([column_map.id_column], rows_per_chunk=SCAN_CHUNK_ROWS)
    seen = BitSet()
    maybe_repeated: dict[str, int] = {}
    total = with_id = malformed = 0
    first_malformed = ""
    for chunk in chunks:
        ids = column_map.ids_of(chunk.table)
        rows = chunk.row_numbers
        if len(rows):
            total = max(total, int(rows[-1].as_py()))
        if chunk.malformed:
            total = max(total, max(m.row_number for m in chunk.malformed))
            if not malformed:
                m = chunk.malformed[0]
                first_malformed = f"line {m.line_number}: {m.message}"
            malformed += len(chunk.malformed)
        present = has_id(ids)
        keep_rows = pc.filter(rows, present).to_pylist()
        keep_ids = pc.filter(ids, present).to_pylist()
        with_id += len(keep_rows)
        seen.add_all(keep_ids, keep_rows, maybe_repeated)
        if len(maybe_repeated) >= DUP_FLUSH:
            sink(maybe_repeated)
            maybe_repeated = {}
    name = source.path.name
    if total == 0:
        raise SourceError(f"{name}: no data rows (the file has a header only)")
    if malformed == total:
        raise SourceError(f"{name}: every row is malformed (first, {first_malformed})")
    if with_id == 0:
        raise SourceError(f"{name}: every value of the id column {column_map.id_column!r} is empty")
    sink(maybe_repeated)
    return ScanResult(total, with_id, fingerprint())


class RepeatedIds:
    """Which ids of a chunk repeat, and their last row, without holding every repeated id.

    Built from the journal's repeated ids (a stream), it asks the journal only about the
    ids whose bit is set: the repeated ones and a few false alarms.
    """

    def __init__(self, ids: Iterator[str], lookup: Callable[[Sequence[str]], Mapping[str, int]]) -> None:
        self._bits = BitSet()
        self._any = False
        # A few repeated ids (the common case) are also held as an Arrow set, so that a
        # chunk is matched against them by one kernel rather than a hash per row in Python.
        few: list[str] | None = []
        for id_value in ids:
            self._bits.add(id_value)
            self._any = True
            if few is not None:
                few.append(id_value)
                if len(few) > FEW_REPEATED:
                    few = None
        self._few = pa.array(few, pa.string()) if few else None
        self._lookup = lookup

    def __call__(self, ids: Sequence[str | None], arrow_ids: pa.Array | None = None) -> Mapping[str, int]:
        if not self._any:
            return {}
        if self._few is not None and arrow_ids is not None:
            hit = pc.fill_null(pc.is_in(arrow_ids, value_set=self._few), False)
            candidates = pc.filter(arrow_ids, hit).to_pylist() if pc.any(hit).as_py() else []
        else:
            candidates = self._bits.among(ids)
        return self._lookup(candidates) if candidates else {}
