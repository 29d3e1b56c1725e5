"""Columns -> HubSpot properties: which column feeds which property, and the
value conversions HubSpot needs (and nothing more).

DESIGN.md section 3: CSV cells are text and are sent as written (never
type-guessed); datetime values become ISO-8601 UTC with at most millisecond
precision; typed Parquet columns become HubSpot's strings; an empty cell or a
null leaves the property out of that input. Local checks fail a row only where
HubSpot certainly would (an id-less row, a datetime no parser can read, and what the
portal's schema refuses: see checks.py), so no quota is spent on them; a row's failure
lists every problem found, not only the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from bulkload.checks import Owners, PropertyInfo, check_column, not_emails
from bulkload.convert import DATETIME_TYPES, datetimes, format_utc, sendable, typed_to_strings
from bulkload.errors import MappingError, SourceError
from bulkload.models import FailedRow, Problem, Target
from bulkload.objects import FALLBACK_TYPES, default_properties, keys_without_unique_value
from bulkload.source import SourceChunk
from bulkload.taxonomy import ErrorType

# Already what HubSpot emits: sent through untouched, skipping the Python parser.



SchemaSource = Literal["portal", "kept", "defaults", "types"]


@dataclass(frozen=True)
class Schema:
    """An object's properties, and where they come from: the portal (`portal`), the copy
    an earlier run kept (`kept`), HubSpot's defaults bulkload knows (`defaults`), or only
    which names are datetimes (`types`). Unknown columns are refused only when the
    portal (or its kept copy) says what exists."""

    properties: dict[str, PropertyInfo]
    source: SchemaSource = "portal"
    # The portal's owners, when the mapping sends an owner property and they could be read.
    owners: Owners | None = None

    @property
    def from_api(self) -> bool:
        return self.source in ("portal", "kept")

    @classmethod
    def from_api_properties(cls, items: Iterable[Mapping[str, Any]], object_type: str = "",
                            source: SchemaSource = "portal") -> Schema:
        props = {info.name: info for info in (PropertyInfo.from_api(p, object_type) for p in items) if info.name}
        return cls(props, source)

    @classmethod
    def fallback(cls) -> Schema:
        """When the portal may not be asked (403): only which properties are datetimes;
        every other check is left to HubSpot (the portal may have options of its own)."""
        return cls({n: PropertyInfo(n, t) for n, t in FALLBACK_TYPES.items()}, source="types")

    @classmethod
    def offline(cls, object_type: str) -> Schema:
        """A dry run without a portal: HubSpot's default properties of the object where
        bulkload knows them (objects.py), else the fallback."""
        defaults = default_properties(object_type)
        if defaults is not None:
            schema = cls.from_api_properties(defaults, object_type, source="defaults")
            return cls(schema.properties, schema.source, Owners.unknown())  # an owner's e-mail may be anyone's
        return cls.fallback()

    def type_of(self, name: str) -> str:
        info = self.properties.get(name)
        if info is not None:
            return info.type
        return FALLBACK_TYPES.get(name, "string")

    def types(self) -> dict[str, str]:
        out = dict(FALLBACK_TYPES)
        out.update({n: p.type for n, p in self.properties.items()})
        return out

    def info(self, name: str) -> PropertyInfo:
        return self.properties.get(name) or PropertyInfo(name, self.type_of(name))


@dataclass(frozen=True)
class ColumnMap:
    """Which source column feeds which property; `id_column` supplies the id."""

    pairs: tuple[tuple[str, str], ...]  # (source column, property), file order
    id_column: str
    id_property: str
    # Ids HubSpot matches whatever their case (contacts by email): trimmed and lower-cased,
    # so that `A@x.com` and `a@x.com` are one record to the scan, the batches and HubSpot.
    fold_ids: bool = False

    def ids_of(self, table: pa.RecordBatch | pa.Table) -> pa.Array:
        """The id of each row, as text, as it is sent."""
        ids = id_strings(table.column(self.id_column))
        return pc.utf8_lower(pc.utf8_trim_whitespace(ids)) if self.fold_ids else ids

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
        if not info.has_unique_value and not keys_without_unique_value(object_type, self.id_property):
            raise MappingError(
                f"the id property {self.id_property!r} is not a unique-value property (hasUniqueValue=false); "
                "HubSpot upserts only by unique properties"
            )
        unknown = [f"{c} -> {p}" if c != p else c for c, p in self.pairs if p not in schema.properties]
        if unknown:
            # A column of e-mails is most often the contacts a call belongs to.
            emails = [c for c, p in self.pairs if p not in schema.properties and "email" in c.lower()]
            hint = f"; to associate each record with the contacts it names: --associate {emails[0]}=contacts.email" \
                if emails else ""
            raise MappingError(
                f"no such {(len(unknown) > 1 and 'properties') or 'property'} on the object: "
                f"{', '.join(unknown)}. Map with --column SRC=PROP, or drop with --column SRC={hint}"
            )


def resolve_columns(
    source_columns: Sequence[str], id_property: str, overrides: Mapping[str, str],
    associations: Sequence[Target] = (), object_type: str = "",
) -> ColumnMap:
    """Same-named properties by default; overrides rename (`SRC=PROP`) or drop (`SRC=`).
    An association column is not a property: it only names the records to associate."""
    linked = {t.column for t in associations}
    missing = [c for c in [*overrides, *linked] if c not in source_columns]
    if missing:
        raise MappingError(
            f"unknown column{'s' if len(missing) > 1 else ''} in mapping: {', '.join(missing)} "
            f"(the file has: {', '.join(source_columns)})"
        )
    pairs: list[tuple[str, str]] = []
    for col in source_columns:
        prop = overrides.get(col, col)
        if prop and col not in linked:
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
    return ColumnMap(tuple(pairs), id_cols[0], id_property,
                     fold_ids=bool(object_type) and keys_without_unique_value(object_type, id_property))


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
    naive_rows: list[int] = field(default_factory=list)  # rows with a timestamp that had no zone
    links: list[list[tuple[int, str]]] | None = None  # per row: (target, value) to associate
    id_array: pa.Array | None = None  # the ids as Arrow (blank ids as they were)


def local_failure(problems: list[Problem]) -> FailedRow:
    """A row refused before sending, with every problem found (the first one leads)."""
    first = problems[0]
    return FailedRow(first.error_type, first.message, first.property_name, first.invalid_value, origin="local",
                     problems=tuple(problems) if len(problems) > 1 else ())


def check_column_types(schema: pa.Schema, column_map: ColumnMap) -> None:
    """Refuse up front a Parquet column whose type has no HubSpot string form."""
    for col, _ in column_map.pairs:
        t = schema.field(col).type
        if not sendable(t):
            raise MappingError(f"column {col!r} has type {t}, which cannot be sent as a property value")


@dataclass
class _Column:
    values: list[str | None]
    bad: dict[int, Problem]  # table index -> the problem
    naive: int  # timestamps read in the job's zone (they had none)
    naive_rows: pa.Array | None = None  # bool mask of those rows (text columns)


def _column_values(arr: pa.Array, info: PropertyInfo, tz: str | None, owners: Owners | None,
                   as_python: bool = True) -> _Column:
    """A column as Python strings, with the problems of its values (checked in Arrow)."""
    if pa.types.is_null(arr.type):
        return _Column([None] * len(arr), {}, 0)
    original = arr
    prop = info.name
    arr, typed_naive = typed_to_strings(arr, info.type, tz)
    bad: dict[int, Problem] = {}
    if info.type in DATETIME_TYPES and not info.read_only:
        converted = datetimes(arr, tz)
        if pc.any(converted.bad).as_py():
            originals = arr.to_pylist()
            seconds = converted.seconds.to_pylist()
            for i in pc.indices_nonzero(converted.bad).to_pylist():
                hint = (f"{originals[i]} looks like epoch seconds; HubSpot wants epoch milliseconds "
                        f"(multiply by 1000) or ISO-8601" if seconds[i]
                        else f"{originals[i]} was not a valid datetime for {prop}: use epoch milliseconds or ISO-8601")
                bad[i] = Problem(ErrorType.INVALID_TIMESTAMP, hint, prop, originals[i])
        naive = typed_naive or int(pc.sum(converted.naive).as_py() or 0)
        return _Column(converted.values.to_pylist() if as_python else [], bad, naive,
                       converted.naive if not typed_naive else pc.is_valid(original))
    checked = check_column(arr, info, owners)
    return _Column(checked.values.to_pylist() if as_python else [], checked.problems, 0)


def id_strings(arr: pa.Array) -> pa.Array:
    """The id column as text (a typed Parquet id becomes its string; an all-null column, nulls)."""
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.string())
    return typed_to_strings(arr, "string")[0]


def has_id(ids: pa.Array) -> pa.Array:
    """True where a row has a usable id: not null and not blank (whitespace is no id).

    The one test of "this row has an id": the scan and the mapping both use it.
    """
    present = pc.and_kleene(pc.is_valid(ids), pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(ids)), 0))
    return pc.fill_null(present, False)


def association_values(table: pa.RecordBatch | pa.Table, targets: Sequence[Target]) -> list[list[tuple[int, str]]]:
    """Per row, the (target, value) pairs its association cells name: `;` separates several
    records, values are trimmed, e-mails lower-cased, an empty cell names none."""
    n = table.num_rows
    out: list[list[tuple[int, str]]] = [[] for _ in range(n)]
    for t, target in enumerate(targets):
        arr = id_strings(table.column(target.column))
        text = pc.utf8_trim_whitespace(arr)
        if target.folds_case:
            text = pc.utf8_lower(text)
        if target.property_name == "hs_object_id":
            # A record id is a number: 0012 is record 12, as HubSpot's answers spell it.
            digits = pc.fill_null(pc.match_substring_regex(text, r"^\d{1,18}$"), False)
            if pc.any(digits).as_py():
                as_int = pc.cast(pc.cast(pc.if_else(digits, text, pa.scalar("0")), pa.int64()), pa.string())
                text = pc.if_else(digits, as_int, text)
        has_many = pc.fill_null(pc.match_substring(text, ";"), False)
        values = text.to_pylist()
        many = set(pc.indices_nonzero(has_many).to_pylist()) if pc.any(has_many).as_py() else set()
        for i, v in enumerate(values):
            if not v:
                continue
            if i in many:
                for part in dict.fromkeys(p.strip() for p in v.split(";")):
                    if part:
                        out[i].append((t, part))
            else:
                out[i].append((t, v))
    return out


def map_chunk(chunk: SourceChunk, column_map: ColumnMap, schema: Schema, tz: str | None = None,
              targets: Sequence[Target] = (), *, values: bool = True) -> MappedChunk:
    """Map every row of a chunk; rows that cannot be sent get a FailedRow with every problem found.

    `values=False` (a dry run) checks every value but builds no per-row properties: each
    row that would be sent gets the same empty dict."""
    table = chunk.table
    n = table.num_rows
    ids_arr = column_map.ids_of(table)
    ids: list[str | None] = ids_arr.to_pylist()
    problems: dict[int, list[Problem]] = {}
    naive_rows: pa.Array | None = None

    names: list[str] = []
    columns: list[list[str | None]] = []
    for col, prop in column_map.property_pairs:
        column = _column_values(table.column(col), schema.info(prop), tz, schema.owners, values)
        for i, problem in column.bad.items():
            problems.setdefault(i, []).append(problem)
        if column.naive and column.naive_rows is not None:
            naive_rows = column.naive_rows if naive_rows is None else pc.or_(naive_rows, column.naive_rows)
        names.append(prop)
        columns.append(column.values)

    present = has_id(ids_arr)
    no_id = pc.indices_nonzero(pc.invert(present)).to_pylist() if not pc.all(present).as_py() else []
    if column_map.fold_ids:  # the id is an e-mail (contacts by email): HubSpot checks it
        for i in pc.indices_nonzero(not_emails(ids_arr)).to_pylist():
            problems.setdefault(i, []).insert(0, Problem(
                ErrorType.INVALID_EMAIL_ADDRESS, f"Email address {ids[i]} is invalid", column_map.id_property,
                ids[i] or ""))
    for i in no_id:
        problems.setdefault(i, []).insert(0, Problem(
            ErrorType.MISSING_ID_VALUE, f"the id column {column_map.id_column!r} is empty",
            column_map.id_property, ids[i] or ""))
        ids[i] = None  # a blank id is no id: such rows are each their own record
    failures = {i: local_failure(found) for i, found in problems.items()}

    # Empty or null: the property is left out of that input.
    properties: list[dict[str, str] | None]
    if not values:
        nothing: dict[str, str] = {}
        properties = [nothing] * n
    elif columns:
        properties = [{k: v for k, v in zip(names, row, strict=True) if v} for row in zip(*columns, strict=True)]
    else:
        properties = [{} for _ in range(n)]
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
        naive_rows=pc.indices_nonzero(naive_rows).to_pylist() if naive_rows is not None else [],
        links=association_values(table, targets) if targets else None,
        id_array=ids_arr,
    )


def row_data(table: pa.RecordBatch | pa.Table, index: int) -> dict[str, Any]:
    """The original source values of one row, JSON-ready, for the failed-rows report."""
    out: dict[str, Any] = {}
    for name, col in zip(table.schema.names, table.columns, strict=True):
        v = col[index].as_py()
        if isinstance(v, datetime):
            # A naive one stays naive (no Z): a retry reads it in the job's zone, as the load did.
            v = format_utc(v) if v.tzinfo is not None else v.isoformat(timespec="milliseconds")
        elif v is not None and not isinstance(v, str | int | float | bool):
            v = str(v)
        out[name] = v
    return out
