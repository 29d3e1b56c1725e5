"""The retry stage end to end, one sandbox mode per test: what HubSpot answers, what lands.

Each test loads a small generated file into an in-thread sandbox configured for
one behaviour (207 partial success, whole-batch 400/409, 429 bursts, daily
limits, transient faults, an outage, refused tokens) and checks the exit code,
the journal's counts and the sandbox's store. Tests that would wait on the
sender's backoff go through `bulkload.api` with a Runtime whose sleep is
shrunk (`retry_helpers.fast_sleep`); the rest go through the CLI.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from bulkload import api
from bulkload.errors import EXIT_AUTH, EXIT_OK, EXIT_RESUMABLE, EXIT_ROWS_FAILED, ApiUnavailable
from bulkload.sandbox import SandboxServer
from tests.conftest import COLUMNS, TOKEN, good_row
from tests.retry_helpers import (
    ID,
    api_load,
    api_resume,
    assert_store_exact,
    check_rows_invariant,
    cli,
    current_errors,
    expected_store,
    job_args,
    journal_query,
    make_rows,
    report_jsonl,
    status_json,
    write_rows,
)

# Rows HubSpot refuses (enum options, a create without hs_timestamp) and one the
# loader refuses locally (an unparseable datetime, never sent).
BAD_CELLS: dict[int, dict[str, str]] = {
    37: {"hs_call_status": "DONE"},
    150: {"hs_call_direction": "SIDEWAYS"},
    151: {"hs_timestamp": ""},  # same batch as 150: two culprits in one batch
    299: {"hs_timestamp": "tomorrow"},
    420: {"hs_call_disposition": "00000000-0000-0000-0000-000000000000"},
}
EXPECTED_ERRORS = {  # row -> (errorType, category, propertyName, invalidValue, origin)
    37: ("INVALID_ENUM_PROPERTY", "PICKLISTS", "hs_call_status", "DONE", "hubspot"),
    150: ("INVALID_ENUM_PROPERTY", "PICKLISTS", "hs_call_direction", "SIDEWAYS", "hubspot"),
    151: ("MISSING_REQUIRED_PROPERTY", "PROPERTY_VALUES", "hs_timestamp", None, "hubspot"),
    299: ("INVALID_TIMESTAMP", "SOURCE_DATA", "hs_timestamp", "tomorrow", "local"),
    420: ("INVALID_ENUM_PROPERTY", "PICKLISTS", "hs_call_disposition", "00000000-0000-0000-0000-000000000000",
          "hubspot"),
}
N_ROWS = 500


@pytest.fixture(autouse=True)
def _generous_limit(sandbox: SandboxServer) -> None:
    # The loader learns the limit from the first answer's headers; without them it
    # would pace at HubSpot's lowest (100 / 10 s) and every test would crawl.
    sandbox.configure(rate_limit_max=10_000, rate_limit_window_s=10.0)
    # These tests are about HubSpot's answers to bad values: without the schema scope the
    # loader leaves the checks to HubSpot (test_checks.py covers the checks made first).
    sandbox.configure(no_schema_read_tokens=(TOKEN,))


def _bad_file(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    rows = make_rows(N_ROWS, BAD_CELLS)
    return write_rows(tmp_path / "calls.csv", rows), rows


def _check_errors(job_dir: Path, job_id: str, tmp_path: Path) -> None:
    errors = current_errors(job_dir, job_id)
    assert set(errors) == set(EXPECTED_ERRORS)
    for row, (etype, category, prop, value, origin) in EXPECTED_ERRORS.items():
        e = errors[row]
        assert (e["error_type"], e["category"], e["origin"]) == (etype, category, origin), (row, e)
        assert e["id_value"] == f"call-{row:06d}"
        if prop is not None:
            assert e["property_name"] == prop, (row, e)
        if value is not None:
            assert e["invalid_value"] == value, (row, e)
    # The report says the same, in the contract's shape.
    report = {r["sourceData"]["rowNumber"]: r for r in report_jsonl(job_dir, job_id, tmp_path)}
    assert {r: (x["errorType"], x["category"]) for r, x in report.items()} == {
        r: exp[:2] for r, exp in EXPECTED_ERRORS.items()
    }
    assert all(not x["resolved"] and x["idPropertyValue"] == f"call-{r:06d}" for r, x in report.items())


def _batch_costs(job_dir: Path, job_id: str) -> tuple[int, int, int]:
    """(batches sent, requests, splits) summed over the journal's batches."""
    ((sent, requests, splits),) = journal_query(
        job_dir, job_id, "SELECT COUNT(*), SUM(requests), SUM(splits) FROM batches WHERE n_inputs > 0")
    return int(sent), int(requests), int(splits)


# ---- permanent failures: 207, and whole-batch 400 / 409 with bisection ----------------------


def test_multi_status_207_lands_good_rows_and_fails_bad_ones(
    sandbox: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    path, rows = _bad_file(tmp_path)
    res = cli(job_args(path, job_dir, "m207", "--json"), sandbox)
    assert res.exit_code == EXIT_ROWS_FAILED, res.output
    status = json.loads(res.stdout.strip().splitlines()[-1])
    assert status["state"] == "completed_with_errors"
    assert status["rows"] == status["rows"] | {
        "total": N_ROWS, "failed": len(BAD_CELLS), "upserted": N_ROWS - len(BAD_CELLS), "pending": 0,
        "created": N_ROWS - len(BAD_CELLS), "superseded": 0,
    }
    check_rows_invariant(status)
    _check_errors(job_dir, "m207", tmp_path)
    bad_ids = {f"call-{r:06d}" for r in BAD_CELLS}
    assert_store_exact(sandbox, expected_store(rows, bad_ids))
    # A partial answer names its failed inputs: no bisection, one request per batch.
    sent, requests, splits = _batch_costs(job_dir, "m207")
    assert (sent, requests, splits) == (N_ROWS // 100, N_ROWS // 100, 0)
    counters = sandbox.counters()
    # Batches 1, 2 and 5 hold HubSpot-refused rows. On the date-based paths (the default)
    # HubSpot answers them 200 with the errors in the body, as its 2025-09+ specs say.
    assert counters["requests_by_family"] == {"2026-03": 1 + N_ROWS // 100}
    assert counters["requests_by_status"].get("207") is None
    assert counters["requests_by_status"]["200"] == N_ROWS // 100
    assert counters["input_errors"] == 4


def test_strict_400_bisects_every_good_row_in(sandbox: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    sandbox.configure(mode="strict")
    path, rows = _bad_file(tmp_path)
    res = cli(job_args(path, job_dir, "s400", "--json"), sandbox)
    assert res.exit_code == EXIT_ROWS_FAILED, res.output
    status = status_json(job_dir, "s400")
    assert status["rows"]["failed"] == len(BAD_CELLS) and status["rows"]["pending"] == 0
    assert status["rows"]["upserted"] == N_ROWS - len(BAD_CELLS)
    check_rows_invariant(status)
    _check_errors(job_dir, "s400", tmp_path)
    assert_store_exact(sandbox, expected_store(rows, {f"call-{r:06d}" for r in BAD_CELLS}))
    counters = sandbox.counters()
    assert counters["requests_by_status"].get("207") is None
    assert counters["requests_by_status"].get("400", 0) > 0
    # The cost of bisection: about 2*log2(100) extra requests per culprit, no more.
    remote_bad = sum(1 for e in EXPECTED_ERRORS.values() if e[4] == "hubspot")
    sent, requests, splits = _batch_costs(job_dir, "s400")
    assert splits > 0
    assert requests - sent <= remote_bad * 2 * math.ceil(math.log2(100)), (sent, requests, splits)
    per_batch = dict(journal_query(job_dir, "s400", "SELECT batch_no, requests FROM batches"))
    culprits = {1: 1, 2: 2, 3: 0, 4: 0, 5: 1}  # HubSpot-refused rows per batch (row 299 is local)
    for batch_no, n_bad in culprits.items():
        assert per_batch[batch_no] - 1 <= n_bad * 2 * math.ceil(math.log2(100)), (batch_no, per_batch)
    assert per_batch[3] == 1 and per_batch[4] == 1  # clean batches cost one request


def _preload(sb: SandboxServer, records: dict[str, str]) -> None:
    """Create records holding `alt_call_key` values, outside bulkload."""
    inputs = [
        {"idProperty": ID, "id": id_value, "objectWriteTraceId": id_value,
         "properties": {"hs_timestamp": "2024-01-01T00:00:00Z", "alt_call_key": key}}
        for id_value, key in records.items()
    ]
    r = httpx.post(f"{sb.base_url}/crm/v3/objects/calls/batch/upsert", json={"inputs": inputs},
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text


def test_strict_409_unique_value_conflict_is_isolated(
    sandbox: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    sandbox.configure(mode="strict", unique_properties=("alt_call_key",))
    held = {"legacy-1": "KEY-TAKEN-1", "legacy-2": "KEY-TAKEN-2"}
    _preload(sandbox, held)
    conflicts = {77: "KEY-TAKEN-1", 230: "KEY-TAKEN-2"}
    rows = [good_row(i, alt_call_key=conflicts.get(i, f"key-{i}")) for i in range(1, 301)]
    path = write_rows(tmp_path / "calls.csv", rows, (*COLUMNS, "alt_call_key"))
    res = cli(job_args(path, job_dir, "s409"), sandbox)
    assert res.exit_code == EXIT_ROWS_FAILED, res.output
    errors = current_errors(job_dir, "s409")
    assert set(errors) == set(conflicts)
    for row in conflicts:
        assert (errors[row]["error_type"], errors[row]["category"], errors[row]["http_status"]) == (
            "CONFLICTING_UNIQUE_VALUE", "DUPLICATES", 409)
    assert sandbox.counters()["requests_by_status"].get("409", 0) > 0
    expected = expected_store(rows, {f"call-{r:06d}" for r in conflicts})
    for id_value, key in held.items():  # the holders are untouched
        expected[id_value] = {"hs_timestamp": "2024-01-01T00:00:00.000Z", "alt_call_key": key}
    assert_store_exact(sandbox, expected)
    sent, requests, _ = _batch_costs(job_dir, "s409")
    assert requests - sent <= len(conflicts) * 2 * math.ceil(math.log2(100))
    status = status_json(job_dir, "s409")
    assert status["rows"]["upserted"] == 300 - len(conflicts)
    check_rows_invariant(status)


# ---- 429 bursts ------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [False, True])
def test_429_bursts_are_retried_never_failed(
    sandbox: SandboxServer, job_dir: Path, tmp_path: Path, retry_after: bool
) -> None:
    # --rate far above what the sandbox allows: the loader must find the limit by 429s.
    sandbox.configure(rate_limit_max=20, rate_limit_window_s=1.0, retry_after=retry_after)
    rows = make_rows(400)
    path = write_rows(tmp_path / "calls.csv", rows)
    res = cli(job_args(path, job_dir, "r429", "--rate", "200/1", "--concurrency", "8", "--batch-size", "10"),
              sandbox)
    assert res.exit_code == EXIT_OK, res.output
    counters = sandbox.counters()
    limited = sum(counters["rate_limited"].values())
    assert limited > 0
    status = status_json(job_dir, "r429")
    assert status["state"] == "completed" and status["rows"]["failed"] == 0
    assert status["rows"]["upserted"] == 400
    ((journaled,),) = journal_query(job_dir, "r429", "SELECT SUM(rate_limited) FROM batches")
    assert 0 < journaled <= limited
    assert status["usage"]["rate_limited_total"] >= journaled
    assert_store_exact(sandbox, expected_store(rows))


def test_learned_rate_limit_avoids_429s(sandbox: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    # No --rate: the limiter reads X-HubSpot-RateLimit-* and paces under 10 per second.
    sandbox.configure(rate_limit_max=10, rate_limit_window_s=1.0)
    rows = make_rows(200)
    path = write_rows(tmp_path / "calls.csv", rows)
    res = cli(job_args(path, job_dir, "learn", "--concurrency", "8", "--batch-size", "10"), sandbox)
    assert res.exit_code == EXIT_OK, res.output
    counters = sandbox.counters()
    assert sum(counters["rate_limited"].values()) <= 1, counters["rate_limited"]
    assert_store_exact(sandbox, expected_store(rows))


# ---- daily limits: HubSpot's and --daily-budget ----------------------------------------------


def test_daily_limit_pauses_then_resume_completes(sandbox: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    sandbox.configure(daily_limit=8)  # a properties read and 7 upserts
    rows = make_rows(1000)
    path = write_rows(tmp_path / "calls.csv", rows)
    res = cli(job_args(path, job_dir, "daily", "--concurrency", "2"), sandbox)
    assert res.exit_code == EXIT_RESUMABLE, res.output
    assert "bulkload resume daily" in res.output
    status = status_json(job_dir, "daily")
    assert status["state"] == "paused"
    assert "daily" in status["paused_reason"].lower()
    assert status["resume_after"]  # HubSpot resets at midnight; the job says when to come back
    assert status["rows"]["failed"] == 0 and 0 < status["rows"]["pending"] < 1000
    check_rows_invariant(status)
    assert sandbox.counters()["rate_limited"].get("DAILY", 0) >= 1
    # Still spent: resuming pauses again at once, nothing is lost.
    before = sandbox.counters()["requests_total"]
    res = cli(["resume", "daily", "--job-dir", str(job_dir), "--no-progress"], sandbox)
    assert res.exit_code == EXIT_RESUMABLE, res.output
    assert "daily" in res.output
    assert sandbox.counters()["requests_total"] == before + 1  # one refused request, no waiting it out
    assert status_json(job_dir, "daily")["resume_after"]
    sandbox.reset_daily()
    res = cli(["resume", "daily", "--job-dir", str(job_dir), "--no-progress"], sandbox)
    assert res.exit_code == EXIT_OK, res.output
    status = status_json(job_dir, "daily")
    assert status["state"] == "completed" and status["rows"]["upserted"] == 1000
    assert_store_exact(sandbox, expected_store(rows))


def test_daily_budget_pauses_and_counts_across_resumes(
    sandbox: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    rows = make_rows(1000)
    path = write_rows(tmp_path / "calls.csv", rows)
    res = cli(job_args(path, job_dir, "budget", "--daily-budget", "4"), sandbox)
    assert res.exit_code == EXIT_RESUMABLE, res.output
    status = status_json(job_dir, "budget")
    assert status["state"] == "paused"
    assert "budget" in status["paused_reason"] and "free up" in status["paused_reason"]
    assert status["resume_after"]  # when the rolling 24 hours free the first calls
    assert status["usage"]["calls_24h"] == 4
    # The properties read is a call like any other: 1 read + 3 upserts of 100.
    assert len(sandbox.store_records(ID)) == 300
    assert sandbox.counters()["requests_total"] == 4

    # The same budget on resume: already spent by the first run, so nothing more is sent.
    resume = ["resume", "budget", "--job-dir", str(job_dir), "--no-progress"]
    before = sandbox.counters()["requests_total"]
    res = cli([*resume, "--daily-budget", "4"], sandbox)
    assert res.exit_code == EXIT_RESUMABLE, res.output
    assert "budget" in res.output
    assert sandbox.counters()["requests_total"] == before  # not even the properties read
    res = cli([*resume, "--daily-budget", "7"], sandbox)
    assert res.exit_code == EXIT_RESUMABLE, res.output
    assert len(sandbox.store_records(ID)) == 500  # 1 read + 2 upserts more
    assert status_json(job_dir, "budget")["usage"]["calls_24h"] == 7
    # The job keeps the last budget it was given (7, spent): a resume must raise it to go on.
    res = cli(resume, sandbox)
    assert res.exit_code == EXIT_RESUMABLE and sandbox.counters()["requests_total"] == 7, res.output
    res = cli([*resume, "--daily-budget", "100"], sandbox)
    assert res.exit_code == EXIT_OK, res.output
    assert_store_exact(sandbox, expected_store(rows))
    status = status_json(job_dir, "budget")
    # Every call the sandbox saw is counted: 4 + 3 + (1 read + 5 upserts).
    assert status["state"] == "completed" and status["api_calls"] == 13
    assert sandbox.counters()["requests_total"] == 13


# ---- transient faults: retried, never failed rows, the store exactly right ---------------------

LOST_KINDS = ("502", "503", "504", "524", "drop", "slow")
OTHER_KINDS = ("423", "477", "malformed")


@pytest.mark.parametrize(
    ("kind", "applied"),
    [(k, a) for k in LOST_KINDS for a in (1.0, 0.0)] + [(k, None) for k in OTHER_KINDS],
)
def test_transient_faults_are_retried(
    sandbox: SandboxServer, job_dir: Path, tmp_path: Path, kind: str, applied: float | None
) -> None:
    sandbox.configure(
        fault_probabilities={kind: 0.3}, seed=11, lost_write_applied=applied if applied is not None else 0.5,
        slow_response_s=2.0, migration_retry_after_s=1,
    )
    rows = make_rows(300)
    path = write_rows(tmp_path / "calls.csv", rows)
    code, result = api_load(sandbox, path, job_dir, "faults", batch_size=20, concurrency=4, timeout=0.5)
    assert code == EXIT_OK, result
    assert isinstance(result, api.RunResult) and result.state == "completed"
    counters = sandbox.counters()
    assert counters["faults"].get(kind, 0) > 0, counters["faults"]
    if applied == 1.0:
        assert counters["lost_writes_applied"] > 0 and counters["lost_writes_discarded"] == 0
    elif applied == 0.0:
        assert counters["lost_writes_discarded"] > 0 and counters["lost_writes_applied"] == 0
    status = status_json(job_dir, "faults")
    assert status["rows"]["failed"] == 0 and status["rows"]["upserted"] == 300
    assert status["num_errors"] == 0
    ((retries,),) = journal_query(job_dir, "faults", "SELECT SUM(retries) FROM batches")
    assert retries == counters["faults"][kind]  # every fault cost one retry, and the journal kept it
    assert_store_exact(sandbox, expected_store(rows))


def test_every_fault_at_once_with_html_bodies(sandbox: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    kinds = (*LOST_KINDS, *OTHER_KINDS)
    sandbox.configure(fault_probabilities={k: 0.04 for k in kinds}, seed=3, slow_response_s=2.0,
                      migration_retry_after_s=1)
    rows = make_rows(1000)
    path = write_rows(tmp_path / "calls.csv", rows)
    code, result = api_load(sandbox, path, job_dir, "mixed", batch_size=10, concurrency=6, timeout=0.5)
    assert code == EXIT_OK, result
    counters = sandbox.counters()
    assert len(counters["faults"]) >= 6, counters["faults"]
    status = status_json(job_dir, "mixed")
    assert status["state"] == "completed" and status["rows"]["failed"] == 0
    assert_store_exact(sandbox, expected_store(rows))


# ---- a persistent outage pauses, bounded ------------------------------------------------------


def test_persistent_outage_pauses_within_bounded_attempts(
    sandbox: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    sandbox.configure(fault_probabilities={"503": 1.0})
    rows = make_rows(1000)
    path = write_rows(tmp_path / "calls.csv", rows)
    res = cli(job_args(path, job_dir, "outage", "--max-attempts", "3", "--concurrency", "2"), sandbox)
    assert res.exit_code == EXIT_RESUMABLE, res.output
    assert "bulkload resume outage" in res.output
    counters = sandbox.counters()
    # A properties read, then at most max-attempts tries for each batch in flight.
    assert counters["faults"]["503"] <= 2 * 3
    assert counters["requests_total"] <= 1 + 2 * 3
    status = status_json(job_dir, "outage")
    assert status["state"] == "paused" and status["rows"]["failed"] == 0
    assert "503" in status["paused_reason"]
    check_rows_invariant(status)

    sandbox.configure(fault_probabilities={})
    res = cli(["resume", "outage", "--job-dir", str(job_dir), "--no-progress"], sandbox)
    assert res.exit_code == EXIT_OK, res.output
    assert_store_exact(sandbox, expected_store(rows))


def test_outage_through_the_library_raises_api_unavailable(
    sandbox: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    sandbox.configure(fault_probabilities={"drop": 1.0}, lost_write_applied=0.0)
    path = write_rows(tmp_path / "calls.csv", make_rows(200))
    code, err = api_load(sandbox, path, job_dir, "drops", max_attempts=3, concurrency=1)
    assert code == EXIT_RESUMABLE and isinstance(err, ApiUnavailable)
    assert sandbox.counters()["faults"]["drop"] == 3
    sandbox.configure(fault_probabilities={})
    code, _ = api_resume(sandbox, job_dir, "drops")
    assert code == EXIT_OK
    assert len(sandbox.store_records(ID)) == 200


# ---- refused tokens: exit 77 at once, paused, no failed rows ----------------------------------


def test_wrong_token_stops_at_once(sandbox: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    rows = make_rows(1000)
    path = write_rows(tmp_path / "calls.csv", rows)
    res = cli(job_args(path, job_dir, "t401", "--concurrency", "4"), sandbox, HUBSPOT_ACCESS_TOKEN="wrong-token")
    assert res.exit_code == EXIT_AUTH, res.output
    assert "wrong-token" not in res.output
    assert sandbox.counters()["requests_total"] <= 5
    assert sandbox.counters()["requests_by_status"].get("401", 0) >= 1
    status = status_json(job_dir, "t401")
    assert status["state"] == "paused" and status["rows"]["failed"] == 0
    assert status["rows"]["pending"] == 1000
    res = cli(["resume", "t401", "--job-dir", str(job_dir), "--no-progress"], sandbox)
    assert res.exit_code == EXIT_OK, res.output
    assert_store_exact(sandbox, expected_store(rows))


def test_read_only_token_stops_at_once(sandbox: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    sandbox.configure(read_only_tokens=("read-only-token",))
    rows = make_rows(1000)
    path = write_rows(tmp_path / "calls.csv", rows)
    res = cli(job_args(path, job_dir, "t403", "--concurrency", "4"), sandbox,
              HUBSPOT_ACCESS_TOKEN="read-only-token")
    assert res.exit_code == EXIT_AUTH, res.output
    counters = sandbox.counters()
    assert counters["requests_by_status"].get("403", 0) >= 1
    # The properties and owners read, then at most one wave of upserts.
    assert counters["requests_total"] <= 2 + 4
    assert counters["inputs_written"] == 0
    status = status_json(job_dir, "t403")
    assert status["state"] == "paused" and status["rows"]["failed"] == 0
    assert status["num_errors"] == 0
    check_rows_invariant(status)
    res = cli(["resume", "t403", "--job-dir", str(job_dir), "--no-progress"], sandbox)
    assert res.exit_code == EXIT_OK, res.output
    assert_store_exact(sandbox, expected_store(rows))

