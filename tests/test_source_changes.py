"""The file read once before sending (issue 9 item 2, DESIGN section 6): the scan hashes the
bytes it parses and gives the same fingerprint as `fingerprint()`; a file that changes
while it is scanned is refused; the send pass (`chunks(expect=...)`) stops resumably
(SourceModified, exit 75) before handing out any row read after a change."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bulkload.errors import EXIT_RESUMABLE, SourceError, SourceModified, StopResumable
from bulkload.source import (
    CSV_BLOCK_SIZE,
    Fingerprint,
    SourceChunk,
    StartAt,
    csv_quirks,
    fingerprint,
    open_source,
)
from bulkload.source.fingerprint import FileWatch, ReadTally


def write_csv(path: Path, rows: int, line_end: str = "\n", start: int = 1) -> Path:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_end)
    writer.writerow(["id", "note", "body"])
    for i in range(start, start + rows):
        writer.writerow([f"id-{i}", "two\nlines" if i % 5 == 0 else "x, y", f"cell {i}" * (i % 9)])
    out.write(f"bad,row{line_end}")  # one malformed row at the end
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: int) -> Path:
    pq.write_table(pa.table({"id": [f"id-{i}" for i in range(rows)], "n": list(range(rows))}), path, row_group_size=100)
    return path


def ids(chunks: list[SourceChunk]) -> list[object]:
    return [v for c in chunks for v in c.table.column(0).to_pylist()]


def bump_mtime(path: Path, ns: int = 10**9) -> None:
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + ns))


# --------------------------------------------------------------------------- the scan


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
@pytest.mark.parametrize("rows", [0, 10, 30_000])
def test_the_scan_yields_the_chunks_and_the_fingerprint(tmp_path: Path, line_end: str, rows: int) -> None:
    path = write_csv(tmp_path / "calls.csv", rows, line_end)
    source = open_source(path)
    scan = source.scan(["id"], rows_per_chunk=1_000)
    with pytest.raises(RuntimeError, match="not read the whole file"):
        _ = scan.fingerprint
    got = list(scan)
    plain = list(source.chunks(["id"], rows_per_chunk=1_000))
    assert ids(got) == ids(plain)
    assert [c.row_numbers.to_pylist() for c in got] == [c.row_numbers.to_pylist() for c in plain]
    assert [c.malformed for c in got] == [c.malformed for c in plain]
    assert scan.done and scan.fingerprint == fingerprint(path)
    with pytest.raises(RuntimeError, match="once"):
        list(scan)


def test_the_scan_of_a_parquet_file_equals_fingerprint(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "calls.parquet", 1_000)
    source = open_source(path)
    scan = source.scan(["n"], rows_per_chunk=64)
    got = list(scan)
    assert ids(got) == list(range(1_000))
    assert scan.fingerprint == fingerprint(path)


def test_an_abandoned_scan_has_no_fingerprint(tmp_path: Path) -> None:
    scan = open_source(write_csv(tmp_path / "calls.csv", 100)).scan(rows_per_chunk=10)
    next(iter(scan))
    with pytest.raises(RuntimeError):
        _ = scan.fingerprint


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_file_changed_during_the_scan_is_refused(tmp_path: Path, kind: str) -> None:
    if kind == "csv":
        path = write_csv(tmp_path / "calls.csv", 2_000)
    else:
        path = write_parquet(tmp_path / "calls.parquet", 2_000)
    scan = open_source(path).scan(rows_per_chunk=100)
    it = iter(scan)
    next(it)
    with path.open("ab") as f:
        f.write(b"id-9999,x,y\n")
    with pytest.raises(SourceError, match=r"changed while it was being read: size [\d,]+ -> [\d,]+ bytes$"):
        list(it)
    assert not scan.done


# --------------------------------------------------------------------------- the send pass


def scanned(path: Path) -> Fingerprint:
    scan = open_source(path).scan(["id"])
    for _ in scan:
        pass
    return scan.fingerprint


def test_an_unchanged_file_reads_through_with_expect(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "calls.csv", 5_000)
    fp = scanned(path)
    source = open_source(path)
    plain = list(source.chunks(rows_per_chunk=700))
    checked = list(source.chunks(rows_per_chunk=700, expect=fp))
    assert ids(checked) == ids(plain) and len(checked) > 5
    # and from a resume's start row
    lines = [n for c in plain for n in (c.line_numbers.to_pylist() if c.line_numbers is not None else [])]
    rest = list(source.chunks(rows_per_chunk=700, start=StartAt(2_001, lines[2_000]), expect=fp))
    assert ids(rest)[0] == "id-2001"
    # a touch is a change for the send pass too: it cannot tell a touch from a rewrite
    bump_mtime(path)
    with pytest.raises(SourceModified, match="same size, modified at"):
        list(source.chunks(expect=fp))


def changed_to(path: Path, fp: Fingerprint, how: str) -> None:
    data = path.read_bytes()
    if how == "append":
        path.write_bytes(data + b"id-new,x,y\n")
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "rewrite":
        with path.open("r+b") as f:  # same size, one byte different, in place
            f.seek(20)
            f.write(b"Z")
        # mtime timestamps are coarse (a few ms): make sure this one moved
        if path.stat().st_mtime_ns == fp.mtime_ns:
            bump_mtime(path, 1)
    assert os.stat(path).st_mtime_ns != fp.mtime_ns or how != "rewrite"


@pytest.mark.parametrize("how", ["append", "truncate", "rewrite"])
def test_expect_catches_a_change_between_scan_and_send(tmp_path: Path, how: str) -> None:
    path = write_csv(tmp_path / "calls.csv", 3_000)
    fp = scanned(path)
    changed_to(path, fp, how)
    handed: list[SourceChunk] = []
    with pytest.raises(SourceModified) as info:
        for chunk in open_source(path).chunks(rows_per_chunk=100, expect=fp):
            handed.append(chunk)
    assert handed == []  # the first check comes before the first chunk
    error = info.value
    assert isinstance(error, StopResumable) and error.exit_code == EXIT_RESUMABLE == 75
    message = str(error)
    assert "\n" not in message and str(path) in message and error.path == str(path)
    if how == "append":
        assert f"size {fp.size:,} -> {fp.size + 11:,} bytes" in error.change
    elif how == "rewrite":
        assert error.change.startswith("same size, modified at")


def test_expect_catches_a_change_in_the_middle_of_the_send_pass(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "calls.csv", 3_000)
    fp = scanned(path)
    handed: list[SourceChunk] = []
    with pytest.raises(SourceModified, match=r"size [\d,]+ -> [\d,]+ bytes"):
        for chunk in open_source(path).chunks(rows_per_chunk=100, expect=fp):
            handed.append(chunk)
            if len(handed) == 3:
                with path.open("ab") as f:
                    f.write(b"id-3001,x,y\n")
    assert ids(handed) == [f"id-{i}" for i in range(1, 301)]


def test_expect_catches_a_file_cut_short_and_grown_back_while_it_was_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fstat shows the expected size and mtime at every check, but the reads met the end
    # of the file early: what a truncate and a regrow between two checks look like.
    path = write_csv(tmp_path / "calls.csv", 60_000)
    fp = scanned(path)
    assert fp.size > 4 * CSV_BLOCK_SIZE
    real_read = csv_quirks.FileWindow.read

    def short_read(self: csv_quirks.FileWindow, size: int = -1) -> bytes:
        if self.tell() >= fp.size // 2:
            self._tally.saw(self.tell(), b"")
            return b""
        return real_read(self, size)

    monkeypatch.setattr(csv_quirks.FileWindow, "read", short_read)
    with pytest.raises(SourceModified, match=r"read [\d,]+ bytes of [\d,]+"):
        list(open_source(path).chunks(rows_per_chunk=100, expect=fp))


def test_the_end_check_wants_the_read_to_meet_the_end_at_the_expected_size(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"abc")
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        watch = FileWatch(path, fd, info.st_size, info.st_mtime_ns, SourceError)
        whole, short = ReadTally(), ReadTally()
        whole.saw(0, b"abc")
        whole.saw(3, b"")
        short.saw(0, b"ab")
        short.saw(2, b"")
        watch.check_end(whole)
        with pytest.raises(SourceError, match=r"^read 2 bytes of 3$"):
            watch.check_end(short)
        with pytest.raises(SourceError, match=r"^the read did not reach the end of the file \(3 bytes\)$"):
            watch.check_end(ReadTally())
    finally:
        os.close(fd)


@pytest.mark.parametrize("how", ["append", "rewrite"])
def test_expect_on_parquet(tmp_path: Path, how: str) -> None:
    path = write_parquet(tmp_path / "calls.parquet", 1_000)
    fp = scanned(path)
    assert [v for c in open_source(path).chunks(["n"], expect=fp) for v in c.table.column(0).to_pylist()] == list(range(1_000))
    source = open_source(path)
    if how == "append":
        with path.open("ab") as f:
            f.write(b"junk")
    else:
        bump_mtime(path)
    with pytest.raises(SourceModified):
        list(source.chunks(rows_per_chunk=100, expect=fp))


def test_a_hashing_read_never_skips_bytes() -> None:
    tally = ReadTally(hashing=True)
    tally.saw(0, b"abcd")
    tally.saw(2, b"cdef")  # a restarted read goes over bytes already hashed
    tally.saw(6, b"")
    import hashlib

    assert tally.sha256() == hashlib.sha256(b"abcdef").hexdigest() and tally.eof_at == 6
    with pytest.raises(RuntimeError, match="skips"):
        tally.saw(10, b"x")
