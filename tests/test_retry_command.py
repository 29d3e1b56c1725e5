"""`bulkload retry` end to end: by error type, and from the report's CSV after a person fixed it.

A success marks a row's error resolved (hidden from the report unless
--include-resolved); a new failure replaces the error (only the most recent one
is current); the exit code is 0 once no failed rows remain, else 1.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from bulkload import api
from bulkload.config import Connection, Tuning
from bulkload.errors import EXIT_OK, EXIT_ROWS_FAILED
from bulkload.sandbox import SandboxServer
from tests.conftest import TOKEN
from tests.retry_helpers import (
    ID,
    assert_store_exact,
    check_rows_invariant,
    cli,
    current_errors,
    expected_store,
    fast_runtime,
    job_args,
    make_rows,
    report_jsonl,
    status_json,
    write_rows,
)


@pytest.fixture(autouse=True)
def _generous_limit(sandbox: SandboxServer) -> None:
    # Learned from the first answer's headers; without them the loader paces at 100 / 10 s.
    sandbox.configure(rate_limit_max=10_000, rate_limit_window_s=10.0)
    # These tests are about HubSpot's answers to bad values: without the schema scope the
    # loader leaves the checks to HubSpot (test_checks.py covers the checks made first).
    sandbox.configure(no_schema_read_tokens=(TOKEN,))


def _retry(sb: SandboxServer, job_dir: Path, job_id: str, *extra: str) -> tuple[int, dict[str, Any]]:
    res = cli(["retry", job_id, "--job-dir", str(job_dir), "--no-progress", "--json", *extra], sb)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["exit_code"] == res.exit_code
    return res.exit_code, out


def _cid(row: int) -> str:
    return f"call-{row:06d}"


# ---- --error-type ---------------------------------------------------------------------------

ENUM_ROWS = {10: {"hs_call_status": "DONE"}, 120: {"hs_call_direction": "SIDEWAYS"}, 250: {"hs_call_status": "DONE"}}
REQUIRED_ROWS = {50: {"hs_timestamp": ""}, 200: {"hs_timestamp": ""}}  # creates without hs_timestamp


def test_retry_by_error_type_resends_only_that_type(sandbox: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    rows = make_rows(300, ENUM_ROWS | REQUIRED_ROWS)
    path = write_rows(tmp_path / "calls.csv", rows)
    res = cli(job_args(path, job_dir, "bytype"), sandbox)
    assert res.exit_code == EXIT_ROWS_FAILED, res.output
    errors = current_errors(job_dir, "bytype")
    assert {r: e["error_type"] for r, e in errors.items()} == {
        **dict.fromkeys(ENUM_ROWS, "INVALID_ENUM_PROPERTY"), **dict.fromkeys(REQUIRED_ROWS, "MISSING_REQUIRED_PROPERTY")
    }
    before = sandbox.counters()

    # Only the enum rows go out again; HubSpot still refuses them.
    code, out = _retry(sandbox, job_dir, "bytype", "--error-type", "INVALID_ENUM_PROPERTY")
    assert code == EXIT_ROWS_FAILED
    assert out["retry"]["selected"] == out["retry"]["matched"] == len(ENUM_ROWS)
    assert out["retry"]["resolved"] == 0 and out["retry"]["failed"] == len(ENUM_ROWS)
    after = sandbox.counters()
    assert after["input_errors"] - before["input_errors"] == len(ENUM_ROWS)
    assert after["inputs_written"] == before["inputs_written"]
    errors = current_errors(job_dir, "bytype")
    assert {r: errors[r]["attempts"] for r in ENUM_ROWS} == dict.fromkeys(ENUM_ROWS, 2)
    assert {r: errors[r]["attempts"] for r in REQUIRED_ROWS} == dict.fromkeys(REQUIRED_ROWS, 1)

    # Someone creates the missing records meanwhile; a retry of that type now updates them.
    inputs = [{"idProperty": ID, "id": _cid(r), "objectWriteTraceId": str(r),
               "properties": {"hs_timestamp": "2024-02-02T00:00:00Z"}} for r in REQUIRED_ROWS]
    r = httpx.post(f"{sandbox.base_url}/crm/v3/objects/calls/batch/upsert", json={"inputs": inputs},
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    code, out = _retry(sandbox, job_dir, "bytype", "--error-type", "MISSING_REQUIRED_PROPERTY")
    assert code == EXIT_ROWS_FAILED  # the enum rows still fail
    assert out["retry"]["resolved"] == len(REQUIRED_ROWS) and out["retry"]["updated"] == len(REQUIRED_ROWS)
    assert set(current_errors(job_dir, "bytype")) == set(ENUM_ROWS)

    expected = expected_store(rows, {_cid(r) for r in ENUM_ROWS})
    for row in REQUIRED_ROWS:
        expected[_cid(row)]["hs_timestamp"] = "2024-02-02T00:00:00.000Z"
    assert_store_exact(sandbox, expected)
    status = status_json(job_dir, "bytype")
    assert status["rows"]["failed"] == len(ENUM_ROWS)
    assert status["rows"]["upserted"] == 300 - len(ENUM_ROWS)
    check_rows_invariant(status)
    report = report_jsonl(job_dir, "bytype", tmp_path)
    assert {x["sourceData"]["rowNumber"] for x in report} == set(ENUM_ROWS)
    report = report_jsonl(job_dir, "bytype", tmp_path, "--include-resolved")
    assert {x["sourceData"]["rowNumber"]: x["resolved"] for x in report} == {
        **dict.fromkeys(ENUM_ROWS, False), **dict.fromkeys(REQUIRED_ROWS, True)
    }


# ---- --from CORRECTED_FILE ------------------------------------------------------------------

BAD = {
    5: {"hs_call_status": "DONE"},
    105: {"hs_call_status": "DONE"},
    150: {"hs_call_duration": "12m30s"},  # refused locally (INVALID_NUMBER), never sent
    205: {"hs_call_status": "DONE"},
    305: {"hs_call_direction": "SIDEWAYS"},
}


def _report_csv(sb: SandboxServer, job_dir: Path, job_id: str, out: Path) -> list[dict[str, str]]:
    res = cli(["report", job_id, "--job-dir", str(job_dir), "--format", "csv", "-o", str(out)], sb)
    assert res.exit_code == 0, res.output
    with out.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _write_corrected(path: Path, rows: list[dict[str, str]]) -> None:
    """Save as a spreadsheet would: UTF-8 with a BOM, CRLF, every column kept."""
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.mark.parametrize("mode", ["multi_status", "strict"])
def test_retry_from_the_corrected_report_csv(
    sandbox: SandboxServer, job_dir: Path, tmp_path: Path, mode: str
) -> None:
    sandbox.configure(mode=mode)  # strict: the retry's batches are bisected too
    rows = make_rows(400, BAD)
    path = write_rows(tmp_path / "calls.csv", rows)
    res = cli(job_args(path, job_dir, "fix"), sandbox)
    assert res.exit_code == EXIT_ROWS_FAILED, res.output
    assert {r: e["error_type"] for r, e in current_errors(job_dir, "fix").items()} == {
        5: "INVALID_ENUM_PROPERTY", 105: "INVALID_ENUM_PROPERTY", 150: "INVALID_NUMBER",
        205: "INVALID_ENUM_PROPERTY", 305: "INVALID_ENUM_PROPERTY",
    }

    report = _report_csv(sandbox, job_dir, "fix", tmp_path / "failed.csv")
    assert [r[ID] for r in report] == [_cid(r) for r in BAD]
    # The phone numbers start with "+": the template neutralised them against spreadsheet formulas.
    assert report[0]["hs_call_to_number"] == "'+1 617 555 0100"
    fixes = {5: {"hs_call_status": "COMPLETED"}, 105: {"hs_call_status": "NO_ANSWER"},
             150: {"hs_call_duration": "750000"}, 205: {"hs_call_status": "FINISHED"}}  # 205: still wrong
    edited = []
    for r in report:
        row = int(r["bulkload_rowNumber"])
        if row == 305:
            continue  # not corrected yet: left out of the file, so skipped
        edited.append(r | fixes[row])
    corrected = tmp_path / "corrected.csv"
    _write_corrected(corrected, edited)

    code, out = _retry(sandbox, job_dir, "fix", "--from", str(corrected))
    assert code == EXIT_ROWS_FAILED
    assert out["retry"] | {"by_error": None} == out["retry"] | {
        "selected": 5, "matched": 4, "skipped": 1, "resolved": 3, "failed": 1, "created": 3, "by_error": None}
    errors = current_errors(job_dir, "fix")
    assert set(errors) == {205, 305}
    # The most recent error only: 205's error now names the corrected, still invalid value.
    assert (errors[205]["error_type"], errors[205]["invalid_value"], errors[205]["attempts"]) == (
        "INVALID_ENUM_PROPERTY", "FINISHED", 2)
    assert errors[305]["attempts"] == 1

    landed = {r: rows[r - 1] | fixes[r] for r in (5, 105, 150)}
    store_rows = [row for i, row in enumerate(rows, start=1) if i not in BAD] + list(landed.values())
    assert_store_exact(sandbox, expected_store(store_rows))

    shown = report_jsonl(job_dir, "fix", tmp_path)
    assert {x["sourceData"]["rowNumber"]: x["invalidValue"] for x in shown} == {205: "FINISHED", 305: "SIDEWAYS"}
    everything = {x["sourceData"]["rowNumber"]: x for x in report_jsonl(job_dir, "fix", tmp_path, "--include-resolved")}
    assert {r: x["resolved"] for r, x in everything.items()} == {5: True, 105: True, 150: True, 205: False, 305: False}
    status = status_json(job_dir, "fix")
    assert status["state"] == "completed_with_errors"
    assert (status["rows"]["failed"], status["rows"]["upserted"]) == (2, 398)
    check_rows_invariant(status)

    # Second round from a fresh report (it holds only the two rows still failing).
    report = _report_csv(sandbox, job_dir, "fix", tmp_path / "failed2.csv")
    assert sorted(int(r["bulkload_rowNumber"]) for r in report) == [205, 305]
    second = {205: {"hs_call_status": "COMPLETED"}, 305: {"hs_call_direction": "INBOUND"}}
    _write_corrected(corrected, [r | second[int(r["bulkload_rowNumber"])] for r in report])
    code, out = _retry(sandbox, job_dir, "fix", "--from", str(corrected))
    assert code == EXIT_OK
    assert out["retry"]["resolved"] == 2 and out["rows"]["failed"] == 0
    landed |= {r: rows[r - 1] | second[r] for r in second}
    assert_store_exact(sandbox, expected_store(
        [row for i, row in enumerate(rows, start=1) if i not in BAD] + list(landed.values())))
    status = status_json(job_dir, "fix")
    assert status["state"] == "completed" and status["rows"]["upserted"] == 400
    assert report_jsonl(job_dir, "fix", tmp_path) == []
    assert len(report_jsonl(job_dir, "fix", tmp_path, "--include-resolved")) == len(BAD)

    # Nothing left to retry: exit 0, nothing sent.
    before = sandbox.counters()["requests_total"]
    code, out = _retry(sandbox, job_dir, "fix")
    assert code == EXIT_OK and out["retry"]["selected"] == 0
    assert sandbox.counters()["requests_total"] == before


# ---- retry under transient faults ----------------------------------------------------------------


def test_retry_rides_out_transient_faults(sandbox: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    rows = make_rows(300, ENUM_ROWS)
    path = write_rows(tmp_path / "calls.csv", rows)
    res = cli(job_args(path, job_dir, "flaky"), sandbox)
    assert res.exit_code == EXIT_ROWS_FAILED, res.output
    report = _report_csv(sandbox, job_dir, "flaky", tmp_path / "failed.csv")
    corrected = tmp_path / "corrected.csv"
    _write_corrected(corrected, [r | {"hs_call_status": "COMPLETED", "hs_call_direction": "INBOUND"} for r in report])
    sandbox.configure(fault_probabilities={"503": 0.2, "drop": 0.1, "524": 0.1}, seed=4, lost_write_applied=0.5)
    stats, status = api.retry("flaky", Connection(base_url=sandbox.base_url, token=TOKEN), job_dir=job_dir,
                              corrected=corrected, tuning=Tuning(), runtime=fast_runtime())
    assert sum(sandbox.counters()["faults"].values()) == 3  # seed 4: 524, drop, 503, then an answer
    assert stats.resolved == len(ENUM_ROWS) and stats.failed == 0
    assert status["state"] == "completed" and status["rows"]["failed"] == 0
    fixed = {r: rows[r - 1] | {"hs_call_status": "COMPLETED", "hs_call_direction": "INBOUND"} for r in ENUM_ROWS}
    assert_store_exact(sandbox, expected_store([fixed.get(i, row) for i, row in enumerate(rows, start=1)]))
