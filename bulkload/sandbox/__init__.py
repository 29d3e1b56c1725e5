"""A local HubSpot-compatible server (every CRM object's batch upsert and read,
properties, owners, associations; /crm/v3 and date-based paths): the project's
test bed.

It imports nothing from the rest of bulkload: it is the oracle the loader is
tested against, and shared code would hide protocol bugs on both sides.

    from bulkload.sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(tokens=("t",))) as sandbox:
        ...  # point a client at sandbox.base_url

Modules: config (knobs), wire (HubSpot's bodies), schema (an object's properties),
catalog (HubSpot's default properties), objects (the objects, their names and
association types), validate (value rules), store (records, SQLite), upsert
(batch semantics), reads (batch read), associations, owners, ratelimit, faults,
state (all of it together), routes (both path families), app (ASGI), server (a
thread, or the foreground), process (a child process), command (click).
"""

from __future__ import annotations

from bulkload.sandbox.command import sandbox_command
from bulkload.sandbox.config import FaultKind, SandboxConfig
from bulkload.sandbox.objects import default_type_ids
from bulkload.sandbox.owners import owner_email, owner_id
from bulkload.sandbox.process import SandboxProcess
from bulkload.sandbox.server import SandboxServer, serve
from bulkload.sandbox.state import seeded_contact, seeded_contact_id

__all__ = [
    "FaultKind",
    "SandboxConfig",
    "SandboxProcess",
    "SandboxServer",
    "default_type_ids",
    "owner_email",
    "owner_id",
    "sandbox_command",
    "seeded_contact",
    "seeded_contact_id",
    "serve",
]
