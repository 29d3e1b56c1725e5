"""Property value checks, compiled once per property into a `Rule`.

A rule's `normalize` returns the value as HubSpot stores it, or None when
HubSpot would refuse it; only then is `describe` called to build the error
(code and message in HubSpot's wording).

Most rules also have a `bulk` check over a whole column of values (one
property across a batch) that runs in C: a set comparison for options, one
regular expression over the joined values for numbers and timestamps. It says
"every value is valid and already in stored form"; only when it cannot say so
are the values normalized one by one. That is what lets the sandbox validate
100-input batches at over a thousand requests a second.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from bulkload.sandbox.wire import iso_from_ms

MAX_STRING_LENGTH = 65_536
_MS_PER_DAY = 86_400_000
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# ISO-8601 with seconds, at most three fraction digits and an explicit zone.
# A six-digit fraction is refused, as HubSpot refuses it (HUBSPOT.md 1.5).
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2})"
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LONG = re.compile(r"-?\d{1,19}")
_DECIMAL = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

Normalizer = Callable[[str], "str | None"]
Describer = Callable[[str, str], "tuple[str, str]"]  # (name, value) -> (code, message)
BulkCheck = Callable[[list[str]], bool]  # non-empty values -> all valid and already normal?


@dataclass(frozen=True, slots=True)
class Rule:
    """How one property's values are checked."""

    normalize: Normalizer
    describe: Describer
    read_only: bool = False
    multi: bool = False  # checkbox enumeration: `;`-separated, a leading `;` appends
    bulk: BulkCheck | None = None


_SEPARATOR = "\x00"


def _joined_check(pattern: str, parse: Callable[[str], object] | None = None) -> BulkCheck:
    """All values match `pattern` (and `parse` accepts them), tested in one regex pass."""
    whole = re.compile(f"(?:{pattern})(?:{_SEPARATOR}(?:{pattern}))*")

    def check(values: list[str]) -> bool:
        joined = _SEPARATOR.join(values)
        # A value holding the separator itself could pass as two values.
        if joined.count(_SEPARATOR) != len(values) - 1 or whole.fullmatch(joined) is None:
            return False
        if parse is not None:
            try:
                deque(map(parse, values), maxlen=0)
            except ValueError:
                return False
        return True

    return check


# Canonical forms only: what HubSpot emits, so no value needs rewriting.
_bulk_long = _joined_check(r"-?\d{1,18}")  # 18 digits always fit a long
_bulk_owner = _joined_check(r"\d{1,18}")
_bulk_decimal = _joined_check(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_bulk_datetime = _joined_check(
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z",
    datetime.fromisoformat,  # rejects 30 February and the like
)
_bulk_date = _joined_check(r"\d{4}-\d{2}-\d{2}", date.fromisoformat)


def _bulk_options(values: Iterable[str]) -> BulkCheck:
    return frozenset(values).issuperset


# --- numbers and timestamps


def _as_long(value: str) -> int | None:
    if _LONG.fullmatch(value) is None:
        return None
    n = int(value)
    return n if _LONG_MIN <= n <= _LONG_MAX else None


def parse_datetime_ms(value: str) -> int | None:
    """Epoch ms of an epoch-ms string or a strict ISO-8601 datetime; None if neither."""
    n = _as_long(value)
    if n is not None:
        return n
    if _ISO_DATETIME.fullmatch(value) is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:  # e.g. month 13, or an offset beyond +/-24h
        return None
    delta = dt - _EPOCH
    return delta.days * _MS_PER_DAY + delta.seconds * 1000 + delta.microseconds // 1000


def normalize_datetime(value: str) -> str | None:
    # Fast path: already what HubSpot emits (UTC, Z, milliseconds).
    if (
        len(value) == 24
        and value[23] == "Z"
        and value[19] == "."
        and _ISO_DATETIME.fullmatch(value)
    ):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return None
        return value
    ms = parse_datetime_ms(value)
    if ms is None:
        return None
    try:
        return iso_from_ms(ms)
    except OverflowError:  # beyond year 9999
        return None


def _invalid_long(name: str, value: str) -> tuple[str, str]:
    return "INVALID_LONG", f"{value} was not a valid long."


def normalize_date(value: str) -> str | None:
    """`YYYY-MM-DD`, or a timestamp that falls exactly on midnight UTC."""
    if _ISO_DATE.fullmatch(value):
        try:
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            return None
        return value
    ms = parse_datetime_ms(value)
    if ms is None or ms % _MS_PER_DAY:
        return None
    try:
        return iso_from_ms(ms)[:10]
    except OverflowError:
        return None


def _describe_date(name: str, value: str) -> tuple[str, str]:
    ms = parse_datetime_ms(value)
    if ms is None or _ISO_DATE.fullmatch(value):
        return _invalid_long(name, value)
    try:
        clock = iso_from_ms(ms)[11:23]
    except OverflowError:
        return _invalid_long(name, value)
    return "INVALID_DATE", f"{value} is at {clock} UTC, not midnight!"


def normalize_long(value: str) -> str | None:
    return value if _as_long(value) is not None else None


def normalize_decimal(value: str) -> str | None:
    return value if _DECIMAL.fullmatch(value) else None


def _describe_decimal(name: str, value: str) -> tuple[str, str]:
    return "INVALID_INTEGER", f"{value} was not a valid number"


# --- strings and options


def normalize_string(value: str) -> str | None:
    return value if len(value) <= MAX_STRING_LENGTH else None


def _describe_string(name: str, value: str) -> tuple[str, str]:
    # Sandbox wording: HubSpot documents the limit but no captured body shows its error.
    return (
        "PROPERTY_VALUE_TOO_LONG",
        f"Value for property {name} is {len(value)} characters long; the limit is {MAX_STRING_LENGTH}",
    )


def _options_describer(values: Iterable[str]) -> Describer:
    listing = ", ".join(values)

    def describe(name: str, value: str) -> tuple[str, str]:
        bad = value
        if ";" in value:  # name the first offending option of a multi-select value
            allowed = set(listing.split(", "))
            bad = next((v for v in value.split(";") if v and v not in allowed), value)
        return "INVALID_OPTION", f"{bad} was not one of the allowed options: [{listing}]"

    return describe


def _multi_normalizer(options: dict[str, str]) -> Normalizer:
    def normalize(value: str) -> str | None:
        parts = value.split(";")
        # A leading ";" means "append to the current values" (HUBSPOT.md 1.6).
        head = parts[1:] if parts[0] == "" else parts
        if not head or any(p not in options for p in head):
            return None
        return value

    return normalize


def normalize_owner(value: str) -> str | None:
    """Any owner-shaped id (digits): the rule when no owner directory is given."""
    return value if _LONG.fullmatch(value) and not value.startswith("-") else None


def _describe_owner(name: str, value: str) -> tuple[str, str]:
    return "INVALID_OPTION", f"{value} was not a valid owner id."


def _owner_rule(owner_ids: set[str], read_only: bool) -> Rule:
    """Only the id of an existing, non-archived owner. `owner_ids` is the portal's live
    set (owners change at run time), so the rule reads it on every call."""

    def normalize(value: str) -> str | None:
        return value if value in owner_ids else None

    def bulk(values: list[str]) -> bool:
        return owner_ids.issuperset(values)

    return Rule(normalize, _describe_owner, read_only, bulk=bulk)


# An address HubSpot would take: a dotted local part, a dotted domain of labels, and a
# top-level domain of at least two letters (`name@domain.x` is refused, HUBSPOT.md 1.5).
_EMAIL_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_EMAIL_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
_EMAIL = re.compile(f"{_EMAIL_LOCAL}@{_EMAIL_DOMAIN}")
MAX_EMAIL_LENGTH = 254
# Already stored form (lower case) only, so a passing column needs no rewriting.
_bulk_lower_email = _joined_check(
    f"{_EMAIL_LOCAL.replace('A-Za-z', 'a-z')}@{_EMAIL_DOMAIN.replace('A-Za-z', 'a-z')}"
)


def _bulk_email(values: list[str]) -> bool:
    return max(map(len, values)) <= MAX_EMAIL_LENGTH and _bulk_lower_email(values)


def normalize_email(value: str) -> str | None:
    """HubSpot stores contact e-mails lower-cased, and matches them case-insensitively."""
    if len(value) > MAX_EMAIL_LENGTH or _EMAIL.fullmatch(value) is None:
        return None
    return value.lower()


def _describe_email(name: str, value: str) -> tuple[str, str]:
    return "INVALID_EMAIL", f"Email address {value} is invalid"


def read_only_issue(name: str) -> tuple[str, str]:
    return "READ_ONLY_VALUE", f'"{name}" is a calculated property; its value cannot be set.'


def doesnt_exist_issue(name: str) -> tuple[str, str]:
    return "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'


def compile_rule(
    type_: str,
    field_type: str,
    options: Iterable[str],
    *,
    read_only: bool = False,
    integral: bool = False,
    owner: bool = False,
    owner_ids: set[str] | None = None,
    email: bool = False,
) -> Rule:
    """The rule for a property of HubSpot `type`/`fieldType` with option values `options`.

    `owner`: a property referencing owners; with `owner_ids` only those ids pass.
    `email`: a contact e-mail (INVALID_EMAIL, stored lower-cased).
    """
    if owner:
        if owner_ids is not None:
            return _owner_rule(owner_ids, read_only)
        return Rule(normalize_owner, _describe_owner, read_only, bulk=_bulk_owner)
    if email:
        return Rule(normalize_email, _describe_email, read_only, bulk=_bulk_email)
    if type_ == "datetime":
        return Rule(normalize_datetime, _invalid_long, read_only, bulk=_bulk_datetime)
    if type_ == "date":
        return Rule(normalize_date, _describe_date, read_only, bulk=_bulk_date)
    if type_ == "number":
        if integral:
            return Rule(normalize_long, _invalid_long, read_only, bulk=_bulk_long)
        return Rule(normalize_decimal, _describe_decimal, read_only, bulk=_bulk_decimal)
    if type_ in ("enumeration", "bool"):
        values = list(options) or (["true", "false"] if type_ == "bool" else [])
        table = {v: v for v in values}
        if field_type == "checkbox" and type_ == "enumeration":
            return Rule(_multi_normalizer(table), _options_describer(values), read_only, multi=True)
        return Rule(table.get, _options_describer(values), read_only, bulk=_bulk_options(values))
    return Rule(normalize_string, _describe_string, read_only)
