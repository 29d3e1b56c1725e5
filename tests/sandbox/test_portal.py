"""The portal around the objects: Daily headers and OAuth tokens, the schema-read
403, counters per path family and kind, seeding, the admin endpoints for other
objects, persistence of every object in a 0600 store, and the new CLI flags."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bulkload.sandbox import SandboxConfig, SandboxProcess, SandboxServer, sandbox_command

from .helpers import (
    ASSOC_DATED,
    DATED,
    OWNER_1,
    UPSERT,
    assoc_path,
    batch,
    call,
    client_for,
    make_calls,
    pair,
    read_path,
    record,
    seeded_contact_id,
    seeded_email,
    upsert_path,
)


def limits(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("x-hubspot-ratelimit-")}


# --- Daily headers, OAuth tokens, scopes


def test_daily_headers_on_every_answer_of_a_private_app(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = start_sandbox(contacts=1, read_only_tokens=("viewer",))
    with client_for(sandbox) as client, client_for(sandbox, token="viewer") as viewer:
        answers = [
            client.post(UPSERT, json=batch(call(1))),
            client.post(read_path("contacts", DATED), json={"inputs": [{"id": "1"}]}),
            client.get("/crm/owners/2026-03"),
            client.get("/crm/properties/2026-03/deals"),
            client.post(assoc_path("calls", "contacts", "associate/default"), json={}),
            client.get("/crm/v4/objects/calls/1/associations/contacts"),
            viewer.post(UPSERT, json=batch(call(2))),
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 400, 200, 403]
    remaining = [int(limits(a)["x-hubspot-ratelimit-daily-remaining"]) for a in answers]
    assert remaining == list(range(649_999, 649_999 - len(answers), -1))
    assert {limits(a)["x-hubspot-ratelimit-daily"] for a in answers} == {"650000"}


def test_oauth_tokens_get_no_daily_headers_and_no_daily_limit(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = start_sandbox(tokens=("app",), oauth_tokens=("oauth",), daily_limit=2)
    with client_for(sandbox, token="oauth") as oauth, client_for(sandbox, token="app") as app:
        by_oauth = [oauth.get("/crm/v3/properties/calls") for _ in range(3)]
        by_app = [app.get("/crm/v3/properties/calls") for _ in range(3)]
    assert [r.status_code for r in by_oauth] == [200, 200, 200]
    for response in by_oauth:
        assert set(limits(response)) == {
            "x-hubspot-ratelimit-max",
            "x-hubspot-ratelimit-remaining",
            "x-hubspot-ratelimit-interval-milliseconds",
        }
    # The private app's day was not spent by the OAuth app.
    assert [r.status_code for r in by_app] == [200, 200, 429]


@pytest.mark.parametrize(
    "path", ["/crm/v3/properties/deals", "/crm/properties/2026-03/deal/amount"]
)
def test_a_token_without_the_schema_read_scope_gets_403(
    start_sandbox: Callable[..., SandboxServer], path: str
) -> None:
    sandbox = start_sandbox(no_schema_read_tokens=("blind",))
    with client_for(sandbox, token="blind") as client:
        refused = client.get(path)
        owners = client.get("/crm/v3/owners")
        upsert = client.post(UPSERT, json=batch(call(1)))
    assert refused.status_code == 403
    body = refused.json()
    assert body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"]["requiredGranularScopes"] == [
        "crm.schemas.deals.read",
        "crm.objects.deals.sensitive.read.v2",
        "crm.objects.deals.read",
        "crm.objects.deals.highly_sensitive.read.v2",
    ]
    assert (owners.status_code, upsert.status_code) == (200, 200)


def test_counters_per_path_family_and_kind(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(contacts=1)
    with client_for(sandbox) as client:
        calls = make_calls(client, "c1")  # v3 upsert
        client.post(upsert_path("calls", DATED), json=batch(call(2)))
        client.post(read_path("contacts"), json={"inputs": [{"id": seeded_contact_id(1)}]})
        client.post(
            assoc_path("calls", "contacts", "associate/default", ASSOC_DATED),
            json={"inputs": [pair(calls["c1"], seeded_contact_id(1))]},
        )
        client.get("/crm/v4/objects/calls/1/associations/contacts")
        client.get("/crm/properties/2026-03/calls")
        client.get("/crm/owners/2026-03")
        client.get("/crm/v3/owners")
    counters = sandbox.counters()
    assert counters["requests_by_family"] == {"v3": 3, "2026-03": 4, "v4": 1}
    assert counters["requests_by_kind"] == {
        "upsert": 2,
        "read": 1,
        "associate": 1,
        "association_read": 1,
        "properties": 1,
        "owners": 2,
    }
    assert counters["requests_total"] == 8
    assert counters["writes_by_object"] == {"calls": {"created": 2, "updated": 0, "failed": 0}}
    assert counters["associations_created"] == 1
    assert counters["associations_total"] == 2  # both directions
    assert counters["inputs_written"] == 2


# --- seeding and the admin endpoints


def test_seeded_contacts_follow_the_formula(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(contacts=3)
    contacts = sandbox.store_records(object_type="contacts")
    assert list(contacts) == [seeded_email(i) for i in (1, 2, 3)]
    third = contacts[seeded_email(3)]
    assert third["hs_object_id"] == seeded_contact_id(3) == "1000003"
    assert third["email"] == "contact-00003@example.com"
    assert third["external_contact_id"] == "contact-00003"
    assert third["firstname"] and third["lastname"]
    sandbox.configure(contacts=5)
    assert len(sandbox.store_records(object_type="0-1")) == 5
    sandbox.reset()  # the store empties, the seeded contacts come back
    assert len(sandbox.store_records(object_type="contact")) == 5
    assert sandbox.store_records() == {}


def test_records_of_any_object_through_the_admin_api(sandbox: SandboxServer) -> None:
    ids = sandbox.create_records(
        "companies", [{"name": "Acme", "external_company_id": "co-1"}, {"name": "Globex"}]
    )
    assert len(ids) == 2 and all(i.isdigit() for i in ids)
    companies = sandbox.store_records(object_type="companies")
    assert companies["co-1"]["name"] == "Acme"
    assert companies[ids[1]]["name"] == "Globex"  # no unique value: keyed by record id
    with pytest.raises(ValueError, match="not one of the allowed options"):
        sandbox.create_records("companies", [{"name": "X", "industry": "SPACE"}])
    with pytest.raises(ValueError, match="already held"):
        sandbox.create_records("companies", [{"name": "Y", "external_company_id": "co-1"}])
    with httpx.Client(base_url=sandbox.base_url) as admin:
        made = admin.post(
            "/_sandbox/records",
            json={"object_type": "0-1", "records": [{"email": "Ada@Example.com"}]},
        )
        store = admin.get("/_sandbox/store", params={"object_type": "contacts"}).json()
        bad = admin.post("/_sandbox/records", json={"object_type": "widgets", "records": []})
    assert made.status_code == 200 and len(made.json()["ids"]) == 1
    assert store["count"] == 1
    assert store["records"]["ada@example.com"]["hs_object_id"] == made.json()["ids"][0]
    assert bad.status_code == 400


def test_the_sandbox_process_has_the_same_methods(tmp_path: Path) -> None:
    config = SandboxConfig(tokens=("p",), contacts=2, store_path=str(tmp_path / "p.db"))
    with SandboxProcess(config) as sandbox:
        (company,) = sandbox.create_records("companies", [{"name": "Acme"}])
        with client_for(sandbox, token="p") as client:
            calls = make_calls(client, "c1")
            client.post(
                assoc_path("calls", "companies", "associate/default"),
                json={"inputs": [pair(calls["c1"], company)]},
            )
        assert sandbox.record_associations("calls", calls["c1"], "companies") == {company: [182]}
        assert len(sandbox.store_records(object_type="contacts")) == 2
        assert sandbox.owners()[0]["id"] == OWNER_1


# --- persistence


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_the_store_is_0600_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "sandbox.db"
    with SandboxServer(SandboxConfig(store_path=str(path))) as sandbox, client_for(sandbox) as c:
        assert c.post(UPSERT, json=batch(call(1))).status_code == 200
        files = [p for p in tmp_path.iterdir() if p.name.startswith("sandbox.db")]
        assert {p.name for p in files} >= {"sandbox.db", "sandbox.db-wal", "sandbox.db-shm"}
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name
    # An existing file with a looser mode is tightened.
    path.chmod(0o644)
    with SandboxServer(SandboxConfig(store_path=str(path))):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_every_object_associations_and_owners_survive_a_restart(tmp_path: Path) -> None:
    store = str(tmp_path / "sandbox.db")
    config = SandboxConfig(store_path=store, contacts=2, owners=30)
    prop = {
        "name": "ticket_key",
        "label": "Key",
        "type": "string",
        "fieldType": "text",
        "groupName": "ticketinformation",
        "hasUniqueValue": True,
    }
    with SandboxServer(config) as sandbox, client_for(sandbox) as client:
        calls = make_calls(client, "c1")
        client.post(
            assoc_path("calls", "contacts", "associate/default"),
            json={"inputs": [pair(calls["c1"], seeded_contact_id(2))]},
        )
        assert client.post("/crm/v3/properties/tickets", json=prop).status_code == 201
        ticket = record("T-1", "ticket_key", subject="s", hs_pipeline="0", hs_pipeline_stage="1")
        assert client.post(upsert_path("tickets"), json=batch(ticket)).status_code == 200
    with (
        SandboxServer(SandboxConfig(store_path=store, owners=25)) as sandbox,
        client_for(sandbox) as client,
    ):
        assert set(sandbox.store_records()) == {"c1"}
        assert len(sandbox.store_records(object_type="contacts")) == 2
        assert set(sandbox.store_records(object_type="tickets")) == {"T-1"}
        assert sandbox.record_associations("contacts", seeded_contact_id(2), "calls") == {
            calls["c1"]: [193]
        }
        assert client.get("/crm/v3/properties/tickets/ticket_key").json()["hasUniqueValue"]
        # Owners in the store are kept: 30 from the first run.
        assert len(sandbox.owners()) == 30
        again = client.post(upsert_path("tickets"), json=batch(record("T-1", "ticket_key")))
        assert again.json()["results"][0]["new"] is False


# --- the CLI


def test_help_lists_the_new_flags() -> None:
    result = CliRunner().invoke(sandbox_command, ["--help"])
    assert result.exit_code == 0
    for flag in (
        "--contacts", "--owners", "--archived-owners", "--partial-status", "--oauth-token",
        "--no-schema-read-token", "--no-owners-read-token", "--require-property", "--daily-limit",
    ):  # fmt: skip
        assert flag in result.output, flag


def test_cli_values_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[SandboxConfig] = []
    monkeypatch.setattr(
        "bulkload.sandbox.command.serve", lambda config, host, port: seen.append(config)
    )
    runner = CliRunner()
    args = [
        "--contacts", "10", "--owners", "3", "--archived-owners", "1", "--partial-status", "200",
        "--oauth-token", "o", "--no-schema-read-token", "s", "--no-owners-read-token", "n",
        "--daily-limit", "off", "--unique-property", "contacts.crm_key",
    ]  # fmt: skip
    assert runner.invoke(sandbox_command, args).exit_code == 0
    config = seen[-1]
    assert (config.contacts, config.owners, config.archived_owners) == (10, 3, 1)
    assert config.partial_status == 200 and config.daily_limit is None
    assert config.oauth_tokens == ("o",)
    assert config.no_schema_read_tokens == ("s",) and config.no_owners_read_tokens == ("n",)
    assert runner.invoke(sandbox_command, []).exit_code == 0
    assert seen[-1].daily_limit == 650_000 and seen[-1].owners == 25
    assert runner.invoke(sandbox_command, ["--daily-limit", "1000"]).exit_code == 0
    assert seen[-1].daily_limit == 1000
    assert runner.invoke(sandbox_command, ["--daily-limit", "lots"]).exit_code == 2
    assert runner.invoke(sandbox_command, ["--partial-status", "201"]).exit_code == 2
    assert runner.invoke(sandbox_command, ["--unique-property", "widgets.x"]).exit_code == 2


def test_the_seeding_formulas_are_importable() -> None:
    from bulkload.sandbox import (
        default_type_ids,
        owner_email,
        owner_id,
        seeded_contact,
        seeded_contact_id,
    )

    assert owner_id(1) == OWNER_1 and owner_email(12) == "owner-012@example.com"
    assert seeded_contact_id(7) == "1000007"
    assert seeded_contact(7)["email"] == seeded_email(7)
    assert default_type_ids()["calls"]["contacts"] == 194
