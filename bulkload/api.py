"""The library's operations: `load`, `resume`, `retry`, `status`, `list_jobs`.

Each finds or creates the job's journal, holds the job's lock while it changes it, and
hands the stage that differs to the one run loop (`pipeline.run`). They return plain
data or raise a BulkloadError whose class carries the exit code. The friendlier
keyword-argument functions for scripts are in `bulkload/__init__.py`; the CLI calls
these.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from bulkload.associations import AssociationStep
from bulkload.config import Connection, JobConfig, Tuning, merge_tuning, tuning_choices
from bulkload.errors import BulkloadError, InputError, JobNotFound, SourceChanged
from bulkload.hubspot.paths import ApiPaths, ApiVersion
from bulkload.journal import (
    Journal,
    ensure_job_dir,
    find_journal,
    job_lock,
    journal_files,
    journal_path,
    journals_in,
    known_job_dirs,
    remember_job_dir,
)
from bulkload.journal.locate import default_dir_or
from bulkload.mapping import ColumnMap, resolve_columns
from bulkload.models import FINISHED_STATES
from bulkload.notify import Notifier, Outcome, exit_code_for, is_crash, notifying
from bulkload.pipeline import RunResult, Runtime, exit_code_of, make_client, make_limiter, run
from bulkload.replay import ReplayStage, RetryStats
from bulkload.scan import SCAN_CHUNK_ROWS, scan_source
from bulkload.sender import RetryPolicy, Sender
from bulkload.source import Fingerprint, Source, fingerprint, open_source
from bulkload.stages import SourceStage, column_map_of
from bulkload.status import job_entry, sent_anything, status_of

__all__ = ["RunResult", "list_jobs", "load", "properties", "prune_jobs", "resume", "retry", "status"]

TuningArg = Tuning | Mapping[str, Any] | None


def new_job_id(source: Path) -> str:
    # No '.' in a generated id: datasette would show the journal's name as ~2E.
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", source.stem).strip("-") or "job"
    return f"{stem}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _scan(journal: Journal, source: Source, column_map: ColumnMap) -> Fingerprint:
    """The first pass, which also hashes the file: the one read before sending."""
    journal.reset_scan()
    read = source.scan([column_map.id_column], rows_per_chunk=SCAN_CHUNK_ROWS)
    result = scan_source(source, column_map, sink=journal.add_superseding, chunks=read,
                         fingerprint=lambda: read.fingerprint)
    assert result.fingerprint is not None
    journal.complete_scan(result.total_rows, result.fingerprint.to_dict())
    return result.fingerprint


def load(
    config: JobConfig,
    conn: Connection,
    *,
    job_dir: Path,
    job_id: str | None = None,
    tuning: TuningArg = None,
    runtime: Runtime | None = None,
    notify: str | Notifier | None = None,
) -> RunResult:
    """Create a job for `config.source` and run it to the end (or to a resumable stop).

    `notify`: a webhook URL POSTed once when the run ends, if the job exists by then
    (a refusal that leaves no job behind notifies nobody)."""
    rt = runtime or Runtime()
    notifier = Notifier.of(notify)
    in_force, choices = merge_tuning({}, tuning_choices(tuning))
    source = open_source(config.source, config.source_format, delimiter=config.delimiter)
    # The delimiter detected is kept with the job: every resume reads the file the same way.
    config = replace(config, delimiter=source.delimiter)
    column_map = column_map_of(source, config)
    job_id = job_id or new_job_id(config.source)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", job_id):
        raise InputError(f"invalid job id {job_id!r}: use letters, digits, '.', '_' and '-'")
    job_dir = ensure_job_dir(job_dir)
    path = journal_path(job_dir, job_id)
    with job_lock(path, "load"):
        if path.exists() and not _remove_if_never_started(path):
            raise InputError(f"job {job_id} already exists in {job_dir}; continue it with: bulkload resume {job_id}")
        try:
            journal = Journal.create(path, checkpoint=rt.checkpoint)
        except FileExistsError:
            raise InputError(f"job {job_id} already exists in {job_dir}") from None
        except OSError as e:
            raise InputError(f"cannot create the journal in {job_dir}: {e.strerror or e}") from None
        remember_job_dir(job_dir)
        keep = False
        code: int | None = None
        crashed = False
        try:
            journal.create_job(
                job_id=job_id, object_type=config.object_type, id_property=config.id_property,
                config=config.to_dict() | {"source": str(config.source.resolve()),
                                           "delimiter_origin": source.delimiter_origin},
                source_path=str(config.source.resolve()), source_format=source.format,
                fingerprint={}, columns=list(source.columns), tuning=choices,
            )
            fp = _scan(journal, source, column_map)
            keep = True
            stage = SourceStage("load", journal, source, column_map, config, expect=fp, links=_links(journal, config))
            result = run(journal, stage, config=config, conn=conn, tuning=in_force, choices=choices, rt=rt)
            code = result.exit_code
            return result
        except InputError as e:
            # Unusable input and nothing written: no job to resume, so no journal left behind.
            keep = keep and _landed_any(journal)
            code = e.exit_code
            raise
        except BaseException as e:
            keep = True
            code, crashed = exit_code_for(e), is_crash(e)
            raise
        finally:
            if keep and notifier is not None and code is not None:
                notifier.send(journal, code, crashed=crashed)  # never raises
            journal.close()
            if not keep:
                for p in journal_files(path):
                    p.unlink(missing_ok=True)


def _landed_any(journal: Journal) -> bool:
    try:
        return bool(journal.counts()["rows"]["upserted"])
    except (BulkloadError, sqlite3.Error):
        return True  # cannot tell: keep it


def _remove_if_never_started(path: Path) -> bool:
    """A journal file without its job row is what a kill between creating the file and the
    job's first transaction leaves: nothing was sent, so it is removed. True if removed."""
    try:
        with Journal.open(path) as journal:
            if journal.has_job():
                return False
    except (BulkloadError, OSError, sqlite3.Error):
        return False
    for p in journal_files(path)[:-1]:  # the lock is ours: it stays until we let go of it
        p.unlink(missing_ok=True)
    return True


def check_source(journal: Journal) -> tuple[Source, JobConfig, Fingerprint]:
    """The job's source, refused (exit 2) if it is not the file the job was started on.

    The same bytes under a new mtime (a copy, a backup restored) are the same file: the
    journal then remembers the new mtime, which the send pass checks the file against.
    """
    job = journal.job()
    path = Path(job.source_path)
    if not path.exists():
        raise SourceChanged(f"the job's source {path} no longer exists")
    config = JobConfig.from_dict(job.config | {"source": str(path)})
    current = fingerprint(path)
    if job.scan_complete:  # else the scan never finished: it runs again and hashes the file
        expected = Fingerprint.from_dict(job.fingerprint)
        change = expected.describe_change(current)
        if change:
            raise SourceChanged(f"the job's source {path} changed since the job started: {change}")
        if current != expected:
            journal.update_fingerprint(current.to_dict())
    return open_source(path, job.source_format, delimiter=config.delimiter), config, current


def resume(
    job_id: str,
    conn: Connection,
    *,
    job_dir: Path | None = None,
    tuning: TuningArg = None,
    runtime: Runtime | None = None,
    notify: str | Notifier | None = None,
) -> RunResult:
    """Continue a job: skip finished batches, re-send unrecorded ones, go on to the end.

    `notify`: a webhook URL POSTed once when the run ends (also when the job was finished
    already, or the resume is refused after the job was found, e.g. a changed source)."""
    rt = runtime or Runtime()
    with _held(job_id, job_dir, "resume", rt, notify) as (journal, job, outcome):
        if job.state in FINISHED_STATES:
            if journal.pending_pairs():
                # Every row is settled, but associations a stopped retry reopened are
                # not: they are made here, with no row sent again.
                result = _finish_associations(journal, job, conn, tuning, rt)
                outcome.exit_code = result.exit_code
                return result
            counts = journal.counts()
            outcome.exit_code = exit_code_of(counts)
            return RunResult(job.job_id, job.state, outcome.exit_code, counts, journal.path)
        source, config, fp = check_source(journal)
        column_map = column_map_of(source, config)
        if not job.scan_complete:
            fp = _scan(journal, source, column_map)
        in_force, choices = merge_tuning(job.tuning, tuning_choices(tuning))
        stage = SourceStage("resume", journal, source, column_map, config, expect=fp,
                            links=_links(journal, config))
        result = run(journal, stage, config=config, conn=conn, tuning=in_force, choices=choices, rt=rt)
        outcome.exit_code = result.exit_code
        return result


@contextmanager
def _held(job_id: str, job_dir: Path | None, command: str, rt: Runtime,
          notify: str | Notifier | None) -> Iterator[tuple[Journal, Any, Outcome]]:
    """A known job, locked by this process, its journal open for writing, and the webhook
    told how the command ended (set the yielded outcome's exit_code)."""
    notifier = Notifier.of(notify)
    path = find_journal(job_id, job_dir)
    with job_lock(path, command), Journal.open(path, writable=True, checkpoint=rt.checkpoint) as journal:
        job = _job_or_hint(journal)
        with notifying(notifier, journal) as outcome:
            yield journal, job, outcome


def _finish_associations(journal: Journal, job: Any, conn: Connection, tuning: TuningArg, rt: Runtime) -> RunResult:
    config = JobConfig.from_dict(job.config)
    column_map = resolve_columns(job.columns, config.id_property, config.columns, config.associations,
                                 config.object_type)
    # A replay of no rows: only the association step has work.
    stage = ReplayStage(journal, config, column_map, list(job.columns), links=_links(journal, config),
                        command="resume")
    in_force, choices = merge_tuning(job.tuning, tuning_choices(tuning))
    return run(journal, stage, config=config, conn=conn, tuning=in_force, choices=choices, rt=rt)


def _job_or_hint(journal: Journal) -> Any:
    try:
        return journal.job()
    except JobNotFound:
        raise JobNotFound(
            f"job {journal.job_id} never started (it stopped before its first step; nothing was sent): "
            f"start it again with bulkload load ... --job-id {journal.job_id}"
        ) from None


def retry(
    job_id: str,
    conn: Connection,
    *,
    job_dir: Path | None = None,
    error_types: Sequence[str] = (),
    corrected: Path | None = None,
    tuning: TuningArg = None,
    runtime: Runtime | None = None,
    notify: str | Notifier | None = None,
) -> tuple[RetryStats, dict[str, Any]]:
    """Re-send a job's failed rows; returns (what the retry did, the job's status afterwards).

    `notify`: a webhook URL POSTed once when the retry ends."""
    rt = runtime or Runtime()
    with _held(job_id, job_dir, "retry", rt, notify) as (journal, job, outcome):
        stats, st = _retry(journal, job, conn, error_types, corrected, tuning, rt)
        outcome.exit_code = exit_code_of(st)
        return stats, st


def _retry(journal: Journal, job: Any, conn: Connection, error_types: Sequence[str], corrected: Path | None,
           tuning: TuningArg, rt: Runtime) -> tuple[RetryStats, dict[str, Any]]:
    """The retry itself, with the job locked and its journal open."""
    config = JobConfig.from_dict(job.config)
    column_map = resolve_columns(job.columns, config.id_property, config.columns, config.associations,
                                 config.object_type)
    types = [t.strip() for group in error_types for t in group.split(",") if t.strip()]
    stage = ReplayStage(journal, config, column_map, list(job.columns), types, corrected,
                        links=_links(journal, config))
    selected = stage.select()
    corrected_links = journal.correct_pairs(stage.link_fixes) if stage.link_fixes else 0
    # Failed associations are tried again (the contact may exist now), unless the retry
    # is limited to error types that are not about associations.
    reopened = journal.reopen_failed_pairs() if config.associations and _about_links(types) else 0
    # Pairs left pending (by a retry that was stopped) are finished by this one too.
    if selected or reopened or corrected_links or journal.pending_pairs():
        in_force, choices = merge_tuning(job.tuning, tuning_choices(tuning))
        run(journal, stage, config=config, conn=conn, tuning=in_force, choices=choices, rt=rt)
    st = status_of(journal)
    stage.stats.associations_retried = reopened + corrected_links
    stage.stats.associations_failed = int(st.get("associations", {}).get("failed", 0))
    return stage.stats, st


def prune_jobs(*, job_dir: Path | None = None, all_dirs: bool = False) -> list[str]:
    """Remove the jobs that never sent anything (no row landed, no upsert spent) and that no
    live process holds: what a refused token or a wrong URL on the first call leaves."""
    dirs = [default_dir_or(job_dir)] + (known_job_dirs() if all_dirs else [])
    removed: list[str] = []
    for d in dict.fromkeys(dirs):
        for path in journals_in(d):
            try:
                with job_lock(path, "prune"):
                    with Journal.open(path) as journal:
                        if sent_anything(journal):
                            continue
                        job_id = journal.job_id
                    for p in journal_files(path):
                        p.unlink(missing_ok=True)
                    removed.append(job_id)
            except (BulkloadError, sqlite3.Error, OSError):
                continue  # busy, unreadable, or not ours to remove
    return removed


def properties(object_type: str, conn: Connection, *, api_version: str = "v3",
               runtime: Runtime | None = None) -> list[dict[str, Any]]:
    """The portal's property definitions of `object_type`, as HubSpot gives them."""
    rt = runtime or Runtime()
    tuning = Tuning()
    limiter = make_limiter(tuning, rt)
    with make_client(conn, tuning, rt, ApiPaths(cast(ApiVersion, api_version))) as client:
        sender = Sender(client, limiter, policy=RetryPolicy.of(tuning), clock=rt.clock, sleep=rt.sleep,
                        rng=rt.rng, stop=rt.stop)
        items = sender.call("schema", lambda: client.list_properties(object_type))
    return sorted(items, key=lambda p: str(p.get("name", "")))


def _links(journal: Journal, config: JobConfig) -> AssociationStep | None:
    if not config.associations:
        return None
    return AssociationStep(journal, config.associations, config.object_type, config.id_property)


def _about_links(error_types: Sequence[str]) -> bool:
    return not error_types or bool({"ASSOCIATED_RECORD_NOT_FOUND", "INVALID_ASSOCIATION"} & {t.upper() for t in error_types})


def open_journal(job_dir: Path | None, job_id: str) -> Journal:
    """A job's journal, read-only (found by id from any directory)."""
    return Journal.open(find_journal(job_id, job_dir))


def status(job_id: str, *, job_dir: Path | None = None) -> dict[str, Any]:
    """The job's status as `status --json` prints it."""
    with open_journal(job_dir, job_id) as journal:
        _job_or_hint(journal)
        return status_of(journal)


def list_jobs(*, job_dir: Path | None = None, all_dirs: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """Every job in the job dir (or in every job dir this user has used), newest first, and
    one line for each journal that could not be read (a damaged file must not hide the rest)."""
    dirs = [default_dir_or(job_dir)]
    if all_dirs:
        dirs += known_job_dirs()
    entries: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for d in dirs:
        for path in journals_in(d):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                with Journal.open(path) as journal:
                    entries.append(job_entry(journal))
            except (BulkloadError, sqlite3.Error, OSError) as e:
                problems.append(f"{path}: {e}")
    entries.sort(key=lambda e: e["last_activity"], reverse=True)
    return entries, problems
