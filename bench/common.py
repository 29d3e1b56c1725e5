"""Shared helpers for the benchmarks: generated data, a sandbox subprocess, timed CLI runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # a bench runs from bench/: the repo's sample_data/ is imported too
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
TOKEN = "bench-token"


def data_file(rows: int, *, fmt: str = "csv", bad: bool = True, seed: int = 7) -> Path:
    """A generated call file, cached under bench/out/ (deterministic for a given size and seed)."""
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"calls-{rows}-{seed}{'' if bad else '-clean'}"
    path = OUT / f"{name}.{fmt}"
    if not path.exists():
        cmd = [PYTHON, str(ROOT / "sample_data" / "generate.py"), "--rows", str(rows), "--seed", str(seed),
               "--out", str(OUT), "--format", fmt, "--name", name, "--bad" if bad else "--no-bad",
               *(["--bad-rate", "0.001", "--dup-rate", "0.001"] if bad else [])]
        subprocess.run(cmd, check=True)
    return path


@dataclass
class Sandbox:
    url: str
    proc: subprocess.Popen[str]


@contextmanager
def sandbox(*args: str) -> Iterator[Sandbox]:
    """`bulkload sandbox --port 0 ARGS` in its own process (its own core), stopped on exit."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "bulkload", "sandbox", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            raise RuntimeError(f"sandbox did not start: {line!r}")
        yield Sandbox(m.group(1), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Timed:
    seconds: float
    max_rss_kb: int
    exit_code: int
    stdout: str
    stderr: str


def timed_cli(args: Sequence[str], *, url: str, env: dict[str, str] | None = None) -> Timed:
    """Run `bulkload ARGS` under /usr/bin/time -v: wall seconds and peak RSS."""
    full_env = dict(os.environ, HUBSPOT_ACCESS_TOKEN=TOKEN, HUBSPOT_BASE_URL=url, **(env or {}))
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", PYTHON, "-m", "bulkload", *args], env=full_env,
                       capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    return Timed(seconds, int(m.group(1)) if m else 0, p.returncode, p.stdout, p.stderr)
