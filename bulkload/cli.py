"""The command line: parse, call the library, print. Nothing else lives here.

The one table from outcome to exit code: a finished run carries 0 or 1 (computed once,
from its counts); every BulkloadError carries its class's exit code (2, 75, 77), and the
`bulkload` group turns it into one line and that exit code, in one place.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from bulkload import api
from bulkload.config import (
    API_VERSIONS,
    DEFAULT_API_VERSION,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_SPLIT_SHARE,
    DEFAULT_TIMEOUT,
    MAX_BATCH_SIZE,
    MAX_CONCURRENCY,
    MAX_TIMEOUT,
    Connection,
    define_job,
    parse_column_overrides,
    resolve_connection,
)
from bulkload.errors import (
    EXIT_RESUMABLE,
    AuthError,
    BulkloadError,
    InputError,
    Interrupted,
    StopResumable,
)
from bulkload.pipeline import RunResult, Runtime, exit_code_of
from bulkload.terminal import ShownProgress, graceful_signals

JSON_KEY = "bulkload.json"

JOB_DIR = click.option(
    "--job-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where job journals and reports live. New jobs default to $BULKLOAD_JOB_DIR, else ./jobs; "
         "an existing job is also found by its id from any directory.",
)

NOTIFY = click.option(
    "--notify", "notify", default=None, metavar="URL",
    help="POST one JSON object to URL when the job finishes, pauses or stops (state, exit code, rows, "
         "errors by category, resume command; never the token or row data). A Slack incoming-webhook URL "
         "also gets a text line. A failing webhook is logged in the journal and changes nothing else.",
)


# ---- errors, once ------------------------------------------------------------------------------


def _report_error(e: BulkloadError, as_json: bool) -> None:
    if as_json and isinstance(e, StopResumable | AuthError) and e.journal is not None:
        # Scripts get the paused job's status on stdout too; the reason goes to stderr.
        try:
            from bulkload.journal import Journal
            from bulkload.status import status_of

            with Journal.open(Path(str(e.journal))) as journal:
                click.echo(json.dumps(status_of(journal) | {"exit_code": e.exit_code}))
        except BulkloadError:
            pass
    if isinstance(e, Interrupted):
        # One line, the same one a second Ctrl-C prints: scripts and people look for it.
        click.echo(f"Interrupted. Resume with: {e.hint}" if e.hint else "Interrupted.", err=True)
        return
    if isinstance(e, StopResumable | AuthError):
        click.echo(f"Paused: {e}", err=True)  # an AuthError says itself that the token was refused
    else:
        click.echo(f"error: {e}", err=True)
    if e.hint and isinstance(e, StopResumable | AuthError) and e.journal is not None and not _sent_anything(e.journal):
        click.echo(f"Nothing was sent yet. Fix it, then resume with: {e.hint}  (or remove the job: "
                   f"bulkload jobs --prune{_dir_flag(e.journal)})", err=True)
    elif e.hint:
        click.echo(f"Resume with: {e.hint}" if isinstance(e, StopResumable | AuthError) else e.hint, err=True)


def _sent_anything(journal_path: object) -> bool:
    from bulkload.journal import Journal
    from bulkload.status import sent_anything

    try:
        with Journal.open(Path(str(journal_path))) as journal:
            return sent_anything(journal)
    except BulkloadError:
        return True


def _dir_flag(journal_path: object) -> str:
    from bulkload.status import job_dir_flag

    return job_dir_flag(Path(str(journal_path)).parent)


class _Commands(click.Group):
    """The `bulkload` group: every BulkloadError becomes one line and its exit code here;
    `sandbox` is imported only when used (its server stack is heavy)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BulkloadError as e:
            _report_error(e, bool(ctx.meta.get(JSON_KEY)))
            ctx.exit(e.exit_code)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "sandbox"])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "sandbox":
            from bulkload.sandbox import sandbox_command

            return sandbox_command
        return super().get_command(ctx, cmd_name)


# ---- running a job --------------------------------------------------------------------------------


def tuning_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The tuning flags. None means "not given": the job's stored choice (or the default) applies."""
    for opt in reversed([
        click.option("--concurrency", type=click.IntRange(1, MAX_CONCURRENCY), default=None,
                     help=f"Requests in flight at once (default {DEFAULT_CONCURRENCY}). The rate limit still "
                          "governs the pace."),
        click.option("--rate", "rate", default=None, metavar="N/SECONDS",
                     help="Fix the request rate (e.g. 190/10) instead of learning it from HubSpot's "
                          "X-HubSpot-RateLimit-* headers."),
        click.option("--daily-budget", type=click.IntRange(min=1), default=None, metavar="N",
                     help="API calls this job may spend per rolling 24 hours (its share of the account's daily "
                          "limit); when spent the job pauses (exit 75)."),
        click.option("--timeout", type=float, default=None,
                     help=f"Seconds to wait for one HTTP response (default {DEFAULT_TIMEOUT:g}, at most "
                          f"{MAX_TIMEOUT:g})."),
        click.option("--max-attempts", type=click.IntRange(min=1), default=None,
                     help=f"Tries per request on transient failures before the job pauses (default "
                          f"{DEFAULT_MAX_ATTEMPTS})."),
        click.option("--split-share", type=click.FloatRange(0.0, 1.0), default=None, metavar="SHARE",
                     help=f"The share of a run's requests that may go to isolating the bad rows of batches "
                          f"HubSpot rejects whole before the job pauses (default {DEFAULT_SPLIT_SHARE:g}; 1: "
                          "isolate every row whatever it costs)."),
        click.option("--base-url", default=None, envvar="HUBSPOT_BASE_URL",
                     help="HubSpot API base URL (env HUBSPOT_BASE_URL; default https://api.hubapi.com). "
                          "Plain http:// only for loopback."),
        click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Read the access token from this file instead of $HUBSPOT_ACCESS_TOKEN."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object."),
        click.option("--no-progress", is_flag=True, help="No progress bar."),
    ]):
        f = opt(f)
    return f


def _choices(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


def _json_mode(as_json: bool) -> None:
    click.get_current_context().meta[JSON_KEY] = as_json


def _runtime(no_progress: bool, desc: str) -> Runtime:
    return Runtime(progress=ShownProgress(desc, enabled=not no_progress))


def _run_job(run: Callable[[Runtime], RunResult], hint: str, as_json: bool, no_progress: bool,
             desc: str) -> NoReturn:
    rt = _runtime(no_progress, desc)
    with graceful_signals(rt.stop, hint, rt.stop_reason):
        result = run(rt)
    st = api.status(result.job_id, job_dir=result.journal.parent)
    if as_json:
        click.echo(json.dumps(st | {"exit_code": result.exit_code}))
    else:
        from bulkload.journal import Journal
        from bulkload.views import render_run_summary

        with Journal.open(result.journal) as journal:
            by_type = journal.failed_by_type()
        click.echo(render_run_summary(st, by_type))
    sys.exit(result.exit_code)


def _hint_for(job_id: str, job_dir: Path | None) -> str:
    from bulkload.status import job_dir_flag

    if job_dir is None:
        return f"bulkload resume {job_id}"
    return f"bulkload resume {job_id}{job_dir_flag(job_dir)}"


# ---- the commands ---------------------------------------------------------------------------------


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
@click.option("--object", "object_type", default="calls", show_default=True,
              help="The CRM object: calls, contacts, companies, deals, tickets, emails, meetings, notes, tasks, "
                   "or an object type id (0-1, 2-123456 for a custom object).")
@click.option("--api-version", type=click.Choice(list(API_VERSIONS)), default=DEFAULT_API_VERSION,
              show_default=True,
              help="HubSpot's API family: date-based paths (2026-03) or the legacy /crm/v3 and /crm/v4 ones, "
                   "which HubSpot stops supporting in 2027.")
@JOB_DIR
@click.option("--job-id", default=None, help="Name the job (default: SOURCE-STEM-DATE-TIME-XXXX).")
@click.option("--map", "map_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help='TOML file with a [columns] table: "source column" = "property" ("" drops the column).')
@click.option("--column", "columns", multiple=True, metavar="SRC=PROP",
              help="Map a source column to a property; SRC= drops the column. Repeatable.")
@click.option("--associate", "associate", multiple=True, metavar="COLUMN=OBJECT.PROPERTY",
              help="After a row lands, associate it with the OBJECT records whose PROPERTY equals the cell "
                   "(';' separates several; hs_object_id, a unique property, or contacts.email). Repeatable.")
@click.option("--format", "source_format", type=click.Choice(["csv", "tsv", "parquet"]), default=None,
              help="Source format (default: from the file).")
@click.option("--delimiter", default=None, metavar="CHAR",
              help="The CSV delimiter (default: detected from , ; tab | and said in the summary).")
@click.option("--timezone", default=None, metavar="TZ",
              help="Read timestamps that have no zone in this IANA time zone (e.g. Europe/Oslo; default UTC).")
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH_SIZE), default=MAX_BATCH_SIZE, show_default=True,
              help="Inputs per upsert request.")
@click.option("--dry-run", is_flag=True, help="Read, map and check the file locally; send nothing.")
@NOTIFY
@tuning_options
def load(source: Path, id_property: str, object_type: str, api_version: str, job_dir: Path | None,
         job_id: str | None,
         map_file: Path | None, columns: tuple[str, ...], associate: tuple[str, ...], source_format: str | None,
         delimiter: str | None,
         timezone: str | None, batch_size: int, dry_run: bool, concurrency: int | None, rate: str | None,
         daily_budget: int | None,
         timeout: float | None, max_attempts: int | None, split_share: float | None, base_url: str | None, token_file: Path | None,
         as_json: bool, no_progress: bool,
         notify: str | None = None) -> None:
    """Load SOURCE (CSV or Parquet) into HubSpot, upserting by --id-property.

    \b
    Example:
      export HUBSPOT_ACCESS_TOKEN=pat-...
      bulkload load calls.csv --id-property external_call_id --column "Call ID=external_call_id"
    """
    _json_mode(as_json)
    config = define_job(source, id_property=id_property, object_type=object_type, api_version=api_version,
                        map_file=map_file, columns=parse_column_overrides(columns), associate=associate,
                        source_format=source_format, delimiter=delimiter, timezone=timezone, batch_size=batch_size)
    choices = _choices(concurrency=concurrency, rate=rate, daily_budget=daily_budget, timeout=timeout,
                       max_attempts=max_attempts, split_share=split_share)
    from bulkload.config import Tuning

    Tuning.from_choices(choices)  # bad values are refused before anything else
    if dry_run:
        from bulkload.dryrun import dry_run as run_dry
        from bulkload.views import render_dry_run

        try:  # with a token, the portal's schema and owners check the file; without, HubSpot's defaults
            dry_conn: Connection | None = resolve_connection(base_url, token_file)
        except InputError:
            dry_conn = None
        report = run_dry(config, dry_conn)
        click.echo(json.dumps(report) if as_json else render_dry_run(report))
        return
    conn = resolve_connection(base_url, token_file)
    job_id = job_id or api.new_job_id(source)
    from bulkload.config import default_job_dir

    target = job_dir if job_dir is not None else default_job_dir()
    _run_job(lambda rt: api.load(config, conn, job_dir=target, job_id=job_id, tuning=choices, runtime=rt,
                                 notify=notify),
             _hint_for(job_id, target), as_json, no_progress, "load")


@cli.command()
@click.argument("job_id")
@JOB_DIR
@NOTIFY
@tuning_options
def resume(job_id: str, job_dir: Path | None, concurrency: int | None, rate: str | None,
           daily_budget: int | None, timeout: float | None, max_attempts: int | None, split_share: float | None, base_url: str | None,
           token_file: Path | None, as_json: bool, no_progress: bool,
           notify: str | None = None) -> None:
    """Continue JOB_ID where it stopped: finished batches are skipped, unrecorded ones re-sent.

    The source file must be the one the job started on (size and content hash are checked).
    The tuning the job was started with applies; a flag given here overrides it (and is kept).
    """
    _json_mode(as_json)
    choices = _choices(concurrency=concurrency, rate=rate, daily_budget=daily_budget, timeout=timeout,
                       max_attempts=max_attempts, split_share=split_share)
    conn = resolve_connection(base_url, token_file)
    _run_job(lambda rt: api.resume(job_id, conn, job_dir=job_dir, tuning=choices, runtime=rt, notify=notify),
             _hint_for(job_id, job_dir), as_json, no_progress, "resume")


@cli.command()
@click.argument("job_id")
@JOB_DIR
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (a stable contract for scripts).")
def status(job_id: str, job_dir: Path | None, as_json: bool) -> None:
    """Show JOB_ID's state, row and batch counts, errors by category, API usage and tuning."""
    st = api.status(job_id, job_dir=job_dir)
    if as_json:
        click.echo(json.dumps(st))
        return
    from bulkload import reports as reporting
    from bulkload.views import render_status

    with api.open_journal(job_dir, job_id) as journal:
        cards, superseded = reporting.summary(journal)
    click.echo(render_status(st, cards, superseded))


@cli.command()
@JOB_DIR
@click.option("--all", "all_dirs", is_flag=True, help="The jobs of every job dir this user has used.")
@click.option("--prune", is_flag=True, help="Remove the jobs that never sent anything (a refused token, a wrong URL).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def jobs(job_dir: Path | None, all_dirs: bool, prune: bool, as_json: bool) -> None:
    """List the jobs in the job dir: state, progress, last activity, and how to resume."""
    if prune:
        removed = api.prune_jobs(job_dir=job_dir, all_dirs=all_dirs)
        for job_id in removed:
            click.echo(f"removed {job_id} (it never sent anything)")
        if not removed:
            click.echo("nothing to prune: every job has sent something")
        return
    entries, problems = api.list_jobs(job_dir=job_dir, all_dirs=all_dirs)
    for line in problems:
        click.echo(f"warning: skipped {line}", err=True)
    if as_json:
        click.echo(json.dumps(entries))
        return
    if not entries:
        from bulkload.config import default_job_dir

        click.echo(f"no jobs in {job_dir if job_dir is not None else default_job_dir()}"
                   + ("" if all_dirs else " (bulkload jobs --all lists every job dir you have used)"))
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
              help="Take the rows from a corrected CSV/Parquet file (e.g. the report's CSV, edited), matched by "
                   "id value, or by bulkload_rowNumber where the id was missing or wrong.")
@NOTIFY
@tuning_options
def retry(job_id: str, job_dir: Path | None, error_types: tuple[str, ...], corrected: Path | None,
          concurrency: int | None, rate: str | None, daily_budget: int | None, timeout: float | None,
          max_attempts: int | None, split_share: float | None, base_url: str | None, token_file: Path | None, as_json: bool,
          no_progress: bool,
          notify: str | None = None) -> None:
    """Re-send JOB_ID's failed rows in batches of up to 100.

    A success marks the row's error resolved; a new failure replaces it.

    \b
    Example: fix the report's CSV in a spreadsheet, then
      bulkload retry JOB_ID --from jobs/JOB_ID.failed-rows.csv
    """
    _json_mode(as_json)
    choices = _choices(concurrency=concurrency, rate=rate, daily_budget=daily_budget, timeout=timeout,
                       max_attempts=max_attempts, split_share=split_share)
    conn = resolve_connection(base_url, token_file)
    rt = _runtime(no_progress, "retry")
    with graceful_signals(rt.stop, _hint_for(job_id, job_dir), rt.stop_reason):
        stats, st = api.retry(job_id, conn, job_dir=job_dir, error_types=error_types, corrected=corrected,
                              tuning=choices, runtime=rt, notify=notify)
    code = exit_code_of(st)
    if as_json:
        click.echo(json.dumps({"job_id": job_id, "retry": stats.to_dict(), "rows": st["rows"],
                               "associations": st.get("associations"), "exit_code": code}))
        sys.exit(code)
    skipped = ""
    if stats.skipped:
        why = f"no id, or not in {corrected.name}" if corrected else "no id or no data"
        skipped = f" ({stats.skipped:,} skipped: {why})"
    if stats.selected or not stats.associations_retried:
        click.echo(f"Retried {stats.matched:,} of {stats.selected:,} failed rows{skipped}: {stats.resolved:,} "
                   f"resolved ({stats.created:,} created, {stats.updated:,} updated), {stats.failed:,} still failing.")
    if stats.by_error:
        click.echo("  still failing: " + ", ".join(f"{t} {n:,}" for t, n in sorted(stats.by_error.items())))
    if stats.associations_retried:
        made = stats.associations_retried - stats.associations_failed
        noun = "association" if stats.associations_retried == 1 else "associations"
        click.echo(f"Retried {stats.associations_retried:,} failed {noun}: {max(made, 0):,} made, "
                   f"{stats.associations_failed:,} still failing.")
    if stats.associations_failed:
        click.echo(f"  see them: {st['report_command']} (category ASSOCIATIONS); create the missing records or "
                   f"correct the values, then: bulkload retry {job_id}{_dir_flag(Path(st['journal']))}")
    if code == EXIT_RESUMABLE and st.get("resume_command"):
        click.echo(f"  job: paused, {st['rows']['pending']:,} rows still pending; resume with: {st['resume_command']}")
    if st["rows"]["failed"]:
        click.echo(f"  job: {st['rows']['failed']:,} failed rows remain")
        click.echo(f"  see them: {st['report_command']}")
        click.echo("  fix them in the report's CSV, then: "
                   f"bulkload retry {job_id}{_dir_flag(Path(st['journal']))} --from FIXED.csv")
    sys.exit(code)


@cli.command()
@click.argument("job_id")
@JOB_DIR
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "parquet", "html"]), default="csv",
              show_default=True,
              help="csv is a corrected-file template: source columns first, then bulkload_ error columns. "
                   "html is the job's health page, one offline file (JOB_ID.health.html).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Where to write: a file, a directory, or - for standard output "
                   "(default: beside the journal, JOB_ID.failed-rows.EXT).")
@click.option("--error-type", "error_types", multiple=True, metavar="TYPE", help="Only these errorTypes (repeatable).")
@click.option("--include-resolved", is_flag=True, help="Also rows a later retry resolved.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N rows (a page).")
@click.option("--after", default=None, metavar="CURSOR", help="Start after this cursor (from the previous page).")
@click.option("--summary", "show_summary", is_flag=True,
              help="Print one card per error category (counts, top errors, how to fix) instead of writing a file.")
@click.option("--upserted", is_flag=True,
              help="Write the rows that landed instead, each with the HubSpot record id it became (and its "
                   "associated records): JOB_ID.upserted.EXT.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary, or what was written, as JSON.")
def report(job_id: str, job_dir: Path | None, fmt: str, output: Path | None, error_types: tuple[str, ...],
           include_resolved: bool, limit: int | None, after: str | None, show_summary: bool, upserted: bool,
           as_json: bool) -> None:
    """Export JOB_ID's failed rows (most recent error per row) with their source data.

    \b
    Fields: errorType, category, errorMessage, propertyName, invalidValue, idPropertyValue,
    resolved, attempts, errors (every problem of the row), sourceData.rowNumber / lineNumber /
    rowData. Files are mode 0600.
    """
    from bulkload import reports as reporting
    from bulkload.status import job_dir_flag

    types = [t for group in error_types for t in group.split(",") if t.strip()]
    if fmt == "html":
        _health_page(job_id, job_dir, output, as_json, {"--error-type": bool(types), "--limit": limit is not None,
                                                        "--include-resolved": include_resolved, "--after": after,
                                                        "--summary": show_summary, "--upserted": upserted})
        return
    with api.open_journal(job_dir, job_id) as journal:
        if show_summary:
            cards, superseded = reporting.summary(journal)
            click.echo(json.dumps(reporting.summary_dict(cards, superseded)) if as_json
                       else reporting.render_summary(cards, superseded))
            return
        if upserted:
            from bulkload.reports.upserted import write_upserted

            written = write_upserted(journal, fmt, output, limit=limit, after=after)
        else:
            written = reporting.write_report(journal, fmt, output, error_types=types,  # type: ignore[arg-type]
                                             include_resolved=include_resolved, limit=limit, after=after)
        flag = job_dir_flag(journal.path.parent)
    if output == reporting.STDOUT:
        return
    if as_json:
        click.echo(json.dumps({"path": str(written.path), "format": written.format, "rows": written.rows,
                               "errors": written.errors, "warnings": written.warnings,
                               "next_cursor": written.next_cursor}))
        return
    if upserted:
        click.echo(f"{written.rows:,} upserted rows written to {written.path} ({written.format})")
        if written.next_cursor:
            click.echo(f"More rows: bulkload report {job_id}{flag} --upserted --after {written.next_cursor}"
                       + (f" --limit {limit}" if limit else ""))
        return
    click.echo(reporting.describe_written(written, filtered=bool(types) or include_resolved, job_dir_flag=flag,
                                          limit=limit))


def _health_page(job_id: str, job_dir: Path | None, output: Path | None, as_json: bool,
                 others: dict[str, object]) -> None:
    """`report --format html`: the page shows the whole job, so the row filters do not apply."""
    given = [flag for flag, value in others.items() if value]
    if given:
        raise click.UsageError(f"--format html writes the whole job's page; it takes no {', '.join(given)}")
    from bulkload.reports import STDOUT
    from bulkload.reports.html import write_page

    with api.open_journal(job_dir, job_id) as journal:
        written = write_page(journal, output)
    if output == STDOUT:
        return
    if as_json:
        click.echo(json.dumps({"path": str(written.path), "format": "html", "bytes": written.bytes,
                               "failed_rows": written.failed_rows, "cards": written.cards}))
        return
    click.echo(f"Health page written to {written.path} ({written.bytes / 1024:,.0f} KB): open it in a browser")


@cli.command()
@click.argument("object_type", default="calls", metavar="[OBJECT]")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of HubSpot's property definitions.")
@click.option("--base-url", default=None, envvar="HUBSPOT_BASE_URL",
              help="HubSpot API base URL (env HUBSPOT_BASE_URL; default https://api.hubapi.com).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Read the access token from this file instead of $HUBSPOT_ACCESS_TOKEN.")
def properties(object_type: str, as_json: bool, base_url: str | None, token_file: Path | None) -> None:
    """List OBJECT's properties in the portal (default calls): name, label, type, options
    (label = value), and whether it is unique; what a --map file needs.

    \b
    Example:
      bulkload properties calls
      bulkload properties contacts --json
    """
    conn = resolve_connection(base_url, token_file)
    items = api.properties(object_type, conn)
    if as_json:
        click.echo(json.dumps(items))
        return
    from bulkload.views import render_properties

    click.echo(render_properties(object_type, items))


@cli.command()
@click.option("--keep-running", is_flag=True, help="Leave the sandbox running after the demo (Ctrl-C to stop).")
@JOB_DIR
def demo(keep_running: bool, job_dir: Path | None) -> None:
    """The whole flow offline: a local sandbox, a load of sample_data/calls.csv, the summary and report."""
    from bulkload.config import default_job_dir
    from bulkload.demo import run_demo

    sys.exit(run_demo(job_dir if job_dir is not None else default_job_dir(), keep_running=keep_running,
                      echo=click.echo))


def main() -> None:
    cli(prog_name="bulkload")
