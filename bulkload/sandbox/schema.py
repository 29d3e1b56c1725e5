"""One CRM object's property schema: its properties (HubSpot's defaults come from
catalog.py), the unique-value properties, and the Properties API's create rules.

Validation compiles its rules from this same schema, so a property created
through `POST /crm/v3/properties/{object}` is writable by the next upsert.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bulkload.sandbox.validate import Rule, compile_rule, normalize_string
from bulkload.sandbox.wire import ApiError, api_error, missing_attributes

GROUP = "callinformation"  # HubSpot's real default group name for calls is not documented
MAX_UNIQUE = 10  # "up to ten unique ID properties per object" (DOC-props)
_DEFAULTS_CREATED_AT = "2020-01-01T00:00:00.000Z"

PROPERTY_TYPES = frozenset(
    {"bool", "date", "datetime", "enumeration", "number", "phone_number", "string"}
)
FIELD_TYPES = frozenset(
    {
        "booleancheckbox",
        "calculation_equation",
        "checkbox",
        "date",
        "file",
        "html",
        "number",
        "phonenumber",
        "radio",
        "select",
        "text",
        "textarea",
    }
)
UNIQUE_TYPES = frozenset({"string", "number"})
_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")


@dataclass(frozen=True, slots=True)
class Option:
    value: str
    label: str
    description: str = ""
    hidden: bool = False


@dataclass(frozen=True, slots=True)
class PropertyDef:
    """One property of an object, as `GET /crm/v3/properties/{object}` shows it."""

    name: str
    label: str
    type: str
    field_type: str
    description: str = ""
    group_name: str = GROUP
    options: tuple[Option, ...] = ()
    has_unique_value: bool = False
    read_only_value: bool = False  # calculated by HubSpot: writes are READ_ONLY_VALUE errors
    hubspot_defined: bool = True
    external_options: bool = False
    referenced_object_type: str | None = None
    integral: bool = False  # a number HubSpot keeps as a long (INVALID_LONG, not INVALID_INTEGER)
    email: bool = False  # a contact e-mail: INVALID_EMAIL, stored lower-cased
    display_order: int = -1
    created_at: str = _DEFAULTS_CREATED_AT
    updated_at: str = _DEFAULTS_CREATED_AT
    extra: Mapping[str, Any] = field(default_factory=dict)  # other PropertyCreate fields, echoed

    def rule(self, owner_ids: set[str] | None = None) -> Rule:
        return compile_rule(
            self.type,
            self.field_type,
            (o.value for o in self.options),
            read_only=self.read_only_value,
            integral=self.integral,
            owner=self.referenced_object_type == "OWNER",
            owner_ids=owner_ids,
            email=self.email,
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "updatedAt": self.updated_at,
            "createdAt": self.created_at,
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": [
                {
                    "label": o.label,
                    "value": o.value,
                    "description": o.description,
                    "displayOrder": i,
                    "hidden": o.hidden,
                }
                for i, o in enumerate(self.options)
            ],
            "displayOrder": self.display_order,
            "calculated": self.read_only_value,
            "externalOptions": self.external_options,
            "hasUniqueValue": self.has_unique_value,
            "hidden": False,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only_value,
            },
            "formField": not self.read_only_value,
            "dataSensitivity": "non_sensitive",
            "archived": False,
        }
        if self.hubspot_defined:
            body["hubspotDefined"] = True
        if self.referenced_object_type is not None:
            body["referencedObjectType"] = self.referenced_object_type
        for key, value in self.extra.items():
            body.setdefault(key, value)
        return body


def unique_string_property(
    name: str,
    created_at: str = _DEFAULTS_CREATED_AT,
    *,
    singular: str = "call",
    group: str = GROUP,
) -> PropertyDef:
    return PropertyDef(
        name,
        name.replace("_", " ").capitalize(),
        "string",
        "text",
        f"A unique identifier of the {singular} in the source system.",
        group_name=group,
        has_unique_value=True,
        hubspot_defined=False,
        created_at=created_at,
        updated_at=created_at,
    )


class Schema:
    """One object's properties and their compiled rules.

    `unique_default` is the object's own unique string property (external_call_id
    for calls), `extra_unique` the ones `--unique-property` adds. `id_keys` are
    properties that may be an upsert's or a read's idProperty without being
    flagged hasUniqueValue (contacts' `email`, as HubSpot allows). Owner
    properties check against `owner_ids`, the portal's live set of owner ids.
    """

    def __init__(
        self,
        extra_unique: Iterable[str] = (),
        *,
        type_id: str = "0-48",
        defaults: Iterable[PropertyDef] = (),
        unique_default: str | None = None,
        singular: str = "call",
        group: str = GROUP,
        id_keys: Iterable[str] = (),
        owner_ids: set[str] | None = None,
    ) -> None:
        self.type_id = type_id
        self.singular = singular
        self.group = group
        self.owner_ids = owner_ids
        self.id_keys = frozenset(id_keys)
        self.properties: dict[str, PropertyDef] = {}
        self.rules: dict[str, Rule] = {}
        # Tables for the validation fast path: every writable name; the plain
        # strings among them (only a length check); the rule of every other.
        self.writable: set[str] = set()
        self.plain: set[str] = set()
        self.checked: dict[str, Rule] = {}
        self.multi: set[str] = set()
        for default in defaults:
            self.add(default)
        names = (*((unique_default,) if unique_default else ()), *extra_unique)
        for name in names:
            unique = self.new_unique_string(name)
            if unique is not None:
                self.add(unique)

    def new_unique_string(
        self, name: str, created_at: str = _DEFAULTS_CREATED_AT
    ) -> PropertyDef | None:
        """The unique string property `--unique-property NAME` asks for; None if it exists.

        Raises ValueError for a bad name, an existing non-unique property
        (hasUniqueValue is immutable) or an eleventh unique property.
        """
        existing = self.properties.get(name)
        if existing is not None:
            if not existing.has_unique_value:
                raise ValueError(f"{name} exists and is not unique (hasUniqueValue is immutable)")
            return None
        if _NAME.fullmatch(name) is None:
            raise ValueError(f"{name!r} is not a valid property name (lowercase, digits, _)")
        if len(self.unique_names()) >= MAX_UNIQUE:
            raise ValueError(f"at most {MAX_UNIQUE} unique properties per object")
        return unique_string_property(name, created_at, singular=self.singular, group=self.group)

    def add(self, prop: PropertyDef) -> None:
        rule = prop.rule(self.owner_ids)
        self.properties[prop.name] = prop
        self.rules[prop.name] = rule
        if rule.read_only:
            return
        self.writable.add(prop.name)
        if rule.normalize is normalize_string:
            self.plain.add(prop.name)
        else:
            self.checked[prop.name] = rule
        if rule.multi:
            self.multi.add(prop.name)

    def get(self, name: str) -> PropertyDef | None:
        return self.properties.get(name)

    def unique_names(self) -> list[str]:
        return [p.name for p in self.properties.values() if p.has_unique_value]

    def index_names(self) -> list[str]:
        """What the record store indexes: the unique properties and the id keys."""
        return [*self.unique_names(), *(k for k in self.id_keys if k in self.properties)]

    def is_id_property(self, name: str) -> bool:
        prop = self.properties.get(name)
        return prop is not None and (prop.has_unique_value or name in self.id_keys)

    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.properties.values()]

    def check_new(self, body: Any, now_iso: str) -> PropertyDef:
        """The PropertyDef a `POST /crm/v3/properties/{object}` body asks for, or ApiError."""
        if not isinstance(body, dict):
            raise missing_attributes(
                "PropertyCreate", ["name", "label", "type", "fieldType", "groupName"]
            )
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if body.get(k) is None
        ]
        if missing:
            raise missing_attributes("PropertyCreate", missing)
        name, type_, field_type = body["name"], body["type"], body["fieldType"]
        for key in ("name", "label", "type", "fieldType", "groupName"):
            if not isinstance(body[key], str):
                raise api_error(
                    400, f"Invalid input JSON: {key} must be a string", "VALIDATION_ERROR"
                )
        if type_ not in PROPERTY_TYPES:
            raise _enum_error("type", type_, PROPERTY_TYPES)
        if field_type not in FIELD_TYPES:
            raise _enum_error("fieldType", field_type, FIELD_TYPES)
        if _NAME.fullmatch(name) is None:
            raise api_error(
                400,
                f"Property name {name!r} is invalid: use lowercase letters, digits and underscores, "
                "starting with a letter",
                "VALIDATION_ERROR",
            )
        if name in self.properties:
            raise api_error(
                409, f"A property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS"
            )
        unique = body.get("hasUniqueValue") is True
        if unique:
            if type_ not in UNIQUE_TYPES:
                raise api_error(
                    400, f"Properties of type {type_} cannot have unique values", "VALIDATION_ERROR"
                )
            if len(self.unique_names()) >= MAX_UNIQUE:
                raise api_error(
                    400,
                    f"Unable to create property {name}: the limit of {MAX_UNIQUE} unique value "
                    f"properties for object type {self.type_id} has been reached",
                    "VALIDATION_ERROR",
                )
        options = _read_options(body.get("options"))
        echoed = {
            k: v
            for k, v in body.items()
            if k
            in ("numberDisplayHint", "textDisplayHint", "dateDisplayHint", "showCurrencySymbol")
        }
        prop = PropertyDef(
            name,
            body["label"],
            type_,
            field_type,
            body.get("description") or "",
            group_name=body["groupName"],
            options=options,
            has_unique_value=unique,
            hubspot_defined=False,
            display_order=body.get("displayOrder", -1)
            if isinstance(body.get("displayOrder"), int)
            else -1,
            created_at=now_iso,
            updated_at=now_iso,
            extra=echoed,
        )
        if body.get("externalOptions") is True and body.get("referencedObjectType") == "OWNER":
            prop = replace(prop, external_options=True, referenced_object_type="OWNER")
        return prop


def _enum_error(key: str, value: Any, allowed: Iterable[str]) -> ApiError:
    listing = ", ".join(sorted(allowed))
    return api_error(
        400,
        f"Invalid input JSON: {key} {value!r} is not one of the values accepted: [{listing}]",
        "VALIDATION_ERROR",
    )


def _read_options(raw: Any) -> tuple[Option, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise api_error(400, "Invalid input JSON: options must be an array", "VALIDATION_ERROR")
    out: list[Option] = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("value"), str)
            or not isinstance(item.get("label"), str)
        ):
            raise missing_attributes("OptionInput", ["label", "value"])
        out.append(
            Option(
                item["value"],
                item["label"],
                str(item.get("description") or ""),
                item.get("hidden") is True,
            )
        )
    return tuple(out)


def property_from_json(body: Mapping[str, Any]) -> PropertyDef:
    """The inverse of PropertyDef.to_json (for properties saved in the SQLite store)."""
    metadata = body.get("modificationMetadata") or {}
    known = {
        "updatedAt", "createdAt", "name", "label", "type", "fieldType", "description", "groupName",
        "options", "displayOrder", "calculated", "externalOptions", "hasUniqueValue", "hidden",
        "modificationMetadata", "formField", "dataSensitivity", "archived", "hubspotDefined",
        "referencedObjectType",
    }  # fmt: skip
    return PropertyDef(
        body["name"],
        body["label"],
        body["type"],
        body["fieldType"],
        body.get("description", ""),
        group_name=body.get("groupName", GROUP),
        options=tuple(
            Option(o["value"], o["label"], o.get("description", ""), bool(o.get("hidden")))
            for o in body.get("options", [])
        ),
        has_unique_value=bool(body.get("hasUniqueValue")),
        read_only_value=bool(metadata.get("readOnlyValue")),
        hubspot_defined=bool(body.get("hubspotDefined")),
        external_options=bool(body.get("externalOptions")),
        referenced_object_type=body.get("referencedObjectType"),
        display_order=int(body.get("displayOrder", -1)),
        created_at=body.get("createdAt", _DEFAULTS_CREATED_AT),
        updated_at=body.get("updatedAt", _DEFAULTS_CREATED_AT),
        extra={k: v for k, v in body.items() if k not in known},
    )
