"""Associations: batch associate/default, create and archive in both families,
unknown record ids named per pair, the 2,000-input limit, read-back, idempotence."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bulkload.sandbox import SandboxServer
from bulkload.sandbox.objects import default_type_ids

from .helpers import (
    ASSOC_DATED,
    ASSOC_V4,
    DATED,
    V3,
    assoc_path,
    batch,
    client_for,
    make_calls,
    pair,
    record,
    seeded_contact_id,
    upsert_path,
)

STAMP = "2024-05-01T10:00:00.000Z"


@pytest.fixture
def portal(start_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return start_sandbox(contacts=3)


def associate(
    client: httpx.Client, pairs: list[dict[str, Any]], family: str = ASSOC_V4, to: str = "contacts"
) -> httpx.Response:
    return client.post(assoc_path("calls", to, "associate/default", family), json={"inputs": pairs})


def test_associate_default_is_200_with_hubspots_shape(portal: SandboxServer) -> None:
    with client_for(portal) as client:
        calls = make_calls(client, "c1", "c2")
        response = associate(
            client,
            [pair(calls["c1"], seeded_contact_id(1)), pair(calls["c2"], seeded_contact_id(2))],
        )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert {"startedAt", "completedAt"} <= body.keys()
    assert "errors" not in body and "numErrors" not in body
    assert body["results"][0] == {
        "from": {"id": calls["c1"]},
        "to": {"id": seeded_contact_id(1)},
        "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194},
    }
    assert portal.record_associations("calls", calls["c1"], "contacts") == {
        seeded_contact_id(1): [194]
    }
    # HubSpot keeps both directions: the contact sees its call (contact -> call is 193).
    assert portal.record_associations("contact", seeded_contact_id(2), "call") == {
        calls["c2"]: [193]
    }
    counters = portal.counters()
    assert counters["associations_created"] == 2
    assert counters["association_inputs"] == 2
    assert counters["requests_by_family"] == {"v3": 1, "v4": 1}
    assert counters["requests_by_kind"] == {"upsert": 1, "associate": 1}


def test_associating_again_is_a_harmless_no_op(portal: SandboxServer) -> None:
    with client_for(portal) as client:
        calls = make_calls(client, "c1")
        first = associate(client, [pair(calls["c1"], seeded_contact_id(1))])
        again = associate(
            client,
            [pair(calls["c1"], seeded_contact_id(1)), pair(calls["c1"], seeded_contact_id(1))],
            ASSOC_DATED,
        )
    assert first.status_code == again.status_code == 200
    assert len(again.json()["results"]) == 1  # still a result; one per distinct pair
    assert portal.counters()["associations_created"] == 1
    assert portal.record_associations("calls", calls["c1"], "contacts") == {
        seeded_contact_id(1): [194]
    }


@pytest.mark.parametrize(
    ("family", "forced", "status"),
    [(ASSOC_V4, None, 200), (ASSOC_DATED, None, 200), (ASSOC_V4, 207, 207)],
)
def test_unknown_record_ids_are_named_per_pair(
    start_sandbox: Callable[..., SandboxServer], family: str, forced: int | None, status: int
) -> None:
    sandbox = start_sandbox(contacts=1, partial_status=forced)
    with client_for(sandbox) as client:
        calls = make_calls(client, "c1")
        response = associate(
            client,
            [
                pair(calls["c1"], seeded_contact_id(1)),
                pair(calls["c1"], "999"),
                pair("123", seeded_contact_id(1)),
            ],
            family,
        )
    assert response.status_code == status
    body = response.json()
    assert len(body["results"]) == 1
    assert body["numErrors"] == 2
    first, second = body["errors"]
    assert first == {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": "One or more associations are invalid",
        "context": {
            "fromObjectId": [calls["c1"]],
            "toObjectId": ["999"],
            "INVALID_OBJECT_IDS": ["CONTACT=999 is not valid"],
            "objectId": ["999"],
            "objectType": ["CONTACT"],
        },
    }
    assert second["context"]["INVALID_OBJECT_IDS"] == ["CALL=123 is not valid"]
    assert (second["context"]["fromObjectId"], second["context"]["toObjectId"]) == (
        ["123"],
        [seeded_contact_id(1)],
    )
    assert sandbox.counters()["association_errors"] == 2


def test_a_call_id_is_not_a_contact_id(portal: SandboxServer) -> None:
    with client_for(portal) as client:
        calls = make_calls(client, "c1", "c2")
        response = associate(client, [pair(calls["c1"], calls["c2"])])
    assert response.json()["errors"][0]["context"]["objectType"] == ["CONTACT"]


@pytest.mark.parametrize(
    ("family", "created", "partial"), [(ASSOC_V4, 201, 207), (ASSOC_DATED, 201, 200)]
)
def test_batch_create_with_types(
    portal: SandboxServer, family: str, created: int, partial: int
) -> None:
    with client_for(portal) as client:
        calls = make_calls(client, "c1")
        spec = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}]
        ok = client.post(
            assoc_path("calls", "contacts", "create", family),
            json={"inputs": [{**pair(calls["c1"], seeded_contact_id(1)), "types": spec}]},
        )
        bad_type = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]
        mixed = client.post(
            assoc_path("calls", "contacts", "create", family),
            json={
                "inputs": [
                    {**pair(calls["c1"], seeded_contact_id(2)), "types": spec},
                    {**pair(calls["c1"], seeded_contact_id(3)), "types": bad_type},
                    {**pair(calls["c1"], "42"), "types": spec},
                ]
            },
        )
    assert ok.status_code == created
    assert ok.json()["results"] == [
        {
            "fromObjectTypeId": "0-48",
            "fromObjectId": calls["c1"],
            "toObjectTypeId": "0-1",
            "toObjectId": seeded_contact_id(1),
            "labels": [],
        }
    ]
    assert mixed.status_code == partial
    body = mixed.json()
    assert [r["toObjectId"] for r in body["results"]] == [seeded_contact_id(2)]
    assert body["numErrors"] == 2
    assert "association type 1 is not valid" in body["errors"][0]["message"]
    assert body["errors"][1]["context"]["toObjectId"] == ["42"]


def test_labeled_primary_company(portal: SandboxServer) -> None:
    with client_for(portal) as client:
        company = client.post(
            upsert_path("companies"), json=batch(record("co-1", "external_company_id", name="Acme"))
        ).json()["results"][0]["id"]
        spec = [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279},
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1},
        ]
        response = client.post(
            assoc_path("contacts", "companies", "create"),
            json={"inputs": [{**pair(seeded_contact_id(1), company), "types": spec}]},
        )
        read = client.get(f"/crm/v4/objects/contacts/{seeded_contact_id(1)}/associations/companies")
    assert response.json()["results"][0]["labels"] == ["Primary"]
    assert read.json()["results"] == [
        {
            "toObjectId": int(company),
            "associationTypes": [
                {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"},
                {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None},
            ],
        }
    ]
    assert portal.record_associations("companies", company, "contacts") == {
        seeded_contact_id(1): [2, 280]
    }


@pytest.mark.parametrize(("family", "status"), [(ASSOC_V4, 204), (ASSOC_DATED, 200)])
def test_batch_archive(portal: SandboxServer, family: str, status: int) -> None:
    with client_for(portal) as client:
        calls = make_calls(client, "c1")
        associate(
            client,
            [pair(calls["c1"], seeded_contact_id(1)), pair(calls["c1"], seeded_contact_id(2))],
        )
        response = client.post(
            assoc_path("calls", "contacts", "archive", family),
            json={
                "inputs": [
                    {
                        "from": {"id": calls["c1"]},
                        "to": [{"id": seeded_contact_id(1)}, {"id": "77"}],
                    }
                ]
            },
        )
    assert response.status_code == status
    if status == 204:
        assert response.content == b""
    else:
        assert response.json()["status"] == "COMPLETE"
    assert portal.record_associations("calls", calls["c1"], "contacts") == {
        seeded_contact_id(2): [194]
    }
    assert portal.record_associations("contacts", seeded_contact_id(1), "calls") == {}
    assert portal.counters()["associations_archived"] == 2


@pytest.mark.parametrize("action", ["associate/default", "create", "archive"])
def test_at_most_2000_inputs(client: httpx.Client, action: str) -> None:
    item: dict[str, Any] = pair("1", "2")
    if action == "create":
        item["types"] = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}]
    if action == "archive":
        item = {"from": {"id": "1"}, "to": [{"id": "2"}]}
    response = client.post(assoc_path("calls", "contacts", action), json={"inputs": [item] * 2001})
    assert response.status_code == 400
    body = response.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"] == (
        "The maximum number of inputs supported in a batch request is 2000. "
        "Please reduce the number of items and try again"
    )
    ok = client.post(assoc_path("calls", "contacts", action), json={"inputs": [item] * 2000})
    assert ok.status_code != 400


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "BatchInputPublicDefaultAssociationMultiPost, some of required attributes"),
        ({"inputs": [{"from": {"id": "1"}}]}, "some of required attributes are not set [to]"),
        ({"inputs": [{"from": {"id": 1}, "to": {"id": "2"}}]}, "java.lang.String"),
        ({"inputs": "x"}, "java.util.ArrayList"),
    ],
)
def test_bad_association_bodies_are_400(
    client: httpx.Client, body: dict[str, Any], fragment: str
) -> None:
    response = client.post(assoc_path("calls", "contacts", "associate/default"), json=body)
    assert response.status_code == 400
    assert fragment in response.json()["message"]


def test_an_unknown_pair_of_objects_is_400(client: httpx.Client) -> None:
    response = client.post(
        assoc_path("calls", "emails", "associate/default"), json={"inputs": [pair("1", "2")]}
    )
    assert response.status_code == 400
    assert response.json()["message"] == "There are no association types from 0-48 to 0-49"
    assert client.get("/crm/v4/objects/calls/1/associations/notes").status_code == 400


@pytest.mark.parametrize("family", ["/crm/v4/objects", DATED])
def test_reading_a_records_associations_back(portal: SandboxServer, family: str) -> None:
    with client_for(portal) as client:
        calls = make_calls(client, "c1")
        associate(client, [pair(calls["c1"], seeded_contact_id(i)) for i in (3, 1, 2)])
        path = f"{family}/calls/{calls['c1']}/associations/contacts"
        full = client.get(path).json()
        first = client.get(path, params={"limit": 2}).json()
        rest = client.get(path, params={"limit": 2, "after": first["paging"]["next"]["after"]})
        none = client.get(f"{family}/call/999/associations/contact").json()
    assert [r["toObjectId"] for r in full["results"]] == [
        int(seeded_contact_id(i)) for i in (1, 2, 3)
    ]
    assert full["results"][0]["associationTypes"] == [
        {"category": "HUBSPOT_DEFINED", "typeId": 194, "label": None}
    ]
    assert "paging" not in full
    assert len(first["results"]) == 2
    assert [r["toObjectId"] for r in rest.json()["results"]] == [int(seeded_contact_id(3))]
    assert "paging" not in rest.json()
    assert none == {"results": []}
    with httpx.Client(base_url=portal.base_url) as admin:
        links = admin.get(
            "/_sandbox/associations", params={"from": "calls", "id": calls["c1"], "to": "contacts"}
        ).json()["results"]
    assert links == {seeded_contact_id(i): [194] for i in (1, 2, 3)}


def test_every_activity_has_its_default_types(portal: SandboxServer) -> None:
    table = default_type_ids()
    assert table["calls"] == {"contacts": 194, "companies": 182, "deals": 206, "tickets": 220,
                              "p_machines": 2010}  # fmt: skip
    assert table["emails"] == {"contacts": 198, "companies": 186, "deals": 210, "tickets": 224}
    assert table["meetings"] == {"contacts": 200, "companies": 188, "deals": 212, "tickets": 226}
    assert table["notes"] == {"contacts": 202, "companies": 190, "deals": 214, "tickets": 228}
    assert table["tasks"] == {"contacts": 204, "companies": 192, "deals": 216, "tickets": 230}
    assert table["contacts"]["companies"] == 279 and table["deals"]["contacts"] == 3
    with client_for(portal) as client:
        note = client.post(
            upsert_path("notes"), json=batch(record("n1", "external_note_id", hs_timestamp=STAMP))
        ).json()["results"][0]["id"]
        response = client.post(
            assoc_path("notes", "0-1", "associate/default", ASSOC_DATED),
            json={"inputs": [pair(note, seeded_contact_id(1))]},
        )
    assert response.json()["results"][0]["associationSpec"]["associationTypeId"] == 202


def test_custom_object_associations_are_user_defined(portal: SandboxServer) -> None:
    with client_for(portal) as client:
        machine = client.post(
            upsert_path("2-123456", V3),
            json=batch(record("M-1", "serial_number", machine_name="Lathe")),
        ).json()["results"][0]["id"]
        response = client.post(
            assoc_path("p_machines", "contacts", "associate/default"),
            json={"inputs": [pair(machine, seeded_contact_id(1))]},
        )
    spec = response.json()["results"][0]["associationSpec"]
    assert spec == {"associationCategory": "USER_DEFINED", "associationTypeId": 2001}


def test_read_only_tokens_cannot_associate(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(contacts=1, read_only_tokens=("viewer",))
    with client_for(sandbox, token="viewer") as client:
        response = associate(client, [pair("1", seeded_contact_id(1))])
        read = client.get(f"/crm/v4/objects/contacts/{seeded_contact_id(1)}/associations/calls")
    assert response.status_code == 403
    assert response.json()["errors"][0]["context"]["requiredGranularScopes"] == [
        "crm.objects.contacts.write"
    ]
    assert read.status_code == 200


def test_association_faults_are_injected_like_upsert_faults(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = start_sandbox(contacts=1, fault_probabilities={"503": 1.0}, empty_5xx_body_rate=0.0)
    with client_for(sandbox) as client:
        response = associate(client, [pair("1", seeded_contact_id(1))])
        read = client.get(f"/crm/v4/objects/contacts/{seeded_contact_id(1)}/associations/calls")
    assert response.status_code == 503
    assert read.status_code == 200  # reads get faults only with fault_reads
