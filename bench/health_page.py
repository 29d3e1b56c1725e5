"""The health page of a big job: how long it takes to write and to render, and its size.

    .venv/bin/python bench/health_page.py [--rows 1000000] [--bad-rate 0.01] [--runs 3]

A generated file of --rows calls with about --bad-rate bad rows (1 % of 1M: ~10,000
failed rows, of every kind the generator makes: bad enums HubSpot refuses, bad datetimes
and numbers the local checks catch, missing ids), loaded against an unpaced sandbox in
its own process. Then, each --runs times:

- write: `bulkload report JOB --format html` end to end (a fresh process: imports,
  reading the journal, rendering), wall seconds and peak RSS; the file's size.
- render: headless Chromium (`--dump-dom`, which returns once the page is loaded and
  parsed, and `--screenshot`, which also lays it out and paints it) on the page, minus the
  same on an empty page: what the page itself costs the browser, start-up left out.

Targets (issue 15): renders in under 2 s in a browser, the file under 5 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import OUT, PYTHON, ROOT, TOKEN, sandbox, timed_cli

ID = "external_call_id"


def source(rows: int, bad_rate: float) -> Path:
    name = f"calls-health-{rows}-{bad_rate:g}"
    path = OUT / f"{name}.csv"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run([PYTHON, str(ROOT / "sample_data" / "generate.py"), "--rows", str(rows), "--seed", "11",
                        "--out", str(OUT), "--format", "csv", "--name", name, "--bad-rate", str(bad_rate),
                        "--dup-rate", "0.001"], check=True)
    return path


def find_chromium() -> str | None:
    given = os.environ.get("BULKLOAD_CHROMIUM")
    if given:
        return given
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def browse(binary: str, url: str, *flags: str) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        t0 = time.perf_counter()
        subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", *flags, url],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--bad-rate", type=float, default=0.01)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    src = source(args.rows, args.bad_rate)
    work = Path(tempfile.mkdtemp(prefix="bench-health-"))
    job_dir = work / "jobs"
    env = {"XDG_STATE_HOME": str(work / "state")}
    with sandbox("--rate-limit", "1000000/10", "--token", TOKEN) as sb:
        loaded = timed_cli(["load", str(src), "--id-property", ID, "--job-dir", str(job_dir), "--job-id", "big",
                            "--no-progress", "--json", "--concurrency", "4"], url=sb.url, env=env)
    if loaded.exit_code not in (0, 1):
        sys.exit(f"the load failed ({loaded.exit_code}): {loaded.stderr[-2000:]}")
    st = json.loads(loaded.stdout.splitlines()[-1])
    print(f"job: {st['rows']['total']:,} rows, {st['rows']['failed']:,} failed, {st['rows']['superseded']:,} "
          f"superseded, {st['api_calls']:,} API calls; loaded in {loaded.seconds:.1f} s")

    writes = []
    page = job_dir / "big.health.html"
    for _ in range(args.runs):
        w = timed_cli(["report", "big", "--job-dir", str(job_dir), "--format", "html"], url="http://127.0.0.1:9",
                      env=env)
        if w.exit_code != 0:
            sys.exit(f"report --format html failed: {w.stderr}")
        writes.append(w)
    size = page.stat().st_size
    write_s = statistics.median(w.seconds for w in writes)
    rss = max(w.max_rss_kb for w in writes) / 1024
    print(f"write: {write_s:.2f} s (median of {args.runs}; a fresh process), peak RSS {rss:.0f} MB")
    print(f"size: {size / 1024:,.0f} KB ({size:,} bytes); target < 5 MB: {'ok' if size < 5 * 1024 * 1024 else 'MISSED'}")

    binary = find_chromium()
    if binary is None:
        print("render: skipped (no chromium; apt-get install chromium)")
        return
    blank = work / "blank.html"
    blank.write_text("<!doctype html><title>blank</title>", encoding="utf-8")
    results = {}
    for what, flags in (("dump-dom", ("--dump-dom",)),
                        ("screenshot", ("--screenshot=" + str(work / "shot.png"), "--window-size=1280,4000"))):
        base = statistics.median(browse(binary, blank.as_uri(), *flags) for _ in range(args.runs))
        full = statistics.median(browse(binary, page.as_uri(), *flags) for _ in range(args.runs))
        results[what] = (full, base)
        print(f"render ({what}): {full:.2f} s with Chromium's start, {base:.2f} s for an empty page: "
              f"the page costs {max(0.0, full - base):.2f} s; target < 2 s: "
              f"{'ok' if full - base < 2.0 else 'MISSED'}")
    print(json.dumps({"rows": st["rows"]["total"], "failed": st["rows"]["failed"], "page_bytes": size,
                      "write_seconds": round(write_s, 3), "write_peak_rss_mb": round(rss),
                      "render": {k: {"total_s": round(v[0], 3), "blank_s": round(v[1], 3)}
                                 for k, v in results.items()}}))


if __name__ == "__main__":
    main()
