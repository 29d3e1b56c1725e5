"""What identifies a source file's content, and how a reader tells that the file changed
under it.

- `Fingerprint` (size, mtime, SHA-256) is what a job remembers of its source; `fingerprint()`
  computes it with a read of its own.
- `ReadTally` is what one read of a file consumed: up to which byte, where it met the end,
  and (for a scan) the SHA-256 of every byte in file order, fed as the reader consumes them,
  so the scan gives the fingerprint without a second read.
- `FileWatch` compares `os.fstat` of the open file with what the read started from
  (the scan) or with the job's fingerprint (the send pass), before each chunk is handed out.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bulkload.errors import SourceError, SourceModified

if TYPE_CHECKING:
    from hashlib import _Hash

_HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class Fingerprint:
    """What a job remembers of its source file, to refuse a changed file on resume."""

    size: int
    mtime_ns: int
    sha256: str

    def __str__(self) -> str:
        return f"sha256:{self.sha256}"

    def to_dict(self) -> dict[str, object]:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Fingerprint:
        size, mtime_ns, sha256 = d.get("size"), d.get("mtime_ns"), d.get("sha256")
        if not isinstance(size, int) or not isinstance(mtime_ns, int):
            raise ValueError(f"not a fingerprint: {dict(d)!r}")
        if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"not a fingerprint: {dict(d)!r}")
        return cls(size=size, mtime_ns=mtime_ns, sha256=sha256)

    def describe_change(self, current: Fingerprint) -> str | None:
        """None if `current` is the same file; else one human line saying what changed.

        A changed mtime alone is NOT a change: copying the file, restoring it from a backup
        or `touch` moves the mtime without changing a byte, and the rows (hence the row
        numbers the journal holds) are what matters. Size and content hash decide.
        """
        parts: list[str] = []
        if current.size != self.size:
            parts.append(f"size {self.size:,} -> {current.size:,} bytes")
        if current.sha256 != self.sha256:
            parts.append("content hash differs")
        return "; ".join(parts) if parts else None


def fingerprint(path: Path, *, chunk_size: int = _HASH_BLOCK) -> Fingerprint:
    """Size, mtime and SHA-256 of the file, read in `chunk_size` pieces (bounded memory).

    This is a read of its own; `Source.scan()` gives the same fingerprint from the read
    that also streams the rows.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return hash_file(path, fd, chunk_size=chunk_size)
    finally:
        os.close(fd)


def hash_file(path: Path, fd: int, *, chunk_size: int = _HASH_BLOCK) -> Fingerprint:
    """The fingerprint of the open file `fd` (named `path` in errors): one sequential read
    from byte 0, refused if the file changed while it was read."""
    digest = hashlib.sha256()
    try:
        before = os.fstat(fd)
        offset = 0
        while data := os.pread(fd, chunk_size, offset):
            digest.update(data)
            offset += len(data)
        after = os.fstat(fd)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or offset != after.st_size:
        raise SourceError(f"{path}: the file changed while it was being read")
    return Fingerprint(size=after.st_size, mtime_ns=after.st_mtime_ns, sha256=digest.hexdigest())


class ReadTally:
    """What one read of a file consumed, fed by the reads themselves (`saw`).

    With `hashing`, every byte from offset 0 is fed to SHA-256 once, in file order: a read
    that goes over bytes already hashed (a restart, see csv_reader) feeds only what lies
    beyond them. pyarrow reads ahead on a thread of its own, so `saw` takes a lock.
    """

    def __init__(self, *, hashing: bool = False) -> None:
        self._digest: _Hash | None = hashlib.sha256() if hashing else None
        self._lock = threading.Lock()
        self.end = 0  # the byte after the last one read
        self.eof_at: int | None = None  # where a read met the end of the file

    def saw(self, offset: int, data: bytes) -> None:
        """`data` was read at `offset` (b"": the end of the file is at `offset`)."""
        with self._lock:
            stop = offset + len(data)
            if not data:
                self.eof_at = offset
            elif self._digest is not None and stop > self.end:
                if offset > self.end:
                    # Reads only move forward from bytes already seen; a gap is a bug.
                    raise RuntimeError(f"read at byte {offset} skips bytes {self.end}..{offset}")
                self._digest.update(memoryview(data)[self.end - offset :])
            self.end = max(self.end, stop)

    def sha256(self) -> str:
        if self._digest is None:
            raise RuntimeError("this read was not hashing")
        return self._digest.hexdigest()


@dataclass(frozen=True)
class _Stat:
    size: int
    mtime_ns: int


class FileWatch:
    """Refuses to go on once the open file no longer shows the size and mtime a read
    expects: `check()` before a chunk is handed out, `check_end()` once it is all read.

    Two uses: a scan expects what `fstat` said when it started (a change is a SourceError:
    nothing was sent yet, the fingerprint would be wrong); the send pass expects the job's
    fingerprint (a change is SourceModified, exit 75).
    """

    def __init__(
        self, path: Path, fd: int, size: int, mtime_ns: int, fail: Callable[[str], Exception]
    ) -> None:
        self._path = path
        self._fd = fd
        self._want = _Stat(size, mtime_ns)
        self._fail = fail

    @classmethod
    def for_scan(cls, path: Path, fd: int) -> FileWatch:
        info = os.fstat(fd)

        def fail(change: str) -> Exception:
            return SourceError(f"{path}: the file changed while it was being read: {change}")

        return cls(path, fd, info.st_size, info.st_mtime_ns, fail)

    @classmethod
    def for_send(cls, path: Path, fd: int, expect: Fingerprint) -> FileWatch:
        def fail(change: str) -> Exception:
            return SourceModified(
                f"{path}: the file changed since the scan: {change}; stopped before any row "
                "read after the change; put the scanned file back to resume",
                path=str(path),
                change=change,
            )

        return cls(path, fd, expect.size, expect.mtime_ns, fail)

    def check_same(self, other: Fingerprint) -> None:
        now = _Stat(other.size, other.mtime_ns)
        if now != self._want:
            raise self._fail(_describe(self._want, now))

    def stat(self) -> os.stat_result:
        try:
            return os.fstat(self._fd)
        except OSError as exc:
            raise SourceError(f"{self._path}: cannot read: {exc.strerror or exc}") from None

    def check(self) -> os.stat_result:
        info = self.stat()
        now = _Stat(info.st_size, info.st_mtime_ns)
        if now != self._want:
            raise self._fail(_describe(self._want, now))
        return info

    def check_end(self, tally: ReadTally | None) -> os.stat_result:
        """At the end: the file is unchanged and the read met its end exactly at its size
        (a file cut short and grown back between two checks is caught here)."""
        info = self.check()
        if tally is not None and tally.eof_at != self._want.size:
            size = self._want.size
            if tally.eof_at is None:
                raise self._fail(f"the read did not reach the end of the file ({size:,} bytes)")
            raise self._fail(f"read {tally.eof_at:,} bytes of {size:,}")
        return info


def _describe(was: _Stat, now: _Stat) -> str:
    if was.size != now.size:
        return f"size {was.size:,} -> {now.size:,} bytes"
    spec = "seconds"
    if _when(was.mtime_ns, spec) == _when(now.mtime_ns, spec):
        spec = "microseconds"
    return f"same size, modified at {_when(now.mtime_ns, spec)}, was {_when(was.mtime_ns, spec)}"


def _when(ns: int, spec: str) -> str:
    moment = datetime.fromtimestamp(ns / 1e9, UTC)
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")
