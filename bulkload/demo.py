"""`bulkload demo`: the whole flow offline against an in-process sandbox."""

from __future__ import annotations

import contextlib
import shlex
import threading
from collections.abc import Callable
from pathlib import Path

from bulkload import api
from bulkload.config import Connection, JobConfig
from bulkload.errors import EXIT_OK
from bulkload.journal import Journal
from bulkload.pipeline import Runtime
from bulkload.report import render_summary, summary, write_report
from bulkload.sandbox import SandboxConfig, SandboxServer
from bulkload.status import job_dir_flag

DEMO_TOKEN = "demo-token"


def sample_file() -> Path:
    here = Path(__file__).resolve().parent.parent / "sample_data" / "calls.csv"
    return here if here.exists() else Path("sample_data/calls.csv")


def demo_report(job_id: str, job_dir: Path) -> str:
    """Write the CSV template; return the cards and how to replay it."""
    with api.open_journal(job_dir, job_id) as journal:
        written = write_report(journal, "csv")
        cards, superseded = summary(journal)
        flag = job_dir_flag(journal.path.parent)
    return "\n".join([
        render_summary(cards, superseded),
        "",
        f"Failed-rows report (CSV, a corrected-file template): {written.path}",
        "Fix the values in a spreadsheet, save it as CSV, then replay the fixed rows:",
        f"  bulkload retry {job_id}{flag} --from {shlex.quote(str(written.path))}",
    ])


def run_demo(job_dir: Path, *, keep_running: bool, echo: Callable[[str], None]) -> int:
    from bulkload.views import render_run_summary

    source = sample_file()
    with SandboxServer(SandboxConfig(tokens=(DEMO_TOKEN,))) as sandbox:
        echo(f"sandbox listening on {sandbox.base_url}")
        echo(f"loading {source} into the sandbox …")
        conn = Connection(base_url=sandbox.base_url, token=DEMO_TOKEN)
        result = api.load(JobConfig(source=source, id_property="external_call_id"), conn, job_dir=job_dir,
                          runtime=Runtime())
        echo("")
        with Journal.open(result.journal) as journal:
            by_type = journal.failed_by_type()
        echo(render_run_summary(api.status(result.job_id, job_dir=job_dir), by_type))
        echo("")
        echo(demo_report(result.job_id, job_dir))
        if keep_running:
            echo(f"\nsandbox still running on {sandbox.base_url} (Ctrl-C to stop)")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    return EXIT_OK
