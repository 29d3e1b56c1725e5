"""Reading a CSV from a StartAt (what resume does) numbers rows exactly as a read from the top."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkload.source import StartAt, open_source

CSV = (
    'id,title,body\r\n'
    'a,one,"two\r\nlines"\r\n'
    '\r\n'
    'b,two,plain\r\n'
    'c,bad,row,extra\r\n'
    'd,"q ""x""",",comma"\r\n'
    ',,\r\n'
    'e,five,"three\nline\nbody"\r\n'
    'f,six,caf\u00e9\r\n'
    'g,seven,last\r\n'
)


def flatten(path: Path, start: StartAt | None, rows_per_chunk: int) -> list[tuple[int, int | None, object]]:
    out: list[tuple[int, int | None, object]] = []
    for chunk in open_source(path).chunks(rows_per_chunk=rows_per_chunk, start=start):
        lines = chunk.line_numbers.to_pylist() if chunk.line_numbers is not None else [None] * chunk.num_rows
        for r, ln, values in zip(chunk.row_numbers.to_pylist(), lines, chunk.table.to_pylist(), strict=True):
            out.append((r, ln, values))
        out.extend((m.row_number, m.line_number, m.text) for m in chunk.malformed)
    return sorted(out, key=lambda t: t[0])


@pytest.mark.parametrize("rows_per_chunk", [1, 2, 100])
def test_every_start_row_reads_the_rest_as_from_the_top(tmp_path: Path, rows_per_chunk: int) -> None:
    path = tmp_path / "calls.csv"
    path.write_bytes(CSV.encode("utf-8"))
    full = flatten(path, None, rows_per_chunk)
    assert [r for r, _, _ in full] == list(range(1, len(full) + 1))
    for row, line, _ in full:
        assert line is not None
        rest = flatten(path, StartAt(row, line), rows_per_chunk)
        assert rest == [t for t in full if t[0] >= row], (row, line)
