"""Correct at the edges: one regression test per defect an outside review reproduced.

Each test is named for the behaviour it pins, and each failed on the code before its fix
(issue "Correct at the edges", items 1-15). They go through the command line or the
library's public functions; the HubSpot they talk to is the sandbox, or, where the
sandbox cannot misbehave that way, `tests.fake_hubspot` plugged in at httpx's seam.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bulkload import api
from bulkload.config import Connection, JobConfig, Tuning, check_base_url
from bulkload.errors import InputError, StopResumable
from bulkload.journal import journal_path
from bulkload.pipeline import Runtime
from bulkload.sandbox import SandboxConfig, SandboxServer
from bulkload.source import csv_reader
from tests.conftest import ROOT, TOKEN, cli_env, good_row, run_cli, write_csv
from tests.fake_hubspot import FakeHubSpot, Passthrough

ID = "external_call_id"
NOWHERE = "http://127.0.0.1:9"  # the fake transport answers; nothing listens here


def _cid(i: int) -> str:
    return f"call-{i:06d}"


def _journal(job_dir: Path, job_id: str) -> Path:
    return journal_path(job_dir, job_id)


def _status(job_dir: Path, job_id: str) -> dict[str, Any]:
    res = run_cli(["status", job_id, "--job-dir", str(job_dir), "--json"])
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def _load_args(src: Path, job_dir: Path, job_id: str, *extra: str) -> list[str]:
    return ["load", str(src), "--id-property", ID, "--job-dir", str(job_dir), "--job-id", job_id,
            "--no-progress", *extra]


def _report_rows(job_dir: Path, job_id: str, tmp_path: Path, *extra: str) -> list[dict[str, Any]]:
    out = tmp_path / f"{job_id}-report.jsonl"
    res = run_cli(["report", job_id, "--job-dir", str(job_dir), "--format", "jsonl", "-o", str(out), *extra])
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]


def _fake_load(src: Path, job_dir: Path, fake: httpx.BaseTransport, job_id: str = "j",
               tuning: Tuning | None = None) -> api.RunResult:
    return api.load(JobConfig(source=src, id_property=ID), Connection(NOWHERE, TOKEN), job_dir=job_dir,
                    job_id=job_id, tuning=tuning or Tuning(concurrency=1), runtime=Runtime(transport=fake))


@pytest.fixture
def sb() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=100_000)) as server:
        yield server


# ---- 1. resume never re-sends a done batch --------------------------------------------------


def test_resume_never_resends_a_done_batch_that_spans_a_chunk_boundary(
    sb: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    # 17,000 rows: batch 164 (rows 16,301-16,400) spans the send pass's first chunk boundary
    # (16,384 rows). The journal is made to say what a stop leaves when batch 1 stalled in
    # backoff while batches 2-164 finished: batch 1 without its outcome, nothing after 164
    # claimed. The resume then reads from the top, and batch 164 is the last one it knows.
    rows = [good_row(i) for i in range(1, 17_001)]
    rows[16_390 - 1]["hs_call_status"] = "DONE"  # batch 164 is partial...
    src = write_csv(tmp_path / "calls.csv", rows)
    env = cli_env(sb)
    assert run_cli(_load_args(src, job_dir, "big"), env).exit_code == 1
    fixed = write_csv(tmp_path / "fixed.csv", [dict(rows[16_390 - 1], hs_call_status="COMPLETED")])
    res = run_cli(["retry", "big", "--job-dir", str(job_dir), "--from", str(fixed), "--no-progress"], env)
    assert res.exit_code == 0, res.output  # ...until retry resolves its one bad row
    con = sqlite3.connect(_journal(job_dir, "big"))
    with con:
        con.execute("UPDATE batches SET status = 'in_flight' WHERE batch_no = 1")
        con.execute("DELETE FROM batches WHERE batch_no > 164")
        con.execute("UPDATE job SET state = 'paused'")
    con.close()
    before = sb.counters()["writes_per_id"]

    res = run_cli(["resume", "big", "--job-dir", str(job_dir), "--no-progress"], env)

    assert res.exit_code == 0, res.output
    writes = sb.counters()["writes_per_id"]
    assert [i for i in range(16_301, 16_401) if writes[_cid(i)] != before[_cid(i)]] == []  # not sent again
    assert all(writes[_cid(i)] == before[_cid(i)] + 1 for i in range(1, 101))  # batch 1 was
    st = _status(job_dir, "big")
    assert st["rows"]["failed"] == 0 and st["rows"]["upserted"] == 17_000
    assert st["state"] == "completed"


# ---- 2. a source that changes after the scan -------------------------------------------------


def _change_after_scan(src: Path, change: Any) -> Runtime:
    def checkpoint(step: str) -> None:
        if step == "complete_scan":
            change(src)

    return Runtime(checkpoint=checkpoint)


def test_rows_appended_after_the_scan_pause_the_load_and_nothing_is_sent(
    sb: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 51)])
    original = src.read_bytes()

    def append(path: Path) -> None:
        extra = write_csv(tmp_path / "extra.csv", [good_row(i) for i in range(20, 51)])
        with path.open("ab") as f:
            f.write(extra.read_bytes().split(b"\n", 1)[1])  # the rows, without a header

    with pytest.raises(StopResumable) as stopped:
        api.load(JobConfig(source=src, id_property=ID), Connection(sb.base_url, TOKEN), job_dir=job_dir,
                 job_id="grow", runtime=_change_after_scan(src, append))
    assert stopped.value.exit_code == 75
    assert "changed" in str(stopped.value)
    assert sb.store_records(ID) == {}  # no row read after the change was sent
    st = _status(job_dir, "grow")
    assert st["state"] == "paused" and st["rows"]["total"] == 50 and st["rows"]["upserted"] == 0

    res = run_cli(["resume", "grow", "--job-dir", str(job_dir), "--no-progress"], cli_env(sb))
    assert res.exit_code == 2  # still the other file: refused
    src.write_bytes(original)  # put back as it was scanned
    res = run_cli(["resume", "grow", "--job-dir", str(job_dir), "--no-progress"], cli_env(sb))
    assert res.exit_code == 0, res.output
    st = _status(job_dir, "grow")
    assert st["rows"]["total"] == 50 and st["rows"]["upserted"] == 50 and st["rows"]["created"] == 50
    assert len(sb.store_records(ID)) == 50


def test_a_file_shrunk_after_the_scan_pauses_and_resumes_once_restored(
    sb: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 51)])
    original = src.read_bytes()

    def shrink(path: Path) -> None:
        path.write_bytes(original[: len(original) // 3])

    with pytest.raises(StopResumable):
        api.load(JobConfig(source=src, id_property=ID), Connection(sb.base_url, TOKEN), job_dir=job_dir,
                 job_id="shrink", runtime=_change_after_scan(src, shrink))
    src.write_bytes(original)
    res = run_cli(["resume", "shrink", "--job-dir", str(job_dir), "--no-progress"], cli_env(sb))
    assert res.exit_code == 0, res.output
    assert _status(job_dir, "shrink")["rows"]["upserted"] == 50


# ---- 3 and 7. answers that name no input ------------------------------------------------------


def _ten_rows(tmp_path: Path, **bad: dict[str, str]) -> Path:
    rows = [good_row(i) for i in range(1, 11)]
    for i, over in bad.items():
        rows[int(i.removeprefix("r")) - 1].update(over)
    return write_csv(tmp_path / "calls.csv", rows)


def test_errors_that_name_no_input_are_attributed_by_splitting_and_good_rows_land(
    job_dir: Path, tmp_path: Path
) -> None:
    src = _ten_rows(tmp_path, r3={"hs_call_status": "DONE"}, r7={"hs_call_status": "OOPS"})
    fake = FakeHubSpot(echo_trace_ids=False, echo_id_property=False, error_context=False)

    result = _fake_load(src, job_dir, fake)

    assert result.exit_code == 1
    rows = _status(job_dir, "j")["rows"]
    assert (rows["upserted"], rows["failed"], rows["created"], rows["updated"]) == (8, 2, 8, 0)
    failed = {r["sourceData"]["rowNumber"]: r for r in _report_rows(job_dir, "j", tmp_path)}
    assert set(failed) == {3, 7}
    assert {r["errorType"] for r in failed.values()} == {"INVALID_ENUM_PROPERTY"}
    assert failed[3]["invalidValue"] == "DONE" and failed[7]["invalidValue"] == "OOPS"
    assert set(fake.records) == {_cid(i) for i in range(1, 11)} - {_cid(3), _cid(7)}


def test_conflicts_that_name_only_the_existing_record_keep_their_diagnosis(job_dir: Path, tmp_path: Path) -> None:
    src = _ten_rows(tmp_path)
    fake = FakeHubSpot(error_context=False, conflict_ids=frozenset({_cid(4), _cid(8)}))

    assert _fake_load(src, job_dir, fake).exit_code == 1

    failed = {r["sourceData"]["rowNumber"]: r["errorType"] for r in _report_rows(job_dir, "j", tmp_path)}
    assert failed == {4: "CONFLICTING_UNIQUE_VALUE", 8: "CONFLICTING_UNIQUE_VALUE"}
    assert _status(job_dir, "j")["rows"]["upserted"] == 8


def test_created_counts_rows_whose_results_echo_neither_trace_id_nor_id(job_dir: Path, tmp_path: Path) -> None:
    src = _ten_rows(tmp_path)
    fake = FakeHubSpot(echo_trace_ids=False, echo_id_property=False)

    assert _fake_load(src, job_dir, fake).exit_code == 0

    rows = _status(job_dir, "j")["rows"]
    assert (rows["upserted"], rows["created"], rows["updated"]) == (10, 10, 0)


# ---- 4 and 5. answers about the request, not an input -----------------------------------------


def test_a_batch_wide_rejection_stops_the_job_at_the_first_answer(
    sb: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    # No schema scope, so the pre-flight cannot see that the id property is not unique.
    def refuse_properties(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and "/properties/" in request.url.path:
            return httpx.Response(403, json={"status": "error", "category": "MISSING_SCOPES",
                                             "message": "This app hasn't been granted all required scopes"})
        return None

    rows = [good_row(i) for i in range(1, 5_001)]
    src = write_csv(tmp_path / "calls.csv", rows)
    config = JobConfig(source=src, id_property="hs_call_title")
    with pytest.raises(InputError) as refused:
        api.load(config, Connection(sb.base_url, TOKEN), job_dir=job_dir, job_id="wide",
                 tuning=Tuning(concurrency=1), runtime=Runtime(transport=Passthrough(refuse_properties)))
    assert refused.value.exit_code == 2
    assert "non-unique" in str(refused.value)
    assert sb.counters()["requests_by_status"].get("400", 0) == 1  # one request, not 50
    assert not _journal(job_dir, "wide").exists()  # nothing was written: no job to resume


def test_a_vanished_endpoint_after_rows_were_written_pauses_instead_of_exit_2(
    job_dir: Path, tmp_path: Path
) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 501)])
    fake = FakeHubSpot(fail_request=(3, 404))

    with pytest.raises(StopResumable) as stopped:
        _fake_load(src, job_dir, fake)

    assert stopped.value.exit_code == 75
    st = _status(job_dir, "j")
    assert st["state"] == "paused" and "404" in st["paused_reason"]
    assert st["rows"]["upserted"] == 200 and st["rows"]["failed"] == 0


# ---- 6. rows without a usable id --------------------------------------------------------------


def test_every_failed_row_without_a_usable_id_is_its_own_report_record(
    sb: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    rows = [good_row(i) for i in range(1, 9)]
    for i in (2, 4, 6):
        rows[i - 1][ID] = " "
    src = write_csv(tmp_path / "calls.csv", rows)
    assert run_cli(_load_args(src, job_dir, "blank"), cli_env(sb)).exit_code == 1

    assert _status(job_dir, "blank")["rows"]["failed"] == 3
    report = _report_rows(job_dir, "blank", tmp_path)
    assert sorted(r["sourceData"]["rowNumber"] for r in report) == [2, 4, 6]
    assert {r["errorType"] for r in report} == {"MISSING_ID_VALUE"}
    res = run_cli(["report", "blank", "--job-dir", str(job_dir), "--summary", "--json"])
    cards = {c["category"]: c for c in json.loads(res.stdout)["categories"]}
    assert cards["SOURCE_DATA"]["errors"] == 3 and cards["SOURCE_DATA"]["affectedRows"] == 3


# ---- 8. a very long cell ----------------------------------------------------------------------


def test_one_long_cell_is_one_failed_row_and_the_rest_loads(sb: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    rows = [good_row(i) for i in range(1, 21)]
    rows[6]["hs_call_body"] = "x" * (600 * 1024)
    src = write_csv(tmp_path / "calls.csv", rows)

    res = run_cli(_load_args(src, job_dir, "long"), cli_env(sb))

    assert res.exit_code == 1, res.output
    rows_ = _status(job_dir, "long")["rows"]
    assert (rows_["upserted"], rows_["failed"]) == (19, 1)
    [failed] = _report_rows(job_dir, "long", tmp_path)
    assert failed["errorType"] == "VALUE_TOO_LONG"
    assert (failed["sourceData"]["rowNumber"], failed["sourceData"]["lineNumber"]) == (7, 8)


# ---- 9. the scan's memory does not grow with repeated ids --------------------------------------


def _peak_of_dry_run(src: Path) -> int:
    tracemalloc.start()
    try:
        res = run_cli(["load", str(src), "--id-property", ID, "--dry-run", "--json"])
        assert res.exit_code == 0, res.output
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_send_pass_does_not_hold_every_repeated_id_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every id twice, in a file and in one three times its size: 12,000 and 36,000 repeated
    # ids. Memory flat in the file means the larger costs what the smaller does. The CSV
    # reader's read-ahead (bounded, but larger on a larger file) is made small so that it
    # does not hide the difference this is about.
    monkeypatch.setattr(csv_reader, "CSV_BLOCK_SIZE", 1 << 14)

    def file(n: int) -> Path:
        return write_csv(tmp_path / f"repeated-{n}.csv", [good_row(1 + i % (n // 2)) for i in range(n)])

    small = _peak_of_dry_run(file(24_000))
    large = _peak_of_dry_run(file(72_000))
    # A dict of the 24,000 more repeated ids would cost ~4 MB.
    assert large - small < 1_500_000, (small, large)


# ---- 10. one line, not a traceback -------------------------------------------------------------


def _one_line_error(res: Any) -> str:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), lines[0]
    return str(lines[0])


@pytest.fixture
def finished_job(sb: SandboxServer, job_dir: Path, tmp_path: Path) -> str:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 31)])
    assert run_cli(_load_args(src, job_dir, "ok"), cli_env(sb)).exit_code == 0
    return "ok"


def test_a_journal_that_is_not_sqlite_is_refused_in_one_line_and_jobs_still_lists_the_others(
    finished_job: str, job_dir: Path
) -> None:
    bad = _journal(job_dir, "junk")
    bad.write_bytes(b"this is not a database\n" * 100)
    before = bad.read_bytes()
    line = _one_line_error(run_cli(["status", "junk", "--job-dir", str(job_dir)]))
    assert "junk" in line
    assert bad.read_bytes() == before
    res = run_cli(["jobs", "--job-dir", str(job_dir), "--json"])
    assert res.exit_code == 0
    assert [e["job_id"] for e in json.loads(res.stdout)] == [finished_job]


def test_a_truncated_journal_is_refused_in_one_line(finished_job: str, job_dir: Path) -> None:
    path = _journal(job_dir, finished_job)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for args in (["status", finished_job], ["report", finished_job, "--summary"], ["resume", finished_job]):
        res = run_cli([*args, "--job-dir", str(job_dir)], {"HUBSPOT_ACCESS_TOKEN": TOKEN})
        _one_line_error(res)
    assert path.read_bytes() == data[: len(data) // 2]  # never overwritten


def test_a_journal_from_a_newer_bulkload_is_refused_and_left_alone(finished_job: str, job_dir: Path) -> None:
    path = _journal(job_dir, finished_job)
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 999")
    con.close()
    before = path.read_bytes()
    for args in (["status", finished_job], ["resume", finished_job]):
        line = _one_line_error(run_cli([*args, "--job-dir", str(job_dir)], {"HUBSPOT_ACCESS_TOKEN": TOKEN}))
        assert "newer" in line
    assert path.read_bytes() == before
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 999
    con.close()


def _as_nobody(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    """Run bulkload as an unprivileged user: root ignores file modes."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    return subprocess.run([*prefix, sys.executable, "-m", "bulkload", *args], cwd=home, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home)})


def test_a_read_only_job_dir_still_serves_status_jobs_and_reports(finished_job: str, job_dir: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="bulkload-ro-", dir="/tmp"))
    try:
        ro_dir = home / "jobs"
        shutil.copytree(job_dir, ro_dir)
        out_dir = home / "out"
        out_dir.mkdir()
        os.chmod(home, 0o755)
        os.chmod(out_dir, 0o777)
        for p in ro_dir.iterdir():
            os.chmod(p, 0o444)
        os.chmod(ro_dir, 0o555)
        before = {p.name: p.read_bytes() for p in ro_dir.iterdir()}
        for args in (["status", finished_job, "--json"], ["jobs"],
                     ["report", finished_job, "-o", str(out_dir / "r.csv")],
                     ["report", finished_job, "--summary"]):
            res = _as_nobody([*args, "--job-dir", str(ro_dir)], home)
            assert res.returncode == 0, (args, res.stderr)
            assert "Traceback" not in res.stderr
        assert (out_dir / "r.csv").exists()
        assert {p.name: p.read_bytes() for p in ro_dir.iterdir()} == before
    finally:
        os.chmod(home / "jobs", 0o755)
        shutil.rmtree(home)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--job-dir", "{file}/jobs"], "job dir"),
        (["--token-file", "{latin1}"], "UTF-8"),
        (["--base-url", "http://[::1"], "base URL"),
        (["--timeout", "1e309"], "timeout"),
    ],
    ids=["job-dir-under-a-file", "token-file-not-utf8", "broken-ipv6-url", "infinite-timeout"],
)
def test_bad_settings_are_one_line_errors_and_change_nothing(args: list[str], needle: str, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(1)])
    a_file = tmp_path / "plain-file"
    a_file.write_text("x")
    latin1 = tmp_path / "token.txt"
    latin1.write_bytes(b"pat-na1-\xe9\xe8")
    job_dir = tmp_path / "jobs"
    filled = [a.format(file=a_file, latin1=latin1) for a in args]
    extra = [] if "--job-dir" in filled else ["--job-dir", str(job_dir)]
    env = {"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_BASE_URL": NOWHERE}
    res = run_cli(["load", str(src), "--id-property", ID, "--max-attempts", "1", *extra, *filled], env)
    line = _one_line_error(res)
    assert needle.lower() in line.lower()
    assert not job_dir.exists()


def test_a_full_disk_pauses_the_load_with_a_clear_line(job_dir: Path, tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes the journal's writes fail as on a full disk once it has grown a little.
    src = tmp_path / "calls.csv"
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=100_000)) as server:
        script = (
            "import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))\n"
            "from bulkload.cli import main\n"
            "sys.argv = ['bulkload', *sys.argv[1:]]\n"
            "main()\n"
        )
        rows = [good_row(i, hs_call_status="DONE" if i % 3 == 0 else "COMPLETED", hs_call_body="n" * 2000)
                for i in range(1, 4001)]
        write_csv(src, rows)  # a third of the rows fail: their source data fills the journal
        proc = subprocess.run(
            [sys.executable, "-c", script, *_load_args(src, job_dir, "full")], cwd=ROOT, capture_output=True,
            text=True, timeout=120, env={**os.environ, **cli_env(server)})
    assert proc.returncode == 75, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "disk" in proc.stderr.lower() or "space" in proc.stderr.lower()
    st = _status(job_dir, "full")  # the journal is consistent and readable
    rows_ = st["rows"]
    assert rows_["upserted"] + rows_["failed"] + rows_["superseded"] + rows_["pending"] == rows_["total"] == 4000
    assert st["state"] == "paused"


# ---- 11. one job, one process -----------------------------------------------------------------


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bulkload", *args], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_state(job_dir: Path, job_id: str, state: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if _journal(job_dir, job_id).exists():
            res = run_cli(["status", job_id, "--job-dir", str(job_dir), "--json"])
            if res.exit_code == 0 and json.loads(res.stdout)["state"] == state and \
                    json.loads(res.stdout)["api_calls"] > 1:
                return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {state}")


def test_a_second_process_on_a_live_job_is_refused_naming_the_holder_and_a_dead_one_does_not_block(
    job_dir: Path, tmp_path: Path
) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 2001)])
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=100_000, latency_ms=300)) as server:
        env = cli_env(server)
        holder = _spawn([*_load_args(src, job_dir, "held"), "--concurrency", "1"], env)
        try:
            _wait_for_state(job_dir, "held", "running", holder)
            for args in (["resume", "held"], ["retry", "held"], _load_args(src, job_dir, "held")[:-1]):
                if "--job-dir" not in args:
                    args = [*args, "--job-dir", str(job_dir)]
                res = run_cli([*args, "--no-progress"], env)
                assert res.exit_code == 2, (args, res.output)
                assert str(holder.pid) in res.stderr, res.stderr
        finally:
            holder.kill()
            holder.wait()
        server.configure(latency_ms=0)
        res = run_cli(["resume", "held", "--job-dir", str(job_dir), "--no-progress"], env)
        assert res.exit_code == 0, res.output


# ---- 12. states in the contract, hints that run as printed ---------------------------------------


CONTRACT_STATES = {"running", "paused", "completed", "completed_with_errors"}


def test_status_during_the_scan_shows_a_state_of_the_contract(sb: SandboxServer, job_dir: Path,
                                                             tmp_path: Path) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 11)])
    seen: list[str] = []

    def checkpoint(step: str) -> None:
        if step == "create_job":
            seen.append(api.status("scan", job_dir=job_dir)["state"])

    api.load(JobConfig(source=src, id_property=ID), Connection(sb.base_url, TOKEN), job_dir=job_dir,
             job_id="scan", runtime=Runtime(checkpoint=checkpoint))
    assert seen and set(seen) <= CONTRACT_STATES


def test_printed_resume_and_report_hints_carry_a_non_default_job_dir(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 301)])
    job_dir = tmp_path / "elsewhere" / "jobs"
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=None, daily_limit=2)) as server:
        res = run_cli(_load_args(src, job_dir, "hint", "--json"), cli_env(server))
        assert res.exit_code == 75
        hint = f"bulkload resume hint --job-dir {job_dir.resolve()}"
        assert hint in res.stderr
        assert json.loads(res.stdout.strip().splitlines()[-1])["resume_command"] == hint
        status_text = run_cli(["status", "hint", "--job-dir", str(job_dir)]).stdout
        assert hint in status_text


# ---- 13. the job keeps its limits -----------------------------------------------------------------


def test_resume_keeps_the_daily_budget_the_load_was_given(sb: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 3001)])
    env = cli_env(sb)
    res = run_cli(_load_args(src, job_dir, "budget", "--daily-budget", "15", "--batch-size", "10"), env)
    assert res.exit_code == 75
    spent = sb.counters()["requests_total"]
    assert spent <= 15

    res = run_cli(["resume", "budget", "--job-dir", str(job_dir), "--no-progress"], env)

    assert res.exit_code == 75
    assert sb.counters()["requests_total"] == spent  # the same 24 h: nothing more may be spent
    st = _status(job_dir, "budget")
    assert st["tuning"]["daily_budget"] == 15 and st["tuning"]["batch_size"] == 10


# ---- 14. Ctrl-C with a request stalled ---------------------------------------------------------------


def test_ctrl_c_exits_within_the_grace_period_though_a_request_is_stalled(job_dir: Path, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 201)])
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=100_000, fault_probabilities={"slow": 1.0},
                                     slow_response_s=600, lost_write_applied=0.0)) as server:
        proc = _spawn([*_load_args(src, job_dir, "stall"), "--timeout", "300"], cli_env(server))
        deadline = time.monotonic() + 30
        while server.counters()["requests_total"] < 2:  # the properties read, then a stalled upsert
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("Ctrl-C did not stop the load") from None
        took = time.monotonic() - started
        assert proc.returncode == 75, proc.communicate()
        assert took < 15, took
        server.configure(fault_probabilities={})
        res = run_cli(["resume", "stall", "--job-dir", str(job_dir), "--no-progress"], cli_env(server))
        assert res.exit_code == 0, res.output


# ---- 15. defence in depth --------------------------------------------------------------------------


def test_the_token_is_redacted_from_per_input_error_messages(job_dir: Path, tmp_path: Path) -> None:
    src = _ten_rows(tmp_path, r2={"hs_call_status": "DONE"})
    fake = FakeHubSpot(token_in_messages=TOKEN)
    assert _fake_load(src, job_dir, fake).exit_code == 1
    for p in job_dir.iterdir():
        assert TOKEN.encode() not in p.read_bytes(), p
    [row] = _report_rows(job_dir, "j", tmp_path)
    assert TOKEN not in json.dumps(row)


def test_a_new_job_dir_is_private(sb: SandboxServer, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(1)])
    job_dir = tmp_path / "new-jobs"
    assert run_cli(_load_args(src, job_dir, "p"), cli_env(sb)).exit_code == 0
    assert stat.S_IMODE(job_dir.stat().st_mode) == 0o700


def test_cells_starting_with_nul_are_neutralised_in_csv_reports(sb: SandboxServer, job_dir: Path,
                                                                tmp_path: Path) -> None:
    # A CSV source cannot hold NUL (it is refused as not text), a Parquet source can.
    row = good_row(1, hs_call_status="DONE", hs_call_title="\0=cmd|' /C calc'!A0")
    src = tmp_path / "calls.parquet"
    pq.write_table(pa.Table.from_pylist([row]), src)
    assert run_cli(_load_args(src, job_dir, "nul"), cli_env(sb)).exit_code == 1
    out = tmp_path / "r.csv"
    assert run_cli(["report", "nul", "--job-dir", str(job_dir), "-o", str(out)]).exit_code == 0
    text = out.read_text(encoding="utf-8-sig")
    assert "'\0=cmd" in text and ",\0=cmd" not in text


@pytest.mark.parametrize(("url", "ok"), [
    ("http://127.0.0.1:9", True), ("http://localhost:9", True), ("http://[::1]:9", True),
    ("http://127.8.9.10:9", True), ("https://evil.example", True),
    ("http://evil.localhost:9", False), ("http://127.0.0.1.nip.io:9", False), ("http://localhost.:9", False),
])
def test_plain_http_only_to_literal_loopback_or_localhost(url: str, ok: bool) -> None:
    try:
        check_base_url(url)
    except InputError as e:
        assert not ok, e
        assert "http" in str(e)
    else:
        assert ok
