"""What the portal says before anything is written: the object's properties and, when an
owner property is sent, its owners. Read once per run through the sender's request loop
(the limiter, backoff, the budget, the stop signal), kept in the journal.

A read the token may not make (403) is not an error: that check is left to HubSpot.
The properties then come from the copy an earlier run of the job kept, else only datetimes
are known (the portal may have options of its own: HubSpot judges); the owners are left
out (owner ids go to HubSpot as they are; an owner's e-mail cannot be resolved).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from bulkload.checks import Owners
from bulkload.errors import AuthError
from bulkload.hubspot import HubSpotClient
from bulkload.journal import Journal
from bulkload.mapping import Schema
from bulkload.sender import Sender

# How many owner pages a portal may have before bulkload stops reading (500 a page).
MAX_OWNER_PAGES = 200


def properties_key(object_type: str) -> str:
    return f"properties:{object_type}"


def read_portal(sender: Sender, client: HubSpotClient, journal: Journal | None, object_type: str,
                sends: Sequence[str]) -> Schema:
    """The schema the checks use, with the owners when `sends` (the properties the job
    sends) holds an owner property. Records what was read in `journal` (a dry run passes
    None)."""
    kept: list[tuple[str, str, Any]] = []
    key = properties_key(object_type)
    try:
        items = sender.call("schema", lambda: client.list_properties(object_type))
    except AuthError as e:
        if e.status != 403:
            raise
        earlier = journal.portal(key) if journal is not None else None
        if earlier is not None and earlier[1] is not None:
            schema = Schema.from_api_properties(earlier[1], object_type, source="kept")
            kept.append((key, "kept", None))
        else:
            schema = Schema.fallback()
            kept.append((key, "refused", None))
    else:
        schema = Schema.from_api_properties(items, object_type)
        kept.append((key, "read", items))
    owner_props = [n for n in sends if schema.info(n).owner]
    if owner_props:
        owners = _read_owners(sender, client)
        kept.append(("owners", "read" if owners is not None else "refused", None))
        if owners is not None:
            schema = Schema(schema.properties, schema.source, Owners.from_api(owners))
    else:
        kept.append(("owners", "skipped", None))
    if journal is not None:
        journal.keep_portal(kept)
    return schema


def read_properties(sender: Sender, client: HubSpotClient, object_type: str) -> list[dict[str, Any]] | None:
    """Another object's properties (an association target's); None when refused (403)."""
    try:
        return sender.call("schema", lambda: client.list_properties(object_type))
    except AuthError as e:
        if e.status == 403:
            return None
        raise


def _read_owners(sender: Sender, client: HubSpotClient) -> list[dict[str, object]] | None:
    """Every active owner, page by page; None when the token may not read them (403)."""
    out: list[dict[str, object]] = []
    after: str | None = None
    try:
        for _ in range(MAX_OWNER_PAGES):
            page = sender.call("schema", functools.partial(client.list_owners, after))
            out.extend(page.owners)
            after = page.after
            if after is None:
                break
    except AuthError as e:
        if e.status != 403:
            raise
        return None
    return out


def checks_ran(states: dict[str, str], object_type: str) -> dict[str, str]:
    """For `status`: which checks ran against the portal at the last run.

    `schema`: `portal` (read), `kept` (refused; an earlier run's copy), or `hubspot`
    (refused: the checks are left to HubSpot, but datetimes). `owners`: `portal`,
    `hubspot` (refused: owner ids left to HubSpot), or `not needed`.
    """
    schema = states.get(properties_key(object_type))
    owners = states.get("owners")
    if schema is None:
        schema_check = "not read yet"
    elif schema == "read":
        schema_check = "portal"
    elif schema == "kept":
        schema_check = "kept"
    else:
        schema_check = "hubspot"
    owner_check = {"read": "portal", "refused": "hubspot", "skipped": "not needed"}.get(owners or "", "not read yet")
    return {"schema": schema_check, "owners": owner_check}
