"""`--notify URL`: one POST when the job finishes, pauses or stops, against a local receiver.

The payload's fields (DESIGN.md section 2), no token and no row data in it, exactly one
POST per command (a finish, a Ctrl-C pause, a daily-budget pause, a refusal after the job
exists), and a webhook that answers 500, is down or is slow changes nothing but the
journal's log of it.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from bulkload import api
from bulkload.config import Connection, JobConfig
from bulkload.errors import EXIT_RESUMABLE
from bulkload.journal import journal_path
from bulkload.notify import Notifier, check_url
from bulkload.pipeline import Runtime
from bulkload.sandbox import SandboxServer
from tests.conftest import (
    ROOT,
    SAMPLE_CSV,
    TOKEN,
    cli_env,
    good_row,
    read_csv_rows,
    run_cli,
    write_csv,
)

ID = "external_call_id"
CONTRACT = {"job_id", "state", "exit_code", "rows", "associations", "errors_by_category", "resume_command"}


class Receiver:
    """A webhook on 127.0.0.1: records each POST; answers `status` after `delay` seconds."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.posts: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append({"path": self.path, "headers": dict(self.headers), "raw": body,
                                       "json": json.loads(body)})
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-path-T000/B000"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def one(self) -> dict[str, Any]:
        assert len(self.posts) == 1, f"{len(self.posts)} POSTs, not one"
        body: dict[str, Any] = self.posts[0]["json"]
        return body


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens there now


def _notices(job_dir: Path, job_id: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(journal_path(job_dir, job_id))
    try:
        return con.execute("SELECT event, state, exit_code, target, outcome, http_status, error FROM notices"
                           " ORDER BY notice_no").fetchall()
    finally:
        con.close()


def _status(job_dir: Path, job_id: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(run_cli(["status", job_id, "--job-dir", str(job_dir), "--json"]).stdout)
    return out


def _load(src: Path, sb: SandboxServer, job_dir: Path, job_id: str, *extra: str) -> Any:
    return run_cli(["load", str(src), "--id-property", ID, "--job-dir", str(job_dir), "--job-id", job_id,
                    "--no-progress", *extra], env=cli_env(sb))


def test_a_finished_load_posts_once_with_the_contract_fields_and_no_token_or_row_data(
    receiver: Receiver, sandbox: SandboxServer, job_dir: Path
) -> None:
    res = _load(SAMPLE_CSV, sandbox, job_dir, "sample", "--associate", "contact_email=contacts.email",
                "--notify", receiver.url)
    assert res.exit_code == 1, res.output  # the sample has bad rows
    body = receiver.one()
    assert set(body) >= CONTRACT
    st = _status(job_dir, "sample")
    assert body["job_id"] == "sample" and body["state"] == st["state"] == "completed_with_errors"
    assert body["event"] == "finished" and body["exit_code"] == 1
    assert body["rows"] == st["rows"] and body["associations"] == st["associations"]
    cards = json.loads(run_cli(["report", "sample", "--job-dir", str(job_dir), "--summary", "--json"]).stdout)
    assert body["errors_by_category"] == {c["category"]: c["errors"] for c in cards["categories"] if c["errors"]}
    assert body["resume_command"] is None and body["report_command"] == st["report_command"]
    raw = receiver.posts[0]["raw"].decode()
    assert TOKEN not in raw and "Bearer" not in raw
    # No cell of the source file is in it (ids, titles, numbers, e-mails, notes).
    cells = {v for row in read_csv_rows(SAMPLE_CSV) for v in row.values() if len(v) >= 6}
    leaked = [v for v in cells if v in raw]
    assert not leaked, leaked[:5]
    assert receiver.posts[0]["headers"]["Content-Type"] == "application/json"
    assert "text" not in body  # not a Slack URL
    # Logged in the journal: where to (scheme and host, never the secret path), and that it was taken.
    notices = _notices(job_dir, "sample")
    assert len(notices) == 1
    event, state, code, target, outcome, http_status, error = notices[0]
    assert (event, state, code, outcome, http_status, error) == ("finished", "completed_with_errors", 1, "sent",
                                                                 200, None)
    assert target == receiver.url.split("/hooks")[0] and "secret" not in target


def test_ctrl_c_pauses_the_job_and_notifies_once_with_the_resume_command(
    receiver: Receiver, sandbox: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    sandbox.configure(latency_ms=200)
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 801)])
    env = {"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_BASE_URL": sandbox.base_url, "PATH": "/usr/bin:/bin",
           "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.Popen([sys.executable, "-m", "bulkload", "load", str(src), "--id-property", ID, "--job-dir",
                             str(job_dir), "--job-id", "ctrlc", "--no-progress", "--batch-size", "10",
                             "--concurrency", "2", "--notify", receiver.url],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        path = journal_path(job_dir, "ctrlc")
        deadline = time.monotonic() + 60
        while not _batches_done(path):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_RESUMABLE, err
    body = receiver.one()
    assert body["state"] == "paused" and body["event"] == "paused" and body["exit_code"] == EXIT_RESUMABLE
    assert body["resume_command"] == f"bulkload resume ctrlc --job-dir {job_dir.resolve()}"
    assert "Ctrl-C" in (body["paused_reason"] or "")
    assert body["rows"]["pending"] > 0
    assert [n[4] for n in _notices(job_dir, "ctrlc")] == ["sent"]


def _batches_done(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM batches WHERE status = 'done'").fetchone()[0]) >= 2
        finally:
            con.close()
    except sqlite3.Error:
        return False


def test_a_spent_daily_budget_notifies_paused_once(receiver: Receiver, sandbox: SandboxServer, job_dir: Path,
                                                   tmp_path: Path) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 101)])
    res = _load(src, sandbox, job_dir, "budget", "--daily-budget", "3", "--batch-size", "10", "--notify",
                receiver.url)
    assert res.exit_code == 75, res.output
    body = receiver.one()
    assert (body["state"], body["event"], body["exit_code"]) == ("paused", "paused", 75)
    assert "daily budget" in body["paused_reason"]
    assert body["resume_command"].startswith("bulkload resume budget --job-dir ")


def test_a_refusal_after_the_job_exists_notifies_stopped_with_exit_2(
    receiver: Receiver, sandbox: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 101)])
    assert _load(src, sandbox, job_dir, "changed", "--daily-budget", "3", "--batch-size", "10").exit_code == 75
    write_csv(src, [good_row(i, hs_call_title="changed") for i in range(1, 101)])
    res = run_cli(["resume", "changed", "--job-dir", str(job_dir), "--no-progress", "--notify", receiver.url],
                  env=cli_env(sandbox))
    assert res.exit_code == 2, res.output
    body = receiver.one()
    assert (body["state"], body["event"], body["exit_code"]) == ("paused", "stopped", 2)


def test_a_refusal_that_leaves_no_job_notifies_nobody(receiver: Receiver, sandbox: SandboxServer, job_dir: Path,
                                                      tmp_path: Path) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 11)])
    res = _load(src, sandbox, job_dir, "nojob", "--column", "hs_call_title=no_such_property", "--notify",
                receiver.url)
    assert res.exit_code == 2, res.output
    assert not journal_path(job_dir, "nojob").exists()
    assert receiver.posts == []


def test_resume_and_retry_notify_once_each(receiver: Receiver, sandbox: SandboxServer, job_dir: Path,
                                           tmp_path: Path) -> None:
    rows = [good_row(i) for i in range(1, 41)]
    rows[5]["hs_call_status"] = "DONE"  # not an option: one failed row
    src = write_csv(tmp_path / "calls.csv", rows)
    assert _load(src, sandbox, job_dir, "twice", "--daily-budget", "3", "--batch-size", "10").exit_code == 75
    res = run_cli(["resume", "twice", "--job-dir", str(job_dir), "--no-progress", "--daily-budget", "100",
                   "--notify", receiver.url], env=cli_env(sandbox))
    assert res.exit_code == 1, res.output
    body = receiver.one()
    assert (body["state"], body["event"], body["exit_code"]) == ("completed_with_errors", "finished", 1)
    assert body["errors_by_category"] == {"PICKLISTS": 1}
    receiver.posts.clear()
    res = run_cli(["retry", "twice", "--job-dir", str(job_dir), "--no-progress", "--notify", receiver.url],
                  env=cli_env(sandbox))
    assert res.exit_code == 1, res.output
    body = receiver.one()
    assert (body["state"], body["exit_code"]) == ("completed_with_errors", 1)


@pytest.mark.parametrize("kind", ["answers 500", "is down"])
def test_a_failing_webhook_is_logged_and_changes_nothing_else(kind: str, sandbox: SandboxServer, job_dir: Path,
                                                              tmp_path: Path) -> None:
    rows = [good_row(i) for i in range(1, 21)]
    rows[3]["hs_call_status"] = "DONE"
    src = write_csv(tmp_path / "calls.csv", rows)
    with Receiver(status=500) as failing:
        url = failing.url if kind == "answers 500" else _closed_port_url()
        res = _load(src, sandbox, job_dir, "hook", "--notify", url)
        quiet = _load(src, sandbox, job_dir, "plain")
    # The same exit code, state, counts and output as the same load without a webhook.
    assert res.exit_code == quiet.exit_code == 1, res.output
    assert res.stderr == quiet.stderr
    ignore = ("created", "updated")  # the second load updates what the first created
    hook, plain = _status(job_dir, "hook"), _status(job_dir, "plain")
    assert {k: v for k, v in hook["rows"].items() if k not in ignore} == \
        {k: v for k, v in plain["rows"].items() if k not in ignore}
    assert len(res.stdout.splitlines()) == len(quiet.stdout.splitlines())
    assert _status(job_dir, "hook")["state"] == "completed_with_errors"
    (event, state, code, target, outcome, http_status, error), = _notices(job_dir, "hook")
    assert (event, state, code, outcome) == ("finished", "completed_with_errors", 1, "failed")
    if kind == "answers 500":
        assert http_status == 500 and error == "the webhook answered HTTP 500"
        assert len(failing.posts) == 1
    else:
        assert http_status is None and error.startswith("unreachable")
    assert "/hook" not in target and "secret" not in (error or "")


def test_a_slow_webhook_times_out_and_the_result_stands(sandbox: SandboxServer, job_dir: Path,
                                                        tmp_path: Path) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 11)])
    with Receiver(delay=3.0) as slow:
        started = time.monotonic()
        result = api.load(JobConfig(source=src, id_property=ID), Connection(sandbox.base_url, TOKEN),
                          job_dir=job_dir, job_id="slow", runtime=Runtime(), notify=Notifier(slow.url, timeout=0.5))
        took = time.monotonic() - started
    assert result.exit_code == 0 and result.state == "completed"
    assert took < 3.0
    (_, _, _, _, outcome, _, error), = _notices(job_dir, "slow")
    assert outcome == "failed" and error == "no answer within 0.5 s"


def test_a_slack_webhook_also_gets_a_text_line(tmp_path: Path, sandbox: SandboxServer, job_dir: Path) -> None:
    seen: list[dict[str, Any]] = []

    def slack(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, text="ok")

    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 11)])
    notifier = Notifier("https://hooks.slack.com/services/T000/B000/XXXX", transport=httpx.MockTransport(slack))
    api.load(JobConfig(source=src, id_property=ID), Connection(sandbox.base_url, TOKEN), job_dir=job_dir,
             job_id="slack", runtime=Runtime(), notify=notifier)
    (body,) = seen
    assert body["text"].startswith("bulkload job slack: completed (exit 0) · 10 of 10 rows upserted")
    assert set(body) >= CONTRACT
    (_, _, _, target, outcome, _, _), = _notices(job_dir, "slack")
    assert target == "https://hooks.slack.com" and outcome == "sent"


@pytest.mark.parametrize("url", ["http://example.com/hook", "ftp://127.0.0.1/x", "not a url", "https://"])
def test_a_webhook_url_that_cannot_be_used_is_refused_before_anything_is_sent(
    url: str, sandbox: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 11)])
    before = sandbox.counters()["requests_total"]
    res = _load(src, sandbox, job_dir, "badurl", "--notify", url)
    assert res.exit_code == 2, res.output
    assert "--notify" in res.stderr and "Traceback" not in res.output
    assert not journal_path(job_dir, "badurl").exists()
    assert sandbox.counters()["requests_total"] == before


def test_loopback_http_and_https_are_accepted() -> None:
    for url in ("http://127.0.0.1:9/x", "http://localhost/x", "http://[::1]:8080/x", "https://example.com/hook"):
        assert check_url(url) == url
