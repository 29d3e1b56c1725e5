"""HubSpot's wire shapes: error bodies in HubSpot's exact wording, and timestamps.

Every body that a client might match on is built here, so its wording lives in
one place (see ../shared/HUBSPOT.md sections 1.5, 2.3). Keys are emitted in the
order HubSpot's captured bodies show them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, NotRequired, TypedDict, cast

import orjson

JSON_CONTENT_TYPE = b"application/json;charset=utf-8"


AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
    "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
SCOPES_MESSAGE = (
    "This app hasn't been granted all required scopes to make this call. "
    "Read more about required scopes here: https://developers.hubspot.com/scopes."
)
# Validation rules of the portal (HubSpot's 2026-09 write validation): the wording of
# the changelog's example for a property required by the portal.
RULE_MESSAGE = "The property values provided are invalid"
RULE_CODE = "MISSING_REQUIRED_PROPERTY"


def required_message(label: str) -> str:
    """`Error creating CALL.  Some required properties were not set.` (two spaces after
    the period, as the captured bodies have it)."""
    return f"Error creating {label}.  Some required properties were not set."


def rule_detail_message(name: str) -> str:
    return f"A value for {name} must be provided"


def not_found_message(label: str) -> str:
    """A batch read's OBJECT_NOT_FOUND error, as captured from HubSpot."""
    return (
        f"Could not get some {label} objects, they may be deleted or not exist. "
        "Check that ids are valid."
    )


def non_unique_message(type_id: str, name: str) -> str:
    return f"Unable to perform update/upsert by non-unique {type_id} property {name}"


def too_many_inputs(limit: int) -> ApiError:
    return api_error(
        400,
        f"The maximum number of inputs supported in a batch request is {limit}. "
        "Please reduce the number of items and try again",
        "VALIDATION_ERROR",
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ErrorDetail(TypedDict):
    message: str
    code: NotRequired[str]
    context: NotRequired[dict[str, list[str]]]


class ErrorBody(TypedDict):
    """HubSpot's `Error` (whole request) and, with `context.objectWriteTraceId`, `StandardError`."""

    status: str
    message: str
    correlationId: NotRequired[str]
    category: str
    context: NotRequired[dict[str, list[str]]]
    errors: NotRequired[list[ErrorDetail]]
    links: NotRequired[dict[str, str]]


class RateLimitBody(TypedDict):
    status: str
    message: str
    errorType: str
    correlationId: str
    policyName: str
    requestId: str


class UpsertResult(TypedDict):
    id: str
    properties: dict[str, str]
    createdAt: str
    updatedAt: str
    archived: bool
    new: bool
    objectWriteTraceId: NotRequired[str]


class ApiError(Exception):
    """A whole-request failure: the HTTP status and the JSON body to send."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body.get('message')}")
        self.status = status
        self.body = body


def correlation_id() -> str:
    return str(uuid.uuid4())


def dumps(body: Any) -> bytes:
    return orjson.dumps(body)


_second_prefixes: dict[int, str] = {}


def iso_from_ms(ms: int) -> str:
    """Epoch milliseconds -> `2024-05-01T10:00:01.234Z` (always three fraction digits)."""
    seconds, millis = divmod(ms, 1000)
    prefix = _second_prefixes.get(seconds)
    if prefix is None:
        # Building a datetime costs microseconds and a batch's timestamps share
        # a few seconds, so the "YYYY-MM-DDTHH:MM:SS" part is cached per second.
        dt = _EPOCH + timedelta(seconds=seconds)
        prefix = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
        if len(_second_prefixes) >= 65_536:
            _second_prefixes.clear()
        _second_prefixes[seconds] = prefix
    return f"{prefix}.{millis:03d}Z"


def error_body(
    message: str,
    category: str,
    *,
    context: dict[str, list[str]] | None = None,
    errors: list[ErrorDetail] | None = None,
    links: dict[str, str] | None = None,
) -> ErrorBody:
    """A whole-request error body with a fresh correlationId."""
    # Built as a plain dict so `category` lands last, where HubSpot puts it.
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": correlation_id(),
    }
    if errors is not None:
        body["errors"] = errors
    if context is not None:
        body["context"] = context
    if links is not None:
        body["links"] = links
    body["category"] = category
    return cast(ErrorBody, body)


def api_error(status: int, message: str, category: str, **extra: Any) -> ApiError:
    return ApiError(status, dict(error_body(message, category, **extra)))


def invalid_json(reason: str, line: int | None = None, column: int | None = None) -> ApiError:
    """A body that cannot be read as the request type (HubSpot's Jackson wording)."""
    where = f" on line {line}, column {column}" if line is not None else ""
    return api_error(400, f"Invalid input JSON{where}: {reason}", "VALIDATION_ERROR")


def missing_attributes(type_name: str, names: list[str]) -> ApiError:
    reason = (
        f"Cannot build {type_name}, some of required attributes are not set [{', '.join(names)}]"
    )
    return invalid_json(reason)


def json_kind(value: Any) -> str:
    """Jackson's name for the JSON type of `value` ("Number", "Object", ...)."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int | float):
        return "Number"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    return "String"


def non_string(value: Any, batch_type: str, position: int, field: str) -> ApiError:
    """A JSON number (or other non-string) where HubSpot's schema says string."""
    return invalid_json(
        f"Cannot deserialize value of type `java.lang.String` from {json_kind(value)} value "
        f'(through reference chain: {batch_type}["inputs"]->java.util.ArrayList[{position}]'
        f'->["{field}"])'
    )


def unauthorized() -> ApiError:
    return api_error(401, AUTH_MESSAGE, "INVALID_AUTHENTICATION")


def missing_scopes(scopes: list[str]) -> ApiError:
    detail: ErrorDetail = {
        "message": "One or more of the following scopes are required.",
        "context": {"requiredGranularScopes": scopes},
    }
    return api_error(
        403,
        SCOPES_MESSAGE,
        "MISSING_SCOPES",
        errors=[detail],
        links={"scopes": "https://developers.hubspot.com/scopes"},
    )


def not_found(message: str = "resource not found", category: str = "OBJECT_NOT_FOUND") -> ApiError:
    return api_error(404, message, category)


def rate_limited(policy: str) -> RateLimitBody:
    """The 429 body: `errorType`, `policyName`, `requestId`, and no `category`."""
    message = (
        "You have reached your daily limit."
        if policy == "DAILY"
        else "You have reached your ten_secondly_rolling limit."
    )
    return {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
        "requestId": correlation_id(),
    }
