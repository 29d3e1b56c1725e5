"""The journal's transitions: verb-named, one transaction each, in the order that makes a
SIGKILL at any instant safe. These are the ones production calls:

- `create_job`: the job row, before the scan.
- `add_superseding` (during the scan) and `complete_scan`: the repeated ids with their
  last row, then the row count and the fingerprint of the file as it was read.
- `start_run`: a load, resume or retry begins; the tuning in force is kept.
- `record_turn`: one turn of the run loop, one transaction: the outcomes of the batches
  that came back (row errors, landed rows with their record ids and their pairs to
  associate as pending, counts, each batch `done`/`partial`/`failed`), the results of
  the association step's lookups and associations (pairs created or failed),
  then the claims of the batches about to be sent (`in_flight`, with their row range,
  local failures and superseded rows), then the API calls counted. A claim is committed
  before its batch is sent, and an outcome is committed whole or not at all; a batch
  still `in_flight` on resume is sent again (upsert keyed by idProperty makes the replay
  harmless).
- `record_replay`: the same for a `retry` turn: successes resolve their rows' errors,
  new failures replace them.
- `reopen_failed_pairs`: a `retry` looks the failed associations' values up again.
- `correct_pairs`: a `retry --from` takes a failed association's values from the corrected file.
- `keep_portal`: what the portal said at the start of a run (its schema, its owners, or
  that it refused to say), kept for the checks of a later `retry`.
- `pause`, `finish_job`, `finish_run`: how a run ends.
- `record_notice`: a `--notify` webhook was called (or failed) once the run ended.

After each committed transition `checkpoint(name)` is called: a test seam that lets a
test "crash" between any two of them (as dlt's dummy destination does).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from bulkload.models import BatchOutcome, BatchPlan, BatchStatus, FailedRow, JobState, Link


def _epoch() -> int:
    return int(datetime.now(UTC).timestamp())


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class BatchResult:
    """A sent batch's outcome with each failure placed at its source row."""

    plan: BatchPlan
    outcome: BatchOutcome
    failures: Sequence[FailedRow]  # row_number, line_number, id_value and row_data set


@dataclass(frozen=True)
class LinkResult:
    """What one request of the association step came to, for the journal.

    kind "lookup": `found` / `not_found` values of `target` (index; -1: the job's own
    object, looked up by id value to learn landed rows' record ids); kind "associate":
    `made` and `failed` (row, value) pairs of `target`.
    """

    kind: str
    target: int
    object_type: str = ""
    property: str = ""
    found: Mapping[str, str] = field(default_factory=dict)
    not_found: Sequence[str] = ()
    unanswered: Sequence[str] = ()
    made: Sequence[tuple[int, str]] = ()
    failed: Sequence[tuple[int, str, FailedRow]] = ()


@dataclass
class Usage:
    """The API calls counted since the last turn, by kind (upsert, read, associate, schema)."""

    calls: dict[str, int] = field(default_factory=dict)
    rate_limited: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    at: float = 0.0  # epoch seconds
    last_rate: dict[str, Any] | None = None
    server_errors: dict[str, int] = field(default_factory=dict)  # 5xx answers

    def __bool__(self) -> bool:
        counted = (*self.calls.values(), *self.rate_limited.values(), *self.retries.values(),
                   *self.server_errors.values())
        return bool(any(counted) or self.last_rate)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _problems(f: FailedRow) -> str | None:
    if len(f.problems) < 2:
        return None
    return _json([{"errorType": p.error_type, "propertyName": p.property_name, "invalidValue": p.invalid_value,
                   "errorMessage": p.message} for p in f.problems])


def _error_row(f: FailedRow, batch_no: int | None, ts: str) -> tuple[Any, ...]:
    # A blank or whitespace id is no id: such rows are each their own record (reads.py).
    id_value = f.id_value if f.id_value is not None and f.id_value.strip() else None
    return (
        f.row_number, f.line_number, id_value, batch_no if f.batch_no is None else f.batch_no, f.error_type,
        f.category, f.message, f.property_name, f.invalid_value, f.http_status, f.hubspot_category,
        f.hubspot_code, f.correlation_id, f.origin, _json(dict(f.row_data or {})), _problems(f), ts, ts,
    )


_INSERT_ERROR = (
    "INSERT INTO row_errors(row_number, line_number, id_value, batch_no, error_type, category, message,"
    " property_name, invalid_value, http_status, hubspot_category, hubspot_code, correlation_id, origin,"
    " row_data, problems, attempts, resolved, created_at, updated_at)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,0,?,?)"
)
_REPLACE_ERROR = _INSERT_ERROR + (
    " ON CONFLICT(row_number) DO UPDATE SET error_type = excluded.error_type,"
    " category = excluded.category, message = excluded.message, property_name = excluded.property_name,"
    " invalid_value = excluded.invalid_value, http_status = excluded.http_status,"
    " hubspot_category = excluded.hubspot_category, hubspot_code = excluded.hubspot_code,"
    " correlation_id = excluded.correlation_id, origin = excluded.origin, row_data = excluded.row_data,"
    " problems = excluded.problems, id_value = excluded.id_value,"
    " attempts = row_errors.attempts + 1, resolved = 0, resolved_at = NULL, updated_at = excluded.updated_at"
)


class Writes:
    """The transitions (mixed into Journal, which provides `db` and `_checkpoint`)."""

    db: sqlite_utils.Database
    _checkpoint: Callable[[str], None]

    # ---- the job -------------------------------------------------------------------------

    def create_job(
        self, *, job_id: str, object_type: str, id_property: str, config: Mapping[str, Any], source_path: str,
        source_format: str, fingerprint: Mapping[str, Any], columns: Sequence[str],
        tuning: Mapping[str, Any] | None = None,
    ) -> None:
        ts = now_iso()
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO job(id, job_id, state, object_type, id_property, config, source_path, source_format,"
                " fingerprint, columns, created_at, updated_at, pid, tuning) VALUES (1,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [job_id, JobState.RUNNING.value, object_type, id_property, _json(dict(config)), source_path,
                 source_format, _json(dict(fingerprint)), _json(list(columns)), ts, ts, os.getpid(),
                 _json(dict(tuning or {}))],
            )
        self._checkpoint("create_job")

    def reset_scan(self) -> None:
        with self.db.atomic():
            self.db.execute("DELETE FROM superseding")

    def add_superseding(self, last_rows: Mapping[str, int]) -> None:
        """Ids the scan saw more than once (and a few false alarms), with their last row."""
        if not last_rows:
            return
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT INTO superseding(id_value, last_row) VALUES (?, ?)"
                " ON CONFLICT(id_value) DO UPDATE SET last_row = MAX(last_row, excluded.last_row)",
                list(last_rows.items()),
            )

    def complete_scan(self, total_rows: int, fingerprint: Mapping[str, Any] | None = None) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE job SET total_rows = ?, scan_complete = 1, updated_at = ?,"
                " fingerprint = COALESCE(?, fingerprint) WHERE id = 1",
                [total_rows, now_iso(), _json(dict(fingerprint)) if fingerprint else None],
            )
        self._checkpoint("complete_scan")

    def update_fingerprint(self, fingerprint: Mapping[str, Any]) -> None:
        """The same bytes under a new mtime (a copy, a restore): keep reading it."""
        with self.db.atomic():
            self.db.execute("UPDATE job SET fingerprint = ? WHERE id = 1", [_json(dict(fingerprint))])

    # ---- runs ----------------------------------------------------------------------------

    def start_run(self, command: str, choices: Mapping[str, Any], in_force: Mapping[str, Any] | None = None, *,
                  takes_over: bool = True) -> int:
        """A run begins: the user's tuning choices are kept with the job. A load or resume
        (`takes_over`) makes the job running; a retry leaves its state as it is."""
        ts = now_iso()
        with self.db.atomic():
            cur = self.db.execute(
                "INSERT INTO runs(command, started_at, tuning) VALUES (?,?,?)", [command, ts, _json(dict(in_force or {}))]
            )
            self.db.execute("UPDATE job SET tuning = ?, pid = ?, updated_at = ? WHERE id = 1",
                            [_json(dict(choices)), os.getpid(), ts])
            if takes_over:
                self.db.execute(
                    "UPDATE job SET state = ?, paused_reason = NULL, resume_after = NULL WHERE id = 1",
                    [JobState.RUNNING.value],
                )
        self._checkpoint("start_run")
        return int(cur.lastrowid or 0)

    def finish_run(self, run_no: int, outcome: str) -> None:
        with self.db.atomic():
            self.db.execute("UPDATE runs SET finished_at = ?, outcome = ? WHERE run_no = ?",
                            [now_iso(), outcome, run_no])
        self._checkpoint("finish_run")

    def pause(self, reason: str, resume_after: str | None = None) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE job SET state = ?, paused_reason = ?, resume_after = ?, pid = NULL, updated_at = ?"
                " WHERE id = 1",
                [JobState.PAUSED.value, reason, resume_after, now_iso()],
            )
        self._checkpoint("pause")

    def finish_job(self, state: JobState) -> None:
        ts = now_iso()
        with self.db.atomic():
            self.db.execute(
                "UPDATE job SET state = ?, paused_reason = NULL, resume_after = NULL, pid = NULL, updated_at = ?,"
                " finished_at = ? WHERE id = 1",
                [state.value, ts, ts],
            )
        self._checkpoint("finish_job")

    # ---- the run loop ---------------------------------------------------------------------

    def record_turn(
        self, *, run_no: int, outcomes: Sequence[BatchResult] = (), claims: Sequence[BatchPlan] = (),
        usage: Usage | None = None, closed: Sequence[BatchPlan] = (), links: Sequence[LinkResult] = (),
    ) -> None:
        """One turn of the run loop in one transaction: outcomes (with the rows that landed
        and their pairs to associate), association results, then claims, then usage.

        `closed` are batches with nothing to send (only local failures and superseded
        rows): claimed and finished at once.
        """
        if not (outcomes or claims or closed or usage or links):
            return
        ts = now_iso()
        with self.db.atomic():
            for result in outcomes:
                self._record_outcome(result, ts, run_no)
                self._land(result, ts)
            self._record_links(links)
            for plan in (*claims, *closed):
                self._claim(plan, ts)
            for plan in closed:
                self._record_outcome(BatchResult(plan, BatchOutcome([], []), ()), ts, run_no)
            if usage:
                self._add_usage(usage, run_no)
            self.db.execute("UPDATE job SET updated_at = ? WHERE id = 1", [ts])
        self._checkpoint("record_turn")

    def _claim(self, plan: BatchPlan, ts: str) -> None:
        self.db.conn.execute(
            "INSERT INTO batches(batch_no, first_row, last_row, n_rows, n_inputs, n_superseded,"
            " n_local_failed, status, claimed_at, attempts, first_line, naive_timestamps)"
            " VALUES (?,?,?,?,?,?,?,?,?,1,?,?)"
            " ON CONFLICT(batch_no) DO UPDATE SET attempts = attempts + 1, claimed_at = excluded.claimed_at,"
            " status = excluded.status",
            [plan.batch_no, plan.first_row, plan.last_row, plan.n_rows, len(plan.inputs), len(plan.superseded),
             len(plan.failures), BatchStatus.IN_FLIGHT.value, ts, plan.first_line, plan.naive_timestamps],
        )
        if plan.failures:
            # OR IGNORE: a row already journaled keeps its record (it may have been
            # resolved by `retry` since); local failures are deterministic anyway.
            self.db.conn.executemany(
                _INSERT_ERROR.replace("INSERT INTO", "INSERT OR IGNORE INTO"),
                [_error_row(f, plan.batch_no, ts) for f in plan.failures],
            )
        if plan.superseded:
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO superseded(row_number, id_value, superseded_by, line_number, batch_no,"
                " row_data) VALUES (?,?,?,?,?,?)",
                [(s.row_number, s.id_value, s.superseded_by, s.line_number, plan.batch_no, _json(dict(s.row_data)))
                 for s in plan.superseded],
            )

    def _record_outcome(self, result: BatchResult, ts: str, run_no: int) -> None:
        plan, outcome = result.plan, result.outcome
        n_failed = len(result.failures) + len(plan.failures)
        if n_failed == 0:
            status = BatchStatus.DONE
        elif n_failed >= len(plan.inputs) + len(plan.failures):
            status = BatchStatus.FAILED
        else:
            status = BatchStatus.PARTIAL
        if result.failures:
            self.db.conn.executemany(_REPLACE_ERROR, [_error_row(f, plan.batch_no, ts) for f in result.failures])
        created = sum(1 for x in outcome.landed if x.created)
        self.db.conn.execute(
            "UPDATE batches SET status = ?, num_errors = ?, created = ?, updated = ?, requests = requests + ?,"
            " splits = splits + ?, retries = retries + ?, rate_limited = rate_limited + ?, http_status = ?,"
            " finished_at = ?, duration_ms = ? WHERE batch_no = ?",
            [status.value, len(result.failures), created, len(outcome.landed) - created, outcome.requests,
             outcome.splits, outcome.retries, outcome.rate_limited, outcome.http_status, ts,
             int(outcome.elapsed * 1000), plan.batch_no],
        )
        self.db.conn.execute(
            "UPDATE runs SET rows_done = rows_done + ?, requests = requests + ? WHERE run_no = ?",
            [plan.n_rows, outcome.requests, run_no],
        )

    def record_replay(
        self, *, run_no: int, outcomes: Sequence[BatchResult] = (), failures: Sequence[FailedRow] = (),
        usage: Usage | None = None, links: Sequence[LinkResult] = (),
    ) -> None:
        """A `retry` turn: successes resolve their rows' errors, new failures replace them.

        `failures` are rows that failed again before sending (a check, a corrected file).
        """
        ts = now_iso()
        with self.db.atomic():
            created = updated = done = requests = 0
            new_errors: list[FailedRow] = list(failures)
            self._record_links(links)
            for result in outcomes:
                self._land(result, ts)
                rows = [int(x.trace_id) for x in result.outcome.landed]
                self.db.conn.executemany(
                    "UPDATE row_errors SET resolved = 1, resolved_at = ?, updated_at = ? WHERE resolved = 0"
                    " AND row_number = ?",
                    [(ts, ts, r) for r in rows],
                )
                c = sum(1 for x in result.outcome.landed if x.created)
                created += c
                updated += len(rows) - c
                new_errors.extend(result.failures)
                done += len(rows) + len(result.failures)
                requests += result.outcome.requests
            if new_errors:
                self.db.conn.executemany(_REPLACE_ERROR, [_error_row(f, None, ts) for f in new_errors])
            done += len(failures)
            self.db.execute(
                "UPDATE runs SET created = created + ?, updated = updated + ?, rows_done = rows_done + ?,"
                " requests = requests + ? WHERE run_no = ?",
                [created, updated, done, requests, run_no],
            )
            if usage:
                self._add_usage(usage, run_no)
        self._checkpoint("record_replay")

    # ---- what landed, and the association step -----------------------------------------------

    def _land(self, result: BatchResult, ts: str) -> None:
        """Every landed row's record id, and its pairs to associate (pending), in the same
        transaction as its batch's outcome: a crash after it leaves them pending."""
        landed = result.outcome.landed
        if not landed:
            return
        at = _epoch()
        plan = result.plan
        where = {inp["objectWriteTraceId"]: (inp["id"], line) for inp, line in zip(plan.inputs, plan.input_lines,
                                                                                   strict=True)}
        rows = []
        for x in landed:
            id_value, line = where.get(x.trace_id, ("", None))
            record = int(x.record_id) if x.record_id.isdigit() else (x.record_id or None)
            row = int(x.trace_id)
            rows.append((row, id_value, record, int(x.created), None if line is None else line - row - 1, at))
        # A replay updates a row that landed before: its record stays, "created" by this job stays.
        self.db.conn.executemany(
            "INSERT INTO landed(row_number, id_value, object_id, created, line_offset, landed_at) VALUES (?,?,?,?,?,?)"
            " ON CONFLICT(row_number) DO UPDATE SET id_value = excluded.id_value,"
            " object_id = COALESCE(excluded.object_id, landed.object_id), created = MAX(landed.created, excluded.created),"
            " landed_at = excluded.landed_at",
            rows,
        )
        if plan.links:
            done = {int(x.trace_id) for x in landed}
            self._add_pairs([link for link in plan.links if link.row_number in done], at)

    def _add_pairs(self, links: Sequence[Link], at: int) -> None:
        """Pairs of rows that landed, to associate: an `hs_object_id` value is the record
        id itself; a value this job looked up already is settled from what was found
        (pending with its record id, or failed: no such record); the rest wait for a lookup."""
        if not links:
            return
        targets = self._targets()
        known: dict[tuple[int, str], str | None] = {}
        for t, (needs_lookup, object_type, prop) in enumerate(targets):
            values = sorted({link.value for link in links if link.target == t}) if needs_lookup else []
            for start in range(0, len(values), 500):
                part = values[start:start + 500]
                marks = ",".join("?" * len(part))
                for value, rid in self.db.conn.execute(
                        f"SELECT value, record_id FROM lookups WHERE object_type = ? AND property = ? AND value IN ({marks})",
                        [object_type, prop, *part]):
                    known[(t, value)] = rid
        rows: list[tuple[Any, ...]] = []
        for link in links:
            needs_lookup = targets[link.target][0] if link.target < len(targets) else True
            if not needs_lookup:
                rows.append((link.row_number, link.target, link.value, "pending", link.value, None, None, at))
            elif (link.target, link.value) not in known:
                rows.append((link.row_number, link.target, link.value, "pending", None, None, None, at))
            elif (rid := known[(link.target, link.value)]) is not None:
                rows.append((link.row_number, link.target, link.value, "pending", rid, None, None, at))
            else:
                _, object_type, prop = targets[link.target]
                rows.append((link.row_number, link.target, link.value, "failed", None, "ASSOCIATED_RECORD_NOT_FOUND",
                             f"no {object_type} record has {prop} = this value", at))
        cur = self.db.conn.executemany(
            "INSERT INTO pairs(row_number, target, value, state, to_id, error_type, message, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(row_number, target, value) DO NOTHING", rows)
        self._count_pairs(cur.rowcount)

    def _targets(self) -> list[tuple[bool, str, str]]:
        """Per target of the job: whether its values need a lookup (not hs_object_id), and
        the object and property looked up by."""
        row = self.db.execute("SELECT config FROM job WHERE id = 1").fetchone()
        names = json.loads(row[0]).get("associations") or [] if row else []
        out = []
        for spec in names:
            _, _, target = str(spec).partition("=")
            object_type, _, prop = target.strip().rpartition(".")
            out.append((prop != "hs_object_id", object_type, prop))
        return out

    def _count_pairs(self, added: int) -> None:
        if added:
            self.db.conn.execute("UPDATE job SET pairs = pairs + ? WHERE id = 1", [added])

    def _record_links(self, links: Sequence[LinkResult]) -> None:
        at = _epoch()
        conn = self.db.conn
        for r in links:
            if r.kind == "associate":
                conn.executemany("UPDATE pairs SET state = 'created', attempts = attempts + 1, updated_at = ?,"
                                 " error_type = NULL, message = NULL WHERE row_number = ? AND target = ? AND value = ?",
                                 [(at, row, r.target, value) for row, value in r.made])
                conn.executemany("UPDATE pairs SET state = 'failed', attempts = attempts + 1, updated_at = ?,"
                                 " error_type = ?, message = ? WHERE row_number = ? AND target = ? AND value = ?",
                                 [(at, f.error_type, f.message, row, r.target, value) for row, value, f in r.failed])
                continue
            if r.target < 0:  # the job's own records: landed rows learn their record id
                conn.executemany("UPDATE landed SET object_id = ? WHERE id_value = ? AND object_id IS NULL",
                                 [(int(rid) if rid.isdigit() else rid, v) for v, rid in r.found.items()])
                missing = [*r.not_found, *r.unanswered]
                conn.executemany(
                    "UPDATE pairs SET state = 'failed', error_type = 'INVALID_ASSOCIATION', updated_at = ?,"
                    " message = 'HubSpot did not say which record this row became, and a read by its id found none'"
                    " WHERE state = 'pending' AND row_number IN"
                    " (SELECT row_number FROM landed WHERE id_value = ? AND object_id IS NULL)",
                    [(at, v) for v in missing])
                continue
            conn.executemany("INSERT OR REPLACE INTO lookups(object_type, property, value, record_id, looked_at)"
                             " VALUES (?,?,?,?,?)",
                             [(r.object_type, r.property, v, rid, at) for v, rid in r.found.items()]
                             + [(r.object_type, r.property, v, None, at) for v in r.not_found])
            conn.executemany("UPDATE pairs SET to_id = ?, updated_at = ? WHERE state = 'pending' AND to_id IS NULL"
                             " AND target = ? AND value = ?", [(rid, at, r.target, v) for v, rid in r.found.items()])
            for values, why in ((r.not_found, f"no {r.object_type} record has {r.property} = this value"),
                                (r.unanswered, f"HubSpot's answers never said whether a {r.object_type} record has "
                                               f"{r.property} = this value")):
                conn.executemany("UPDATE pairs SET state = 'failed', error_type = 'ASSOCIATED_RECORD_NOT_FOUND',"
                                 " message = ?, attempts = attempts + 1, updated_at = ? WHERE state = 'pending'"
                                 " AND to_id IS NULL AND target = ? AND value = ?",
                                 [(why, at, r.target, v) for v in values])

    def add_planned_pairs(self, links: Sequence[Link]) -> None:
        """Pairs a dry run would make (its throw-away journal counts them for the report)."""
        with self.db.atomic():
            cur = self.db.conn.executemany(
                "INSERT INTO pairs(row_number, target, value, state) VALUES (?,?,?,'pending')"
                " ON CONFLICT(row_number, target, value) DO NOTHING", [tuple(link) for link in links])
            self._count_pairs(cur.rowcount)

    def correct_pairs(self, fixes: Mapping[tuple[int, int, str], Sequence[str]]) -> int:
        """`retry --from`: each corrected line replaces its failed pair (row, target, the
        value that failed) by pending pairs of the values its cell names (none: the pair is
        dropped). Other pairs of the row, of any target, stay as they are. Returns how many
        failed pairs it corrected."""
        at = _epoch()
        corrected = 0
        with self.db.atomic():
            conn = self.db.conn
            for (row, target, old), values in fixes.items():
                dropped = conn.execute("DELETE FROM pairs WHERE row_number = ? AND target = ? AND value = ?"
                                       " AND state = 'failed'", [row, target, old]).rowcount
                if not dropped:
                    continue  # not a failed pair (any more): the line is stale
                corrected += 1
                self._count_pairs(-dropped)
                self._add_pairs([Link(row, target, v) for v in values], at)
        self._checkpoint("correct_pairs")
        return corrected

    def keep_portal(self, entries: Sequence[tuple[str, str, Any]]) -> None:
        """What the portal said this run: (what, state, body) with `what` e.g.
        `properties:calls` or `owners`, `state` read, kept, refused or skipped, and the
        body as HubSpot answered it (None unless read)."""
        ts = now_iso()
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT INTO portal(what, state, body, read_at) VALUES (?,?,?,?) ON CONFLICT(what) DO UPDATE SET"
                " state = excluded.state, read_at = excluded.read_at,"
                " body = CASE WHEN excluded.state = 'read' THEN excluded.body ELSE portal.body END",
                [(what, state, None if body is None else _json(body), ts) for what, state, body in entries])
        self._checkpoint("keep_portal")

    def reopen_failed_pairs(self) -> int:
        """`retry`: failed associations become pending again, and the values that were not
        found are looked up again (the record may exist now). Returns how many reopened."""
        at = _epoch()
        with self.db.atomic():
            cur = self.db.execute("UPDATE pairs SET state = 'pending', updated_at = ?,"
                                  " to_id = CASE WHEN error_type = 'ASSOCIATED_RECORD_NOT_FOUND' THEN NULL ELSE to_id END"
                                  " WHERE state = 'failed'", [at])
            self.db.execute("DELETE FROM lookups WHERE record_id IS NULL")
        self._checkpoint("reopen_failed_pairs")
        return int(cur.rowcount or 0)

    def _add_usage(self, usage: Usage, run_no: int) -> None:
        minute = int(usage.at // 60)
        for kind in {*usage.calls, *usage.rate_limited, *usage.retries}:
            calls = usage.calls.get(kind, 0)
            limited = usage.rate_limited.get(kind, 0)
            retries = usage.retries.get(kind, 0)
            if not (calls or limited or retries):
                continue
            self.db.conn.execute(
                "INSERT INTO api_calls(unix_minute, kind, calls, rate_limited, retries) VALUES (?,?,?,?,?)"
                " ON CONFLICT(unix_minute, kind) DO UPDATE SET calls = calls + excluded.calls,"
                " rate_limited = rate_limited + excluded.rate_limited, retries = retries + excluded.retries",
                [minute, kind, calls, limited, retries],
            )
        self._add_tick(usage)
        if usage.last_rate:
            self.db.execute("UPDATE job SET last_rate = ? WHERE id = 1", [_json(usage.last_rate)])

    def _add_tick(self, usage: Usage) -> None:
        """The same calls per 10 seconds, all kinds together: the health page's timeline.
        A turn is at most a fraction of a second long, so its wall time places its calls."""
        counts = [sum(d.values()) for d in (usage.calls, usage.rate_limited, usage.server_errors, usage.retries)]
        if not any(counts):
            return
        self.db.conn.execute(
            "INSERT INTO api_ticks(tick, calls, rate_limited, server_errors, retries) VALUES (?,?,?,?,?)"
            " ON CONFLICT(tick) DO UPDATE SET calls = calls + excluded.calls,"
            " rate_limited = rate_limited + excluded.rate_limited,"
            " server_errors = server_errors + excluded.server_errors, retries = retries + excluded.retries",
            [int(usage.at // 10), *counts],
        )

    # ---- notifications ------------------------------------------------------------------------

    def record_notice(self, *, event: str, state: str, exit_code: int | None, target: str, outcome: str,
                      http_status: int | None = None, error: str | None = None) -> None:
        """A --notify POST was made (outcome `sent`) or failed (`failed`, with why). `target`
        is the webhook's scheme and host only: its path may be a secret."""
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO notices(at, event, state, exit_code, target, outcome, http_status, error)"
                " VALUES (?,?,?,?,?,?,?,?)",
                [now_iso(), event, state, exit_code, target, outcome, http_status, error],
            )
        self._checkpoint("record_notice")

    # ---- not a transition of a run: for tests and tools ----------------------------------------

    def upsert_errors(self, errors: Sequence[FailedRow], ts: str | None = None) -> None:
        """Insert or replace row errors in a transaction of their own (tests set up journals so)."""
        if not errors:
            return
        stamp = ts or now_iso()
        with self.db.atomic():
            self.db.conn.executemany(_REPLACE_ERROR, [_error_row(f, None, stamp) for f in errors])
