"""`bulkload demo`: the whole flow offline against an in-process sandbox, ending with the
commands to run next, spelled so that they run when pasted (the program as it was called,
the sandbox's address and token, the job dir when it is not the default)."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from bulkload import api
from bulkload.config import Connection, JobConfig, parse_association
from bulkload.errors import EXIT_OK
from bulkload.journal import Journal
from bulkload.pipeline import Runtime
from bulkload.reports import render_summary, summary, write_report
from bulkload.sandbox import SandboxConfig, SandboxServer
from bulkload.status import job_dir_flag

DEMO_TOKEN = "demo-token"
# sample_data/calls.csv names contacts 1..200 (and one e-mail no contact has): the
# sandbox seeds them, and the demo associates every call with its contacts.
DEMO_CONTACTS = 200
DEMO_ASSOCIATE = parse_association("contact_email=contacts.email")


def sample_file() -> Path:
    here = Path(__file__).resolve().parent.parent / "sample_data" / "calls.csv"
    return here if here.exists() else Path("sample_data/calls.csv")


def program() -> str:
    """How to run bulkload again, as this process was run: `bulkload` when that is on the
    PATH, else the absolute path it was called by (`make demo` runs `.venv/bin/bulkload`:
    printed relative, it would not run when pasted in another directory), else
    `python -m bulkload`."""
    argv0 = sys.argv[0] if sys.argv else ""
    on_path = shutil.which("bulkload")
    if on_path and argv0 and os.path.realpath(on_path) == os.path.realpath(argv0):
        return "bulkload"
    if argv0 and Path(argv0).name == "bulkload" and Path(argv0).exists():
        return shlex.quote(str(Path(argv0).absolute()))
    if on_path:
        return "bulkload"
    return f"{shlex.quote(sys.executable)} -m bulkload"


def demo_report(job_id: str, job_dir: Path, prog: str = "bulkload") -> tuple[str, Path]:
    """Write the CSV template; return the cards with where the template is, and its path."""
    with api.open_journal(job_dir, job_id) as journal:
        written = write_report(journal, "csv")
        cards, superseded = summary(journal)
        flag = job_dir_flag(journal.path.parent)
    text = "\n".join([
        render_summary(cards, superseded),
        "",
        f"Failed-rows report (CSV, a corrected-file template): {written.path}",
        "Fix the values in a spreadsheet, save it as CSV, then replay the fixed rows:",
        f"  {prog} retry {job_id}{flag} --from {shlex.quote(str(written.path))}",
    ])
    return text, written.path


def run_demo(job_dir: Path, *, keep_running: bool, echo: Callable[[str], None]) -> int:
    from bulkload.views import render_run_summary

    source = sample_file()
    prog = program()
    config = SandboxConfig(tokens=(DEMO_TOKEN,), contacts=DEMO_CONTACTS)
    with SandboxServer(config) as sandbox:
        echo(f"sandbox listening on {sandbox.base_url} (token {DEMO_TOKEN}, {DEMO_CONTACTS} contacts)")
        echo(f"loading {source} into the sandbox, each call associated with the contacts its "
             f"{DEMO_ASSOCIATE.column} names …")
        conn = Connection(base_url=sandbox.base_url, token=DEMO_TOKEN)
        job = JobConfig(source=source, id_property="external_call_id", associations=(DEMO_ASSOCIATE,))
        result = api.load(job, conn, job_dir=job_dir, runtime=Runtime())
        echo("")
        with Journal.open(result.journal) as journal:
            by_type = journal.failed_by_type()
        echo(render_run_summary(api.status(result.job_id, job_dir=job_dir), by_type))
        echo("")
        cards, template = demo_report(result.job_id, job_dir, prog)
        echo(cards)
        echo("")
        with api.open_journal(job_dir, result.job_id) as journal:
            flag = job_dir_flag(journal.path.parent)
        job_ref = f"{result.job_id}{flag}"
        echo("Next, from any directory" + ("" if keep_running else " (status and report work offline)") + ":")
        echo(f"  export HUBSPOT_BASE_URL={sandbox.base_url} HUBSPOT_ACCESS_TOKEN={DEMO_TOKEN}")
        echo(f"  {prog} status {job_ref}")
        echo(f"  {prog} report {job_ref} --format jsonl -o -")
        echo(f"  {prog} report {job_ref} --upserted --format csv -o -    # each call's HubSpot id and contacts")
        echo(f"  {prog} retry {job_ref} --from {shlex.quote(str(template.resolve()))}")
        echo(f"  {prog} report {job_ref} --format html     # the job's health page, one offline file")
        if not keep_running:
            echo(f"The sandbox stops with the demo: `{prog} demo --keep-running` keeps it up for the retry.")
        page = demo_page(result.job_id, job_dir)
        echo("")
        echo(f"The job's health page (open it in a browser; it works offline): {page}")
        if keep_running:
            echo(f"\nsandbox still running on {sandbox.base_url} (Ctrl-C to stop)")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    return EXIT_OK


def demo_page(job_id: str, job_dir: Path) -> Path:
    """Write the job's health page beside its journal; its path."""
    from bulkload.reports.html import write_page

    with api.open_journal(job_dir, job_id) as journal:
        return write_page(journal).path
