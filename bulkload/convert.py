"""The only value conversions HubSpot needs, column by column in Arrow.

DESIGN.md section 3: CSV cells are text and are sent as written, never type-guessed. The
conversions are: datetime values (epoch ms, ISO-8601 with or without offset) become
ISO-8601 UTC with millisecond precision; typed Parquet columns become HubSpot's strings
(integers without `.0`, booleans `true`/`false`, timestamps as above).

A timestamp without a zone is read in `tz` (the job's `--timezone`, UTC by default) and
counted, so the run can say how many it read that way. A number under 10^11 given for a
datetime is epoch seconds, not milliseconds (10^11 ms is March 1973, 10^11 s the year
5138): it is refused with a hint rather than sent as a date in 1970.

The common shapes are converted by Arrow kernels, each only where it applies; what no
kernel reads goes through Python's ISO parser, value by value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from bulkload.errors import MappingError

DATETIME_TYPES = frozenset({"datetime"})
EPOCH_SECONDS_BELOW = 10**11

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_MAX_OFFSET = timedelta(hours=18)
_BAD_OFFSET = (r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
               r"[+-](?:(?:19|2\d|[3-9]\d):?\d{2}|18:?(?:0[1-9]|[1-5]\d))$")
# Already what HubSpot emits: sent through untouched.
_CANONICAL = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$"
_EPOCH_MS = r"^-?\d{1,15}$"
# Whole seconds with Z or an offset: Arrow's strptime reads these.
_OFFSET = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:?\d{2})$"
# No zone: a date, or a date and a time (minutes, seconds, a fraction).
_NAIVE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?$"


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def format_utc(dt: datetime, tz: str | None = None) -> str:
    """`2024-05-01T10:00:00.123Z`; a naive `dt` is in `tz` (UTC when None)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_zone(tz) if tz else UTC)
    dt = dt.astimezone(UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 1000:03d}Z"


def normalize_datetime(text: str, tz: str | None = None) -> str | None:
    """Epoch ms or ISO-8601 (with or without offset) -> ISO-8601 UTC, ms precision; None if unreadable."""
    s = text.strip()
    if s.lstrip("-").isdigit() and len(s.lstrip("-")) <= 15:
        try:
            return format_utc(_EPOCH + timedelta(milliseconds=int(s)))
        except OverflowError:
            return None
    try:
        return format_utc(datetime.fromisoformat(s), tz)
    except (ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class Datetimes:
    """A converted datetime column: the values to send (null where none), and masks."""

    values: pa.Array  # string: ISO-8601 UTC, or null (empty, or bad)
    bad: pa.Array  # bool: a value no parser reads (or epoch seconds)
    seconds: pa.Array  # bool: of the bad, those that look like epoch seconds
    naive: pa.Array  # bool: read in the job's time zone (it had none)


def _format_ms(ts: pa.Array) -> pa.Array:
    """ms timestamps (UTC) as `2024-05-01T10:00:00.123Z`.

    Casting a naive timestamp to text is several times faster than a zoned one.
    """
    naive = pc.cast(ts, pa.timestamp("ms"))
    text = pc.utf8_replace_slice(pc.cast(naive, pa.string()), 10, 11, "T")
    return pc.binary_join_element_wise(text, pa.scalar("Z"), "")


def _where(values: pa.Array, mask: pa.Array, convert: Callable[[], pa.Array]) -> pa.Array:
    """Replace the masked values by `convert()` (which sees only those), converting only those."""
    if not pc.any(mask).as_py():
        return values
    return pc.replace_with_mask(values, mask, convert())


def _matches(text: pa.Array, pattern: str) -> pa.Array:
    return pc.fill_null(pc.match_substring_regex(text, pattern), False)


def _from_naive(text: pa.Array, tz: str | None) -> pa.Array:
    """Zone-less ISO text read in `tz`; null where Arrow cannot read it (Python will try)."""
    iso = pc.replace_substring(text, " ", "T", max_replacements=1)
    try:
        ts = pc.cast(iso, pa.timestamp("ns"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.nulls(len(text), pa.string())
    return _format_ms(localize(ts, tz))


def localize(ts: pa.Array, tz: str | None) -> pa.Array:
    """Naive wall-clock timestamps read in `tz`, as timestamp[ms, UTC].

    As Python's zoneinfo reads them (fold=0): a time the clocks skipped (02:30 on a
    spring-forward night) keeps its minutes at the offset before the change, a time that
    happens twice (the autumn hour) is its first occurrence. Arrow's own options would
    move a skipped time to the edge of the gap, so those few go through Python.
    """
    zone = tz or "UTC"
    early = pc.assume_timezone(ts, timezone=zone, ambiguous="earliest", nonexistent="earliest")
    late = pc.assume_timezone(ts, timezone=zone, ambiguous="earliest", nonexistent="latest")
    out = pc.cast(early, pa.timestamp("ms", tz="UTC"), safe=False)
    skipped = pc.fill_null(pc.not_equal(early, late), False)
    if not pc.any(skipped).as_py():
        return out
    values = out.to_pylist()
    walls = pc.cast(ts, pa.timestamp("us")).to_pylist()
    zone_info = _zone(zone)
    for i in pc.indices_nonzero(skipped).to_pylist():
        values[i] = walls[i].replace(tzinfo=zone_info).astimezone(UTC)
    return pa.array(values, pa.timestamp("ms", tz="UTC"))


def datetimes(arr: pa.Array, tz: str | None = None) -> Datetimes:
    """Convert a text column of datetimes (see the module docstring)."""
    text = pc.utf8_trim_whitespace(arr)
    present = pc.fill_null(pc.greater(pc.utf8_length(text), 0), False)
    # Arrow's strptime rolls 30 February over into March: only fields that print back
    # the same are a real date and time, and only those go through the kernels below.
    real = _real_fields(text)
    is_canonical = pc.and_(_matches(text, _CANONICAL), real)
    is_epoch = _matches(text, _EPOCH_MS)
    seconds = pa.array([False] * len(text), pa.bool_())
    # What no reader of HubSpot's takes: an offset beyond +/-18:00 (Java's limit), an epoch
    # outside years 1-9999. Refused, never rewritten into something plausible.
    refused = _matches(text, _BAD_OFFSET)
    if pc.any(is_epoch).as_py():
        as_int = pc.cast(pc.if_else(is_epoch, text, pa.scalar("0")), pa.int64())
        seconds = pc.and_(is_epoch, pc.less(pc.abs(as_int), EPOCH_SECONDS_BELOW))
        beyond = pc.and_(is_epoch, pc.or_(pc.greater(as_int, _LAST_MS), pc.less(as_int, _FIRST_MS)))
        refused = pc.or_(refused, beyond)
        is_epoch = pc.and_(is_epoch, pc.invert(pc.or_(seconds, beyond)))
    is_canonical = pc.and_(is_canonical, pc.invert(refused))
    is_offset = pc.and_(pc.and_(_matches(text, _OFFSET), pc.invert(is_canonical)),
                        pc.and_(real, pc.invert(refused)))
    is_naive = pc.and_(_matches(text, _NAIVE), real)
    out = pc.if_else(is_canonical, text, pa.scalar(None, pa.string()))
    out = _where(out, is_epoch, lambda: _format_ms(
        pc.cast(pc.cast(pc.filter(text, is_epoch), pa.int64()), pa.timestamp("ms", tz="UTC"))))
    out = _where(out, is_offset, lambda: _format_ms(pc.strptime(
        pc.replace_substring(pc.filter(text, is_offset), " ", "T", max_replacements=1),
        format="%Y-%m-%dT%H:%M:%S%z", unit="ms", error_is_null=True)))
    out = _where(out, is_naive, lambda: _from_naive(pc.filter(text, is_naive), tz))
    naive = pc.and_(is_naive, pc.is_valid(out))
    refused = pc.or_(refused, seconds)
    leftover = pc.and_(pc.and_(pc.is_null(out), present), pc.invert(refused))
    bad = refused
    if pc.any(leftover).as_py():
        # Shapes no kernel read (fractions with an offset, week dates, ...): Python's parser.
        values = out.to_pylist()
        originals = arr.to_pylist()
        bad_list = bad.to_pylist()
        naive_list = naive.to_pylist()
        for i in pc.indices_nonzero(leftover).to_pylist():
            got = _python_datetime(originals[i], tz)
            if got is None:
                bad_list[i] = True
            else:
                values[i], naive_list[i] = got
        out = pa.array(values, pa.string())
        bad, naive = pa.array(bad_list, pa.bool_()), pa.array(naive_list, pa.bool_())
    return Datetimes(out, bad, seconds, naive)


# Days in each month of a common year (index 1..12); February gains one in leap years.
_MONTH_DAYS = pa.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], pa.int32())


def _real_fields(text: pa.Array) -> pa.Array:
    """Whether a value's leading `YYYY-MM-DD` (and `THH:MM:SS`, when it has one) is a real
    date and time; values of other shapes pass (the parsers judge them). Arithmetic on
    the digits, a few kernels for the whole column."""
    has_date = pc.fill_null(pc.match_substring_regex(text, r"^\d{4}-\d{2}-\d{2}"), False)
    if not pc.any(has_date).as_py():
        return pa.array([True] * len(text), pa.bool_())

    def field(start: int, stop: int, where: pa.Array) -> pa.Array:
        return pc.cast(pc.if_else(where, pc.utf8_slice_codeunits(text, start, stop), pa.scalar("0")), pa.int32())

    year, month, day = field(0, 4, has_date), field(5, 7, has_date), field(8, 10, has_date)
    month_ok = pc.and_(pc.greater_equal(month, 1), pc.less_equal(month, 12))
    leap = pc.and_(pc.equal(pc.bit_wise_and(year, 3), 0),
                   pc.or_(pc.not_equal(pc.remainder(year, 100), 0), pc.equal(pc.remainder(year, 400), 0)))
    last = pc.add(pc.take(_MONTH_DAYS, pc.if_else(month_ok, month, 0)),
                  pc.cast(pc.and_(leap, pc.equal(month, 2)), pa.int32()))
    ok = pc.and_(month_ok, pc.and_(pc.greater_equal(day, 1), pc.less_equal(day, last)))
    has_clock = pc.fill_null(pc.match_substring_regex(text, r"^.{10}[T ]\d{2}:\d{2}:\d{2}"), False)
    if pc.any(has_clock).as_py():
        clock_ok = pc.and_(pc.and_(pc.less(field(11, 13, has_clock), 24), pc.less(field(14, 16, has_clock), 60)),
                           pc.less(field(17, 19, has_clock), 60))
        ok = pc.and_(ok, pc.or_(pc.invert(has_clock), clock_ok))
    return pc.or_(pc.invert(has_date), ok)


def _python_datetime(text: str, tz: str | None) -> tuple[str, bool] | None:
    s = text.strip()
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    offset = dt.utcoffset()
    if offset is not None and abs(offset) > _MAX_OFFSET:
        return None
    try:
        return format_utc(dt, tz), dt.tzinfo is None
    except (ValueError, OverflowError):
        return None


def typed_to_strings(arr: pa.Array, prop_type: str, tz: str | None = None) -> tuple[pa.Array, int]:
    """A typed (Parquet) column as the strings HubSpot expects, and how many of its
    timestamps had no zone (read in `tz`)."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return arr, 0
    if pa.types.is_timestamp(t):
        naive = 0
        if t.tz is None:
            naive = len(arr) - arr.null_count
            arr = localize(arr, tz)
        ms = pc.cast(arr, pa.timestamp("ms", tz="UTC"), safe=False)
        # Arrow prints "2024-05-01 10:00:00.000Z"; HubSpot wants the "T".
        return pc.replace_substring(pc.cast(ms, pa.string()), " ", "T", max_replacements=1), naive
    if pa.types.is_date(t):
        as_text = pc.cast(arr, pa.string())
        if prop_type in DATETIME_TYPES:
            # A date is midnight where the job's zone says, as the same date in a CSV is.
            midnight = localize(pc.cast(pc.cast(arr, pa.date32()), pa.timestamp("ms")), tz)
            return _format_ms(midnight), len(arr) - arr.null_count
        return as_text, 0
    if pa.types.is_floating(t):
        # An integral float is an integer written by a tool that had a gap in the column
        # (pandas): sent as one. Arrow would print 1.7145576e+12 from 10^10 on.
        whole = pc.and_(pc.equal(pc.floor(arr), arr), pc.less_equal(pc.abs(arr), 2.0**53))
        as_int = pc.cast(pc.if_else(whole, arr, pa.scalar(0.0, t)), pa.int64())
        return pc.if_else(pc.fill_null(whole, False), pc.cast(as_int, pa.string()), pc.cast(arr, pa.string())), 0
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        # Arrow prints booleans as "true"/"false", as HubSpot wants.
        return pc.cast(arr, pa.string()), 0
    raise MappingError(f"column type {t} cannot be sent as a HubSpot property value")


def sendable(t: pa.DataType) -> bool:
    """Whether a (Parquet) column type has a HubSpot string form."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_timestamp(t) or pa.types.is_date(t)
        or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)
        or pa.types.is_null(t)
    )
