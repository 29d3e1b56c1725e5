"""Records longer than pyarrow's read block (issue 9 item 8): a cell of 512 KiB or more once
refused the whole CSV ("straddling object ...", "after data row 0"). The reader now restarts
at that record with a larger block; every row keeps the row and line number a normal read
gives, nothing is handed out twice or skipped, and only a record beyond the cap is refused."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from bulkload.errors import SourceError
from bulkload.source import StartAt, open_source

KIB = 1 << 10
MIB = 1 << 20


def reference(text: str) -> list[tuple[int, int, list[str]]]:
    """(row number, start line, cells) of every non-blank record, as Python's csv module
    sees them (malformed records included: they take row numbers too)."""
    csv.field_size_limit(1 << 30)
    reader = csv.reader(io.StringIO(text, newline=""))
    width = len(next(reader))
    out: list[tuple[int, int, list[str]]] = []
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return out
        if record and not (len(record) == width and not any(record)):
            out.append((len(out) + 1, start, record))


def flatten(path: Path, start: StartAt | None = None, rows_per_chunk: int = 65_536) -> list[tuple[int, int, object]]:
    """Every row and malformed row a read hands out: (row, line, first cell or raw text)."""
    out: list[tuple[int, int, object]] = []
    source = open_source(path)
    for chunk in source.chunks(rows_per_chunk=rows_per_chunk, start=start):
        assert chunk.line_numbers is not None
        ids = chunk.table.column(0).to_pylist()
        out.extend(zip(chunk.row_numbers.to_pylist(), chunk.line_numbers.to_pylist(), ids, strict=True))
        out.extend((m.row_number, m.line_number or 0, m.text) for m in chunk.malformed)
    return sorted(out, key=lambda t: t[0])


def build(long_at: dict[int, int], rows: int = 2_000, line_end: str = "\n", extra: str = "") -> str:
    """A CSV of `rows` records whose row r (1-based) holds a cell of long_at[r] characters,
    with line breaks in some cells and a malformed row and a blank line near each long one."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_end)
    writer.writerow(["id", "note", "body"])
    for r in range(1, rows + 1):
        if r in long_at:
            body = ("0123456789abcdef\n" * (long_at[r] // 17 + 1))[: long_at[r]]
            writer.writerow([f"id-{r}", "long", body])
            out.write(f"malformed-after-{r},x,y,z{line_end}")
            out.write(line_end)  # a blank line: no row number, but its line counts
        else:
            writer.writerow([f"id-{r}", "two\nlines" if r % 7 == 0 else "plain", f"cell {r}"])
    return out.getvalue() + extra


def check_against_reference(path: Path, text: str) -> None:
    want = reference(text)
    for rows_per_chunk in (100, 65_536):
        got = flatten(path, rows_per_chunk=rows_per_chunk)
        assert [(r, line) for r, line, _ in got] == [(r, line) for r, line, _ in want]
        good = {r: cells[0] for r, _, cells in want if len(cells) == 3}
        assert {r: v for r, _, v in got if r in good} == good


@pytest.mark.parametrize("size", [600 * KIB, 3 * MIB])
@pytest.mark.parametrize("where", ["middle", "end"])
def test_a_long_cell_loads_with_exact_numbers(tmp_path: Path, size: int, where: str) -> None:
    rows = 2_000
    at = rows // 2 if where == "middle" else rows
    text = build({at: size}, rows)
    path = tmp_path / "calls.csv"
    path.write_text(text, encoding="utf-8")

    check_against_reference(path, text)
    long_rows = [v for _, _, v in flatten(path) if v == f"id-{at}"]
    assert len(long_rows) == 1  # handed out once
    chunk = next(c for c in open_source(path).chunks() if f"id-{at}" in c.table.column(0).to_pylist())
    body = chunk.table.column(2).to_pylist()[chunk.table.column(0).to_pylist().index(f"id-{at}")]
    assert len(body) == size


def test_a_long_cell_in_the_first_row_and_crlf(tmp_path: Path) -> None:
    text = build({1: 700 * KIB, 900: 1_200 * KIB}, 1_500, line_end="\r\n")
    path = tmp_path / "calls.csv"
    path.write_bytes(text.encode("utf-8"))
    check_against_reference(path, text)


def test_several_long_cells_and_a_record_at_the_limit_of_a_grown_block(tmp_path: Path) -> None:
    sizes = {10: 520 * KIB, 11: 530 * KIB, 400: 1 * MIB + 3, 401: 2 * MIB - 100, 1_999: 5 * MIB}
    text = build(sizes, 2_000)
    path = tmp_path / "calls.csv"
    path.write_text(text, encoding="utf-8")
    check_against_reference(path, text)


def test_resume_reads_after_and_at_a_long_cell_agree_with_a_read_from_the_top(tmp_path: Path) -> None:
    text = build({300: 900 * KIB, 600: 3 * MIB}, 800)
    path = tmp_path / "calls.csv"
    path.write_text(text, encoding="utf-8")
    full = flatten(path, rows_per_chunk=64)
    lines = {r: line for r, line, _ in full}
    for row in (1, 299, 300, 301, 302, 600, 601, 800):
        assert flatten(path, StartAt(row, lines[row]), rows_per_chunk=64) == [t for t in full if t[0] >= row]


def test_a_record_beyond_the_cap_is_refused_naming_its_row_and_line(tmp_path: Path) -> None:
    text = build({}, 50) + 'id-51,x,"' + "y" * (3 * MIB) + '"\nid-52,x,y\n'
    path = tmp_path / "calls.csv"
    path.write_text(text, encoding="utf-8")
    want_line = reference(text)[-2][1]
    source = open_source(path)
    source.max_record_bytes = 2 * MIB  # type: ignore[attr-defined]
    with pytest.raises(SourceError) as info:
        list(source.chunks(rows_per_chunk=10))
    message = str(info.value)
    assert f"data row 51 (line {want_line})" in message and "longer than 2 MiB" in message
    assert "\n" not in message


def test_the_default_cap_is_at_least_64_mib() -> None:
    from bulkload.source import MAX_RECORD_BYTES

    assert MAX_RECORD_BYTES >= 64 * MIB


def test_an_unclosed_quote_in_a_big_file_is_still_refused_as_one(tmp_path: Path) -> None:
    # The rest of the file becomes one cell: the reader grows its block to take it in,
    # then the end-of-file check says what is wrong.
    text = build({}, 200) + 'id-201,x,"never closed\n' + "id-x,a,b\n" * 150_000
    path = tmp_path / "calls.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError, match="never closed"):
        list(open_source(path).chunks())


def test_malformed_rows_before_a_long_first_record_keep_their_numbers(tmp_path: Path) -> None:
    # pyarrow reports the malformed records of the first block before it meets the long
    # record: they must be numbered once, before the restart, and not read again.
    text = "id,note,body\n" + "bad\n" * 3 + "\n" + build({1: 800 * KIB}, 20)[len("id,note,body\n") :]
    path = tmp_path / "calls.csv"
    path.write_text(text, encoding="utf-8")
    check_against_reference(path, text)
    got = flatten(path)
    assert [(r, line) for r, line, v in got if v == "bad"] == [(1, 2), (2, 3), (3, 4)]


def test_the_hashing_scan_and_the_change_check_work_across_a_restart(tmp_path: Path) -> None:
    from bulkload.errors import SourceModified
    from bulkload.source import fingerprint

    text = build({700: 2 * MIB, 1_400: 700 * KIB}, 2_000, line_end="\r\n")
    path = tmp_path / "calls.csv"
    path.write_bytes(text.encode("utf-8"))
    source = open_source(path)
    scan = source.scan(["id"], rows_per_chunk=500)
    scanned = [(r, v) for c in scan for r, v in zip(c.row_numbers.to_pylist(), c.table.column(0).to_pylist(), strict=True)]
    assert scan.fingerprint == fingerprint(path)
    plain = [(r, v) for c in source.chunks(["id"], rows_per_chunk=500)
             for r, v in zip(c.row_numbers.to_pylist(), c.table.column(0).to_pylist(), strict=True)]
    assert scanned == plain
    assert sum(1 for _ in source.chunks(expect=scan.fingerprint)) > 0

    handed = []
    with pytest.raises(SourceModified):
        for chunk in source.chunks(["id"], rows_per_chunk=500, expect=scan.fingerprint):
            handed.extend(chunk.table.column(0).to_pylist())
            if len(handed) >= 500:
                with path.open("ab") as f:
                    f.write(b"id-new,x,y\r\n")
    assert handed == [f"id-{r}" for r in range(1, 501)]


@pytest.mark.parametrize("quoted", [True, False])
@pytest.mark.parametrize("newline_at_end", [True, False])
def test_a_long_cell_that_ends_the_file(tmp_path: Path, quoted: bool, newline_at_end: bool) -> None:
    body = "b" * (3 * MIB)
    cell = f'"{body}"' if quoted else body
    text = build({}, 300) + f"id-301,x,{cell}" + ("\n" if newline_at_end else "")
    path = tmp_path / "calls.csv"
    path.write_text(text, encoding="utf-8")
    check_against_reference(path, text)
    last = list(open_source(path).chunks())[-1]
    assert last.table.column(2).to_pylist()[-1] == body


def test_a_long_malformed_record_is_one_malformed_row(tmp_path: Path) -> None:
    text = build({}, 100) + 'id-101,x,"' + "m" * (1 * MIB) + '",extra\n' + "id-102,x,y\n"
    path = tmp_path / "calls.csv"
    path.write_text(text, encoding="utf-8")
    check_against_reference(path, text)
    malformed = [m for c in open_source(path).chunks() for m in c.malformed]
    assert [(m.row_number, m.message) for m in malformed] == [(101, "expected 3 columns, got 4")]
    assert len(malformed[0].text) > MIB
