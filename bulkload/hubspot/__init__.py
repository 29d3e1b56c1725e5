"""The remote side: HubSpot's protocol (client), its error bodies (errors) and its rate limits.

Knows nothing of the journal, the pipeline or the CLI.
"""

from __future__ import annotations

from bulkload.hubspot.client import HubSpotClient, InputSuccess, UpsertResponse
from bulkload.hubspot.errors import InputFailure
from bulkload.hubspot.exceptions import (
    BatchRejected,
    RateLimited,
    TransientError,
    UnexpectedResponse,
)
from bulkload.hubspot.ratelimit import RateLimiter, RateLimitInfo
from bulkload.hubspot.types import UpsertInput, trace_id_of

__all__ = [
    "BatchRejected",
    "HubSpotClient",
    "InputFailure",
    "InputSuccess",
    "RateLimitInfo",
    "RateLimited",
    "RateLimiter",
    "TransientError",
    "UnexpectedResponse",
    "UpsertInput",
    "UpsertResponse",
    "trace_id_of",
]
