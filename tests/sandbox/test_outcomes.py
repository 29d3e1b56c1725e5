"""Outcome modes: 207 multi-status, whole-request 400/409, strict mode, conflicts."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from bulkload.sandbox import SandboxServer

from .helpers import UPSERT, batch, call, client_for


def test_multi_status_writes_valid_inputs_and_lists_invalid_ones(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    bad = call(2, hs_call_status="DONE", colour="red")
    response = client.post(UPSERT, json=batch(call(1), bad, call(3)))

    assert response.status_code == 207
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert body["numErrors"] == 1
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["trace-call-1", "trace-call-3"]
    (error,) = body["errors"]
    assert error["status"] == "error"
    assert error["category"] == "VALIDATION_ERROR"
    assert error["context"] == {"objectWriteTraceId": ["trace-call-2"]}
    assert error["message"].startswith("Property values were not valid: [")
    embedded = json.loads(error["message"].removeprefix("Property values were not valid: "))
    assert {e["error"] for e in embedded} == {"INVALID_OPTION", "PROPERTY_DOESNT_EXIST"}
    assert {(e["code"], e["context"]["propertyName"][0]) for e in error["errors"]} == {
        ("INVALID_OPTION", "hs_call_status"),
        ("PROPERTY_DOESNT_EXIST", "colour"),
    }
    assert set(sandbox.store_records()) == {"call-1", "call-3"}
    assert sandbox.counters()["input_errors"] == 1


def test_multi_status_with_every_input_invalid_has_empty_results(client: httpx.Client) -> None:
    response = client.post(UPSERT, json=batch(call(1, hs_call_status="DONE")))
    assert response.status_code == 207
    assert response.json()["results"] == []


def test_missing_hs_timestamp_is_one_error_in_a_207(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    new = call(2)
    del new["properties"]["hs_timestamp"]
    response = client.post(UPSERT, json=batch(call(1), new))
    assert response.status_code == 207
    (error,) = response.json()["errors"]
    assert error["message"] == "Error creating CALL.  Some required properties were not set."
    assert error["context"] == {
        "objectWriteTraceId": ["trace-call-2"],
        "properties": ["hs_timestamp"],
    }
    assert set(sandbox.store_records()) == {"call-1"}


@pytest.mark.parametrize("case", ["no traces", "one trace missing", "traces repeat"])
def test_without_unique_trace_ids_one_bad_input_fails_the_whole_batch(
    sandbox: SandboxServer, client: httpx.Client, case: str
) -> None:
    inputs = [call(1), call(2, hs_call_status="DONE"), call(3)]
    if case == "no traces":
        for item in inputs:
            del item["objectWriteTraceId"]
    elif case == "one trace missing":
        del inputs[0]["objectWriteTraceId"]
    else:
        inputs[2]["objectWriteTraceId"] = inputs[0]["objectWriteTraceId"]

    response = client.post(UPSERT, json=batch(*inputs))

    assert response.status_code == 400
    body = response.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["errors"][0]["code"] == "INVALID_OPTION"
    assert "context" not in body  # nothing says which input failed: the client must bisect
    assert sandbox.store_records() == {}


def test_strict_mode_fails_the_whole_batch_even_with_trace_ids(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = start_sandbox(mode="strict")
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(1), call(2, hs_call_status="DONE")))
        assert response.status_code == 400
        assert response.json()["errors"][0]["context"] == {"propertyName": ["hs_call_status"]}
        assert sandbox.store_records() == {}
        assert client.post(UPSERT, json=batch(call(1), call(2))).status_code == 200


def test_strict_400_names_the_property_and_the_value_in_hubspots_words(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    # HUBSPOT.md 1.5: "Property values were not valid: [...]" embeds a JSON array of
    # {isValid, message, error, name, localizedErrorMessage, portalId}, whose message
    # begins with the value; errors[] repeat the code and context.propertyName. The
    # loader reads the value from it to fail every input carrying it (HUBSPOT.md 8).
    sandbox = start_sandbox(mode="strict")
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(1), call(2, hs_call_status="DONE")))
    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["status", "message", "correlationId", "errors", "category"]
    assert (body["status"], body["category"]) == ("error", "VALIDATION_ERROR")
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix)
    (item,) = json.loads(body["message"].removeprefix(prefix))
    assert list(item) == ["isValid", "message", "error", "name", "localizedErrorMessage", "portalId"]
    assert (item["isValid"], item["error"], item["name"]) == (False, "INVALID_OPTION", "hs_call_status")
    assert item["message"].startswith("DONE was not one of the allowed options: [")
    assert item["localizedErrorMessage"] == item["message"]
    assert body["errors"] == [
        {"message": item["message"], "code": "INVALID_OPTION", "context": {"propertyName": ["hs_call_status"]}}
    ]
    assert "trace-call-2" not in response.text and "call-2" not in response.text  # names no input


# --- unique-value conflicts: another record already holds a value of a unique property


@pytest.fixture
def two_keys(start_sandbox: Callable[..., SandboxServer]) -> Callable[..., SandboxServer]:
    def start(**fields: object) -> SandboxServer:
        sandbox = start_sandbox(unique_properties=("legacy_id",), **fields)
        with client_for(sandbox) as client:
            response = client.post(UPSERT, json=batch(call(1, legacy_id="L-1")))
            assert response.status_code == 200
        return sandbox

    return start


def test_conflict_is_one_error_in_a_207(two_keys: Callable[..., SandboxServer]) -> None:
    sandbox = two_keys()
    holder = sandbox.store_records()["call-1"]["hs_object_id"]
    with client_for(sandbox) as client:
        response = client.post(
            UPSERT, json=batch(call(2, legacy_id="L-1"), call(3, legacy_id="L-3"))
        )
    assert response.status_code == 207
    (error,) = response.json()["errors"]
    assert error == {
        "status": "error",
        "category": "CONFLICT",
        "message": f"Call already exists. Existing ID: {holder}",
        "context": {"objectWriteTraceId": ["trace-call-2"]},
    }
    assert set(sandbox.store_records()) == {"call-1", "call-3"}


def test_conflict_without_trace_ids_is_a_whole_request_409(
    two_keys: Callable[..., SandboxServer],
) -> None:
    sandbox = two_keys()
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(2, trace=False, legacy_id="L-1")))
    assert response.status_code == 409
    body = response.json()
    assert body["category"] == "CONFLICT"
    assert body["message"].startswith("Call already exists. Existing ID: ")
    assert set(sandbox.store_records()) == {"call-1"}


def test_strict_mode_answers_409_for_a_conflict(two_keys: Callable[..., SandboxServer]) -> None:
    sandbox = two_keys(mode="strict")
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(2), call(3, legacy_id="L-1")))
    assert response.status_code == 409
    assert response.json()["category"] == "CONFLICT"
    assert set(sandbox.store_records()) == {"call-1"}


def test_two_inputs_claiming_one_unique_value_conflict(
    two_keys: Callable[..., SandboxServer],
) -> None:
    sandbox = two_keys()
    with client_for(sandbox) as client:
        response = client.post(
            UPSERT, json=batch(call(2, legacy_id="L-9"), call(3, legacy_id="L-9"))
        )
    assert response.status_code == 207
    (error,) = response.json()["errors"]
    assert error["category"] == "CONFLICT"
    assert error["context"] == {"objectWriteTraceId": ["trace-call-3"]}


def test_a_record_may_keep_or_move_its_own_unique_value(
    two_keys: Callable[..., SandboxServer],
) -> None:
    sandbox = two_keys()
    with client_for(sandbox) as client:
        assert client.post(UPSERT, json=batch(call(1, legacy_id="L-1"))).status_code == 200
        assert client.post(UPSERT, json=batch(call(1, legacy_id="L-2"))).status_code == 200
        # L-1 is free again.
        assert client.post(UPSERT, json=batch(call(2, legacy_id="L-1"))).status_code == 200
        # Upsert by the second unique property finds the record.
        by_legacy = {
            "idProperty": "legacy_id",
            "id": "L-2",
            "properties": {"hs_call_title": "via L-2"},
        }
        result = client.post(UPSERT, json=batch(by_legacy)).json()["results"][0]
    assert result["new"] is False
    assert sandbox.store_records()["call-1"]["hs_call_title"] == "via L-2"
