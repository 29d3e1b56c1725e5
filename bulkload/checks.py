"""The portal's schema as the validator: a column's values checked against its property
before any request is spent on them, in Arrow, a column at a time.

What HubSpot refuses, refused here first (HUBSPOT.md sections 1.5, 1.6 and 4), each with
HubSpot's error type and the property and value:

- enumeration: a value must be one of the options (a `checkbox` property takes several,
  `;`-separated; a leading `;` appends). A cell that is no option's value but exactly
  one option's label (case-insensitive, trimmed) is sent as that option's value, as
  HubSpot's importer does; a label two options share is AMBIGUOUS_ENUMERATION_OPTION.
- bool: `true` or `false` (or an option's label: `Yes`, `No`);
- number: a decimal number (HubSpot does not say which number properties are integers:
  `1.5` for a duration is left to HubSpot);
- date: `YYYY-MM-DD`, or a timestamp at midnight UTC (sent as `YYYY-MM-DD`);
- an e-mail property (contacts' `email`): an address HubSpot takes, sent lower-cased;
- an owner property (`referencedObjectType: OWNER`, e.g. `hubspot_owner_id`): an active
  owner's id, or an owner's e-mail (sent as the id); without the owners (a 403) ids are
  left to HubSpot and e-mails cannot be resolved;
- a read-only property (`modificationMetadata.readOnlyValue`): no value at all;
- any value: at most 65,536 characters.

Datetimes are converted and checked by `convert.py`. Empty cells are no value and are not
checked. The common case (every value fine) costs a few Arrow kernels per column; only
the values that fail are looked at one by one, to describe them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bulkload.convert import datetimes
from bulkload.models import Problem
from bulkload.objects import is_email
from bulkload.taxonomy import ErrorType

MAX_VALUE_LENGTH = 65_536
MAX_EMAIL_LENGTH = 254
_MS_PER_DAY = 86_400_000
_LAST_DAY_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
# Digits of any script (\p{Nd}): HubSpot parses numbers as Java does, which takes them.
# Where HubSpot's answer is uncertain the check lets the value through: a value refused
# here must be one HubSpot certainly refuses.
_DECIMAL = r"^[+-]?(?:\p{Nd}+(?:\.\p{Nd}*)?|\.\p{Nd}+)(?:[eE][+-]?\p{Nd}+)?$"
_DATE = r"^\d{4}-\d{2}-\d{2}$"
_EPOCH_MS = r"^-?\d{1,15}$"
_DIGITS = r"^\d{1,18}$"
# An address HubSpot takes: a dotted local part, dotted domain labels, a top-level domain
# of two letters or more (`name@domain.x` is refused, HUBSPOT.md 1.5).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# The top-level domain: letters, or an internationalised one as DNS spells it (xn--p1ai).
_EMAIL = rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+(?:[A-Za-z]{{2,63}}|xn--[A-Za-z0-9-]{{1,59}})$"
_EMAIL_RE = re.compile(_EMAIL)


@dataclass(frozen=True)
class Owners:
    """The portal's active owners (GET /crm/v3/owners): their ids, and who has which e-mail."""

    ids: frozenset[str]
    by_email: Mapping[str, str] = field(default_factory=dict)  # lower-cased e-mail -> owner id
    known: bool = True  # False: not asked (a dry run offline): owner values are not judged

    @classmethod
    def unknown(cls) -> Owners:
        return cls(frozenset(), {}, known=False)

    @classmethod
    def from_api(cls, results: Iterable[Mapping[str, object]]) -> Owners:
        ids: set[str] = set()
        by_email: dict[str, str] = {}
        for owner in results:
            if owner.get("archived") or owner.get("id") is None:
                continue  # an archived owner cannot own a record
            oid = str(owner["id"])
            ids.add(oid)
            email = owner.get("email")
            if isinstance(email, str) and email.strip():
                by_email.setdefault(email.strip().lower(), oid)
        return cls(frozenset(ids), by_email)


@dataclass(frozen=True)
class PropertyInfo:
    """What the checks need of one property, as the properties API describes it."""

    name: str
    type: str  # HubSpot's: string, number, datetime, date, enumeration, bool, phone_number
    has_unique_value: bool = False
    field_type: str = ""  # select, checkbox (several `;`-separated values), booleancheckbox, ...
    options: tuple[str, ...] = ()  # option values, in HubSpot's order
    labels: tuple[str, ...] = ()  # each option's label
    read_only: bool = False  # modificationMetadata.readOnlyValue: HubSpot computes it
    owner: bool = False  # referencedObjectType OWNER: an owner's id (or, to bulkload, e-mail)
    email: bool = False  # an e-mail address HubSpot checks (contacts.email)

    @classmethod
    def from_api(cls, p: Mapping[str, Any], object_type: str = "") -> PropertyInfo:
        name = str(p.get("name", ""))
        raw = p.get("options")
        options = [o for o in raw if isinstance(o, Mapping) and o.get("value") is not None] \
            if isinstance(raw, list) else []
        meta = p.get("modificationMetadata")
        return cls(
            name=name,
            type=str(p.get("type", "string")),
            has_unique_value=bool(p.get("hasUniqueValue", False)),
            field_type=str(p.get("fieldType", "")),
            options=tuple(str(o["value"]) for o in options),
            labels=tuple(str(o.get("label") or "") for o in options),
            read_only=bool(meta.get("readOnlyValue")) if isinstance(meta, Mapping) else False,
            owner=str(p.get("referencedObjectType") or "").upper() == "OWNER",
            email=is_email(object_type, name),
        )


@dataclass(frozen=True)
class Checked:
    """A column after its checks: the values to send (a label or an e-mail replaced by
    what it names) and the problem of each value HubSpot would refuse."""

    values: pa.Array
    problems: dict[int, Problem]


def check_column(arr: pa.Array, info: PropertyInfo, owners: Owners | None = None) -> Checked:
    """Check a text column (nulls and "" are no value) against its property."""
    present = pc.fill_null(pc.greater(pc.utf8_length(arr), 0), False)
    problems: dict[int, Problem] = {}
    if len(arr) == 0 or not pc.any(present).as_py():
        return Checked(arr, problems)
    values = arr
    if info.read_only:
        for i in _indices(present):
            problems[i] = Problem(ErrorType.READ_ONLY_VALUE,
                                  f'"{info.name}" is a calculated property; its value cannot be set', info.name,
                                  _text(arr, i))
        return Checked(arr, problems)
    if info.owner:
        values = _owners(arr, present, info, owners, problems)
    elif info.type in ("enumeration", "bool"):
        options = info.options or (("true", "false") if info.type == "bool" else ())
        labels = info.labels if info.options else ()

        if options:  # no options: HubSpot's own list (externalOptions), unknown here
            if info.field_type == "checkbox" and info.type == "enumeration":
                values = _multi(arr, present, info.name, options, labels, problems)
            else:
                # TRUE, False: a bool's value in another case counts as a label (HubSpot's own
                # reading of them is unknown, "true" it certainly takes).
                values = _single(arr, present, info.name, options, labels, problems, fold_values=info.type == "bool")
    elif info.type == "number":
        bad = pc.and_(present, pc.invert(pc.fill_null(pc.match_substring_regex(arr, _DECIMAL), False)))
        for i in _indices(bad):
            problems[i] = Problem(ErrorType.INVALID_NUMBER, f"{_text(arr, i)} was not a valid number", info.name,
                                  _text(arr, i))
    elif info.type == "date":
        values = _dates(arr, present, info.name, problems)
    elif info.email:
        values = _emails(arr, present, info.name, problems)
    too_long = pc.fill_null(pc.greater(pc.utf8_length(arr), MAX_VALUE_LENGTH), False)
    for i in _indices(too_long):
        v = _text(arr, i)
        problems.setdefault(i, Problem(
            ErrorType.VALUE_TOO_LONG, f"{info.name} is {len(v):,} characters long; HubSpot's limit is "
            f"{MAX_VALUE_LENGTH:,}", info.name, v[:200]))
    return Checked(values, problems)


def _indices(mask: pa.Array) -> list[int]:
    if not pc.any(mask).as_py():
        return []
    return list(pc.indices_nonzero(mask).to_pylist())


def _text(arr: pa.Array, i: int) -> str:
    v = arr[i].as_py()
    return "" if v is None else str(v)


def _key(arr: pa.Array) -> pa.Array:
    """How a label or an e-mail is matched: trimmed, case folded."""
    return pc.utf8_lower(pc.utf8_trim_whitespace(arr))


def _label_table(options: tuple[str, ...], labels: tuple[str, ...], fold_values: bool = False
                 ) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Label key -> the one option value it names; and the keys several options share.
    `fold_values`: each value is a label of its own too (in any case)."""
    seen: dict[str, list[str]] = {}
    names = [*zip(options, labels, strict=True), *((v, v) for v in options if fold_values)]
    for value, label in names:
        key = label.strip().lower()
        if key:
            seen.setdefault(key, []).append(value)
    unique = {k: v[0] for k, v in seen.items() if len(set(v)) == 1}
    shared = {k: sorted(set(v)) for k, v in seen.items() if len(set(v)) > 1}
    return unique, shared


def _not_an_option(name: str, value: str, options: tuple[str, ...]) -> Problem:
    listing = ", ".join(options[:50]) + (", …" if len(options) > 50 else "")
    return Problem(ErrorType.INVALID_ENUM_PROPERTY, f"{value} was not one of the allowed options: [{listing}]",
                   name, value)


def _ambiguous(name: str, value: str, values: list[str]) -> Problem:
    return Problem(ErrorType.AMBIGUOUS_ENUMERATION_OPTION,
                   f"{value.strip()} is the label of several options of {name} ({', '.join(values)}); "
                   "use the internal value of the one you mean", name, value)


def _single(arr: pa.Array, present: pa.Array, name: str, options: tuple[str, ...], labels: tuple[str, ...],
            problems: dict[int, Problem], fold_values: bool = False) -> pa.Array:
    ok = pc.fill_null(pc.is_in(arr, value_set=pa.array(options, pa.string())), False)
    bad = pc.and_(present, pc.invert(ok))
    if not pc.any(bad).as_py():
        return arr
    unique, shared = _label_table(options, labels or ("",) * len(options), fold_values)
    keys = _key(arr)
    named = pc.take(pa.array(list(unique.values()), pa.string()),
                    pc.index_in(keys, value_set=pa.array(list(unique), pa.string())))
    by_label = pc.and_(bad, pc.is_valid(named))
    for i in _indices(pc.and_(bad, pc.invert(pc.is_valid(named)))):
        value = _text(arr, i)
        key = value.strip().lower()
        problems[i] = _ambiguous(name, value, shared[key]) if key in shared else _not_an_option(name, value, options)
    return pc.if_else(by_label, named, arr)


def _multi(arr: pa.Array, present: pa.Array, name: str, options: tuple[str, ...], labels: tuple[str, ...],
           problems: dict[int, Problem]) -> pa.Array:
    """A checkbox value: options separated by `;` (a leading `;` appends to what the record
    has). Fast when every part is an option's value; else row by row."""
    allowed = pa.array(options, pa.string())
    parts = pc.split_pattern(pc.if_else(present, arr, pa.scalar(None, pa.string())), ";")
    flat_ok = pc.fill_null(pc.is_in(pc.list_flatten(parts), value_set=allowed), False)
    leading = int(pc.sum(pc.fill_null(pc.starts_with(arr, ";"), False)).as_py() or 0)
    lone = int(pc.sum(pc.fill_null(pc.equal(arr, ";"), False)).as_py() or 0)
    if len(flat_ok) - int(pc.sum(flat_ok).as_py() or 0) == leading and not lone:
        return arr  # every part an option's value, but for leading ";"s (append)
    unique, shared = _label_table(options, labels)
    option_set = set(options)
    out: list[str | None] = arr.to_pylist()
    for i in _indices(present):
        value = out[i]
        assert value is not None
        split = value.split(";")
        head, tail = ("", split[1:]) if split[0] == "" else (None, split)
        if tail and all(p in option_set for p in tail):
            continue
        mapped: list[str] = []
        problem: Problem | None = None
        for part in tail:
            if part in option_set:
                mapped.append(part)
                continue
            if not part.strip():
                problem = Problem(ErrorType.INVALID_ENUM_PROPERTY,
                                  f"{value} has an empty option (a ';' with no option after it)", name, value)
                break
            key = part.strip().lower()
            if key in unique:
                mapped.append(unique[key])
            elif key in shared:
                problem = _ambiguous(name, part, shared[key])
                break
            else:
                problem = _not_an_option(name, part, options)
                break
        if problem is None and not tail:
            problem = _not_an_option(name, value, options)
        if problem is not None:
            problems[i] = problem
        else:
            out[i] = ";".join(([head] if head is not None else []) + mapped)
    return pa.array(out, pa.string())


def _dates(arr: pa.Array, present: pa.Array, name: str, problems: dict[int, Problem]) -> pa.Array:
    """`YYYY-MM-DD` as it is; a timestamp at midnight UTC as its date; else refused."""
    text = pc.utf8_trim_whitespace(arr)
    is_date = pc.fill_null(pc.match_substring_regex(text, _DATE), False)
    parsed = pc.strptime(pc.if_else(is_date, text, pa.scalar(None, pa.string())), format="%Y-%m-%d", unit="s",
                         error_is_null=True)
    # strptime takes 2023-02-30 as 2023-03-02: a date is valid if it prints back the same.
    printed = pc.strftime(parsed, format="%Y-%m-%d")
    date_ok = pc.fill_null(pc.and_(is_date, pc.equal(printed, text)), False)
    rest = pc.and_(present, pc.invert(date_ok))
    if not pc.any(rest).as_py():
        return arr
    out: list[str | None] = arr.to_pylist()
    candidates = pc.if_else(rest, text, pa.scalar(None, pa.string()))
    is_epoch = pc.fill_null(pc.match_substring_regex(candidates, _EPOCH_MS), False)
    as_int = pc.cast(pc.if_else(is_epoch, candidates, pa.scalar("0")), pa.int64()).to_pylist()
    converted = datetimes(pc.if_else(pc.invert(is_epoch), candidates, pa.scalar(None, pa.string())))
    iso = converted.values.to_pylist()
    epoch = is_epoch.to_pylist()
    for i in _indices(rest):
        value = _text(arr, i)
        if epoch[i]:
            ms = as_int[i]
            if ms % _MS_PER_DAY == 0 and abs(ms) <= _LAST_DAY_MS:
                out[i] = str(pc.strftime(pa.scalar(ms, pa.timestamp("ms")), format="%Y-%m-%d").as_py())
                continue
            if abs(ms) <= _LAST_DAY_MS:
                clock = pc.strftime(pa.scalar(ms, pa.timestamp("ms")), format="%H:%M:%S").as_py()
                problems[i] = _not_midnight(name, value, f"{clock}.{ms % 1000:03d}")
                continue
        elif iso[i] is not None:
            stamp = str(iso[i])
            if re.search(r"T00:00:00(?:\.0+)?Z$", stamp):
                out[i] = stamp[:10]
                continue
            problems[i] = _not_midnight(name, value, stamp[11:23])
            continue
        problems[i] = Problem(ErrorType.INVALID_TIMESTAMP,
                              f"{value} was not a valid date for {name}: use YYYY-MM-DD", name, value)
    return pa.array(out, pa.string())


def _not_midnight(name: str, value: str, clock: str) -> Problem:
    return Problem(ErrorType.INVALID_TIMESTAMP,
                   f"{value} is at {clock} UTC, not midnight: {name} is a date (YYYY-MM-DD)", name, value)


def _emails(arr: pa.Array, present: pa.Array, name: str, problems: dict[int, Problem]) -> pa.Array:
    ok = pc.and_(pc.fill_null(pc.match_substring_regex(arr, _EMAIL), False),
                 pc.fill_null(pc.less_equal(pc.utf8_length(arr), MAX_EMAIL_LENGTH), False))
    for i in _indices(pc.and_(present, pc.invert(ok))):
        value = _text(arr, i)
        problems[i] = Problem(ErrorType.INVALID_EMAIL_ADDRESS, f"Email address {value} is invalid", name, value)
    return pc.utf8_lower(arr)  # as HubSpot stores it


def _owners(arr: pa.Array, present: pa.Array, info: PropertyInfo, owners: Owners | None,
            problems: dict[int, Problem]) -> pa.Array:
    name = info.name
    if owners is not None and not owners.known:
        return arr
    digits = pc.fill_null(pc.match_substring_regex(arr, _DIGITS), False)
    if owners is None:
        # The owners could not be read: ids are HubSpot's to judge; an e-mail cannot be sent.
        for i in _indices(pc.and_(present, pc.invert(digits))):
            value = _text(arr, i)
            why = ("an owner's e-mail cannot be resolved without the owners (the token lacks "
                   "crm.objects.owners.read): use the owner's id") if "@" in value \
                else f"{value} is not an owner's id (digits) or e-mail"
            problems[i] = Problem(ErrorType.INVALID_OWNER_ID, why, name, value)
        return arr
    ids = pa.array(sorted(owners.ids), pa.string())
    ok = pc.fill_null(pc.is_in(arr, value_set=ids), False)
    bad = pc.and_(present, pc.invert(ok))
    if not pc.any(bad).as_py():
        return arr
    emails = list(owners.by_email)
    named = pc.take(pa.array([owners.by_email[e] for e in emails], pa.string()),
                    pc.index_in(_key(arr), value_set=pa.array(emails, pa.string())))
    by_email = pc.and_(bad, pc.is_valid(named))
    for i in _indices(pc.and_(bad, pc.invert(pc.is_valid(named)))):
        value = _text(arr, i)
        what = "e-mail" if "@" in value else "id"
        problems[i] = Problem(ErrorType.INVALID_OWNER_ID,
                              f"{value} is not the {what} of an active owner of this portal", name, value)
    return pc.if_else(by_email, named, arr)


def is_email_address(value: str) -> bool:
    return len(value) <= MAX_EMAIL_LENGTH and _EMAIL_RE.fullmatch(value) is not None


def not_emails(arr: pa.Array) -> pa.Array:
    """True where a present value is no address HubSpot takes."""
    present = pc.fill_null(pc.greater(pc.utf8_length(arr), 0), False)
    ok = pc.and_(pc.fill_null(pc.match_substring_regex(arr, _EMAIL), False),
                 pc.fill_null(pc.less_equal(pc.utf8_length(arr), MAX_EMAIL_LENGTH), False))
    return pc.and_(present, pc.invert(ok))
