"""A `retry` killed (SIGKILL-like: os._exit) right after a committed transition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bulkload.sandbox import SandboxConfig, SandboxServer
from tests.conftest import COLUMNS, ROOT, TOKEN, good_row, write_csv

ID = "external_call_id"
# Runs the CLI and dies (no cleanup at all, as under SIGKILL) after the first checkpoint named $CRASH_NAME.
CRASHING_CLI = """
import os, sys
import bulkload.journal as J
orig = J.Journal.__init__
def init(self, path, db, *, writable, checkpoint=None):
    def cp(name):
        if name == os.environ["CRASH_NAME"]:
            os._exit(137)
    orig(self, path, db, writable=writable, checkpoint=cp)
J.Journal.__init__ = init
from bulkload.cli import cli
cli(sys.argv[1:])
"""


def _cli(sb: SandboxServer, tmp: Path, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_BASE_URL": sb.base_url,
           "XDG_STATE_HOME": str(tmp / "state")}
    if crash:
        env["CRASH_NAME"] = crash
        cmd = [sys.executable, "-c", CRASHING_CLI, *args]
    else:
        cmd = [sys.executable, "-m", "bulkload", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_retry_killed_after_reopening_failed_associations_is_finished_by_the_next_command(tmp_path: Path) -> None:
    rows = [{**good_row(i), "contact_email": f"contact-{i:05d}@example.com" if i % 3 else f"later-{i}@example.com"}
            for i in range(1, 31)]
    src = write_csv(tmp_path / "calls.csv", rows, (*COLUMNS, "contact_email"))
    jd = tmp_path / "jobs"
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=None, contacts=40)) as sb:
        load = _cli(sb, tmp_path, "load", str(src), "--id-property", ID, "--job-id", "k", "--job-dir", str(jd),
                    "--associate", "contact_email=contacts.email", "--no-progress")
        assert load.returncode == 1, load.stdout + load.stderr
        sb.create_records("contacts", [{"email": f"later-{i}@example.com"} for i in range(3, 31, 3)])
        killed = _cli(sb, tmp_path, "retry", "k", "--job-dir", str(jd), crash="reopen_failed_pairs")
        assert killed.returncode == 137
        resumed = _cli(sb, tmp_path, "resume", "k", "--job-dir", str(jd), "--no-progress")
        retried = _cli(sb, tmp_path, "retry", "k", "--job-dir", str(jd), "--no-progress")
        status = json.loads(_cli(sb, tmp_path, "status", "k", "--job-dir", str(jd), "--json").stdout)
        # Either command must make the 10 associations the killed retry reopened; neither may
        # exit 0 while they are still pending.
        assert status["associations"] == {"total": 30, "created": 30, "failed": 0, "pending": 0}, \
            (resumed.returncode, retried.returncode, status["associations"])
        assert status["state"] == "completed"
