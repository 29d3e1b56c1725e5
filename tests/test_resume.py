"""Resumable jobs: a crash between any two journal steps, Ctrl-C and SIGTERM, a changed
source, and resume of finished or unknown jobs.

The crash tests follow dlt's dummy-destination tests: `Runtime(checkpoint=...)` is called
after every committed journal transition, and raising a BaseException there is a process
dying at that instant. Each test then resumes and checks the sandbox's store, the counts,
and that the journal holds every row exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkload import api
from bulkload.config import Connection, JobConfig, Tuning
from bulkload.journal import Journal, journal_path
from bulkload.pipeline import Runtime
from bulkload.sandbox import SandboxConfig, SandboxServer
from tests.conftest import (
    ROOT,
    TOKEN,
    Expected,
    assert_counts_final,
    assert_store_matches,
    check_journal,
    cli_env,
    expected_outcome,
    generate_calls,
    good_row,
    run_cli,
    write_csv,
)

ID = "external_call_id"
ROWS = 1_200
BATCH = 50
CONCURRENCY = 2
TUNING = Tuning(concurrency=CONCURRENCY)
JOB = "resumable"


class SimulatedCrash(BaseException):
    """The process dies here. Not an Exception: no `except Exception` may swallow it."""


def crash_at(step: str, n: int, *, stop_at: tuple[str, int] | None = None,
             stop: Any = None) -> Callable[[str], None]:
    """A checkpoint hook that raises SimulatedCrash at the `n`th `step` (and, optionally,
    sets the run's stop event at the `stop_at` step, as a first Ctrl-C would)."""
    seen: Counter[str] = Counter()

    def checkpoint(name: str) -> None:
        seen[name] += 1
        if stop_at is not None and (name, seen[name]) == stop_at:
            stop.set()
        if name == step and seen[name] == n:
            raise SimulatedCrash(f"{step} #{n}")

    return checkpoint


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Expected]:
    """1,200 generated rows: the documented bad rows, 2 % more bad rows, 3 % repeated ids."""
    out = tmp_path_factory.mktemp("data")
    path, manifest = generate_calls(out, ROWS, seed=5, bad_rate=0.02, dup_rate=0.03)
    expected = expected_outcome(path, manifest)
    assert expected.failed and expected.superseded  # the file exercises both
    return path, expected


@pytest.fixture
def source(generated: tuple[Path, Expected], tmp_path: Path) -> Path:
    """A private copy: the job is bound to its file, and some tests change it."""
    return Path(shutil.copy(generated[0], tmp_path / "calls.csv"))


@pytest.fixture
def expected(generated: tuple[Path, Expected]) -> Expected:
    return generated[1]


@pytest.fixture
def sb() -> Iterator[SandboxServer]:
    # A high limit, announced in the rate headers: the loader paces to it, so it never waits.
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=100_000)) as server:
        yield server


def conn_of(sb: SandboxServer) -> Connection:
    return Connection(sb.base_url, TOKEN)


def config_of(source: Path) -> JobConfig:
    return JobConfig(source=source, id_property=ID, batch_size=BATCH)


def load_until_crash(source: Path, sb: SandboxServer, job_dir: Path, rt: Runtime) -> None:
    with pytest.raises(SimulatedCrash):
        api.load(config_of(source), conn_of(sb), job_dir=job_dir, job_id=JOB, tuning=TUNING, runtime=rt)


def resume_until_crash(sb: SandboxServer, job_dir: Path, rt: Runtime) -> None:
    with pytest.raises(SimulatedCrash):
        api.resume(JOB, conn_of(sb), job_dir=job_dir, tuning=TUNING, runtime=rt)


def assert_accounted(job_dir: Path) -> dict[str, Any]:
    """Mid-job: rows are upserted, failed, superseded or pending, never more than the total."""
    st = api.status(JOB, job_dir=job_dir)
    rows = st["rows"]
    assert rows["upserted"] + rows["failed"] + rows["superseded"] + rows["pending"] == rows["total"]
    assert st["state"] not in ("completed", "completed_with_errors") or rows["pending"] == 0
    return st


def resume_and_check(sb: SandboxServer, job_dir: Path, expected: Expected, crashes: int) -> None:
    result = api.resume(JOB, conn_of(sb), job_dir=job_dir, tuning=TUNING)
    assert result.exit_code == 1  # the file has failed rows by design
    assert_counts_final(api.status(JOB, job_dir=job_dir), expected)
    failed, superseded = check_journal(journal_path(job_dir, JOB))
    assert failed == expected.failed
    assert superseded == expected.superseded
    assert_store_matches(sb.store_records(ID), expected)
    writes = sb.counters()["writes_per_id"]
    assert set(writes) == set(expected.store)
    # A crash can cost a re-send of the batches in flight, and nothing more.
    resent = sum(w - 1 for w in writes.values())
    assert resent <= crashes * CONCURRENCY * BATCH, resent


LAST = -1  # the turn that records the last outcome: every batch is finished after it


def crash_at_last_outcome(job_dir: Path) -> Callable[[str], None]:
    """Die right after the turn that leaves no batch pending (how many turns a run takes
    depends on timing, so it is found by looking at the journal, not by counting)."""

    def checkpoint(name: str) -> None:
        if name == "record_turn" and api.status(JOB, job_dir=job_dir)["batches"]["pending"] == 0:
            raise SimulatedCrash("record_turn: the last outcome")

    return checkpoint

# Each is one committed transition of the journal (writes.py names them): distinct instants.
CRASH_POINTS = [
    ("create_job", 1),  # before the scan: scan_complete=0, resume scans again
    ("complete_scan", 1),  # scanned, nothing claimed
    ("start_run", 1),
    ("record_turn", 1),  # the properties read counted, nothing claimed
    ("record_turn", 2),  # the first claims
    ("record_turn", 3),  # outcomes and claims
    ("record_turn", 5),
    ("record_turn", 9),
    ("record_turn", LAST),
    ("finish_job", 1),  # the very end: the state flip itself
]


@pytest.mark.parametrize(("step", "n"), CRASH_POINTS, ids=[f"{s}-{'last' if n == LAST else n}" for s, n in CRASH_POINTS])
def test_crash_between_journal_steps_then_resume(
    step: str, n: int, source: Path, expected: Expected, sb: SandboxServer, job_dir: Path
) -> None:
    hook = crash_at_last_outcome(job_dir) if n == LAST else crash_at(step, n)
    load_until_crash(source, sb, job_dir, Runtime(checkpoint=hook))
    journal = api.open_journal(job_dir, JOB)
    try:
        scanned = journal.job().scan_complete
    finally:
        journal.close()
    assert scanned == (step != "create_job")
    if scanned:
        mid = assert_accounted(job_dir)
        assert mid["rows"]["total"] == expected.total
    resume_and_check(sb, job_dir, expected, crashes=1)


def test_crash_in_every_run_then_resume(source: Path, expected: Expected, sb: SandboxServer, job_dir: Path) -> None:
    """Crashes pile up: load, then two resumes, die at different steps; the next resume finishes."""
    load_until_crash(source, sb, job_dir, Runtime(checkpoint=crash_at("record_turn", 3)))
    resume_until_crash(sb, job_dir, Runtime(checkpoint=crash_at("record_turn", 2)))
    before = assert_accounted(job_dir)["rows"]
    resume_until_crash(sb, job_dir, Runtime(checkpoint=crash_at("start_run", 1)))
    assert assert_accounted(job_dir)["rows"] == before  # nothing happened after the state flip
    resume_until_crash(sb, job_dir, Runtime(checkpoint=crash_at("record_turn", 5)))
    resume_and_check(sb, job_dir, expected, crashes=4)


def test_crash_while_pausing_after_a_stop_request(
    source: Path, expected: Expected, sb: SandboxServer, job_dir: Path
) -> None:
    """Ctrl-C at the third claim, then death while the journal records the pause."""
    rt = Runtime()
    rt.checkpoint = crash_at("pause", 1, stop_at=("record_turn", 3), stop=rt.stop)
    load_until_crash(source, sb, job_dir, rt)
    st = assert_accounted(job_dir)
    assert st["state"] == "paused"  # the pause was committed; the crash came after it
    assert st["rows"]["pending"] > 0
    resume_and_check(sb, job_dir, expected, crashes=1)


def test_a_load_killed_before_its_job_row_exists_can_still_be_finished(
    source: Path, expected: Expected, sb: SandboxServer, job_dir: Path
) -> None:
    Journal.create(journal_path(job_dir, JOB)).close()  # what a kill in that window leaves behind
    args = ["--job-dir", str(job_dir), "--no-progress"]
    res = run_cli(["resume", JOB, *args], env=cli_env(sb))
    if res.exit_code == 2:  # nothing to resume: then starting it again must work
        res = run_cli(["load", str(source), "--id-property", ID, "--job-id", JOB, "--batch-size", str(BATCH),
                       *args], env=cli_env(sb))
    assert res.exit_code == 1, res.output
    assert_store_matches(sb.store_records(ID), expected)


# ---- the command line: changed source, finished and unknown jobs ---------------------------


def paused_job(source: Path, sb: SandboxServer, job_dir: Path) -> dict[str, Any]:
    load_until_crash(source, sb, job_dir, Runtime(checkpoint=crash_at("record_turn", 4)))
    st = api.status(JOB, job_dir=job_dir)
    assert st["rows"]["pending"] > 0
    return st


def _append_row(path: Path) -> None:
    with path.open("a", encoding="utf-8", newline="") as f:
        f.write("call-9999999,2024-01-01T00:00:00Z,appended,,INBOUND,COMPLETED,0,,,,,\n")


def _edit_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b"INBOUND", len(data) // 2)  # a row still pending
    data[at] = ord("X")  # same size, different content
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("change", "said"),
    [(_append_row, "size"), (_edit_a_byte, "content hash differs"), (Path.unlink, "no longer exists")],
    ids=["row-appended", "byte-edited-same-size", "file-removed"],
)
def test_resume_refuses_a_changed_source_and_sends_nothing(
    change: Callable[[Path], None], said: str, source: Path, expected: Expected, sb: SandboxServer,
    job_dir: Path, tmp_path: Path,
) -> None:
    before = paused_job(source, sb, job_dir)
    original = source.read_bytes()
    change(source)
    requests = sb.counters()["requests_total"]
    res = run_cli(["resume", JOB, "--job-dir", str(job_dir), "--no-progress"], env=cli_env(sb))
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    assert lines[0].startswith("error:") and str(source) in lines[0] and said in lines[0]
    assert sb.counters()["requests_total"] == requests  # nothing was sent
    after = api.status(JOB, job_dir=job_dir)
    assert after["rows"] == before["rows"] and after["state"] == "paused"
    if said == "size":
        assert f"{len(original):,}" in lines[0]  # says from what size to what
    if said == "content hash differs":
        assert "size" not in lines[0]  # same size: the hash alone gives it away
    # Put the file back as it was: the job resumes and finishes.
    source.write_bytes(original)
    resume_and_check(sb, job_dir, expected, crashes=1)


def test_resume_of_a_completed_job_sends_nothing_and_repeats_the_exit_code(
    source: Path, sb: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    clean = write_csv(tmp_path / "clean.csv", [good_row(i) for i in range(1, 121)])
    for path, job_id, code in ((clean, "clean", 0), (source, "with-failures", 1)):
        args = ["--job-dir", str(job_dir), "--no-progress", "--json"]
        res = run_cli(["load", str(path), "--id-property", ID, "--job-id", job_id, *args], env=cli_env(sb))
        assert res.exit_code == code, res.output
        loaded = json.loads(res.stdout.strip().splitlines()[-1])
        requests = sb.counters()["requests_total"]
        res = run_cli(["resume", job_id, *args], env=cli_env(sb))
        assert res.exit_code == code, res.output
        resumed = json.loads(res.stdout.strip().splitlines()[-1])
        assert sb.counters()["requests_total"] == requests
        assert resumed["state"] == loaded["state"] and resumed["rows"] == loaded["rows"]
        assert resumed["exit_code"] == code


@pytest.mark.parametrize("make_dir", [True, False], ids=["job-dir-exists", "no-job-dir"])
def test_resume_of_an_unknown_job_is_one_clear_line(make_dir: bool, sb: SandboxServer, tmp_path: Path) -> None:
    job_dir = tmp_path / "jobs"
    if make_dir:
        job_dir.mkdir()
    res = run_cli(["resume", "no-such-job", "--job-dir", str(job_dir), "--no-progress"], env=cli_env(sb))
    assert res.exit_code == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-job" in lines[0] and lines[0].startswith("error:"), res.stderr
    assert "Traceback" not in res.stderr
    assert sb.counters()["requests_total"] == 0


# ---- signals, in a real process -----------------------------------------------------------


def batch_states(path: Path) -> Counter[str]:
    """Batch statuses in a journal another process is writing (empty until it exists)."""
    if not path.exists():
        return Counter()
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return Counter(dict(con.execute("SELECT status, COUNT(*) FROM batches GROUP BY status").fetchall()))
        finally:
            con.close()
    except sqlite3.Error:
        return Counter()


def wait_for(what: str, ok: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert proc.poll() is None, f"the loader exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def start_load(source: Path, sb: SandboxServer, job_dir: Path, stderr: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **cli_env(sb)}
    with stderr.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "bulkload", "load", str(source), "--id-property", ID, "--job-id", JOB,
             "--job-dir", str(job_dir), "--batch-size", "20", "--concurrency", str(CONCURRENCY), "--no-progress"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
        )


def assert_paused_with_hint(job_dir: Path) -> None:
    st = json.loads(run_cli(["status", JOB, "--job-dir", str(job_dir), "--json"]).stdout)
    assert st["state"] == "paused"
    hint = f"bulkload resume {JOB} --job-dir {job_dir.resolve()}"  # runs as printed from anywhere
    assert st["resume_command"] == hint
    assert st["rows"]["pending"] > 0
    assert st["rows"]["upserted"] + st["rows"]["failed"] + st["rows"]["superseded"] + st["rows"]["pending"] \
        == st["rows"]["total"]
    text = run_cli(["status", JOB, "--job-dir", str(job_dir)])
    assert text.exit_code == 0 and f"Resume with: {hint}" in text.stdout
    jobs = run_cli(["jobs", "--job-dir", str(job_dir)])
    assert jobs.exit_code == 0
    assert JOB in jobs.stdout and "paused" in jobs.stdout and hint in jobs.stdout
    entries = json.loads(run_cli(["jobs", "--job-dir", str(job_dir), "--json"]).stdout)
    assert [(e["job_id"], e["state"], e["resume_command"]) for e in entries] == \
        [(JOB, "paused", hint)]


def resume_cli_and_check(sb: SandboxServer, job_dir: Path, expected: Expected) -> None:
    sb.configure(latency_ms=0)
    res = run_cli(["resume", JOB, "--job-dir", str(job_dir), "--no-progress", "--json"], env=cli_env(sb))
    assert res.exit_code == 1, res.output
    assert_counts_final(json.loads(res.stdout.strip().splitlines()[-1]), expected)
    failed, superseded = check_journal(journal_path(job_dir, JOB))
    assert failed == expected.failed and superseded == expected.superseded
    assert_store_matches(sb.store_records(ID), expected)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_pauses_the_job_and_resume_finishes_it(
    signum: signal.Signals, source: Path, expected: Expected, sb: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    sb.configure(latency_ms=250)  # 60 batches, two at a time: a run of several seconds
    stderr = tmp_path / "stderr.txt"
    proc = start_load(source, sb, job_dir, stderr)
    try:
        journal = journal_path(job_dir, JOB)
        wait_for("two finished batches", lambda: batch_states(journal)["done"] + batch_states(journal)["partial"] >= 2,
                 proc)
        proc.send_signal(signum)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = stderr.read_text(encoding="utf-8")
    assert code == 75, err
    # The hint carries the job dir: it must run as printed from any directory.
    assert f"Interrupted. Resume with: bulkload resume {JOB} --job-dir {job_dir.resolve()}" in err.splitlines(), err
    assert "Traceback" not in err
    assert_paused_with_hint(job_dir)
    resume_cli_and_check(sb, job_dir, expected)


def test_a_second_sigint_stops_at_once_and_the_job_still_resumes(
    source: Path, expected: Expected, sb: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    # Answers take 3 s: the first Ctrl-C would wait for them; the second must not.
    sb.configure(latency_ms=3_000)
    stderr = tmp_path / "stderr.txt"
    proc = start_load(source, sb, job_dir, stderr)
    try:
        journal = journal_path(job_dir, JOB)
        wait_for("a batch in flight", lambda: batch_states(journal)["in_flight"] >= 1, proc)
        proc.send_signal(signal.SIGINT)
        wait_for("the first Ctrl-C's notice", lambda: "Stopping" in stderr.read_text(encoding="utf-8"), proc)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        written = sb.counters()["inputs_written"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = stderr.read_text(encoding="utf-8")
    assert code == 75, err
    # The hint carries the job dir: it must run as printed from any directory.
    assert f"Interrupted. Resume with: bulkload resume {JOB} --job-dir {job_dir.resolve()}" in err.splitlines(), err
    assert "Traceback" not in err
    # It did not wait for its requests: it was gone before the sandbox wrote a single input,
    # and their batches are still claimed with no outcome.
    assert written == 0
    assert batch_states(journal_path(job_dir, JOB))["in_flight"] >= 1
    assert_paused_with_hint(job_dir)
    resume_cli_and_check(sb, job_dir, expected)
