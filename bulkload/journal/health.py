"""The queries of the job's health page and of its notifications: API use per 10 seconds,
the runs (whose gaps are the job's pauses), batch latencies, the batches that needed
retries, splits or replays, failures by where they were found, and the webhook log.

Every figure here is an aggregate or a capped list: a page for a million-row job reads a
few thousand rows of the journal, never every batch or every row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import sqlite_utils

from bulkload.journal.reads import CURRENT


@dataclass(frozen=True)
class Tick:
    """API calls in one 10-second window (`at` is its start, unix seconds)."""

    at: int
    calls: int
    rate_limited: int
    server_errors: int
    retries: int


@dataclass(frozen=True)
class RunRow:
    run_no: int
    command: str
    started_at: str
    finished_at: str | None
    outcome: str | None
    rows_done: int
    requests: int


@dataclass(frozen=True)
class BatchEvents:
    """One batch that needed more than one plain request."""

    batch_no: int
    first_row: int
    last_row: int
    status: str
    requests: int
    splits: int
    retries: int
    rate_limited: int
    claims: int  # claimed this many times: more than once means it was sent again on resume
    http_status: int | None
    duration_ms: int | None
    num_errors: int


@dataclass(frozen=True)
class NoticeRow:
    at: str
    event: str
    state: str
    exit_code: int | None
    target: str
    outcome: str
    http_status: int | None
    error: str | None


_EVENTFUL = "(splits > 0 OR retries > 0 OR rate_limited > 0 OR attempts > 1)"


class HealthReads:
    """The health page's queries (mixed into Journal, which provides `db`)."""

    db: sqlite_utils.Database

    def api_ticks(self) -> list[Tick]:
        """Every 10-second window with API calls, oldest first (journals before migration 6
        have none: the page says so)."""
        return [Tick(int(t) * 10, int(c), int(r), int(s), int(x)) for t, c, r, s, x in self.db.execute(
            "SELECT tick, calls, rate_limited, server_errors, retries FROM api_ticks ORDER BY tick")]

    def server_errors_since(self, since_epoch: float) -> int:
        r = self.db.execute("SELECT COALESCE(SUM(server_errors), 0) FROM api_ticks WHERE tick >= ?",
                            [int(since_epoch // 10)]).fetchone()
        return int(r[0])

    def run_history(self) -> list[RunRow]:
        return [RunRow(int(r[0]), str(r[1]), str(r[2]), r[3], r[4], int(r[5] or 0), int(r[6] or 0))
                for r in self.db.execute(
                    "SELECT run_no, command, started_at, finished_at, outcome, rows_done, requests FROM runs"
                    " ORDER BY run_no")]

    def batch_latency(self, quantiles: Sequence[float]) -> tuple[int, dict[float, int]]:
        """(finished batches, {quantile: duration in ms}) over the batches' send times (each
        with its retries and splits), without reading the batches into Python."""
        n = int(self.db.execute("SELECT COUNT(*) FROM batches WHERE duration_ms IS NOT NULL").fetchone()[0])
        out: dict[float, int] = {}
        if not n:
            return 0, out
        for q in quantiles:
            # The nearest-rank quantile: the smallest value with at least q of the batches at or below it.
            rank = max(0, min(n - 1, math.ceil(q * n) - 1))
            r = self.db.execute("SELECT duration_ms FROM batches WHERE duration_ms IS NOT NULL"
                                " ORDER BY duration_ms LIMIT 1 OFFSET ?", [rank]).fetchone()
            out[q] = int(r[0])
        return n, out

    def eventful_batches(self, limit: int) -> list[BatchEvents]:
        """The batches that were split, retried, answered 429 or sent again, most eventful first."""
        return [BatchEvents(*r) for r in self.db.execute(
            "SELECT batch_no, first_row, last_row, status, requests, splits, retries, rate_limited, attempts,"
            f" http_status, duration_ms, num_errors FROM batches WHERE {_EVENTFUL}"
            " ORDER BY splits + retries + rate_limited + attempts DESC, batch_no LIMIT ?", [limit])]

    def batch_event_totals(self) -> dict[str, int]:
        """Over every batch: how many had any event, and the splits, retries, 429s and
        re-sends (claims beyond the first) in all."""
        r = self.db.execute(
            f"SELECT COALESCE(SUM({_EVENTFUL}), 0), COALESCE(SUM(splits), 0), COALESCE(SUM(retries), 0),"
            " COALESCE(SUM(rate_limited), 0), COALESCE(SUM(attempts - 1), 0), COUNT(*),"
            " COALESCE(SUM(requests), 0) FROM batches").fetchone()
        keys = ("eventful", "splits", "retries", "rate_limited", "resent", "batches", "requests")
        return {k: int(v) for k, v in zip(keys, r, strict=True)}

    def current_failures_by_origin(self) -> dict[str, int]:
        """Current failed rows by where they were found: `local` (a check before sending) or
        `hubspot` (HubSpot refused them)."""
        return {str(o): int(n) for o, n in self.db.execute(
            f"SELECT e.origin, COUNT(*) FROM row_errors e WHERE {CURRENT} GROUP BY 1")}

    def current_failures_by_category(self) -> dict[str, int]:
        """Current failed rows by the category of their (first) error."""
        return {str(c): int(n) for c, n in self.db.execute(
            f"SELECT e.category, COUNT(*) FROM row_errors e WHERE {CURRENT} GROUP BY 1")}

    def notices(self) -> list[NoticeRow]:
        return [NoticeRow(*r) for r in self.db.execute(
            "SELECT at, event, state, exit_code, target, outcome, http_status, error FROM notices ORDER BY notice_no")]
