"""Every HubSpot path the loader sends to, for both API families, built in one place.

HubSpot's date-based versions (`2026-03`, GA April 2026) put the version after the API
name (`/crm/objects/2026-03/calls/batch/upsert`); the legacy family spells it `/crm/v3/...`
and, for associations, `/crm/v4/...`. v4 paths are unsupported from 30 March 2027 and
v3 paths from September 2027 (HUBSPOT.md section 8), so `2026-03` is the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from bulkload.config import API_VERSIONS, DEFAULT_API_VERSION, ApiVersion

__all__ = ["API_VERSIONS", "DEFAULT_API_VERSION", "ApiPaths", "ApiVersion"]


def _seg(text: str) -> str:
    return quote(text, safe="")


@dataclass(frozen=True)
class ApiPaths:
    """The paths of one API family."""

    version: ApiVersion = DEFAULT_API_VERSION

    def __post_init__(self) -> None:
        if self.version not in API_VERSIONS:
            raise ValueError(f"unknown API version {self.version!r}; known: {', '.join(API_VERSIONS)}")

    @property
    def dated(self) -> bool:
        return self.version != "v3"

    def _objects(self) -> str:
        return f"/crm/objects/{self.version}" if self.dated else "/crm/v3/objects"

    def batch_upsert(self, object_type: str) -> str:
        return f"{self._objects()}/{_seg(object_type)}/batch/upsert"

    def batch_read(self, object_type: str) -> str:
        return f"{self._objects()}/{_seg(object_type)}/batch/read"

    def properties(self, object_type: str) -> str:
        base = f"/crm/properties/{self.version}" if self.dated else "/crm/v3/properties"
        return f"{base}/{_seg(object_type)}"

    def owners(self) -> str:
        return f"/crm/owners/{self.version}" if self.dated else "/crm/v3/owners"

    def associate_default(self, from_type: str, to_type: str) -> str:
        base = f"/crm/associations/{self.version}" if self.dated else "/crm/v4/associations"
        return f"{base}/{_seg(from_type)}/{_seg(to_type)}/batch/associate/default"
