"""The command line: parse, call the library, print. Nothing else lives here.

The one table from outcome to exit code: a RunResult carries 0 or 1; every
BulkloadError carries its class's exit code (2, 75, 77).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click
from tqdm import tqdm

from bulkload import api
from bulkload.config import (
    MAX_BATCH_SIZE,
    Connection,
    JobConfig,
    Rate,
    Tuning,
    default_job_dir,
    parse_column_overrides,
    read_map_file,
    resolve_connection,
)
from bulkload.errors import EXIT_RESUMABLE, AuthError, BulkloadError, StopResumable
from bulkload.pipeline import Runtime

JOB_DIR = click.option(
    "--job-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where job journals and reports live. Default: $BULKLOAD_JOB_DIR, else ./jobs.",
)


def _job_dir(value: Path | None) -> Path:
    return value if value is not None else default_job_dir()


def fail(e: BulkloadError, job_id: str | None = None) -> NoReturn:
    """Print one line (and the resume hint when there is something to resume), then exit."""
    from bulkload.errors import Interrupted

    if job_id and isinstance(e, Interrupted):
        # One line, the same one a second Ctrl-C prints: scripts and people look for it.
        click.echo(f"Interrupted. Resume with: bulkload resume {job_id}", err=True)
        sys.exit(e.exit_code)
    click.echo(f"error: {e}" if not isinstance(e, StopResumable | AuthError) else _stop_line(e), err=True)
    if job_id and isinstance(e, StopResumable | AuthError):
        click.echo(f"Resume with: bulkload resume {job_id}", err=True)
    sys.exit(e.exit_code)


def _stop_line(e: BulkloadError) -> str:
    from bulkload.errors import Interrupted

    if isinstance(e, Interrupted):
        return "Interrupted."
    if isinstance(e, AuthError):
        return f"Paused: HubSpot refused the token ({e.status}): {e}"
    return f"Paused: {e}"


class TqdmProgress:
    """Rows, rows/s and ETA on stderr; off when stderr is not a terminal or with --no-progress."""

    def __init__(self, enabled: bool, desc: str) -> None:
        self.enabled = enabled
        self.desc = desc
        self.bar: tqdm[Any] | None = None

    def start(self, total: int, done: int) -> None:
        if self.enabled:
            self.bar = tqdm(total=total, initial=done, unit="row", unit_scale=True, desc=self.desc,
                            dynamic_ncols=True, file=sys.stderr, smoothing=0.1)

    def advance(self, rows: int) -> None:
        if self.bar is not None:
            self.bar.update(rows)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@contextmanager
def graceful_signals(stop: threading.Event, job_id: str) -> Iterator[None]:
    """First Ctrl-C/SIGTERM: stop claiming batches and let in-flight ones finish.
    Second: leave at once. The journal is consistent at every instant, so both are resumable."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            click.echo(f"\nInterrupted. Resume with: bulkload resume {job_id}", err=True)
            os._exit(EXIT_RESUMABLE)
        stop.set()
        click.echo("\nStopping: finishing in-flight requests (Ctrl-C again to stop at once)…", err=True)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def tuning_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True,
                         help="Requests in flight at once. The rate limit still governs the pace."),
            click.option("--rate", "rate", default=None, metavar="N/SECONDS",
                         help="Fix the request rate (e.g. 190/10) instead of learning it from HubSpot's "
                              "X-HubSpot-RateLimit-* headers."),
            click.option("--daily-budget", type=click.IntRange(min=1), default=None, metavar="N",
                         help="API calls this job may spend per rolling 24 hours (its share of the account's "
                              "daily limit); when spent the job pauses (exit 75)."),
            click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
                         help="Seconds to wait for one HTTP response."),
            click.option("--max-attempts", type=click.IntRange(min=1), default=8, show_default=True,
                         help="Tries per request on transient failures before the job pauses."),
            click.option("--base-url", default=None, envvar="HUBSPOT_BASE_URL",
                         help="HubSpot API base URL (env HUBSPOT_BASE_URL; default https://api.hubapi.com). "
                              "Plain http:// only for loopback."),
            click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         help="Read the access token from this file instead of $HUBSPOT_ACCESS_TOKEN."),
            click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object."),
            click.option("--no-progress", is_flag=True, help="No progress bar."),
        ]
    ):
        f = opt(f)
    return f


def _tuning(concurrency: int, rate: str | None, daily_budget: int | None, timeout: float,
            max_attempts: int) -> Tuning:
    return Tuning(
        concurrency=concurrency,
        rate=Rate.parse(rate) if rate else None,
        daily_budget=daily_budget,
        timeout=timeout,
        max_attempts=max_attempts,
    )


def print_result(result: api.RunResult, as_json: bool) -> None:
    if as_json:
        status = api.status(result.job_id, job_dir=result.journal.parent)
        click.echo(json.dumps(status | {"exit_code": result.exit_code}, indent=None))
        return
    from bulkload.views import render_summary

    click.echo(render_summary(result.job_id, result.journal.parent))


class _Commands(click.Group):
    """The `bulkload` group; `sandbox` is imported only when used (its server stack is heavy)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "sandbox"])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "sandbox":
            from bulkload.sandbox import sandbox_command

            return sandbox_command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="bulkload")
def cli() -> None:
    """Load call records from CSV or Parquet into HubSpot through the CRM batch upsert API.

    Every job is journaled in SQLite: an interrupted job resumes where it stopped,
    failed rows are retried under HubSpot's rate limits, and rows that still fail
    land in a report you can fix and replay.

    \b
    Authentication: HUBSPOT_ACCESS_TOKEN or --token-file.
    Exit codes: 0 all rows upserted, 1 some rows failed (see `report`),
    2 unusable input or usage (nothing sent), 75 paused and resumable,
    77 token refused (paused).
    """


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--id-property", required=True, metavar="NAME",
              help="The unique-value property that identifies records (its column supplies the id).")
@click.option("--object", "object_type", default="calls", show_default=True, help="HubSpot object type.")
@JOB_DIR
@click.option("--job-id", default=None, help="Name the job (default: SOURCE-STEM-DATE-TIME-XXXX).")
@click.option("--map", "map_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help='TOML file with a [columns] table: "source column" = "property" ("" drops the column).')
@click.option("--column", "columns", multiple=True, metavar="SRC=PROP",
              help="Map a source column to a property; SRC= drops the column. Repeatable.")
@click.option("--format", "source_format", type=click.Choice(["csv", "parquet"]), default=None,
              help="Source format (default: from the file).")
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH_SIZE), default=MAX_BATCH_SIZE, show_default=True,
              help="Inputs per upsert request.")
@click.option("--dry-run", is_flag=True, help="Read, map and check the file locally; send nothing.")
@tuning_options
def load(source: Path, id_property: str, object_type: str, job_dir: Path | None, job_id: str | None,
         map_file: Path | None, columns: tuple[str, ...], source_format: str | None, batch_size: int,
         dry_run: bool, concurrency: int, rate: str | None, daily_budget: int | None, timeout: float,
         max_attempts: int, base_url: str | None, token_file: Path | None, as_json: bool,
         no_progress: bool) -> None:
    """Load SOURCE (CSV or Parquet) into HubSpot, upserting by --id-property.

    \b
    Example:
      export HUBSPOT_ACCESS_TOKEN=pat-...
      bulkload load calls.csv --id-property external_call_id --column "Call ID=external_call_id"
    """
    try:
        mapping = read_map_file(map_file) if map_file else {}
        mapping.update(parse_column_overrides(columns))
        config = JobConfig(source=source, id_property=id_property, object_type=object_type,
                           source_format=source_format, columns=mapping, batch_size=batch_size)
        tuning = _tuning(concurrency, rate, daily_budget, timeout, max_attempts)
        if dry_run:
            from bulkload.dryrun import dry_run as run_dry

            report = run_dry(config)
            click.echo(json.dumps(report, indent=None if as_json else 2))
            return
        conn = resolve_connection(base_url, token_file)
    except BulkloadError as e:
        fail(e)
    job_id = job_id or api.new_job_id(source)
    _run_job(lambda rt: api.load(config, conn, job_dir=_job_dir(job_dir), job_id=job_id, tuning=tuning,
                                 runtime=rt), job_id, as_json, no_progress, "load", _job_dir(job_dir))


def _run_job(run: Callable[[Runtime], api.RunResult], job_id: str, as_json: bool, no_progress: bool,
             desc: str, job_dir: Path) -> NoReturn:
    rt = Runtime(progress=TqdmProgress(not no_progress and sys.stderr.isatty(), desc))
    try:
        with graceful_signals(rt.stop, job_id):
            result = run(rt)
    except BulkloadError as e:
        if as_json and isinstance(e, StopResumable | AuthError):
            # Scripts get the paused job's status on stdout too; the reason goes to stderr.
            with suppress(BulkloadError):
                click.echo(json.dumps(api.status(job_id, job_dir=job_dir) | {"exit_code": e.exit_code}))
        fail(e, job_id)
    print_result(result, as_json)
    sys.exit(result.exit_code)


@cli.command()
@click.argument("job_id")
@JOB_DIR
@tuning_options
def resume(job_id: str, job_dir: Path | None, concurrency: int, rate: str | None, daily_budget: int | None,
           timeout: float, max_attempts: int, base_url: str | None, token_file: Path | None, as_json: bool,
           no_progress: bool) -> None:
    """Continue JOB_ID where it stopped: finished batches are skipped, unrecorded ones re-sent.

    The source file must be the one the job started on (size and content hash are checked).
    Tuning flags may differ from the first run.
    """
    try:
        tuning = _tuning(concurrency, rate, daily_budget, timeout, max_attempts)
        conn: Connection = resolve_connection(base_url, token_file)
    except BulkloadError as e:
        fail(e)
    _run_job(lambda rt: api.resume(job_id, conn, job_dir=_job_dir(job_dir), tuning=tuning, runtime=rt),
             job_id, as_json, no_progress, "resume", _job_dir(job_dir))


@cli.command()
@click.argument("job_id")
@JOB_DIR
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (a stable contract for scripts).")
def status(job_id: str, job_dir: Path | None, as_json: bool) -> None:
    """Show JOB_ID's state, row and batch counts, errors by category and API usage."""
    try:
        if as_json:
            click.echo(json.dumps(api.status(job_id, job_dir=_job_dir(job_dir))))
        else:
            from bulkload.views import render_status

            click.echo(render_status(job_id, _job_dir(job_dir)))
    except BulkloadError as e:
        fail(e)


@cli.command()
@JOB_DIR
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def jobs(job_dir: Path | None, as_json: bool) -> None:
    """List the jobs in the job dir: state, progress, last activity, and how to resume."""
    entries = api.list_jobs(job_dir=_job_dir(job_dir))
    if as_json:
        click.echo(json.dumps(entries))
        return
    if not entries:
        click.echo(f"no jobs in {_job_dir(job_dir)}")
        return
    from bulkload.views import render_jobs

    click.echo(render_jobs(entries))


@cli.command()
@click.argument("job_id")
@JOB_DIR
@click.option("--error-type", "error_types", multiple=True, metavar="TYPE",
              help="Retry only rows with this errorType (repeatable; comma-separated lists work too).")
@click.option("--from", "corrected", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="CORRECTED_FILE",
              help="Take the rows from a corrected CSV/Parquet file (e.g. the report's CSV, edited), "
                   "matched by id value, instead of the journal's copy.")
@tuning_options
def retry(job_id: str, job_dir: Path | None, error_types: tuple[str, ...], corrected: Path | None,
          concurrency: int, rate: str | None, daily_budget: int | None, timeout: float, max_attempts: int,
          base_url: str | None, token_file: Path | None, as_json: bool, no_progress: bool) -> None:
    """Re-send JOB_ID's failed rows in batches of up to 100.

    A success marks the row's error resolved; a new failure replaces it.

    \b
    Example: fix the report's CSV in a spreadsheet, then
      bulkload retry JOB_ID --from jobs/JOB_ID.failed-rows.csv
    """
    types = [t for group in error_types for t in group.split(",") if t.strip()]
    try:
        tuning = _tuning(concurrency, rate, daily_budget, timeout, max_attempts)
        conn = resolve_connection(base_url, token_file)
    except BulkloadError as e:
        fail(e)
    rt = Runtime(progress=TqdmProgress(not no_progress and sys.stderr.isatty(), "retry"))
    try:
        with graceful_signals(rt.stop, job_id):
            stats, st = api.retry(job_id, conn, job_dir=_job_dir(job_dir), error_types=types,
                                  corrected=corrected, tuning=tuning, runtime=rt)
    except BulkloadError as e:
        fail(e, job_id)
    code = 0 if st["rows"]["failed"] == 0 and st["rows"]["pending"] == 0 else 1
    if as_json:
        click.echo(json.dumps({"job_id": job_id, "retry": stats.__dict__, "rows": st["rows"], "exit_code": code}))
    else:
        click.echo(
            f"Retried {stats.matched:,} of {stats.selected:,} failed rows"
            + (f" ({stats.skipped:,} skipped: no id, or not in {corrected.name})" if corrected and stats.skipped
               else f" ({stats.skipped:,} skipped: no id or no data)" if stats.skipped else "")
            + f": {stats.resolved:,} resolved ({stats.created:,} created, {stats.updated:,} updated), "
            f"{stats.failed:,} still failing."
        )
        if stats.by_error:
            click.echo("  still failing: " + ", ".join(f"{t} {n:,}" for t, n in sorted(stats.by_error.items())))
        click.echo(f"  job: {st['rows']['failed']:,} failed rows remain · bulkload report {job_id}")
    sys.exit(code)


@cli.command()
@click.argument("job_id")
@JOB_DIR
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "parquet"]), default="csv", show_default=True,
              help="csv is a corrected-file template: source columns first, then bulkload_ error columns.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write (default: beside the journal, JOB_ID.failed-rows.EXT).")
@click.option("--error-type", "error_types", multiple=True, metavar="TYPE", help="Only these errorTypes (repeatable).")
@click.option("--include-resolved", is_flag=True, help="Also rows a later retry resolved.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N rows (a page).")
@click.option("--after", default=None, metavar="CURSOR", help="Start after this cursor (from the previous page).")
@click.option("--summary", "show_summary", is_flag=True,
              help="Print one card per error category (counts, top errors, how to fix) instead of writing a file.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary, or what was written, as JSON.")
def report(job_id: str, job_dir: Path | None, fmt: str, output: Path | None, error_types: tuple[str, ...],
           include_resolved: bool, limit: int | None, after: str | None, show_summary: bool,
           as_json: bool) -> None:
    """Export JOB_ID's failed rows (most recent error per row) with their source data.

    \b
    Fields: errorType, category, errorMessage, propertyName, invalidValue, idPropertyValue,
    resolved, attempts, sourceData.rowNumber / lineNumber / rowData. Files are mode 0600.
    """
    from bulkload import report as reporting

    types = [t for group in error_types for t in group.split(",") if t.strip()]
    try:
        journal = api.open_journal(_job_dir(job_dir), job_id)
    except BulkloadError as e:
        fail(e)
    try:
        if show_summary:
            cards, superseded = reporting.summary(journal)
            if as_json:
                click.echo(json.dumps(reporting.summary_dict(cards, superseded)))
            else:
                click.echo(reporting.render_summary(cards, superseded))
            return
        written = reporting.write_report(journal, fmt, output, error_types=types,  # type: ignore[arg-type]
                                         include_resolved=include_resolved, limit=limit, after=after)
    except BulkloadError as e:
        fail(e)
    finally:
        journal.close()
    if as_json:
        click.echo(json.dumps({"path": str(written.path), "format": written.format, "rows": written.rows,
                               "errors": written.errors, "warnings": written.warnings,
                               "next_cursor": written.next_cursor}))
        return
    line = reporting.describe_written(written, filtered=bool(types) or include_resolved)
    if written.next_cursor and limit:
        line = line.replace(f"--after {written.next_cursor}", f"--after {written.next_cursor} --limit {limit}")
    click.echo(line)


@cli.command()
@click.option("--keep-running", is_flag=True, help="Leave the sandbox running after the demo (Ctrl-C to stop).")
@JOB_DIR
def demo(keep_running: bool, job_dir: Path | None) -> None:
    """The whole flow offline: a local sandbox, a load of sample_data/calls.csv, the summary and report."""
    from bulkload.demo import run_demo

    try:
        code = run_demo(_job_dir(job_dir), keep_running=keep_running, echo=click.echo)
    except BulkloadError as e:
        fail(e)
    sys.exit(code)


def main() -> None:
    cli(prog_name="bulkload")
