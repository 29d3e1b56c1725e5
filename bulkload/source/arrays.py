"""Small Arrow helpers the readers share: cached integer ranges, concatenation, and the
one-line text of a pyarrow error."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

EMPTY_INT64 = pa.array([], pa.int64())

_RANGE: list[pa.Array] = [pa.array([], pa.int64())]


def arange(start: int, n: int) -> pa.Array:
    """int64 start, start+1, ..., start+n-1, from a cached range (no Python loop per row)."""
    if len(_RANGE[0]) < n:
        size = max(n, 1 << 17)
        _RANGE[0] = pa.array(range(size), pa.int64())
    return pc.add(_RANGE[0].slice(0, n), start)


def ones(n: int) -> pa.Array:
    return pc.add(pc.multiply(arange(0, n), 0), 1)


def concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    return batches[0] if len(batches) == 1 else pa.concat_batches(batches)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
