"""What HubSpot's error codes and messages mean in bulkload's taxonomy: one ErrorType each.

HubSpot's codes are few and overloaded: `INVALID_LONG` is a bad timestamp on a datetime
property and a bad number on a number property, and some bodies carry no code at all,
only a message in one of a handful of observed wordings. Whole-request messages are read
first: they contain words ("unique") the per-value rules would misread.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bulkload.taxonomy import ErrorType

__all__ = ["classify"]


_TIMESTAMP_NAMES = frozenset(
    {
        "hs_timestamp",
        "hs_createdate",
        "hs_lastmodifieddate",
        "createdate",
        "lastmodifieddate",
        "closedate",
        "hs_call_start_time",
        "hs_call_end_time",
    }
)
_TIMESTAMP_NAME = re.compile(r"(timestamp|date|time|_at)$|_date_|_time_")
_NUMBER_NAME = re.compile(r"duration|count|amount|number_of|_num$|_qty|quantity|price")
_DATE_LIKE_VALUE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}")

_NUMBER_CODES = frozenset(
    {"INVALID_INTEGER", "INVALID_NUMBER", "INVALID_DOUBLE", "INVALID_DECIMAL", "INVALID_FLOAT"}
)
_TIME_CODES = frozenset({"INVALID_LONG", "INVALID_DATE", "INVALID_DATETIME", "INVALID_TIMESTAMP"})
_EMAIL_CODES = frozenset({"INVALID_EMAIL", "INVALID_EMAIL_ADDRESS"})
_MISSING_CODES = frozenset(
    {"REQUIRED_PROPERTY_MISSING", "MISSING_REQUIRED_PROPERTY", "REQUIRED_FIELD", "MISSING_REQUIRED"}
)
_CONFLICT_CODES = frozenset({"CONFLICT", "CONFLICTING_UNIQUE_VALUE", "UNIQUE_VALUE_CONFLICT"})


def _property_kind(
    name: str | None, value: str | None, property_types: Mapping[str, str] | None
) -> str | None:
    """'timestamp', 'number', 'other' (a known type that is neither) or None (no idea)."""
    if name is not None and property_types is not None and name in property_types:
        declared = property_types[name]
        if declared in ("datetime", "date"):
            return "timestamp"
        return "number" if declared == "number" else "other"
    if name is not None:
        # No property definitions at hand: guess from the name, as HubSpot names
        # its own properties (hs_timestamp, hs_createdate, hs_call_duration).
        lowered = name.lower()
        if lowered in _TIMESTAMP_NAMES or _TIMESTAMP_NAME.search(lowered):
            return "timestamp"
        if _NUMBER_NAME.search(lowered):
            return "number"
    if value is not None and _DATE_LIKE_VALUE.search(value):
        return "timestamp"
    return None


def classify(
    code: str | None,
    message: str,
    hubspot_category: str | None,
    property_name: str | None = None,
    *,
    invalid_value: str | None = None,
    property_types: Mapping[str, str] | None = None,
) -> ErrorType:
    """The bulkload ErrorType for one HubSpot error (code, message and category)."""
    c = (code or "").upper()
    m = message.lower()
    # Whole-request messages first: they also contain words ("unique") that the
    # per-value rules below would misread.
    if "non-unique" in m and "property" in m:
        return ErrorType.ID_PROPERTY_NOT_UNIQUE
    if "duplicate ids found" in m:
        return ErrorType.DUPLICATE_ID_IN_SOURCE
    if c in ("PROPERTY_DOESNT_EXIST", "PROPERTY_DOES_NOT_EXIST"):
        return ErrorType.PROPERTY_DOESNT_EXIST
    if c == "INVALID_OPTION":
        # An owner property's options are the owners: "... was not a valid owner id."
        return ErrorType.INVALID_OWNER_ID if "owner" in m else ErrorType.INVALID_ENUM_PROPERTY
    if c in ("READ_ONLY_VALUE", "READ_ONLY_PROPERTY") or "calculated property" in m:
        return ErrorType.READ_ONLY_VALUE
    if c in _TIME_CODES:
        return _time_or_number(c, property_name, invalid_value, property_types)
    if c in _NUMBER_CODES:
        return ErrorType.INVALID_NUMBER
    if c in _EMAIL_CODES:
        return ErrorType.INVALID_EMAIL_ADDRESS
    if "TOO_LONG" in c or "MAX_LENGTH" in c or "too long" in m or "exceeds the maximum" in m:
        return ErrorType.VALUE_TOO_LONG
    if c in _MISSING_CODES or "required properties were not set" in m:
        return ErrorType.MISSING_REQUIRED_PROPERTY
    if (
        c in _CONFLICT_CODES
        or (hubspot_category or "").upper() == "CONFLICT"
        or ("unique" in m and ("already" in m or "conflict" in m))
    ):
        return ErrorType.CONFLICTING_UNIQUE_VALUE
    # No code we know: read the message, in HubSpot's observed wordings.
    if "does not exist" in m and "propert" in m:
        return ErrorType.PROPERTY_DOESNT_EXIST
    if "not one of the allowed options" in m:
        return ErrorType.INVALID_ENUM_PROPERTY
    if "not a valid long" in m:
        return _time_or_number("INVALID_LONG", property_name, invalid_value, property_types)
    if "not midnight" in m:
        return ErrorType.INVALID_TIMESTAMP
    if "not a valid number" in m or "enter a numb" in m:
        return ErrorType.INVALID_NUMBER
    if "email" in m and "invalid" in m:
        return ErrorType.INVALID_EMAIL_ADDRESS
    if c or (hubspot_category or "").upper() == "VALIDATION_ERROR":
        return ErrorType.INVALID_PROPERTY_VALUE
    return ErrorType.UNKNOWN_ERROR


def _time_or_number(
    code: str,
    property_name: str | None,
    invalid_value: str | None,
    property_types: Mapping[str, str] | None,
) -> ErrorType:
    # INVALID_LONG means "not epoch ms": on a datetime property that is a bad
    # timestamp, on a number property a bad number. Only the property's type tells.
    kind = _property_kind(property_name, invalid_value, property_types)
    if kind == "timestamp":
        return ErrorType.INVALID_TIMESTAMP
    if kind == "number":
        return ErrorType.INVALID_NUMBER
    if kind == "other":
        return ErrorType.INVALID_PROPERTY_VALUE
    return ErrorType.INVALID_TIMESTAMP if code == "INVALID_DATE" else ErrorType.INVALID_NUMBER
