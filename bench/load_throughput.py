"""Local ceiling and memory: `bulkload load` against the sandbox with no latency and no limits.

    .venv/bin/python bench/load_throughput.py --rows 200000 --rows 1000000 --rows 2000000

Targets (DESIGN.md section 6): >= 50,000 rows/s end to end on 1M rows; peak RSS
flat in the number of rows (2M within 1.2x of 200k) and under 200 MB.
"""

from __future__ import annotations

import argparse
import tempfile

from common import data_file, sandbox, timed_cli


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, action="append", help="file sizes (repeatable)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--format", default="csv", choices=["csv", "parquet"])
    args = ap.parse_args()
    sizes = args.rows or [200_000, 1_000_000]
    results = []
    # A limit far above what one loader can reach, so the loader learns it from the headers.
    with sandbox("--rate-limit", "1000000/10") as sb:
        for rows in sizes:
            path = data_file(rows, fmt=args.format)
            with tempfile.TemporaryDirectory() as job_dir:
                t = timed_cli(
                    ["load", str(path), "--id-property", "external_call_id", "--job-dir", job_dir,
                     "--no-progress", "--concurrency", str(args.concurrency), "--json"],
                    url=sb.url,
                )
            if t.exit_code not in (0, 1):
                raise SystemExit(f"load failed ({t.exit_code}): {t.stderr[-2000:]}")
            results.append((rows, t))
            print(f"{rows:>9,} rows  {t.seconds:7.2f} s  {rows / t.seconds:9,.0f} rows/s  "
                  f"peak RSS {t.max_rss_kb / 1024:6.1f} MB  exit {t.exit_code}", flush=True)
    if len(results) > 1:
        small, large = results[0], results[-1]
        print(f"RSS ratio {large[0]:,} / {small[0]:,} rows: {large[1].max_rss_kb / small[1].max_rss_kb:.2f}x")


if __name__ == "__main__":
    main()
