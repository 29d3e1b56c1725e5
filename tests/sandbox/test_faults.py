"""Injected faults, lost writes, seeded determinism, and latency."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from bulkload.sandbox import SandboxServer

from .helpers import JSON_TYPE, UPSERT, batch, call, client_for

PROPERTIES = "/crm/v3/properties/calls"


def faulty(
    start_sandbox: Callable[..., SandboxServer], kind: str, **fields: object
) -> SandboxServer:
    return start_sandbox(fault_probabilities={kind: 1.0}, **fields)


@pytest.mark.parametrize(
    ("kind", "status", "message"),
    [
        ("502", 502, "Bad Gateway"),
        ("503", 503, "Service Unavailable"),
        ("504", 504, "Gateway Timeout"),
    ],
)
def test_5xx_with_json_body(
    start_sandbox: Callable[..., SandboxServer], kind: str, status: int, message: str
) -> None:
    sandbox = faulty(start_sandbox, kind, empty_5xx_body_rate=0.0)
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(1)))
    assert response.status_code == status
    assert response.headers["content-type"] == JSON_TYPE
    body = response.json()
    assert body["status"] == "error" and body["message"] == message and body["correlationId"]
    assert "x-hubspot-ratelimit-remaining" in response.headers
    assert sandbox.counters()["faults"] == {kind: 1}


def test_5xx_with_empty_body(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = faulty(start_sandbox, "503", empty_5xx_body_rate=1.0)
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(1)))
    assert response.status_code == 503
    assert response.content == b""


def test_524_is_a_cloudflare_html_page(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = faulty(start_sandbox, "524")
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(1)))
    assert response.status_code == 524
    assert response.headers["content-type"] == "text/html"
    assert response.text.startswith("<html>")
    assert "<title>524 Origin Time-out</title>" in response.text


def test_423_locked_writes_nothing(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = faulty(start_sandbox, "423", lost_write_applied=1.0)
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(1)))
    assert response.status_code == 423
    assert response.json()["category"] == "LOCKED"
    assert sandbox.store_records() == {}


def test_477_has_retry_after(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = faulty(start_sandbox, "477", migration_retry_after_s=7)
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(1)))
    assert response.status_code == 477
    assert response.headers["retry-after"] == "7"
    assert sandbox.store_records() == {}


@pytest.mark.parametrize("applied", [True, False])
def test_5xx_after_commit_applies_the_write_or_not(
    start_sandbox: Callable[..., SandboxServer], applied: bool
) -> None:
    sandbox = faulty(start_sandbox, "502", lost_write_applied=applied)
    with client_for(sandbox) as client:
        assert client.post(UPSERT, json=batch(call(1))).status_code == 502
    assert ("call-1" in sandbox.store_records()) is applied
    counters = sandbox.counters()
    assert counters["lost_writes_applied"] == int(applied)
    assert counters["lost_writes_discarded"] == int(not applied)


@pytest.mark.parametrize("applied", [True, False])
def test_dropped_connection(start_sandbox: Callable[..., SandboxServer], applied: bool) -> None:
    sandbox = faulty(start_sandbox, "drop", lost_write_applied=applied)
    with client_for(sandbox) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post(UPSERT, json=batch(call(1)))
    assert ("call-1" in sandbox.store_records()) is applied
    assert sandbox.counters()["requests_by_status"] == {"dropped": 1}
    # The server itself is fine: the next request on a new connection is answered.
    sandbox.configure(fault_probabilities={})
    with client_for(sandbox) as client:
        assert client.post(UPSERT, json=batch(call(2))).status_code == 200


@pytest.mark.parametrize("applied", [True, False])
def test_slow_answer_times_the_client_out(
    start_sandbox: Callable[..., SandboxServer], applied: bool
) -> None:
    sandbox = faulty(start_sandbox, "slow", lost_write_applied=applied, slow_response_s=1.0)
    with client_for(sandbox, timeout=0.2) as client, pytest.raises(httpx.ReadTimeout):
        client.post(UPSERT, json=batch(call(1)))
    assert ("call-1" in sandbox.store_records()) is applied


def test_slow_answer_eventually_arrives(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = faulty(start_sandbox, "slow", lost_write_applied=False, slow_response_s=0.3)
    with client_for(sandbox, timeout=10) as client:
        response = client.post(UPSERT, json=batch(call(1)))
    assert response.status_code == 504  # the write was not applied: the gateway gave up
    assert sandbox.store_records() == {}


def test_malformed_answer_is_truncated_json_after_the_write(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = faulty(start_sandbox, "malformed")
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(1)))
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON_TYPE
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert "call-1" in sandbox.store_records()


def test_faults_hit_upserts_only_unless_reads_are_asked_for(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = faulty(start_sandbox, "503")
    with client_for(sandbox) as client:
        assert client.get(PROPERTIES).status_code == 200
        sandbox.configure(fault_reads=True)
        assert client.get(PROPERTIES).status_code == 503


def test_fault_rate_spreads_over_kinds_and_is_seeded(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    def statuses(seed: int) -> list[int | str]:
        sandbox = start_sandbox(fault_rate=0.5, seed=seed, slow_response_s=0.0)
        out: list[int | str] = []
        with client_for(sandbox) as client:
            for n in range(60):
                try:
                    out.append(client.post(UPSERT, json=batch(call(n))).status_code)
                except httpx.RemoteProtocolError:
                    out.append("dropped")
        return out

    first, again, other = statuses(7), statuses(7), statuses(8)
    assert first == again
    assert first != other
    assert 200 in first
    assert len(set(first) - {200}) >= 3  # several kinds of fault


def test_latency_is_added_without_blocking_other_requests(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = start_sandbox(latency_ms=250, rate_limit_max=None)
    with client_for(sandbox) as client:
        started = time.perf_counter()
        assert client.get(PROPERTIES).status_code == 200
        assert time.perf_counter() - started >= 0.25

    elapsed: list[float] = []

    def one() -> None:
        with client_for(sandbox) as c:
            t = time.perf_counter()
            c.get(PROPERTIES)
            elapsed.append(time.perf_counter() - t)

    started = time.perf_counter()
    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # In sequence 20 requests would take 5 s; concurrently, about one latency.
    assert time.perf_counter() - started < 3.0
    assert min(elapsed) >= 0.25


def test_bad_fault_config_is_refused(start_sandbox: Callable[..., SandboxServer]) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        start_sandbox(fault_probabilities={"500": 0.1})
    with pytest.raises(ValueError, match="more than 1"):
        start_sandbox(fault_probabilities={"502": 0.8}, fault_rate=0.5)


def test_a_429_fault_writes_nothing_and_reads_like_the_rolling_limit(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = faulty(start_sandbox, "429")
    with client_for(sandbox) as client:
        response = client.post(UPSERT, json=batch(call(1)))
    assert response.status_code == 429
    body = response.json()
    assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
    assert "x-hubspot-ratelimit-remaining" in response.headers
    assert sandbox.store_records() == {}


def test_fault_requests_choose_which_requests_fail(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(fault_probabilities={"503": 1.0}, fault_requests=("associate",),
                            empty_5xx_body_rate=0.0)
    with client_for(sandbox) as client:
        upsert = client.post(UPSERT, json=batch(call(1)))
        associate = client.post("/crm/v4/associations/calls/contacts/batch/associate/default",
                                json={"inputs": [{"from": {"id": "1"}, "to": {"id": "2"}}]})
    assert upsert.status_code == 200
    assert associate.status_code == 503
