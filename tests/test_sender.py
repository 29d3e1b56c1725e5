"""Sender over a small in-test fake HubSpot (httpx.MockTransport), on a fake clock.

The fake writes records keyed by id value, refuses inputs whose id is in
`bad` (as a whole-batch 400/409, or per input in a 207), and can be scripted
to answer the next requests with faults.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from bulkload.errors import (
    EXIT_RESUMABLE,
    ApiUnavailable,
    AuthError,
    Interrupted,
    QuotaExhausted,
    SplitBudgetSpent,
    SystematicRejection,
)
from bulkload.hubspot.client import HubSpotClient
from bulkload.hubspot.exceptions import BatchRejected, RequestRejected
from bulkload.hubspot.linking import AssociateAnswer, Pair, ReadAnswer
from bulkload.hubspot.ratelimit import RateLimiter, RateLimitInfo
from bulkload.hubspot.types import UpsertInput
from bulkload.isolation import IsolationLedger
from bulkload.models import BatchOutcome, FailedRow
from bulkload.sender import RetryPolicy, Sender, next_midnight_utc

NOW = datetime(2024, 5, 1, 15, 30, tzinfo=UTC)
Fault = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.on_sleep: Callable[[], None] | None = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()


def jsonr(
    status: int, body: object = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    content = orjson.dumps(body) if body is not None else b""
    return httpx.Response(
        status, content=content, headers={"content-type": "application/json", **(headers or {})}
    )


def raise_(exc: Exception) -> Fault:
    def fault(request: httpx.Request) -> httpx.Response:
        raise exc

    return fault


class FakeHubSpot:
    """Just enough of batch upsert: records by id value, bad ids refused, scripted faults first."""

    def __init__(self, *, bad: set[str] | None = None, mode: str = "400") -> None:
        self.bad = bad or set()
        self.mode = mode  # "400" or "409": whole batch refused; "207": per-input errors
        self.script: list[Fault] = []
        self.records: dict[str, dict[str, str]] = {}
        self.requests = 0
        self.batch_sizes: list[int] = []
        self.drop: set[str] = set()  # trace ids left out of the answer
        self.lock = threading.RLock()  # scripted faults may call back into the fake

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests += 1
            if self.script:
                return self.script.pop(0)(request)
            inputs = orjson.loads(request.content)["inputs"]
            self.batch_sizes.append(len(inputs))
            bad = [i for i in inputs if i["id"] in self.bad]
            if bad and self.mode in ("400", "409"):
                return self._reject(bad[0])
            results = []
            for inp in inputs:
                if inp["id"] in self.bad or inp["objectWriteTraceId"] in self.drop:
                    continue
                new = inp["id"] not in self.records
                self.records[inp["id"]] = inp["properties"]
                results.append(
                    {
                        "id": str(1000 + len(self.records)),
                        "new": new,
                        "archived": False,
                        "createdAt": "2024-05-01T10:00:00Z",
                        "updatedAt": "2024-05-01T10:00:00Z",
                        "properties": {"external_call_id": inp["id"], **inp["properties"]},
                        "objectWriteTraceId": inp["objectWriteTraceId"],
                    }
                )
            body: dict[str, object] = {
                "status": "COMPLETE",
                "results": results,
                "startedAt": "2024-05-01T10:00:00Z",
                "completedAt": "2024-05-01T10:00:00Z",
            }
            if bad:
                body["numErrors"] = len(bad)
                body["errors"] = [
                    self._error(i) | {"context": {"objectWriteTraceId": [i["objectWriteTraceId"]]}}
                    for i in bad
                ]
            return jsonr(
                207 if bad else 200,
                body,
                {
                    "X-HubSpot-RateLimit-Max": "100",
                    "X-HubSpot-RateLimit-Remaining": "90",
                    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                },
            )

    def _error(self, inp: dict[str, object]) -> dict[str, object]:
        value = inp["properties"]["hs_call_status"]  # type: ignore[index]
        item = {
            "isValid": False,
            "message": f"{value} was not one of the allowed options: [COMPLETED]",
            "error": "INVALID_OPTION",
            "name": "hs_call_status",
        }
        return {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "Property values were not valid: " + json.dumps([item]),
        }

    def _reject(self, first_bad: dict[str, object]) -> httpx.Response:
        if self.mode == "409":
            return jsonr(
                409,
                {
                    "status": "error",
                    "message": "Unique value already exists",
                    "category": "CONFLICT",
                    "correlationId": "c-409",
                },
            )
        return jsonr(400, {**self._error(first_bad), "correlationId": "c-400"})


def make_inputs(n: int, bad: set[int] = frozenset()) -> list[UpsertInput]:  # type: ignore[assignment]
    return [
        {
            "idProperty": "external_call_id",
            "id": f"call-{i:03d}",
            "objectWriteTraceId": f"row-{i}",
            "properties": {
                "hs_timestamp": "2024-05-01T10:00:00Z",
                "hs_call_status": "DONE" if i in bad else "COMPLETED",
            },
        }
        for i in range(n)
    ]


class Recorder:
    """SendHooks that counts calls, and can refuse like --daily-budget."""

    def __init__(self, allow: int | None = None) -> None:
        self.allow = allow
        self.before = 0
        self.statuses: list[int | None] = []

    def before_request(self, kind: str) -> None:
        if self.allow is not None and self.before >= self.allow:
            raise QuotaExhausted("the daily budget is spent")
        self.before += 1

    def after_response(self, kind: str, status: int | None, rate: RateLimitInfo | None) -> None:
        self.statuses.append(status)

    def on_retry(self, kind: str) -> None:
        pass


def make_sender(
    fake: FakeHubSpot,
    clock: FakeClock,
    *,
    policy: RetryPolicy | None = None,
    stop: threading.Event | None = None,
    hooks: Recorder | None = None,
) -> tuple[Sender, HubSpotClient]:
    client = HubSpotClient(
        "https://api.hubapi.test", "pat-test", transport=httpx.MockTransport(fake)
    )
    limiter = RateLimiter(100, 10.0, clock=clock.clock, sleep=clock.sleep)
    sender = Sender(
        client,
        limiter,
        policy=policy or RetryPolicy(),
        clock=clock.clock,
        sleep=clock.sleep,
        rng=random.Random(7),
        stop=stop,
        hooks=hooks,
        now=lambda: NOW,
    )
    return sender, client


def send(
    fake: FakeHubSpot, inputs: list[UpsertInput], **kwargs: object
) -> tuple[BatchOutcome, FakeClock]:
    clock = FakeClock()
    sender, client = make_sender(fake, clock, **kwargs)  # type: ignore[arg-type]
    with client:
        return sender.send("calls", inputs), clock


def assert_each_input_once(outcome: BatchOutcome, inputs: list[UpsertInput]) -> None:
    traces = [s.trace_id for s in outcome.landed] + [f.trace_id or "" for f in outcome.failures]
    assert sorted(traces) == sorted(i["objectWriteTraceId"] for i in inputs)


# --- the happy path and transient failures ----------------------------------------------


def test_a_clean_batch_takes_one_request() -> None:
    fake = FakeHubSpot()
    inputs = make_inputs(100)
    outcome, _ = send(fake, inputs)
    assert (outcome.requests, outcome.retries, outcome.splits, outcome.http_status) == (
        1,
        0,
        0,
        200,
    )
    assert len(outcome.landed) == 100 and outcome.failures == []
    assert all(s.created for s in outcome.landed)
    assert len(fake.records) == 100


def test_transient_failures_are_retried_then_succeed() -> None:
    fake = FakeHubSpot()
    fake.script = [
        lambda r: jsonr(503),
        raise_(httpx.ReadTimeout("timed out")),
        lambda r: httpx.Response(524, content=b"<html><title>524 Origin Time-out</title></html>"),
    ]
    hooks = Recorder()
    inputs = make_inputs(10)
    outcome, clock = send(fake, inputs, hooks=hooks)
    # The batch's status is the answer that decided it, not the transient ones before it.
    assert (outcome.requests, outcome.retries, outcome.http_status) == (4, 3, 200)
    assert len(outcome.landed) == 10 and outcome.failures == []
    assert hooks.before == 4 and hooks.statuses == [503, None, 524, 200]
    assert sum(clock.slept) > 0  # backed off, on the fake clock


def test_an_outage_ends_in_api_unavailable_after_bounded_attempts() -> None:
    fake = FakeHubSpot()
    fake.script = [lambda r: jsonr(502)] * 50
    policy = RetryPolicy(max_attempts=6, max_outage_seconds=10_000)
    with pytest.raises(ApiUnavailable) as info:
        send(fake, make_inputs(5), policy=policy)
    assert fake.requests == 6
    assert info.value.exit_code == EXIT_RESUMABLE
    assert fake.records == {}  # nothing became a failed row, nothing written


def test_an_outage_is_also_bounded_in_time() -> None:
    fake = FakeHubSpot()
    fake.script = [lambda r: jsonr(503)] * 100
    policy = RetryPolicy(base=1.0, cap=8.0, max_attempts=100, max_outage_seconds=30.0)
    clock = FakeClock()
    sender, client = make_sender(fake, clock, policy=policy)
    with client, pytest.raises(ApiUnavailable):
        sender.send("calls", make_inputs(3))
    assert fake.requests < 100
    assert clock.now <= 30.0 + 10.0  # gave up instead of sleeping past the budget


def test_423_waits_at_least_two_seconds() -> None:
    fake = FakeHubSpot()
    fake.script = [lambda r: jsonr(423, {"status": "error", "message": "locked"})]
    outcome, clock = send(fake, make_inputs(3))
    assert outcome.retries == 1 and len(outcome.landed) == 3
    assert clock.now >= 2.0


def test_retry_after_on_a_transient_answer_is_honoured() -> None:
    fake = FakeHubSpot()
    fake.script = [
        lambda r: jsonr(477, {"message": "Migration in progress"}, {"Retry-After": "30"})
    ]
    outcome, clock = send(fake, make_inputs(3))
    assert outcome.retries == 1 and clock.now >= 30.0


def test_a_ten_secondly_429_waits_for_the_window() -> None:
    body = {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "policyName": "TEN_SECONDLY_ROLLING",
    }
    fake = FakeHubSpot()
    fake.script = [lambda r: jsonr(429, body, {"Retry-After": "4"}), lambda r: jsonr(429, body)]
    hooks = Recorder()
    outcome, clock = send(fake, make_inputs(3), hooks=hooks)
    assert (outcome.rate_limited, outcome.retries, outcome.requests) == (2, 2, 3)
    assert hooks.statuses == [429, 429, 200]
    assert clock.now >= 4.0 + 1.0  # Retry-After, then at least the limiter's minimum block
    assert len(outcome.landed) == 3


def test_daily_429_raises_quota_exhausted_until_midnight_utc() -> None:
    body = {
        "status": "error",
        "message": "You have reached your daily limit.",
        "errorType": "RATE_LIMIT",
        "policyName": "DAILY",
    }
    fake = FakeHubSpot()
    fake.script = [lambda r: jsonr(429, body)]
    with pytest.raises(QuotaExhausted) as info:
        send(fake, make_inputs(3))
    assert info.value.resume_after == datetime(2024, 5, 2, tzinfo=UTC)
    assert fake.requests == 1


def test_daily_429_with_retry_after() -> None:
    body = {
        "status": "error",
        "message": "You have reached your daily limit.",
        "policyName": "DAILY",
    }
    fake = FakeHubSpot()
    fake.script = [lambda r: jsonr(429, body, {"Retry-After": "600"})]
    with pytest.raises(QuotaExhausted) as info:
        send(fake, make_inputs(3))
    assert info.value.resume_after == datetime(2024, 5, 1, 15, 40, tzinfo=UTC)


def test_next_midnight_utc() -> None:
    assert next_midnight_utc(datetime(2024, 12, 31, 23, 59, tzinfo=UTC)) == datetime(
        2025, 1, 1, tzinfo=UTC
    )


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_stop_after_exactly_one_request(status: int) -> None:
    fake = FakeHubSpot()
    fake.script = [
        lambda r: jsonr(
            status, {"status": "error", "message": "no", "category": "INVALID_AUTHENTICATION"}
        )
    ]
    with pytest.raises(AuthError) as info:
        send(fake, make_inputs(100, bad={3}))
    assert info.value.status == status
    assert fake.requests == 1


def test_the_daily_budget_hook_stops_before_sending() -> None:
    fake = FakeHubSpot(bad={"call-001"}, mode="409")  # names no value: bisected
    with pytest.raises(QuotaExhausted):
        send(fake, make_inputs(10, bad={1}), hooks=Recorder(allow=2))
    assert fake.requests == 2


def test_stop_while_waiting_to_retry_raises_interrupted() -> None:
    fake = FakeHubSpot()
    fake.script = [lambda r: jsonr(503)] * 10
    stop = threading.Event()
    clock = FakeClock()
    clock.on_sleep = stop.set
    sender, client = make_sender(fake, clock, stop=stop)
    with client, pytest.raises(Interrupted):
        sender.send("calls", make_inputs(3))
    assert fake.requests == 1


# --- bisection -----------------------------------------------------------------------------


def bisection_bound(n: int, bad: int) -> int:
    """One request, plus about 2*log2(n) per bad input."""
    return 1 + bad * 2 * math.ceil(math.log2(n))


@pytest.mark.parametrize("bad", [{37}, {0, 99}, set(range(100))], ids=["1-bad", "2-bad", "100-bad"])
@pytest.mark.parametrize("mode", ["400", "409"])
def test_bisection_lands_every_good_input_and_isolates_each_bad_one(
    bad: set[int], mode: str
) -> None:
    inputs = make_inputs(100, bad=bad)
    fake = FakeHubSpot(bad={f"call-{i:03d}" for i in bad}, mode=mode)
    # Every input bad and none named: bisected to the end only when told to (split_share=1).
    outcome, _ = send(fake, inputs, policy=RetryPolicy(split_share=1.0))

    assert_each_input_once(outcome, inputs)
    assert len(fake.records) == 100 - len(bad)  # every good input landed
    assert {s.trace_id for s in outcome.landed} == {
        f"row-{i}" for i in range(100) if i not in bad
    }
    assert {f.trace_id for f in outcome.failures} == {f"row-{i}" for i in bad}
    for failure in outcome.failures:
        if mode == "400":
            assert (failure.error_type, failure.property_name, failure.invalid_value) == (
                "INVALID_ENUM_PROPERTY",
                "hs_call_status",
                "DONE",
            )
        else:
            assert failure.error_type == "CONFLICTING_UNIQUE_VALUE"
        assert failure.http_status == int(mode)
    assert outcome.requests <= bisection_bound(100, len(bad)), outcome.requests
    assert outcome.requests == fake.requests
    assert outcome.splits > 0 and outcome.http_status == int(mode)


def test_a_single_rejected_input_without_a_readable_body_is_unknown_error() -> None:
    fake = FakeHubSpot()
    fake.script = [lambda r: httpx.Response(400, content=b"nope")]
    outcome, _ = send(fake, make_inputs(1))
    (failure,) = outcome.failures
    assert (failure.trace_id, failure.error_type, failure.category, failure.message) == (
        "row-0",
        "UNKNOWN_ERROR",
        "OTHER",
        "nope",
    )


def test_a_batch_wide_rejection_stops_at_the_first_answer_without_failing_inputs() -> None:
    # About the request, not an input: every batch would get it, so the run stops (the
    # pipeline pauses the job or refuses it) instead of failing every row.
    body = {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": "Unable to perform update/upsert by non-unique 0-48 property hs_call_title",
    }
    fake = FakeHubSpot()
    fake.script = [lambda r: jsonr(400, body)]
    with pytest.raises(RequestRejected, match="non-unique"):
        send(fake, make_inputs(50))
    assert fake.requests == 1


def test_a_rejection_naming_its_culprits_resends_the_rest_at_once() -> None:
    body = {
        "status": "error",
        "message": "Conflict",
        "category": "CONFLICT",
        "context": {"objectWriteTraceId": ["row-4", "row-7"]},
    }
    fake = FakeHubSpot()
    fake.script = [lambda r: jsonr(409, body)]
    inputs = make_inputs(20)
    outcome, _ = send(fake, inputs)
    assert outcome.requests == 2
    assert {f.trace_id for f in outcome.failures} == {"row-4", "row-7"}
    assert fake.batch_sizes == [18]


def test_duplicate_ids_are_bisected_and_the_later_row_wins() -> None:
    inputs = make_inputs(4)
    inputs[3]["id"] = inputs[0]["id"]
    inputs[3]["properties"]["hs_call_status"] = "LATER"
    dup = inputs[0]["id"]

    def duplicates(request: httpx.Request) -> httpx.Response:
        return jsonr(
            400,
            {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "context": {"ids": [dup]},
                "message": f"Duplicate IDs found in batch input: [{dup}]. IDs must be unique",
            },
        )

    fake = FakeHubSpot()
    fake.script = [duplicates]
    outcome, _ = send(fake, inputs)
    assert len(outcome.landed) == 4 and outcome.failures == []
    assert fake.records[dup]["hs_call_status"] == "LATER"


# --- 207 ------------------------------------------------------------------------------------


def test_207_fails_bad_inputs_in_one_request() -> None:
    inputs = make_inputs(100, bad={5, 50})
    fake = FakeHubSpot(bad={"call-005", "call-050"}, mode="207")
    outcome, _ = send(fake, inputs)
    assert (outcome.requests, outcome.http_status, outcome.splits) == (1, 207, 0)
    assert_each_input_once(outcome, inputs)
    assert [f.trace_id for f in outcome.failures] == ["row-5", "row-50"]
    assert {f.error_type for f in outcome.failures} == {"INVALID_ENUM_PROPERTY"}


def test_inputs_missing_from_the_answer_are_resent() -> None:
    inputs = make_inputs(10)
    fake = FakeHubSpot()
    fake.drop = {"row-3"}
    original = fake.__call__

    def once(request: httpx.Request) -> httpx.Response:
        response = original(request)
        fake.drop = set()  # answered in full from the second request on
        return response

    fake.script = [once]
    outcome, _ = send(fake, inputs)
    assert outcome.requests == 2 and fake.batch_sizes == [10, 1]
    assert len(outcome.landed) == 10 and outcome.failures == []


def test_inputs_never_answered_for_become_unknown_errors() -> None:
    inputs = make_inputs(5)
    fake = FakeHubSpot()
    fake.drop = {"row-1", "row-2"}
    outcome, _ = send(fake, inputs, policy=RetryPolicy(missing_resends=2))
    assert outcome.requests == 3
    assert_each_input_once(outcome, inputs)
    assert [(f.trace_id, f.error_type) for f in outcome.failures] == [
        ("row-1", "UNKNOWN_ERROR"),
        ("row-2", "UNKNOWN_ERROR"),
    ]


def test_senders_share_one_client_and_limiter_across_threads() -> None:
    fake = FakeHubSpot(bad={"call-007"}, mode="207")
    clock = FakeClock()
    sender, client = make_sender(fake, clock)
    batches = [make_inputs(100, bad={7}) for _ in range(8)]
    outcomes: list[BatchOutcome] = []
    with client:
        threads = [
            threading.Thread(target=lambda b=b: outcomes.append(sender.send("calls", b)))
            for b in batches
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert len(outcomes) == 8
    assert all(len(o.failures) == 1 and len(o.landed) == 99 for o in outcomes)


# --- rejections that name the invalid value ------------------------------------------------


def test_a_named_invalid_value_fails_its_carriers_and_resends_the_rest_whole() -> None:
    # HubSpot's 400 names no input but says "DONE was not one of the allowed options".
    inputs = make_inputs(100, bad={3, 41, 77})
    fake = FakeHubSpot(bad={"call-003", "call-041", "call-077"})
    outcome, _ = send(fake, inputs)
    assert (outcome.requests, fake.batch_sizes) == (2, [100, 97])
    assert_each_input_once(outcome, inputs)
    assert [(f.trace_id, f.error_type, f.property_name, f.invalid_value, f.http_status)
            for f in outcome.failures] == [
        (f"row-{i}", "INVALID_ENUM_PROPERTY", "hs_call_status", "DONE", 400) for i in (3, 41, 77)]
    assert outcome.failures[0].message.startswith("Property values were not valid: [")


def test_each_distinct_invalid_value_costs_one_request() -> None:
    inputs = make_inputs(100, bad={5, 60})
    inputs[60]["properties"]["hs_call_status"] = "MISSED"
    fake = FakeHubSpot(bad={"call-005", "call-060"})
    outcome, _ = send(fake, inputs)
    assert fake.batch_sizes == [100, 99, 98]
    assert {(f.trace_id, f.invalid_value) for f in outcome.failures} == {("row-5", "DONE"), ("row-60", "MISSED")}


def test_a_value_refused_once_fails_in_later_batches_without_being_sent() -> None:
    later = make_inputs(10, bad={9})
    for inp in later:
        inp["id"] = inp["id"].replace("call-", "later-")
    fake = FakeHubSpot(bad={"call-002", "later-009"})
    clock = FakeClock()
    sender, client = make_sender(fake, clock)
    with client:
        first = sender.send("calls", make_inputs(10, bad={2}))
        second = sender.send("calls", later)
    assert (first.requests, second.requests) == (2, 1)
    assert fake.batch_sizes == [10, 9, 9]  # the second batch went without row 9
    (failure,) = second.failures
    assert (failure.trace_id, failure.error_type, failure.invalid_value, failure.origin) == (
        "row-9", "INVALID_ENUM_PROPERTY", "DONE", "hubspot")
    assert_each_input_once(second, later)


def test_a_value_that_only_contains_the_named_one_is_bisected_not_failed_by_value() -> None:
    # A multi-select value holding the named option is not "the value HubSpot named":
    # only bisection may fail it (and only it).
    inputs = make_inputs(8, bad={1})
    inputs[1]["properties"]["hs_call_status"] = "DONE;COMPLETED"
    fake = FakeHubSpot(bad={"call-001"})

    def named_done(request: httpx.Request) -> httpx.Response:
        return jsonr(400, {**fake._error({"properties": {"hs_call_status": "DONE"}}), "correlationId": "c"})

    fake.script = [named_done]
    outcome, _ = send(fake, inputs)
    assert outcome.requests > 2 and len(outcome.landed) == 7
    assert [f.trace_id for f in outcome.failures] == ["row-1"]


@pytest.mark.parametrize(("message", "value", "named"), [
    ("DONE was not one of the allowed options: [COMPLETED, BUSY]", "DONE", True),
    ("tomorrow was not a valid long.", "tomorrow", True),
    ("1521225089103 is at 18:31:29.103 UTC, not midnight!", "1521225089103", True),
    ("Email address name@domain.x is invalid", "name@domain.x", True),
    ("DONE was not one of the allowed options: [COMPLETED, BUSY]", "BUSY", False),  # an option, not the value
    ("DONE was not one of the allowed options: [COMPLETED]", "DON", False),
    ('Property "testproperty" does not exist', "testproperty", False),
    ("A value for hs_call_body must be provided", "A", False),
    ("DONE was not one of the allowed options", "", False),
])
def test_value_named_reads_only_hubspots_verdict_on_the_value(message: str, value: str, named: bool) -> None:
    from bulkload.hubspot.responses import value_named

    assert value_named(message, value) is named


# --- the bound: a systematic cause, the split budget ----------------------------------------


def test_a_cause_every_input_shares_stops_bisection_early() -> None:
    # A 409 that names neither input nor value, for every input: bisecting to the end
    # would cost 2n - 1 = 199 requests and fail 100 rows that are not at fault.
    fake = FakeHubSpot(bad={f"call-{i:03d}" for i in range(100)}, mode="409")
    with pytest.raises(SystematicRejection) as info:
        send(fake, make_inputs(100, bad=set(range(100))))
    e = info.value
    assert e.exit_code == EXIT_RESUMABLE
    assert fake.requests <= 25, fake.requests
    assert (e.error_type, e.isolated) == ("CONFLICTING_UNIQUE_VALUE", 10)
    assert "10 of the 10 rows it resolved failed with CONFLICTING_UNIQUE_VALUE" in e.cause
    assert str(e) == f"{e.cause} Fix: {e.fix}"
    assert fake.records == {}


def test_the_evidence_accumulates_across_sender_threads_and_stops_them_all() -> None:
    fake = FakeHubSpot(bad={f"call-{i:03d}" for i in range(100)}, mode="409")
    clock = FakeClock()
    sender, client = make_sender(fake, clock)
    errors: list[BaseException] = []
    outcomes: list[BatchOutcome] = []

    def one(batch: list[UpsertInput]) -> None:
        try:
            outcomes.append(sender.send("calls", batch))
        except BaseException as exc:
            errors.append(exc)

    with client:
        threads = [threading.Thread(target=one, args=(make_inputs(100, bad=set(range(100))),))
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert outcomes == [] and len(errors) == 8
    assert all(isinstance(e, SystematicRejection) for e in errors)
    # One decision for the run: once made, no thread sends another split request.
    assert sender.isolation.split_requests <= 8 * 2 * math.ceil(math.log2(100)), sender.isolation.split_requests
    assert fake.requests == sender.isolation.requests <= 8 + sender.isolation.split_requests


def test_bad_rows_that_are_a_minority_are_isolated_not_stopped_on() -> None:
    # A tenth of each batch breaks one rule: the same cause every time, but bisection
    # lands nine rows for each it isolates, so it is the rows, not the portal.
    bad = set(range(0, 100, 10))
    fake = FakeHubSpot(bad={f"call-{i:03d}" for i in bad}, mode="409")
    outcome, _ = send(fake, make_inputs(100, bad=bad), policy=RetryPolicy(split_floor=10_000))
    assert {f.trace_id for f in outcome.failures} == {f"row-{i}" for i in bad}
    assert len(outcome.landed) == 90


def test_the_split_budget_stops_isolation_and_leaves_the_batch_unrecorded() -> None:
    bad = {3, 40, 81}
    fake = FakeHubSpot(bad={f"call-{i:03d}" for i in bad}, mode="409")
    with pytest.raises(SplitBudgetSpent) as info:
        send(fake, make_inputs(100, bad=bad), policy=RetryPolicy(split_floor=12))
    assert info.value.split_requests == 12
    assert fake.requests == 1 + 12  # the batch, and the split requests the floor allows


def test_a_small_job_still_isolates_a_few_bad_rows() -> None:
    bad = {0, 99}
    fake = FakeHubSpot(bad={f"call-{i:03d}" for i in bad}, mode="409")
    outcome, _ = send(fake, make_inputs(100, bad=bad))  # the default floor: 50 split requests
    assert {f.trace_id for f in outcome.failures} == {"row-0", "row-99"}
    assert outcome.requests <= bisection_bound(100, 2)


class RejectingLinks:
    """Association batches, every one refused whole with a 400 that names no pair."""

    def __init__(self) -> None:
        self.requests = 0

    def batch_read(self, object_type: str, id_property: str, values: Sequence[str]) -> ReadAnswer:
        raise AssertionError("not used")

    def associate(self, from_type: str, to_type: str, pairs: Sequence[Pair]) -> AssociateAnswer:
        self.requests += 1
        failure = FailedRow(error_type="INVALID_ASSOCIATION", message="Association permissions denied",
                            origin="hubspot", http_status=400, hubspot_category="VALIDATION_ERROR")
        raise BatchRejected(400, [failure], "Association permissions denied")


def test_association_bisection_is_bounded_the_same_way() -> None:
    # 2,000 pairs a request: bisected to the end, 3,999 requests.
    links = RejectingLinks()
    clock = FakeClock()
    sender, client = make_sender(FakeHubSpot(), clock)
    pairs = [(str(i), str(5000 + i)) for i in range(2000)]
    with client, pytest.raises(SystematicRejection) as info:
        sender.associate(links, "calls", "contacts", pairs)
    assert info.value.error_type == "INVALID_ASSOCIATION"
    assert "associations" in info.value.cause
    assert links.requests <= 40, links.requests


def test_the_ledger_counts_exactly_under_threads() -> None:
    ledger = IsolationLedger(floor=10**9)
    failure = FailedRow(error_type="INVALID_ASSOCIATION", message="x")

    def work() -> None:
        for _ in range(2000):
            ledger.sent()
            ledger.before_split("upsert")
            ledger.cleared("upsert", 9)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (ledger.requests, ledger.split_requests) == (16_000, 16_000)
    ledger.isolated("upsert", failure)  # one cause among 144,000 landed: no stop
    ledger.check()
