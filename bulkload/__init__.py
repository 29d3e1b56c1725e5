"""bulkload: load large CSV or Parquet files into HubSpot through the CRM batch upsert API,
journaled in SQLite so that every job resumes, retries and reports its failed rows.

    import bulkload

    status = bulkload.load("calls.csv", id_property="external_call_id", token="pat-...")
    status["rows"]        # {"total", "upserted", "created", "updated", "failed", "superseded", "pending"}
    bulkload.retry(status["job_id"], corrected="fixed.csv", token="pat-...")
    bulkload.report(status["job_id"], format="jsonl", output="failed.jsonl")
    bulkload.report(status["job_id"], format="html")   # the job's health page, one offline file

Each function returns what `bulkload status --json` prints (a dict, with `exit_code` for
the ones that run a job) and raises the exceptions of `bulkload.errors`, whose
`exit_code` is what the command line exits with (2 unusable input, 75 paused, 77 token
refused). A token, base URL and job dir left out come from HUBSPOT_ACCESS_TOKEN,
HUBSPOT_BASE_URL and BULKLOAD_JOB_DIR (else ./jobs), as on the command line; tuning
(`concurrency`, `rate`, `daily_budget`, `timeout`, `max_attempts`) is passed by keyword.

Modules, in the order data flows: `source` (read the file), `mapping` and `convert`
(columns to properties, values HubSpot takes), `scan` (the first pass: row count,
repeated ids, the file's hash), `chunker` (batches of up to 100), `hubspot` (the
protocol), `sender` (a batch through retries and splits), `budget` (daily usage),
`journal` (the SQLite journal), `stages` and `replay` (what a load or a retry sends),
`pipeline` (the one run loop), `reports`, `corrections`, `status` (what a job shows),
`api` (the operations), `cli` (the command line); `sandbox` is a local HubSpot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bulkload.config import (
    DEFAULT_API_VERSION,
    Tuning,
    default_job_dir,
    define_job,
    resolve_connection,
)
from bulkload.errors import BulkloadError

__version__ = "0.2.0"

__all__ = ["BulkloadError", "__version__", "list_jobs", "load", "report", "resume", "retry", "status"]

_PathLike = str | Path


def _connection(token: str | None, base_url: str | None) -> Any:
    return resolve_connection(base_url, None, token=token)


def load(
    source: _PathLike,
    *,
    id_property: str,
    object_type: str = "calls",
    api_version: str = DEFAULT_API_VERSION,
    job_dir: _PathLike | None = None,
    job_id: str | None = None,
    token: str | None = None,
    base_url: str | None = None,
    columns: dict[str, str] | None = None,
    associate: Sequence[str] = (),
    map_file: _PathLike | None = None,
    source_format: str | None = None,
    delimiter: str | None = None,
    timezone: str | None = None,
    batch_size: int = 100,
    notify: str | None = None,
    **tuning: Any,
) -> dict[str, Any]:
    """Load `source` into HubSpot, upserting `object_type` records by `id_property`.

    `columns` maps source columns to properties (`""` drops one), over a `map_file`'s
    `[columns]` table; `associate` lists `COLUMN=OBJECT.PROPERTY` (e.g.
    `contact_email=contacts.email`), over its `[associations]` table. Runs to the end or to a resumable stop (which raises). Returns the
    job's status, with `exit_code` 0 (every row landed) or 1 (some rows failed).
    `notify`: a webhook URL POSTed once when the job finishes, pauses or stops.
    """
    from bulkload import api as _api

    config = define_job(Path(source), id_property=id_property, object_type=object_type, api_version=api_version,
                        map_file=Path(map_file) if map_file else None, columns=columns, associate=associate,
                        source_format=source_format, delimiter=delimiter, timezone=timezone, batch_size=batch_size)
    Tuning.from_choices(tuning)
    result = _api.load(config, _connection(token, base_url), job_dir=Path(job_dir) if job_dir else default_job_dir(),
                       job_id=job_id, tuning=tuning, notify=notify)
    return _api.status(result.job_id, job_dir=result.journal.parent) | {"exit_code": result.exit_code}


def resume(job_id: str, *, job_dir: _PathLike | None = None, token: str | None = None, base_url: str | None = None,
           notify: str | None = None, **tuning: Any) -> dict[str, Any]:
    """Continue a job where it stopped (found by id from any directory); its status, with `exit_code`."""
    from bulkload import api as _api

    result = _api.resume(job_id, _connection(token, base_url), job_dir=Path(job_dir) if job_dir else None,
                         tuning=tuning, notify=notify)
    return _api.status(result.job_id, job_dir=result.journal.parent) | {"exit_code": result.exit_code}


def retry(job_id: str, *, job_dir: _PathLike | None = None, error_types: Sequence[str] = (),
          corrected: _PathLike | None = None, token: str | None = None, base_url: str | None = None,
          notify: str | None = None, **tuning: Any) -> dict[str, Any]:
    """Send a job's failed rows again (from a corrected file if given); its status, with
    `exit_code` and what the retry did (`retry`)."""
    from bulkload import api as _api
    from bulkload.pipeline import exit_code_of

    stats, st = _api.retry(job_id, _connection(token, base_url), job_dir=Path(job_dir) if job_dir else None,
                           error_types=error_types, corrected=Path(corrected) if corrected else None, tuning=tuning,
                           notify=notify)
    return st | {"retry": stats.to_dict(), "exit_code": exit_code_of(st)}


def status(job_id: str, *, job_dir: _PathLike | None = None) -> dict[str, Any]:
    """A job's status, as `bulkload status --json` prints it."""
    from bulkload import api as _api

    return _api.status(job_id, job_dir=Path(job_dir) if job_dir else None)


def report(job_id: str, *, job_dir: _PathLike | None = None, format: str = "csv", output: _PathLike | None = None,
           error_types: Sequence[str] = (), include_resolved: bool = False) -> dict[str, Any]:
    """Write a job's failed-rows report (csv, jsonl or parquet; default beside the journal),
    or with `format="html"` its health page (JOB_ID.health.html: one offline file)."""
    from bulkload import api as _api
    from bulkload import reports as reporting

    if format == "html":
        from bulkload.reports.html import write_page

        with _api.open_journal(Path(job_dir) if job_dir else None, job_id) as journal:
            page = write_page(journal, Path(output) if output else None)
        return {"path": str(page.path), "format": "html", "bytes": page.bytes, "failed_rows": page.failed_rows}
    with _api.open_journal(Path(job_dir) if job_dir else None, job_id) as journal:
        written = reporting.write_report(journal, format, Path(output) if output else None,  # type: ignore[arg-type]
                                         error_types=list(error_types), include_resolved=include_resolved)
    return {"path": str(written.path), "format": written.format, "rows": written.rows, "errors": written.errors,
            "warnings": written.warnings}


def list_jobs(*, job_dir: _PathLike | None = None, all_dirs: bool = False) -> list[dict[str, Any]]:
    """Every job of the job dir (or of every job dir this user has used), newest first."""
    from bulkload import api as _api

    return _api.list_jobs(job_dir=Path(job_dir) if job_dir else None, all_dirs=all_dirs)[0]
