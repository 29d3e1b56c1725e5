"""Splitting with a bounded cost, end to end against the sandbox in strict mode (every
bad input fails its whole batch with a 400/409).

- A portal validation rule every row breaks, answered with a 400 that names no input:
  the job pauses with the cause and the fix after a bounded number of requests, no row
  is failed, and once the rule is lifted (the sandbox's admin endpoint) `resume` lands
  every row.
- Bad rows that are few but cost many requests to isolate (unique-value conflicts, whose
  409 names neither input nor value): the split budget pauses the job; the rows failed
  are exactly conflicting ones, the rest pending, and a resume allowed to spend what it
  takes (split_share=1) finishes with every conflict isolated.
- Rejections that name the invalid value ("Property values were not valid: [...]"),
  with the schema read refused so that no local check knows the enumeration options:
  one request per batch and one per distinct bad value, no bisection.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest

from bulkload.errors import EXIT_OK, EXIT_RESUMABLE, EXIT_ROWS_FAILED, SplitBudgetSpent
from bulkload.sandbox import SandboxServer
from tests.conftest import COLUMNS, TOKEN, good_row, run_cli
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
    make_rows,
    status_json,
    write_rows,
)

RULE_PROPERTY = "hs_call_disposition"  # no row sets it (good_row leaves it empty)


@pytest.fixture(autouse=True)
def _strict(sandbox: SandboxServer) -> None:
    sandbox.configure(mode="strict", rate_limit_max=10_000, rate_limit_window_s=10.0)


def _upserts(sb: SandboxServer) -> int:
    return int(sb.counters()["requests_by_kind"].get("upsert", 0))


def test_a_rule_every_row_breaks_pauses_with_the_cause_and_resume_completes_once_it_is_lifted(
    sandbox: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    sandbox.configure(required_properties={"calls": (RULE_PROPERTY,)})
    rows = make_rows(3000)
    path = write_rows(tmp_path / "calls.csv", rows)

    res = cli(job_args(path, job_dir, "rule", "--json"), sandbox)
    assert res.exit_code == EXIT_RESUMABLE, res.output
    spent = _upserts(sandbox)
    # Bisection to the end would spend 2n - 1 = 199 requests on each of the 30 batches
    # (5,970); the evidence of one cause stops it after a few dozen.
    assert spent <= 60, spent
    assert "bulkload resume rule" in res.stderr

    status = json.loads(res.stdout.strip().splitlines()[-1])
    assert status["state"] == "paused" and status["exit_code"] == EXIT_RESUMABLE
    reason = status["paused_reason"]
    assert "MISSING_REQUIRED_PROPERTY" in reason and RULE_PROPERTY in reason
    assert status["fix"].startswith(f"HubSpot requires {RULE_PROPERTY} on every write")
    assert status["fix"] in reason
    # No row is failed that was not isolated: the rows bisection did isolate fail for the
    # rule, not for themselves, and stay pending with the rest of their batches.
    assert status["rows"]["failed"] == 0 and current_errors(job_dir, "rule") == {}
    assert status["rows"]["pending"] == 3000
    check_rows_invariant(status)
    assert sandbox.store_records(ID) == {}

    text = run_cli(["status", "rule", "--job-dir", str(job_dir)])
    assert text.exit_code == 0, text.output
    assert "paused    HubSpot rejects whole batches" in text.stdout
    assert f"fix       HubSpot requires {RULE_PROPERTY} on every write" in text.stdout

    # The portal's rule is lifted at run time, through the sandbox's admin endpoint.
    lifted = httpx.post(f"{sandbox.base_url}/_sandbox/config", json={"required_properties": {}})
    assert lifted.status_code == 200 and lifted.json()["required_properties"] == {}
    before = _upserts(sandbox)
    resumed = run_cli(["resume", "rule", "--job-dir", str(job_dir), "--no-progress"],
                      env={"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_BASE_URL": sandbox.base_url})
    assert resumed.exit_code == EXIT_OK, resumed.output
    assert _upserts(sandbox) - before == 30  # one request a batch
    final = status_json(job_dir, "rule")
    assert final["state"] == "completed"
    assert final["rows"]["upserted"] == 3000 and final["rows"]["failed"] == final["rows"]["pending"] == 0
    assert_store_exact(sandbox, expected_store(rows))


def _preload(sb: SandboxServer, records: dict[str, str]) -> None:
    """Records holding `alt_call_key` values, created outside bulkload."""
    inputs = [{"idProperty": ID, "id": id_value, "objectWriteTraceId": id_value,
               "properties": {"hs_timestamp": "2024-01-01T00:00:00Z", "alt_call_key": key}}
              for id_value, key in records.items()]
    for k in range(0, len(inputs), 100):
        r = httpx.post(f"{sb.base_url}/crm/v3/objects/calls/batch/upsert", json={"inputs": inputs[k:k + 100]},
                       headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.text


def test_the_split_budget_pauses_a_job_whose_bad_rows_cost_too_much_to_isolate(
    sandbox: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    sandbox.configure(unique_properties=("alt_call_key",))
    conflicts = {r: f"TAKEN-{r}" for r in range(25, 2001, 50)}  # 40 rows, two a batch
    _preload(sandbox, {f"legacy-{r}": key for r, key in conflicts.items()})
    rows = [good_row(i, alt_call_key=conflicts.get(i, f"key-{i}")) for i in range(1, 2001)]
    path = write_rows(tmp_path / "calls.csv", rows, (*COLUMNS, "alt_call_key"))

    code, err = api_load(sandbox, path, job_dir, "cap")
    assert code == EXIT_RESUMABLE and isinstance(err, SplitBudgetSpent), err
    assert "the most it may (20%" in str(err)
    status = status_json(job_dir, "cap")
    assert status["state"] == "paused" and "fix" in status
    check_rows_invariant(status)
    # What was isolated is failed, exactly as HubSpot said; nothing else is.
    errors = current_errors(job_dir, "cap")
    assert set(errors) <= set(conflicts)
    assert {e["error_type"] for e in errors.values()} <= {"CONFLICTING_UNIQUE_VALUE"}
    assert status["rows"]["pending"] > 0
    # The cap held: split requests within max(floor, 20 % of the requests), give or take
    # the requests in flight when it was reached.
    spent = _upserts(sandbox)
    batches = math.ceil(2000 / 100)
    assert spent - batches <= max(50, 0.2 * spent) + 4 * 2, spent

    code, result = api_resume(sandbox, job_dir, "cap", split_share=1.0)
    assert code == EXIT_ROWS_FAILED, result
    final = status_json(job_dir, "cap")
    assert final["rows"]["failed"] == len(conflicts) and final["rows"]["pending"] == 0
    assert set(current_errors(job_dir, "cap")) == set(conflicts)
    expected = expected_store(rows, {f"call-{r:06d}" for r in conflicts})
    for r, key in conflicts.items():
        expected[f"legacy-{r}"] = {"hs_timestamp": "2024-01-01T00:00:00.000Z", "alt_call_key": key}
    assert_store_exact(sandbox, expected)


def test_a_rejection_naming_the_invalid_value_costs_one_request_per_value(
    sandbox: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    # Without the schema no local check knows the options: only HubSpot can judge them.
    sandbox.configure(no_schema_read_tokens=(TOKEN,))
    guid = "5a7c1d3e-9b2f-4c8a-a1e6-3f0d2b9c7e41"  # GUID-shaped, not a call outcome
    bad = {**{r: {"hs_call_status": "DONE"} for r in (7, 150, 388, 612, 999)},
           **{r: {"hs_call_disposition": guid} for r in (40, 151, 640, 641, 900)}}
    rows = make_rows(1000, bad)
    path = write_rows(tmp_path / "calls.csv", rows)

    res = cli(job_args(path, job_dir, "byvalue", "--concurrency", "1"), sandbox)
    assert res.exit_code == EXIT_ROWS_FAILED, res.output
    # Ten batches, and one rejected request for each of the two values: later batches
    # holding a value HubSpot refused fail it without sending it.
    assert _upserts(sandbox) == 10 + 2
    errors = current_errors(job_dir, "byvalue")
    assert set(errors) == set(bad)
    for r, cells in bad.items():
        ((prop, value),) = cells.items()
        e = errors[r]
        assert (e["error_type"], e["property_name"], e["invalid_value"], e["origin"], e["http_status"]) == (
            "INVALID_ENUM_PROPERTY", prop, value, "hubspot", 400), (r, e)
    assert_store_exact(sandbox, expected_store(rows, {f"call-{r:06d}" for r in bad}))
