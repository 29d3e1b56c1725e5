"""What bulkload knows of HubSpot's CRM objects without asking the portal.

- their names (plural, singular) and type ids, so `--object contact`, `contacts` and
  `0-1` are one object;
- how an object's records may be keyed: a unique-value property, or for contacts
  `email` (not unique-valued in the schema, yet HubSpot upserts by it and matches it
  whatever its case);
- which properties hold e-mail addresses HubSpot checks and stores lower-cased;
- the default properties of calls (HubSpot's, as `GET /crm/v3/properties/calls`
  answers them), used to check a file when the portal's schema cannot be read: a dry
  run offline, a token without the schema scope.

Everything object-specific lives here; the rest of the loader reads the portal's schema.
"""

from __future__ import annotations

from typing import Any

# name -> HubSpot's objectTypeId (HUBSPOT.md; custom objects are 2-NNN and pass as given).
OBJECT_TYPE_IDS: dict[str, str] = {
    "contacts": "0-1", "companies": "0-2", "deals": "0-3", "tickets": "0-5", "calls": "0-48",
    "emails": "0-49", "meetings": "0-47", "notes": "0-46", "tasks": "0-27",
}
_SINGULAR = {"contact": "contacts", "company": "companies", "deal": "deals", "ticket": "tickets", "call": "calls",
             "email": "emails", "meeting": "meetings", "note": "notes", "task": "tasks"}
_BY_TYPE_ID = {v: k for k, v in OBJECT_TYPE_IDS.items()}

# (object, property): e-mail addresses (HubSpot refuses a malformed one, stores it lower-cased).
EMAIL_PROPERTIES = frozenset({("contacts", "email")})
# (object, id property) HubSpot upserts by although the schema does not call it unique.
KEYS_WITHOUT_UNIQUE_VALUE = frozenset({("contacts", "email")})
# What a create of an activity must set (an update need not): HubSpot answers a create
# without it with MISSING_REQUIRED_PROPERTY.
REQUIRED_ON_CREATE: dict[str, tuple[str, ...]] = {
    "calls": ("hs_timestamp",), "emails": ("hs_timestamp",), "meetings": ("hs_timestamp",),
    "notes": ("hs_timestamp",), "tasks": ("hs_timestamp",),
}


# Used when the properties API cannot be read: enough to know which values are datetimes
# (HubSpot's activities all time-stamp by hs_timestamp), to convert them as HubSpot wants.
FALLBACK_TYPES: dict[str, str] = {
    "hs_timestamp": "datetime",
    "hs_createdate": "datetime",
    "hs_lastmodifieddate": "datetime",
    "createdate": "datetime",
    "lastmodifieddate": "datetime",
    "hs_call_duration": "number",
}


def canonical(object_type: str) -> str:
    """`contact`, `Contacts` and `0-1` -> `contacts`; anything else (a custom object's
    name or `2-123456`) as given."""
    name = object_type.strip()
    low = name.lower()
    if low in OBJECT_TYPE_IDS:
        return low
    if low in _SINGULAR:
        return _SINGULAR[low]
    return _BY_TYPE_ID.get(name, name)


def is_email(object_type: str, property_name: str) -> bool:
    return (canonical(object_type), property_name) in EMAIL_PROPERTIES


def keys_without_unique_value(object_type: str, id_property: str) -> bool:
    return (canonical(object_type), id_property) in KEYS_WITHOUT_UNIQUE_VALUE


def _prop(name: str, type_: str, field_type: str, options: tuple[tuple[str, str], ...] = (), *,
          read_only: bool = False, owner: bool = False, unique: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name, "type": type_, "fieldType": field_type, "hasUniqueValue": unique,
        "options": [{"label": label, "value": value, "hidden": False} for label, value in options],
        "modificationMetadata": {"readOnlyValue": read_only},
    }
    if owner:
        body["referencedObjectType"] = "OWNER"
        body["externalOptions"] = True
    return body


_CALL_STATUSES = (("Busy", "BUSY"), ("Calling CRM User", "CALLING_CRM_USER"), ("Canceled", "CANCELED"),
                  ("Completed", "COMPLETED"), ("Connecting", "CONNECTING"), ("Failed", "FAILED"),
                  ("In Progress", "IN_PROGRESS"), ("No Answer", "NO_ANSWER"), ("Queued", "QUEUED"),
                  ("Ringing", "RINGING"))
# HubSpot's default call outcomes (HUBSPOT.md 1.6): a GUID each, named by its label.
_CALL_OUTCOMES = (("Busy", "9d9162e7-6cf3-4944-bf63-4dff82258764"),
                  ("Connected", "f240bbac-87c9-4f6e-bf70-924b57d47db7"),
                  ("Left live message", "a4c4c377-d246-4b32-a13b-75a56a4cd0ff"),
                  ("Left voicemail", "b2cf5968-551e-4856-9783-52b3da59a7d0"),
                  ("No answer", "73a0d17f-1163-4015-bdd5-ec830791da20"),
                  ("Wrong number", "17b47fee-58de-441e-a44c-c6300d46f273"))

DEFAULT_PROPERTIES: dict[str, list[dict[str, Any]]] = {
    "calls": [
        _prop("hs_timestamp", "datetime", "date"),
        _prop("hs_call_title", "string", "text"),
        _prop("hs_call_body", "string", "html"),
        _prop("hs_call_direction", "enumeration", "select", (("Inbound", "INBOUND"), ("Outbound", "OUTBOUND"))),
        _prop("hs_call_status", "enumeration", "select", _CALL_STATUSES),
        _prop("hs_call_duration", "number", "number"),
        _prop("hs_call_disposition", "enumeration", "select", _CALL_OUTCOMES),
        _prop("hs_call_from_number", "string", "text"),
        _prop("hs_call_to_number", "string", "text"),
        _prop("hs_call_recording_url", "string", "text"),
        _prop("hs_call_source", "enumeration", "select", (("Integrations platform", "INTEGRATIONS_PLATFORM"),)),
        _prop("hs_call_has_voicemail", "bool", "booleancheckbox", (("Yes", "true"), ("No", "false"))),
        _prop("hs_activity_type", "string", "text"),
        _prop("hs_attachment_ids", "string", "text"),
        _prop("hubspot_owner_id", "enumeration", "select", owner=True),
        _prop("hs_body_preview", "string", "text", read_only=True),
        _prop("hs_object_id", "number", "number", read_only=True),
        _prop("hs_createdate", "datetime", "date", read_only=True),
        _prop("hs_lastmodifieddate", "datetime", "date", read_only=True),
    ],
}


def default_properties(object_type: str) -> list[dict[str, Any]] | None:
    """HubSpot's default properties of the object, when bulkload knows them (None: not)."""
    return DEFAULT_PROPERTIES.get(canonical(object_type))
