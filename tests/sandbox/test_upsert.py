"""Batch upsert: request shape, batch rules, 200 results, create vs update."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from bulkload.sandbox import SandboxServer

from .helpers import JSON_TYPE, UPSERT, FakeClock, batch, call, client_for


def assert_error(
    response: httpx.Response, status: int, category: str, message: str
) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == JSON_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == "error"
    assert body["category"] == category
    assert body["message"] == message
    uuid.UUID(body["correlationId"])
    return body


def test_create_returns_200_with_hubspot_result_shape(client: httpx.Client) -> None:
    response = client.post(UPSERT, json=batch(call(1, hs_call_status="COMPLETED"), call(2)))

    assert response.status_code == 200
    assert response.headers["content-type"] == JSON_TYPE
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert {"startedAt", "completedAt", "requestedAt"} <= body.keys()
    assert "numErrors" not in body and "errors" not in body
    first = body["results"][0]
    assert first["new"] is True
    assert first["archived"] is False
    assert first["objectWriteTraceId"] == "trace-call-1"
    assert first["id"].isdigit()
    assert first["createdAt"] == first["updatedAt"]
    props = first["properties"]
    assert props["external_call_id"] == "call-1"  # the idProperty value comes from `id`
    assert props["hs_object_id"] == first["id"]
    assert props["hs_createdate"] == first["createdAt"]
    assert props["hs_lastmodifieddate"] == first["updatedAt"]
    assert props["hs_call_status"] == "COMPLETED"
    for stamp in (first["createdAt"], body["startedAt"], body["completedAt"]):
        assert stamp.endswith("Z") and len(stamp) == 24
        datetime.fromisoformat(stamp)
    assert body["results"][0]["id"] != body["results"][1]["id"]


def test_update_keeps_created_at_and_bumps_updated_at(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    clock = FakeClock()
    sandbox = start_sandbox(clock=clock)
    with client_for(sandbox) as client:
        first = client.post(UPSERT, json=batch(call(1))).json()["results"][0]
        clock.advance(5)
        second = client.post(UPSERT, json=batch(call(1, hs_call_title="renamed"))).json()[
            "results"
        ][0]

    assert second["new"] is False
    assert second["id"] == first["id"]
    assert second["createdAt"] == first["createdAt"] == "2024-05-01T10:00:00.000Z"
    assert second["updatedAt"] == "2024-05-01T10:00:05.000Z"
    assert second["properties"]["hs_lastmodifieddate"] == second["updatedAt"]
    record = sandbox.store_records()["call-1"]
    assert record["hs_call_title"] == "renamed"
    assert record["hs_createdate"] == first["createdAt"]


def test_update_within_the_same_millisecond_still_moves_updated_at(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = start_sandbox(clock=FakeClock())
    with client_for(sandbox) as client:
        first = client.post(UPSERT, json=batch(call(1))).json()["results"][0]
        second = client.post(UPSERT, json=batch(call(1))).json()["results"][0]
    assert second["updatedAt"] > first["updatedAt"]


def test_empty_string_clears_a_property(sandbox: SandboxServer, client: httpx.Client) -> None:
    client.post(UPSERT, json=batch(call(1, hs_call_body="notes")))
    response = client.post(UPSERT, json=batch(call(1, hs_call_body="")))
    assert response.status_code == 200
    assert "hs_call_body" not in sandbox.store_records()["call-1"]


def test_update_does_not_need_hs_timestamp(client: httpx.Client) -> None:
    client.post(UPSERT, json=batch(call(1)))
    item = {"idProperty": "external_call_id", "id": "call-1", "properties": {"hs_call_title": "x"}}
    response = client.post(UPSERT, json=batch(item))
    assert response.status_code == 200
    assert response.json()["results"][0]["new"] is False


@pytest.mark.parametrize(
    "path",
    [
        "/crm/v3/objects/calls/batch/upsert",
        "/crm/v3/objects/0-48/batch/upsert",
        "/crm/objects/2026-03/calls/batch/upsert",
    ],
)
def test_calls_are_reachable_by_name_id_and_dated_path(client: httpx.Client, path: str) -> None:
    assert client.post(path, json=batch(call(1))).status_code == 200


def test_other_object_types_are_not_found(client: httpx.Client) -> None:
    response = client.post("/crm/v3/objects/widgets/batch/upsert", json=batch(call(1)))
    assert_error(response, 404, "OBJECT_NOT_FOUND", "Unable to infer object type from: widgets")


def test_unknown_path_is_404(client: httpx.Client) -> None:
    response = client.get("/crm/v3/nothing")
    assert response.status_code == 404
    assert response.json()["message"] == "resource not found"


def test_get_on_upsert_path_is_405(client: httpx.Client) -> None:
    assert client.get(UPSERT).status_code == 405


def test_empty_inputs_complete_with_no_results(client: httpx.Client) -> None:
    response = client.post(UPSERT, json={"inputs": []})
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_more_than_100_inputs_is_rejected(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.post(UPSERT, json=batch(*(call(i) for i in range(101))))
    assert_error(
        response,
        400,
        "VALIDATION_ERROR",
        "The maximum number of inputs supported in a batch request is 100. "
        "Please reduce the number of items and try again",
    )
    assert sandbox.store_records() == {}
    assert client.post(UPSERT, json=batch(*(call(i) for i in range(100)))).status_code == 200


def test_missing_inputs_is_rejected(client: httpx.Client) -> None:
    assert_error(
        client.post(UPSERT, json={"input": []}),
        400,
        "VALIDATION_ERROR",
        "Invalid input JSON: Cannot build BatchInputSimplePublicObjectBatchInputUpsert, "
        "some of required attributes are not set [inputs]",
    )


@pytest.mark.parametrize(("missing", "names"), [("id", "id"), ("properties", "properties")])
def test_input_without_id_or_properties_is_rejected(
    client: httpx.Client, missing: str, names: str
) -> None:
    item = call(1)
    del item[missing]
    assert_error(
        client.post(UPSERT, json=batch(item)),
        400,
        "VALIDATION_ERROR",
        "Invalid input JSON: Cannot build SimplePublicObjectBatchInputUpsert, "
        f"some of required attributes are not set [{names}]",
    )


def test_unparseable_body_is_rejected_with_its_position(client: httpx.Client) -> None:
    response = client.post(
        UPSERT, content=b'{"inputs": [', headers={"content-type": "application/json"}
    )
    body = response.json()
    assert response.status_code == 400
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Invalid input JSON on line 1, column ")


@pytest.mark.parametrize("id_property", ["hs_call_title", "hs_object_id", "no_such_property"])
def test_non_unique_id_property_rejects_the_whole_request(
    sandbox: SandboxServer, client: httpx.Client, id_property: str
) -> None:
    item = call(1)
    item["idProperty"] = id_property
    response = client.post(UPSERT, json=batch(call(2), item))
    assert_error(
        response,
        400,
        "VALIDATION_ERROR",
        f"Unable to perform update/upsert by non-unique 0-48 property {id_property}",
    )
    assert sandbox.store_records() == {}


def test_missing_id_property_is_rejected(client: httpx.Client) -> None:
    item = call(1)
    del item["idProperty"]
    assert_error(
        client.post(UPSERT, json=batch(item)),
        400,
        "VALIDATION_ERROR",
        "Unable to perform update/upsert by non-unique 0-48 property hs_object_id",
    )


@pytest.mark.parametrize("traces", [True, False])
def test_duplicate_ids_reject_the_whole_request(
    sandbox: SandboxServer, client: httpx.Client, traces: bool
) -> None:
    inputs = [
        call(1, trace=traces),
        call(2, trace=traces),
        call(1, trace=traces),
        call(2, trace=traces),
    ]
    if traces:
        for n, item in enumerate(inputs):
            item["objectWriteTraceId"] = f"row-{n}"
    body = assert_error(
        client.post(UPSERT, json=batch(*inputs)),
        400,
        "VALIDATION_ERROR",
        "Duplicate IDs found in batch input: [call-1, call-2]. IDs must be unique",
    )
    assert body["context"] == {"ids": ["call-1", "call-2"]}
    assert sandbox.store_records() == {}


def test_non_string_values_are_refused_by_default(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    item = call(1)
    item["properties"]["hs_call_duration"] = 1000
    body = assert_error(
        client.post(UPSERT, json=batch(item)),
        400,
        "VALIDATION_ERROR",
        "Invalid input JSON: Cannot deserialize value of type `java.lang.String` from Number value "
        '(through reference chain: BatchInputSimplePublicObjectBatchInputUpsert["inputs"]'
        '->java.util.ArrayList[0]->SimplePublicObjectBatchInputUpsert["hs_call_duration"])',
    )
    assert body["correlationId"]
    assert sandbox.store_records() == {}


def test_non_string_values_can_be_coerced(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(coerce_non_string_values=True)
    item = call(1)
    item["properties"].update(hs_call_duration=1000, hs_call_has_voicemail=True)
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(item))
    assert response.status_code == 200
    props = response.json()["results"][0]["properties"]
    assert props["hs_call_duration"] == "1000"
    assert props["hs_call_has_voicemail"] == "true"


def test_unknown_properties_can_be_ignored(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(unknown_properties="ignore")
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(1, colour="red")))
    assert response.status_code == 200
    assert "colour" not in sandbox.store_records()["call-1"]


def test_id_wins_over_the_id_property_in_properties(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    response = client.post(UPSERT, json=batch(call(1, external_call_id="other")))
    assert response.status_code == 200
    assert set(sandbox.store_records()) == {"call-1"}


def test_writes_are_counted(sandbox: SandboxServer, client: httpx.Client) -> None:
    client.post(UPSERT, json=batch(call(1), call(2)))
    client.post(UPSERT, json=batch(call(1)))
    counters = sandbox.counters()
    assert counters["writes_per_id"] == {"call-1": 2, "call-2": 1}
    assert counters["inputs_written"] == 3
    assert counters["inputs_created"] == 2
    assert counters["inputs_updated"] == 1
    assert counters["requests_by_status"] == {"200": 2}
    assert sum(counters["requests_per_window"].values()) == 2
