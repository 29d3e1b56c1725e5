"""The remote side: HubSpot's protocol (client), its answers (responses), its paths for both
API families (paths), its exceptions and its rate limits (ratelimit).

Knows nothing of the journal, the pipeline or the CLI.
"""

from __future__ import annotations

from bulkload.hubspot.client import HubSpotClient, Reply, UpsertResponse
from bulkload.hubspot.exceptions import (
    BatchRejected,
    RateLimited,
    RequestRejected,
    TransientError,
    UnexpectedResponse,
)
from bulkload.hubspot.paths import API_VERSIONS, DEFAULT_API_VERSION, ApiPaths, ApiVersion
from bulkload.hubspot.ratelimit import RateLimiter, RateLimitInfo

__all__ = [
    "API_VERSIONS",
    "DEFAULT_API_VERSION",
    "ApiPaths",
    "ApiVersion",
    "BatchRejected",
    "HubSpotClient",
    "RateLimitInfo",
    "RateLimited",
    "RateLimiter",
    "Reply",
    "RequestRejected",
    "TransientError",
    "UnexpectedResponse",
    "UpsertResponse",
]
