"""The SQLite store across restarts, and the /_sandbox/ admin endpoints."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bulkload.sandbox import SandboxConfig, SandboxServer

from .helpers import TOKEN, UPSERT, FakeClock, batch, call, client_for


def test_records_survive_a_restart(tmp_path: Path) -> None:
    store = str(tmp_path / "sandbox.db")
    clock = FakeClock()
    with (
        SandboxServer(SandboxConfig(store_path=store, clock=clock)) as sandbox,
        client_for(sandbox) as client,
    ):
        created = client.post(UPSERT, json=batch(call(1, hs_call_body="notes"), call(2))).json()[
            "results"
        ]
    first_ids = {r["properties"]["external_call_id"]: r["id"] for r in created}

    clock.advance(60)
    with (
        SandboxServer(SandboxConfig(store_path=store, clock=clock)) as sandbox,
        client_for(sandbox) as client,
    ):
        assert set(sandbox.store_records()) == {"call-1", "call-2"}
        assert sandbox.store_records()["call-1"]["hs_call_body"] == "notes"
        again = client.post(UPSERT, json=batch(call(1, hs_call_body=""), call(3))).json()["results"]
        records = sandbox.store_records()
        writes = sandbox.counters()["writes_per_id"]

    updated, new = again
    assert updated["new"] is False
    assert updated["id"] == first_ids["call-1"]
    assert updated["createdAt"] == created[0]["createdAt"]
    assert updated["updatedAt"] > created[0]["updatedAt"]
    assert new["new"] is True
    assert new["id"] not in first_ids.values()  # ids keep counting after a restart
    assert "hs_call_body" not in records["call-1"]
    assert writes == {"call-1": 2, "call-2": 1, "call-3": 1}


def test_each_request_is_committed_before_its_answer(tmp_path: Path) -> None:
    store = tmp_path / "sandbox.db"
    with (
        SandboxServer(SandboxConfig(store_path=str(store))) as sandbox,
        client_for(sandbox) as client,
    ):
        client.post(UPSERT, json=batch(call(1), call(2)))
        # Read the file from outside while the server runs, as a crash test would.
        with sqlite3.connect(store) as db:
            (count,) = db.execute("SELECT count(*) FROM records").fetchone()
    assert count == 2


@pytest.mark.parametrize("applied", [True, False])
def test_lost_write_is_persisted_or_not(tmp_path: Path, applied: bool) -> None:
    store = str(tmp_path / "sandbox.db")
    config = SandboxConfig(
        store_path=store, fault_probabilities={"drop": 1.0}, lost_write_applied=applied
    )
    with (
        SandboxServer(config) as sandbox,
        client_for(sandbox) as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        client.post(UPSERT, json=batch(call(1)))
    with SandboxServer(SandboxConfig(store_path=store)) as sandbox:
        assert ("call-1" in sandbox.store_records()) is applied


def test_created_properties_survive_a_restart(tmp_path: Path) -> None:
    store = str(tmp_path / "sandbox.db")
    prop = {
        "name": "crm_key",
        "label": "CRM key",
        "type": "string",
        "fieldType": "text",
        "groupName": "callinformation",
        "hasUniqueValue": True,
    }
    with SandboxServer(SandboxConfig(store_path=store)) as sandbox, client_for(sandbox) as client:
        assert client.post("/crm/v3/properties/calls", json=prop).status_code == 201
        item = {
            "idProperty": "crm_key",
            "id": "K-1",
            "properties": {"hs_timestamp": "1714557600000"},
        }
        client.post(UPSERT, json=batch(item))
    with SandboxServer(SandboxConfig(store_path=store)) as sandbox, client_for(sandbox) as client:
        assert client.get("/crm/v3/properties/calls/crm_key").json()["hasUniqueValue"] is True
        item = {"idProperty": "crm_key", "id": "K-1", "properties": {"hs_call_title": "again"}}
        assert client.post(UPSERT, json=batch(item)).json()["results"][0]["new"] is False


# --- admin endpoints


def test_admin_config_store_counters_and_reset(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox()
    with httpx.Client(base_url=sandbox.base_url) as admin, client_for(sandbox) as client:
        assert admin.get("/_sandbox/health").json() == {"status": "ok"}
        config = admin.get("/_sandbox/config").json()
        assert config["tokens"] == [TOKEN]
        assert config["rate_limit_max"] == 190
        assert "clock" not in config

        changed = admin.post(
            "/_sandbox/config", json={"mode": "strict", "fault_probabilities": {"423": 1.0}}
        )
        assert changed.status_code == 200
        assert changed.json()["mode"] == "strict"
        assert sandbox.config.mode == "strict"
        assert client.post(UPSERT, json=batch(call(1))).status_code == 423
        admin.post("/_sandbox/config", json={"fault_probabilities": {}})

        client.post(UPSERT, json=batch(call(1), call(2)))
        store = admin.get("/_sandbox/store").json()
        assert store["count"] == 2
        assert store["records"]["call-1"]["external_call_id"] == "call-1"
        by_title = admin.get("/_sandbox/store", params={"id_property": "hs_call_title"}).json()
        assert set(by_title["records"]) == {"Call 1", "Call 2"}

        counters = admin.get("/_sandbox/counters").json()
        assert counters["requests_by_status"] == {"423": 1, "200": 1}
        assert counters["faults"] == {"423": 1}

        assert admin.post("/_sandbox/reset", json={"store": False}).status_code == 200
        assert admin.get("/_sandbox/store").json()["count"] == 2
        assert admin.get("/_sandbox/counters").json()["requests_total"] == 0
        admin.post("/_sandbox/reset")
        assert admin.get("/_sandbox/store").json()["count"] == 0


def test_admin_refuses_bad_changes(sandbox: SandboxServer) -> None:
    with httpx.Client(base_url=sandbox.base_url) as admin:
        for change in ({"mode": "lenient"}, {"no_such_knob": 1}, {"store_path": "/tmp/x.db"}):
            response = admin.post("/_sandbox/config", json=change)
            assert response.status_code == 400
            assert response.json()["error"]
        assert admin.get("/_sandbox/nothing").status_code == 404


def test_configure_adds_unique_properties_at_runtime(sandbox: SandboxServer) -> None:
    sandbox.configure(unique_properties=("late_key",))
    with client_for(sandbox) as client:
        item = {
            "idProperty": "late_key",
            "id": "L",
            "properties": {"hs_timestamp": "1714557600000"},
        }
        assert client.post(UPSERT, json=batch(item)).status_code == 200
    with pytest.raises(ValueError, match="immutable"):
        sandbox.configure(unique_properties=("hs_call_title",))


def test_state_is_readable_after_stop(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox()
    with client_for(sandbox) as client:
        client.post(UPSERT, json=batch(call(1)))
    sandbox.stop()
    assert set(sandbox.store_records()) == {"call-1"}
