"""Shared fixtures: a sandbox on a free loopback port, sample files, a CLI runner."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bulkload.cli import cli
from bulkload.sandbox import SandboxConfig, SandboxServer
from sample_data.generate import ERROR_TYPE_OF_KIND

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CSV = ROOT / "sample_data" / "calls.csv"
SAMPLE_PARQUET = ROOT / "sample_data" / "calls.parquet"
TOKEN = "test-token"
COLUMNS = (
    "external_call_id", "hs_timestamp", "hs_call_title", "hs_call_body", "hs_call_direction", "hs_call_status",
    "hs_call_duration", "hs_call_from_number", "hs_call_to_number", "hubspot_owner_id", "hs_call_recording_url",
    "hs_call_disposition",
)


# The sample's contact_email column names contacts 1..200, which this sandbox seeds.
SAMPLE_CONTACTS = 200
SAMPLE_ASSOCIATE = ("--associate", "contact_email=contacts.email")


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=None, contacts=SAMPLE_CONTACTS)) as sb:
        yield sb


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    d = tmp_path / "jobs"
    d.mkdir()
    return d


def cli_env(sb: SandboxServer) -> dict[str, str]:
    return {"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_BASE_URL": sb.base_url}


def run_cli(args: Sequence[str], env: dict[str, str] | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(cli, list(args), env=env, catch_exceptions=False)


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in columns})
    return path


def good_row(i: int, **over: Any) -> dict[str, Any]:
    row = {
        "external_call_id": f"call-{i:06d}",
        "hs_timestamp": f"2024-05-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
        "hs_call_title": f"Call {i}",
        "hs_call_body": f"Notes for call {i}",
        "hs_call_direction": "OUTBOUND" if i % 2 else "INBOUND",
        "hs_call_status": "COMPLETED",
        "hs_call_duration": str(1000 * i),
        "hs_call_from_number": "(857) 829 5489",
        "hs_call_to_number": "+1 617 555 0100",
    }
    row.update(over)
    return row


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """The file read by Python's csv module: an oracle independent of pyarrow."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def expected_datetime(text: str) -> str:
    """What HubSpot stores for a datetime value, computed independently of bulkload."""
    s = text.strip()
    if s.lstrip("-").isdigit():
        dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(s))
    else:
        dt = datetime.fromisoformat(s)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def iso_ms(text: str) -> str:
    """Normalise an ISO timestamp string to millisecond precision for comparisons."""
    return expected_datetime(text)


@pytest.fixture(autouse=True)
def _no_real_hubspot(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    # No test may reach outside loopback: drop any ambient configuration.
    for var in ("HUBSPOT_ACCESS_TOKEN", "HUBSPOT_BASE_URL", "BULKLOAD_JOB_DIR"):
        monkeypatch.delenv(var, raising=False)
    # Nor write the user's index of job dirs: each test has one of its own.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    os.environ.setdefault("NO_COLOR", "1")


# ---- resumable jobs: generated files, an oracle for the end state, journal checks ---------

GENERATOR = ROOT / "sample_data" / "generate.py"
VOLATILE = frozenset({"hs_object_id", "hs_createdate", "hs_lastmodifieddate"})


def generate_calls(out_dir: Path, rows: int, *, seed: int, bad_rate: float,
                   dup_rate: float) -> tuple[Path, list[dict[str, Any]]]:
    """sample_data/generate.py into `out_dir`: (the CSV, its manifest of bad and repeated rows)."""
    manifest = out_dir / "bad_rows.json"
    subprocess.run(
        [sys.executable, str(GENERATOR), "--rows", str(rows), "--seed", str(seed), "--out", str(out_dir),
         "--format", "csv", "--bad-rate", str(bad_rate), "--dup-rate", str(dup_rate),
         "--manifest", str(manifest)],
        check=True, capture_output=True, timeout=120,
    )
    return out_dir / "calls.csv", json.loads(manifest.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Expected:
    """What a finished load of a file must come to, worked out with the csv module alone."""

    total: int
    store: dict[str, dict[str, str]]  # id -> properties as HubSpot stores them
    failed: dict[int, str]  # row number -> errorType
    superseded: frozenset[int]


def expected_outcome(path: Path, manifest: Sequence[dict[str, Any]], id_property: str = "external_call_id",
                     datetime_props: frozenset[str] = frozenset({"hs_timestamp"})) -> Expected:
    rows = read_csv_rows(path)
    kinds = {int(b["row_number"]): str(b["kind"]) for b in manifest}
    no_id = {i for i, row in enumerate(rows, start=1) if not row[id_property].strip()}
    # The manifest and the file agree on which rows have no id (the file decides).
    assert no_id == {r for r, k in kinds.items() if k == "missing_id"}
    last = {row[id_property]: i for i, row in enumerate(rows, start=1) if i not in no_id}
    store: dict[str, dict[str, str]] = {}
    failed: dict[int, str] = {}
    superseded: set[int] = set()
    for i, row in enumerate(rows, start=1):
        id_value = row[id_property]
        if i in no_id:
            failed[i] = "MISSING_ID_VALUE"
        elif last[id_value] != i:
            superseded.add(i)
        elif kinds.get(i) in ERROR_TYPE_OF_KIND:
            failed[i] = ERROR_TYPE_OF_KIND[kinds[i]]
        else:
            store[id_value] = {k: expected_datetime(v) if k in datetime_props else v
                               for k, v in row.items() if v and k != id_property}
    return Expected(len(rows), store, failed, frozenset(superseded))


def assert_store_matches(store: dict[str, dict[str, str]], expected: Expected) -> None:
    """Every valid id exactly once (the store is keyed by id), with the last row's values."""
    assert len(store) == len(expected.store)
    assert set(store) == set(expected.store)
    wrong = {}
    for id_value, props in expected.store.items():
        got = store[id_value]
        diff = {k: (v, got.get(k)) for k, v in props.items() if got.get(k) != v}
        if diff:
            wrong[id_value] = diff
    assert not wrong, dict(list(wrong.items())[:5])


def without_volatile(store: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {i: {k: v for k, v in p.items() if k not in VOLATILE} for i, p in store.items()}


def check_journal(path: Path) -> tuple[dict[int, str], frozenset[int]]:
    """No row lost or doubled: the finished batches' row ranges tile 1..total exactly, and every
    failed or superseded row sits inside its own batch. Returns (failed rows, superseded rows)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        total, scanned = con.execute("SELECT total_rows, scan_complete FROM job").fetchone()
        batches = con.execute(
            "SELECT batch_no, first_row, last_row, n_rows, n_inputs, n_superseded, n_local_failed, status"
            " FROM batches ORDER BY first_row").fetchall()
        failed = dict(con.execute("SELECT row_number, error_type FROM row_errors WHERE resolved = 0"))
        failed_in = con.execute("SELECT row_number, batch_no FROM row_errors WHERE resolved = 0").fetchall()
        sup = con.execute("SELECT row_number, batch_no FROM superseded").fetchall()
    finally:
        con.close()
    assert scanned == 1
    assert [b[7] for b in batches if b[7] not in ("done", "partial", "failed")] == []
    expect_first = 1
    ranges = {}
    for batch_no, first, last, n_rows, n_inputs, n_sup, n_local, _ in batches:
        assert first == expect_first, (batch_no, first, expect_first)  # no gap, no overlap
        assert n_rows == last - first + 1
        assert n_inputs + n_sup + n_local == n_rows, batch_no  # each row counted once in its batch
        ranges[batch_no] = (first, last)
        expect_first = last + 1
    assert expect_first - 1 == total
    for row, batch_no in [*failed_in, *sup]:
        assert batch_no in ranges and ranges[batch_no][0] <= row <= ranges[batch_no][1], (row, batch_no)
    superseded = frozenset(r for r, _ in sup)
    assert not superseded & set(failed)
    return failed, superseded


def assert_counts_final(status: dict[str, Any], expected: Expected) -> None:
    rows = status["rows"]
    assert rows["total"] == expected.total
    assert rows["pending"] == 0
    assert rows["upserted"] + rows["failed"] + rows["superseded"] == rows["total"]
    assert rows["failed"] == len(expected.failed)
    assert rows["superseded"] == len(expected.superseded)
    assert rows["upserted"] == len(expected.store)
    assert status["batches"]["pending"] == 0
    assert status["state"] == ("completed_with_errors" if expected.failed else "completed")
