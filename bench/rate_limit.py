"""Rate-limit efficiency: bulkload vs a plain loop over hubspot-api-client, side by side.

    .venv/bin/python bench/rate_limit.py [--rows 130000] [--seconds 60] [--concurrency 8]

Two phases, each against a fresh sandbox in its own process on 127.0.0.1 with
HubSpot's Professional burst limit and a realistic round trip
(`--rate-limit 190/10 --latency-ms 150 --latency-jitter-ms 50`):

(a) `bulkload load` of a generated file big enough to keep it busy for over a
    minute (1,300 requests at 19/s for 130,000 rows). It learns the limit from
    the X-HubSpot-RateLimit-* headers. From the sandbox's counters:
    - allowance fraction: requests per 10-second window over the steady state
      (every aligned window but the first and last, which are partial), less
      every 429, divided by the 190 allowed; target >= 0.97;
    - 429 fraction: 429 answers / all requests; target < 0.005.
(b) The same file through `client.crm.objects.calls.batch_api.upsert` in a
    plain sequential loop, with the retry set-up HUBSPOT.md section 6 documents
    (urllib3 Retry on 429/5xx with allowed_methods=None so POST is retried),
    for --seconds of wall time.

Prints rows/s of both and their ratio (target >= 3x). Stops by itself: the
load has a time limit and the loop a deadline.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from common import PYTHON, TOKEN, data_file, sandbox

ID = "external_call_id"
LIMIT, WINDOW_S = 190, 10.0
SANDBOX_ARGS = ("--token", TOKEN, "--rate-limit", f"{LIMIT}/{WINDOW_S:g}", "--latency-ms", "150",
                "--latency-jitter-ms", "50")
LOAD_TIMEOUT_S = 1200


def counters(url: str) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(f"{url}/_sandbox/counters", timeout=60).json()
    return result


def steady_windows(per_window: dict[str, int]) -> list[int]:
    """Request counts of the full windows: the first and last aligned windows are partial."""
    starts = sorted(int(k) for k in per_window)
    if len(starts) < 3:
        return []
    first, last = starts[0], starts[-1]
    # Every window in between counts, even one with no request at all.
    return [per_window.get(str(s), 0) for s in range(first + int(WINDOW_S), last, int(WINDOW_S))]


# ---- (a) bulkload ----------------------------------------------------------------------------


def run_bulkload(path: Path, rows: int, concurrency: int) -> dict[str, Any]:
    with sandbox(*SANDBOX_ARGS) as sb, tempfile.TemporaryDirectory() as job_dir:
        env = dict(os.environ, HUBSPOT_ACCESS_TOKEN=TOKEN, HUBSPOT_BASE_URL=sb.url)
        cmd = [PYTHON, "-m", "bulkload", "load", str(path), "--id-property", ID, "--job-dir", job_dir,
               "--no-progress", "--concurrency", str(concurrency)]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=LOAD_TIMEOUT_S)
        seconds = time.perf_counter() - t0
        if p.returncode not in (0, 1):
            raise SystemExit(f"bulkload load failed ({p.returncode}): {p.stderr[-2000:]}")
        c = counters(sb.url)
    total = c["requests_total"]
    limited = sum(c["rate_limited"].values())
    windows = steady_windows(c["requests_per_window"])
    if not windows:
        raise SystemExit("the load was too short for a steady-state window; raise --rows")
    # Window counts include 429'd requests (counted on arrival); take every 429 off as if
    # it fell in the steady state, so the figure is a lower bound of what was accepted.
    accepted = sum(windows) - limited
    return {
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "requests": total,
        "limited": limited,
        "limited_fraction": limited / total if total else 0.0,
        "windows": len(windows),
        "allowance": accepted / (len(windows) * LIMIT),
        "steady_rps": accepted / (len(windows) * WINDOW_S),
        "written": c["inputs_written"],
        "per_window": windows,
    }


# ---- (b) the plain loop over hubspot-api-client --------------------------------------------------


def source_batches(path: Path, size: int = 100) -> Iterator[list[dict[str, Any]]]:
    """The file's rows as upsert inputs (empty cells left out), `size` at a time."""
    batch: list[dict[str, Any]] = []
    with path.open(newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f), start=1):
            props = {k: v for k, v in row.items() if k != ID and v}
            batch.append({"id": row[ID], "trace": str(n), "properties": props})
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


def run_baseline(path: Path, seconds: float) -> dict[str, float]:
    from hubspot import HubSpot
    from hubspot.crm.objects.calls import (
        BatchInputSimplePublicObjectBatchInputUpsert,
        SimplePublicObjectBatchInputUpsert,
    )
    from urllib3.util.retry import Retry

    with sandbox(*SANDBOX_ARGS) as sb:
        retry = Retry(total=8, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
                      backoff_factor=0.3)
        client = HubSpot(access_token=TOKEN, host=sb.url, retry=retry)
        api = client.crm.objects.calls.batch_api
        rows = failed_requests = requests = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        for batch in source_batches(path):
            if time.perf_counter() >= deadline:
                break
            body = BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
                SimplePublicObjectBatchInputUpsert(id=i["id"], id_property=ID, object_write_trace_id=i["trace"],
                                                   properties=i["properties"])
                for i in batch
            ])
            requests += 1
            try:
                api.upsert(batch_input_simple_public_object_batch_input_upsert=body)
            except Exception as e:  # what a plain loop does: note it and go on
                failed_requests += 1
                print(f"  baseline request failed: {type(e).__name__}: {str(e)[:120]}", file=sys.stderr)
                continue
            rows += len(batch)
        elapsed = time.perf_counter() - t0
        c = counters(sb.url)
    return {
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "requests": requests,
        "failed_requests": failed_requests,
        "limited": sum(c["rate_limited"].values()),
        "rps": c["requests_total"] / elapsed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=130_000, help="rows in the generated file (>= 120,000 for 60 s)")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the baseline loop runs")
    ap.add_argument("--concurrency", type=int, default=8, help="bulkload --concurrency")
    args = ap.parse_args()
    path = data_file(args.rows, bad=False)
    print(f"file: {path.name} ({args.rows:,} rows); sandbox: {' '.join(SANDBOX_ARGS[2:])}", flush=True)

    a = run_bulkload(path, args.rows, args.concurrency)
    print(f"(a) bulkload load, --concurrency {args.concurrency}: {a['seconds']:.1f} s end to end, "
          f"{a['rows_per_s']:,.0f} rows/s, {a['requests']:,} requests, {a['written']:,} inputs written", flush=True)
    print(f"    steady state ({a['windows']} full 10 s windows): {a['steady_rps']:.2f} requests/s accepted = "
          f"{a['allowance']:.3f} of the {LIMIT}/{WINDOW_S:g}s allowance (target >= 0.97); "
          f"per window: {a['per_window']}")
    print(f"    429s: {a['limited']:,} of {a['requests']:,} requests = {a['limited_fraction']:.4f} (target < 0.005)")
    if a["seconds"] < 60:
        print("    warning: the load lasted under 60 s; raise --rows", flush=True)

    b = run_baseline(path, args.seconds)
    print(f"(b) hubspot-api-client plain loop: {b['seconds']:.1f} s, {b['requests']:,} requests "
          f"({b['rps']:.2f}/s, {b['limited']} 429s, {b['failed_requests']} failed), {b['rows_per_s']:,.0f} rows/s")
    ratio = a["rows_per_s"] / b["rows_per_s"] if b["rows_per_s"] else float("inf")
    print(f"bulkload / baseline: {ratio:.2f}x rows/s (target >= 3x)")
    ok = a["allowance"] >= 0.97 and a["limited_fraction"] < 0.005 and ratio >= 3
    print("targets met" if ok else "targets NOT met")


if __name__ == "__main__":
    main()
