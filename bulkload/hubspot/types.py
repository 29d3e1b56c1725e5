"""The shapes of HubSpot's wire JSON for batch upsert, as TypedDicts.

These describe what HubSpot documents (see HUBSPOT.md sections 1.4, 1.5 and
2.3). HubSpot says to "treat all fields as optional" in error bodies, so the
parsers in this package never trust them: they read answers as plain JSON and
check every field; the TypedDicts are the vocabulary, not a validation.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from bulkload.models import UpsertInput, trace_id_of

__all__ = ["UpsertInput", "trace_id_of"]


class BatchUpsertRequest(TypedDict):
    inputs: list[UpsertInput]


class UpsertResult(TypedDict):
    """One element of `results[]` (SimplePublicUpsertObject)."""

    id: str
    new: bool
    archived: bool
    createdAt: str
    updatedAt: str
    properties: dict[str, str | None]
    objectWriteTraceId: NotRequired[str]
    archivedAt: NotRequired[str]
    url: NotRequired[str]


class ErrorDetail(TypedDict, total=False):
    """One element of `errors[]` inside an Error or StandardError."""

    message: str
    code: str
    # `in` is a Python keyword, so it cannot be declared here; parsers read it by key.
    subCategory: str
    context: dict[str, list[str]]


class StandardError(TypedDict, total=False):
    """One element of a 207 body's `errors[]`: the failure of one or more inputs."""

    status: str
    category: str
    message: str
    context: dict[str, list[str]]
    errors: list[ErrorDetail]
    links: dict[str, str]
    id: str
    subCategory: object


class BatchUpsertResponse(TypedDict):
    """A 200 (BatchResponseSimplePublicUpsertObject) or 207 (...WithErrors) body."""

    status: Literal["PENDING", "PROCESSING", "CANCELED", "COMPLETE"]
    results: list[UpsertResult]
    startedAt: str
    completedAt: str
    requestedAt: NotRequired[str]
    numErrors: NotRequired[int]
    errors: NotRequired[list[StandardError]]
    links: NotRequired[dict[str, str]]


class ErrorBody(TypedDict, total=False):
    """A whole-request error body (400, 401, 403, 409, ...): HubSpot's `Error` schema."""

    status: str
    message: str
    correlationId: str
    category: str
    subCategory: str
    context: dict[str, list[str]]
    errors: list[ErrorDetail]
    links: dict[str, str]


class RateLimitBody(TypedDict, total=False):
    """A 429 body. It has no `category`; `policyName` says which limit was hit."""

    status: str
    message: str
    errorType: Literal["RATE_LIMIT"]
    correlationId: str
    policyName: str  # TEN_SECONDLY_ROLLING | DAILY | SECONDLY (legacy)
    requestId: str
    groupName: str


class PropertyValidation(TypedDict, total=False):
    """One element of the JSON array embedded in "Property values were not valid: [...]"."""

    isValid: bool
    message: str
    error: str
    name: str
    localizedErrorMessage: str
    portalId: int

