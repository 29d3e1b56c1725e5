"""bulkload.source: streaming CSV/Parquet readers, row and line numbers, refusals, and
the source fingerprint."""

from __future__ import annotations

import csv
import io
import os
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bulkload.errors import SourceError
from bulkload.source import (
    Fingerprint,
    MalformedRow,
    SourceChunk,
    detect_format,
    fingerprint,
    open_source,
)

# --------------------------------------------------------------------------- helpers


def write(tmp_path: Path, data: bytes | str, name: str = "calls.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read_all(
    path: Path, columns: list[str] | None = None, rows_per_chunk: int = 65_536
) -> tuple[list[SourceChunk], dict[str, list[object]], list[int], list[int], list[MalformedRow]]:
    chunks = list(open_source(path).chunks(columns, rows_per_chunk=rows_per_chunk))
    values: dict[str, list[object]] = {}
    rows: list[int] = []
    lines: list[int] = []
    malformed: list[MalformedRow] = []
    for chunk in chunks:
        for name, column in chunk.table.to_pydict().items():
            values.setdefault(name, []).extend(column)
        rows += chunk.row_numbers.to_pylist()
        if chunk.line_numbers is not None:
            lines += chunk.line_numbers.to_pylist()
        malformed += chunk.malformed
    return chunks, values, rows, lines, malformed


def reference(text: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, records and their start lines, as Python's csv module sees them."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    records, starts = [], []
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        records.append(record)
        starts.append(start)
    return header, records, starts


def csv_text(header: list[str], records: list[list[str]], line_end: str = "\n") -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator=line_end).writerows([header, *records])
    return out.getvalue()


CELLS = [
    "plain",
    "",
    "with, comma",
    'doubled "quotes"',
    "line one\nline two",
    "crlf one\r\ncrlf two",
    "three\n\nlines",
    "Café — 电话 📞",
    "0012",
    "  spaced  ",
]


def random_records(seed: int, n: int, width: int = 4) -> list[list[str]]:
    rng = random.Random(seed)
    return [[f"id-{i}"] + [rng.choice(CELLS) for _ in range(width - 1)] for i in range(n)]


# --------------------------------------------------------------------------- numbering


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
@pytest.mark.parametrize("rows_per_chunk", [1, 3, 64, 65_536])
def test_row_and_line_numbers_match_the_csv_module(
    tmp_path: Path, line_end: str, rows_per_chunk: int
) -> None:
    header = ["id", "a", "b", "c"]
    records = random_records(1, 300)
    text = csv_text(header, records, line_end)
    _, want_records, want_starts = reference(text)

    chunks, values, rows, lines, malformed = read_all(
        write(tmp_path, text), rows_per_chunk=rows_per_chunk
    )

    assert not malformed
    assert rows == list(range(1, 301))
    assert lines == want_starts
    assert [list(r) for r in zip(*values.values(), strict=True)] == want_records
    assert all(c.num_rows <= rows_per_chunk for c in chunks)
    assert all(c.table.schema.names == header for c in chunks)


def test_numbers_hold_across_read_blocks(tmp_path: Path) -> None:
    # ~850 KB: several of pyarrow's 256 KiB read blocks, so rows with embedded line breaks
    # straddle block and chunk boundaries.
    header = ["id", "a", "b", "c", "d", "e"]
    records = random_records(2, 12_000, width=6)
    text = csv_text(header, records)
    assert len(text) > 800_000
    _, _, want_starts = reference(text)

    _, values, rows, lines, _ = read_all(write(tmp_path, text), rows_per_chunk=5_000)

    assert rows == list(range(1, 12_001))
    assert lines == want_starts
    assert values["id"][-1] == "id-11999"


def test_crlf_in_a_cell_across_a_read_block_boundary(tmp_path: Path) -> None:
    # pyarrow drops an LF that starts a read block after a block ending in CR; the reader
    # must not let that happen to a CRLF inside a quoted cell.
    from bulkload.source import CSV_BLOCK_SIZE

    data = b"id,a\n"
    while len(data) < CSV_BLOCK_SIZE - 200:
        data += b"1,filler filler filler filler\n"
    cell_start = data + b'2,"ab'
    pad = CSV_BLOCK_SIZE - len(cell_start) - 1  # the CR is the block's last byte
    data = cell_start + b"y" * pad + b'\r\ncd"\n3,z\n'
    assert data[CSV_BLOCK_SIZE - 1 : CSV_BLOCK_SIZE + 1] == b"\r\n"

    _, values, _, lines, _ = read_all(write(tmp_path, data))
    assert values["a"][-2].endswith("y\r\ncd")
    assert lines[-1] == data.count(b"\n")  # "3,z" starts on the last line


def test_values_are_verbatim_text(tmp_path: Path) -> None:
    text = 'id,a,b,c\n0012,N/A,null,NaN\n1e5,"  lead"," trail ",\n007,TRUE,-0,""\n'
    _, values, _, _, _ = read_all(write(tmp_path, text))
    assert values == {
        "id": ["0012", "1e5", "007"],
        "a": ["N/A", "  lead", "TRUE"],
        "b": ["null", " trail ", "-0"],
        "c": ["NaN", "", ""],
    }
    chunk = next(open_source(write(tmp_path, text)).chunks())
    assert all(t == pa.string() for t in chunk.table.schema.types)


def test_malformed_rows_are_numbered_and_do_not_break_later_rows(tmp_path: Path) -> None:
    text = (
        "id,a,b\n"  # line 1
        "1,x,y\n"  # row 1, line 2
        '"2\nsecond line",x,y\n'  # row 2, lines 3-4
        "3,too,few,cells,here\n"  # row 3, line 5: malformed
        "4,short\n"  # row 4, line 6: malformed
        '"5 with\nbreak",only\n'  # row 5, lines 7-8: malformed with a line break
        "6,x,y\n"  # row 6, line 9
        "7,x,y\r\n"  # row 7, line 10
        "8\n"  # row 8, line 11: malformed, last
    )
    for rows_per_chunk in (1, 2, 3, 100):
        chunks, values, rows, lines, malformed = read_all(
            write(tmp_path, text), rows_per_chunk=rows_per_chunk
        )
        assert values["id"] == ["1", "2\nsecond line", "6", "7"]
        assert rows == [1, 2, 6, 7]
        assert lines == [2, 3, 9, 10]
        assert [(m.row_number, m.line_number) for m in malformed] == [
            (3, 5),
            (4, 6),
            (5, 7),
            (8, 11),
        ]
        assert malformed[0].message == "expected 3 columns, got 5"
        assert malformed[0].text == "3,too,few,cells,here"
        assert malformed[2].text == '"5 with\nbreak",only'
        assert malformed[1].message == "expected 3 columns, got 2"
        # Each malformed row rides with the chunk whose span holds it.
        for chunk, following in zip(chunks, [*chunks[1:], None], strict=True):
            first = chunk.row_numbers.to_pylist()[:1]
            nxt = following.row_numbers.to_pylist()[:1] if following else [10**9]
            for m in chunk.malformed:
                assert m.row_number < nxt[0]
                if first and chunk is not chunks[0]:
                    assert m.row_number > first[0]


@pytest.mark.parametrize("seed", range(6))
def test_random_files_match_the_csv_module(tmp_path: Path, seed: int) -> None:
    """Good, malformed and blank records, LF and CRLF, cells with line breaks: every
    record lands where Python's csv module says it starts."""
    rng = random.Random(seed)
    width = rng.choice([1, 3, 5])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([f"c{i}" for i in range(width)])
    for i in range(rng.randrange(200, 600)):
        kind = rng.random()
        if kind < 0.05 and width > 1:
            cells = [str(i)] + [rng.choice(CELLS) for _ in range(rng.choice([0, width]))]
        elif kind < 0.08:
            out.write(rng.choice(["\n", "\r\n"]))  # a blank line
            continue
        else:
            cells = [f"r{i}"] + [rng.choice(CELLS) for _ in range(width - 1)]
        csv.writer(out, lineterminator=rng.choice(["\n", "\r\n"])).writerow(cells)
    text = out.getvalue()

    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    want_good, want_bad = [], []
    number = 0
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        if not record or (len(record) == width and not any(record)):
            continue  # blank: not a data row, but its line counts
        number += 1
        target = want_good if len(record) == width else want_bad
        target.append((number, start, record[0]))

    for rows_per_chunk in (7, 100_000):
        _, values, rows, lines, malformed = read_all(
            write(tmp_path, text), rows_per_chunk=rows_per_chunk
        )
        assert list(zip(rows, lines, values["c0"], strict=True)) == want_good
        assert [(m.row_number, m.line_number) for m in malformed] == [
            (n, line) for n, line, _ in want_bad
        ]


def test_only_malformed_rows(tmp_path: Path) -> None:
    chunks, _, rows, _, malformed = read_all(write(tmp_path, "a,b\n1\n2,3,4\n"))
    assert rows == []
    assert [(m.row_number, m.line_number) for m in malformed] == [(1, 2), (2, 3)]
    assert len(chunks) == 1 and chunks[0].table.schema.names == ["a", "b"]


def test_blank_lines_keep_numbers_right(tmp_path: Path) -> None:
    text = 'id,a\n1,x\n\n2,"y\nz"\n,\n3,w\n\n\n'
    chunks, values, rows, lines, malformed = read_all(write(tmp_path, text), rows_per_chunk=2)
    assert values["id"] == ["1", "2", "3"]
    assert rows == [1, 2, 3]  # the blank line and the "," row are not data rows
    assert lines == [2, 4, 7]  # ... but their lines count
    assert not malformed
    assert sum(c.blank_rows for c in chunks) == 4  # two blank lines at the end too


def test_blank_lines_between_malformed_rows(tmp_path: Path) -> None:
    text = "id,a\n1,x\n\n2\n\n3,y\n,\n4,5,6\n"
    for rows_per_chunk in (1, 2, 100):
        chunks, _, rows, lines, malformed = read_all(
            write(tmp_path, text), rows_per_chunk=rows_per_chunk
        )
        assert (rows, lines) == ([1, 3], [2, 6])
        assert [(m.row_number, m.line_number) for m in malformed] == [(2, 4), (4, 8)]
        assert sum(c.blank_rows for c in chunks) == 3


def test_header_only_yields_nothing(tmp_path: Path) -> None:
    source = open_source(write(tmp_path, "id,a\n"))
    assert source.columns == ["id", "a"]
    assert list(source.chunks()) == []


def test_bom_is_stripped_and_crlf_header(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfid,name\r\n1,\xc3\xa9\r\n")
    source = open_source(path)
    assert source.columns == ["id", "name"]
    _, values, rows, lines, _ = read_all(path)
    assert values == {"id": ["1"], "name": ["é"]}
    assert (rows, lines) == ([1], [2])


def test_column_subset_has_the_same_numbers(tmp_path: Path) -> None:
    text = csv_text(["id", "a", "b", "c"], random_records(3, 200))
    path = write(tmp_path, text + "bad,row\n" + "last,1,2,3\n")
    _, full, rows, lines, malformed = read_all(path, rows_per_chunk=37)
    chunks, subset, rows2, lines2, malformed2 = read_all(path, ["c", "id"], rows_per_chunk=37)
    assert all(c.table.schema.names == ["c", "id"] for c in chunks)
    assert subset == {"c": full["c"], "id": full["id"]}
    assert (rows2, lines2, malformed2) == (rows, lines, malformed)
    assert malformed[0].row_number == 201


def test_unknown_column_is_refused(tmp_path: Path) -> None:
    source = open_source(write(tmp_path, "id,a\n1,2\n"))
    with pytest.raises(SourceError, match="no column named 'nope'"):
        list(source.chunks(["id", "nope"]))


def test_tsv_and_bare_cr_files(tmp_path: Path) -> None:
    _, values, rows, lines, _ = read_all(write(tmp_path, "id\ta\n1\tx, y\n2\tz\n", "c.tsv"))
    assert values == {"id": ["1", "2"], "a": ["x, y", "z"]}
    assert (rows, lines) == ([1, 2], [2, 3])

    _, values, rows, lines, _ = read_all(write(tmp_path, 'id,a\r1,"x\ry"\r2,z\r', "mac.csv"))
    assert values == {"id": ["1", "2"], "a": ["x\ry", "z"]}
    assert (rows, lines) == ([1, 2], [2, 4])


def test_each_call_restarts_from_the_top(tmp_path: Path) -> None:
    source = open_source(write(tmp_path, csv_text(["id", "a"], [["1", "x"], ["2", "y"]])))
    first = [c.row_numbers.to_pylist() for c in source.chunks(rows_per_chunk=1)]
    again = [c.row_numbers.to_pylist() for c in source.chunks(rows_per_chunk=1)]
    assert first == again == [[1], [2]]


# --------------------------------------------------------------------------- refusals


def refused(path: Path, match: str, format: str | None = None) -> None:
    with pytest.raises(SourceError, match=match) as info:
        source = open_source(path, format)
        for _ in source.chunks():
            pass
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_missing_directory_and_empty_files_are_refused(tmp_path: Path) -> None:
    refused(tmp_path / "nope.csv", "no such file")
    refused(tmp_path, "is a directory")
    refused(write(tmp_path, b""), r"empty \(0 bytes\)")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"id,name\n1,caf\xe9\n", r"not UTF-8 \(byte 0xe9 on line 2\)"),
        (b"\xff\xfei\x00d\x00\n\x00", "UTF-16"),
        (b"\x1f\x8b\x08\x00rest", "gzip"),
        (b"PK\x03\x04rest", "ZIP archive"),
        (b"id,,name\n1,2,3\n", "column 2 of the header has no name"),
        (b"id,name,id\n1,2,3\n", r"'id' appears twice \(columns 1 and 3\)"),
        (b'"id\nx",name\n1,2\n', "header opens a quote"),
        (b"\n1,2\n", "column 1 of the header has no name"),
        (b'id,a\n1,x\n2,"never closed\n', "opens a quote that is never closed"),
        (b'id,a,b\n1,x,y\n2,"open,y\n3,x,y\n', "never closed"),
        (b'id,a\n1,x\n2,"y"\n3,"', "never closed"),
    ],
)
def test_unusable_csv_is_refused(tmp_path: Path, data: bytes, match: str) -> None:
    refused(write(tmp_path, data), match)


def test_closed_quotes_at_the_end_are_fine(tmp_path: Path) -> None:
    for tail in ('2,""', '2,"y"', '2,"y"\n', '2,"a ""q"""\n', "2,y"):
        _, values, _, _, _ = read_all(write(tmp_path, "id,a\n1,x\n" + tail))
        assert values["id"] == ["1", "2"]


def test_invalid_utf8_after_the_first_block_is_refused_by_chunks(tmp_path: Path) -> None:
    body = "id,a,b\n" + "1,x,y\n" * 20_000
    path = write(tmp_path, body.encode() + b"2,caf\xe9,y\n3,x,y\n")
    source = open_source(path)  # the first 64 KiB are fine
    with pytest.raises(SourceError, match=r"not UTF-8: invalid bytes in data row 20,001"):
        list(source.chunks())
    # ... also when the bad bytes sit in a malformed row, which pyarrow cannot decode
    path = write(tmp_path, body.encode() + b"2,caf\xe9\n")
    with pytest.raises(SourceError, match="not UTF-8"):
        list(open_source(path).chunks())


def test_format_is_checked_against_the_content(tmp_path: Path) -> None:
    csv_path = write(tmp_path, "id,a\n1,2\n")
    parquet_path = tmp_path / "calls.parquet"
    pq.write_table(pa.table({"id": ["1"]}), parquet_path)

    assert detect_format(csv_path) == "csv"
    assert detect_format(parquet_path) == "parquet"
    assert detect_format(write(tmp_path, "id\n1\n", "noext")) == "csv"
    refused(csv_path, "--format parquet was given, but the file is not Parquet", "parquet")
    refused(parquet_path, "--format csv was given, but the file is Parquet", "csv")
    refused(write(tmp_path, "id,a\n1,2\n", "fake.parquet"), r"named \.parquet, but the file is not")
    renamed = tmp_path / "real.csv"
    renamed.write_bytes(parquet_path.read_bytes())
    refused(renamed, r"named \.csv, but the file is Parquet")
    refused(csv_path, "unknown format 'xlsx'", "xlsx")


def test_truncated_parquet_is_refused(tmp_path: Path) -> None:
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"id": [str(i) for i in range(1000)]}), whole)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[:-100])
    refused(cut, "not a readable Parquet file")


# --------------------------------------------------------------------------- parquet


def test_parquet_keeps_types_and_numbers_rows(tmp_path: Path) -> None:
    path = tmp_path / "calls.parquet"
    table = pa.table(
        {
            "external_call_id": [f"call-{i}" for i in range(10)],
            "hs_timestamp": pa.array([1_700_000_000_000 + i for i in range(10)]).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "hs_call_duration": pa.array([i if i % 3 else None for i in range(10)], pa.int64()),
        }
    )
    pq.write_table(table, path, row_group_size=4)
    source = open_source(path)
    assert source.format == "parquet"
    assert source.columns == ["external_call_id", "hs_timestamp", "hs_call_duration"]
    assert source.num_rows_hint == 10

    chunks = list(source.chunks(rows_per_chunk=3))
    assert chunks[0].row_numbers.to_pylist() == [1, 2, 3]
    assert [r for c in chunks for r in c.row_numbers.to_pylist()] == list(range(1, 11))
    assert all(c.line_numbers is None and c.malformed == () for c in chunks)
    assert chunks[0].table.schema.field("hs_timestamp").type == pa.timestamp("ms", tz="UTC")
    assert chunks[0].table.schema.field("hs_call_duration").type == pa.int64()

    subset = list(source.chunks(["hs_call_duration"]))
    assert subset[0].table.schema.names == ["hs_call_duration"]
    assert subset[0].table.column(0).to_pylist() == table.column(2).to_pylist()


def test_parquet_duplicate_columns_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]), path)
    refused(path, "'a' appears twice")


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_detects_changes(tmp_path: Path) -> None:
    path = write(tmp_path, "id,a\n1,x\n2,y\n")
    original = fingerprint(path, chunk_size=4)
    assert original.size == path.stat().st_size
    assert original == fingerprint(path)
    assert Fingerprint.from_dict(original.to_dict()) == original
    assert str(original).startswith("sha256:")

    # touch only: not a change
    os.utime(path, ns=(original.mtime_ns + 10**9, original.mtime_ns + 10**9))
    touched = fingerprint(path)
    assert touched.mtime_ns != original.mtime_ns
    assert original.describe_change(touched) is None

    # same size, different content
    path.write_text("id,a\n1,x\n2,z\n")
    edited = fingerprint(path)
    assert edited.size == original.size
    assert original.describe_change(edited) == "content hash differs"

    # appended rows
    path.write_text("id,a\n1,x\n2,y\n3,w\n")
    assert original.describe_change(fingerprint(path)) == (
        "size 13 -> 17 bytes; content hash differs"
    )


def test_fingerprint_from_dict_rejects_junk() -> None:
    with pytest.raises(ValueError):
        Fingerprint.from_dict({"size": "1", "mtime_ns": 1, "sha256": "x"})


def test_fingerprint_of_a_missing_file() -> None:
    with pytest.raises(SourceError, match="cannot read"):
        fingerprint(Path("/nonexistent/calls.csv"))
