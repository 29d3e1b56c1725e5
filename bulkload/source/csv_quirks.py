"""Byte-level helpers under the CSV reader: the file objects pyarrow reads through, where a
line starts, and whether a record leaves a quote open.

pyarrow reads a stream in blocks, on a thread of its own, up to ~32 blocks ahead. The
objects here sit between it and the file, outermost first:

    _WholeCrlf -> _FirstBlock (restarts only) -> _Prefixed (reads from a row) -> FileWindow

FileWindow reads the one open file descriptor with `os.pread` (no shared position, so a
restarted read and the readahead of the read it replaces never disturb each other) and
tells a ReadTally every byte it hands out: that is how a scan hashes the bytes it parses.

Lines are found by counting line breaks (LF, or CR in a bare-CR file) outside the parser.
That is exact for every record start: a record starts after a line break, except after a
bare CR outside quotes in an LF file, which pyarrow also ends a record on; such files
already number their lines by LF, and a read started from one of those records would
start at its line instead.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Protocol

from bulkload.errors import SourceError
from bulkload.source.fingerprint import ReadTally
from bulkload.source.records import MalformedRow

_LINE_SCAN_BLOCK = 1 << 20


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def tell(self) -> int: ...


class FileWindow:
    """The open file `fd` from `offset` on, read with os.pread; each read is told to
    `tally`. `detach()` makes it return end-of-file from then on, once any read in progress
    on pyarrow's thread is over, so the descriptor can be reused or closed safely."""

    def __init__(self, fd: int, offset: int, tally: ReadTally) -> None:
        self._fd = fd
        self._pos = offset
        self._tally = tally
        self._lock = threading.Lock()
        self._detached = False

    def read(self, size: int = -1) -> bytes:
        with self._lock:
            if self._detached:
                return b""
            if size < 0:  # all the rest (one byte more: an empty answer is the end)
                size = max(os.fstat(self._fd).st_size - self._pos, 0) + 1
            data = os.pread(self._fd, size, self._pos) if size else b""
            if size:
                self._tally.saw(self._pos, data)  # b"": the end of the file is here
                self._pos += len(data)
            return data

    def tell(self) -> int:
        return self._pos

    def detach(self) -> None:
        with self._lock:
            self._detached = True


class _Prefixed:
    """`prefix`, then the rest of `raw` from where it stands: a header glued onto a file
    read from the middle, so pyarrow sees an ordinary CSV."""

    def __init__(self, prefix: bytes, raw: _Readable) -> None:
        self._prefix = prefix
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size < 0 or size >= len(self._prefix):
                head, self._prefix = self._prefix, b""
                return head + self._raw.read(-1 if size < 0 else size - len(head))
            head, self._prefix = self._prefix[:size], self._prefix[size:]
            return head
        return self._raw.read(size)

    def tell(self) -> int:
        return self._raw.tell()


class _FirstBlock:
    """Reads of at most `first` bytes once, then of at most `then` bytes.

    pyarrow takes what one read returns as one block, so this is how a read restarted at
    a long record gets one large block for it and ordinary ones after: pyarrow asks for
    `first` every time, and its readahead then holds ~32 small blocks, not large ones.
    """

    def __init__(self, raw: _Readable, first: int, then: int) -> None:
        self._raw = raw
        self._limit = first
        self._then = then

    def read(self, size: int = -1) -> bytes:
        limit, self._limit = self._limit, self._then
        return self._raw.read(limit if size < 0 else min(size, limit))

    def tell(self) -> int:
        return self._raw.tell()


class _WholeCrlf:
    """A binary file whose reads never stop between a CR and the byte after it.

    pyarrow reads the file in blocks and, when a block ends in CR and the next starts with
    LF, drops that LF (taking it for a row terminator cut in two). Inside a quoted cell
    that LF is data: the cell would lose it and every later line number would be one
    short. Ending each read past any trailing CR means no block ever ends in one.
    """

    def __init__(self, raw: _Readable) -> None:
        self._raw = raw
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        while data.endswith(b"\r"):
            more = self._raw.read(1)
            if not more:
                break
            data += more
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self.closed = True


def stream_from(
    window: FileWindow, header: bytes | None, first_block: int | None, block: int
) -> _WholeCrlf:
    """What pyarrow reads: `window`, after `header` when reading from the middle, with one
    `first_block`-sized first read when restarting at a long record."""
    raw: _Readable = window if header is None else _Prefixed(header, window)
    if first_block is not None:
        raw = _FirstBlock(raw, first_block, block)
    return _WholeCrlf(raw)


def header_line(fd: int, newline: bytes) -> bytes:
    """The file's first line, with its line break (the header: it never spans lines)."""
    data = b""
    while True:
        more = os.pread(fd, _LINE_SCAN_BLOCK, len(data))
        end = (data + more).find(newline, max(len(data) - 1, 0))
        data += more
        if end >= 0 or not more:
            return data[: end + 1] if end >= 0 else data


def line_offset(fd: int, line: int, newline: bytes, *, anchor: tuple[int, int] = (0, 1)) -> int | None:
    """The byte offset where `line` (1-based) starts, counting line breaks from `anchor`,
    a known (offset, line) at or before it; None if the file has fewer lines.

    Counting line breaks in raw blocks runs at memory speed, far faster than parsing.
    """
    pos, seen = anchor  # `seen`: the line that starts at `pos`
    if line < seen:
        raise ValueError(f"line {line} is before the anchor line {seen}")
    while seen < line:
        data = os.pread(fd, _LINE_SCAN_BLOCK, pos)
        if not data:
            return None
        n = data.count(newline)
        if seen + n >= line:
            at = -1
            for _ in range(line - seen):
                at = data.index(newline, at + 1)
            return pos + at + 1
        seen += n
        pos += len(data)
    return pos


_QUOTED_CELL = re.compile(r'"(?:[^"]+|"")*"')


def ends_inside_quotes(text: str, delimiter: str) -> bool:
    """Whether the record `text` ends inside a quoted cell (pyarrow's quoting rules: a
    quote opens a cell only at its start; `""` inside is a literal quote)."""
    unquoted = re.compile(f"[^{re.escape(delimiter)}\r\n]*")
    pos, end = 0, len(text)
    while pos < end:
        if text[pos] == '"':
            match = _QUOTED_CELL.match(text, pos)
            if match is None:
                return True
            pos = match.end()
        match = unquoted.match(text, pos)
        pos = match.end() + 1 if match else pos + 1
    return False


def refuse_open_quote(
    path: Path, fd: int, delimiter: str, last_cell: str | None, last_bad: MalformedRow | None
) -> None:
    """A quote left open swallows the rest of the file into one cell; pyarrow accepts
    that at end of file. Refuse it: the file is truncated or its quoting is broken.

    `last_bad`: the malformed record the file ends in, if it does; else `last_cell`, the
    last cell of the last good record, is looked for at the end of the file.
    """
    if last_bad is not None:
        if ends_inside_quotes(last_bad.text, delimiter):
            raise SourceError(
                f"{path}: a quoted cell opened on line {last_bad.line_number} is never "
                "closed (truncated file or broken quoting)"
            )
        return
    if last_cell is None:
        return
    escaped = last_cell.replace('"', '""').encode("utf-8")
    size = os.fstat(fd).st_size
    want = len(escaped) + 2
    tail = os.pread(fd, want, max(size - want, 0))
    if not tail.endswith(escaped):
        return
    head = tail[: len(tail) - len(escaped)]
    # `<delimiter or line start>"<cell>` at EOF: the last cell's quote never closed.
    if head.endswith(b'"') and (
        len(head) == 1 or head[-2:-1] in (delimiter.encode(), b"\n", b"\r") or size < want
    ):
        raise SourceError(
            f"{path}: the last cell of the last row opens a quote that is never closed "
            "(truncated file or broken quoting)"
        )
