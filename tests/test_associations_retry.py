"""Association defects found by the hostile review (each test pins one)."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from bulkload.sandbox import SandboxConfig, SandboxServer
from tests.conftest import COLUMNS, TOKEN, cli_env, good_row, run_cli, write_csv

ID = "external_call_id"


@pytest.fixture
def portal():
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=None, contacts=40)) as sb:
        yield sb


def status(sb, job_dir, job):
    r = run_cli(["status", job, "--job-dir", str(job_dir), "--json"], env=cli_env(sb))
    return json.loads(r.output)


def pair_states(job_dir, job):
    con = sqlite3.connect(job_dir / f"{job}.sqlite")
    try:
        return con.execute("SELECT row_number, target, value, state, to_id, error_type FROM pairs ORDER BY 1,2,3").fetchall()
    finally:
        con.close()


def read_template(path):
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def write_template(path, header, lines):
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(lines)


def test_retry_from_corrects_a_failed_hs_object_id_association(portal, job_dir: Path, tmp_path: Path) -> None:
    companies = portal.create_records("companies", [{"name": f"Co {k}", "domain": f"co{k}.example"} for k in range(3)])
    rows = [{**good_row(i), "company_id": companies[i % 3]} for i in range(1, 6)]
    rows[2]["company_id"] = "987654321"  # no such company
    src = write_csv(tmp_path / "calls.csv", rows, (*COLUMNS, "company_id"))
    env = cli_env(portal)
    r = run_cli(["load", str(src), "--id-property", ID, "--job-id", "h", "--job-dir", str(job_dir),
                 "--associate", "company_id=companies.hs_object_id"], env=env)
    assert r.exit_code == 1, r.output
    template = tmp_path / "rep.csv"
    run_cli(["report", "h", "--job-dir", str(job_dir), "--format", "csv", "-o", str(template)], env=env)
    header, lines = read_template(template)
    assert len(lines) == 1
    lines[0]["company_id"] = companies[0]
    fixed = tmp_path / "fixed.csv"
    write_template(fixed, header, lines)
    r = run_cli(["retry", "h", "--job-dir", str(job_dir), "--from", str(fixed)], env=env)
    print(r.output)
    print(pair_states(job_dir, "h"))
    s = status(portal, job_dir, "h")
    print(s["state"], s["associations"])
    resumed = run_cli(["resume", "h", "--job-dir", str(job_dir)], env=env)
    print("RESUME", resumed.exit_code, resumed.output, pair_states(job_dir, "h"))
    assert r.exit_code == 0, r.output
    assert s["associations"] == {"total": 5, "created": 5, "failed": 0, "pending": 0}


def email(i: int) -> str:
    return f"contact-{i:05d}@example.com"


def test_retry_lands_a_row_whose_contact_was_already_looked_up(portal, job_dir: Path, tmp_path: Path) -> None:
    rows = [{**good_row(i), "contact_email": email(1 + i % 3)} for i in range(1, 11)]
    rows[4]["hs_call_status"] = "NOT_A_STATUS"  # row 5 fails; its contact is shared with landed rows
    src = write_csv(tmp_path / "calls.csv", rows, (*COLUMNS, "contact_email"))
    env = cli_env(portal)
    r = run_cli(["load", str(src), "--id-property", ID, "--job-id", "s", "--job-dir", str(job_dir),
                 "--associate", "contact_email=contacts.email"], env=env)
    assert r.exit_code == 1, r.output
    fixed = write_csv(tmp_path / "fixed.csv", [{**rows[4], "hs_call_status": "COMPLETED"}], (*COLUMNS, "contact_email"))
    r = run_cli(["retry", "s", "--job-dir", str(job_dir), "--from", str(fixed)], env=env)
    s = status(portal, job_dir, "s")
    print(r.output, s["state"], s["associations"], pair_states(job_dir, "s"))
    assert r.exit_code == 0, r.output
    assert s["state"] == "completed"
    assert s["associations"] == {"total": 10, "created": 10, "failed": 0, "pending": 0}


def test_correcting_one_targets_failed_association_keeps_the_other_targets_failures(
        portal, job_dir: Path, tmp_path: Path) -> None:
    companies = portal.create_records("companies", [{"name": "Co", "domain": "co.example"}])
    rows = [{**good_row(i), "contact_email": email(i), "company_id": companies[0]} for i in range(1, 6)]
    rows[2]["contact_email"] = "typo@example.con"  # row 3: both of its associations fail
    rows[2]["company_id"] = "987654321"
    src = write_csv(tmp_path / "calls.csv", rows, (*COLUMNS, "contact_email", "company_id"))
    env = cli_env(portal)
    r = run_cli(["load", str(src), "--id-property", ID, "--job-id", "two", "--job-dir", str(job_dir),
                 "--associate", "contact_email=contacts.email", "--associate", "company_id=companies.hs_object_id"],
                env=env)
    assert r.exit_code == 1, r.output
    assert status(portal, job_dir, "two")["associations"]["failed"] == 2
    # The user works on the contacts first: a report of the missing records only.
    template = tmp_path / "rep.csv"
    run_cli(["report", "two", "--job-dir", str(job_dir), "--format", "csv", "--error-type",
             "ASSOCIATED_RECORD_NOT_FOUND", "-o", str(template)], env=env)
    header, lines = read_template(template)
    assert [(ln["contact_email"], ln["company_id"]) for ln in lines] == [("typo@example.con", "")]
    lines[0]["contact_email"] = email(3)
    fixed = tmp_path / "fixed.csv"
    write_template(fixed, header, lines)
    r = run_cli(["retry", "two", "--job-dir", str(job_dir), "--from", str(fixed)], env=env)
    s = status(portal, job_dir, "two")
    print(r.output, s["associations"], pair_states(job_dir, "two"))
    # The company association of row 3 was not in the file: it is still failed, still reported.
    assert s["associations"] == {"total": 10, "created": 9, "failed": 1, "pending": 0}
    assert r.exit_code == 1, r.output


def test_a_non_unique_target_is_refused_before_any_write_when_the_schema_is_refused(
        job_dir: Path, tmp_path: Path) -> None:
    # check_targets' docstring: without the schema (403) only hs_object_id and contacts.email
    # are accepted unchecked. The code accepts any property, writes every call, then each
    # run stops (exit 75) on HubSpot's "Unable to perform read by non-unique" for ever.
    rows = [{**good_row(i), "contact_name": "Ava"} for i in range(1, 6)]
    src = write_csv(tmp_path / "calls.csv", rows, (*COLUMNS, "contact_name"))
    config = SandboxConfig(tokens=("noschema",), no_schema_read_tokens=("noschema",), rate_limit_max=None, contacts=5)
    with SandboxServer(config) as sb:
        env = {"HUBSPOT_ACCESS_TOKEN": "noschema", "HUBSPOT_BASE_URL": sb.base_url}
        r = run_cli(["load", str(src), "--id-property", ID, "--job-id", "ns", "--job-dir", str(job_dir),
                     "--associate", "contact_name=contacts.firstname"], env=env)
        assert r.exit_code == 2, r.output
        assert sb.counters()["requests_by_kind"].get("upsert", 0) == 0
