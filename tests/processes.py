"""Child processes for the tests that kill them: a sandbox with a persistent store, the
loader's command line, and reads of a journal another process is writing."""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.conftest import ROOT, TOKEN

ID = "external_call_id"


class SandboxCli:
    """`python -m bulkload sandbox --port 0 --store PATH` as a child process, on 127.0.0.1."""

    def __init__(self, store: Path, *options: str) -> None:
        self.command = [sys.executable, "-m", "bulkload", "sandbox", "--host", "127.0.0.1", "--port", "0",
                        "--store", str(store), "--rate-limit", "100000/10", *options]
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.admin: httpx.Client | None = None

    def __enter__(self) -> SandboxCli:
        self.proc = subprocess.Popen(self.command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("listening on http://127.0.0.1:"):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the sandbox did not start (said {line!r})")
        self.base_url = line.removeprefix("listening on ")
        self.admin = httpx.Client(base_url=self.base_url, timeout=60)
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self.admin is not None:
            self.admin.close()
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # closes the store cleanly
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def get(self, what: str, **params: str) -> Any:
        assert self.admin is not None
        response = self.admin.get(f"/_sandbox/{what}", params=params)
        response.raise_for_status()
        return response.json()

    def configure(self, **changes: Any) -> None:
        assert self.admin is not None
        self.admin.post("/_sandbox/config", json=changes).raise_for_status()

    def store(self) -> dict[str, dict[str, str]]:
        records: dict[str, dict[str, str]] = self.get("store", id_property=ID)["records"]
        return records

    def env(self) -> dict[str, str]:
        return {**os.environ, "HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_BASE_URL": self.base_url}


def bulkload(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bulkload", *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def read_journal(path: Path, sql: str) -> Any:
    """One value from a journal another process may be writing (None while it cannot be read)."""
    if not path.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return None


def claims(path: Path) -> int:
    return int(read_journal(path, "SELECT COALESCE(SUM(attempts), 0) FROM batches") or 0)


def wait_until(proc: subprocess.Popen[bytes], ok: Any, timeout: float = 60) -> bool:
    """Poll `ok()` until it holds; False if the process exited first."""
    deadline = time.monotonic() + timeout
    while not ok():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the loader made no progress"
        time.sleep(0.01)
    return True


def status_json(job_id: str, job_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bulkload", "status", job_id, "--job-dir", str(job_dir), "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result
