"""The portal's CRM objects: what each one is called in paths and messages, its
default properties, what it requires on create, its scopes, and the default
association types between them.

Everything object-specific lives in these tables, looked up by dict (O(1)) per
request: `resolve(name)` turns any name a path may hold (plural, singular, type
id, the custom object's qualified names) into its ObjectType.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bulkload.sandbox import catalog
from bulkload.sandbox.schema import PropertyDef, Schema

CUSTOM_TYPE_ID = "2-123456"


@dataclass(frozen=True, slots=True)
class ObjectType:
    type_id: str  # "0-48"
    name: str  # "calls": the plural, as paths and the counters name it
    singular: str  # "call"
    label: str  # "CALL": HubSpot's name in messages ("Error creating CALL.")
    group: str  # the default property group
    properties: tuple[PropertyDef, ...]
    unique_property: str  # the object's own unique-value string property
    # Each entry is a group of which at least one must be set when a record is created.
    required: tuple[tuple[str, ...], ...]
    created_property: str  # "hs_createdate" or "createdate"
    modified_property: str  # "hs_lastmodifieddate" or "lastmodifieddate"
    scope: str  # the `crm.objects.<scope>.write` of its writes ("contacts" for activities)
    schema_scopes: tuple[str, ...]  # requiredGranularScopes of GET properties
    default_read: tuple[str, ...]  # what batch/read returns without `properties`
    first_id: int  # record ids of this object count up from here
    aliases: tuple[str, ...] = ()  # more names paths may use
    email_key: bool = False  # contacts: upsert and read by `email`, case-insensitively

    @property
    def write_scopes(self) -> list[str]:
        if self.type_id == CUSTOM_TYPE_ID:
            return ["crm.objects.custom.write"]
        return [f"crm.objects.{self.scope}.write"]

    @property
    def schema_write_scopes(self) -> list[str]:
        return [f"crm.schemas.{'custom' if self.type_id == CUSTOM_TYPE_ID else self.name}.write"]

    @property
    def title(self) -> str:
        """ "Call", "Contact", "Machine": as in "Contact already exists. Existing ID: 1"."""
        return self.singular.removeprefix("p_").capitalize()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.type_id, self.name, self.singular, *self.aliases)


def _crm_schema_scopes(name: str) -> tuple[str, ...]:
    # The shape of HubSpot's documented 403 for deals (HUBSPOT.md 1.5).
    return (
        f"crm.schemas.{name}.read",
        f"crm.objects.{name}.sensitive.read.v2",
        f"crm.objects.{name}.read",
        f"crm.objects.{name}.highly_sensitive.read.v2",
    )


_ACTIVITY_SCHEMA_SCOPES = ("crm.schemas.contacts.read", "crm.objects.contacts.read")
_ACTIVITY_READ = ("hs_object_id", "hs_createdate", "hs_lastmodifieddate")


def _activity(
    type_id: str, name: str, singular: str, properties: tuple[PropertyDef, ...], first_id: int
) -> ObjectType:
    return ObjectType(
        type_id,
        name,
        singular,
        singular.upper(),
        f"{singular}information",
        properties,
        f"external_{singular}_id",
        (("hs_timestamp",),),
        "hs_createdate",
        "hs_lastmodifieddate",
        "contacts",
        _ACTIVITY_SCHEMA_SCOPES,
        _ACTIVITY_READ,
        first_id,
    )


CALLS = _activity("0-48", "calls", "call", catalog.CALLS, 50_000_000_001)
CONTACTS = ObjectType(
    "0-1",
    "contacts",
    "contact",
    "CONTACT",
    "contactinformation",
    catalog.CONTACTS,
    "external_contact_id",
    # HubSpot: "include at least one of email, firstname or lastname" (imports say the
    # same: "One of [firstname, email, lastname]").
    (("email", "firstname", "lastname"),),
    "createdate",
    "lastmodifieddate",
    "contacts",
    _crm_schema_scopes("contacts"),
    ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    51_000_000_001,
    email_key=True,
)
COMPANIES = ObjectType(
    "0-2",
    "companies",
    "company",
    "COMPANY",
    "companyinformation",
    catalog.COMPANIES,
    "external_company_id",
    (("name", "domain"),),
    "createdate",
    "hs_lastmodifieddate",
    "companies",
    _crm_schema_scopes("companies"),
    ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    52_000_000_001,
)
DEALS = ObjectType(
    "0-3",
    "deals",
    "deal",
    "DEAL",
    "dealinformation",
    catalog.DEALS,
    "external_deal_id",
    # The portal has two pipelines, so pipeline is required too (DOC-deals).
    (("dealname",), ("dealstage",), ("pipeline",)),
    "createdate",
    "hs_lastmodifieddate",
    "deals",
    _crm_schema_scopes("deals"),
    (
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ),
    53_000_000_001,
)
TICKETS = ObjectType(
    "0-5",
    "tickets",
    "ticket",
    "TICKET",
    "ticketinformation",
    catalog.TICKETS,
    "external_ticket_id",
    (("subject",), ("hs_pipeline",), ("hs_pipeline_stage",)),
    "createdate",
    "hs_lastmodifieddate",
    "tickets",
    _crm_schema_scopes("tickets"),
    (
        "content",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_category",
        "hs_ticket_priority",
        "subject",
    ),
    54_000_000_001,
)
EMAILS = _activity("0-49", "emails", "email", catalog.EMAILS, 55_000_000_001)
MEETINGS = _activity("0-47", "meetings", "meeting", catalog.MEETINGS, 56_000_000_001)
NOTES = _activity("0-46", "notes", "note", catalog.NOTES, 57_000_000_001)
TASKS = _activity("0-27", "tasks", "task", catalog.TASKS, 58_000_000_001)
MACHINES = ObjectType(
    CUSTOM_TYPE_ID,
    "p_machines",
    "p_machine",
    CUSTOM_TYPE_ID,  # HubSpot's object-type enum has no name for a custom object
    "machine_information",
    catalog.MACHINES,
    "serial_number",
    (("machine_name",),),
    "hs_createdate",
    "hs_lastmodifieddate",
    "custom",
    ("crm.schemas.custom.read", "crm.objects.custom.read"),
    ("hs_createdate", "hs_lastmodifieddate", "hs_object_id", "machine_name"),
    59_000_000_001,
)

OBJECT_TYPES: tuple[ObjectType, ...] = (
    CALLS,
    CONTACTS,
    COMPANIES,
    DEALS,
    TICKETS,
    EMAILS,
    MEETINGS,
    NOTES,
    TASKS,
    MACHINES,
)
BY_TYPE_ID: Mapping[str, ObjectType] = {o.type_id: o for o in OBJECT_TYPES}


def _aliases(portal_id: int) -> dict[str, ObjectType]:
    table: dict[str, ObjectType] = {}
    for obj in OBJECT_TYPES:
        for name in obj.names:
            table[name] = obj
    # A custom object's fully qualified name carries the portal id (p21458763_machines).
    table[f"p{portal_id}_machines"] = MACHINES
    table[f"p{portal_id}_machine"] = MACHINES
    return table


_ALIAS_CACHE: dict[int, dict[str, ObjectType]] = {}


def resolve(name: str, portal_id: int = 21458763) -> ObjectType | None:
    """The object a path segment (or a config key) names, or None. Names are exact:
    `contacts`, `contact` and `0-1` all work; `Contacts` does not."""
    table = _ALIAS_CACHE.get(portal_id)
    if table is None:
        table = _ALIAS_CACHE[portal_id] = _aliases(portal_id)
    return table.get(name)


def object_names() -> str:
    return ", ".join(o.name for o in OBJECT_TYPES)


# --- associations


@dataclass(frozen=True, slots=True)
class AssociationType:
    category: str  # "HUBSPOT_DEFINED" or "USER_DEFINED"
    type_id: int
    label: str | None = None  # None for the unlabeled default

    def to_json(self) -> dict[str, object]:
        return {"category": self.category, "typeId": self.type_id, "label": self.label}


@dataclass(frozen=True, slots=True)
class PairTypes:
    """The association types from one object to another: the default (unlabeled) one
    and the others batch/create accepts, each with its reverse type."""

    default: AssociationType
    types: Mapping[tuple[str, int], AssociationType]  # (category, typeId) -> type
    reverse: Mapping[int, int]  # typeId -> the typeId of the other direction


# HubSpot's default (unlabeled) HUBSPOT_DEFINED type ids, from -> to (DOC-assoc's table).
_DEFAULTS: tuple[tuple[str, str, int], ...] = (
    ("calls", "contacts", 194), ("calls", "companies", 182), ("calls", "deals", 206),
    ("calls", "tickets", 220),
    ("emails", "contacts", 198), ("emails", "companies", 186), ("emails", "deals", 210),
    ("emails", "tickets", 224),
    ("meetings", "contacts", 200), ("meetings", "companies", 188), ("meetings", "deals", 212),
    ("meetings", "tickets", 226),
    ("notes", "contacts", 202), ("notes", "companies", 190), ("notes", "deals", 214),
    ("notes", "tickets", 228),
    ("tasks", "contacts", 204), ("tasks", "companies", 192), ("tasks", "deals", 216),
    ("tasks", "tickets", 230),
    ("contacts", "calls", 193), ("contacts", "emails", 197), ("contacts", "meetings", 199),
    ("contacts", "notes", 201), ("contacts", "tasks", 203),
    ("companies", "calls", 181), ("companies", "emails", 185), ("companies", "meetings", 187),
    ("companies", "notes", 189), ("companies", "tasks", 191),
    ("deals", "calls", 205), ("deals", "emails", 209), ("deals", "meetings", 211),
    ("deals", "notes", 213), ("deals", "tasks", 215),
    ("tickets", "calls", 219), ("tickets", "emails", 223), ("tickets", "meetings", 225),
    ("tickets", "notes", 227), ("tickets", "tasks", 229),
    ("contacts", "companies", 279), ("companies", "contacts", 280),
    ("deals", "contacts", 3), ("contacts", "deals", 4),
    ("tickets", "contacts", 16), ("contacts", "tickets", 15),
    ("deals", "companies", 341), ("companies", "deals", 342),
    ("tickets", "companies", 339), ("companies", "tickets", 340),
    ("tickets", "deals", 28), ("deals", "tickets", 27),
    ("contacts", "contacts", 449), ("companies", "companies", 450),
    ("deals", "deals", 451), ("tickets", "tickets", 452),
)  # fmt: skip
# Labeled HUBSPOT_DEFINED types (the "Primary" company, v1 ids 1/2, 5/6, 26/25).
_PRIMARY: tuple[tuple[str, str, int, int], ...] = (
    ("contacts", "companies", 1, 2),
    ("deals", "companies", 5, 6),
    ("tickets", "companies", 26, 25),
)
# A custom object's association types are made when its schema is defined, so their
# ids are portal data; these are the ones this portal's `machines` got (USER_DEFINED):
# (other object, machine -> other, other -> machine).
_CUSTOM: tuple[tuple[str, int, int], ...] = (
    ("contacts", 2001, 2002),
    ("companies", 2003, 2004),
    ("deals", 2005, 2006),
    ("tickets", 2007, 2008),
    ("calls", 2009, 2010),
)


def _association_table() -> dict[tuple[str, str], PairTypes]:
    ids = {o.name: o.type_id for o in OBJECT_TYPES}
    defaults = {(ids[f], ids[t]): type_id for f, t, type_id in _DEFAULTS}
    labeled: dict[tuple[str, str], list[tuple[AssociationType, int]]] = {}
    for f, t, type_id, reverse_id in _PRIMARY:
        labeled.setdefault((ids[f], ids[t]), []).append(
            (AssociationType("HUBSPOT_DEFINED", type_id, "Primary"), reverse_id)
        )
        labeled.setdefault((ids[t], ids[f]), []).append(
            (AssociationType("HUBSPOT_DEFINED", reverse_id, "Primary"), type_id)
        )
    table: dict[tuple[str, str], PairTypes] = {}
    for pair, type_id in defaults.items():
        default = AssociationType("HUBSPOT_DEFINED", type_id)
        reverse_default = defaults[(pair[1], pair[0])]
        types = {(default.category, default.type_id): default}
        reverse = {type_id: reverse_default}
        for extra, reverse_id in labeled.get(pair, []):
            types[(extra.category, extra.type_id)] = extra
            reverse[extra.type_id] = reverse_id
        table[pair] = PairTypes(default, types, reverse)
    for other, custom_to_other, other_to_custom in _CUSTOM:
        there = AssociationType("USER_DEFINED", custom_to_other)
        back = AssociationType("USER_DEFINED", other_to_custom)
        table[(CUSTOM_TYPE_ID, ids[other])] = PairTypes(
            there, {("USER_DEFINED", custom_to_other): there}, {custom_to_other: other_to_custom}
        )
        table[(ids[other], CUSTOM_TYPE_ID)] = PairTypes(
            back, {("USER_DEFINED", other_to_custom): back}, {other_to_custom: custom_to_other}
        )
    return table


ASSOCIATIONS: Mapping[tuple[str, str], PairTypes] = _association_table()


def association_types(from_type_id: str, to_type_id: str) -> PairTypes | None:
    return ASSOCIATIONS.get((from_type_id, to_type_id))


def default_type_ids() -> dict[str, dict[str, int]]:
    """{from object name: {to object name: default type id}} (for docs and tests)."""
    names = {o.type_id: o.name for o in OBJECT_TYPES}
    out: dict[str, dict[str, int]] = {}
    for (f, t), pair in ASSOCIATIONS.items():
        out.setdefault(names[f], {})[names[t]] = pair.default.type_id
    return out


def parse_object_property(text: str, default_object: str = "calls") -> tuple[ObjectType, str]:
    """`OBJECT.NAME` (or a bare `NAME` for `default_object`) -> (object, name)."""
    object_name, sep, name = text.rpartition(".")
    obj = resolve(object_name if sep else default_object)
    if obj is None:
        raise ValueError(
            f"unknown object {object_name!r} in {text!r}; known: {object_names()} "
            "(or a type id such as 0-1)"
        )
    if not name:
        raise ValueError(f"expected OBJECT.PROPERTY, not {text!r}")
    return obj, name


def group_by_object(
    items: Iterable[str], default_object: str = "calls"
) -> dict[str, tuple[str, ...]]:
    """`OBJECT.NAME` strings -> {object name: names}, keeping order and dropping repeats."""
    out: dict[str, dict[str, None]] = {}
    for item in items:
        obj, name = parse_object_property(item, default_object)
        out.setdefault(obj.name, {})[name] = None
    return {k: tuple(v) for k, v in out.items()}


def build_schema(
    obj: ObjectType, extra_unique: Iterable[str] = (), owner_ids: set[str] | None = None
) -> Schema:
    """A fresh schema of `obj`: its default properties, its own unique property, the
    extra unique ones, and owner rules against `owner_ids`."""
    return Schema(
        extra_unique,
        type_id=obj.type_id,
        defaults=obj.properties,
        unique_default=obj.unique_property,
        singular=obj.singular,
        group=obj.group,
        id_keys=("email",) if obj.email_key else (),
        owner_ids=owner_ids,
    )
