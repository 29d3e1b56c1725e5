"""The journal's tables, their migrations, and how a journal file is opened.

A journal is created with mode 0600 before SQLite touches it (call data is personal
data; SQLite gives its -wal and -shm files the same mode). It is opened read-write by
the commands that change a job (`load`, `resume`, `retry`), which also migrate it, and
read-only by the ones that only look (`status`, `jobs`, `report`), so they work in a
read-only job dir and never change a byte. A file that is not a bulkload journal, is
damaged, or was written by a newer bulkload (`user_version` beyond the migrations this
version knows) is refused with one line and left exactly as it is.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlite_utils

from bulkload.errors import JournalUnusable

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
    # 3: the second round's vocabulary and records.
    # - `superseding`: id value -> the last row with it, the one that supersedes the rest
    #   (was dup_ids); the scan fills it.
    # - job.tuning: the user's tuning choices, kept for resume and retry.
    # - 'scanning' is not a state of the contract: a scanning job is running.
    # - api_calls: calls per minute and kind (upsert, read, associate, schema); the
    #   minute is named for its unit. Rows of api_usage move over as upserts.
    # - row_errors.problems: every problem of the row as JSON, when it has several; an
    #   id that is blank or whitespace is no id (NULL), so such rows stay apart.
    # - runs.rows_done counts what the run finished, runs.requests what it spent.
    # - batches.naive_timestamps: inputs whose timestamp had no zone (read in the job's zone).
    """
    ALTER TABLE dup_ids RENAME TO superseding;
    ALTER TABLE job ADD COLUMN tuning TEXT;
    UPDATE job SET state = 'running' WHERE state = 'scanning';
    CREATE TABLE api_calls (
        unix_minute INTEGER NOT NULL,
        kind TEXT NOT NULL,
        calls INTEGER NOT NULL DEFAULT 0,
        rate_limited INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (unix_minute, kind)
    ) WITHOUT ROWID;
    INSERT INTO api_calls(unix_minute, kind, calls, rate_limited, retries)
        SELECT minute, 'upsert', calls, rate_limited, retries FROM api_usage;
    DROP TABLE api_usage;
    ALTER TABLE row_errors ADD COLUMN problems TEXT;
    UPDATE row_errors SET id_value = NULL WHERE TRIM(id_value, ' ' || char(9, 10, 11, 12, 13)) = '';
    ALTER TABLE runs ADD COLUMN requests INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE batches ADD COLUMN naive_timestamps INTEGER NOT NULL DEFAULT 0;
    """,
    # 4: what landed, and the association step.
    # - landed: every upserted row's HubSpot record id and whether this job created it
    #   (object_id NULL: HubSpot's answer did not say which record), for report --upserted
    #   and as the association's `from`.
    # - lookups: each (object, property, value) looked up once per job; record_id NULL: no
    #   such record (looked up again by retry).
    # - pairs: every (row, target, value) to associate: pending, created or failed; only
    #   the open ones are indexed (a made pair costs its row only), and job.pairs counts
    #   them all, so status need not scan the table.
    # - landed_no_id: the few landed rows whose record id HubSpot's answer did not give.
    """
    CREATE TABLE landed (
        row_number INTEGER PRIMARY KEY,
        id_value TEXT NOT NULL,
        object_id INTEGER,
        created INTEGER NOT NULL,
        -- lines before the row beyond its row number (embedded newlines): 0 for most rows
        -- (which SQLite stores in no bytes), NULL for sources without lines (Parquet)
        line_offset INTEGER,
        landed_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE lookups (
        object_type TEXT NOT NULL,
        property TEXT NOT NULL,
        value TEXT NOT NULL,
        record_id TEXT,
        looked_at INTEGER NOT NULL,
        PRIMARY KEY (object_type, property, value)
    ) WITHOUT ROWID;
    CREATE TABLE pairs (
        row_number INTEGER NOT NULL,
        target INTEGER NOT NULL,
        value TEXT NOT NULL,
        state TEXT NOT NULL,
        to_id TEXT,
        error_type TEXT,
        message TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER,
        PRIMARY KEY (row_number, target, value)
    ) WITHOUT ROWID;
    CREATE INDEX pairs_unresolved ON pairs(target, value) WHERE state = 'pending' AND to_id IS NULL;
    CREATE INDEX pairs_ready ON pairs(target) WHERE state = 'pending' AND to_id IS NOT NULL;
    CREATE INDEX pairs_failed ON pairs(row_number) WHERE state = 'failed';
    CREATE INDEX landed_no_id ON landed(id_value) WHERE object_id IS NULL;
    ALTER TABLE job ADD COLUMN pairs INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: what the portal said at the last run: each object's properties and the owners,
    # as HubSpot answered, or that the read was refused (403: the check is HubSpot's) or
    # not made (a dry run offline). `retry` checks against what was kept.
    """
    CREATE TABLE portal (
        what TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        body TEXT,
        read_at TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 6: the health page and notifications.
    # - api_ticks: API calls per 10 seconds (all kinds), with the 429s, the 5xx answers
    #   and the retries, for the page's timeline against HubSpot's 10-second window
    #   (api_calls keeps minutes by kind, for the daily budget). tick = unix seconds // 10.
    # - notices: each --notify POST: when, which event, where to (scheme and host only: a
    #   webhook URL such as Slack's holds a secret), and whether it was taken. A failed
    #   webhook is recorded here and changes nothing else.
    """
    CREATE TABLE api_ticks (
        tick INTEGER PRIMARY KEY,
        calls INTEGER NOT NULL DEFAULT 0,
        rate_limited INTEGER NOT NULL DEFAULT 0,
        server_errors INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE notices (
        notice_no INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        state TEXT NOT NULL,
        exit_code INTEGER,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        http_status INTEGER,
        error TEXT
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def _connect(uri: str) -> sqlite_utils.Database:
    # isolation_level=None: no implicit transactions; every write is in an explicit atomic().
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30)
    return sqlite_utils.Database(conn)


def _unusable(path: Path, exc: BaseException) -> JournalUnusable:
    job_id = path.name.removesuffix(".journal.sqlite")
    return JournalUnusable(f"job {job_id}: {path} is not a usable bulkload journal ({exc}); it was left as it is")


def _version(db: sqlite_utils.Database, path: Path) -> int:
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise _unusable(path, exc) from None
    if version > SCHEMA_VERSION:
        raise JournalUnusable(
            f"{path} was written by a newer bulkload (journal version {version}; this one knows up to "
            f"{SCHEMA_VERSION}): upgrade bulkload to use it; the file was left as it is"
        )
    if version and "job" not in tables:
        raise _unusable(path, ValueError("it has no job table"))
    if version == 0 and tables:
        raise _unusable(path, ValueError("it is some other SQLite database"))
    return version


def _uri(path: Path, mode: str) -> str:
    from urllib.parse import quote

    return f"file:{quote(str(path.resolve()))}?mode={mode}"


def open_database(path: Path, *, writable: bool) -> sqlite_utils.Database:
    """Open an existing journal file: read-write (migrated to this version) or read-only."""
    try:
        db = _connect(_uri(path, "rw")) if writable else _connect_read_only(path)
        version = _version(db, path)
        if writable:
            db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL is durable against a killed process (the case that matters);
            # only an OS crash may drop the last commits, which resume then re-sends.
            db.execute("PRAGMA synchronous=NORMAL")
            _migrate(db, version)
        elif version < SCHEMA_VERSION:
            # A journal of an older bulkload: upgraded once, where it can be written.
            db.close()
            if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
                raise JournalUnusable(
                    f"{path} was written by an older bulkload and must be upgraded once by a command "
                    "that can write it (run `bulkload status` where the job dir is writable)"
                )
            open_database(path, writable=True).close()
            db = _connect_read_only(path)
        return db
    except sqlite3.DatabaseError as exc:
        raise _unusable(path, exc) from None


def _connect_read_only(path: Path) -> sqlite_utils.Database:
    """mode=ro; where the job dir is read-only and the WAL index cannot be created,
    immutable=1 (no process can be writing a journal in a directory nobody may write)."""
    db = _connect(_uri(path, "ro"))
    try:
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db
    except sqlite3.OperationalError:
        db.close()
        if os.access(path.parent, os.W_OK):
            raise
    db = _connect(_uri(path, "ro") + "&immutable=1")
    return db


def create_database(path: Path) -> sqlite_utils.Database:
    """Create a new journal file, mode 0600, at the current schema version."""
    # O_EXCL: two loads naming the same job cannot both create it.
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.fchmod(fd, 0o600)
    os.close(fd)
    db = _connect(_uri(path, "rw"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    _migrate(db, 0)
    return db


def _migrate(db: sqlite_utils.Database, version: int) -> None:
    for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with db.atomic():
            for stmt in script.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            db.execute(f"PRAGMA user_version={i}")
