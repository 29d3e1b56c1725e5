"""The chunker: <= batch_size inputs, unique ids, every row in exactly one batch range."""

from __future__ import annotations

import pyarrow as pa

from bulkload.chunker import Chunker
from bulkload.mapping import Schema, map_chunk, resolve_columns
from bulkload.models import BatchPlan, KnownBatch
from bulkload.source import MalformedRow, SourceChunk

CM = resolve_columns(["external_call_id", "hs_call_title"], "external_call_id", {})


def mapped(ids: list[str], first_row: int = 1, malformed: tuple[MalformedRow, ...] = ()) -> object:
    rows = list(range(first_row, first_row + len(ids) + len(malformed)))
    bad = {m.row_number for m in malformed}
    rows = [r for r in rows if r not in bad][: len(ids)]
    table = pa.RecordBatch.from_pydict({"external_call_id": ids, "hs_call_title": [f"t{i}" for i in ids]})
    chunk = SourceChunk(table=table, row_numbers=pa.array(rows, pa.int64()), line_numbers=None, malformed=malformed)
    return map_chunk(chunk, CM, Schema.fallback())


def plan(chunker: Chunker, *chunks: object) -> list[BatchPlan]:
    out: list[BatchPlan] = []
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
        # Each input's trace id is its own source row: the rows of its batch, less the failed ones.
        failed = {f.row_number for f in b.failures}
        sent_rows = [r for r in range(b.first_row, b.last_row + 1) if r not in failed]
        assert [i["objectWriteTraceId"] for i in b.inputs] == [str(r) for r in sent_rows]
        assert [i["id"] for i in b.inputs] == [ids[r - 1] for r in sent_rows]


def test_superseded_rows_are_never_sent() -> None:
    ids = ["a", "b", "a", "c", "b"]
    # "c" is a false alarm of the scan's bit set: seen once, its one row is its last row.
    dups = {"a": 3, "b": 5, "c": 4}
    batches = plan(Chunker(batch_size=2, id_property="external_call_id",
                           winners=lambda ids, _=None: {i: dups[i] for i in ids if i in dups}), mapped(ids))
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


def test_a_done_batch_spanning_a_chunk_boundary_is_never_emitted_again() -> None:
    # The last known batch is done and its rows arrive in two chunks: it must be closed by
    # its recorded rows and skipped, and new batches start after it.
    ids = [f"id{i}" for i in range(1, 41)]
    first = plan(Chunker(batch_size=10, id_property="external_call_id"), mapped(ids))
    known = [KnownBatch(1, 1, 10, done=False), KnownBatch(2, 11, 20, done=True)]
    chunker = Chunker(batch_size=10, id_property="external_call_id", known=known)
    again = plan(chunker, mapped(ids[:15]), mapped(ids[15:], 16))
    assert [b.batch_no for b in again] == [1, 3, 4]
    assert again[0].inputs == first[0].inputs
    assert [(b.first_row, b.last_row) for b in again[1:]] == [(21, 30), (31, 40)]


def test_a_known_batch_keeps_exactly_its_rows_whatever_the_chunks() -> None:
    ids = [f"id{i}" for i in range(1, 31)]
    known = [KnownBatch(1, 1, 7, done=False), KnownBatch(2, 8, 19, done=False)]
    again = plan(Chunker(batch_size=10, id_property="external_call_id", known=known),
                 mapped(ids[:5]), mapped(ids[5:12], 6), mapped(ids[12:], 13))
    assert [(b.batch_no, b.first_row, b.last_row, len(b.inputs)) for b in again] == [
        (1, 1, 7, 7), (2, 8, 19, 12), (3, 20, 29, 10), (4, 30, 30, 1)]


def test_rows_that_are_not_sent_do_not_pile_up_in_one_batch() -> None:
    # Every id repeats later: the first half is superseded. Batches close at max_rows rows.
    ids = [f"id{i % 50}" for i in range(100)]
    winners = {f"id{k}": 51 + k for k in range(50)}
    batches = plan(Chunker(batch_size=100, id_property="external_call_id", max_rows=100,
                           winners=lambda got, _=None: {i: winners[i] for i in got if i in winners}), mapped(ids))
    assert all(b.n_rows <= 100 for b in batches)
    chunker = Chunker(batch_size=10, id_property="external_call_id", max_rows=20,
                      winners=lambda got, _=None: {i: winners[i] for i in got if i in winners})
    small = plan(chunker, mapped(ids))
    assert max(b.n_rows for b in small) <= 20
    assert sum(len(b.superseded) for b in small) == 50 and sum(len(b.inputs) for b in small) == 50
