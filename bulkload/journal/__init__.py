"""The job journal: one SQLite file per job (sqlite-utils, WAL), the only shared state.

This package is the only code that speaks SQL. Its modules:

- `schema`: the tables and their migrations; creating (0600) and opening journals,
  read-write or read-only; refusing files that are not usable journals.
- `writes`: the transitions, verb-named, one transaction each (its docstring lists them
  in the order that makes a kill at any instant safe).
- `reads`: every query, and the one definition of a current error.
- `health`: the queries of the health page and the notifications (aggregates, capped lists).
- `locate`: job dirs, journal names, the per-user index of job dirs, the job lock.

States are readable strings, so a journal can be inspected with `sqlite3` or datasette.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import sqlite_utils

from bulkload.errors import JobNotFound
from bulkload.journal.health import BatchEvents, HealthReads, NoticeRow, RunRow, Tick
from bulkload.journal.locate import (
    JOURNAL_SUFFIX,
    ensure_job_dir,
    find_journal,
    job_id_of,
    job_lock,
    journal_files,
    journal_path,
    journals_in,
    known_job_dirs,
    lock_holder,
    remember_job_dir,
)
from bulkload.journal.reads import ErrorRow, JobRow, Reads, ReplayRow, WarningRow
from bulkload.journal.schema import SCHEMA_VERSION, create_database, open_database
from bulkload.journal.writes import BatchResult, LinkResult, Usage, Writes, now_iso

__all__ = [
    "JOURNAL_SUFFIX",
    "SCHEMA_VERSION",
    "BatchEvents",
    "BatchResult",
    "ErrorRow",
    "JobRow",
    "Journal",
    "LinkResult",
    "NoticeRow",
    "ReplayRow",
    "RunRow",
    "Tick",
    "Usage",
    "WarningRow",
    "ensure_job_dir",
    "find_journal",
    "job_id_of",
    "job_lock",
    "journal_files",
    "journal_path",
    "journals_in",
    "known_job_dirs",
    "lock_holder",
    "now_iso",
    "remember_job_dir",
]


class Journal(Reads, HealthReads, Writes):
    """One job's journal. Open with `Journal.create` or `Journal.open`."""

    def __init__(self, path: Path, db: sqlite_utils.Database, *, writable: bool,
                 checkpoint: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.db = db
        self.writable = writable
        self._checkpoint = checkpoint or (lambda name: None)

    @property
    def job_id(self) -> str:
        return job_id_of(self.path)

    @classmethod
    def create(cls, path: Path, *, checkpoint: Callable[[str], None] | None = None) -> Journal:
        """A new journal file (mode 0600) in an existing job dir."""
        return cls(path, create_database(path), writable=True, checkpoint=checkpoint)

    @classmethod
    def open(cls, path: Path, *, writable: bool = False, checkpoint: Callable[[str], None] | None = None) -> Journal:
        """An existing journal: read-only unless `writable` (then migrated to this version)."""
        if not path.exists():
            raise JobNotFound(f"no such job: {job_id_of(path)} (looked for {path})")
        return cls(path, open_database(path, writable=writable), writable=writable, checkpoint=checkpoint)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
