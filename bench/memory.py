"""Flat memory: peak RSS of the scan, the dry run and the load at 200k and 10M rows.

    .venv/bin/python bench/memory.py [--rows 200000 --rows 10000000] [--no-load]

Each measurement is its own process under /usr/bin/time -v (peak RSS). The scan is the
first pass alone (row count, repeated ids to the journal, the file's hash) through the
library; the dry run adds the checks and the batch planning; the load sends everything
to a sandbox in its own process. Target (issue 9, DESIGN section 6): 10M rows within
1.2x the peak of 200k. The files are generated once (0.1 % bad rows, 0.1 % repeated ids)
and cached in bench/out/ (the 10M-row file is about 1.6 GB).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

from common import PYTHON, data_file, sandbox, timed_cli

SCAN = """
import sys, tempfile, time
from pathlib import Path
from bulkload.config import JobConfig
from bulkload.journal import Journal
from bulkload.scan import scan_source
from bulkload.source import open_source
from bulkload.stages import column_map_of

config = JobConfig(source=Path(sys.argv[1]), id_property="external_call_id")
source = open_source(config.source, None)
cmap = column_map_of(source, config)
with tempfile.TemporaryDirectory() as tmp, Journal.create(Path(tmp) / "j.sqlite") as journal:
    journal.create_job(job_id="scan", object_type="calls", id_property="external_call_id", config=config.to_dict(),
                       source_path=str(config.source), source_format=source.format, fingerprint={},
                       columns=list(source.columns))
    t0 = time.perf_counter()
    read = source.scan([cmap.id_column], rows_per_chunk=16_384)
    result = scan_source(source, cmap, sink=journal.add_superseding, chunks=read, fingerprint=lambda: read.fingerprint)
    print(result.total_rows, time.perf_counter() - t0, result.fingerprint is not None)
"""


def peak(args: list[str]) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *args], capture_output=True, text=True, check=True)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    return time.perf_counter() - t0, int(m.group(1)) if m else 0, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, action="append")
    ap.add_argument("--no-load", action="store_true", help="skip the loads (10M rows take minutes)")
    args = ap.parse_args()
    sizes = args.rows or [200_000, 10_000_000]
    results: dict[str, dict[int, int]] = {"scan": {}, "dry run": {}, "load": {}}
    for rows in sizes:
        path: Path = data_file(rows)
        _, kb, out = peak([PYTHON, "-c", SCAN, str(path)])
        total, seconds, hashed = out.split()
        results["scan"][rows] = kb
        print(f"scan     {rows:>11,} rows  {int(total) / float(seconds):>11,.0f} rows/s (hash: {hashed})  "
              f"peak RSS {kb / 1024:7.1f} MB", flush=True)
        seconds_dry, kb, _ = peak([PYTHON, "-m", "bulkload", "load", str(path), "--id-property", "external_call_id",
                                   "--dry-run", "--json"])
        results["dry run"][rows] = kb
        print(f"dry run  {rows:>11,} rows  {rows / seconds_dry:>11,.0f} rows/s               "
              f"peak RSS {kb / 1024:7.1f} MB", flush=True)
        if not args.no_load:
            with sandbox("--rate-limit", "1000000/10") as sb, tempfile.TemporaryDirectory() as job_dir:
                t = timed_cli(["load", str(path), "--id-property", "external_call_id", "--job-dir", job_dir,
                               "--no-progress", "--json"], url=sb.url)
            results["load"][rows] = t.max_rss_kb
            print(f"load     {rows:>11,} rows  {rows / t.seconds:>11,.0f} rows/s               "
                  f"peak RSS {t.max_rss_kb / 1024:7.1f} MB  exit {t.exit_code}", flush=True)
    small, large = min(sizes), max(sizes)
    for what, by_size in results.items():
        if small in by_size and large in by_size and small != large:
            print(f"{what}: peak RSS at {large:,} rows = {by_size[large] / by_size[small]:.2f} x the peak at {small:,}")


if __name__ == "__main__":
    main()
