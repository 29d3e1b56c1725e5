"""`bulkload demo`: the whole flow offline against an in-process sandbox."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

from bulkload import api
from bulkload.config import Connection, JobConfig
from bulkload.errors import EXIT_OK
from bulkload.pipeline import Runtime
from bulkload.sandbox import SandboxConfig, SandboxServer

DEMO_TOKEN = "demo-token"


def sample_file() -> Path:
    here = Path(__file__).resolve().parent.parent / "sample_data" / "calls.csv"
    return here if here.exists() else Path("sample_data/calls.csv")


def run_demo(job_dir: Path, *, keep_running: bool, echo: Callable[[str], None]) -> int:
    from bulkload.views import render_summary

    source = sample_file()
    with SandboxServer(SandboxConfig(tokens=(DEMO_TOKEN,))) as sandbox:
        echo(f"sandbox listening on {sandbox.base_url}")
        echo(f"loading {source} into the sandbox …")
        conn = Connection(base_url=sandbox.base_url, token=DEMO_TOKEN)
        result = api.load(JobConfig(source=source, id_property="external_call_id"), conn, job_dir=job_dir,
                          runtime=Runtime())
        echo("")
        echo(render_summary(result.job_id, job_dir))
        try:
            from bulkload.report import demo_report

            echo("")
            echo(demo_report(result.job_id, job_dir))
        except ImportError:
            pass
        if keep_running:
            echo(f"\nsandbox still running on {sandbox.base_url} (Ctrl-C to stop)")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    return EXIT_OK
