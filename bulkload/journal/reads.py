"""Every query of the journal: the job, counts, batches for a resume, the report's rows,
the cards' aggregates, failed rows for `retry`, API usage and throughput.

One definition of a *current error* serves `status`, the report and the cards: the
latest unresolved error of a record, where a record is an id value, or the row itself
when it has no usable id (HubSpot's sync-errors rule: "only the most recent error per
externalObjectId"). A row whose error a later row of the same id replaced is counted
with the superseded rows, so `total = upserted + failed + superseded + pending` holds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from bulkload.errors import JobNotFound
from bulkload.models import FINISHED_BATCHES, BatchStatus, KnownBatch

# A landed row's line number, from the offset kept (see schema.py).
LANDED_LINE = "l.row_number + 1 + l.line_offset"

# An error is current for its record if no later error exists for the same id value.
# Rows without an id (malformed, MISSING_ID_VALUE) are each their own record.
LATEST_FOR_ID = """(e.id_value IS NULL OR NOT EXISTS (
    SELECT 1 FROM row_errors n
    WHERE n.id_value = e.id_value AND n.row_number <> e.row_number
      AND (n.updated_at > e.updated_at OR (n.updated_at = e.updated_at AND n.row_number > e.row_number))))"""
CURRENT = f"e.resolved = 0 AND {LATEST_FOR_ID}"

_FINISHED = tuple(s.value for s in FINISHED_BATCHES)


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
    tuning: dict[str, Any]


@dataclass(frozen=True)
class ErrorRow:
    """One row of `row_errors`, as the report reads it."""

    row_number: int
    line_number: int | None
    id_value: str | None
    batch_no: int | None
    error_type: str
    category: str
    message: str
    property_name: str | None
    invalid_value: str | None
    http_status: int | None
    hubspot_category: str | None
    hubspot_code: str | None
    correlation_id: str | None
    origin: str
    row_data: str  # JSON
    problems: str | None  # JSON, when the row has several
    attempts: int
    resolved: int  # 0 | 1
    created_at: str
    updated_at: str
    resolved_at: str | None


_ERROR_COLUMNS = (
    "e.row_number, e.line_number, e.id_value, e.batch_no, e.error_type, e.category, e.message, e.property_name,"
    " e.invalid_value, e.http_status, e.hubspot_category, e.hubspot_code, e.correlation_id, e.origin,"
    " e.row_data, e.problems, e.attempts, e.resolved, e.created_at, e.updated_at, e.resolved_at"
)


@dataclass(frozen=True)
class WarningRow:
    row_number: int
    id_value: str
    superseded_by: int
    line_number: int | None
    batch_no: int | None
    row_data: str | None


@dataclass(frozen=True)
class ReplayRow:
    """A failed row `retry` may send again."""

    row_number: int
    line_number: int | None
    id_value: str | None
    batch_no: int | None
    error_type: str
    property_name: str | None
    row_data: dict[str, Any]


def _filter(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    return f"{column} IN ({','.join('?' * len(values))})", list(values)


class Reads:
    """The queries (mixed into Journal, which provides `db`)."""

    db: sqlite_utils.Database

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.db.execute(sql, list(params)).fetchone()

    # ---- the job ---------------------------------------------------------------------------

    def job(self) -> JobRow:
        cur = self.db.execute("SELECT * FROM job WHERE id = 1")
        row = cur.fetchone()
        if row is None:
            raise JobNotFound("the job never started (it stopped before its first step; nothing was sent)")
        d = dict(zip([c[0] for c in cur.description], row, strict=True))
        return JobRow(
            job_id=d["job_id"], state=d["state"], object_type=d["object_type"], id_property=d["id_property"],
            config=json.loads(d["config"]), source_path=d["source_path"], source_format=d["source_format"],
            fingerprint=json.loads(d["fingerprint"]), columns=json.loads(d["columns"] or "[]"),
            total_rows=d["total_rows"], scan_complete=bool(d["scan_complete"]), created_at=d["created_at"],
            updated_at=d["updated_at"], finished_at=d["finished_at"], paused_reason=d["paused_reason"],
            resume_after=d["resume_after"], pid=d["pid"],
            last_rate=json.loads(d["last_rate"]) if d["last_rate"] else None,
            tuning=json.loads(d.get("tuning") or "{}"),
        )

    def has_job(self) -> bool:
        return bool(self._one("SELECT COUNT(*) FROM job")[0])

    # ---- counts ----------------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        """Row and batch counts, derived from the tables (never stored twice).

        upserted + failed + superseded + pending = total, always: pending is the rest.
        """
        job = self.job()
        total = job.total_rows or 0
        fin = _FINISHED
        superseded = int(self._one("SELECT COUNT(*) FROM superseded")[0])
        failed = int(self._one(f"SELECT COUNT(*) FROM row_errors e WHERE {CURRENT}")[0])
        replaced = int(self._one(f"SELECT COUNT(*) FROM row_errors e WHERE e.resolved = 0 AND NOT {LATEST_FOR_ID}")[0])
        r = self._one(
            "SELECT COALESCE(SUM(n_rows - n_superseded),0), COALESCE(SUM(created),0), COALESCE(SUM(updated),0),"
            " COALESCE(SUM(num_errors),0), COALESCE(SUM(requests),0) FROM batches WHERE status IN (?,?,?)",
            fin,
        )
        rows_in_finished, created, updated, num_errors, batch_requests = (int(x) for x in r)
        failed_in_finished = int(self._one(
            "SELECT COUNT(*) FROM row_errors e JOIN batches b ON b.batch_no = e.batch_no"
            " WHERE e.resolved = 0 AND b.status IN (?,?,?)", fin)[0])
        # Rows outside any finished batch whose error `retry` resolved have landed too.
        resolved_elsewhere = int(self._one(
            "SELECT COUNT(*) FROM row_errors e LEFT JOIN batches b ON b.batch_no = e.batch_no"
            " WHERE e.resolved = 1 AND (b.status IS NULL OR b.status NOT IN (?,?,?))", fin)[0])
        upserted = rows_in_finished - failed_in_finished + resolved_elsewhere
        rc = self._one("SELECT COALESCE(SUM(created),0), COALESCE(SUM(updated),0) FROM runs")
        created += int(rc[0])
        updated += int(rc[1])
        superseded += replaced
        pending = max(0, total - upserted - failed - superseded)
        by_status = dict(self.db.execute("SELECT status, COUNT(*) FROM batches GROUP BY status").fetchall())
        claimed = sum(by_status.values())
        max_row = int(self._one("SELECT COALESCE(MAX(last_row),0) FROM batches")[0])
        batch_size = int(job.config.get("batch_size", 100))
        # Batches not yet claimed: an estimate until the source is read to the end.
        unplanned = max(0, total - max_row)
        future = -(-unplanned // batch_size) if unplanned else 0
        calls = int(self._one("SELECT COALESCE(SUM(calls),0) FROM api_calls")[0])
        return {
            "rows": {"total": total, "upserted": upserted, "created": created, "updated": updated,
                     "failed": failed, "superseded": superseded, "pending": pending},
            "batches": {
                "total": claimed + future,
                "done": by_status.get(BatchStatus.DONE.value, 0),
                "partial": by_status.get(BatchStatus.PARTIAL.value, 0),
                "failed": by_status.get(BatchStatus.FAILED.value, 0),
                "pending": by_status.get(BatchStatus.IN_FLIGHT.value, 0) + future,
            },
            "num_errors": num_errors,
            "api_calls": max(calls, batch_requests),
            "associations": self.association_counts(),
        }

    def portal(self, what: str) -> tuple[str, Any] | None:
        """(state, the body last read) of `what` (`properties:OBJECT`, `owners`), or None."""
        row = self._one("SELECT state, body FROM portal WHERE what = ?", [what])
        if row is None:
            return None
        return str(row[0]), None if row[1] is None else json.loads(row[1])

    def portal_states(self) -> dict[str, str]:
        """what -> the state of its last reading (read, kept, refused, skipped)."""
        return {str(w): str(s) for w, s in self.db.execute("SELECT what, state FROM portal ORDER BY what")}

    def most_problems(self, include_resolved: bool = False) -> int:
        """The most problems any reported row has (1 when none has several)."""
        where = "1" if include_resolved else CURRENT
        n = self._one(f"SELECT MAX(json_array_length(e.problems)) FROM row_errors e WHERE {where}"
                      " AND e.problems IS NOT NULL")[0]
        return max(1, int(n or 0))

    def storage(self) -> dict[str, int]:
        """Bytes each table and index takes in the journal file (SQLite's dbstat; empty
        where this SQLite lacks it), for the benchmarks' bytes-per-row figures."""
        try:
            return {str(name): int(size) for name, size in self.db.execute(
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()}
        except sqlite3.Error:
            return {}

    def naive_timestamps(self) -> int:
        """Inputs claimed so far whose timestamp had no zone (read in the job's zone)."""
        return int(self._one("SELECT COALESCE(SUM(naive_timestamps), 0) FROM batches")[0])

    def failed_by_type(self) -> list[tuple[str, str, int]]:
        """(category, errorType, rows) of the current errors, most first."""
        return [(r[0], r[1], int(r[2])) for r in self.db.execute(
            f"SELECT e.category, e.error_type, COUNT(*) FROM row_errors e WHERE {CURRENT}"
            " GROUP BY 1, 2 ORDER BY COUNT(*) DESC, 2").fetchall()]

    # ---- batches, for a resume ----------------------------------------------------------------

    def known_batches(self, after: int = 0) -> list[KnownBatch]:
        rows = self.db.execute(
            "SELECT batch_no, first_row, last_row, status FROM batches WHERE batch_no > ? ORDER BY batch_no", [after])
        return [KnownBatch(r[0], r[1], r[2], r[3] in _FINISHED) for r in rows.fetchall()]

    def start_of(self, batch_no: int) -> tuple[int, int | None] | None:
        """(first row, the line it starts on) of a journaled batch."""
        r = self._one("SELECT first_row, first_line FROM batches WHERE batch_no = ?", [batch_no])
        return None if r is None else (int(r[0]), r[1])

    def done_prefix(self) -> tuple[int, int]:
        """(last batch_no, last row) of the leading run of finished batches: resume skips it unread."""
        first_open = self._one("SELECT MIN(batch_no) FROM batches WHERE status = ?", [BatchStatus.IN_FLIGHT.value])[0]
        if first_open is None:
            r = self._one("SELECT MAX(batch_no), MAX(last_row) FROM batches")
        else:
            r = self._one("SELECT MAX(batch_no), MAX(last_row) FROM batches WHERE batch_no < ?", [first_open])
        return int(r[0] or 0), int(r[1] or 0)

    # ---- repeated ids ---------------------------------------------------------------------------

    def iter_superseding_ids(self) -> Iterator[str]:
        """Every id the scan saw more than once (streamed: never all in memory)."""
        for (id_value,) in self.db.execute("SELECT id_value FROM superseding"):
            yield id_value

    def superseding_rows(self, ids: Sequence[str]) -> dict[str, int]:
        """id -> its last row, for those of `ids` that repeat."""
        out: dict[str, int] = {}
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), 500):
            part = unique[i : i + 500]
            out.update(self.db.execute(
                f"SELECT id_value, last_row FROM superseding WHERE id_value IN ({','.join('?' * len(part))})",
                part).fetchall())
        return out

    # ---- failed rows ------------------------------------------------------------------------------

    def rows_to_replay(self, error_types: Sequence[str] = ()) -> list[ReplayRow]:
        """The current errors (optionally of these types), in row order, with their source data."""
        sql = (f"SELECT e.row_number, e.line_number, e.id_value, e.batch_no, e.error_type, e.property_name,"
               f" e.row_data FROM row_errors e WHERE {CURRENT}")
        params: list[Any] = []
        if error_types:
            clause, params = _filter("e.error_type", error_types)
            sql += f" AND {clause}"
        sql += " ORDER BY e.row_number"
        return [ReplayRow(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6] or "{}"))
                for r in self.db.execute(sql, params).fetchall()]

    def error_types(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT error_type FROM row_errors")}

    def row_data_columns(self, raw_key: str) -> list[str]:
        """The source columns seen in failed rows' data, in order of first appearance."""
        return [r[0] for r in self.db.execute(
            "SELECT j.key FROM row_errors e, json_each(e.row_data) j WHERE j.key <> ?"
            " GROUP BY j.key ORDER BY MIN(e.row_number), MIN(j.id)", [raw_key]).fetchall()]

    def iter_error_rows(
        self, *, after: tuple[int, bool] | None, include_resolved: bool, error_types: Sequence[str],
        categories: Sequence[str],
    ) -> Iterator[ErrorRow]:
        """Report rows of errors in row order, after (row, inclusive) when given."""
        clauses = [LATEST_FOR_ID]
        params: list[Any] = []
        if after is not None:
            clauses.append("e.row_number >= ?" if after[1] else "e.row_number > ?")
            params.append(after[0])
        # The unary "+" keeps SQLite off the (resolved, error_type) index: walking the primary
        # key returns rows already in row order, so a page stops after `limit` rows instead
        # of sorting every error first.
        if not include_resolved:
            clauses.append("+e.resolved = 0")
        if error_types:
            clause, more = _filter("+e.error_type", error_types)
            clauses.append(clause)
            params += more
        if categories:
            clause, more = _filter("e.category", categories)
            clauses.append(clause)
            params += more
        cur = self.db.execute(
            f"SELECT {_ERROR_COLUMNS} FROM row_errors e WHERE {' AND '.join(clauses)} ORDER BY e.row_number", params)
        for row in cur:
            yield ErrorRow(*row)

    def iter_warning_rows(self, *, after: tuple[int, bool] | None) -> Iterator[WarningRow]:
        where, params = ("1", []) if after is None else (
            ("row_number >= ?" if after[1] else "row_number > ?"), [after[0]])
        cur = self.db.execute(
            "SELECT row_number, id_value, superseded_by, line_number, batch_no, row_data FROM superseded"
            f" WHERE {where} ORDER BY row_number", params)
        for row in cur:
            yield WarningRow(*row)

    def superseded_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM superseded")[0])

    # ---- the cards ----------------------------------------------------------------------------------

    def card_counts(self) -> tuple[list[tuple[str, str, int]], Iterator[tuple[int, str]], dict[str, str]]:
        """For the cards: (category, errorType, rows) of current errors with one problem; a
        stream of (row, errorType) for every problem of the rows with several (their
        categories follow from the types); the most common message per errorType."""
        current = f"FROM row_errors e WHERE {CURRENT}"
        single = [(c, k, int(n)) for c, k, n in self.db.execute(
            f"SELECT e.category, e.error_type, COUNT(*) {current} AND e.problems IS NULL GROUP BY 1, 2")]
        multi = ((int(r), str(k)) for r, k in self.db.execute(
            "SELECT e.row_number, json_extract(p.value, '$.errorType') FROM row_errors e, json_each(e.problems) p"
            f" WHERE {CURRENT} AND e.problems IS NOT NULL ORDER BY e.row_number"))
        samples = dict(self.db.execute(
            "SELECT error_type, message FROM (SELECT e.error_type, e.message, ROW_NUMBER() OVER"
            f" (PARTITION BY e.error_type ORDER BY COUNT(*) DESC, e.message) AS rn {current}"
            " GROUP BY e.error_type, e.message) WHERE rn = 1").fetchall())
        return single, multi, samples

    # ---- the association step -----------------------------------------------------------------

    def values_to_look_up(self, target: int, object_type: str, property_name: str, exclude: Sequence[str],
                          limit: int) -> list[str]:
        """Distinct values of pending pairs of `target` not looked up yet (nor in flight)."""
        skip = set(exclude)
        out: list[str] = []
        cur = self.db.execute(
            "SELECT DISTINCT p.value FROM pairs p WHERE p.state = 'pending' AND p.to_id IS NULL AND p.target = ?"
            " AND NOT EXISTS (SELECT 1 FROM lookups l WHERE l.object_type = ? AND l.property = ? AND l.value = p.value)",
            [target, object_type, property_name])
        for (value,) in cur:
            if value not in skip:
                out.append(value)
                if len(out) >= limit:
                    break
        cur.close()
        return out

    def rows_without_record_id(self, exclude: Sequence[str], limit: int) -> list[str]:
        """Id values of landed rows with pending pairs whose record id HubSpot did not say."""
        skip = set(exclude)
        out = []
        for (value,) in self.db.execute(
                "SELECT DISTINCT l.id_value FROM landed l JOIN pairs p ON p.row_number = l.row_number"
                " WHERE l.object_id IS NULL AND p.state = 'pending'"):
            if value not in skip:
                out.append(value)
                if len(out) >= limit:
                    break
        return out

    def pairs_ready(self, target: int, exclude: Sequence[tuple[int, str]], limit: int
                    ) -> list[tuple[int, str, str, str]]:
        """(row, value, from record id, to record id) of pending pairs of `target` with both ids."""
        skip = set(exclude)
        out = []
        cur = self.db.execute(
            "SELECT p.row_number, p.value, l.object_id, p.to_id FROM pairs p JOIN landed l ON l.row_number = p.row_number"
            " WHERE p.state = 'pending' AND p.to_id IS NOT NULL AND p.target = ? AND l.object_id IS NOT NULL",
            [target])
        for row, value, from_id, to_id in cur:
            if (row, value) not in skip:
                out.append((int(row), str(value), str(from_id), str(to_id)))
                if len(out) >= limit:
                    break
        cur.close()
        return out

    def distinct_values(self) -> dict[int, int]:
        """target -> how many distinct values its pairs name."""
        return {int(t): int(n) for t, n in self.db.execute(
            "SELECT target, COUNT(DISTINCT value) FROM pairs GROUP BY target")}

    def pending_pairs(self) -> int:
        # Two counts, each over its partial index: the made pairs are never scanned.
        return int(self._one("SELECT COUNT(*) FROM pairs WHERE state = 'pending' AND to_id IS NULL")[0]) + \
            int(self._one("SELECT COUNT(*) FROM pairs WHERE state = 'pending' AND to_id IS NOT NULL")[0])

    def association_counts(self) -> dict[str, int]:
        total = int(self._one("SELECT pairs FROM job WHERE id = 1")[0] or 0)
        pending = self.pending_pairs()
        failed = int(self._one("SELECT COUNT(*) FROM pairs WHERE state = 'failed'")[0])
        return {"total": total, "created": total - pending - failed, "failed": failed, "pending": pending}

    def iter_failed_pairs(self, *, after: tuple[int, bool] | None) -> Iterator[tuple[Any, ...]]:
        """(row, target, value, error type, message, attempts, updated_at, id value, line) of
        failed associations, in row order."""
        where, params = ("1", []) if after is None else (
            ("p.row_number >= ?" if after[1] else "p.row_number > ?"), [after[0]])
        yield from self.db.execute(
            "SELECT p.row_number, p.target, p.value, p.error_type, p.message, p.attempts,"
            " strftime('%Y-%m-%dT%H:%M:%S.000Z', p.updated_at, 'unixepoch'), l.id_value,"
            f" {LANDED_LINE} FROM pairs p LEFT JOIN landed l ON l.row_number = p.row_number WHERE p.state = 'failed'"
            f" AND {where} ORDER BY p.row_number, p.target, p.value", params)

    def failed_pair_counts(self) -> tuple[list[tuple[str, int, int]], dict[str, str]]:
        """(errorType, pairs, rows) of failed associations, and a message per type."""
        counts = [(str(t), int(n), int(r)) for t, n, r in self.db.execute(
            "SELECT error_type, COUNT(*), COUNT(DISTINCT row_number) FROM pairs WHERE state = 'failed' GROUP BY 1")]
        samples = dict(self.db.execute(
            "SELECT error_type, message FROM (SELECT error_type, message, ROW_NUMBER() OVER (PARTITION BY error_type"
            " ORDER BY COUNT(*) DESC, message) AS rn FROM pairs WHERE state = 'failed' GROUP BY 1, 2) WHERE rn = 1"))
        return counts, samples

    def iter_landed(self, *, after: int | None) -> Iterator[tuple[Any, ...]]:
        """(row, id value, record id, created, line, landed_at) of every landed row, in row order."""
        yield from self.db.execute(
            f"SELECT l.row_number, l.id_value, l.object_id, l.created, {LANDED_LINE}, l.landed_at FROM landed l"
            " WHERE l.row_number > ? ORDER BY l.row_number", [after or 0])

    def pairs_of_rows(self, first: int, last: int) -> list[tuple[int, int, str | None]]:
        """(row, target, to record id) of the associations made for rows first..last."""
        return [(int(r), int(t), to) for r, t, to in self.db.execute(
            "SELECT row_number, target, to_id FROM pairs WHERE state = 'created' AND row_number BETWEEN ? AND ?"
            " ORDER BY row_number, target, value", [first, last])]

    # ---- API usage --------------------------------------------------------------------------------------

    def usage_since(self, since_epoch: float) -> tuple[int, int, int]:
        """(calls, 429s, retries) since a moment."""
        r = self._one(
            "SELECT COALESCE(SUM(calls),0), COALESCE(SUM(rate_limited),0), COALESCE(SUM(retries),0)"
            " FROM api_calls WHERE unix_minute >= ?", [int(since_epoch // 60)])
        return int(r[0]), int(r[1]), int(r[2])

    def calls_by_kind(self, since_epoch: float = 0.0) -> dict[str, int]:
        return {k: int(n) for k, n in self.db.execute(
            "SELECT kind, SUM(calls) FROM api_calls WHERE unix_minute >= ? GROUP BY kind",
            [int(since_epoch // 60)]).fetchall()}

    def oldest_usage_minute_since(self, since_epoch: float) -> int | None:
        r = self._one("SELECT MIN(unix_minute) FROM api_calls WHERE unix_minute >= ? AND calls > 0",
                      [int(since_epoch // 60)])
        return None if r[0] is None else int(r[0])

    def rows_finished_since(self, since_iso: str) -> tuple[int, str | None]:
        """Rows of batches finished since a moment, and the first such finish."""
        r = self._one("SELECT COALESCE(SUM(n_rows), 0), MIN(finished_at) FROM batches WHERE finished_at >= ?",
                      [since_iso])
        return int(r[0]), r[1]

    # ---- consistency ------------------------------------------------------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction, so a report written while the loader runs is self-consistent."""
        conn = self.db.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")  # read-only: nothing to commit, it only ends the snapshot
