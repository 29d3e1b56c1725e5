"""Bearer auth (401), scopes (403), and the calls Properties API."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bulkload.sandbox import SandboxServer

from .helpers import JSON_TYPE, UPSERT, batch, call, client_for

AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
    "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
PROPERTIES = "/crm/v3/properties/calls"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic dGVzdA=="},
        {"Authorization": "Bearer"},
    ],
)
def test_missing_or_bad_token_is_401(sandbox: SandboxServer, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=sandbox.base_url) as client:
        response = client.post(UPSERT, json=batch(call(1)), headers=headers)
        again = client.post(UPSERT, json=batch(call(1)), headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == JSON_TYPE
    body = response.json()
    assert list(body) == ["status", "message", "correlationId", "category"]
    assert body["message"] == AUTH_MESSAGE
    assert body["category"] == "INVALID_AUTHENTICATION"
    uuid.UUID(body["correlationId"])
    assert again.json()["correlationId"] != body["correlationId"]
    assert sandbox.store_records() == {}


def test_without_configured_tokens_any_bearer_is_accepted(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = start_sandbox(tokens=())
    with client_for(sandbox, token="anything-at-all") as client:
        assert client.post(UPSERT, json=batch(call(1))).status_code == 200
    with httpx.Client(base_url=sandbox.base_url) as client:
        assert client.post(UPSERT, json=batch(call(1))).status_code == 401


def test_read_only_token_gets_403_missing_scopes(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = start_sandbox(read_only_tokens=("viewer",))
    with client_for(sandbox, token="viewer") as client:
        response = client.post(UPSERT, json=batch(call(1)))
        create = client.post(
            PROPERTIES,
            json={
                "name": "x",
                "label": "X",
                "type": "string",
                "fieldType": "text",
                "groupName": "callinformation",
            },
        )
        listing = client.get(PROPERTIES)
    assert response.status_code == 403
    body = response.json()
    assert body["category"] == "MISSING_SCOPES"
    assert body["message"].startswith("This app hasn't been granted all required scopes")
    assert body["errors"] == [
        {
            "message": "One or more of the following scopes are required.",
            "context": {"requiredGranularScopes": ["crm.objects.contacts.write"]},
        }
    ]
    assert body["links"] == {"scopes": "https://developers.hubspot.com/scopes"}
    assert "x-hubspot-ratelimit-remaining" in response.headers
    assert create.status_code == 403
    assert listing.status_code == 200  # reading needs no write scope
    assert sandbox.store_records() == {}


# --- Properties API


def test_list_properties_has_hubspot_defaults_and_external_call_id(client: httpx.Client) -> None:
    response = client.get(PROPERTIES)
    assert response.status_code == 200
    props = {p["name"]: p for p in response.json()["results"]}
    assert props["hs_timestamp"]["type"] == "datetime"
    assert props["hs_call_duration"]["type"] == "number"
    status = props["hs_call_status"]
    assert status["type"] == "enumeration" and status["fieldType"] == "select"
    assert {o["value"] for o in status["options"]} >= {"COMPLETED", "NO_ANSWER", "BUSY"}
    assert all(o["hidden"] is False for o in status["options"])
    disposition = {o["label"]: o["value"] for o in props["hs_call_disposition"]["options"]}
    assert disposition["Connected"] == "f240bbac-87c9-4f6e-bf70-924b57d47db7"
    owner = props["hubspot_owner_id"]
    assert owner["referencedObjectType"] == "OWNER" and owner["externalOptions"] is True
    assert props["hs_call_has_voicemail"]["type"] == "bool"
    assert props["external_call_id"]["hasUniqueValue"] is True
    assert props["hs_call_title"]["hasUniqueValue"] is False
    for prop in props.values():
        assert {
            "name",
            "label",
            "type",
            "fieldType",
            "groupName",
            "description",
            "options",
        } <= prop.keys()
        assert "readOnlyValue" in prop["modificationMetadata"]


def test_get_one_property_and_404_for_unknown(client: httpx.Client) -> None:
    assert client.get(f"{PROPERTIES}/external_call_id").json()["hasUniqueValue"] is True
    response = client.get(f"{PROPERTIES}/nope")
    assert response.status_code == 404
    body = response.json()
    assert body["category"] == "OBJECT_NOT_FOUND"
    assert body["message"] == "Unable to find property nope for object type 0-48"
    uuid.UUID(body["correlationId"])


def test_unique_property_flag_adds_unique_properties(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = start_sandbox(unique_properties=("dialer_call_id",))
    with client_for(sandbox) as client:
        prop = client.get(f"{PROPERTIES}/dialer_call_id").json()
        item = {
            "idProperty": "dialer_call_id",
            "id": "D-1",
            "properties": {"hs_timestamp": "1714557600000"},
        }
        response = client.post(UPSERT, json=batch(item))
    assert prop["hasUniqueValue"] is True and prop["type"] == "string"
    assert response.status_code == 200
    assert sandbox.store_records()["D-1"]["dialer_call_id"] == "D-1"


def unique_property(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "label": name.title(),
        "type": "string",
        "fieldType": "text",
        "groupName": "callinformation",
        "hasUniqueValue": True,
        **extra,
    }


def test_created_unique_property_is_immediately_usable(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    response = client.post(PROPERTIES, json=unique_property("crm_key"))
    assert response.status_code == 201
    created = response.json()
    assert created["hasUniqueValue"] is True
    assert created["name"] == "crm_key"
    assert client.get(f"{PROPERTIES}/crm_key").json()["hasUniqueValue"] is True

    item = {"idProperty": "crm_key", "id": "K-1", "properties": {"hs_timestamp": "1714557600000"}}
    assert client.post(UPSERT, json=batch(item)).status_code == 200
    assert sandbox.store_records()["K-1"]["crm_key"] == "K-1"


def test_created_enumeration_is_validated(client: httpx.Client) -> None:
    body = {
        "name": "call_topic",
        "label": "Topic",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "callinformation",
        "options": [{"label": "Sales", "value": "sales"}, {"label": "Support", "value": "support"}],
    }
    assert client.post(PROPERTIES, json=body).status_code == 201
    assert client.post(UPSERT, json=batch(call(1, call_topic="sales"))).status_code == 200
    response = client.post(UPSERT, json=batch(call(2, trace=False, call_topic="billing")))
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == (
        "billing was not one of the allowed options: [sales, support]"
    )


def test_existing_property_cannot_be_created_again(client: httpx.Client) -> None:
    for name in ("external_call_id", "hs_call_title"):
        response = client.post(PROPERTIES, json=unique_property(name, hasUniqueValue=False))
        assert response.status_code == 409
        assert response.json()["category"] == "OBJECT_ALREADY_EXISTS"
    # hasUniqueValue is immutable: hs_call_title stays non-unique.
    assert client.get(f"{PROPERTIES}/hs_call_title").json()["hasUniqueValue"] is False


def test_at_most_ten_unique_properties(client: httpx.Client) -> None:
    for n in range(9):  # external_call_id is the first
        assert client.post(PROPERTIES, json=unique_property(f"key_{n}")).status_code == 201
    response = client.post(PROPERTIES, json=unique_property("key_9"))
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert "limit of 10 unique value properties" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"name": "x", "label": "X", "type": "string"},
            "some of required attributes are not set [fieldType, groupName]",
        ),
        ({**unique_property("x"), "type": "text"}, "type 'text' is not one of the values accepted"),
        (
            {**unique_property("x"), "fieldType": "dropdown"},
            "fieldType 'dropdown' is not one of the values accepted",
        ),
        (unique_property("Bad-Name"), "Property name 'Bad-Name' is invalid"),
        (
            {**unique_property("x"), "type": "bool", "fieldType": "booleancheckbox"},
            "cannot have unique values",
        ),
    ],
)
def test_invalid_property_create_is_400(
    client: httpx.Client, body: dict[str, Any], fragment: str
) -> None:
    response = client.post(PROPERTIES, json=body)
    assert response.status_code == 400
    assert fragment in response.json()["message"]


def test_properties_of_other_objects_are_not_found(client: httpx.Client) -> None:
    assert client.get("/crm/v3/properties/widgets").status_code == 404
    assert client.get("/crm/v3/properties/0-48/hs_timestamp").status_code == 200
