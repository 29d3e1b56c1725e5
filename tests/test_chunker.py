"""The chunker: <= batch_size inputs, unique ids, every row in exactly one batch range."""

from __future__ import annotations

import pyarrow as pa

from bulkload.chunker import Chunker, KnownBatch, PlannedBatch
from bulkload.mapping import Schema, map_chunk, resolve_columns
from bulkload.source import MalformedRow, SourceChunk

CM = resolve_columns(["external_call_id", "hs_call_title"], "external_call_id", {})


def mapped(ids: list[str], first_row: int = 1, malformed: tuple[MalformedRow, ...] = ()) -> object:
    rows = list(range(first_row, first_row + len(ids) + len(malformed)))
    bad = {m.row_number for m in malformed}
    rows = [r for r in rows if r not in bad][: len(ids)]
    table = pa.RecordBatch.from_pydict({"external_call_id": ids, "hs_call_title": [f"t{i}" for i in ids]})
    chunk = SourceChunk(table=table, row_numbers=pa.array(rows, pa.int64()), line_numbers=None, malformed=malformed)
    return map_chunk(chunk, CM, Schema.fallback())


def plan(chunker: Chunker, *chunks: object) -> list[PlannedBatch]:
    out: list[PlannedBatch] = []
    for m in chunks:
        out.extend(chunker.feed(m))  # type: ignore[arg-type]
    out.extend(chunker.finish())
    return out


def test_batches_are_full_and_cover_every_row_once() -> None:
    ids = [f"id{i}" for i in range(1, 251)]
    ids[9] = ""  # row 10: no id
    batches = plan(Chunker(batch_size=100, id_property="external_call_id"), mapped(ids[:130]), mapped(ids[130:], 131))
    assert [len(b.inputs) for b in batches] == [100, 100, 49]
    assert [b.batch_no for b in batches] == [1, 2, 3]
    covered = [r for b in batches for r in range(b.first_row, b.last_row + 1)]
    assert covered == list(range(1, 251))
    assert batches[0].failures[0].row_number == 10
    for b in batches:
        assert len({i["id"] for i in b.inputs}) == len(b.inputs)
        assert all(i["objectWriteTraceId"] == str(r) for i, r in zip(b.inputs, [int(i["objectWriteTraceId"]) for i in b.inputs], strict=True))


def test_superseded_rows_are_never_sent() -> None:
    ids = ["a", "b", "a", "c", "b"]
    # "c" is a false alarm of the scan's bit set: seen once, its one row is its last row.
    dups = {"a": 3, "b": 5, "c": 4}
    batches = plan(Chunker(batch_size=2, id_property="external_call_id", dup_ids=dups), mapped(ids))
    sent = [(i["id"], i["objectWriteTraceId"]) for b in batches for i in b.inputs]
    assert sent == [("a", "3"), ("c", "4"), ("b", "5")]
    assert [s.row_number for b in batches for s in b.superseded] == [1, 2]


def test_malformed_rows_take_their_place() -> None:
    m = mapped(["a", "b", "c"], malformed=(MalformedRow(2, 3, "x,y,z", "expected 2 columns, got 3"),))
    batches = plan(Chunker(batch_size=100, id_property="external_call_id"), m)
    assert len(batches) == 1
    assert [f.row_number for f in batches[0].failures] == [2]
    assert (batches[0].first_row, batches[0].last_row) == (1, 4)


def test_known_batches_keep_their_boundaries_and_done_ones_are_skipped() -> None:
    ids = [f"id{i}" for i in range(1, 31)]
    first = plan(Chunker(batch_size=10, id_property="external_call_id"), mapped(ids))
    known = [KnownBatch(b.batch_no, b.first_row, b.last_row, done=b.batch_no != 2) for b in first]
    again = plan(Chunker(batch_size=10, id_property="external_call_id", known=known), mapped(ids))
    assert [b.batch_no for b in again] == [2]
    assert again[0].inputs == first[1].inputs
