"""bulkload: load large call datasets into HubSpot through the CRM batch upsert API."""

from __future__ import annotations

__version__ = "0.1.0"
