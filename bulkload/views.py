"""Human-readable views of jobs: the run summary, `status`, `jobs`. Plain text, no logic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bulkload import api
from bulkload.journal import JobState


def _n(x: int | None) -> str:
    return "-" if x is None else f"{x:,}"


def render_summary(job_id: str, job_dir: Path) -> str:
    st = api.status(job_id, job_dir=job_dir)
    rows = st["rows"]
    journal = api.open_journal(job_dir, job_id)
    try:
        by_type = journal.failed_by_type()
    finally:
        journal.close()
    lines = [
        f"Job {st['job_id']}: {st['state']}",
        f"  rows      {_n(rows['total'])} total · {_n(rows['upserted'])} upserted "
        f"({_n(rows['created'])} created, {_n(rows['updated'])} updated) · {_n(rows['failed'])} failed · "
        f"{_n(rows['superseded'])} superseded · {_n(rows['pending'])} pending",
    ]
    if by_type:
        lines.append("  failed by errorType: " + ", ".join(f"{t} {n:,}" for _, t, n in by_type))
    if rows["superseded"]:
        lines.append(f"  superseded (warnings): DUPLICATE_ID_IN_SOURCE {rows['superseded']:,} "
                     "(earlier rows of a repeated id; the last row was sent)")
    lines.append(f"  API calls {_n(st['api_calls'])} · journal {st['journal']}")
    if rows["failed"]:
        lines.append(f"  Review failed rows: bulkload report {job_id}")
    if st["state"] == JobState.PAUSED.value:
        lines.append(f"  Resume with: bulkload resume {job_id}")
    return "\n".join(lines)


def render_status(job_id: str, job_dir: Path) -> str:
    st = api.status(job_id, job_dir=job_dir)
    rows, batches, usage = st["rows"], st["batches"], st["usage"]
    lines = [
        f"Job {st['job_id']} — {st['state']}",
        f"  source    {st['source']['path']} ({st['source']['format']}, sha256 {st['source']['fingerprint'][:12]})",
        f"  object    {st['object_type']} by {st['id_property']}",
        f"  rows      {_n(rows['total'])} total · {_n(rows['upserted'])} upserted "
        f"({_n(rows['created'])} created, {_n(rows['updated'])} updated) · {_n(rows['failed'])} failed · "
        f"{_n(rows['superseded'])} superseded · {_n(rows['pending'])} pending",
        f"  batches   {_n(batches['total'])} total · {_n(batches['done'])} done · {_n(batches['partial'])} partial · "
        f"{_n(batches['failed'])} failed · {_n(batches['pending'])} pending",
        f"  API       {_n(usage['calls_24h'])} calls in the last 24 h"
        + (f" of a {usage['daily_budget']:,} budget" if usage["daily_budget"] else "")
        + (f" (account daily limit {usage['daily_limit']:,}, {_n(usage['daily_remaining'])} left)"
           if usage["daily_limit"] else "")
        + f" · {_n(usage['rate_limited_total'])} answered 429 · {_n(usage['retries_total'])} retries",
        f"  updated   {st['updated_at']}",
    ]
    if "throughput" in st:
        tp = st["throughput"]
        eta = tp["eta_seconds"]
        lines.append(f"  pace      {tp['rows_per_second']:,.0f} rows/s"
                     + (f" · ETA {eta // 3600:d}h{eta % 3600 // 60:02d}m{eta % 60:02d}s" if eta is not None else ""))
    from bulkload.report import render_summary as render_cards
    from bulkload.report import summary

    journal = api.open_journal(job_dir, job_id)
    try:
        cards, superseded = summary(journal)
    finally:
        journal.close()
    lines.append("")
    lines.append(render_cards(cards, superseded))
    if st["state"] == JobState.PAUSED.value:
        lines.append("")
        lines.append(f"  paused    {st.get('paused_reason') or ''}")
        if st.get("resume_after"):
            lines.append(f"  continue  after {st['resume_after']}")
        lines.append(f"  Resume with: bulkload resume {st['job_id']}")
    return "\n".join(lines)


def render_jobs(entries: list[dict[str, Any]]) -> str:
    header = f"{'JOB':<36} {'STATE':<22} {'PROGRESS':>8}  {'LAST ACTIVITY':<24} SOURCE"
    lines = [header]
    for e in entries:
        lines.append(
            f"{e['job_id']:<36} {e['state']:<22} {e['progress']:>7.1f}%  {e['last_activity']:<24} {e['source']}"
        )
        if e.get("resume_command"):
            lines.append(f"{'':<36} resume: {e['resume_command']}")
    return "\n".join(lines)
