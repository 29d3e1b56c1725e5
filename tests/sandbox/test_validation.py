"""Per-property validation: HubSpot's codes and messages, and stored forms."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bulkload.sandbox import SandboxServer
from bulkload.sandbox.validate import compile_rule

from .helpers import UPSERT, batch, call

PORTAL = 21458763
STATUSES = (
    "BUSY, CALLING_CRM_USER, CANCELED, COMPLETED, CONNECTING, FAILED, IN_PROGRESS, "
    "NO_ANSWER, QUEUED, RINGING"
)


def rejected(client: httpx.Client, props: dict[str, str]) -> dict[str, Any]:
    """Upsert one input without a trace id and return the whole-request 400 body."""
    response = client.post(UPSERT, json=batch(call(1, trace=False, **props)))
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["category"] == "VALIDATION_ERROR"
    return body


@pytest.mark.parametrize(
    ("name", "value", "code", "message"),
    [
        ("hs_timestamp", "tomorrow", "INVALID_LONG", "tomorrow was not a valid long."),
        (
            "hs_timestamp",
            "2019-05-13T12:05:53.602759Z",
            "INVALID_LONG",
            "2019-05-13T12:05:53.602759Z was not a valid long.",
        ),
        (
            "hs_timestamp",
            "2024-05-01T10:00:00",
            "INVALID_LONG",
            "2024-05-01T10:00:00 was not a valid long.",
        ),
        (
            "hs_timestamp",
            "2024-02-30T10:00:00Z",
            "INVALID_LONG",
            "2024-02-30T10:00:00Z was not a valid long.",
        ),
        ("hs_call_duration", "12.5", "INVALID_LONG", "12.5 was not a valid long."),
        ("hs_call_duration", "1 min", "INVALID_LONG", "1 min was not a valid long."),
        (
            "hs_call_status",
            "DONE",
            "INVALID_OPTION",
            f"DONE was not one of the allowed options: [{STATUSES}]",
        ),
        (
            "hs_call_direction",
            "inbound",
            "INVALID_OPTION",
            "inbound was not one of the allowed options: [INBOUND, OUTBOUND]",
        ),
        (
            "hs_call_has_voicemail",
            "yes",
            "INVALID_OPTION",
            "yes was not one of the allowed options: [true, false]",
        ),
        ("hubspot_owner_id", "alice", "INVALID_OPTION", "alice was not a valid owner id."),
        ("nope", "1", "PROPERTY_DOESNT_EXIST", 'Property "nope" does not exist'),
        (
            "hs_object_id",
            "5",
            "READ_ONLY_VALUE",
            '"hs_object_id" is a calculated property; its value cannot be set.',
        ),
        (
            "hs_call_body",
            "x" * 65_537,
            "PROPERTY_VALUE_TOO_LONG",
            "Value for property hs_call_body is 65537 characters long; the limit is 65536",
        ),
    ],
)
def test_invalid_value_gets_hubspots_code_and_message(
    client: httpx.Client, name: str, value: str, code: str, message: str
) -> None:
    body = rejected(client, {name: value})

    assert body["errors"] == [
        {"message": message, "code": code, "context": {"propertyName": [name]}}
    ]
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix)
    assert json.loads(body["message"].removeprefix(prefix)) == [
        {
            "isValid": False,
            "message": message,
            "error": code,
            "name": name,
            "localizedErrorMessage": message,
            "portalId": PORTAL,
        }
    ]
    assert list(body) == ["status", "message", "correlationId", "errors", "category"]


def test_every_invalid_property_of_the_input_is_listed(client: httpx.Client) -> None:
    body = rejected(client, {"hs_call_status": "DONE", "nope": "x", "hs_call_duration": "long"})
    assert sorted(e["code"] for e in body["errors"]) == [
        "INVALID_LONG",
        "INVALID_OPTION",
        "PROPERTY_DOESNT_EXIST",
    ]


def test_only_the_first_invalid_input_is_reported_without_trace_ids(client: httpx.Client) -> None:
    first = call(1, trace=False, hs_call_status="DONE")
    second = call(2, trace=False, hs_call_direction="SIDEWAYS")
    body = client.post(UPSERT, json=batch(call(0, trace=False), first, second)).json()
    assert [e["context"]["propertyName"] for e in body["errors"]] == [["hs_call_status"]]


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("1714557600000", "2024-05-01T10:00:00.000Z"),
        ("1714557600123", "2024-05-01T10:00:00.123Z"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T10:00:00.5Z", "2024-05-01T10:00:00.500Z"),
        ("2024-05-01T12:00:00.250+02:00", "2024-05-01T10:00:00.250Z"),
        ("2024-05-01T05:30:00-04:30", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00.000Z"),
    ],
)
def test_datetimes_are_stored_as_iso_utc_with_milliseconds(
    sandbox: SandboxServer, client: httpx.Client, value: str, stored: str
) -> None:
    response = client.post(UPSERT, json=batch(call(1, hs_timestamp=value)))
    assert response.status_code == 200
    assert response.json()["results"][0]["properties"]["hs_timestamp"] == stored
    assert sandbox.store_records()["call-1"]["hs_timestamp"] == stored


def test_valid_values_of_every_default_type_are_accepted(client: httpx.Client) -> None:
    props = {
        "hs_call_direction": "OUTBOUND",
        "hs_call_status": "NO_ANSWER",
        "hs_call_duration": "45000",
        "hs_call_disposition": "73a0d17f-1163-4015-bdd5-ec830791da20",
        "hs_call_from_number": "(857) 829 5489",
        "hs_call_to_number": "+1 617 555 0100",
        "hs_call_recording_url": "https://example.com/r.mp3",
        "hs_call_source": "INTEGRATIONS_PLATFORM",
        "hs_call_callee_object_id": "1234",
        "hs_call_callee_object_type": "CONTACT",
        "hs_call_has_voicemail": "false",
        "hubspot_owner_id": "10007919",  # seeded owner 1
        "hs_activity_type": "Discovery",
        "hs_attachment_ids": "1;2",
        "hs_call_body": "x" * 65_536,
    }
    response = client.post(UPSERT, json=batch(call(1, **props)))
    assert response.status_code == 200, response.text
    returned = response.json()["results"][0]["properties"]
    assert {k: returned[k] for k in props} == props


def test_a_batch_of_mixed_forms_is_normalized_per_value(client: httpx.Client) -> None:
    # The column check fails as a whole (one epoch value); each value is then normalized.
    inputs = [
        call(1, hs_timestamp="2024-05-01T10:00:00.000Z"),
        call(2, hs_timestamp="1714557600000"),
        call(3, hs_timestamp="2024-05-01T10:00:00.000Z", hs_call_status="BUSY"),
    ]
    results = client.post(UPSERT, json=batch(*inputs)).json()["results"]
    assert {r["properties"]["hs_timestamp"] for r in results} == {"2024-05-01T10:00:00.000Z"}


def test_missing_hs_timestamp_on_create(sandbox: SandboxServer, client: httpx.Client) -> None:
    item = call(1, trace=False)
    del item["properties"]["hs_timestamp"]
    response = client.post(UPSERT, json=batch(item))
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "Error creating CALL.  Some required properties were not set."
    assert body["context"] == {"properties": ["hs_timestamp"]}
    assert body["category"] == "VALIDATION_ERROR"
    assert list(body) == ["status", "message", "correlationId", "context", "category"]
    assert sandbox.store_records() == {}


def test_empty_hs_timestamp_on_create_counts_as_missing(client: httpx.Client) -> None:
    response = client.post(UPSERT, json=batch(call(1, trace=False, hs_timestamp="")))
    assert response.status_code == 400
    assert response.json()["context"] == {"properties": ["hs_timestamp"]}


# --- rules of types that only created properties have


@pytest.mark.parametrize(
    ("type_", "field_type", "value", "result"),
    [
        ("date", "date", "2024-05-01", "2024-05-01"),
        ("date", "date", "1714521600000", "2024-05-01"),
        (
            "date",
            "date",
            "1521225089103",
            ("INVALID_DATE", "1521225089103 is at 18:31:29.103 UTC, not midnight!"),
        ),
        ("date", "date", "2024-13-01", ("INVALID_LONG", "2024-13-01 was not a valid long.")),
        ("number", "number", "12.50", "12.50"),
        ("number", "number", "-3e5", "-3e5"),
        ("number", "number", "twelve", ("INVALID_INTEGER", "twelve was not a valid number")),
        ("number", "number", "NaN", ("INVALID_INTEGER", "NaN was not a valid number")),
        ("enumeration", "checkbox", "A;B", "A;B"),
        (
            "enumeration",
            "checkbox",
            "A;Z",
            ("INVALID_OPTION", "Z was not one of the allowed options: [A, B]"),
        ),
    ],
)
def test_rules_of_other_property_types(
    type_: str, field_type: str, value: str, result: str | tuple[str, str]
) -> None:
    rule = compile_rule(type_, field_type, ["A", "B"])
    normal = rule.normalize(value)
    if isinstance(result, str):
        assert normal == result
        if rule.bulk is not None and normal == value:
            assert rule.bulk([value, value])
    else:
        assert normal is None
        assert rule.describe("p", value) == result
        if rule.bulk is not None:
            assert not rule.bulk([value])


def test_bulk_check_is_not_fooled_by_the_separator() -> None:
    rule = compile_rule("number", "number", [], integral=True)
    assert rule.bulk is not None
    assert not rule.bulk(["12\x0034"])
    assert rule.bulk(["12", "34"])


def test_multi_select_values_and_appends(sandbox: SandboxServer, client: httpx.Client) -> None:
    body = {"name": "call_tags", "label": "Tags", "type": "enumeration", "fieldType": "checkbox",
            "groupName": "callinformation",
            "options": [{"label": v, "value": v} for v in ("A", "B", "C")]}  # fmt: skip
    assert client.post("/crm/v3/properties/calls", json=body).status_code == 201
    assert client.post(UPSERT, json=batch(call(1, call_tags=";A"))).status_code == 200
    assert sandbox.store_records()["call-1"]["call_tags"] == "A"
    client.post(UPSERT, json=batch(call(1, call_tags=";B;A")))
    assert sandbox.store_records()["call-1"]["call_tags"] == "A;B"
    client.post(UPSERT, json=batch(call(1, call_tags="C")))
    assert sandbox.store_records()["call-1"]["call_tags"] == "C"
