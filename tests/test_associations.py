"""Associations and record ids, against the sandbox: what lands is read back from the
sandbox's own store and association tables, never from the journal alone.

The file: calls whose `contact_email` names seeded contacts (in any case, with spaces,
several per cell), unknown e-mails, empty cells; `company_id` names companies by record id.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from bulkload.sandbox import SandboxConfig, SandboxServer
from tests.conftest import COLUMNS, TOKEN, cli_env, good_row, run_cli, write_csv
from tests.processes import SandboxCli, bulkload, read_journal, status_json, wait_until

CONTACTS = 40
ID = "external_call_id"
ASSOC = ("--associate", "contact_email=contacts.email")


def email(i: int) -> str:
    return f"contact-{i:05d}@example.com"


def contact_id(i: int) -> str:
    return str(1_000_000 + i)


def email_cell(i: int) -> str:
    """Row i's contact_email: shared contacts, odd spelling, two per cell, unknowns, blanks."""
    if i % 10 == 0:
        return ""
    if i % 25 == 3:
        return f"nobody-{i}@example.com"
    if i % 25 == 4:
        return "  Ghost@Example.com "  # one unknown value shared by many rows
    first = email(i % CONTACTS + 1)
    if i % 7 == 0:
        return f" {first.upper()} ; {email((i + 3) % CONTACTS + 1)}"
    return first if i % 3 else f"  {first.title()}"


def expected_pairs(i: int) -> tuple[set[str], set[str]]:
    """(contact ids row i must be associated with, the cell values that must fail)."""
    known: set[str] = set()
    unknown: set[str] = set()
    for part in email_cell(i).split(";"):
        value = part.strip()
        if not value:
            continue
        if value.lower().startswith("contact-"):
            known.add(contact_id(int(value.lower()[8:13])))
        else:
            unknown.add(value)
    return known, unknown


def write_calls(path: Path, n: int, cell: Any = email_cell, column: str = "contact_email") -> Path:
    rows = [{**good_row(i), column: cell(i)} for i in range(1, n + 1)]
    return write_csv(path, rows, (*COLUMNS, column))


@pytest.fixture
def portal() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=None, contacts=CONTACTS)) as sb:
        yield sb


def load(sb: SandboxServer, src: Path, job_dir: Path, job: str, *extra: str) -> Any:
    return run_cli(["load", str(src), "--id-property", ID, "--job-id", job, "--job-dir", str(job_dir), *extra],
                   env=cli_env(sb))


def status(sb: SandboxServer, job_dir: Path, job: str) -> dict[str, Any]:
    result = run_cli(["status", job, "--job-dir", str(job_dir), "--json"], env=cli_env(sb))
    data: dict[str, Any] = json.loads(result.output)
    # The journal keeps a running count of pairs; it must be what a count of the table says.
    con = sqlite3.connect(f"file:{job_dir / (job + '.sqlite')}?mode=ro", uri=True)
    try:
        by_state = dict(con.execute("SELECT state, COUNT(*) FROM pairs GROUP BY state").fetchall())
    finally:
        con.close()
    assert data["associations"] == {"total": sum(by_state.values()), "created": by_state.get("created", 0),
                                    "failed": by_state.get("failed", 0), "pending": by_state.get("pending", 0)}
    return data


def failed_rows(sb: SandboxServer, job_dir: Path, job: str, tmp: Path) -> list[dict[str, Any]]:
    out = tmp / f"{job}.jsonl"
    run_cli(["report", job, "--job-dir", str(job_dir), "--format", "jsonl", "-o", str(out)], env=cli_env(sb))
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def associated(sb: SandboxServer, to_object: str = "contacts") -> dict[str, dict[str, list[int]]]:
    """Each call's associations as the sandbox holds them, keyed by the call's id value."""
    return {key: sb.record_associations("calls", rec["hs_object_id"], to_object)
            for key, rec in sb.store_records(ID).items()}


def test_associations_land_exactly_and_unknown_values_are_reported_exactly(
        portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    n = 300
    src = write_calls(tmp_path / "calls.csv", n)
    result = load(portal, src, job_dir, "a", *ASSOC)
    assert result.exit_code == 1, result.output  # every call landed; some associations did not

    links = associated(portal)
    want_known = {f"call-{i:06d}": expected_pairs(i)[0] for i in range(1, n + 1)}
    assert {k: set(v) for k, v in links.items()} == want_known
    assert all(types == [194] for v in links.values() for types in v.values())  # HubSpot's default call->contact
    # The association column was not sent as a property.
    assert all("contact_email" not in rec for rec in portal.store_records(ID).values())

    s = status(portal, job_dir, "a")
    assert s["state"] == "completed_with_errors"
    assert s["rows"] == {"total": n, "upserted": n, "created": n, "updated": 0, "failed": 0, "superseded": 0,
                         "pending": 0}
    n_known = sum(len(expected_pairs(i)[0]) for i in range(1, n + 1))
    n_unknown = sum(len(expected_pairs(i)[1]) for i in range(1, n + 1))
    assert s["associations"] == {"total": n_known + n_unknown, "created": n_known, "failed": n_unknown,
                                 "pending": 0}

    rows = failed_rows(portal, job_dir, "a", tmp_path)
    got = {(r["sourceData"]["rowNumber"], r["invalidValue"]) for r in rows}
    # The value as looked up: trimmed, and an e-mail lower-cased (HubSpot's own matching).
    assert got == {(i, v.lower()) for i in range(1, n + 1) for v in expected_pairs(i)[1]}
    assert {r["errorType"] for r in rows} == {"ASSOCIATED_RECORD_NOT_FOUND"}
    assert {r["category"] for r in rows} == {"ASSOCIATIONS"}
    assert {r["propertyName"] for r in rows} == {"contact_email"}
    assert all("bulkload retry a" in r["howToFix"] for r in rows)

    # Each distinct value (lower-cased e-mail) looked up once, a hundred a request.
    distinct = {v.strip().lower() for i in range(1, n + 1) for v in email_cell(i).split(";") if v.strip()}
    counters = portal.counters()
    assert counters["read_inputs"] == len(distinct)
    assert counters["requests_by_kind"]["read"] == -(-len(distinct) // 100)
    assert counters["association_inputs"] == n_known  # and each pair asked for once, packed in one request
    assert counters["requests_by_kind"]["associate"] == 1
    # schema: the properties, and the owners (the file has a hubspot_owner_id column).
    assert s["api_calls_by_kind"] == {"upsert": 3, "read": 1, "associate": 1, "schema": 2}

    cards = run_cli(["report", "a", "--job-dir", str(job_dir), "--summary"], env=cli_env(portal)).output
    assert f"ASSOCIATIONS: {n_unknown} errors" in cards
    assert "bulkload retry a" in cards


def test_hs_object_id_targets_need_no_lookup(portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    companies = portal.create_records("companies", [{"name": f"Co {k}", "domain": f"co{k}.example"}
                                                   for k in range(3)])
    missing = "987654321"

    def cell(i: int) -> str:
        return missing if i == 5 else ";".join(companies[: i % 3 + 1])

    src = write_calls(tmp_path / "calls.csv", 20, cell, column="company_id")
    result = load(portal, src, job_dir, "co", "--associate", "company_id=companies.hs_object_id")
    assert result.exit_code == 1, result.output
    links = associated(portal, "companies")
    for i in range(1, 21):
        want = set() if i == 5 else set(companies[: i % 3 + 1])
        assert set(links[f"call-{i:06d}"]) == want
        assert all(t == [182] for t in links[f"call-{i:06d}"].values())
    assert portal.counters()["requests_by_kind"].get("read", 0) == 0
    rows = failed_rows(portal, job_dir, "co", tmp_path)
    assert [(r["sourceData"]["rowNumber"], r["errorType"], r["invalidValue"]) for r in rows] == \
        [(5, "INVALID_ASSOCIATION", missing)]
    assert rows[0]["errorMessage"]  # HubSpot's own words about the pair


def test_the_map_file_associations_table(portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    src = write_calls(tmp_path / "calls.csv", 30, lambda i: email(i))
    mapping = tmp_path / "map.toml"
    mapping.write_text('[associations]\ncontact_email = "contacts.email"\n', encoding="utf-8")
    result = load(portal, src, job_dir, "m", "--map", str(mapping))
    assert result.exit_code == 0, result.output
    assert {k: set(v) for k, v in associated(portal).items()} == \
        {f"call-{i:06d}": {contact_id(i)} for i in range(1, 31)}


@pytest.mark.parametrize(("spec", "why"), [
    ("contact_email=contacts.firstname", "not a unique-value property"),
    ("contact_email=contacts.no_such_property", "has no property"),
    ("contact_email=spaceships.email", "spaceships"),
    ("no_such_column=contacts.email", "no_such_column"),
])
def test_a_target_hubspot_cannot_look_up_is_refused_before_anything_is_sent(
        portal: SandboxServer, job_dir: Path, tmp_path: Path, spec: str, why: str) -> None:
    src = write_calls(tmp_path / "calls.csv", 10)
    result = load(portal, src, job_dir, "bad", "--associate", spec)
    assert result.exit_code == 2, result.output
    assert why in result.output
    assert "Traceback" not in result.output
    kinds = portal.counters()["requests_by_kind"]
    assert kinds.get("upsert", 0) == 0 and kinds.get("associate", 0) == 0


def test_a_unique_property_other_than_email_is_matched_exactly(
        portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    # Seeded contact i has external_contact_id contact-0000i, a unique-value property.
    src = write_calls(tmp_path / "calls.csv", 12,
                      lambda i: f"CONTACT-{i:05d}" if i == 4 else f" contact-{i:05d} ", column="contact_key")
    result = load(portal, src, job_dir, "u", "--associate", "contact_key=contacts.external_contact_id")
    assert result.exit_code == 1, result.output
    links = associated(portal)
    assert links["call-000004"] == {}  # exact match: the upper-cased value names nobody
    assert all(set(links[f"call-{i:06d}"]) == {contact_id(i)} for i in range(1, 13) if i != 4)


def test_dry_run_counts_pairs_and_distinct_values(portal: SandboxServer, tmp_path: Path) -> None:
    n = 300
    src = write_calls(tmp_path / "calls.csv", n)
    result = run_cli(["load", str(src), "--id-property", ID, "--dry-run", "--json", *ASSOC], env=cli_env(portal))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    pairs = sum(len(k) + len(u) for k, u in map(expected_pairs, range(1, n + 1)))
    distinct = {v.strip().lower() for i in range(1, n + 1) for v in email_cell(i).split(";") if v.strip()}
    assert report["associations"]["pairs"] == pairs
    assert report["associations"]["targets"] == [
        {"target": "contact_email=contacts.email", "distinct_values": len(distinct), "lookups": len(distinct)}]
    kinds = portal.counters()["requests_by_kind"]
    assert set(kinds) <= {"properties", "owners"}  # the pre-flight's reads, nothing written or looked up


def test_retry_after_the_missing_contacts_exist_associates_without_resending_calls(
        portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    n = 120
    src = write_calls(tmp_path / "calls.csv", n)
    assert load(portal, src, job_dir, "r", *ASSOC).exit_code == 1
    writes_before = portal.counters()["writes_by_object"]["calls"]
    unknown = sorted({v for i in range(1, n + 1) for v in expected_pairs(i)[1]})
    # HubSpot stores e-mails lower-cased; the cell said "Ghost@Example.com".
    ids = dict(zip(unknown, portal.create_records("contacts", [{"email": v.lower()} for v in unknown]),
                   strict=True))

    retried = run_cli(["retry", "r", "--job-dir", str(job_dir)], env=cli_env(portal))
    assert retried.exit_code == 0, retried.output
    assert portal.counters()["writes_by_object"]["calls"] == writes_before  # no call re-sent
    links = associated(portal)
    for i in range(1, n + 1):
        known, missing = expected_pairs(i)
        assert set(links[f"call-{i:06d}"]) == known | {ids[v] for v in missing}
    s = status(portal, job_dir, "r")
    assert s["associations"]["failed"] == 0 and s["associations"]["pending"] == 0
    assert s["state"] == "completed"
    assert failed_rows(portal, job_dir, "r", tmp_path) == []


def test_report_upserted_gives_the_sandboxs_record_ids(portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    n = 250
    src = write_calls(tmp_path / "calls.csv", n)
    load(portal, src, job_dir, "ids", *ASSOC)
    store = portal.store_records(ID)
    env = cli_env(portal)

    out = tmp_path / "up.jsonl"
    assert run_cli(["report", "ids", "--job-dir", str(job_dir), "--upserted", "--format", "jsonl", "-o", str(out)],
                   env=env).exit_code == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == n
    for line in lines:
        key = line["idPropertyValue"]
        assert line["objectId"] == store[key]["hs_object_id"]
        assert line["created"] is True
        row = line["sourceData"]["rowNumber"]
        assert key == f"call-{row:06d}"
        assert set(line["associations"].get("contacts", [])) == expected_pairs(row)[0]

    # Paged: the pages together are the whole, once each.
    paged: list[dict[str, Any]] = []
    after: list[str] = []
    while True:
        page = tmp_path / f"page{len(paged)}.jsonl"
        result = run_cli(["report", "ids", "--job-dir", str(job_dir), "--upserted", "--format", "jsonl",
                          "--limit", "100", "-o", str(page), *after], env=env)
        got = [json.loads(line) for line in page.read_text(encoding="utf-8").splitlines()]
        paged.extend(got)
        if "--after" not in result.output:
            break
        after = ["--after", result.output.split("--after ")[1].split()[0]]
    assert paged == lines

    csv_out = tmp_path / "up.csv"
    run_cli(["report", "ids", "--job-dir", str(job_dir), "--upserted", "--format", "csv", "-o", str(csv_out)], env=env)
    with csv_out.open(newline="", encoding="utf-8-sig") as f:  # a BOM, for Excel
        by_key = {r["idPropertyValue"]: r for r in csv.DictReader(f)}
    assert {k: r["objectId"] for k, r in by_key.items()} == {k: r["hs_object_id"] for k, r in store.items()}

    pq_out = tmp_path / "up.parquet"
    run_cli(["report", "ids", "--job-dir", str(job_dir), "--upserted", "--format", "parquet", "-o", str(pq_out)],
            env=env)
    table = pq.read_table(pq_out).to_pylist()
    assert {r["idPropertyValue"]: r["objectId"] for r in table} == {k: r["hs_object_id"] for k, r in store.items()}


def test_429s_and_5xx_on_the_association_endpoints(job_dir: Path, tmp_path: Path) -> None:
    # 3,000 rows, each its own contact: 30 lookups and 2 association requests, about a
    # third of which are answered 429 or 5xx (a 5xx's association may have been made).
    n = 3_000
    config = SandboxConfig(tokens=(TOKEN,), rate_limit_max=None, contacts=n, seed=3,
                           fault_requests=("read", "associate"),
                           fault_probabilities={"429": 0.2, "503": 0.1, "502": 0.05}, lost_write_applied=0.5)
    src = write_calls(tmp_path / "calls.csv", n, lambda i: email(i) if i % 500 else "nobody@example.com")
    with SandboxServer(config) as sb:
        # A one-second window, so that each 429's wait for the window is short.
        result = load(sb, src, job_dir, "f", *ASSOC, "--max-attempts", "20", "--rate", "1000/1")
        assert result.exit_code == 1, result.output
        counters = sb.counters()
        assert counters["faults"].get("429", 0) > 0 and counters["faults"].get("503", 0) > 0
        links = associated(sb)
        assert {k: set(v) for k, v in links.items()} == \
            {f"call-{i:06d}": {contact_id(i)} if i % 500 else set() for i in range(1, n + 1)}
        s = status(sb, job_dir, "f")
        assert s["associations"] == {"total": n, "created": n - 6, "failed": 6, "pending": 0}
        assert s["rows"]["upserted"] == n
        # Every fault cost one more request of its kind, no more.
        kinds = counters["requests_by_kind"]
        assert kinds["read"] + kinds["associate"] == 30 + 2 + sum(counters["faults"].values())


def test_sigkill_between_the_upserts_and_the_associations_then_resume(job_dir: Path, tmp_path: Path) -> None:
    n = 500
    src = write_calls(tmp_path / "calls.csv", n)
    journal = job_dir / "k.sqlite"
    # Every association request hangs (its write applied, its answer lost): the loader is
    # killed with all calls landed and every pair still pending.
    with SandboxCli(tmp_path / "store.sqlite", "--contacts", str(CONTACTS), "--fault-requests", "associate",
                    "--fault", "slow=1", "--lost-write-applied", "1") as sb:
        sb.configure(slow_response_s=120)
        env = sb.env()
        proc = bulkload("load", str(src), "--id-property", ID, "--job-id", "k", "--job-dir", str(job_dir),
                        *ASSOC, env=env, log=tmp_path / "load.log")
        try:
            def upserts_done_and_association_sent() -> bool:
                landed = read_journal(journal, "SELECT COUNT(*) FROM landed") or 0
                return landed == n and sb.get("counters")["requests_by_kind"].get("associate", 0) >= 1

            assert wait_until(proc, upserts_done_and_association_sent)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        killed = status_json("k", job_dir, env)
        assert killed["rows"]["upserted"] == n
        n_known = sum(len(expected_pairs(i)[0]) for i in range(1, n + 1))
        # The lookups were answered (the unknown values failed); every pair to make is pending.
        assert killed["associations"]["pending"] == n_known
        assert killed["associations"]["failed"] == sum(len(expected_pairs(i)[1]) for i in range(1, n + 1))

        sb.configure(fault_probabilities={})
        writes_before = sb.get("counters")["writes_by_object"]["calls"]
        resumed = bulkload("resume", "k", "--job-dir", str(job_dir), env=env, log=tmp_path / "resume.log")
        assert resumed.wait(timeout=120) == 1, (tmp_path / "resume.log").read_text()
        assert sb.get("counters")["writes_by_object"]["calls"] == writes_before  # no call re-sent
        final = status_json("k", job_dir, env)
        assert final["associations"]["created"] == n_known
        assert final["associations"]["pending"] == 0
        records = sb.store()
        for i in range(1, n + 1):
            key = f"call-{i:06d}"
            got = sb.get("associations", **{"from": "calls", "id": records[key]["hs_object_id"], "to": "contacts"})
            assert set(got["results"]) == expected_pairs(i)[0], key


def test_a_row_that_failed_its_upsert_is_associated_once_a_retry_lands_it(
        portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    rows = [{**good_row(i), "contact_email": email(i)} for i in range(1, 11)]
    rows[4]["hs_call_status"] = "NOT_A_STATUS"
    src = write_csv(tmp_path / "calls.csv", rows, (*COLUMNS, "contact_email"))
    assert load(portal, src, job_dir, "fix", *ASSOC).exit_code == 1
    s = status(portal, job_dir, "fix")
    assert s["rows"]["failed"] == 1
    assert s["associations"] == {"total": 9, "created": 9, "failed": 0, "pending": 0}  # no call, no pair

    fixed = write_csv(tmp_path / "fixed.csv", [{**rows[4], "hs_call_status": "COMPLETED"}],
                      (*COLUMNS, "contact_email"))
    retried = run_cli(["retry", "fix", "--job-dir", str(job_dir), "--from", str(fixed)], env=cli_env(portal))
    assert retried.exit_code == 0, retried.output
    assert set(associated(portal)["call-000005"]) == {contact_id(5)}
    assert status(portal, job_dir, "fix")["associations"] == {"total": 10, "created": 10, "failed": 0,
                                                             "pending": 0}


def test_a_failed_association_corrected_in_the_reports_csv_is_replayed(
        portal: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    rows = [{**good_row(i), "contact_email": email(i)} for i in range(1, 11)]
    rows[2]["contact_email"] = f"{email(3)};typo@example.con"  # one of two values wrong
    rows[6]["contact_email"] = "nobody@example.com"
    rows[8]["contact_email"] = "ghost@example.com"
    src = write_csv(tmp_path / "calls.csv", rows, (*COLUMNS, "contact_email"))
    assert load(portal, src, job_dir, "csvfix", *ASSOC).exit_code == 1
    env = cli_env(portal)
    template = tmp_path / "report.csv"
    run_cli(["report", "csvfix", "--job-dir", str(job_dir), "--format", "csv", "-o", str(template)], env=env)
    with template.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header, lines = reader.fieldnames, list(reader)
    assert header is not None
    # The template names the call and the value that failed; nothing else of the record.
    assert {(r["external_call_id"], r["contact_email"]) for r in lines} == {
        ("call-000003", "typo@example.con"), ("call-000007", "nobody@example.com"),
        ("call-000009", "ghost@example.com")}
    assert all(r["hs_call_title"] == "" for r in lines)
    for r in lines:  # fix one in a spreadsheet, empty another, leave the third
        if r["external_call_id"] == "call-000003":
            r["contact_email"] = f" {email(30).upper()} "
        elif r["external_call_id"] == "call-000007":
            r["contact_email"] = ""
    fixed = tmp_path / "fixed.csv"
    with fixed.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header, delimiter=";")  # saved by a European Excel
        writer.writeheader()
        writer.writerows(lines)
    writes_before = portal.counters()["writes_by_object"]["calls"]

    retried = run_cli(["retry", "csvfix", "--job-dir", str(job_dir), "--from", str(fixed)], env=env)
    assert retried.exit_code == 1, retried.output  # ghost@example.com still names nobody
    assert portal.counters()["writes_by_object"]["calls"] == writes_before  # no record blanked or re-sent
    links = associated(portal)
    assert set(links["call-000003"]) == {contact_id(3), contact_id(30)}
    assert links["call-000007"] == {} and links["call-000009"] == {}
    assert status(portal, job_dir, "csvfix")["associations"] == {"total": 10, "created": 9, "failed": 1,
                                                                "pending": 0}
    assert [r["invalidValue"] for r in failed_rows(portal, job_dir, "csvfix", tmp_path)] == ["ghost@example.com"]
    assert portal.store_records(ID)["call-000003"]["hs_call_title"] == "Call 3"
