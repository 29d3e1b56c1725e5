"""Rate-limit efficiency and the cost of rejected batches: bulkload beside itself, beside a
competitor and beside hubspot-api-client, in one table.

    .venv/bin/python bench/rate_limit.py [--rows 130000] [--seconds 60] [--concurrency 8]
                                          [--only NAME ...] [--reject-rows 20000] [--bad-rate 0.005]

Every scenario runs against a fresh sandbox in its own process on 127.0.0.1 with
HubSpot's Professional burst limit and a realistic round trip (`--rate-limit 190/10
--latency-ms 150 --latency-jitter-ms 50`, or 100 where the scenario says so). bulkload
learns the limit from the X-HubSpot-RateLimit-* headers (no --rate).

Scenarios (`--only` picks some by name):

- `alone-50`, `alone-100`: one `bulkload load` of a file big enough for over a minute
  (130,000 rows: 1,300 requests at 19/s), with +-50 ms and +-100 ms of jitter. Targets:
  >= 98.5 % of the window and < 0.5 % 429s at +-50 ms; >= 98 % at +-100 ms.
- `two-loads`: two loads of half the rows each, started together on one token (one
  private app). Targets: together >= 95 % of the window, each < 0.5 % 429s, both done.
- `competitor`: one load beside a naive client on the same token sending 30 requests per
  10 s at a fixed pace (1-input upserts). Targets: bulkload < 0.5 % 429s, both together
  >= 95 % of the window.
- `sdk-loop`, `sdk-8-threads`: the same file through hubspot-api-client's
  `batch_api.upsert`, a plain sequential loop and 8 threads sharing the batches, for
  --seconds each, with the retry set-up HUBSPOT.md section 6 documents (urllib3 Retry on
  429/5xx, allowed_methods=None so that POST is retried). Compared by rows/s.
- `reject-repeated`, `reject-distinct`: the cost of rejected batches (issue 13). The
  sandbox in strict mode (one bad input fails its whole batch with a 400 that names no
  input but names the value: "Property values were not valid: [...]"), and a token
  without the schema-read scope, so that no local check knows the enumeration options and
  every bad value must be judged by HubSpot. --bad-rate of the rows (0.5 %) get an
  hs_call_status that is no option: four dialer values ("repeated") or a different one
  per row ("distinct", the worst case). Figure: upsert requests / minimum, where the
  minimum is ceil(rows / 100), one request per batch of 100 rows (every row is sent:
  none is bad locally). Target <= 1.1. Also shown: the floor for any loader that learns
  one invalid value per rejected request, ceil(rows / 100) + distinct bad values.
- `reject-checked`: the same file (distinct bad values) with a token that may read the
  schema, as a load normally runs: the bad values are refused before sending, so the
  requests are those of the good rows' batches (target <= 1.1 x minimum, as above).

Window share = requests per 10 s over the steady windows (every aligned window but the
first and last, which are partial), less every 429, over 190. 429s of a bulkload load
come from its own journal (`status --json`), so that two loads on one token are told apart.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from common import OUT, PYTHON, TOKEN, data_file, sandbox

ID = "external_call_id"
LIMIT, WINDOW_S = 190, 10.0
LOAD_TIMEOUT_S = 1200
COMPETITOR_PER_WINDOW = 30
REPEATED_BAD = ("DONE", "MISSED", "VOICEMAIL", "LEFT_MESSAGE")  # dialer statuses, not options


def sandbox_args(jitter_ms: int = 50, *extra: str) -> tuple[str, ...]:
    return ("--token", TOKEN, "--rate-limit", f"{LIMIT}/{WINDOW_S:g}", "--latency-ms", "150",
            "--latency-jitter-ms", str(jitter_ms), *extra)


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


def window_share(c: dict[str, Any], during: tuple[float, float] | None = None) -> tuple[float, int]:
    """(share of the window used in the steady state, number of steady windows).

    `during` (epoch seconds): only the aligned windows wholly inside it count, e.g. while
    two loads both ran (the tail after one of them finished is not "together")."""
    per_window = c["requests_per_window"]
    if during is not None:
        lo, hi = during
        per_window = {k: v for k, v in per_window.items() if lo <= int(k) and int(k) + WINDOW_S <= hi}
        windows = list(per_window.values())
        if not windows:
            return 0.0, 0
        # 429s are counted for the whole run: taking them all off keeps this a lower bound.
        limited = sum(c["rate_limited"].values())
        return (sum(windows) - limited) / (len(windows) * LIMIT), len(windows)
    windows = steady_windows(per_window)
    if not windows:
        return 0.0, 0
    # Window counts include 429'd requests (counted on arrival); take every 429 off as if
    # it fell in the steady state, so the figure is a lower bound of what was accepted.
    limited = sum(c["rate_limited"].values())
    return (sum(windows) - limited) / (len(windows) * LIMIT), len(windows)


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    rows: int = 0
    seconds: float = 0.0
    requests: int = 0
    limited: int = 0
    share: float | None = None  # of the window, steady state
    ratio: float | None = None  # reject modes: requests / minimum
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def limited_fraction(self) -> float:
        return self.limited / self.requests if self.requests else 0.0


# ---- bulkload ------------------------------------------------------------------------------------


@dataclass
class Load:
    """A `bulkload load` subprocess and, once done, what its journal says."""

    path: Path
    job_dir: Path
    job_id: str
    url: str
    concurrency: int
    token: str = TOKEN
    proc: subprocess.Popen[str] | None = None
    started: float = 0.0
    seconds: float = 0.0
    status: dict[str, Any] = field(default_factory=dict)

    def start(self) -> Load:
        env = dict(os.environ, HUBSPOT_ACCESS_TOKEN=self.token, HUBSPOT_BASE_URL=self.url)
        cmd = [PYTHON, "-m", "bulkload", "load", str(self.path), "--id-property", ID, "--job-dir",
               str(self.job_dir), "--job-id", self.job_id, "--no-progress", "--concurrency", str(self.concurrency)]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return self

    def wait(self) -> Load:
        assert self.proc is not None
        try:
            _, err = self.proc.communicate(timeout=LOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise SystemExit(f"bulkload load {self.job_id} ran over {LOAD_TIMEOUT_S} s") from None
        self.seconds = time.perf_counter() - self.started
        if self.proc.returncode not in (0, 1):
            raise SystemExit(f"bulkload load {self.job_id} failed ({self.proc.returncode}): {err[-2000:]}")
        p = subprocess.run([PYTHON, "-m", "bulkload", "status", self.job_id, "--job-dir", str(self.job_dir),
                            "--json"], capture_output=True, text=True, check=True)
        self.status = json.loads(p.stdout)
        return self

    @property
    def requests(self) -> int:
        return int(self.status["usage"]["calls_total"])

    @property
    def limited(self) -> int:
        return int(self.status["usage"]["rate_limited_total"])

    @property
    def upserted(self) -> int:
        return int(self.status["rows"]["upserted"])


def run_alone(path: Path, rows: int, concurrency: int, jitter_ms: int, target: float) -> list[Row]:
    with sandbox(*sandbox_args(jitter_ms)) as sb, tempfile.TemporaryDirectory() as job_dir:
        load = Load(path, Path(job_dir), "alone", sb.url, concurrency).start().wait()
        c = counters(sb.url)
    share, windows = window_share(c)
    ok = share >= target and load.limited / max(1, load.requests) < 0.005
    return [Row(f"bulkload alone, +-{jitter_ms} ms", rows, load.seconds, load.requests, load.limited, share,
                target=f">= {target * 100:.1f} %, < 0.5 % 429", met=ok, note=f"{windows} windows")]


def run_two_loads(path: Path, rows: int, concurrency: int) -> list[Row]:
    with sandbox(*sandbox_args(50)) as sb, tempfile.TemporaryDirectory() as d:
        loads = [Load(path, Path(d) / f"j{k}", f"load-{k}", sb.url, concurrency) for k in (1, 2)]
        for load in loads:
            load.job_dir.mkdir()
            load.start()
        for load in loads:
            load.wait()
        c = counters(sb.url)
    # Together: the windows while both ran, from the later start to the earlier finish.
    spans = [(_epoch(load.status["created_at"]), _epoch(load.status["finished_at"] or load.status["updated_at"]))
             for load in loads]
    share, windows = window_share(c, (max(a for a, _ in spans), min(b for _, b in spans)))
    out = []
    each_ok = True
    for k, load in enumerate(loads, start=1):
        ok = load.limited / max(1, load.requests) < 0.005 and load.upserted == rows
        each_ok &= ok
        out.append(Row(f"two loads, one token: load {k}", rows, load.seconds, load.requests, load.limited,
                       target="< 0.5 % 429, done", met=ok))
    seconds = max(load.seconds for load in loads)
    out.append(Row("two loads, one token: together", 2 * rows, seconds, sum(x.requests for x in loads),
                   sum(x.limited for x in loads), share, target=">= 95 %", met=share >= 0.95 and each_ok,
                   note=f"{windows} windows"))
    return out


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Competitor:
    """A naive client on the same token: `per_window` 1-input upserts every 10 s, evenly
    spaced, whatever the answers say (it does not retry)."""

    def __init__(self, url: str, per_window: int) -> None:
        self.url = url
        self.interval = WINDOW_S / per_window
        self.requests = self.limited = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Competitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            k = 0
            next_at = time.monotonic()
            while not self._stop.is_set():
                k += 1
                body = {"inputs": [{"idProperty": ID, "id": f"competitor-{k}", "objectWriteTraceId": str(k),
                                    "properties": {"hs_timestamp": "2024-05-01T10:00:00Z"}}]}
                response = client.post("/crm/v3/objects/calls/batch/upsert", json=body)
                self.requests += 1
                self.limited += response.status_code == 429
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))


def run_competitor(path: Path, rows: int, concurrency: int) -> list[Row]:
    with sandbox(*sandbox_args(50)) as sb, tempfile.TemporaryDirectory() as d:
        with Competitor(sb.url, COMPETITOR_PER_WINDOW) as other:
            load = Load(path, Path(d), "beside", sb.url, concurrency).start().wait()
        c = counters(sb.url)
    share, windows = window_share(c)
    ok = load.limited / max(1, load.requests) < 0.005
    return [
        Row(f"beside a competitor ({COMPETITOR_PER_WINDOW}/10 s): bulkload", rows, load.seconds, load.requests,
            load.limited, target="< 0.5 % 429", met=ok),
        Row(f"beside a competitor ({COMPETITOR_PER_WINDOW}/10 s): competitor", 0, load.seconds, other.requests,
            other.limited, note="no retries"),
        Row(f"beside a competitor ({COMPETITOR_PER_WINDOW}/10 s): together", rows, load.seconds,
            load.requests + other.requests, load.limited + other.limited, share, target=">= 95 %",
            met=share >= 0.95 and ok, note=f"{windows} windows"),
    ]


# ---- hubspot-api-client ---------------------------------------------------------------------------


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


def run_sdk(path: Path, seconds: float, threads: int) -> list[Row]:
    from hubspot import HubSpot
    from hubspot.crm.objects.calls import (
        BatchInputSimplePublicObjectBatchInputUpsert,
        SimplePublicObjectBatchInputUpsert,
    )
    from urllib3.util.retry import Retry

    with sandbox(*sandbox_args(50)) as sb:
        batches = source_batches(path)
        lock = threading.Lock()
        tally = {"rows": 0, "requests": 0, "failed": 0}
        t0 = time.perf_counter()
        deadline = t0 + seconds

        def worker() -> None:
            retry = Retry(total=8, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
                          backoff_factor=0.3)
            api = HubSpot(access_token=TOKEN, host=sb.url, retry=retry).crm.objects.calls.batch_api
            while time.perf_counter() < deadline:
                with lock:
                    batch = next(batches, None)
                if batch is None:
                    return
                body = BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
                    SimplePublicObjectBatchInputUpsert(id=i["id"], id_property=ID, object_write_trace_id=i["trace"],
                                                       properties=i["properties"])
                    for i in batch
                ])
                try:
                    api.upsert(batch_input_simple_public_object_batch_input_upsert=body)
                except Exception as e:  # what a plain loop does: note it and go on
                    with lock:
                        tally["failed"] += 1
                    print(f"  sdk request failed: {type(e).__name__}: {str(e)[:120]}", file=sys.stderr)
                    continue
                with lock:
                    tally["rows"] += len(batch)

        with ThreadPoolExecutor(threads) as pool:
            for f in [pool.submit(worker) for _ in range(threads)]:
                f.result()
        elapsed = time.perf_counter() - t0
        c = counters(sb.url)
    share, windows = window_share(c)
    name = "hubspot-api-client, plain loop" if threads == 1 else f"hubspot-api-client, {threads} threads"
    limited = sum(c["rate_limited"].values())
    return [Row(name, tally["rows"], elapsed, c["requests_total"], limited, share,
                note=f"{windows} windows, {tally['failed']} batches lost")]


# ---- rejected batches ------------------------------------------------------------------------------


def spoiled_file(rows: int, bad_rate: float, distinct: bool, seed: int = 11) -> tuple[Path, int, int]:
    """The clean file of `rows` with `bad_rate` of its rows given an hs_call_status no
    portal has; (path, bad rows, distinct bad values)."""
    clean = data_file(rows, bad=False)
    path = OUT / f"{clean.stem}-bad{bad_rate:g}-{'distinct' if distinct else 'repeated'}.csv"
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(rows), round(rows * bad_rate)))
    values = [f"DONE-{k:05d}" if distinct else REPEATED_BAD[k % len(REPEATED_BAD)] for k in range(len(picked))]
    if not path.exists():
        which = dict(zip(picked, values, strict=True))
        with clean.open(newline="", encoding="utf-8") as src, path.open("w", newline="", encoding="utf-8") as dst:
            reader = csv.DictReader(src)
            writer = csv.DictWriter(dst, fieldnames=list(reader.fieldnames or []))
            writer.writeheader()
            for k, row in enumerate(reader):
                if k in which:
                    row["hs_call_status"] = which[k]
                writer.writerow(row)
    return path, len(picked), len(set(values))


def run_reject(rows: int, bad_rate: float, distinct: bool, concurrency: int, checked: bool = False) -> list[Row]:
    path, bad, values = spoiled_file(rows, bad_rate, distinct)
    # Without `checked`, TOKEN may not read the schema: the enumeration options are
    # HubSpot's to judge, and the cost is that of narrowing rejected batches down. With it,
    # the loader's checks refuse the bad values before sending (as a load normally does).
    scope = () if checked else ("--no-schema-read-token", TOKEN)
    with sandbox(*sandbox_args(50, "--mode", "strict", *scope)) as sb, \
            tempfile.TemporaryDirectory() as d:
        load = Load(path, Path(d), "reject", sb.url, concurrency).start().wait()
        c = counters(sb.url)
    upserts = int(c["requests_by_kind"].get("upsert", 0))
    minimum = math.ceil(rows / 100)
    failed = int(load.status["rows"]["failed"])
    ratio = upserts / minimum
    kind = ("distinct" if distinct else f"{values} repeated") + " values" + (", checked first" if checked else "")
    return [Row(f"rejected batches, {bad_rate:.1%} bad ({kind})", rows, load.seconds, upserts,
                int(sum(c["rate_limited"].values())), ratio=ratio, target="<= 1.1 x minimum", met=ratio <= 1.1,
                note=f"minimum {minimum}; floor {minimum + values} = batches + bad values "
                     f"({upserts / (minimum + values):.3f} x floor); {failed} of {bad} bad rows failed, "
                     f"{c['requests_by_status'].get('400', 0)} answered 400")]


# ---- the table -------------------------------------------------------------------------------------


def render(rows: Sequence[Row], baseline: float | None) -> str:
    head = (f"{'scenario':<50} {'rows':>8} {'s':>6} {'rows/s':>7} {'requests':>8} {'429s':>5} {'429 %':>6} "
            f"{'window':>7} {'x min':>6}  {'target':<22} {'met':<4} note")
    lines = [head, "-" * len(head)]
    for r in rows:
        share = f"{r.share:.1%}" if r.share is not None else ""
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else ""
        met = "" if r.met is None else ("yes" if r.met else "NO")
        lines.append(f"{r.scenario:<50} {r.rows:>8,} {r.seconds:>6.1f} {r.rows_per_s:>7,.0f} {r.requests:>8,} "
                     f"{r.limited:>5} {r.limited_fraction:>6.2%} {share:>7} {ratio:>6}  {r.target:<22} {met:<4} "
                     f"{r.note}")
    if baseline:
        alone = next((r for r in rows if r.scenario.startswith("bulkload alone, +-50")), None)
        if alone is not None:
            lines.append(f"bulkload alone (+-50 ms) / hubspot-api-client plain loop: "
                         f"{alone.rows_per_s / baseline:.2f}x rows/s (target >= 3x)")
    return "\n".join(lines)


SCENARIOS = ("alone-50", "alone-100", "two-loads", "competitor", "sdk-loop", "sdk-8-threads", "reject-repeated",
             "reject-distinct", "reject-checked")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=130_000, help="rows of a load alone (>= 120,000 for 60 s)")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long each hubspot-api-client run lasts")
    ap.add_argument("--concurrency", type=int, default=8, help="bulkload --concurrency")
    ap.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    ap.add_argument("--reject-rows", type=int, default=20_000, help="rows of the rejected-batch loads")
    ap.add_argument("--bad-rate", type=float, default=0.005, help="share of bad rows in the rejected-batch loads")
    args = ap.parse_args()
    path = data_file(args.rows, bad=False)
    half = data_file(args.rows // 2, bad=False)
    print(f"file: {path.name} ({args.rows:,} rows); sandbox: {' '.join(sandbox_args()[2:])}", file=sys.stderr)

    runs: dict[str, Callable[[], list[Row]]] = {
        "alone-50": lambda: run_alone(path, args.rows, args.concurrency, 50, 0.985),
        "alone-100": lambda: run_alone(path, args.rows, args.concurrency, 100, 0.98),
        "two-loads": lambda: run_two_loads(half, args.rows // 2, args.concurrency),
        "competitor": lambda: run_competitor(path, args.rows, args.concurrency),
        "sdk-loop": lambda: run_sdk(path, args.seconds, 1),
        "sdk-8-threads": lambda: run_sdk(path, args.seconds, 8),
        "reject-repeated": lambda: run_reject(args.reject_rows, args.bad_rate, False, args.concurrency),
        "reject-distinct": lambda: run_reject(args.reject_rows, args.bad_rate, True, args.concurrency),
        "reject-checked": lambda: run_reject(args.reject_rows, args.bad_rate, True, args.concurrency, checked=True),
    }
    table: list[Row] = []
    baseline: float | None = None
    for name in SCENARIOS:
        if name not in args.only:
            continue
        t0 = time.perf_counter()
        got = runs[name]()
        print(f"  {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        if name == "sdk-loop":
            baseline = got[0].rows_per_s
        table.extend(got)
    print(render(table, baseline))
    judged = [r.met for r in table if r.met is not None]
    print("targets met" if all(judged) else "targets NOT met")


if __name__ == "__main__":
    main()
