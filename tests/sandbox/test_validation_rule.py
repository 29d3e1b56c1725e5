"""The portal's validation rule (HubSpot's 2026-09 write validation): a property
every create and update must set. Strict mode (or no trace ids): a whole-batch
400 that names no input. multi_status: a per-input error with its trace id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from bulkload.sandbox import SandboxConfig, SandboxServer, sandbox_command

from .helpers import DATED, UPSERT, batch, call, client_for, record, upsert_path

RULE = {"calls": ("hs_call_body",)}
DETAIL = {
    "message": "A value for hs_call_body must be provided",
    "code": "MISSING_REQUIRED_PROPERTY",
    "context": {"propertyName": ["hs_call_body"]},
}


def test_strict_mode_rejects_the_whole_batch_naming_no_input(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = start_sandbox(mode="strict", required_properties=RULE)
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(1, hs_call_body="notes"), call(2), call(3)))
    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["status", "message", "correlationId", "errors", "category"]
    assert body["message"] == "The property values provided are invalid"
    assert body["category"] == "VALIDATION_ERROR"
    assert body["errors"] == [DETAIL]
    # Nothing points at an input: no trace id, no id, no position.
    text = response.text
    for hint in ("trace-call", "call-2", "call-3", "objectWriteTraceId", "ids"):
        assert hint not in text
    assert sandbox.store_records() == {}


def test_without_trace_ids_it_is_the_same_400(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(required_properties=RULE)
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(1, trace=False)))
    assert response.status_code == 400
    assert response.json()["errors"] == [DETAIL]


@pytest.mark.parametrize(("family", "status"), [("/crm/v3/objects", 207), (DATED, 200)])
def test_multi_status_lists_each_bad_input_with_its_trace_id(
    start_sandbox: Callable[..., SandboxServer], family: str, status: int
) -> None:
    sandbox = start_sandbox(required_properties=RULE)
    with client_for(sandbox) as client:
        response = client.post(
            upsert_path("calls", family), json=batch(call(1, hs_call_body="notes"), call(2))
        )
    assert response.status_code == status
    body = response.json()
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["trace-call-1"]
    assert body["numErrors"] == 1
    assert body["errors"] == [
        {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "The property values provided are invalid",
            "context": {"objectWriteTraceId": ["trace-call-2"]},
            "errors": [DETAIL],
        }
    ]
    assert set(sandbox.store_records()) == {"call-1"}


def test_updates_must_set_it_too(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox()
    with client_for(sandbox) as client:
        assert client.post(UPSERT, json=batch(call(1))).status_code == 200
        sandbox.configure(required_properties=RULE)
        update = client.post(UPSERT, json=batch(call(1, trace=False, hs_call_title="renamed")))
        cleared = client.post(UPSERT, json=batch(call(1, trace=False, hs_call_body="")))
    assert update.status_code == cleared.status_code == 400
    assert sandbox.store_records()["call-1"]["hs_call_title"] == "Call 1"


def test_switched_at_run_time_through_the_admin_endpoint(sandbox: SandboxServer) -> None:
    with httpx.Client(base_url=sandbox.base_url) as admin, client_for(sandbox) as client:
        assert client.post(UPSERT, json=batch(call(1, trace=False))).status_code == 200
        on = admin.post(
            "/_sandbox/config", json={"required_properties": {"call": ["hs_call_body"]}}
        )
        assert on.status_code == 200
        assert on.json()["required_properties"] == {"calls": ["hs_call_body"]}
        assert client.post(UPSERT, json=batch(call(2, trace=False))).status_code == 400
        # The list form works too: OBJECT.PROPERTY strings.
        admin.post("/_sandbox/config", json={"required_properties": ["calls.hs_call_title"]})
        assert client.post(UPSERT, json=batch(call(3, trace=False))).status_code == 200
        off = admin.post("/_sandbox/config", json={"required_properties": {}})
        assert off.json()["required_properties"] == {}
        assert client.post(UPSERT, json=batch(call(4, trace=False))).status_code == 200
        bad = admin.post("/_sandbox/config", json={"required_properties": {"calls": ["nope"]}})
        assert bad.status_code == 400 and "nope" in bad.json()["error"]


def test_the_rule_is_per_object(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(required_properties={"contacts": ("phone", "lastname")})
    with client_for(sandbox) as client:
        calls = client.post(UPSERT, json=batch(call(1, trace=False)))
        contact = client.post(
            upsert_path("contacts"), json=batch(record("c", "external_contact_id", firstname="A"))
        )
    assert calls.status_code == 200
    assert contact.status_code == 400
    assert [e["context"]["propertyName"] for e in contact.json()["errors"]] == [
        ["phone"],
        ["lastname"],
    ]


def test_the_cli_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_serve(config: SandboxConfig, host: str, port: int) -> None:
        seen["config"] = config

    monkeypatch.setattr("bulkload.sandbox.command.serve", fake_serve)
    runner = CliRunner()
    result = runner.invoke(
        sandbox_command,
        ["--require-property", "calls.hs_call_body", "--require-property", "hs_call_title",
         "--require-property", "0-1.email"],
    )  # fmt: skip
    bad = runner.invoke(sandbox_command, ["--require-property", "widgets.x"])
    assert result.exit_code == 0, result.output
    assert seen["config"].required_properties == {
        "calls": ("hs_call_body", "hs_call_title"),
        "contacts": ("email",),
    }
    assert bad.exit_code == 2
