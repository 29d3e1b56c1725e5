"""The job's health page as data: what `report --format html` shows, read from the journal.

Top to bottom: the job line, the funnel (rows read -> passed local checks -> sent ->
created / updated -> associated; superseded, failed, pending), one card per error
category with a capped table of its rows, API use (the last 24 hours against the budget
or the account's limit, by kind; the timeline; batch latencies) and the batch history.

Every number comes from `status_of` (so the page says what `status --json` says) or
from the cards of `report --summary`; the rest are aggregates and capped samples, so a
million-row job with ten thousand failed rows gives a page of a few hundred kilobytes.
The rows beyond the caps are one export command away, and the page names it.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bulkload.config import Tuning
from bulkload.journal import BatchEvents, ErrorRow, Journal, NoticeRow, RunRow
from bulkload.reports.cards import readable_message, summary
from bulkload.reports.charts import Timeline, bar_share, build_timeline, duration_text, epoch_of
from bulkload.reports.fields import RAW_KEY
from bulkload.reports.rows import JobInfo, association_dict, job_info
from bulkload.status import job_dir_flag, status_of
from bulkload.taxonomy import Category, category_of

TABLE_ROWS = 50  # rows shown per card; the rest are counted and exported
SOURCE_COLUMNS = 40  # source columns shown per row
VALUE_CHARS = 200  # characters shown per value
SOURCE_BUDGET = 1_500_000  # characters of source rows on the whole page
BATCH_ROWS = 100  # eventful batches listed
QUANTILES = (0.5, 0.9, 0.99, 1.0)


@dataclass(frozen=True)
class Step:
    """One bar of the funnel."""

    key: str  # the status --json field it shows, e.g. "rows.upserted"
    label: str
    value: int
    share: float  # percent of rows read
    note: str = ""
    tone: str = "flow"  # flow | good | warn | bad | wait


@dataclass(frozen=True)
class CardRow:
    row_number: int
    line_number: int | None
    id_value: str | None
    error_type: str
    property_name: str | None
    invalid_value: str | None
    message: str
    source: list[tuple[str, str]] | None  # (column, value), shortened; None: not shown
    source_note: str = ""  # why the source row is shortened or left out


@dataclass(frozen=True)
class TypeLine:
    error_type: str
    count: int
    example: str
    fix: str


@dataclass(frozen=True)
class Card:
    category: str
    errors: int
    affected_rows: int
    types: list[TypeLine]
    more_types: int
    retry_command: str
    export_command: str
    rows: list[CardRow]
    rows_total: int  # rows (or failed associations) the table would hold uncapped
    noun: str  # "rows" | "failed associations"

    @property
    def rows_hidden(self) -> int:
        return max(0, self.rows_total - len(self.rows))


@dataclass(frozen=True)
class KindUse:
    kind: str
    calls_24h: int
    calls_total: int


@dataclass(frozen=True)
class HealthPage:
    status: dict[str, Any]
    generated_at: str
    source_name: str
    short_fingerprint: str
    duration: str
    duration_note: str
    funnel: list[Step]
    outcomes: list[Step]
    cards: list[Card]
    empty_categories: list[str]
    superseded: int
    kinds: list[KindUse]
    allowance: int | None  # the daily budget, else the account's daily limit
    allowance_name: str
    allowance_share: float
    server_errors_24h: int
    server_errors_total: int
    timeline: Timeline
    window: str  # the window's limit as read, e.g. "190 / 10 s (HubSpot's headers)"
    latency_batches: int
    latency: list[tuple[str, str]]  # ("p50", "312 ms")
    batch_totals: dict[str, int]
    batches: list[BatchEvents]
    runs: list[RunRow]
    notices: list[NoticeRow]
    html_command: str
    export_all_command: str
    job_dir_flag: str


def _short(text: str | None, limit: int = VALUE_CHARS) -> str:
    if text is None:
        return ""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def _funnel(st: dict[str, Any], by_origin: dict[str, int]) -> tuple[list[Step], list[Step]]:
    rows, links = st["rows"], st.get("associations") or {}
    total = rows["total"]
    local = by_origin.get("local", 0)
    # Every failed row HubSpot refused was sent; a local failure or a superseded row never was.
    passed = max(0, total - rows["superseded"] - local)
    sent = rows["upserted"] + max(0, rows["failed"] - local)

    def step(key: str, label: str, value: int, note: str = "", tone: str = "flow") -> Step:
        return Step(key, label, value, bar_share(value, total), note, tone)

    funnel = [
        step("rows.total", "rows read", total, "every data row of the source file"),
        step("funnel.passed_local_checks", "passed local checks", passed,
             f"{local:,} failed a check before sending; {rows['superseded']:,} superseded"
             + ("; pending rows count until they are checked" if rows["pending"] else "")),
        step("funnel.sent", "sent to HubSpot", sent, "rows HubSpot answered for (landed or refused)"),
        step("rows.upserted", "upserted", rows["upserted"],
             f"{rows['created']:,} created · {rows['updated']:,} updated", "good"),
    ]
    if links.get("total"):
        funnel.append(Step("associations.created", "associations made", links["created"],
                           bar_share(links["created"], links["total"]),
                           f"of {links['total']:,} pairs (row and record)", "good"))
    outcomes = [
        step("rows.created", "created", rows["created"], "new records", "good"),
        step("rows.updated", "updated", rows["updated"], "records that existed", "good"),
        step("rows.superseded", "superseded", rows["superseded"],
             "earlier rows of a repeated id; the last one was sent (warnings)", "warn"),
        step("rows.failed", "failed", rows["failed"], "in the cards below and the report", "bad"),
        step("rows.pending", "pending", rows["pending"], "not yet sent, or sent and not yet recorded", "wait"),
    ]
    if links.get("total"):
        outcomes.append(Step("associations.failed", "failed associations", links["failed"],
                             bar_share(links["failed"], links["total"]), "the calls landed; these links did not",
                             "bad"))
        outcomes.append(Step("associations.pending", "pending associations", links["pending"],
                             bar_share(links["pending"], links["total"]), "resume makes them", "wait"))
    return funnel, outcomes


class _Budget:
    """The characters of source rows the page may still hold."""

    def __init__(self, chars: int) -> None:
        self.left = chars

    def source(self, data: Any) -> tuple[list[tuple[str, str]] | None, str]:
        if not isinstance(data, dict) or not data:
            return None, "no source data kept for this row"
        if self.left <= 0:
            return None, "not shown: the page holds a limited amount of source data; see the export"
        items = list(data.items())
        note = f"{len(items) - SOURCE_COLUMNS:,} more columns in the export" if len(items) > SOURCE_COLUMNS else ""
        shown = [(_short(str(k), 80), "" if v is None else _short(str(v))) for k, v in items[:SOURCE_COLUMNS]]
        self.left -= sum(len(k) + len(v) for k, v in shown)
        return shown, note


def _problems_of(e: ErrorRow) -> list[dict[str, Any]]:
    if e.problems:
        items = orjson.loads(e.problems)
        if isinstance(items, list) and items:
            return [p for p in items if isinstance(p, dict)]
    return [{"errorType": e.error_type, "propertyName": e.property_name, "invalidValue": e.invalid_value,
             "errorMessage": e.message}]


def _card_rows(journal: Journal, job: JobInfo, budget: _Budget) -> tuple[dict[str, list[CardRow]], dict[str, int]]:
    """The first TABLE_ROWS rows of each category and how many there are: one pass over the
    current errors, parsing only the rows that are shown. A row with problems in several
    categories is in each of their tables, with the problem that belongs there."""
    shown: dict[str, list[CardRow]] = {c.value: [] for c in Category}
    counts: dict[str, int] = {c.value: 0 for c in Category}
    known = {c.value for c in Category}
    rows: Iterator[ErrorRow] = journal.iter_error_rows(after=None, include_resolved=False, error_types=(),
                                                       categories=())
    for e in rows:
        by_cat: dict[str, dict[str, Any] | None] = {}
        if e.problems is None:
            by_cat[e.category if e.category in known else Category.OTHER.value] = None
        else:
            for item in _problems_of(e):
                by_cat.setdefault(category_of(str(item.get("errorType") or "")).value, item)
        for cat, problem in by_cat.items():
            counts[cat] += 1
            if len(shown[cat]) >= TABLE_ROWS:
                continue
            p = problem or {}
            source, note = budget.source(orjson.loads(e.row_data) if e.row_data else None)
            if source is not None and RAW_KEY in dict(source) and len(source) == 1:
                note = note or "the row could not be parsed: its raw text"
            shown[cat].append(CardRow(
                row_number=e.row_number, line_number=e.line_number, id_value=e.id_value,
                error_type=str(p.get("errorType") or e.error_type),
                property_name=p.get("propertyName", e.property_name) if problem else e.property_name,
                invalid_value=_short(p.get("invalidValue", e.invalid_value) if problem else e.invalid_value),
                message=_short(readable_message(str(p.get("errorMessage") or e.message)), 400),
                source=source, source_note=note,
            ))
    links = shown[Category.ASSOCIATIONS.value]
    for pair in journal.iter_failed_pairs(after=None):
        if len(links) >= TABLE_ROWS:
            break
        d = association_dict(pair, job)
        src = d["sourceData"]
        source, note = budget.source(src["rowData"])
        links.append(CardRow(src["rowNumber"], src["lineNumber"], d["idPropertyValue"], d["errorType"],
                             d["propertyName"], _short(d["invalidValue"]), _short(d["errorMessage"], 400), source,
                             note or "the call landed; only this association failed"))
    return shown, counts


def _cards(journal: Journal, job: JobInfo, flag: str, budget: _Budget) -> tuple[list[Card], list[str], int]:
    cards, superseded = summary(journal)
    shown, counts = _card_rows(journal, job, budget)
    out: list[Card] = []
    for c in cards:
        if not c.errors:
            continue
        types = ",".join(sorted(c.fixes))
        is_links = c.category == Category.ASSOCIATIONS.value
        out.append(Card(
            category=c.category, errors=c.errors, affected_rows=c.affected_rows,
            types=[TypeLine(t, n, _short(readable_message(m), 300), c.fixes.get(t, "")) for t, n, m in c.top],
            more_types=max(0, len(c.fixes) - len(c.top)),
            retry_command=f"bulkload retry {job.job_id}{flag} --error-type {shlex.quote(types)}",
            export_command=f"bulkload report {job.job_id}{flag} --error-type {shlex.quote(types)} --format csv",
            rows=shown[c.category],
            rows_total=c.errors if is_links else counts[c.category],
            noun="failed associations" if is_links else "rows",
        ))
    return out, [c.category for c in cards if not c.errors], superseded


def _window(st: dict[str, Any], last_rate: dict[str, Any] | None) -> tuple[float | None, str]:
    """HubSpot's request window per 10 s: a fixed --rate, else the last headers."""
    rate = Tuning.from_choices({"rate": st["tuning"].get("rate")}).rate if st["tuning"].get("rate") else None
    if rate is not None:
        return rate.requests * 10 / rate.seconds, f"{rate.requests:,} / {rate.seconds:g} s (--rate)"
    lr = last_rate or {}
    if lr.get("max") and lr.get("interval_ms"):
        per = float(lr["interval_ms"]) / 1000
        return float(lr["max"]) * 10 / per, f"{int(lr['max']):,} / {per:g} s (HubSpot's rate-limit headers)"
    return None, "not known (HubSpot sent no rate-limit headers)"


def _duration(st: dict[str, Any]) -> tuple[str, str]:
    start = epoch_of(st.get("created_at"))
    end = epoch_of(st.get("finished_at"))
    if start is None:
        return "-", ""
    if end is not None:
        return duration_text(end - start), ""
    last = epoch_of(st.get("updated_at")) or start
    return duration_text(last - start), "so far (not finished)"


def health_page(journal: Journal, *, now: float | None = None) -> HealthPage:
    """Everything the page shows, read in one snapshot of the journal."""
    wall = time.time() if now is None else now
    with journal.snapshot():
        st = status_of(journal)
        job = job_info(journal)
        flag = job_dir_flag(journal.path.parent)
        budget = _Budget(SOURCE_BUDGET)
        cards, empty, superseded = _cards(journal, job, flag, budget)
        funnel, outcomes = _funnel(st, journal.current_failures_by_origin())
        usage = st["usage"]
        day = journal.calls_by_kind(wall - 86_400)
        total = st["api_calls_by_kind"]
        kinds = [KindUse(k, int(day.get(k, 0)), int(v)) for k, v in total.items()]
        kinds += [KindUse(k, int(day.get(k, 0)), int(usage["calls_by_kind"].get(k, 0)))
                  for k in sorted(usage["calls_by_kind"]) if k not in total]
        last_rate = journal.job().last_rate
        limit_10s, window = _window(st, last_rate)
        runs = journal.run_history()
        timeline = build_timeline(journal.api_ticks(), runs, limit_per_10s=limit_10s)
        n_lat, lat = journal.batch_latency(QUANTILES)
        totals = journal.batch_event_totals()
        batches = journal.eventful_batches(BATCH_ROWS)
        notices = journal.notices()
        server_24h = journal.server_errors_since(wall - 86_400)
        server_total = journal.server_errors_since(0)
    allowance = usage.get("daily_budget") or usage.get("daily_limit")
    allowance_name = ("this job's --daily-budget" if usage.get("daily_budget")
                      else "the account's daily limit" if usage.get("daily_limit") else "")
    duration, duration_note = _duration(st)
    names = {0.5: "p50", 0.9: "p90", 0.99: "p99", 1.0: "max"}
    return HealthPage(
        status=st,
        generated_at=datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        source_name=Path(st["source"]["path"]).name,
        short_fingerprint=(st["source"].get("fingerprint") or "")[:12],
        duration=duration,
        duration_note=duration_note,
        funnel=funnel,
        outcomes=outcomes,
        cards=cards,
        empty_categories=empty,
        superseded=superseded,
        kinds=kinds,
        allowance=int(allowance) if allowance else None,
        allowance_name=allowance_name,
        allowance_share=bar_share(int(usage["calls_24h"]), int(allowance)) if allowance else 0.0,
        server_errors_24h=server_24h,
        server_errors_total=server_total,
        timeline=timeline,
        window=window,
        latency_batches=n_lat,
        latency=[(names.get(q, f"p{q * 100:g}"), f"{ms:,} ms") for q, ms in lat.items()],
        batch_totals=totals,
        batches=batches,
        runs=runs,
        notices=notices,
        html_command=f"bulkload report {job.job_id}{flag} --format html",
        export_all_command=f"bulkload report {job.job_id}{flag} --format csv",
        job_dir_flag=flag,
    )
