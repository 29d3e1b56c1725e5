"""Columns -> HubSpot properties: which column feeds which property, and the
value conversions HubSpot needs (and nothing more).

DESIGN.md section 3: CSV cells are text and are sent as written (never
type-guessed); datetime values become ISO-8601 UTC with at most millisecond
precision; typed Parquet columns become HubSpot's strings; an empty cell or a
null leaves the property out of that input. Local checks fail a row only where
HubSpot certainly would (an id-less row, a datetime no parser can read, a value
over HubSpot's 65,536-character cap), so no quota is spent on them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bulkload.errors import MappingError, SourceError
from bulkload.models import FailedRow, Problem
from bulkload.source import SourceChunk
from bulkload.taxonomy import ErrorType

MAX_VALUE_LENGTH = 65_536
DATETIME_TYPES = frozenset({"datetime"})

# Already what HubSpot emits: sent through untouched, skipping the Python parser.
_CANONICAL_DATETIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$"
_EPOCH_MS = re.compile(r"-?\d{1,15}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PropertyInfo:
    name: str
    type: str  # HubSpot's: string, number, datetime, date, enumeration, bool, phone_number
    has_unique_value: bool = False
    options: frozenset[str] | None = None


# Used when the properties API cannot be read (no schema scope): enough to know
# which values are datetimes. HubSpot's own answer replaces it when available.
FALLBACK_TYPES: dict[str, str] = {
    "hs_timestamp": "datetime",
    "hs_createdate": "datetime",
    "hs_lastmodifieddate": "datetime",
    "hs_call_duration": "number",
}


@dataclass(frozen=True)
class Schema:
    properties: dict[str, PropertyInfo]
    from_api: bool = True

    @classmethod
    def from_api_properties(cls, items: Iterable[Mapping[str, Any]]) -> Schema:
        props: dict[str, PropertyInfo] = {}
        for p in items:
            name = str(p.get("name", ""))
            if not name:
                continue
            options = p.get("options")
            props[name] = PropertyInfo(
                name=name,
                type=str(p.get("type", "string")),
                has_unique_value=bool(p.get("hasUniqueValue", False)),
                options=frozenset(str(o.get("value")) for o in options)
                if isinstance(options, list) and options
                else None,
            )
        return cls(props)

    @classmethod
    def fallback(cls) -> Schema:
        return cls({n: PropertyInfo(n, t) for n, t in FALLBACK_TYPES.items()}, from_api=False)

    def type_of(self, name: str) -> str:
        info = self.properties.get(name)
        if info is not None:
            return info.type
        return FALLBACK_TYPES.get(name, "string")

    def types(self) -> dict[str, str]:
        out = dict(FALLBACK_TYPES)
        out.update({n: p.type for n, p in self.properties.items()})
        return out


@dataclass(frozen=True)
class ColumnMap:
    """Which source column feeds which property; `id_column` supplies the id."""

    pairs: tuple[tuple[str, str], ...]  # (source column, property), file order
    id_column: str
    id_property: str

    @property
    def property_pairs(self) -> tuple[tuple[str, str], ...]:
        """The pairs sent in `properties` (the id travels in `id`, not twice)."""
        return tuple((c, p) for c, p in self.pairs if c != self.id_column)

    def check_against(self, schema: Schema, object_type: str = "the object") -> None:
        """Refuse (exit 2, nothing sent) an id property HubSpot cannot upsert by, or a
        mapped property that does not exist: either would fail every row."""
        if not schema.from_api:
            return
        info = schema.properties.get(self.id_property)
        if info is None:
            raise MappingError(f"the id property {self.id_property!r} does not exist on {object_type}")
        if not info.has_unique_value:
            raise MappingError(
                f"the id property {self.id_property!r} is not a unique-value property (hasUniqueValue=false); "
                "HubSpot upserts only by unique properties"
            )
        unknown = [f"{c} -> {p}" if c != p else c for c, p in self.pairs if p not in schema.properties]
        if unknown:
            raise MappingError(
                f"no such {(len(unknown) > 1 and 'properties') or 'property'} on the object: "
                f"{', '.join(unknown)}. Map with --column SRC=PROP, or drop with --column SRC="
            )


def resolve_columns(
    source_columns: Sequence[str], id_property: str, overrides: Mapping[str, str]
) -> ColumnMap:
    """Same-named properties by default; overrides rename (`SRC=PROP`) or drop (`SRC=`)."""
    missing = [c for c in overrides if c not in source_columns]
    if missing:
        raise MappingError(
            f"unknown column{'s' if len(missing) > 1 else ''} in mapping: {', '.join(missing)} "
            f"(the file has: {', '.join(source_columns)})"
        )
    pairs: list[tuple[str, str]] = []
    for col in source_columns:
        prop = overrides.get(col, col)
        if prop:
            pairs.append((col, prop))
    targets = [p for _, p in pairs]
    dupes = sorted({p for p in targets if targets.count(p) > 1})
    if dupes:
        raise MappingError(f"several columns map to the same property: {', '.join(dupes)}")
    id_cols = [c for c, p in pairs if p == id_property]
    if not id_cols:
        hint = f"use --column SRC={id_property}"
        if len(source_columns) == 1 and any(d in source_columns[0] for d in ";|\t"):
            hint = "the file looks separated by something else than the delimiter used; pass --delimiter"
        raise SourceError(f"no id column: no column maps to the id property {id_property!r} ({hint})")
    return ColumnMap(tuple(pairs), id_cols[0], id_property)


@dataclass
class MappedChunk:
    """One source chunk, mapped: for each table row its id, properties or local failure.

    A failure lists every problem the checks found in its row, not only the first.
    """

    chunk: SourceChunk
    row_numbers: list[int]
    line_numbers: list[int | None]
    ids: list[str | None]
    properties: list[dict[str, str] | None]  # None where the row failed locally
    failures: dict[int, FailedRow] = field(default_factory=dict)  # table index -> failure


def local_failure(problems: list[Problem]) -> FailedRow:
    """A row refused before sending, with every problem found (the first one leads)."""
    first = problems[0]
    return FailedRow(first.error_type, first.message, first.property_name, first.invalid_value, origin="local",
                     problems=tuple(problems) if len(problems) > 1 else ())


def format_utc(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # a naive timestamp is taken as UTC (documented)
    dt = dt.astimezone(UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 1000:03d}Z"


def normalize_datetime(text: str) -> str | None:
    """Epoch ms or ISO-8601 (with or without offset) -> ISO-8601 UTC, ms precision; None if unreadable."""
    s = text.strip()
    if _EPOCH_MS.fullmatch(s):
        try:
            return format_utc(_EPOCH + timedelta(milliseconds=int(s)))
        except OverflowError:
            return None
    try:
        return format_utc(datetime.fromisoformat(s))
    except ValueError:
        return None


_EPOCH_RE = r"^-?\d{1,15}$"
# Whole seconds with Z or an offset: Arrow's strptime reads these without Python.
_OFFSET_RE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:?\d{2})$"


def _format_ms(ts: pa.Array) -> pa.Array:
    """ms timestamps (UTC) as `2024-05-01T10:00:00.123Z`.

    Casting a naive timestamp to text is several times faster than a zoned one.
    """
    naive = pc.cast(ts, pa.timestamp("ms"))
    text = pc.utf8_replace_slice(pc.cast(naive, pa.string()), 10, 11, "T")
    return pc.binary_join_element_wise(text, pa.scalar("Z"), "")


def _convert_where(values: pa.Array, mask: pa.Array, convert: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """Replace the masked values by `convert` of them, converting only those."""
    if not pc.any(mask).as_py():
        return values
    return pc.replace_with_mask(values, mask, convert(pc.filter(values, mask)))


def _from_epoch(text: pa.Array) -> pa.Array:
    return _format_ms(pc.cast(pc.cast(text, pa.int64()), pa.timestamp("ms", tz="UTC")))


def _from_offset(text: pa.Array) -> pa.Array:
    iso = pc.replace_substring(text, " ", "T", max_replacements=1)
    return _format_ms(pc.strptime(iso, format="%Y-%m-%dT%H:%M:%S%z", unit="ms", error_is_null=True))


def _datetime_strings(arr: pa.Array) -> tuple[list[str | None], dict[int, str]]:
    """Converted values and {index: original} for the values no parser can read.

    The common shapes (canonical, epoch ms, whole seconds with an offset) are
    converted by Arrow, each only where it applies; the rest go through
    Python's ISO parser.
    """
    text = pc.utf8_trim_whitespace(arr)
    is_canonical = pc.fill_null(pc.match_substring_regex(text, _CANONICAL_DATETIME), False)
    is_epoch = pc.fill_null(pc.match_substring_regex(text, _EPOCH_RE), False)
    is_offset = pc.and_(pc.fill_null(pc.match_substring_regex(text, _OFFSET_RE), False), pc.invert(is_canonical))
    converted = pc.if_else(is_canonical, text, pa.scalar(None, pa.string()))
    converted = _convert_where(converted, is_epoch, lambda _: _from_epoch(pc.filter(text, is_epoch)))
    converted = _convert_where(converted, is_offset, lambda _: _from_offset(pc.filter(text, is_offset)))
    values: list[str | None] = converted.to_pylist()
    leftover = pc.and_(pc.is_null(converted), pc.fill_null(pc.greater(pc.utf8_length(text), 0), False))
    bad: dict[int, str] = {}
    if pc.any(leftover).as_py():
        originals = arr.to_pylist()
        for i in pc.indices_nonzero(leftover).to_pylist():
            original = originals[i]
            value = normalize_datetime(original)
            if value is None:
                bad[i] = original
            values[i] = value
    return values, bad


def typed_to_strings(arr: pa.Array, prop_type: str) -> pa.Array:
    """A typed (Parquet) column as the strings HubSpot expects."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return arr
    if pa.types.is_timestamp(t):
        if t.tz is None:
            arr = pc.assume_timezone(arr, "UTC")  # naive timestamps are taken as UTC
        ms = pc.cast(arr, pa.timestamp("ms", tz="UTC"), safe=False)
        # Arrow prints "2024-05-01 10:00:00.000Z"; HubSpot wants the "T".
        return pc.replace_substring(pc.cast(ms, pa.string()), " ", "T", max_replacements=1)
    if pa.types.is_date(t):
        as_text = pc.cast(arr, pa.string())
        if prop_type in DATETIME_TYPES:
            return pc.binary_join_element_wise(as_text, pa.scalar("T00:00:00.000Z"), "")
        return as_text
    if (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)  # Arrow casts to "true"/"false", as HubSpot wants
        or pa.types.is_decimal(t)
    ):
        # Arrow prints integral floats without ".0" (120000.0 -> "120000").
        return pc.cast(arr, pa.string())
    raise MappingError(f"column type {t} cannot be sent as a HubSpot property value")


def check_column_types(schema: pa.Schema, column_map: ColumnMap) -> None:
    """Refuse up front a Parquet column whose type has no HubSpot string form."""
    for col, _ in column_map.pairs:
        t = schema.field(col).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        ok = (
            pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_timestamp(t)
            or pa.types.is_date(t)
            or pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_boolean(t)
            or pa.types.is_decimal(t)
            or pa.types.is_null(t)
        )
        if not ok:
            raise MappingError(f"column {col!r} has type {t}, which cannot be sent as a property value")


def _column_values(
    arr: pa.Array, prop: str, prop_type: str
) -> tuple[list[str | None], dict[int, str], list[int]]:
    """A column as Python strings, with {index: original} of unreadable datetimes and
    the indices of values over HubSpot's length cap (checked in Arrow, not per value)."""
    if pa.types.is_null(arr.type):
        return [None] * len(arr), {}, []
    arr = typed_to_strings(arr, prop_type)
    if prop_type in DATETIME_TYPES:
        values, bad = _datetime_strings(arr)
        return values, bad, []
    too_long = pc.fill_null(pc.greater(pc.utf8_length(arr), MAX_VALUE_LENGTH), False)
    long_rows = pc.indices_nonzero(too_long).to_pylist() if pc.any(too_long).as_py() else []
    return arr.to_pylist(), {}, long_rows


def id_strings(arr: pa.Array) -> pa.Array:
    """The id column as text (a typed Parquet id becomes its string; an all-null column, nulls)."""
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.string())
    return typed_to_strings(arr, "string")


def has_id(ids: pa.Array) -> pa.Array:
    """True where a row has a usable id: not null and not blank (whitespace is no id).

    The one test of "this row has an id": the scan and the mapping both use it.
    """
    present = pc.and_kleene(pc.is_valid(ids), pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(ids)), 0))
    return pc.fill_null(present, False)


def map_chunk(chunk: SourceChunk, column_map: ColumnMap, schema: Schema) -> MappedChunk:
    """Map every row of a chunk; rows that cannot be sent get a FailedRow with every problem found."""
    table = chunk.table
    n = table.num_rows
    ids_arr = id_strings(table.column(column_map.id_column))
    ids: list[str | None] = ids_arr.to_pylist()
    problems: dict[int, list[Problem]] = {}

    names: list[str] = []
    columns: list[list[str | None]] = []
    for col, prop in column_map.property_pairs:
        prop_type = schema.type_of(prop)
        values, bad, long_rows = _column_values(table.column(col), prop, prop_type)
        for i, original in bad.items():
            problems.setdefault(i, []).append(Problem(
                ErrorType.INVALID_TIMESTAMP,
                f"{original} was not a valid datetime for {prop}: use epoch milliseconds or ISO-8601",
                prop, original))
        for i in long_rows:
            v = values[i] or ""
            problems.setdefault(i, []).append(Problem(
                ErrorType.VALUE_TOO_LONG,
                f"{prop} is {len(v):,} characters long; HubSpot's limit is {MAX_VALUE_LENGTH:,}",
                prop, v[:200]))
        names.append(prop)
        columns.append(values)

    present = has_id(ids_arr)
    no_id = pc.indices_nonzero(pc.invert(present)).to_pylist() if not pc.all(present).as_py() else []
    for i in no_id:
        problems.setdefault(i, []).insert(0, Problem(
            ErrorType.MISSING_ID_VALUE, f"the id column {column_map.id_column!r} is empty",
            column_map.id_property, ids[i] or ""))
        ids[i] = None  # a blank id is no id: such rows are each their own record
    failures = {i: local_failure(found) for i, found in problems.items()}

    # Empty or null: the property is left out of that input.
    properties: list[dict[str, str] | None] = (
        [{k: v for k, v in zip(names, row, strict=True) if v} for row in zip(*columns, strict=True)]
        if columns
        else [{} for _ in range(n)]
    )
    for i in failures:
        properties[i] = None
    line_numbers: list[int | None] = (
        chunk.line_numbers.to_pylist() if chunk.line_numbers is not None else [None] * n
    )
    return MappedChunk(
        chunk=chunk,
        row_numbers=chunk.row_numbers.to_pylist(),
        line_numbers=line_numbers,
        ids=ids,
        properties=properties,
        failures=failures,
    )


def row_data(table: pa.RecordBatch | pa.Table, index: int) -> dict[str, Any]:
    """The original source values of one row, JSON-ready, for the failed-rows report."""
    out: dict[str, Any] = {}
    for name, col in zip(table.schema.names, table.columns, strict=True):
        v = col[index].as_py()
        if isinstance(v, datetime):
            v = format_utc(v)
        elif v is not None and not isinstance(v, str | int | float | bool):
            v = str(v)
        out[name] = v
    return out
