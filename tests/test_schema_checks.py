"""The portal's schema as the validator, end to end through the command line: what is
refused before sending (no request spent on it), labels and owner e-mails stored as
values and ids, a refused schema or owners read (403), every object (contacts keyed by
email, a custom object by name or type id), both API families, and 200 answers that
carry errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkload.sandbox import SandboxConfig, SandboxServer
from tests.conftest import COLUMNS, TOKEN, cli_env, good_row, run_cli, write_csv

ID = "external_call_id"
NO_SCHEMA, NO_OWNERS = "no-schema-token", "no-owners-token"
OWNER_2 = str(10_000_000 + 7919 * 2)
CONNECTED = "f240bbac-87c9-4f6e-bf70-924b57d47db7"


@pytest.fixture
def portal() -> Iterator[SandboxServer]:
    config = SandboxConfig(tokens=(TOKEN,), rate_limit_max=None, no_schema_read_tokens=(NO_SCHEMA,),
                           no_owners_read_tokens=(NO_OWNERS,))
    with SandboxServer(config) as sb:
        yield sb


def env(sb: SandboxServer, token: str = TOKEN) -> dict[str, str]:
    return {**cli_env(sb), "HUBSPOT_ACCESS_TOKEN": token}


def load(sb: SandboxServer, src: Path, job_dir: Path, job: str, *extra: str, token: str = TOKEN,
         id_property: str = ID) -> Any:
    return run_cli(["load", str(src), "--id-property", id_property, "--job-id", job, "--job-dir", str(job_dir),
                    "--no-progress", *extra], env=env(sb, token))


def status(sb: SandboxServer, job_dir: Path, job: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(run_cli(["status", job, "--job-dir", str(job_dir), "--json"]).output)
    return out


def errors(job_dir: Path, job: str, tmp: Path) -> dict[int, dict[str, Any]]:
    out = tmp / f"{job}.jsonl"
    run_cli(["report", job, "--job-dir", str(job_dir), "--format", "jsonl", "-o", str(out)])
    return {r["sourceData"]["rowNumber"]: r for r in map(json.loads, out.read_text().splitlines())}


ROWS = {  # row -> cells: labels, owner e-mails, and values HubSpot would refuse
    1: {"hs_call_status": "Completed", "hs_call_disposition": "Connected", "hubspot_owner_id": "Owner-002@Example.com"},
    2: {"hs_call_status": "no answer", "hubspot_owner_id": OWNER_2},
    3: {"hs_call_status": "DONE"},
    4: {"hs_call_duration": "12m30s", "hs_call_direction": "SIDEWAYS", "hubspot_owner_id": "nobody@example.com"},
    5: {"hs_timestamp": "1714557600"},
}


def calls_file(tmp: Path, n: int = 250) -> Path:
    return write_csv(tmp / "calls.csv", [good_row(i, **ROWS.get(i, {})) for i in range(1, n + 1)])


def test_bad_values_fail_before_sending_and_labels_and_owner_emails_land_as_values(
        portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    src = calls_file(tmp_path)
    assert load(portal, src, job_dir, "j").exit_code == 1
    store = portal.store_records(ID)
    assert store["call-000001"]["hs_call_status"] == "COMPLETED"
    assert store["call-000001"]["hs_call_disposition"] == CONNECTED
    assert store["call-000001"]["hubspot_owner_id"] == OWNER_2
    assert store["call-000002"]["hs_call_status"] == "NO_ANSWER"
    assert not {"call-000003", "call-000004", "call-000005"} & set(store)
    # Refused here, so HubSpot never saw them: no input error, nothing split.
    assert portal.counters()["input_errors"] == 0
    found = errors(job_dir, "j", tmp_path)
    assert {r: (e["errorType"], e["origin"]) for r, e in found.items()} == {
        3: ("INVALID_ENUM_PROPERTY", "local"), 4: ("INVALID_ENUM_PROPERTY", "local"),
        5: ("INVALID_TIMESTAMP", "local")}
    # Every problem of row 4, not the first only; the cards count each.
    assert [(p["errorType"], p["propertyName"]) for p in found[4]["errors"]] == [
        ("INVALID_ENUM_PROPERTY", "hs_call_direction"), ("INVALID_NUMBER", "hs_call_duration"),
        ("INVALID_OWNER_ID", "hubspot_owner_id")]
    assert "epoch seconds" in found[5]["errorMessage"]
    summary = json.loads(run_cli(["report", "j", "--job-dir", str(job_dir), "--summary", "--json"]).output)
    by_category = {c["category"]: c for c in summary["categories"]}
    assert by_category["PROPERTY_VALUES"]["errors"] == 1  # row 4's owner, though the row leads with its enum
    st = status(portal, job_dir, "j")
    assert st["checks"] == {"schema": "portal", "owners": "portal"}


def test_the_csv_report_has_a_column_per_problem(portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    load(portal, calls_file(tmp_path), job_dir, "csv")
    out = tmp_path / "r.csv"
    run_cli(["report", "csv", "--job-dir", str(job_dir), "--format", "csv", "-o", str(out)])
    import csv

    with out.open(newline="", encoding="utf-8-sig") as f:
        rows = {r["bulkload_rowNumber"]: r for r in csv.DictReader(f)}
    row4 = rows["4"]
    assert row4["bulkload_error2_errorType"] == "INVALID_NUMBER"
    assert row4["bulkload_error2_propertyName"] == "hs_call_duration"
    assert row4["bulkload_error3_invalidValue"] == "nobody@example.com"
    assert "hs_call_direction" in row4["bulkload_errorMessage"] and "hs_call_duration" in row4["bulkload_errorMessage"]
    # The corrected-file round trip ignores them: fixing row 4 and replaying lands it.
    row4.update({"hs_call_duration": "750000", "hs_call_direction": "INBOUND", "hubspot_owner_id": OWNER_2})
    fixed = tmp_path / "fixed.csv"
    with fixed.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(row4))
        writer.writeheader()
        writer.writerow(row4)
    res = run_cli(["retry", "csv", "--job-dir", str(job_dir), "--from", str(fixed), "--no-progress"], env=env(portal))
    assert res.exit_code == 1, res.output  # rows 3 and 5 still fail
    assert portal.store_records(ID)["call-000004"]["hs_call_duration"] == "750000"


def test_without_the_schema_scope_the_checks_are_hubspots(portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    src = calls_file(tmp_path)
    assert load(portal, src, job_dir, "ns", token=NO_SCHEMA).exit_code == 1
    found = errors(job_dir, "ns", tmp_path)
    assert found[3]["origin"] == "hubspot" and found[3]["errorType"] == "INVALID_ENUM_PROPERTY"
    assert found[5]["origin"] == "local"  # datetimes are known without the schema
    assert "call-000001" not in portal.store_records(ID)  # a label, sent raw, HubSpot refuses
    assert status(portal, job_dir, "ns")["checks"] == {"schema": "hubspot", "owners": "not needed"}
    st = run_cli(["status", "ns", "--job-dir", str(job_dir)]).output
    assert "left to HubSpot" in st


def test_a_retry_without_the_schema_scope_checks_against_the_kept_schema(
        portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    load(portal, calls_file(tmp_path), job_dir, "kept")
    before = portal.counters()["input_errors"]
    res = run_cli(["retry", "kept", "--job-dir", str(job_dir), "--no-progress"], env=env(portal, NO_SCHEMA))
    assert res.exit_code == 1
    assert portal.counters()["input_errors"] == before  # still refused here, from the kept schema
    assert status(portal, job_dir, "kept")["checks"]["schema"] == "kept"


def test_without_the_owners_scope_ids_go_to_hubspot_and_emails_fail_here(
        portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    src = calls_file(tmp_path)
    assert load(portal, src, job_dir, "no", token=NO_OWNERS).exit_code == 1
    store = portal.store_records(ID)
    assert store["call-000002"]["hubspot_owner_id"] == OWNER_2
    found = errors(job_dir, "no", tmp_path)
    assert found[1]["errorType"] == "INVALID_OWNER_ID" and "owners.read" in found[1]["errorMessage"]
    assert status(portal, job_dir, "no")["checks"] == {"schema": "portal", "owners": "hubspot"}


def test_contacts_keyed_by_email_whatever_its_case(portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    rows = [{"email": "Ada@Example.com", "firstname": "Ada", "lifecyclestage": "Lead"},
            {"email": "grace@example.com", "firstname": "Grace", "hs_buying_role": "Champion;decision maker"},
            {"email": " ADA@example.COM ", "firstname": "Ada L."},  # the same contact as row 1: it wins
            {"email": "not-an-address", "firstname": "X"}]
    src = write_csv(tmp_path / "contacts.csv", rows, ("email", "firstname", "lifecyclestage", "hs_buying_role"))
    res = load(portal, src, job_dir, "c", "--object", "contact", id_property="email")
    assert res.exit_code == 1, res.output
    store = portal.store_records("email", "contacts")
    assert store["ada@example.com"]["firstname"] == "Ada L."
    assert "lifecyclestage" not in store["ada@example.com"]  # row 1 was superseded by row 3
    assert store["grace@example.com"]["hs_buying_role"] == "CHAMPION;DECISION_MAKER"
    st = status(portal, job_dir, "c")
    assert st["object_type"] == "contacts"
    assert st["rows"] == {"total": 4, "upserted": 2, "created": 2, "updated": 0, "failed": 1, "superseded": 1,
                          "pending": 0}
    assert errors(job_dir, "c", tmp_path)[4]["errorType"] == "INVALID_EMAIL_ADDRESS"


@pytest.mark.parametrize("object_arg", ["p_machines", "2-123456"])
def test_a_custom_object_by_name_or_type_id(portal: SandboxServer, job_dir: Path, tmp_path: Path,
                                            object_arg: str) -> None:
    rows = [{"serial_number": "M-1", "machine_name": "Press", "purchase_date": "1714521600000", "is_leased": "Yes",
             "machine_status": "In maintenance"},
            {"serial_number": "M-2", "machine_name": "Lathe", "purchase_date": "2024-05-01T10:00:00Z"}]
    src = write_csv(tmp_path / "m.csv", rows, ("serial_number", "machine_name", "purchase_date", "is_leased",
                                               "machine_status"))
    res = load(portal, src, job_dir, "m", "--object", object_arg, id_property="serial_number")
    assert res.exit_code == 1, res.output
    store = portal.store_records("serial_number", "p_machines")
    assert store["M-1"]["purchase_date"] == "2024-05-01"
    assert (store["M-1"]["is_leased"], store["M-1"]["machine_status"]) == ("true", "MAINTENANCE")
    assert errors(job_dir, "m", tmp_path)[2]["errorMessage"].startswith("2024-05-01T10:00:00Z is at 10:00:00")


@pytest.mark.parametrize(("version", "families"), [("2026-03", {"2026-03"}), ("v3", {"v3", "v4"})])
def test_both_api_families_end_to_end(job_dir: Path, tmp_path: Path, version: str, families: set[str]) -> None:
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=None, contacts=20)) as sb:
        rows = [good_row(i, hs_call_status="DONE" if i == 7 else "COMPLETED", hubspot_owner_id=OWNER_2)
                for i in range(1, 121)]
        for i, r in enumerate(rows, start=1):
            r["contact_email"] = f"contact-{i % 20 + 1:05d}@example.com"
        src = write_csv(tmp_path / "calls.csv", rows, (*COLUMNS, "contact_email"))
        res = load(sb, src, job_dir, "v", "--api-version", version, "--associate", "contact_email=contacts.email")
        assert res.exit_code == 1, res.output
        counters = sb.counters()
        assert set(counters["requests_by_family"]) == families
        assert len(sb.store_records(ID)) == 119
        assert status(sb, job_dir, "v")["associations"]["created"] == 119


def test_partial_answers_are_read_by_their_body_not_their_status(job_dir: Path, tmp_path: Path) -> None:
    # HubSpot's 2025-09+ specs answer a partial batch 200, errors in the body; on v3 too here.
    config = SandboxConfig(tokens=(TOKEN,), rate_limit_max=None, partial_status=200,
                           no_schema_read_tokens=(NO_SCHEMA,))
    with SandboxServer(config) as sb:
        src = calls_file(tmp_path, 300)
        res = load(sb, src, job_dir, "p", "--api-version", "v3", token=NO_SCHEMA)  # bad values reach HubSpot
        assert res.exit_code == 1, res.output
        assert sb.counters()["requests_by_status"].get("207") is None
        st = status(sb, job_dir, "p")
        assert st["rows"]["failed"] == 5 and st["rows"]["upserted"] == 295
        assert set(errors(job_dir, "p", tmp_path)) == {1, 2, 3, 4, 5}  # labels and e-mails sent raw: refused


def test_dry_run_runs_the_loads_preflight(portal: SandboxServer, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "c.csv", [good_row(1)], (ID, "hs_timestamp", "Started At"))
    res = run_cli(["load", str(src), "--id-property", ID, "--dry-run"], env=env(portal))
    assert res.exit_code == 2 and "Started At" in res.output
    loaded = run_cli(["load", str(src), "--id-property", ID, "--job-dir", str(tmp_path / "j")], env=env(portal))
    assert loaded.exit_code == 2 and "Started At" in loaded.output  # the same refusal
    good = calls_file(tmp_path, 20)
    report = json.loads(run_cli(["load", str(good), "--id-property", ID, "--dry-run", "--json"], env=env(portal)).output)
    assert report["checks"] == {"schema": "portal", "owners": "portal"}
    assert report["problems"] == {"INVALID_ENUM_PROPERTY": 2, "INVALID_NUMBER": 1, "INVALID_OWNER_ID": 1,
                                  "INVALID_TIMESTAMP": 1}
    assert [e["rowNumber"] for e in report["examples"]["INVALID_ENUM_PROPERTY"]] == [3, 4]
    offline = run_cli(["load", str(good), "--id-property", ID, "--dry-run"])
    assert offline.exit_code == 0 and "checked offline against HubSpot's default properties" in offline.output
    assert "INVALID_ENUM_PROPERTY ×2" in offline.output and "row 3" in offline.output
    assert portal.counters()["requests_by_kind"].get("upsert", 0) == 0
