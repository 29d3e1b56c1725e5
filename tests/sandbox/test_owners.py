"""Owners: deterministic seeding, GET /crm/v3/owners paging and filters (both
families), the 403 without the owners scope, and strict hubspot_owner_id values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bulkload.sandbox import SandboxServer

from .helpers import OWNER_1, UPSERT, batch, call, client_for, owner

V3_OWNERS = "/crm/v3/owners"
DATED_OWNERS = "/crm/owners/2026-03"


def all_owners(client: httpx.Client, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Follow paging until `paging` is absent; (owners, pages)."""
    owners: list[dict[str, Any]] = []
    pages = 0
    query: dict[str, Any] = dict(params)
    while True:
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        owners += body["results"]
        pages += 1
        if "paging" not in body:
            return owners, pages
        nxt = body["paging"]["next"]
        assert nxt["link"].startswith("http://")
        query = {**params, "after": nxt["after"]}


def test_25_owners_by_default_with_the_sample_datas_ids(client: httpx.Client) -> None:
    owners, pages = all_owners(client, V3_OWNERS)
    assert pages == 1  # limit defaults to 100
    assert [o["id"] for o in owners] == [str(10_000_000 + 7919 * i) for i in range(1, 26)]
    first = owners[0]
    assert first["id"] == OWNER_1
    assert first["email"] == "owner-001@example.com"
    assert first["archived"] is False and first["type"] == "PERSON"
    assert isinstance(first["userId"], int)
    assert {"firstName", "lastName", "teams", "createdAt", "updatedAt"} <= first.keys()
    assert first["teams"][0]["primary"] is True


@pytest.mark.parametrize("path", [V3_OWNERS, DATED_OWNERS, V3_OWNERS + "/"])
def test_paging_until_paging_is_absent(
    start_sandbox: Callable[..., SandboxServer], path: str
) -> None:
    sandbox = start_sandbox(owners=120)
    with client_for(sandbox) as client:
        owners, pages = all_owners(client, path, limit=50)
        default = client.get(path).json()
    assert pages == 3
    assert len({o["id"] for o in owners}) == 120
    assert len(default["results"]) == 100
    assert default["paging"]["next"]["after"] == "100"
    assert sandbox.counters()["requests_by_kind"]["owners"] == 4


def test_email_filter_and_one_owner(client: httpx.Client) -> None:
    found = client.get(V3_OWNERS, params={"email": "OWNER-007@example.com"}).json()
    assert [o["id"] for o in found["results"]] == [owner(7)]
    assert client.get(DATED_OWNERS, params={"email": "nobody@example.com"}).json() == {
        "results": []
    }
    one = client.get(f"{DATED_OWNERS}/{owner(3)}")
    assert one.status_code == 200 and one.json()["email"] == "owner-003@example.com"
    assert client.get(f"{V3_OWNERS}/12345").status_code == 404


def test_archived_owners(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(owners=2, archived_owners=1)
    with client_for(sandbox) as client:
        active = client.get(V3_OWNERS).json()["results"]
        archived = client.get(V3_OWNERS, params={"archived": "true"}).json()["results"]
        response = client.post(UPSERT, json=batch(call(1, trace=False, hubspot_owner_id=owner(3))))
    assert [o["id"] for o in active] == [owner(1), owner(2)]
    assert [(o["id"], o["archived"]) for o in archived] == [(owner(3), True)]
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == f"{owner(3)} was not a valid owner id."


@pytest.mark.parametrize(
    "params",
    [{"limit": "501"}, {"limit": "0"}, {"limit": "ten"}, {"after": "x"}, {"archived": "1"}],
)
def test_bad_paging_parameters_are_400(client: httpx.Client, params: dict[str, str]) -> None:
    response = client.get(V3_OWNERS, params=params)
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_owners_need_the_owners_scope(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(no_owners_read_tokens=("no-owners",))
    with client_for(sandbox, token="no-owners") as client:
        refused = client.get(DATED_OWNERS)
        upsert = client.post(UPSERT, json=batch(call(1)))  # other scopes are there
        properties = client.get("/crm/v3/properties/calls")
    assert refused.status_code == 403
    body = refused.json()
    assert body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.owners.read"]
    assert (upsert.status_code, properties.status_code) == (200, 200)


@pytest.mark.parametrize(
    "value",
    [
        "987654",  # digits, but no such owner
        "owner-001@example.com",  # an owner's e-mail: HubSpot wants the id
        " " + OWNER_1,
    ],
)
def test_only_existing_owner_ids_are_accepted(client: httpx.Client, value: str) -> None:
    response = client.post(UPSERT, json=batch(call(1, trace=False, hubspot_owner_id=value)))
    assert response.status_code == 400
    (detail,) = response.json()["errors"]
    assert detail == {
        "message": f"{value} was not a valid owner id.",
        "code": "INVALID_OPTION",
        "context": {"propertyName": ["hubspot_owner_id"]},
    }


def test_every_object_checks_its_owner(client: httpx.Client) -> None:
    item = {
        "idProperty": "external_deal_id",
        "id": "D-1",
        "objectWriteTraceId": "t",
        "properties": {
            "dealname": "d", "dealstage": "closedwon", "pipeline": "default",
            "hubspot_owner_id": "1",
        },
    }  # fmt: skip
    response = client.post("/crm/objects/2026-03/deals/batch/upsert", json=batch(item))
    assert response.status_code == 200  # a partial batch on a date-based path
    assert response.json()["errors"][0]["errors"][0]["message"] == "1 was not a valid owner id."
    good = client.post(
        "/crm/v3/objects/calls/batch/upsert", json=batch(call(2, hubspot_owner_id=owner(25)))
    )
    assert good.status_code == 200


def test_owners_change_at_run_time(sandbox: SandboxServer, client: httpx.Client) -> None:
    sandbox.configure(owners=3)
    assert [o["id"] for o in sandbox.owners()] == [owner(1), owner(2), owner(3)]
    refused = client.post(UPSERT, json=batch(call(1, trace=False, hubspot_owner_id=owner(4))))
    assert refused.status_code == 400
    sandbox.configure(owners=30)
    accepted = client.post(UPSERT, json=batch(call(1, trace=False, hubspot_owner_id=owner(30))))
    assert accepted.status_code == 200
    with httpx.Client(base_url=sandbox.base_url) as admin:
        assert len(admin.get("/_sandbox/owners").json()["results"]) == 30
