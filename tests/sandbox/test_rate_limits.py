"""Rate limits: the rolling window per token, the daily count, headers, 429 bodies.

Time is a FakeClock handed to the sandbox, so nothing here sleeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

from bulkload.sandbox import SandboxServer

from .helpers import UPSERT, FakeClock, batch, call, client_for

PROPERTIES = "/crm/v3/properties/calls"


def limits(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("x-hubspot-ratelimit-")}


def test_190_per_10_seconds_admits_190_and_refuses_the_191st(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    clock = FakeClock()
    sandbox = start_sandbox(clock=clock)
    with client_for(sandbox) as client:
        # 190 requests spread over 9.5 s: all admitted, Remaining counts down.
        for n in range(190):
            response = client.get(PROPERTIES)
            assert response.status_code == 200
            assert limits(response) == {
                "x-hubspot-ratelimit-max": "190",
                "x-hubspot-ratelimit-remaining": str(189 - n),
                "x-hubspot-ratelimit-interval-milliseconds": "10000",
                # A private app's answers carry the day's usage (Professional: 650,000).
                "x-hubspot-ratelimit-daily": "650000",
                "x-hubspot-ratelimit-daily-remaining": str(649_999 - n),
            }
            clock.advance(0.05)
        refused = client.post(UPSERT, json=batch(call(1)))

    assert refused.status_code == 429
    assert limits(refused)["x-hubspot-ratelimit-remaining"] == "0"
    assert limits(refused)["x-hubspot-ratelimit-max"] == "190"
    assert "retry-after" not in refused.headers
    body = refused.json()
    assert set(body) == {
        "status",
        "message",
        "errorType",
        "correlationId",
        "policyName",
        "requestId",
    }
    assert body["status"] == "error"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert "category" not in body
    uuid.UUID(body["correlationId"])
    uuid.UUID(body["requestId"])
    assert sandbox.store_records() == {}
    assert sandbox.counters()["rate_limited"] == {"TEN_SECONDLY_ROLLING": 1}


def test_the_window_rolls(start_sandbox: Callable[..., SandboxServer]) -> None:
    clock = FakeClock()
    sandbox = start_sandbox(clock=clock, rate_limit_max=3)
    with client_for(sandbox) as client:
        statuses = []
        # t=0, 4, 8 admitted; t=9.9 refused; t=10.0 admitted (t=0 left the window);
        # t=13.9 refused; t=14.0 admitted (t=4 left).
        for at in (0.0, 4.0, 8.0, 9.9, 10.0, 13.9, 14.0):
            clock.now = 1_714_557_600.0 + at
            statuses.append(client.get(PROPERTIES).status_code)
    assert statuses == [200, 200, 200, 429, 200, 429, 200]


def test_any_10_second_window_holds_at_most_the_limit(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    clock = FakeClock()
    sandbox = start_sandbox(clock=clock, rate_limit_max=190)
    admitted: list[float] = []
    with client_for(sandbox) as client:
        for _ in range(600):  # 600 requests over 30 s, twice the allowed rate
            if client.get(PROPERTIES).status_code == 200:
                admitted.append(clock.now)
            clock.advance(0.05)
    assert len(admitted) == 3 * 190
    for i, start in enumerate(admitted):
        in_window = [t for t in admitted[i:] if t < start + 10]
        assert len(in_window) <= 190


def test_429s_do_not_use_up_the_window_by_default(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    clock = FakeClock()
    sandbox = start_sandbox(clock=clock, rate_limit_max=2)
    with client_for(sandbox) as client:
        codes = [client.get(PROPERTIES).status_code for _ in range(5)]
        clock.advance(10)
        assert client.get(PROPERTIES).status_code == 200
    assert codes == [200, 200, 429, 429, 429]


def test_429s_can_be_made_to_use_up_the_window(start_sandbox: Callable[..., SandboxServer]) -> None:
    clock = FakeClock()
    sandbox = start_sandbox(clock=clock, rate_limit_max=2, rate_limit_counts_rejected=True)
    with client_for(sandbox) as client:
        client.get(PROPERTIES)
        clock.advance(5)
        client.get(PROPERTIES)
        clock.advance(4)
        assert client.get(PROPERTIES).status_code == 429  # at t=9: counted
        clock.advance(1.5)
        # t=10.5: the t=0 request left, but the 429 at t=9 is still in the window.
        assert client.get(PROPERTIES).status_code == 429


def test_retry_after_on_429_when_configured(start_sandbox: Callable[..., SandboxServer]) -> None:
    clock = FakeClock()
    sandbox = start_sandbox(clock=clock, rate_limit_max=1, retry_after=True)
    with client_for(sandbox) as client:
        client.get(PROPERTIES)
        clock.advance(2.5)
        refused = client.get(PROPERTIES)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "8"


def test_windows_are_per_token(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(clock=FakeClock(), tokens=("a", "b"), rate_limit_max=1)
    with client_for(sandbox, token="a") as a, client_for(sandbox, token="b") as b:
        assert a.get(PROPERTIES).status_code == 200
        assert b.get(PROPERTIES).status_code == 200
        assert a.get(PROPERTIES).status_code == 429


def test_daily_limit_is_per_account_with_headers_and_reset(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    clock = FakeClock()
    sandbox = start_sandbox(clock=clock, tokens=("a", "b"), rate_limit_max=None, daily_limit=3)
    with client_for(sandbox, token="a") as a, client_for(sandbox, token="b") as b:
        first = a.get(PROPERTIES)
        assert limits(first) == {
            "x-hubspot-ratelimit-daily": "3",
            "x-hubspot-ratelimit-daily-remaining": "2",
        }
        assert b.get(PROPERTIES).status_code == 200
        assert a.post(UPSERT, json=batch(call(1))).status_code == 200
        refused = b.get(PROPERTIES)
        assert refused.status_code == 429
        assert refused.json()["message"] == "You have reached your daily limit."
        assert refused.json()["policyName"] == "DAILY"
        assert limits(refused)["x-hubspot-ratelimit-daily-remaining"] == "0"

        sandbox.reset_daily()  # the Python API
        assert [a.get(PROPERTIES).status_code for _ in range(4)] == [200, 200, 200, 429]
        with httpx.Client(base_url=sandbox.base_url) as admin:  # the admin endpoint
            assert admin.post("/_sandbox/reset-daily").status_code == 200
        assert a.get(PROPERTIES).status_code == 200

        clock.now = (clock.now // 86_400 + 1) * 86_400  # midnight UTC
        assert a.get(PROPERTIES).status_code == 200
        assert limits(a.get(PROPERTIES))["x-hubspot-ratelimit-daily-remaining"] == "1"


def test_every_answer_after_auth_carries_the_headers(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = start_sandbox(daily_limit=1000, read_only_tokens=("viewer",))
    with client_for(sandbox) as client, client_for(sandbox, token="viewer") as viewer:
        answers = [
            client.post(UPSERT, json=batch(call(1))),  # 200
            client.post(UPSERT, json=batch(call(2), call(3, hs_call_status="x"))),  # 207
            client.post(UPSERT, json={}),  # 400
            client.get(f"{PROPERTIES}/nope"),  # 404
            viewer.post(UPSERT, json=batch(call(4))),  # 403
        ]
        unauthorized = httpx.post(sandbox.base_url + UPSERT, json=batch(call(5)))
    assert [a.status_code for a in answers] == [200, 207, 400, 404, 403]
    for answer in answers:
        assert set(limits(answer)) == {
            "x-hubspot-ratelimit-max",
            "x-hubspot-ratelimit-remaining",
            "x-hubspot-ratelimit-interval-milliseconds",
            "x-hubspot-ratelimit-daily",
            "x-hubspot-ratelimit-daily-remaining",
        }
    # A request HubSpot cannot attribute to an app gets no limit headers.
    assert unauthorized.status_code == 401
    assert limits(unauthorized) == {}


def test_limits_can_be_turned_off(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(clock=FakeClock(), rate_limit_max=None, daily_limit=None)
    with client_for(sandbox) as client:
        answers = [client.get(PROPERTIES) for _ in range(250)]
    assert {a.status_code for a in answers} == {200}
    assert limits(answers[0]) == {}
