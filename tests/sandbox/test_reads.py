"""Batch read: by record id, by e-mail (case-insensitively), by a unique property;
not-found ids in OBJECT_NOT_FOUND errors; 207 vs 200 per path family."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bulkload.sandbox import SandboxServer

from .helpers import (
    DATED,
    V3,
    batch,
    client_for,
    make_calls,
    read_path,
    seeded_contact_id,
    seeded_email,
)

NOT_FOUND = (
    "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid."
)


def read(
    client: httpx.Client, obj: str, ids: list[str], family: str = V3, **extra: Any
) -> httpx.Response:
    body = {"inputs": [{"id": i} for i in ids], **extra}
    return client.post(read_path(obj, family), json=body)


@pytest.fixture
def contacts(start_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return start_sandbox(contacts=5)


@pytest.mark.parametrize(("family", "partial"), [(V3, 207), (DATED, 200)])
def test_read_by_email_found_and_not_found(
    contacts: SandboxServer, family: str, partial: int
) -> None:
    with client_for(contacts) as client:
        found = read(
            client, "contacts", [seeded_email(2), seeded_email(1)], family, idProperty="email"
        )
        response = read(
            client,
            "contact",
            [seeded_email(3).upper(), "nobody@example.com", "Ghost@Example.com"],
            family,
            idProperty="email",
            properties=["email", "firstname"],
        )
    assert found.status_code == 200
    body = found.json()
    assert "errors" not in body and body["status"] == "COMPLETE"
    # In record-id order, not input order.
    assert [r["id"] for r in body["results"]] == [seeded_contact_id(1), seeded_contact_id(2)]

    assert response.status_code == partial
    body = response.json()
    (result,) = body["results"]
    assert result["id"] == seeded_contact_id(3)
    assert result["properties"]["email"] == seeded_email(3)  # stored lower-cased
    assert {"createdAt", "updatedAt", "archived"} <= result.keys()
    assert body["numErrors"] == 1
    assert body["errors"] == [
        {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": NOT_FOUND.format("CONTACT"),
            "context": {"ids": ["nobody@example.com", "Ghost@Example.com"]},  # as given
        }
    ]
    assert {"startedAt", "completedAt"} <= body.keys()


def test_read_by_record_id_is_the_default(contacts: SandboxServer) -> None:
    with client_for(contacts) as client:
        response = read(client, "0-1", [seeded_contact_id(4), "999", "abc"])
        explicit = read(client, "contacts", [seeded_contact_id(4)], idProperty="hs_object_id")
    assert response.status_code == 207
    body = response.json()
    assert [r["id"] for r in body["results"]] == [seeded_contact_id(4)]
    assert body["errors"][0]["context"] == {"ids": ["999", "abc"]}
    assert explicit.status_code == 200


def test_read_returns_defaults_and_asked_properties_with_nulls(contacts: SandboxServer) -> None:
    with client_for(contacts) as client:
        plain = read(client, "contacts", [seeded_contact_id(1)]).json()["results"][0]
        asked = read(
            client,
            "contacts",
            [seeded_contact_id(1)],
            properties=["phone", "lifecyclestage", "nope"],
        ).json()["results"][0]
    assert set(plain["properties"]) == {
        "createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname",
    }  # fmt: skip
    assert asked["properties"]["phone"] is None  # asked for, not set
    assert asked["properties"]["lifecyclestage"] == "lead"
    assert "nope" not in asked["properties"]  # unknown names are ignored


def test_read_by_unique_property_is_exact(sandbox: SandboxServer, client: httpx.Client) -> None:
    ids = make_calls(client, "call-A", "call-B")
    response = read(
        client, "calls", ["call-A", "CALL-B"], idProperty="external_call_id",
        properties=["external_call_id"],
    )  # fmt: skip
    assert response.status_code == 207
    body = response.json()
    assert [r["id"] for r in body["results"]] == [ids["call-A"]]
    assert body["results"][0]["properties"]["external_call_id"] == "call-A"
    assert body["errors"][0]["message"] == NOT_FOUND.format("CALL")
    assert body["errors"][0]["context"] == {"ids": ["CALL-B"]}
    counters = sandbox.counters()
    assert (counters["reads"], counters["read_inputs"], counters["read_found"]) == (1, 2, 1)
    assert counters["read_not_found"] == 1
    assert counters["requests_by_kind"]["read"] == 1


def test_read_needs_a_unique_id_property(client: httpx.Client) -> None:
    response = read(client, "contacts", ["Ada"], idProperty="firstname")
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Unable to perform read by non-unique 0-1 property firstname"
    )
    assert read(client, "calls", ["a"], idProperty="email").status_code == 400


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "some of required attributes are not set [inputs]"),
        ({"inputs": [{"id": str(i)} for i in range(101)]}, "in a batch request is 100"),
        (
            {"inputs": [{"id": str(i)} for i in range(51)], "propertiesWithHistory": ["email"]},
            "for property histories is 50",
        ),
        ({"inputs": [{"id": 5}]}, "Cannot deserialize value of type `java.lang.String`"),
        ({"inputs": [{}]}, "SimplePublicObjectId, some of required attributes are not set [id]"),
        ({"inputs": [{"id": "1"}, {"id": "1"}]}, "Duplicate IDs found in batch input: [1]"),
        (
            {"idProperty": "email", "inputs": [{"id": "a@x.com"}, {"id": "A@x.com"}]},
            "Duplicate IDs found in batch input: [A@x.com]",
        ),
    ],
)
def test_bad_read_requests_are_400(
    client: httpx.Client, body: dict[str, Any], fragment: str
) -> None:
    response = client.post(read_path("contacts", DATED), json=body)
    assert response.status_code == 400
    assert fragment in response.json()["message"]


def test_partial_status_can_be_forced(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(contacts=1, partial_status=200)
    with client_for(sandbox) as client:
        v3 = read(client, "contacts", [seeded_contact_id(1), "5"])
        sandbox.configure(partial_status=207)
        dated = read(client, "contacts", [seeded_contact_id(1), "5"], DATED)
    assert (v3.status_code, dated.status_code) == (200, 207)
    assert v3.json()["numErrors"] == dated.json()["numErrors"] == 1


def test_read_with_history(contacts: SandboxServer) -> None:
    with client_for(contacts) as client:
        result = read(
            client, "contacts", [seeded_contact_id(1)], propertiesWithHistory=["email"]
        ).json()["results"][0]
    (entry,) = result["propertiesWithHistory"]["email"]
    assert entry["value"] == seeded_email(1)
    assert entry["timestamp"] == result["updatedAt"]


def test_read_only_tokens_may_read(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(contacts=1, read_only_tokens=("viewer",))
    with client_for(sandbox, token="viewer") as client:
        assert read(client, "contacts", [seeded_contact_id(1)]).status_code == 200
        assert client.post("/crm/v3/objects/contacts/batch/upsert", json=batch()).status_code == 403
