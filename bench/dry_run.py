"""`load --dry-run` over the 1M-row bench file: rows/s, and whether it finds every bad row.

    .venv/bin/python bench/dry_run.py [--rows 1000000] [--runs 3]

The file is sample_data/generate.py's, with 0.1 % sparse bad rows (bad statuses,
dispositions, durations and timestamps, rows without an id) and 0.1 % repeated ids,
checked offline against HubSpot's default call properties (no token: nothing is asked).
Targets (DESIGN section 6): >= 200,000 rows/s, and every planted bad row found, with the
error type the journal would give it (a bad row whose id a later row repeats is
superseded instead, as a load would have it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

from common import OUT, PYTHON, ROOT

from sample_data.generate import ERROR_TYPE_OF_KIND


def bench_file(rows: int) -> tuple[Path, Path]:
    name = f"calls-dry-{rows}"
    path, manifest = OUT / f"{name}.csv", OUT / f"{name}.bad.json"
    if not path.exists() or not manifest.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run([PYTHON, str(ROOT / "sample_data" / "generate.py"), "--rows", str(rows), "--out", str(OUT),
                        "--name", name, "--format", "csv", "--bad-rate", "0.001", "--dup-rate", "0.001",
                        "--manifest", str(manifest)], check=True, stdout=subprocess.DEVNULL)
    return path, manifest


def expected(path: Path, manifest: Path) -> tuple[Counter[str], int]:
    """(failed rows by error type, superseded rows), worked out with the csv module."""
    with path.open(newline="", encoding="utf-8") as f:
        ids = [row["external_call_id"] for row in csv.DictReader(f)]
    last = {v: i for i, v in enumerate(ids, start=1) if v.strip()}
    superseded = sum(1 for i, v in enumerate(ids, start=1) if v.strip() and last[v] != i)
    failed: Counter[str] = Counter()
    for bad in json.loads(manifest.read_text(encoding="utf-8")):
        row, kind = int(bad["row_number"]), str(bad["kind"])
        if kind not in ERROR_TYPE_OF_KIND:
            continue
        v = ids[row - 1]
        if kind == "missing_id" or last.get(v) == row:
            failed[ERROR_TYPE_OF_KIND[kind]] += 1
    return failed, superseded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    path, manifest = bench_file(args.rows)
    want_failed, want_superseded = expected(path, manifest)
    env = {k: v for k, v in os.environ.items() if k not in ("HUBSPOT_ACCESS_TOKEN", "HUBSPOT_BASE_URL")}
    for run in range(1, args.runs + 1):
        t0 = time.perf_counter()
        cpu0 = os.times()
        p = subprocess.run([PYTHON, "-m", "bulkload", "load", str(path), "--id-property", "external_call_id",
                            "--dry-run", "--json"], capture_output=True, text=True, env=env, check=True)
        seconds = time.perf_counter() - t0
        cpu1 = os.times()
        cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
        report = json.loads(p.stdout)
        got = Counter(report["local_failures"])
        found = sum((got & want_failed).values())
        print(f"run {run}: {args.rows:,} rows in {seconds:.2f} s ({args.rows / seconds:,.0f} rows/s, "
              f"{cpu:.2f} s CPU); checks: {report['checks']['schema']}")
        print(f"        bad rows found {found:,} of {sum(want_failed.values()):,} planted "
              f"({'all' if got == want_failed else 'MISMATCH ' + str(dict(got - want_failed)) + ' ' + str(dict(want_failed - got))}); "
              f"superseded {report['rows']['superseded']:,} of {want_superseded:,}")
    print("by type:", dict(want_failed))


if __name__ == "__main__":
    main()
