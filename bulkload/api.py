"""The library's public functions: `load`, `resume`, `status`, `list_jobs`.

The CLI is a thin layer over these. Each returns plain data (a RunResult or a
dict) or raises a BulkloadError whose class carries the exit code.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bulkload.config import Connection, JobConfig, Tuning
from bulkload.errors import (
    EXIT_OK,
    EXIT_ROWS_FAILED,
    BulkloadError,
    InputError,
    JobNotFound,
    SourceChanged,
    StopResumable,
)
from bulkload.journal import JOURNAL_SUFFIX, JobState, Journal, journal_path
from bulkload.mapping import ColumnMap, Schema, check_column_types, resolve_columns
from bulkload.pipeline import (
    Runtime,
    UsageMeter,
    check_id_property,
    fetch_schema,
    finish_state,
    make_client,
    make_limiter,
    make_sender,
    paused_state_for,
    plan_batches,
    scan_source,
    send_all,
)
from bulkload.source import Fingerprint, Source, fingerprint, open_source


@dataclass(frozen=True)
class RunResult:
    job_id: str
    state: str
    exit_code: int
    counts: dict[str, Any]
    journal: Path
    rows_sent_this_run: int = 0


def new_job_id(source: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", source.stem).strip("-") or "job"
    return f"{stem}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


@contextmanager
def job_lock(path: Path) -> Iterator[None]:
    """One process per job: a second `resume` of a running job is refused, not interleaved."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"job {path.name.removesuffix(JOURNAL_SUFFIX)} is running in another process") from None
        yield
    finally:
        os.close(fd)


def _column_map(source: Source, config: JobConfig) -> ColumnMap:
    column_map = resolve_columns(source.columns, config.id_property, config.columns)
    if source.format == "parquet":
        check_column_types(pq.read_schema(source.path), column_map)
    return column_map


def _run(
    journal: Journal,
    source: Source,
    column_map: ColumnMap,
    config: JobConfig,
    conn: Connection,
    tuning: Tuning,
    rt: Runtime,
    command: str,
) -> RunResult:
    """Pre-flight, send everything still pending, and settle the job's state."""
    job = journal.job()
    run_no = journal.start_run(command, {"concurrency": tuning.concurrency, "rate": str(tuning.rate or ""),
                                         "daily_budget": tuning.daily_budget})
    journal.set_state(JobState.RUNNING, pid=os.getpid())
    limiter = make_limiter(tuning, rt)
    rows_done = 0
    outcome = "error"
    try:
        meter = UsageMeter(journal, tuning.daily_budget, rt.wall)
        meter.check()  # a spent --daily-budget pauses before even the properties read is sent
        with make_client(conn, tuning, rt) as probe:
            schema: Schema = fetch_schema(probe, limiter, config, rt, meter)
        check_id_property(schema, config)
        column_map.check_against(schema)
        batches, _ = plan_batches(journal, source, column_map, schema, config)
        counts = journal.counts()
        rows = counts["rows"]
        rt.progress.start(rows["total"], rows["total"] - rows["pending"])
        with make_client(conn, tuning, rt, schema) as client:
            sender = make_sender(client, limiter, meter, tuning, rt)
            try:
                stats = send_all(journal, batches, sender, meter, config, tuning, rt)
            finally:
                rt.progress.close()
        rows_done = stats.rows_done
        counts = finish_state(journal)
        outcome = journal.job().state
    except BulkloadError as e:
        outcome = f"stopped: {type(e).__name__}"
        if isinstance(e, InputError) and command == "load" and journal.counts()["api_calls"] == 0:
            raise  # nothing was sent: the caller removes the job
        paused_state_for(e, journal)
        raise
    except BaseException as e:  # a bug or a second Ctrl-C: the journal is consistent, so resumable
        outcome = f"stopped: {type(e).__name__}"
        paused_state_for(StopResumable(f"stopped by {type(e).__name__}: {e}"), journal)
        raise
    finally:
        journal.finish_run(run_no, outcome, rows_done)
    state = journal.job().state
    code = EXIT_OK if state == JobState.COMPLETED else EXIT_ROWS_FAILED
    return RunResult(job.job_id, state, code, counts, journal.path, rows_done)


def load(
    config: JobConfig,
    conn: Connection,
    *,
    job_dir: Path,
    job_id: str | None = None,
    tuning: Tuning | None = None,
    runtime: Runtime | None = None,
) -> RunResult:
    """Create a job for `config.source` and run it to the end (or to a resumable stop)."""
    tuning = tuning or Tuning()
    rt = runtime or Runtime()
    source = open_source(config.source, config.source_format)
    column_map = _column_map(source, config)
    job_id = job_id or new_job_id(config.source)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", job_id):
        raise InputError(f"invalid job id {job_id!r}: use letters, digits, '.', '_' and '-'")
    path = journal_path(job_dir, job_id)
    if path.exists() and not _remove_if_never_started(path):
        raise InputError(f"job {job_id} already exists in {job_dir}; continue it with: bulkload resume {job_id}")
    fp = fingerprint(config.source)
    journal = Journal.create(path, checkpoint=rt.checkpoint)
    keep = False
    try:
        with job_lock(path):
            journal.create_job(
                job_id=job_id,
                object_type=config.object_type,
                id_property=config.id_property,
                config=config.to_dict() | {"source": str(config.source.resolve())},
                source_path=str(config.source.resolve()),
                source_format=source.format,
                fingerprint=fp.to_dict(),
                columns=list(source.columns),
            )
            scan_source(journal, source, column_map)
            keep = True
            return _run(journal, source, column_map, config, conn, tuning, rt, "load")
    except InputError:
        if not keep or journal.counts()["api_calls"] == 0:
            keep = False
        raise
    except BaseException:
        keep = True
        raise
    finally:
        journal.close()
        if not keep:
            # Unusable input and nothing sent: no job to resume, so no journal left behind.
            for p in _journal_files(path):
                p.unlink(missing_ok=True)


def _journal_files(path: Path) -> list[Path]:
    return [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", ".lock"))]


def _remove_if_never_started(path: Path) -> bool:
    """A journal file without its job row is what a kill between creating the file and
    the job's first transaction leaves: nothing was sent, so it is removed. True if removed."""
    try:
        journal = Journal.open(path)
    except (BulkloadError, OSError):
        return False
    try:
        with job_lock(path):
            has_job = journal.db.execute("SELECT COUNT(*) FROM job").fetchone()[0] > 0
    except InputError:
        return False  # another process holds it
    finally:
        journal.close()
    if has_job:
        return False
    for p in _journal_files(path):
        p.unlink(missing_ok=True)
    return True


def open_journal(job_dir: Path, job_id: str, rt: Runtime | None = None) -> Journal:
    return Journal.open(journal_path(job_dir, job_id), checkpoint=rt.checkpoint if rt else None)


def check_source(journal: Journal) -> tuple[Source, JobConfig]:
    """The job's source, refused (exit 2) if it is not the file the job was started on."""
    job = journal.job()
    JobConfig.from_dict(job.config)
    path = Path(job.source_path)
    if not path.exists():
        raise SourceChanged(f"the job's source {path} no longer exists")
    expected = Fingerprint.from_dict(job.fingerprint)
    change = expected.describe_change(fingerprint(path))
    if change:
        raise SourceChanged(f"the job's source {path} changed since the job started: {change}")
    return open_source(path, job.source_format), JobConfig.from_dict(job.config | {"source": str(path)})


def resume(
    job_id: str,
    conn: Connection,
    *,
    job_dir: Path,
    tuning: Tuning | None = None,
    runtime: Runtime | None = None,
) -> RunResult:
    """Continue a job: skip finished batches, re-send unrecorded ones, go on to the end."""
    tuning = tuning or Tuning()
    rt = runtime or Runtime()
    journal = open_journal(job_dir, job_id, rt)
    try:
        with job_lock(journal.path):
            job = journal.job()
            if job.state in (JobState.COMPLETED, JobState.COMPLETED_WITH_ERRORS):
                counts = journal.counts()
                code = EXIT_OK if job.state == JobState.COMPLETED else EXIT_ROWS_FAILED
                return RunResult(job_id, job.state, code, counts, journal.path)
            source, config = check_source(journal)
            column_map = _column_map(source, config)
            if not job.scan_complete:
                scan_source(journal, source, column_map)
            return _run(journal, source, column_map, config, conn, tuning, rt, "resume")
    finally:
        journal.close()


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_state(journal: Journal) -> tuple[str, str | None]:
    """The job's state as a user should see it: a `running` job whose process is gone is paused."""
    job = journal.job()
    if job.state in (JobState.RUNNING, JobState.SCANNING) and not _pid_alive(job.pid):
        return JobState.PAUSED.value, "the loader stopped without recording why (killed?)"
    return job.state, job.paused_reason


def status(job_id: str, *, job_dir: Path) -> dict[str, Any]:
    """The job's status as `status --json` prints it."""
    journal = open_journal(job_dir, job_id)
    try:
        return status_of(journal)
    finally:
        journal.close()


def status_of(journal: Journal) -> dict[str, Any]:
    job = journal.job()
    state, reason = effective_state(journal)
    counts = journal.counts()
    out: dict[str, Any] = {
        "job_id": job.job_id,
        "state": state,
        "object_type": job.object_type,
        "id_property": job.id_property,
        "source": {
            "path": job.source_path,
            "format": job.source_format,
            "fingerprint": job.fingerprint.get("sha256", ""),
            "size": job.fingerprint.get("size"),
        },
        **counts,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
        "journal": str(journal.path.resolve()),
    }
    if state == JobState.PAUSED:
        out["paused_reason"] = reason
        out["resume_after"] = job.resume_after
        out["resume_command"] = f"bulkload resume {job.job_id}"
    out["usage"] = usage_of(journal)
    if state == JobState.RUNNING:
        out["throughput"] = throughput_of(journal, counts["rows"]["pending"])
    return out


def throughput_of(journal: Journal, pending: int, window_s: float = 60.0) -> dict[str, Any]:
    """Rows/s over the last minute of finished batches, and the ETA at that pace."""
    since = (datetime.now(UTC) - timedelta(seconds=window_s)).strftime("%Y-%m-%dT%H:%M:%S")
    r = journal.db.execute(
        "SELECT COALESCE(SUM(n_rows), 0), MIN(finished_at) FROM batches WHERE finished_at >= ?", [since]
    ).fetchone()
    rows = int(r[0])
    if not rows or r[1] is None:
        return {"rows_per_second": 0.0, "eta_seconds": None}
    first = datetime.strptime(r[1][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    elapsed = max(1.0, (datetime.now(UTC) - first).total_seconds())
    rate = rows / elapsed
    return {"rows_per_second": round(rate, 1), "eta_seconds": round(pending / rate) if rate else None}


def usage_of(journal: Journal) -> dict[str, Any]:
    """API usage: the last 24 hours against the budget or the account's daily limit."""
    job = journal.job()
    calls_24h, limited_24h, retries_24h = journal.usage_since(time.time() - 86_400)
    calls, limited, retries = journal.usage_since(0)
    last_rate = job.last_rate or {}
    budget = None
    runs = journal.runs()
    for r in reversed(runs):
        t = json.loads(r.get("tuning") or "{}")
        if t.get("daily_budget"):
            budget = int(t["daily_budget"])
            break
    return {
        "calls_24h": calls_24h,
        "daily_budget": budget,
        "daily_limit": last_rate.get("daily"),
        "daily_remaining": last_rate.get("daily_remaining"),
        "rate_limited_24h": limited_24h,
        "retries_24h": retries_24h,
        "calls_total": calls,
        "rate_limited_total": limited,
        "retries_total": retries,
    }


def list_jobs(*, job_dir: Path) -> list[dict[str, Any]]:
    """Every job in the job dir, newest first."""
    out: list[dict[str, Any]] = []
    if not job_dir.is_dir():
        return out
    for path in sorted(job_dir.glob(f"*{JOURNAL_SUFFIX}")):
        try:
            journal = Journal.open(path)
        except (BulkloadError, OSError):
            continue
        try:
            job = journal.job()
            state, reason = effective_state(journal)
            rows = journal.counts()["rows"]
            done = rows["total"] - rows["pending"]
            entry: dict[str, Any] = {
                "job_id": job.job_id,
                "source": job.source_path,
                "state": state,
                "rows": rows,
                "progress": round(100.0 * done / rows["total"], 1) if rows["total"] else 0.0,
                "last_activity": job.updated_at,
                "created_at": job.created_at,
            }
            if state == JobState.PAUSED:
                entry["paused_reason"] = reason
                entry["resume_command"] = f"bulkload resume {job.job_id}"
            out.append(entry)
        except (BulkloadError, Exception):  # a half-written journal must not hide the others
            continue
        finally:
            journal.close()
    out.sort(key=lambda e: e["last_activity"], reverse=True)
    return out


def retry(
    job_id: str,
    conn: Connection,
    *,
    job_dir: Path,
    error_types: list[str] | tuple[str, ...] = (),
    corrected: Path | None = None,
    tuning: Tuning | None = None,
    runtime: Runtime | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Re-send a job's failed rows; returns (RetryStats, the job's status afterwards)."""
    from bulkload.retry import retry_job

    journal = open_journal(job_dir, job_id, runtime)
    try:
        with job_lock(journal.path):
            stats = retry_job(journal, conn, error_types=error_types, corrected=corrected, tuning=tuning,
                              runtime=runtime)
        return stats, status_of(journal)
    finally:
        journal.close()


__all__ = ["JobNotFound", "RunResult", "list_jobs", "load", "resume", "retry", "status"]
