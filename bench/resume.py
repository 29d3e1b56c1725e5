"""Resume cost: a job killed at 90 % must not redo what is done.

    .venv/bin/python bench/resume.py --rows 1000000

Times a full `bulkload load`, then a second load of the same file SIGKILLed once
its journal shows >= 90 % of the rows finished, then `bulkload resume` of it.
Target (DESIGN.md section 6): resume-and-finish < 15 % of the full load's time.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from common import PYTHON, TOKEN, data_file, sandbox, timed_cli

from bulkload.errors import BulkloadError
from bulkload.journal import Journal, journal_path


def done_fraction(journal: Path) -> float:
    """Rows finished / rows in all, read through the journal's API (None-safe while it starts)."""
    try:
        with Journal.open(journal) as j:
            rows = j.counts()["rows"]
    except (BulkloadError, sqlite3.Error):
        return 0.0
    return (rows["total"] - rows["pending"]) / rows["total"] if rows["total"] else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--at", type=float, default=0.9, help="kill when this fraction is done")
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    path = data_file(args.rows)
    common = ["--id-property", "external_call_id", "--no-progress", "--concurrency", str(args.concurrency)]
    # A limit far above what one loader reaches, announced in headers the loader learns from.
    with sandbox("--rate-limit", "1000000/10") as sb, tempfile.TemporaryDirectory() as job_dir:
        full = timed_cli(["load", str(path), "--job-dir", job_dir, "--job-id", "full", *common], url=sb.url)
        print(f"full load:        {full.seconds:7.2f} s  (exit {full.exit_code})", flush=True)

        env = dict(os.environ, HUBSPOT_ACCESS_TOKEN=TOKEN, HUBSPOT_BASE_URL=sb.url)
        proc = subprocess.Popen(
            [PYTHON, "-m", "bulkload", "load", str(path), "--job-dir", job_dir, "--job-id", "killed", *common],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        journal = journal_path(Path(job_dir), "killed")
        frac = 0.0
        while proc.poll() is None:
            frac = done_fraction(journal)
            if frac >= args.at:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait()
        print(f"killed at:        {frac:7.1%} done", flush=True)
        res = timed_cli(["resume", "killed", "--job-dir", job_dir, *common[2:]], url=sb.url)
        print(f"resume to finish: {res.seconds:7.2f} s  (exit {res.exit_code})")
        print(f"resume / full:    {res.seconds / full.seconds:7.1%}  (target < 15 %)")


if __name__ == "__main__":
    main()
