"""What associations cost: requests beyond the upserts, the window kept full, journal bytes.

    .venv/bin/python bench/associations.py [--rows 100000] [--no-paced]

A file of --rows calls, each naming one contact by e-mail; one row in ten shares its
contact with the row before it (90,000 distinct contacts in 100,000 rows), against a
sandbox in its own process that seeds those contacts.

(a) paced: HubSpot's Professional burst limit and a realistic round trip
    (`--rate-limit 190/10 --latency-ms 150 --latency-jitter-ms 50`). From the sandbox's
    counters: the requests beyond the upserts (lookups and associations) over
    pairs / 100, target <= 2.1 (DESIGN section 6); the share of the window used over
    the steady state, target >= 0.97; the 429s.
(b) unpaced (no limit, no latency): wall time and rows/s of the same load, and the
    journal's bytes per row, by table (SQLite's dbstat), so that "<= ~40 bytes a row
    for the record ids" is a figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from common import OUT, TOKEN, sandbox, timed_cli
from rate_limit import LIMIT, SANDBOX_ARGS, steady_windows

from bulkload.journal import Journal, journal_path

ID = "external_call_id"


def contact_of(rows: int) -> list[int]:
    """Row i's contact: one in ten rows shares the previous row's contact."""
    return [(i - 1) * 9 // 10 + 1 for i in range(1, rows + 1)]


def data_file(rows: int) -> tuple[Path, int]:
    """The calls file (cached in bench/out/) and how many distinct contacts it names."""
    contacts = contact_of(rows)
    path = OUT / f"calls-assoc-{rows}.csv"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        n = pa.array(range(1, rows + 1), pa.int64())
        padded = pc.utf8_lpad(pc.cast(n, pa.string()), width=7, padding="0")
        table = pa.table({
            ID: pc.binary_join_element_wise("call-", padded, ""),
            "hs_timestamp": pa.array([f"2024-05-{1 + i % 28:02d}T10:00:00Z" for i in range(rows)]),
            "hs_call_title": pa.array([f"Call {i}" for i in range(1, rows + 1)]),
            "hs_call_direction": pa.array(["OUTBOUND" if i % 3 else "INBOUND" for i in range(rows)]),
            "hs_call_status": pa.array(["COMPLETED"] * rows),
            "contact_email": pa.array([f"contact-{c:05d}@example.com" for c in contacts]),
        })
        pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))
    return path, len(set(contacts))


def counters(url: str) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(f"{url}/_sandbox/counters", timeout=60).json()
    return result


def load(url: str, path: Path, job_dir: str, *extra: str) -> dict[str, Any]:
    t = timed_cli(["load", str(path), "--id-property", ID, "--job-id", "bench", "--job-dir", job_dir,
                   "--no-progress", "--json", "--associate", "contact_email=contacts.email", *extra], url=url)
    if t.exit_code != 0:
        raise SystemExit(f"load failed ({t.exit_code}): {t.stderr[-2000:]}")
    status: dict[str, Any] = json.loads(t.stdout.strip().splitlines()[-1])
    status["seconds"] = t.seconds
    status["max_rss_mb"] = t.max_rss_kb / 1024
    return status


def paced(path: Path, rows: int, distinct: int) -> None:
    with sandbox(*SANDBOX_ARGS, "--contacts", str(distinct)) as sb, tempfile.TemporaryDirectory() as job_dir:
        status = load(sb.url, path, job_dir)
        c = counters(sb.url)
    kinds = c["requests_by_kind"]
    extra = kinds.get("read", 0) + kinds.get("associate", 0)
    pairs = status["associations"]["created"]
    windows = steady_windows(c["requests_per_window"])
    limited = sum(c["rate_limited"].values())
    used = sum(windows) / (LIMIT * len(windows)) if windows else 0.0
    print(f"(a) paced, {rows:,} rows, {distinct:,} contacts, {pairs:,} pairs, {status['seconds']:.0f} s")
    print(f"    requests: upsert {kinds.get('upsert', 0):,}, read {kinds.get('read', 0):,}, "
          f"associate {kinds.get('associate', 0):,}, properties {kinds.get('properties', 0):,}")
    print(f"    beyond the upserts: {extra:,} = {extra / (pairs / 100):.2f} x pairs/100 (target <= 2.1)")
    print(f"    window used over {len(windows)} steady windows: {used:.3f} (target >= 0.97); "
          f"429s: {limited} of {c['requests_total']:,}")
    print(f"    reads asked {c['read_inputs']:,} values for {distinct:,} distinct (each once: "
          f"{c['read_inputs'] == distinct})")


def unpaced(path: Path, rows: int, distinct: int) -> None:
    with sandbox("--token", TOKEN, "--rate-limit", "1000000/10", "--contacts", str(distinct)) as sb, \
            tempfile.TemporaryDirectory() as job_dir:
        status = load(sb.url, path, job_dir)
        with Journal.open(journal_path(Path(job_dir), "bench")) as journal:
            storage = journal.storage()
        size = journal_path(Path(job_dir), "bench").stat().st_size
    print(f"(b) unpaced: {status['seconds']:.1f} s, {rows / status['seconds']:,.0f} rows/s with associations, "
          f"peak RSS {status['max_rss_mb']:.0f} MB")
    print(f"    journal {size / rows:.0f} bytes/row in all ({size * 1e6 / rows / 2**20:.0f} MiB per million rows)")
    for name in ("landed", "pairs", "pairs_state", "lookups"):
        if name in storage:
            print(f"    {name:<12} {storage[name] / rows:6.1f} bytes/row")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--no-paced", action="store_true", help="skip (a), which takes about two minutes")
    args = ap.parse_args()
    path, distinct = data_file(args.rows)
    if not args.no_paced:
        paced(path, args.rows, distinct)
    unpaced(path, args.rows, distinct)


if __name__ == "__main__":
    main()
