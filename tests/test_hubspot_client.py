"""HubSpotClient over httpx.MockTransport: every status HubSpot can answer, and its error bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from bulkload.errors import EXIT_AUTH, EXIT_RESUMABLE, AuthError, InputError
from bulkload.hubspot.client import HubSpotClient, UpsertResponse, parse_retry_after
from bulkload.hubspot.exceptions import (
    BatchRejected,
    RateLimited,
    RequestRejected,
    TransientError,
    UnexpectedResponse,
)
from bulkload.hubspot.ratelimit import RateLimitInfo
from bulkload.hubspot.responses import classify, embedded_validations, failures_from_multi_status
from bulkload.hubspot.types import UpsertInput
from bulkload.taxonomy import ErrorType

TOKEN = "pat-na1-0123456789abcdef-SECRET"
BASE = "https://api.hubapi.test"
UPSERT = "/crm/v3/objects/calls/batch/upsert"
RATE_HEADERS = {
    "X-HubSpot-RateLimit-Max": "190",
    "X-HubSpot-RateLimit-Remaining": "187",
    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
    "X-HubSpot-RateLimit-Daily": "625000",
    "X-HubSpot-RateLimit-Daily-Remaining": "624000",
}
CORRELATION = "8a3f6c3a-8296-4002-b0a6-2a06fecf7c0c"

Handler = Callable[[httpx.Request], httpx.Response]


def make_inputs(n: int) -> list[UpsertInput]:
    return [
        {
            "idProperty": "external_call_id",
            "id": f"call-{i:03d}",
            "properties": {
                "hs_timestamp": "2024-05-01T10:00:00Z",
                "hs_call_status": "COMPLETED",
                "hs_call_duration": "60000",
            },
            "objectWriteTraceId": f"row-{i}",
        }
        for i in range(n)
    ]


def result_for(
    inp: UpsertInput, record_id: int, *, new: bool = True, echo_trace: bool = True
) -> dict[str, object]:
    result: dict[str, object] = {
        "id": str(record_id),
        "new": new,
        "archived": False,
        "createdAt": "2024-05-01T10:00:01.234Z",
        "updatedAt": "2024-05-01T10:00:01.234Z",
        "properties": {
            "hs_object_id": str(record_id),
            "external_call_id": inp["id"],
            **inp["properties"],
        },
    }
    if echo_trace:
        result["objectWriteTraceId"] = inp["objectWriteTraceId"]
    return result


def reply(
    status: int,
    body: object = None,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    hdrs = {"content-type": "application/json;charset=utf-8", **(headers or {})}
    if content is None:
        content = orjson.dumps(body) if body is not None else b""
    return httpx.Response(status, headers=hdrs, content=content)


def client_for(handler: Handler, **kwargs: object) -> HubSpotClient:
    return HubSpotClient(BASE, TOKEN, transport=httpx.MockTransport(handler), **kwargs)  # type: ignore[arg-type]


def upsert_with(response: httpx.Response, inputs: list[UpsertInput]) -> UpsertResponse:
    with client_for(lambda request: response) as client:
        return client.upsert_batch("calls", inputs)


def validation_message(*items: tuple[str, str, str]) -> str:
    """HubSpot's 'Property values were not valid: [...]' message, items (code, name, message)."""
    array = [
        {
            "isValid": False,
            "message": msg,
            "error": code,
            "name": name,
            "localizedErrorMessage": msg,
            "portalId": 891936587,
        }
        for code, name, msg in items
    ]
    return "Property values were not valid: " + json.dumps(array, separators=(",", ":"))


# --- 200 and 207 ------------------------------------------------------------------------


def test_200_maps_results_by_trace_id_and_sends_the_documented_request() -> None:
    inputs = make_inputs(3)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        results = [
            result_for(inputs[2], 12, new=False),
            result_for(inputs[0], 10),
            result_for(inputs[1], 11),
        ]
        body = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": "2024-05-01T10:00:01Z",
            "completedAt": "2024-05-01T10:00:02Z",
        }
        return reply(200, body, headers=RATE_HEADERS)

    with client_for(handler) as client:
        response = client.upsert_batch("calls", inputs)

    request = seen[0]
    assert request.method == "POST"
    assert request.url.path == UPSERT
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert orjson.loads(request.content) == {"inputs": inputs}
    assert response.http_status == 200
    assert [(s.trace_id, s.record_id, s.created) for s in response.successes] == [
        ("row-0", "10", True),
        ("row-1", "11", True),
        ("row-2", "12", False),
    ]
    assert response.failures == [] and response.missing == []
    assert response.rate == RateLimitInfo(
        max=190, remaining=187, interval_ms=10000, daily=625000, daily_remaining=624000
    )


def test_200_without_trace_ids_falls_back_to_the_id_property_value() -> None:
    inputs = make_inputs(2)
    results = [
        result_for(inputs[1], 21, echo_trace=False),
        result_for(inputs[0], 20, echo_trace=False),
    ]
    response = upsert_with(reply(200, {"status": "COMPLETE", "results": results}), inputs)
    assert [(s.trace_id, s.record_id) for s in response.successes] == [
        ("row-0", "20"),
        ("row-1", "21"),
    ]


def test_207_out_of_order_with_per_input_errors() -> None:
    inputs = make_inputs(4)
    inputs[1]["properties"]["missing"] = "x"
    inputs[3]["properties"]["hs_call_status"] = "DONE"
    errors = [
        {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": validation_message(
                (
                    "INVALID_OPTION",
                    "hs_call_status",
                    "DONE was not one of the allowed options: [BUSY, COMPLETED]",
                )
            ),
            "context": {"objectWriteTraceId": ["row-3"]},
        },
        {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": validation_message(
                ("PROPERTY_DOESNT_EXIST", "missing", 'Property "missing" does not exist')
            ),
            "context": {"objectWriteTraceId": ["row-1"]},
        },
    ]
    body = {
        "status": "COMPLETE",
        "numErrors": 2,
        "errors": errors,
        "results": [result_for(inputs[2], 32), result_for(inputs[0], 30)],
    }
    response = upsert_with(
        reply(207, body, headers={"X-HubSpot-Correlation-Id": CORRELATION}), inputs
    )

    assert response.http_status == 207
    assert [s.trace_id for s in response.successes] == ["row-0", "row-2"]
    by_trace = {f.trace_id: f for f in response.failures}
    assert set(by_trace) == {"row-1", "row-3"}
    enum = by_trace["row-3"]
    assert (
        enum.error_type,
        enum.category,
        enum.property_name,
        enum.invalid_value,
        enum.hubspot_code,
    ) == ("INVALID_ENUM_PROPERTY", "PICKLISTS", "hs_call_status", "DONE", "INVALID_OPTION")
    assert enum.message.startswith("Property values were not valid: [")  # HubSpot's words, kept
    assert enum.http_status == 207 and enum.hubspot_category == "VALIDATION_ERROR"
    assert enum.correlation_id == CORRELATION
    missing = by_trace["row-1"]
    assert (missing.error_type, missing.category, missing.property_name, missing.invalid_value) == (
        "PROPERTY_DOESNT_EXIST",
        "PROPERTY_MAPPINGS",
        "missing",
        "x",
    )
    assert response.missing == []


def test_207_with_empty_results_reports_unmentioned_inputs_as_missing() -> None:
    inputs = make_inputs(3)
    errors = [
        {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": validation_message(
                ("INVALID_LONG", "hs_timestamp", "tomorrow was not a valid long.")
            ),
            "context": {"objectWriteTraceId": ["row-0"]},
        }
    ]
    response = upsert_with(
        reply(207, {"status": "COMPLETE", "results": [], "numErrors": 1, "errors": errors}), inputs
    )
    assert response.successes == []
    assert [f.error_type for f in response.failures] == ["INVALID_TIMESTAMP"]
    assert response.missing == ["row-1", "row-2"]


def test_207_error_naming_no_input_goes_to_the_one_unanswered_input() -> None:
    inputs = make_inputs(2)
    errors = [
        {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "discount was not a valid number",
            "errors": [
                {
                    "message": "discount was not a valid number",
                    "code": "INVALID_INTEGER",
                    "context": {"propertyName": ["hs_call_duration"]},
                }
            ],
            "context": {},
        }
    ]
    body = {"status": "COMPLETE", "results": [result_for(inputs[0], 1)], "errors": errors}
    response = upsert_with(reply(207, body), inputs)
    assert response.missing == []
    (failure,) = response.failures
    assert (failure.trace_id, failure.error_type, failure.invalid_value) == (
        "row-1",
        "INVALID_NUMBER",
        "60000",
    )


def test_200_with_empty_results_marks_everything_missing() -> None:
    inputs = make_inputs(2)
    response = upsert_with(reply(200, {"status": "COMPLETE", "results": []}), inputs)
    assert response.missing == ["row-0", "row-1"]


@pytest.mark.parametrize(
    "content", [b"{not json", b"[]", b'{"status": "COMPLETE"}', b'{"results": 3}', b""]
)
def test_2xx_that_cannot_be_read_is_transient(content: bytes) -> None:
    with pytest.raises(TransientError) as info:
        upsert_with(reply(200, content=content), make_inputs(1))
    assert info.value.status == 200


def test_duplicate_trace_ids_are_refused_before_sending() -> None:
    inputs = make_inputs(2)
    inputs[1]["objectWriteTraceId"] = "row-0"
    with pytest.raises(ValueError):
        upsert_with(reply(200, {"results": []}), inputs)


# --- whole-request rejections -----------------------------------------------------------


def test_400_property_validation_with_embedded_json_on_a_single_input() -> None:
    inputs = make_inputs(1)
    inputs[0]["properties"]["testproperty"] = "v"
    body = {
        "status": "error",
        "message": validation_message(
            ("PROPERTY_DOESNT_EXIST", "testproperty", 'Property "testproperty" does not exist')
        ),
        "correlationId": CORRELATION,
        "errors": [
            {
                "message": 'Property "testproperty" does not exist',
                "code": "PROPERTY_DOESNT_EXIST",
                "context": {"propertyName": ["testproperty"]},
            }
        ],
        "category": "VALIDATION_ERROR",
    }
    with pytest.raises(BatchRejected) as info:
        upsert_with(reply(400, body), inputs)
    rejected = info.value
    assert rejected.status == 400 and rejected.correlation_id == CORRELATION
    (failure,) = rejected.failures
    assert failure.trace_id == "row-0"
    assert (
        failure.error_type,
        failure.property_name,
        failure.invalid_value,
        failure.hubspot_code,
    ) == ("PROPERTY_DOESNT_EXIST", "testproperty", "v", "PROPERTY_DOESNT_EXIST")
    assert failure.correlation_id == CORRELATION


def test_400_on_a_many_input_batch_names_no_input() -> None:
    body = {
        "status": "error",
        "message": "discount was not a valid number",
        "correlationId": CORRELATION,
        "errors": [
            {
                "message": "discount was not a valid number",
                "code": "INVALID_INTEGER",
                "context": {"propertyName": ["discount"]},
            }
        ],
        "category": "VALIDATION_ERROR",
    }
    with pytest.raises(BatchRejected) as info:
        upsert_with(reply(400, body), make_inputs(5))
    assert info.value.attributed == {}
    (failure,) = info.value.failures
    assert (failure.trace_id, failure.error_type, failure.property_name) == (
        None,
        "INVALID_NUMBER",
        "discount",
    )


def test_400_duplicate_ids_are_tied_to_the_inputs_by_context_ids() -> None:
    inputs = make_inputs(3)
    inputs[2]["id"] = inputs[0]["id"]
    body = {
        "status": "error",
        "message": f"Duplicate IDs found in batch input: [{inputs[0]['id']}]. IDs must be unique",
        "correlationId": CORRELATION,
        "context": {"ids": [inputs[0]["id"]]},
        "category": "VALIDATION_ERROR",
    }
    with pytest.raises(BatchRejected) as info:
        upsert_with(reply(400, body), inputs)
    attributed = info.value.attributed
    assert set(attributed) == {"row-0", "row-2"}
    assert {f.error_type for f in attributed.values()} == {"DUPLICATE_ID_IN_SOURCE"}


def test_400_non_unique_id_property_is_about_the_request() -> None:
    # Every batch would get the same answer: the client says so, and the run stops on it.
    body = {
        "status": "error",
        "message": "Unable to perform update/upsert by non-unique 0-48 property hs_call_title in portal ID 21939747",
        "correlationId": CORRELATION,
        "category": "VALIDATION_ERROR",
    }
    with pytest.raises(RequestRejected) as info:
        upsert_with(reply(400, body), make_inputs(4))
    assert info.value.status == 400
    assert "non-unique 0-48 property" in str(info.value)


def test_400_missing_required_property() -> None:
    inputs = make_inputs(1)
    del inputs[0]["properties"]["hs_timestamp"]
    body = {
        "status": "error",
        "message": "Error creating CALL.  Some required properties were not set.",
        "correlationId": CORRELATION,
        "context": {"properties": ["hs_timestamp"]},
        "category": "VALIDATION_ERROR",
    }
    with pytest.raises(BatchRejected) as info:
        upsert_with(reply(400, body), inputs)
    (failure,) = info.value.failures
    assert (
        failure.trace_id,
        failure.error_type,
        failure.category,
        failure.property_name,
        failure.invalid_value,
    ) == ("row-0", "MISSING_REQUIRED_PROPERTY", "PROPERTY_VALUES", "hs_timestamp", None)


def test_409_conflict_is_a_batch_rejection() -> None:
    body = {
        "status": "error",
        "message": "A call with unique value already exists. Existing ID: 512",
        "correlationId": CORRELATION,
        "category": "CONFLICT",
    }
    with pytest.raises(BatchRejected) as info:
        upsert_with(reply(409, body), make_inputs(3))
    assert info.value.status == 409
    assert info.value.failures[0].error_type == "CONFLICTING_UNIQUE_VALUE"


def test_409_naming_trace_ids_is_attributed() -> None:
    body = {
        "status": "error",
        "message": "Conflict on unique property",
        "category": "CONFLICT",
        "context": {"objectWriteTraceId": ["row-1"]},
    }
    with pytest.raises(BatchRejected) as info:
        upsert_with(reply(409, body), make_inputs(3))
    assert list(info.value.attributed) == ["row-1"]


@pytest.mark.parametrize("status", [413, 414, 422])
def test_other_4xx_are_batch_rejections(status: int) -> None:
    with pytest.raises(BatchRejected) as info:
        upsert_with(reply(status, content=b"<html><title>Too big</title></html>"), make_inputs(2))
    assert info.value.status == status


def test_404_on_the_endpoint_is_not_about_the_inputs() -> None:
    body = {
        "status": "error",
        "message": "Unable to infer object type from: callz",
        "category": "OBJECT_NOT_FOUND",
    }
    with pytest.raises(UnexpectedResponse) as info:
        upsert_with(reply(404, body), make_inputs(2))
    assert info.value.status == 404
    assert not isinstance(info.value, BatchRejected)


# --- auth -----------------------------------------------------------------------------------


def test_401_raises_auth_error_without_the_token() -> None:
    body = {
        "status": "error",
        "message": "Authentication credentials not found. This API supports OAuth 2.0 "
        "authentication",
        "correlationId": CORRELATION,
        "category": "INVALID_AUTHENTICATION",
    }
    with pytest.raises(AuthError) as info:
        upsert_with(reply(401, body), make_inputs(1))
    assert info.value.status == 401 and info.value.exit_code == EXIT_AUTH
    assert "Authentication credentials not found" in str(info.value)
    assert TOKEN not in str(info.value)


def test_403_missing_scopes() -> None:
    body = {
        "status": "error",
        "message": "This app hasn't been granted all required scopes to make this call.",
        "correlationId": CORRELATION,
        "errors": [
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": ["crm.objects.contacts.write"]},
            }
        ],
        "links": {"scopes": "https://developers.hubspot.com/scopes"},
        "category": "MISSING_SCOPES",
    }
    with pytest.raises(AuthError) as info:
        upsert_with(reply(403, body), make_inputs(1))
    assert info.value.status == 403
    assert "MISSING_SCOPES" in str(info.value)


def test_a_token_echoed_by_the_server_is_redacted() -> None:
    body = {
        "status": "error",
        "message": f"bad token {TOKEN}",
        "category": "INVALID_AUTHENTICATION",
    }
    with pytest.raises(AuthError) as info:
        upsert_with(reply(401, body), make_inputs(1))
    assert TOKEN not in str(info.value)


# --- rate limits ----------------------------------------------------------------------------


def test_429_ten_secondly_without_retry_after() -> None:
    body = {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": CORRELATION,
        "policyName": "TEN_SECONDLY_ROLLING",
        "groupName": "publicapi:hapikey-api-calls-ten-secondly:6748263",
    }
    headers = {**RATE_HEADERS, "X-HubSpot-RateLimit-Remaining": "0"}
    with pytest.raises(RateLimited) as info:
        upsert_with(reply(429, body, headers=headers), make_inputs(1))
    limited = info.value
    assert (limited.policy, limited.retry_after, limited.daily) == (
        "TEN_SECONDLY_ROLLING",
        None,
        False,
    )
    assert limited.rate is not None and limited.rate.remaining == 0
    assert limited.exit_code == EXIT_RESUMABLE


def test_429_daily_with_retry_after_seconds() -> None:
    body = {
        "status": "error",
        "message": "You have reached your daily limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": CORRELATION,
        "policyName": "DAILY",
        "requestId": "3d3e35b7",
    }
    with pytest.raises(RateLimited) as info:
        upsert_with(reply(429, body, headers={"Retry-After": "3600"}), make_inputs(1))
    assert (info.value.policy, info.value.retry_after, info.value.daily) == ("DAILY", 3600.0, True)


def test_429_with_http_date_retry_after_and_no_body() -> None:
    future = "Wed, 21 Oct 2099 07:28:00 GMT"
    with pytest.raises(RateLimited) as info:
        upsert_with(reply(429, headers={"Retry-After": future}), make_inputs(1))
    assert info.value.policy is None
    assert info.value.retry_after is not None and info.value.retry_after > 3600


def test_parse_retry_after() -> None:
    now = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("5", now) == 5.0
    assert parse_retry_after(" 2.5 ", now) == 2.5
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after("Wed, 01 May 2024 10:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 01 May 2024 09:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("nan", now) is None
    assert parse_retry_after("", now) is None
    assert parse_retry_after(None, now) is None


def test_missing_or_garbage_rate_headers_are_none() -> None:
    inputs = make_inputs(1)
    body = {"status": "COMPLETE", "results": [result_for(inputs[0], 1)]}
    response = upsert_with(reply(200, body), inputs)
    assert response.rate == RateLimitInfo()
    garbage = {
        "X-HubSpot-RateLimit-Max": "lots",
        "X-HubSpot-RateLimit-Remaining": "-1",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
    }
    response = upsert_with(reply(200, body, headers=garbage), inputs)
    assert response.rate == RateLimitInfo(interval_ms=10000)


# --- transient failures -------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 521])
@pytest.mark.parametrize("json_body", [True, False])
def test_5xx_json_or_empty_is_transient(status: int, json_body: bool) -> None:
    body = (
        {"status": "error", "message": "internal error", "category": "INTERNAL_ERROR"}
        if json_body
        else None
    )
    with pytest.raises(TransientError) as info:
        upsert_with(reply(status, body, headers=RATE_HEADERS), make_inputs(2))
    assert info.value.status == status
    assert info.value.rate is not None and info.value.rate.max == 190
    assert ("internal error" in str(info.value)) == json_body


def test_524_cloudflare_html_is_transient() -> None:
    html = (
        b'<html><head><title>524 Origin Time-out</title></head><body bgcolor="white">'
        b"<center><h1>524 Origin Time-out</h1></center><hr><center>cloudflare</center></body></html>"
    )
    with pytest.raises(TransientError) as info:
        upsert_with(reply(524, content=html, headers={"content-type": "text/html"}), make_inputs(2))
    assert info.value.status == 524
    assert "524 Origin Time-out" in info.value.reason


def test_423_locked_is_transient() -> None:
    with pytest.raises(TransientError) as info:
        upsert_with(reply(423, {"status": "error", "message": "locked"}), make_inputs(2))
    assert info.value.status == 423


def test_477_migration_with_retry_after() -> None:
    with pytest.raises(TransientError) as info:
        upsert_with(
            reply(
                477,
                {"status": "error", "message": "Migration in progress"},
                headers={"Retry-After": "120"},
            ),
            make_inputs(2),
        )
    assert (info.value.status, info.value.retry_after) == (477, 120.0)


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("[Errno 104] Connection reset by peer"),
    ],
)
def test_network_failures_are_transient_without_status(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with client_for(handler) as client, pytest.raises(TransientError) as info:
        client.upsert_batch("calls", make_inputs(1))
    assert info.value.status is None
    assert TOKEN not in str(info.value)


def test_local_protocol_errors_are_not_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError(f"Illegal header value b'Bearer {TOKEN}'")

    with client_for(handler) as client, pytest.raises(UnexpectedResponse) as info:
        client.upsert_batch("calls", make_inputs(1))
    assert TOKEN not in str(info.value)


# --- construction, repr, properties --------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://api.hubapi.com", "http://10.0.0.5:8080", "ftp://api.hubapi.com", "nonsense"]
)
def test_refuses_plain_http_to_remote_hosts_and_odd_schemes(url: str) -> None:
    with pytest.raises(InputError):
        HubSpotClient(url, TOKEN)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://localhost:9000/",
        "http://[::1]:8080",
        "https://api.hubapi.com",
    ],
)
def test_accepts_https_and_loopback_http(url: str) -> None:
    HubSpotClient(url, TOKEN).close()


@pytest.mark.parametrize("token", ["", "has space", "line\nbreak"])
def test_refuses_tokens_that_cannot_be_a_header(token: str) -> None:
    with pytest.raises(InputError) as info:
        HubSpotClient(BASE, token)
    assert token not in str(info.value) or not token


def test_repr_does_not_show_the_token() -> None:
    with HubSpotClient(BASE, TOKEN) as client:
        assert TOKEN not in repr(client)
        assert TOKEN not in repr(client._transport)
        assert TOKEN not in str(client.paths)
        # It is held in one header, and there only.
        assert client._headers["Authorization"] == f"Bearer {TOKEN}"


def test_list_properties() -> None:
    prop = {
        "name": "external_call_id",
        "type": "string",
        "fieldType": "text",
        "hasUniqueValue": True,
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/crm/v3/properties/calls":
            return reply(200, {"results": [prop, {"name": "hs_timestamp", "type": "datetime"}]},
                         headers=RATE_HEADERS)
        return reply(
            404, {"status": "error", "message": "not found", "category": "OBJECT_NOT_FOUND"}
        )

    with client_for(handler) as client:
        answer = client.list_properties("calls")
        assert [p["name"] for p in answer.value] == [
            "external_call_id",
            "hs_timestamp",
        ]
        # Its rate headers come back too, for the limiter.
        assert (answer.status, answer.rate.max, answer.rate.remaining) == (200, 190, 187)
        with pytest.raises(RequestRejected):
            client.list_properties("nope")


def test_property_look_ups_raise_auth_and_transient_errors() -> None:
    with (
        client_for(
            lambda r: reply(403, {"message": "scopes", "category": "MISSING_SCOPES"})
        ) as client,
        pytest.raises(AuthError),
    ):
        client.list_properties("calls")
    with client_for(lambda r: reply(503)) as client, pytest.raises(TransientError):
        client.list_properties("calls")
    with (
        client_for(lambda r: reply(400, {"message": "bad"})) as client,
        pytest.raises(UnexpectedResponse),
    ):
        client.list_properties("calls")


def test_property_types_decide_what_invalid_long_means() -> None:
    inputs = make_inputs(1)
    inputs[0]["properties"]["my_field"] = "abc"
    errors = [
        {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": validation_message(
                ("INVALID_LONG", "my_field", "abc was not a valid long.")
            ),
            "context": {"objectWriteTraceId": ["row-0"]},
        }
    ]
    body = {"status": "COMPLETE", "results": [], "errors": errors}
    for declared, expected in [
        ("datetime", "INVALID_TIMESTAMP"),
        ("date", "INVALID_TIMESTAMP"),
        ("number", "INVALID_NUMBER"),
        ("enumeration", "INVALID_PROPERTY_VALUE"),
    ]:
        with client_for(
            lambda r: reply(207, body), property_types={"my_field": declared}
        ) as client:
            (failure,) = client.upsert_batch("calls", inputs).failures
        assert failure.error_type == expected, declared


# --- the error taxonomy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "category", "prop", "expected"),
    [
        (
            "PROPERTY_DOESNT_EXIST",
            'Property "x" does not exist',
            "VALIDATION_ERROR",
            "x",
            ErrorType.PROPERTY_DOESNT_EXIST,
        ),
        (
            "INVALID_OPTION",
            "reports was not one of the allowed options: [A, B]",
            "VALIDATION_ERROR",
            "hs_call_status",
            ErrorType.INVALID_ENUM_PROPERTY,
        ),
        (
            "INVALID_LONG",
            "tomorrow was not a valid long.",
            "VALIDATION_ERROR",
            "hs_timestamp",
            ErrorType.INVALID_TIMESTAMP,
        ),
        (
            "INVALID_LONG",
            "sixty was not a valid long.",
            "VALIDATION_ERROR",
            "hs_call_duration",
            ErrorType.INVALID_NUMBER,
        ),
        (
            "INVALID_DATE",
            "1521225089103 is at 18:31:29.103 UTC, not midnight!",
            "VALIDATION_ERROR",
            "my_date",
            ErrorType.INVALID_TIMESTAMP,
        ),
        (
            "INVALID_INTEGER",
            "discount was not a valid number",
            "VALIDATION_ERROR",
            "discount",
            ErrorType.INVALID_NUMBER,
        ),
        (
            "INVALID_EMAIL",
            "Email address name@domain.x is invalid",
            "VALIDATION_ERROR",
            "email",
            ErrorType.INVALID_EMAIL_ADDRESS,
        ),
        (
            "STRING_TOO_LONG",
            "value is too long",
            "VALIDATION_ERROR",
            "hs_call_body",
            ErrorType.VALUE_TOO_LONG,
        ),
        (
            None,
            "Error creating CALL.  Some required properties were not set.",
            "VALIDATION_ERROR",
            "hs_timestamp",
            ErrorType.MISSING_REQUIRED_PROPERTY,
        ),
        (
            None,
            "Contact already exists. Existing ID: 512",
            "CONFLICT",
            None,
            ErrorType.CONFLICTING_UNIQUE_VALUE,
        ),
        (
            None,
            "Unable to perform update/upsert by non-unique 0-48 property dealname",
            "VALIDATION_ERROR",
            None,
            ErrorType.ID_PROPERTY_NOT_UNIQUE,
        ),
        (None, "Enter a number", "VALIDATION_ERROR", None, ErrorType.INVALID_NUMBER),
        ("SOMETHING_NEW", "who knows", "VALIDATION_ERROR", "x", ErrorType.INVALID_PROPERTY_VALUE),
        (None, "who knows", None, None, ErrorType.UNKNOWN_ERROR),
    ],
)
def test_classify(
    code: str | None, message: str, category: str | None, prop: str | None, expected: ErrorType
) -> None:
    assert classify(code, message, category, prop) == expected


def test_embedded_validations_with_several_items_and_surrounding_text() -> None:
    message = validation_message(
        ("INVALID_OPTION", "hs_call_status", "x"), ("INVALID_LONG", "hs_timestamp", "y")
    )
    items = embedded_validations(message + " (and [nothing] else)")
    assert [(i["error"], i["name"]) for i in items] == [
        ("INVALID_OPTION", "hs_call_status"),
        ("INVALID_LONG", "hs_timestamp"),
    ]


def test_embedded_validations_from_a_truncated_message() -> None:
    message = validation_message(("INVALID_OPTION", "hs_call_status", "x"))[:90]
    assert '"error":"INVALID_OPTION"' in message
    items = embedded_validations(message)
    assert [i["error"] for i in items] == ["INVALID_OPTION"]


def test_multi_status_error_listing_several_trace_ids_fails_each() -> None:
    inputs = make_inputs(3)
    errors = [
        {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "bad",
            "errors": [
                {
                    "message": "bad",
                    "code": "INVALID_OPTION",
                    "context": {"propertyName": ["hs_call_status"]},
                }
            ],
            "context": {"objectWriteTraceId": ["row-0", "row-2", "row-9"]},
        }
    ]
    attributed, unattributed = failures_from_multi_status(errors, inputs)
    assert sorted(attributed) == ["row-0", "row-2"]
    assert unattributed == []
    assert attributed["row-2"].invalid_value == "COMPLETED"


def test_multi_status_tolerates_garbage_entries() -> None:
    attributed, unattributed = failures_from_multi_status(
        ["x", 3, {"context": "nope"}, {"message": 5}], make_inputs(1)
    )
    assert attributed == {}
    assert [f.error_type for f in unattributed] == ["UNKNOWN_ERROR", "UNKNOWN_ERROR"]


def test_413_html_on_a_single_input_is_value_too_long() -> None:
    html = b"<html><head><title>413 Request Entity Too Large</title></head></html>"
    with pytest.raises(BatchRejected) as info:
        upsert_with(reply(413, content=html, headers={"content-type": "text/html"}), make_inputs(1))
    (failure,) = info.value.failures
    assert (failure.trace_id, failure.error_type, failure.message) == (
        "row-0",
        "VALUE_TOO_LONG",
        "413 Request Entity Too Large",
    )


def test_object_type_and_property_names_are_escaped_in_paths() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return reply(404)

    with client_for(handler) as client, pytest.raises(RequestRejected):
        client.list_properties("a/b c")
    assert seen == ["/crm/v3/properties/a%2Fb%20c"]


def test_a_200_whose_results_echo_no_trace_ids_still_accounts_for_every_input() -> None:
    inputs = make_inputs(3)
    bare = [{"id": str(100 + i), "new": True, "archived": False, "properties": {},
             "createdAt": "2024-05-01T10:00:00.000Z", "updatedAt": "2024-05-01T10:00:00.000Z"} for i in range(3)]
    body = {"status": "COMPLETE", "results": bare, "startedAt": "x", "completedAt": "y"}
    out = upsert_with(reply(200, body), inputs)
    assert sorted(s.trace_id for s in out.successes) == ["row-0", "row-1", "row-2"]
    assert out.missing == []
    # Fewer results than inputs: HubSpot has answered COMPLETE to a request it did not
    # process, so the unanswered inputs stay unaccounted (the sender resends them).
    out = upsert_with(reply(200, {**body, "results": []}), inputs)
    assert out.successes == [] and sorted(out.missing) == ["row-0", "row-1", "row-2"]


def test_a_207_whose_results_echo_no_trace_ids_pairs_the_rest_with_the_results() -> None:
    inputs = make_inputs(3)
    bare = [{"id": str(100 + i), "new": False, "archived": False, "properties": {},
             "createdAt": "2024-05-01T10:00:00.000Z", "updatedAt": "2024-05-01T10:00:00.000Z"} for i in range(2)]
    error = {"status": "error", "category": "VALIDATION_ERROR",
             "message": validation_message(("INVALID_OPTION", "hs_call_status", "DONE was not one of the allowed options")),
             "context": {"objectWriteTraceId": ["row-1"]}}
    body = {"status": "COMPLETE", "results": bare, "numErrors": 1, "errors": [error], "startedAt": "x", "completedAt": "y"}
    out = upsert_with(reply(207, body), inputs)
    assert [f.trace_id for f in out.failures] == ["row-1"]
    assert sorted(s.trace_id for s in out.successes) == ["row-0", "row-2"]
    assert out.missing == []
