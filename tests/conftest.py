"""Shared fixtures: a sandbox on a free loopback port, sample files, a CLI runner."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bulkload.cli import cli
from bulkload.sandbox import SandboxConfig, SandboxServer

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CSV = ROOT / "sample_data" / "calls.csv"
SAMPLE_PARQUET = ROOT / "sample_data" / "calls.parquet"
TOKEN = "test-token"
COLUMNS = (
    "external_call_id", "hs_timestamp", "hs_call_title", "hs_call_body", "hs_call_direction", "hs_call_status",
    "hs_call_duration", "hs_call_from_number", "hs_call_to_number", "hubspot_owner_id", "hs_call_recording_url",
    "hs_call_disposition",
)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=None)) as sb:
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
def _no_real_hubspot(monkeypatch: pytest.MonkeyPatch) -> None:
    # No test may reach outside loopback: drop any ambient configuration.
    for var in ("HUBSPOT_ACCESS_TOKEN", "HUBSPOT_BASE_URL", "BULKLOAD_JOB_DIR"):
        monkeypatch.delenv(var, raising=False)
    os.environ.setdefault("NO_COLOR", "1")
