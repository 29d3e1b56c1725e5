"""SIGKILL a 50,000-row load at random moments, resume it each time, and check that it ends
exactly where a load that was never killed ends.

Both runs go through the real command line to a real sandbox process with a persistent
store (`python -m bulkload sandbox --store PATH`). The end state is checked three ways:
against the uninterrupted run's store and journal, against the CSV read with Python's
csv module, and against the generator's manifest of bad and repeated rows.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bulkload import api
from bulkload.journal import journal_path
from tests.conftest import (
    assert_counts_final,
    assert_store_matches,
    check_journal,
    expected_outcome,
    generate_calls,
    without_volatile,
)
from tests.processes import SandboxCli, bulkload, claims, read_journal, status_json, wait_until

ID = "external_call_id"
ROWS = 50_000
CONCURRENCY = 4
BATCH = 100
KILLS = 10  # then one last resume runs to the end
SEED = 20_240_611
# While killing, every answer takes 100 ms: four batches in flight send at most 4,000 rows/s,
# so the kills (at most ~10 s of sending in all) cannot finish the 50,000 rows early.
LATENCY_MS = 100


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """50,000 rows: the documented bad rows plus 0.2 % more, and 0.2 % repeated ids."""
    return generate_calls(tmp_path, ROWS, seed=SEED % 1000, bad_rate=0.002, dup_rate=0.002)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_ends_like_an_uninterrupted_load(
    data: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    t0 = time.monotonic()
    source, manifest = data
    expected = expected_outcome(source, manifest)
    phases = {"generate+oracle": time.monotonic() - t0}
    assert len(expected.failed) > 50 and len(expected.superseded) > 50
    tuning = ["--concurrency", str(CONCURRENCY), "--no-progress"]  # the batch size is the job's: load only
    load = ["load", str(source), "--id-property", ID, "--batch-size", str(BATCH), *tuning]
    jobs, ref_jobs = tmp_path / "jobs", tmp_path / "ref-jobs"
    journal = journal_path(jobs, "crash")
    rng = random.Random(SEED)
    kills: list[dict[str, Any]] = []

    with SandboxCli(tmp_path / "ref-store.sqlite") as ref, \
            SandboxCli(tmp_path / "store.sqlite", "--latency-ms", str(LATENCY_MS)) as sb:
        # The reference: the same file loaded once, never killed, into a second fresh sandbox
        # (alongside the other run: the two share nothing).
        ref_proc = bulkload(*load, "--job-id", "ref", "--job-dir", str(ref_jobs), env=ref.env(),
                            log=tmp_path / "ref.log")
        env = sb.env()
        log = tmp_path / "crash.log"
        code: int | None = None
        while code is None:
            # Drawn up front, in a fixed order: the schedule depends on the seed alone. The first
            # kill comes just after the job row is committed (in the scan or the pre-flight).
            when = "scan" if not kills else rng.choice(["start-up", "sending", "sending", "sending"])
            delay = rng.uniform(0.0, 0.15) if when == "scan" else rng.uniform(0.2, 1.0 if when == "start-up" else 1.5)
            if len(kills) == KILLS:
                phases["kills"] = time.monotonic() - t0 - sum(phases.values())
                sb.configure(latency_ms=0)  # enough killing: the last resume runs to the end at full speed
                proc = bulkload("resume", "crash", "--job-dir", str(jobs), *tuning, env=env, log=log)
                code = proc.wait(timeout=120)
                phases["last resume"] = time.monotonic() - t0 - sum(phases.values())
                break
            before = claims(journal)
            if not kills:
                proc = bulkload(*load, "--job-id", "crash", "--job-dir", str(jobs), env=env, log=log)
                # Only once the job is on disk is there something to resume.
                started = wait_until(proc, lambda: read_journal(journal, "SELECT COUNT(*) FROM job") == 1)
            else:
                proc = bulkload("resume", "crash", "--job-dir", str(jobs), *tuning, env=env, log=log)
                # start-up: the kill clock starts with the process (imports, hashing, the schema);
                # sending: it starts with the run's first claim, so the kill lands in the send loop.
                started = when == "start-up" or wait_until(proc, lambda b=before: claims(journal) > b)
            if started:
                try:
                    code = proc.wait(timeout=delay)
                    break
                except subprocess.TimeoutExpired:
                    pass
            else:
                code = proc.wait()
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            st = api.status("crash", job_dir=jobs)  # reads the journal only
            rows = st["rows"]
            # The journal says running, but its process is gone: paused (unless it had just finished).
            assert st["state"] == "paused" or rows["pending"] == 0, st
            assert rows["upserted"] + rows["failed"] + rows["superseded"] + rows["pending"] == rows["total"]
            kills.append({"when": when, "after_s": round(delay, 2), "done": rows["total"] - rows["pending"],
                          "scanned": read_journal(journal, "SELECT scan_complete FROM job"),
                          "in_flight": read_journal(journal, "SELECT COUNT(*) FROM batches WHERE status = 'in_flight'")})
        assert code in (0, 1), log.read_text()[-2000:]
        counters = sb.get("counters")
        store = sb.store()
        status = status_json("crash", jobs, env)
        ref_code = ref_proc.wait(timeout=120)
        assert ref_code == 1, (tmp_path / "ref.log").read_text()
        ref_store = ref.store()
    ref_failed, ref_superseded = check_journal(journal_path(ref_jobs, "ref"))
    phases["reference, stores, status"] = time.monotonic() - t0 - sum(phases.values())

    print(f"\n{len(kills)} SIGKILLs, then a resume to the end (exit {code}):")
    for k in kills:
        print(f"  {k['when']:<9} +{k['after_s']:.2f}s  scanned {k['scanned']}  rows done {k['done']:>6,}  "
              f"batches in flight {k['in_flight']}")
    assert len(kills) >= 10
    progress = [k["done"] for k in kills]
    assert len(set(progress)) >= 3 and progress == sorted(progress)  # kills at many points; no row undone

    # The same exit code and end state as the run that was never killed.
    assert code == ref_code
    assert_counts_final(status, expected)
    assert without_volatile(store) == without_volatile(ref_store)
    # ... and the state the CSV itself calls for: every valid id once, the last row's values.
    assert_store_matches(store, expected)
    assert_store_matches(ref_store, expected)

    # Failed rows are exactly the invalid rows: as in the reference journal and the manifest.
    failed, superseded = check_journal(journal)
    assert failed == ref_failed == expected.failed
    assert superseded == ref_superseded == expected.superseded

    # Rows sent more than once: only batches in flight at a kill are sent again.
    writes: dict[str, int] = counters["writes_per_id"]
    assert set(writes) == set(expected.store)
    twice = {i: w for i, w in writes.items() if w > 1}
    extra = sum(w - 1 for w in twice.values())
    bound = len(kills) * CONCURRENCY * BATCH
    print(f"rows sent more than once: {len(twice):,} ids, {extra:,} extra writes "
          f"(bound: {len(kills)} kills x {CONCURRENCY} in flight x {BATCH} rows = {bound:,})")
    assert extra <= bound
    phases["checks"] = time.monotonic() - t0 - sum(phases.values())
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
