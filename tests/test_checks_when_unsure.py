"""Values the local checks refuse (or rewrite) although HubSpot may take them as written."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from bulkload.checks import PropertyInfo, check_column, is_email_address
from bulkload.convert import datetimes, typed_to_strings
from bulkload.sandbox import SandboxConfig, SandboxServer
from tests.conftest import TOKEN, cli_env, good_row, run_cli, write_csv


@pytest.mark.parametrize("value", ["+5", "+1.5"])
def test_a_number_java_parses_is_not_refused_locally(value: str) -> None:
    # checks.py: "HubSpot parses numbers as Java does" -- BigDecimal, Long.parseLong and
    # Double.parseDouble all take a leading '+'.
    checked = check_column(pa.array([value]), PropertyInfo("amount", "number"))
    assert checked.problems == {}


def test_an_address_with_a_punycode_top_level_domain_is_not_refused_locally() -> None:
    assert is_email_address("user@example.xn--p1ai")  # .рф, as DNS spells it


def test_a_parquet_date_and_the_same_csv_date_are_the_same_instant_under_timezone() -> None:
    typed = typed_to_strings(pa.array([date(2024, 5, 1)], pa.date32()), "datetime", "America/New_York")[0]
    text = datetimes(pa.array(["2024-05-01"]), "America/New_York").values
    assert typed.to_pylist() == text.to_pylist()


def test_a_dry_run_with_a_refused_token_does_not_report_offline_counts_as_the_loads(
        job_dir: Path, tmp_path: Path) -> None:
    rows = [{**good_row(i), "hubspot_owner_id": "owner-001@example.com"} for i in range(1, 4)]
    src = write_csv(tmp_path / "calls.csv", rows, (*good_row(1), "hubspot_owner_id"))
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=None)) as sb:
        env = {**cli_env(sb), "HUBSPOT_ACCESS_TOKEN": "revoked"}
        dry = run_cli(["load", str(src), "--id-property", "external_call_id", "--dry-run", "--json"], env=env)
        load = run_cli(["load", str(src), "--id-property", "external_call_id", "--job-dir", str(job_dir)], env=env)
    assert load.exit_code == 77
    # The load cannot run with this token; a dry run that exits 0 and says 3 of 3 rows would
    # fail (owner e-mails it could not resolve) describes neither this load nor a good one.
    assert dry.exit_code != 0 or json.loads(dry.output)["rows"]["would_fail_locally"] == 0, dry.output
