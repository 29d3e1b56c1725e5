"""The foundation, end to end: the CLI loads the sample into a real loopback sandbox."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bulkload.sandbox import SandboxServer
from tests.conftest import (
    SAMPLE_ASSOCIATE,
    SAMPLE_CONTACTS,
    SAMPLE_CSV,
    SAMPLE_PARQUET,
    TOKEN,
    cli_env,
    expected_datetime,
    read_csv_rows,
    run_cli,
)

ID = "external_call_id"
DATETIME_PROPS = {"hs_timestamp"}
# The sample's documented bad rows (sample_data/README.md): row -> errorType in the journal.
BAD_ROWS = {
    101: "INVALID_ENUM_PROPERTY",  # hs_call_status DONE
    202: "INVALID_TIMESTAMP",  # hs_timestamp "tomorrow": refused locally, never sent
    303: "MISSING_ID_VALUE",
    404: "INVALID_ENUM_PROPERTY",  # a disposition GUID that is no outcome
    505: "INVALID_NUMBER",  # hs_call_duration "12m30s"
}
SUPERSEDED_ROW = 700  # its id is repeated by row 1500, which wins


def load(path: Path, sb: SandboxServer, job_dir: Path, *extra: str) -> dict[str, object]:
    res = run_cli(
        ["load", str(path), "--id-property", ID, "--job-dir", str(job_dir), "--no-progress", "--json",
         *SAMPLE_ASSOCIATE, *extra],
        env=cli_env(sb),
    )
    assert res.exit_code == 1, res.output  # the sample has failed rows by design
    status = json.loads(res.output.strip().splitlines()[-1])
    assert isinstance(status, dict)
    return status


def expected_store(path: Path) -> dict[str, dict[str, str]]:
    """Last row per id, bad rows excluded, values as HubSpot stores them."""
    out: dict[str, dict[str, str]] = {}
    for i, row in enumerate(read_csv_rows(path), start=1):
        if i in BAD_ROWS or not row[ID]:
            continue
        props = {k: (expected_datetime(v) if k in DATETIME_PROPS else v) for k, v in row.items()
                 if v and k not in (ID, "contact_email")}
        out[row[ID]] = props
    return out


def test_sample_csv_lands_with_the_right_values(sandbox: SandboxServer, job_dir: Path) -> None:
    status = load(SAMPLE_CSV, sandbox, job_dir)
    store = sandbox.store_records(ID)
    expected = expected_store(SAMPLE_CSV)
    assert set(store) == set(expected)
    for id_value, props in expected.items():
        got = store[id_value]
        mismatches = {k: (v, got.get(k)) for k, v in props.items() if got.get(k) != v}
        assert not mismatches, (id_value, mismatches)

    rows = status["rows"]
    assert isinstance(rows, dict)
    assert rows["total"] == len(read_csv_rows(SAMPLE_CSV))
    assert rows["upserted"] + rows["failed"] + rows["superseded"] + rows["pending"] == rows["total"]
    assert rows["pending"] == 0
    assert rows["failed"] == len(BAD_ROWS)
    assert rows["superseded"] == 1
    assert rows["upserted"] == len(expected)
    assert rows["created"] + rows["updated"] == rows["upserted"]
    assert status["state"] == "completed_with_errors"
    assert status["batches"]["pending"] == 0  # type: ignore[index]


def test_sample_calls_are_associated_with_their_contacts(sandbox: SandboxServer, job_dir: Path) -> None:
    status = load(SAMPLE_CSV, sandbox, job_dir)
    store = sandbox.store_records(ID)
    last = {row[ID]: row for row in read_csv_rows(SAMPLE_CSV) if row[ID]}  # the last row of an id wins
    pairs = 0
    for id_value, record in store.items():
        emails = [e for e in last[id_value]["contact_email"].split(";") if e]
        known = {str(1_000_000 + int(e[8:13])) for e in emails if e.startswith("contact-")}
        pairs += len(emails)
        assert set(sandbox.record_associations("calls", record["hs_object_id"], "contacts")) == known, id_value
    # Row 606 names pat.unknown@example.com, whom no contact has.
    assert status["associations"] == {"total": pairs, "created": pairs - 1, "failed": 1, "pending": 0}


def test_bad_rows_are_journaled_with_their_error_type(sandbox: SandboxServer, job_dir: Path) -> None:
    status = load(SAMPLE_CSV, sandbox, job_dir)
    journal = Path(str(status["journal"]))
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    # The token lives only in memory: not in the journal (or its WAL).
    for f in journal.parent.iterdir():
        assert TOKEN.encode() not in f.read_bytes(), f.name
    import sqlite3

    con = sqlite3.connect(journal)
    errors = {r[0]: (r[1], r[2], r[3]) for r in con.execute(
        "SELECT row_number, error_type, line_number, row_data FROM row_errors WHERE resolved = 0")}
    sup = con.execute("SELECT row_number, superseded_by, row_data FROM superseded").fetchall()
    con.close()
    assert {r: e[0] for r, e in errors.items()} == BAD_ROWS
    # Line numbers count the header and embedded newlines of earlier rows.
    assert all(line is not None and line > row for row, (_, line, _) in errors.items())
    assert json.loads(errors[101][2])["hs_call_status"] == "DONE"
    assert [(r[0], r[1]) for r in sup] == [(SUPERSEDED_ROW, 1500)]
    assert json.loads(sup[0][2])[ID]  # the superseded row's source data is kept for the report


def test_parquet_and_csv_give_the_same_store(tmp_path: Path) -> None:
    from bulkload.sandbox import SandboxConfig

    stores = []
    for src in (SAMPLE_CSV, SAMPLE_PARQUET):
        with SandboxServer(SandboxConfig(rate_limit_max=None, contacts=SAMPLE_CONTACTS)) as sb:
            jd = tmp_path / src.suffix.lstrip(".")
            jd.mkdir()
            res = run_cli(["load", str(src), "--id-property", ID, "--job-dir", str(jd), "--no-progress",
                           *SAMPLE_ASSOCIATE], env=cli_env(sb))
            assert res.exit_code == 1, res.output
            stores.append(sb.store_records(ID))
    csv_store, parquet_store = stores
    # Row 505's duration "12m30s" cannot exist in Parquet's int64 column: it is null
    # there, so that row lands without a duration instead of failing (sample_data/README.md).
    typed_only = parquet_store.pop("call-0000505")
    assert "hs_call_duration" not in typed_only
    assert set(csv_store) == set(parquet_store)
    volatile = {"hs_object_id", "hs_createdate", "hs_lastmodifieddate"}
    for id_value, props in csv_store.items():
        a = {k: v for k, v in props.items() if k not in volatile}
        b = {k: v for k, v in parquet_store[id_value].items() if k not in volatile}
        assert a == b, id_value


def test_status_and_jobs_views(sandbox: SandboxServer, job_dir: Path) -> None:
    status = load(SAMPLE_CSV, sandbox, job_dir)
    job_id = str(status["job_id"])
    res = run_cli(["status", job_id, "--job-dir", str(job_dir)])
    assert res.exit_code == 0
    assert "completed_with_errors" in res.output and "upserted" in res.output
    res = run_cli(["jobs", "--job-dir", str(job_dir), "--json"])
    jobs = json.loads(res.output)
    assert [j["job_id"] for j in jobs] == [job_id]
    assert jobs[0]["progress"] == 100.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"external_call_id,hs_timestamp\n", "header only"),
        (b"hs_timestamp,hs_call_title\n2024-01-01T00:00:00Z,x\n", "no id column"),
        (b"external_call_id,hs_call_title\n,x\n,y\n", "every value"),
        (b"external_call_id,hs_call_title\ncall-1,caf\xe9\n", "UTF-8"),
        (b"external_call_id,hs_call_title\ncall-1,a,b\ncall-2,c,d\n", "malformed"),
        (b"PAR1 but not really parquet", "Parquet"),
    ],
)
def test_unusable_files_are_refused_before_any_request(
    sandbox: SandboxServer, job_dir: Path, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    res = run_cli(["load", str(path), "--id-property", ID, "--job-dir", str(job_dir), "--no-progress"],
                  env=cli_env(sandbox))
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") <= 2 and "Traceback" not in res.output
    assert message.lower() in res.output.lower(), res.output
    assert sandbox.counters()["requests_total"] == 0
    assert list(job_dir.iterdir()) == []  # nothing to resume, nothing left behind
