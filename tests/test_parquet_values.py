"""Typed Parquet values the loader rewrites wrongly (each test pins one)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bulkload.sandbox import SandboxConfig, SandboxServer
from tests.conftest import TOKEN, cli_env, run_cli

ID = "external_call_id"


@pytest.fixture
def portal():
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=None)) as sb:
        yield sb


def test_float64_epoch_ms_timestamps_from_parquet_land(portal, job_dir: Path, tmp_path: Path) -> None:
    # pandas writes an integer column with a gap as float64: epoch ms become 1.7145576e+12.
    src = tmp_path / "calls.parquet"
    pq.write_table(pa.table({ID: ["a", "b"], "hs_timestamp": pa.array([1714557600000.0, 1714557601500.0])}), src)
    r = run_cli(["load", str(src), "--id-property", ID, "--job-id", "f", "--job-dir", str(job_dir)],
                env=cli_env(portal))
    assert r.exit_code == 0, r.output
    store = portal.store_records(ID)
    assert store["a"]["hs_timestamp"] == "2024-05-01T10:00:00.000Z"
    assert store["b"]["hs_timestamp"] == "2024-05-01T10:00:01.500Z"


def test_float64_record_ids_from_parquet_associate(portal, job_dir: Path, tmp_path: Path) -> None:
    companies = portal.create_records("companies", [{"name": "Co", "domain": "co.example"}])
    src = tmp_path / "calls.parquet"
    pq.write_table(pa.table({ID: ["a", "b"], "hs_timestamp": ["2024-05-01T10:00:00Z"] * 2,
                             "company_id": pa.array([float(companies[0]), None])}), src)
    r = run_cli(["load", str(src), "--id-property", ID, "--job-id", "f", "--job-dir", str(job_dir),
                 "--associate", "company_id=companies.hs_object_id"], env=cli_env(portal))
    assert r.exit_code == 0, r.output
    rec = portal.store_records(ID)["a"]
    assert list(portal.record_associations("calls", rec["hs_object_id"], "companies")) == [companies[0]]


def test_float64_numbers_of_eleven_digits_are_sent_as_integers(portal, job_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "calls.parquet"
    pq.write_table(pa.table({ID: ["a"], "hs_timestamp": ["2024-05-01T10:00:00Z"],
                             "hs_call_duration": pa.array([12345678901.0])}), src)
    r = run_cli(["load", str(src), "--id-property", ID, "--job-id", "f", "--job-dir", str(job_dir)],
                env=cli_env(portal))
    assert r.exit_code == 0, r.output
    assert portal.store_records(ID)["a"]["hs_call_duration"] == "12345678901"


def test_retry_from_the_report_keeps_a_naive_parquet_timestamp_in_the_jobs_zone(
        portal, job_dir: Path, tmp_path: Path) -> None:
    import csv
    from datetime import datetime
    src = tmp_path / "calls.parquet"
    pq.write_table(pa.table({
        ID: ["a", "b"],
        "hs_timestamp": pa.array([datetime(2024, 5, 1, 10, 0), datetime(2024, 5, 1, 10, 0)], pa.timestamp("ms")),
        "hs_call_status": ["COMPLETED", "NOT_A_STATUS"],
    }), src)
    env = cli_env(portal)
    r = run_cli(["load", str(src), "--id-property", ID, "--job-id", "tz", "--job-dir", str(job_dir),
                 "--timezone", "America/New_York"], env=env)
    assert r.exit_code == 1, r.output
    assert portal.store_records(ID)["a"]["hs_timestamp"] == "2024-05-01T14:00:00.000Z"  # 10:00 EDT
    template = tmp_path / "rep.csv"
    run_cli(["report", "tz", "--job-dir", str(job_dir), "--format", "csv", "-o", str(template)], env=env)
    with template.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header, lines = reader.fieldnames, list(reader)
    assert header is not None and len(lines) == 1
    lines[0]["hs_call_status"] = "COMPLETED"
    fixed = tmp_path / "fixed.csv"
    with fixed.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(lines)
    r = run_cli(["retry", "tz", "--job-dir", str(job_dir), "--from", str(fixed)], env=env)
    assert r.exit_code == 0, r.output
    # Row b's 10:00 was New York time, as row a's was.
    assert portal.store_records(ID)["b"]["hs_timestamp"] == "2024-05-01T14:00:00.000Z"


def test_plain_retry_keeps_a_naive_parquet_timestamp_in_the_jobs_zone(job_dir: Path, tmp_path: Path) -> None:
    from datetime import datetime
    src = tmp_path / "calls.parquet"
    pq.write_table(pa.table({
        ID: ["a"],
        "hs_timestamp": pa.array([datetime(2024, 5, 1, 10, 0)], pa.timestamp("ms")),
    }), src)
    # The portal's validation rule refuses the row the first time; the rule is then lifted.
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=None,
                                     required_properties={"calls": ("hs_call_title",)})) as sb:
        env = cli_env(sb)
        r = run_cli(["load", str(src), "--id-property", ID, "--job-id", "tz2", "--job-dir", str(job_dir),
                     "--timezone", "America/New_York"], env=env)
        assert r.exit_code == 1, r.output
        sb.configure(required_properties={})
        r = run_cli(["retry", "tz2", "--job-dir", str(job_dir)], env=env)
        assert r.exit_code == 0, r.output
        assert sb.store_records(ID)["a"]["hs_timestamp"] == "2024-05-01T14:00:00.000Z"  # 10:00 EDT
