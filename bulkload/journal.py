"""The job journal: one SQLite file per job (sqlite-utils, WAL), the only shared state.

Every transition is one transaction, and the order of writes makes a SIGKILL
at any instant safe:

- `claim_batch` records a batch's row range, its local failures and its
  superseded rows, with status `in_flight`, before anything is sent;
- `record_outcome` writes the row errors and counts and flips the batch to
  `done`/`partial`/`failed` in the same transaction, so a batch is never
  marked done without its outcome;
- a batch still `in_flight` on resume is sent again. This relies on upsert
  keyed by idProperty being idempotent: a replay updates the same records.

States are readable strings so the file can be inspected with `sqlite3`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlite_utils

from bulkload.chunker import KnownBatch, PlannedBatch
from bulkload.errors import JobNotFound
from bulkload.hubspot.errors import InputFailure
from bulkload.mapping import LocalFailure
from bulkload.taxonomy import category_of


class JobState(StrEnum):
    SCANNING = "scanning"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"


class BatchStatus(StrEnum):
    IN_FLIGHT = "in_flight"  # claimed; outcome not recorded (re-sent on resume)
    DONE = "done"  # every input upserted
    PARTIAL = "partial"  # some rows failed
    FAILED = "failed"  # every row failed


FINISHED = (BatchStatus.DONE, BatchStatus.PARTIAL, BatchStatus.FAILED)

JOURNAL_SUFFIX = ".journal.sqlite"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def journal_path(job_dir: Path, job_id: str) -> Path:
    return job_dir / f"{job_id}{JOURNAL_SUFFIX}"


# Schema migrations: append, never edit (a journal in the field may be at any version).
MIGRATIONS: list[str] = [
    # 1: the job, its batches, row errors, superseded rows, API usage, runs.
    """
    CREATE TABLE job (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        job_id TEXT NOT NULL,
        state TEXT NOT NULL,
        object_type TEXT NOT NULL,
        id_property TEXT NOT NULL,
        config TEXT NOT NULL,
        source_path TEXT NOT NULL,
        source_format TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        columns TEXT,
        total_rows INTEGER,
        scan_complete INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT,
        paused_reason TEXT,
        resume_after TEXT,
        pid INTEGER,
        last_rate TEXT
    );
    CREATE TABLE batches (
        batch_no INTEGER PRIMARY KEY,
        first_row INTEGER NOT NULL,
        last_row INTEGER NOT NULL,
        n_rows INTEGER NOT NULL,
        n_inputs INTEGER NOT NULL,
        n_superseded INTEGER NOT NULL,
        n_local_failed INTEGER NOT NULL,
        status TEXT NOT NULL,
        num_errors INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        requests INTEGER NOT NULL DEFAULT 0,
        splits INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        rate_limited INTEGER NOT NULL DEFAULT 0,
        http_status INTEGER,
        claimed_at TEXT NOT NULL,
        finished_at TEXT,
        duration_ms INTEGER
    );
    CREATE INDEX batches_status ON batches(status);
    CREATE TABLE row_errors (
        row_number INTEGER PRIMARY KEY,
        line_number INTEGER,
        id_value TEXT,
        batch_no INTEGER,
        error_type TEXT NOT NULL,
        category TEXT NOT NULL,
        message TEXT NOT NULL,
        property_name TEXT,
        invalid_value TEXT,
        http_status INTEGER,
        hubspot_category TEXT,
        hubspot_code TEXT,
        correlation_id TEXT,
        origin TEXT NOT NULL,
        row_data TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        resolved INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        resolved_at TEXT
    );
    CREATE INDEX row_errors_id ON row_errors(id_value);
    CREATE INDEX row_errors_current ON row_errors(resolved, error_type);
    CREATE TABLE superseded (
        row_number INTEGER PRIMARY KEY,
        id_value TEXT NOT NULL,
        superseded_by INTEGER NOT NULL,
        line_number INTEGER,
        batch_no INTEGER,
        row_data TEXT
    );
    CREATE TABLE dup_ids (
        id_value TEXT PRIMARY KEY,
        last_row INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE api_usage (
        minute INTEGER PRIMARY KEY,
        calls INTEGER NOT NULL DEFAULT 0,
        rate_limited INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE runs (
        run_no INTEGER PRIMARY KEY,
        command TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT,
        rows_done INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL DEFAULT 0,
        tuning TEXT
    );
    """,
    # 2: the line each batch's first row starts on, so a resume can start reading there.
    """
    ALTER TABLE batches ADD COLUMN first_line INTEGER;
    """,
]


@dataclass(frozen=True)
class JobRow:
    job_id: str
    state: str
    object_type: str
    id_property: str
    config: dict[str, Any]
    source_path: str
    source_format: str
    fingerprint: dict[str, Any]
    columns: list[str]
    total_rows: int | None
    scan_complete: bool
    created_at: str
    updated_at: str
    finished_at: str | None
    paused_reason: str | None
    resume_after: str | None
    pid: int | None
    last_rate: dict[str, Any] | None


@dataclass(frozen=True)
class ErrorRecord:
    """A row's error, as `record_outcome` and `retry` write it."""

    row_number: int
    line_number: int | None
    id_value: str | None
    batch_no: int | None
    error_type: str
    message: str
    property_name: str | None
    invalid_value: str | None
    http_status: int | None
    hubspot_category: str | None
    hubspot_code: str | None
    correlation_id: str | None
    origin: str  # "local" or "hubspot"
    row_data: dict[str, Any]

    @classmethod
    def from_hubspot(
        cls, f: InputFailure, *, row_number: int, line_number: int | None, id_value: str | None,
        batch_no: int | None, row_data: dict[str, Any],
    ) -> ErrorRecord:
        """A row's error as HubSpot gave it (HubSpot's own message kept)."""
        return cls(
            row_number=row_number, line_number=line_number, id_value=id_value, batch_no=batch_no,
            error_type=f.error_type, message=f.message, property_name=f.property_name,
            invalid_value=f.invalid_value, http_status=f.http_status, hubspot_category=f.hubspot_category,
            hubspot_code=f.hubspot_code, correlation_id=f.correlation_id, origin="hubspot", row_data=row_data,
        )

    @classmethod
    def from_local(
        cls, f: LocalFailure, *, row_number: int, line_number: int | None, id_value: str | None,
        batch_no: int | None, row_data: dict[str, Any],
    ) -> ErrorRecord:
        """A row's error found before sending (no id, unreadable datetime, ...)."""
        return cls(
            row_number=row_number, line_number=line_number, id_value=id_value, batch_no=batch_no,
            error_type=f.error_type.value, message=f.message, property_name=f.property_name,
            invalid_value=f.invalid_value, http_status=None, hubspot_category=None, hubspot_code=None,
            correlation_id=None, origin="local", row_data=row_data,
        )


@dataclass(frozen=True)
class BatchResult:
    """What a sent batch came to; written by `record_outcome`."""

    created: int
    updated: int
    errors: Sequence[ErrorRecord]
    requests: int
    splits: int
    retries: int
    rate_limited: int
    http_status: int | None
    duration_ms: int


class Journal:
    """One job's journal. Open with `Journal.create` or `Journal.open`."""

    def __init__(self, path: Path, db: sqlite_utils.Database, *, checkpoint: Callable[[str], None] | None = None):
        self.path = path
        self.db = db
        # Test seam: called after every committed transition, so a test can
        # "crash" between any two journal steps (as dlt's dummy destination does).
        self._checkpoint = checkpoint or (lambda name: None)

    # ---- opening -------------------------------------------------------------------------

    @staticmethod
    def _connect(path: Path) -> sqlite_utils.Database:
        # isolation_level=None: no implicit transactions; every write is in an explicit atomic().
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL is durable against a killed process (the case that matters);
        # only an OS crash may drop the last commits, which resume then re-sends.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @classmethod
    def create(cls, path: Path, **kw: Any) -> Journal:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it: call data is personal data. SQLite gives
        # its -wal and -shm files the same mode as the database file.
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        journal = cls(path, cls._connect(path), **kw)
        journal.migrate()
        return journal

    @classmethod
    def open(cls, path: Path, **kw: Any) -> Journal:
        if not path.exists():
            raise JobNotFound(f"no such job: {path.name.removesuffix(JOURNAL_SUFFIX)} (looked for {path})")
        journal = cls(path, cls._connect(path), **kw)
        journal.migrate()
        return journal

    def migrate(self) -> None:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db.atomic():
                for stmt in script.split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
                self.db.execute(f"PRAGMA user_version={i}")

    def close(self) -> None:
        self.db.close()

    # ---- the job -------------------------------------------------------------------------

    def create_job(
        self,
        *,
        job_id: str,
        object_type: str,
        id_property: str,
        config: dict[str, Any],
        source_path: str,
        source_format: str,
        fingerprint: dict[str, Any],
        columns: list[str],
    ) -> None:
        ts = now_iso()
        with self.db.atomic():
            self.db.table("job").insert(
                {
                    "id": 1,
                    "job_id": job_id,
                    "state": JobState.SCANNING.value,
                    "object_type": object_type,
                    "id_property": id_property,
                    "config": json.dumps(config),
                    "source_path": source_path,
                    "source_format": source_format,
                    "fingerprint": json.dumps(fingerprint),
                    "columns": json.dumps(columns),
                    "created_at": ts,
                    "updated_at": ts,
                    "pid": os.getpid(),
                }
            )
        self._checkpoint("create_job")

    def job(self) -> JobRow:
        row = self.db.execute("SELECT * FROM job WHERE id = 1").fetchone()
        if row is None:
            job_id = self.path.name.removesuffix(JOURNAL_SUFFIX)
            raise JobNotFound(
                f"job {job_id} never started (stopped before its first step; nothing was sent): "
                f"start it again with bulkload load ... --job-id {job_id}"
            )
        cols = [d[0] for d in self.db.execute("SELECT * FROM job LIMIT 0").description]
        d = dict(zip(cols, row, strict=True))
        return JobRow(
            job_id=d["job_id"],
            state=d["state"],
            object_type=d["object_type"],
            id_property=d["id_property"],
            config=json.loads(d["config"]),
            source_path=d["source_path"],
            source_format=d["source_format"],
            fingerprint=json.loads(d["fingerprint"]),
            columns=json.loads(d["columns"] or "[]"),
            total_rows=d["total_rows"],
            scan_complete=bool(d["scan_complete"]),
            created_at=d["created_at"],
            updated_at=d["updated_at"],
            finished_at=d["finished_at"],
            paused_reason=d["paused_reason"],
            resume_after=d["resume_after"],
            pid=d["pid"],
            last_rate=json.loads(d["last_rate"]) if d["last_rate"] else None,
        )

    def set_state(
        self,
        state: JobState,
        *,
        reason: str | None = None,
        resume_after: str | None = None,
        pid: int | None = None,
    ) -> None:
        finished = now_iso() if state in (JobState.COMPLETED, JobState.COMPLETED_WITH_ERRORS) else None
        with self.db.atomic():
            self.db.execute(
                "UPDATE job SET state = ?, paused_reason = ?, resume_after = ?, updated_at = ?,"
                " finished_at = COALESCE(?, finished_at), pid = ? WHERE id = 1",
                [state.value, reason, resume_after, now_iso(), finished, pid],
            )
        self._checkpoint(f"set_state:{state.value}")

    # ---- the scan (pass 1): row count and repeated ids -------------------------------------

    def reset_scan(self) -> None:
        with self.db.atomic():
            self.db.execute("DELETE FROM dup_ids")

    def add_dup_ids(self, last_rows: dict[str, int]) -> None:
        """Ids the scan saw more than once (and a few false alarms), with their last row."""
        if not last_rows:
            return
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT INTO dup_ids(id_value, last_row) VALUES (?, ?)"
                " ON CONFLICT(id_value) DO UPDATE SET last_row = MAX(last_row, excluded.last_row)",
                list(last_rows.items()),
            )

    def complete_scan(self, total_rows: int) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE job SET total_rows = ?, scan_complete = 1, state = ?, updated_at = ? WHERE id = 1",
                [total_rows, JobState.RUNNING.value, now_iso()],
            )
        self._checkpoint("complete_scan")

    def dup_ids(self) -> dict[str, int]:
        """id value -> the row that wins; every other row with that id is superseded.

        Decided once by the scan and journaled, so every run supersedes the same rows.
        """
        return dict(self.db.execute("SELECT id_value, last_row FROM dup_ids").fetchall())

    # ---- batches ------------------------------------------------------------------------

    def known_batches(self) -> list[KnownBatch]:
        rows = self.db.execute("SELECT batch_no, first_row, last_row, status FROM batches ORDER BY batch_no")
        return [KnownBatch(r[0], r[1], r[2], r[3] in FINISHED) for r in rows.fetchall()]

    def start_of(self, batch_no: int) -> tuple[int, int | None] | None:
        """(first row, the line it starts on) of a journaled batch."""
        r = self.db.execute("SELECT first_row, first_line FROM batches WHERE batch_no = ?", [batch_no]).fetchone()
        return None if r is None else (int(r[0]), r[1])

    def done_prefix(self) -> tuple[int, int]:
        """(last batch_no, last row) of the leading run of finished batches: resume skips it unread."""
        row = self.db.execute(
            "SELECT MIN(batch_no) FROM batches WHERE status = ?", [BatchStatus.IN_FLIGHT.value]
        ).fetchone()
        first_open = row[0]
        if first_open is None:
            r = self.db.execute("SELECT MAX(batch_no), MAX(last_row) FROM batches").fetchone()
        else:
            r = self.db.execute(
                "SELECT MAX(batch_no), MAX(last_row) FROM batches WHERE batch_no < ?", [first_open]
            ).fetchone()
        return int(r[0] or 0), int(r[1] or 0)

    def claim_batch(self, batch: PlannedBatch) -> None:
        """Record a batch before it is sent: its range, local failures and superseded rows."""
        self.commit(claims=[batch])

    def record_outcome(self, batch: PlannedBatch, result: BatchResult) -> None:
        """Write a batch's row errors and counts and mark it finished, in one transaction."""
        self.commit(outcomes=[(batch, result)])

    def commit(
        self,
        *,
        outcomes: Sequence[tuple[PlannedBatch, BatchResult]] = (),
        claims: Sequence[PlannedBatch] = (),
        usage: tuple[int, int, int, float] | None = None,
        last_rate: dict[str, Any] | None = None,
    ) -> None:
        """One transaction for one turn of the run loop: outcomes first, then claims.

        Grouping keeps the journal cheap (one commit per turn, not four per batch)
        without weakening the rule that matters: a batch's claim is committed
        before it is sent, and its outcome is committed whole or not at all.
        """
        ts = now_iso()
        with self.db.atomic():
            for batch, result in outcomes:
                self._record(batch, result, ts)
            for batch in claims:
                self._claim(batch, ts)
            if usage is not None:
                self._add_usage(*usage)
            if last_rate is not None or outcomes or claims:
                self.db.execute(
                    "UPDATE job SET updated_at = ?, last_rate = COALESCE(?, last_rate) WHERE id = 1",
                    [ts, json.dumps(last_rate) if last_rate else None],
                )
        for _ in outcomes:
            self._checkpoint("record_outcome")
        for _ in claims:
            self._checkpoint("claim_batch")

    def _claim(self, batch: PlannedBatch, ts: str) -> None:
        self.db.conn.execute(
            "INSERT INTO batches(batch_no, first_row, last_row, n_rows, n_inputs, n_superseded,"
            " n_local_failed, status, claimed_at, attempts, first_line) VALUES (?,?,?,?,?,?,?,?,?,1,?)"
            " ON CONFLICT(batch_no) DO UPDATE SET attempts = attempts + 1, claimed_at = excluded.claimed_at",
            [
                batch.batch_no, batch.first_row, batch.last_row, batch.n_rows, len(batch.inputs),
                len(batch.superseded), len(batch.failures), BatchStatus.IN_FLIGHT.value, ts, batch.first_line,
            ],
        )
        if batch.failures:
            # OR IGNORE: a row already journaled keeps its record (it may have been
            # resolved by `retry` since); local failures are deterministic anyway.
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO row_errors(row_number, line_number, id_value, batch_no, error_type,"
                " category, message, property_name, invalid_value, origin, row_data, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,'local',?,?,?)",
                [
                    (
                        f.row_number, f.line_number, f.id_value, batch.batch_no, f.failure.error_type.value,
                        category_of(f.failure.error_type).value, f.failure.message, f.failure.property_name,
                        f.failure.invalid_value, json.dumps(f.row_data, ensure_ascii=False), ts, ts,
                    )
                    for f in batch.failures
                ],
            )
        if batch.superseded:
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO superseded(row_number, id_value, superseded_by, line_number, batch_no,"
                " row_data) VALUES (?,?,?,?,?,?)",
                [
                    (s.row_number, s.id_value, s.superseded_by, s.line_number, batch.batch_no,
                     json.dumps(s.row_data, ensure_ascii=False))
                    for s in batch.superseded
                ],
            )

    def _record(self, batch: PlannedBatch, result: BatchResult, ts: str) -> None:
        n_failed = len(result.errors) + len(batch.failures)
        if n_failed == 0:
            status = BatchStatus.DONE
        elif n_failed >= len(batch.inputs) + len(batch.failures):
            status = BatchStatus.FAILED
        else:
            status = BatchStatus.PARTIAL
        self.upsert_errors(result.errors, ts)
        self.db.conn.execute(
            "UPDATE batches SET status = ?, num_errors = ?, created = ?, updated = ?, requests = requests + ?,"
            " splits = splits + ?, retries = retries + ?, rate_limited = rate_limited + ?, http_status = ?,"
            " finished_at = ?, duration_ms = ? WHERE batch_no = ?",
            [
                status.value, len(result.errors), result.created, result.updated, result.requests,
                result.splits, result.retries, result.rate_limited, result.http_status, ts,
                result.duration_ms, batch.batch_no,
            ],
        )

    def upsert_errors(self, errors: Sequence[ErrorRecord], ts: str | None = None) -> None:
        """Insert or replace row errors: only the most recent error per row is current."""
        if not errors:
            return
        ts = ts or now_iso()
        self.db.conn.executemany(
            "INSERT INTO row_errors(row_number, line_number, id_value, batch_no, error_type, category, message,"
            " property_name, invalid_value, http_status, hubspot_category, hubspot_code, correlation_id, origin,"
            " row_data, attempts, resolved, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,0,?,?)"
            " ON CONFLICT(row_number) DO UPDATE SET error_type = excluded.error_type,"
            " category = excluded.category, message = excluded.message, property_name = excluded.property_name,"
            " invalid_value = excluded.invalid_value, http_status = excluded.http_status,"
            " hubspot_category = excluded.hubspot_category, hubspot_code = excluded.hubspot_code,"
            " correlation_id = excluded.correlation_id, origin = excluded.origin, row_data = excluded.row_data,"
            " attempts = row_errors.attempts + 1, resolved = 0, resolved_at = NULL, updated_at = excluded.updated_at",
            [
                (
                    e.row_number, e.line_number, e.id_value, e.batch_no, e.error_type,
                    category_of(e.error_type).value, e.message, e.property_name, e.invalid_value, e.http_status,
                    e.hubspot_category, e.hubspot_code, e.correlation_id, e.origin,
                    json.dumps(e.row_data, ensure_ascii=False), ts, ts,
                )
                for e in errors
            ],
        )

    def _resolve(self, row_numbers: Sequence[int], ts: str) -> None:
        self.db.conn.executemany(
            "UPDATE row_errors SET resolved = 1, resolved_at = ?, updated_at = ? WHERE resolved = 0 AND row_number = ?",
            [(ts, ts, r) for r in row_numbers],
        )

    def record_retry(self, resolved_rows: Sequence[int], errors: Sequence[ErrorRecord], *, created: int,
                     updated: int, run_no: int) -> None:
        """A `retry` round: successes resolve their rows' errors, new failures replace them."""
        ts = now_iso()
        with self.db.atomic():
            self._resolve(resolved_rows, ts)
            self.upsert_errors(errors, ts)
            self.db.execute(
                "UPDATE runs SET created = created + ?, updated = updated + ?, rows_done = rows_done + ?"
                " WHERE run_no = ?",
                [created, updated, len(resolved_rows) + len(errors), run_no],
            )
        self._checkpoint("record_retry")

    # ---- API usage and runs ---------------------------------------------------------------

    def _add_usage(self, calls: int, rate_limited: int, retries: int, at: float) -> None:
        if not (calls or rate_limited or retries):
            return
        self.db.conn.execute(
            "INSERT INTO api_usage(minute, calls, rate_limited, retries) VALUES (?,?,?,?)"
            " ON CONFLICT(minute) DO UPDATE SET calls = calls + excluded.calls,"
            " rate_limited = rate_limited + excluded.rate_limited, retries = retries + excluded.retries",
            [int(at // 60), calls, rate_limited, retries],
        )

    def usage_since(self, since_epoch: float) -> tuple[int, int, int]:
        r = self.db.execute(
            "SELECT COALESCE(SUM(calls),0), COALESCE(SUM(rate_limited),0), COALESCE(SUM(retries),0)"
            " FROM api_usage WHERE minute >= ?",
            [int(since_epoch // 60)],
        ).fetchone()
        return int(r[0]), int(r[1]), int(r[2])

    def oldest_usage_minute_since(self, since_epoch: float) -> int | None:
        r = self.db.execute(
            "SELECT MIN(minute) FROM api_usage WHERE minute >= ? AND calls > 0", [int(since_epoch // 60)]
        ).fetchone()
        return None if r[0] is None else int(r[0])

    def start_run(self, command: str, tuning: dict[str, Any]) -> int:
        with self.db.atomic():
            cur = self.db.execute(
                "INSERT INTO runs(command, started_at, tuning) VALUES (?,?,?)",
                [command, now_iso(), json.dumps(tuning)],
            )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_no: int, outcome: str, rows_done: int) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE runs SET finished_at = ?, outcome = ?, rows_done = MAX(rows_done, ?) WHERE run_no = ?",
                [now_iso(), outcome, rows_done, run_no],
            )

    def runs(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM runs ORDER BY run_no"))

    # ---- counts ---------------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        """Row and batch counts, derived from the tables (never stored twice).

        upserted + failed + superseded + pending = total, always: pending is the rest.
        """
        job = self.job()
        total = job.total_rows or 0
        q = self.db.execute
        superseded = int(q("SELECT COUNT(*) FROM superseded").fetchone()[0])
        failed = int(q("SELECT COUNT(*) FROM row_errors WHERE resolved = 0").fetchone()[0])
        fin = tuple(s.value for s in FINISHED)
        r = q(
            "SELECT COALESCE(SUM(n_rows - n_superseded),0), COALESCE(SUM(created),0), COALESCE(SUM(updated),0),"
            " COALESCE(SUM(num_errors),0), COALESCE(SUM(requests),0) FROM batches WHERE status IN (?,?,?)",
            fin,
        ).fetchone()
        rows_in_finished, created, updated, num_errors, batch_requests = (int(x) for x in r)
        failed_in_finished = int(
            q(
                "SELECT COUNT(*) FROM row_errors e JOIN batches b ON b.batch_no = e.batch_no"
                " WHERE e.resolved = 0 AND b.status IN (?,?,?)",
                fin,
            ).fetchone()[0]
        )
        # Rows outside any finished batch whose error `retry` resolved have landed too.
        resolved_elsewhere = int(
            q(
                "SELECT COUNT(*) FROM row_errors e LEFT JOIN batches b ON b.batch_no = e.batch_no"
                " WHERE e.resolved = 1 AND (b.status IS NULL OR b.status NOT IN (?,?,?))",
                fin,
            ).fetchone()[0]
        )
        upserted = rows_in_finished - failed_in_finished + resolved_elsewhere
        rc = q("SELECT COALESCE(SUM(created),0), COALESCE(SUM(updated),0) FROM runs").fetchone()
        created += int(rc[0])
        updated += int(rc[1])
        pending = max(0, total - upserted - failed - superseded)
        by_status = dict(q("SELECT status, COUNT(*) FROM batches GROUP BY status").fetchall())
        claimed = sum(by_status.values())
        max_row = int(q("SELECT COALESCE(MAX(last_row),0) FROM batches").fetchone()[0])
        batch_size = int(job.config.get("batch_size", 100))
        # Batches not yet claimed: an estimate until the source is read to the end.
        unplanned = max(0, total - max_row)
        future = -(-unplanned // batch_size) if unplanned else 0
        calls = int(q("SELECT COALESCE(SUM(calls),0) FROM api_usage").fetchone()[0])
        return {
            "rows": {
                "total": total,
                "upserted": upserted,
                "created": created,
                "updated": updated,
                "failed": failed,
                "superseded": superseded,
                "pending": pending,
            },
            "batches": {
                "total": claimed + future,
                "done": by_status.get(BatchStatus.DONE.value, 0),
                "partial": by_status.get(BatchStatus.PARTIAL.value, 0),
                "failed": by_status.get(BatchStatus.FAILED.value, 0),
                "pending": by_status.get(BatchStatus.IN_FLIGHT.value, 0) + future,
            },
            "num_errors": num_errors,
            "api_calls": max(calls, batch_requests),
        }

    def failed_by_type(self) -> list[tuple[str, str, int]]:
        """(category, errorType, rows) of the current errors, most first."""
        return [
            (r[0], r[1], int(r[2]))
            for r in self.db.execute(
                "SELECT category, error_type, COUNT(*) FROM row_errors WHERE resolved = 0"
                " GROUP BY category, error_type ORDER BY COUNT(*) DESC, error_type"
            ).fetchall()
        ]
