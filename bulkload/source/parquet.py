"""The Parquet reader: a Parquet file in record batches of its own types, rows numbered 1..N.

pyarrow reads a Parquet file by column chunks (only the selected columns, out of order:
the footer first), so its reads cannot feed a hash in file order the way the CSV reader's
do. A scan here therefore streams the rows, then hashes the file with one sequential
read of the same open file (Parquet is compact: that read is a fraction of the decode).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bulkload.errors import SourceError
from bulkload.source.arrays import arange, first_line
from bulkload.source.fingerprint import FileWatch, Fingerprint, hash_file
from bulkload.source.records import Source, SourceChunk, SourceScan, StartAt
from bulkload.source.sniff import check_names


class ParquetSource(Source):
    """A Parquet file; its columns keep their types."""

    def __init__(self, path: Path, columns: list[str], num_rows: int) -> None:
        super().__init__(path, "parquet", columns)
        self._num_rows = num_rows

    @property
    def num_rows_hint(self) -> int | None:
        return self._num_rows

    def chunks(
        self,
        columns: Sequence[str] | None = None,
        *,
        rows_per_chunk: int = 65_536,
        start: StartAt | None = None,
        expect: Fingerprint | None = None,
    ) -> Iterator[SourceChunk]:
        """Stream the rows, at most `rows_per_chunk` per chunk, row numbers 1..N. With
        `expect`, see `Source.chunks` (the end check is the file's size: pyarrow reads by
        column chunk, not to the end).

        `start` is accepted and ignored: Parquet batches are cheap to skip by the caller.
        """

        def watch(f: pa.NativeFile) -> FileWatch | None:
            return None if expect is None else FileWatch.for_send(self.path, f.fileno(), expect)

        yield from self._read(columns, rows_per_chunk, watch)

    def scan(self, columns: Sequence[str] | None = None, *, rows_per_chunk: int = 65_536) -> SourceScan:
        """Stream the rows, then hash the file with one sequential read (see the module doc)."""

        def run(done: Callable[[Fingerprint], None]) -> Iterator[SourceChunk]:
            def watch(f: pa.NativeFile) -> FileWatch:
                return FileWatch.for_scan(self.path, f.fileno())

            yield from self._read(columns, rows_per_chunk, watch, hashed=done)

        return SourceScan(run)

    def _read(
        self,
        columns: Sequence[str] | None,
        rows_per_chunk: int,
        make_watch: Callable[[pa.NativeFile], FileWatch | None],
        hashed: Callable[[Fingerprint], None] | None = None,
    ) -> Generator[SourceChunk, None, os.stat_result | None]:
        selected = self._selected(columns, rows_per_chunk)
        next_row = 1
        try:
            f = pa.OSFile(str(self.path))
        except (pa.ArrowException, OSError) as exc:
            raise SourceError(f"{self.path}: cannot read: {first_line(exc)}") from None
        watch: FileWatch | None = None
        try:
            watch = make_watch(f)
            # Stream column chunks (no pre-buffering of whole row groups, reads of 1 MiB)
            # and decode on this thread: about half the peak memory, no slower.
            with pq.ParquetFile(f, pre_buffer=False, buffer_size=1 << 20) as pf:
                batches = pf.iter_batches(batch_size=rows_per_chunk, columns=selected, use_threads=False)
                for batch in batches:
                    n = int(batch.num_rows)
                    if n == 0:
                        continue
                    if watch is not None:
                        watch.check()
                    yield SourceChunk(table=batch, row_numbers=arange(next_row, n), line_numbers=None)
                    next_row += n
            final = watch.check_end(None) if watch is not None else None
            if hashed is not None:
                result = hash_file(self.path, f.fileno())
                if watch is not None:
                    watch.check_same(result)  # the file hashed is the file streamed
                hashed(result)
            return final
        except (pa.ArrowException, OSError) as exc:
            if watch is not None:
                watch.check()  # a file rewritten under the reader: say so, not what broke
            raise SourceError(
                f"{self.path}: cannot read Parquet data after row {next_row - 1:,}: {first_line(exc)}"
            ) from None
        finally:
            f.close()


def open_parquet(path: Path) -> ParquetSource:
    try:
        with pq.ParquetFile(path) as pf:
            names = list(pf.schema_arrow.names)
            num_rows = int(pf.metadata.num_rows)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(
            f"{path}: not a readable Parquet file (truncated or corrupt?): {first_line(exc)}"
        ) from None
    check_names(path, [str(n) for n in names])
    return ParquetSource(path, names, num_rows)
