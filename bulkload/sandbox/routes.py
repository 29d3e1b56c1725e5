"""HubSpot's paths, both families, parsed into a Route.

    legacy                                         date-based
    /crm/v3/objects/{o}/batch/upsert|read          /crm/objects/2026-03/{o}/batch/upsert|read
    /crm/v3/properties/{o}[/{name}]                /crm/properties/2026-03/{o}[/{name}]
    /crm/v3/owners[/{id}]                          /crm/owners/2026-03[/{id}]
    /crm/v4/associations/{f}/{t}/batch/{action}    /crm/associations/2026-03/{f}/{t}/batch/{action}
    /crm/v4/objects/{f}/{id}/associations/{t}      /crm/objects/2026-03/{f}/{id}/associations/{t}

with {action} one of associate/default, create, archive. Each route names its
path family (`v3`, `v4`, `2026-03`) and its kind, which the counters use. Paths
repeat, so parsed routes are cached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DATE_VERSION = "2026-03"

_SEG = r"([^/]+)"
_PATTERNS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(rf"/crm/v3/objects/{_SEG}/batch/(upsert|read)"), "v3", "batch"),
    (re.compile(rf"/crm/objects/{DATE_VERSION}/{_SEG}/batch/(upsert|read)"), DATE_VERSION, "batch"),
    (re.compile(rf"/crm/v3/properties/{_SEG}(?:/{_SEG})?"), "v3", "properties"),
    (re.compile(rf"/crm/properties/{DATE_VERSION}/{_SEG}(?:/{_SEG})?"), DATE_VERSION, "properties"),
    (re.compile(r"/crm/v3/owners(?:/([^/]*))?"), "v3", "owners"),
    (re.compile(rf"/crm/owners/{DATE_VERSION}(?:/([^/]*))?"), DATE_VERSION, "owners"),
    (
        re.compile(rf"/crm/v4/associations/{_SEG}/{_SEG}/batch/(associate/default|create|archive)"),
        "v4",
        "associate",
    ),
    (
        re.compile(
            rf"/crm/associations/{DATE_VERSION}/{_SEG}/{_SEG}/batch/"
            r"(associate/default|create|archive)"
        ),
        DATE_VERSION,
        "associate",
    ),
    (re.compile(rf"/crm/v4/objects/{_SEG}/{_SEG}/associations/{_SEG}"), "v4", "association_read"),
    (
        re.compile(rf"/crm/objects/{DATE_VERSION}/{_SEG}/{_SEG}/associations/{_SEG}"),
        DATE_VERSION,
        "association_read",
    ),
)


@dataclass(frozen=True, slots=True)
class Route:
    kind: str  # "upsert" | "read" | "properties" | "owners" | "associate" | "association_read"
    family: str  # "v3" | "v4" | "2026-03"
    object_type: str = ""  # the (from) object as the path names it
    name: str | None = None  # property name, owner id, association action, or record id
    to_object_type: str = ""  # associations: the "to" object

    @property
    def date_based(self) -> bool:
        return self.family == DATE_VERSION


def _parse(path: str) -> Route | None:
    for pattern, family, kind in _PATTERNS:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        if kind == "batch":
            return Route(match[2], family, match[1])
        if kind == "properties":
            return Route(kind, family, match[1], match[2])
        if kind == "owners":
            return Route(kind, family, "", match[1] or None)
        if kind == "associate":
            return Route(kind, family, match[1], match[3], match[2])
        return Route(kind, family, match[1], match[2], match[3])
    return None


_CACHE: dict[str, Route | None] = {}


def route(path: str) -> Route | None:
    """The route of an API path, or None for a path HubSpot does not serve."""
    try:
        return _CACHE[path]
    except KeyError:
        pass
    target = _parse(path)
    if len(_CACHE) >= 4096:  # paths carry ids (association reads): keep the cache small
        _CACHE.clear()
    _CACHE[path] = target
    return target
