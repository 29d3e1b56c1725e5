"""Human-readable views of jobs: the run summary, `status`, `jobs`. Plain text from the
status dict and the cards; no logic of their own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bulkload.errors import FIX_MARKER
from bulkload.models import JobState
from bulkload.reports import CategoryCard, render_summary


def _n(x: int | None) -> str:
    return "-" if x is None else f"{x:,}"


def _rows_line(rows: dict[str, Any]) -> str:
    return (f"  rows      {_n(rows['total'])} total · {_n(rows['upserted'])} upserted "
            f"({_n(rows['created'])} created, {_n(rows['updated'])} updated) · {_n(rows['failed'])} failed · "
            f"{_n(rows['superseded'])} superseded · {_n(rows['pending'])} pending")


def _source_line(st: dict[str, Any]) -> str:
    src = st["source"]
    how = src["format"]
    if src.get("delimiter"):
        name = "tab" if src["delimiter"] == "\t" else repr(src["delimiter"])
        how += f", delimiter {name}" + (f" ({src['delimiter_origin']})" if src.get("delimiter_origin") else "")
    return f"  source    {src['path']} ({how}, sha256 {src['fingerprint'][:12]})"


def _timestamps_line(st: dict[str, Any]) -> str | None:
    ts = st.get("timestamps") or {}
    n = ts.get("without_zone") or 0
    if not n:
        return None
    if ts.get("read_as", "UTC") == "UTC":
        return (f"  note      {n:,} timestamps had no zone and were taken as UTC; "
                "--timezone Europe/Oslo (any IANA zone) reads them as local")
    return f"  note      {n:,} timestamps had no zone and were read in {ts['read_as']}"


def _associations_line(st: dict[str, Any]) -> str | None:
    a = st.get("associations") or {}
    if not a.get("total"):
        return None
    return (f"  assoc.    {_n(a['total'])} pairs · {_n(a['created'])} created · {_n(a['failed'])} failed · "
            f"{_n(a['pending'])} pending")


def render_run_summary(st: dict[str, Any], by_type: Sequence[tuple[str, str, int]]) -> str:
    """What `load`, `resume` and `retry` print at the end."""
    rows = st["rows"]
    lines = [f"Job {st['job_id']}: {st['state']}", _source_line(st), _rows_line(rows)]
    if links := _associations_line(st):
        lines.append(links)
    if note := _timestamps_line(st):
        lines.append(note)
    if by_type:
        lines.append("  failed by errorType: " + ", ".join(f"{t} {n:,}" for _, t, n in by_type))
    if rows["superseded"]:
        lines.append(f"  superseded (warnings): DUPLICATE_ID_IN_SOURCE {rows['superseded']:,} "
                     "(earlier rows of a repeated id; the last row was sent)")
    lines.append(f"  API calls {_n(st['api_calls'])} · journal {st['journal']}")
    if st.get("report_command"):
        lines.append(f"  Review failed rows: {st['report_command']}")
    if st["state"] == JobState.PAUSED.value:
        lines.append(f"  Resume with: {st['resume_command']}")
    return "\n".join(lines)


_CHECK_WORDS = {
    "portal": "checked against the portal", "kept": "checked against the schema an earlier run kept",
    "hubspot": "left to HubSpot (the token may not read them)", "not needed": "not needed",
    "not read yet": "not read yet",
}


def _checks_line(st: dict[str, Any]) -> str | None:
    checks = st.get("checks")
    if not checks:
        return None
    return (f"  checks    values {_CHECK_WORDS.get(checks['schema'], checks['schema'])} · owners "
            f"{_CHECK_WORDS.get(checks['owners'], checks['owners'])}")


def render_status(st: dict[str, Any], cards: Sequence[CategoryCard], superseded: int) -> str:
    rows, batches, usage, tuning = st["rows"], st["batches"], st["usage"], st["tuning"]
    state = st["state"] + (f" ({st['phase']})" if st.get("phase") else "")
    lines = [
        f"Job {st['job_id']} — {state}",
        _source_line(st),
        f"  object    {st['object_type']} by {st['id_property']}",
        _rows_line(rows),
        f"  batches   {_n(batches['total'])} total · {_n(batches['done'])} done · {_n(batches['partial'])} partial · "
        f"{_n(batches['failed'])} failed · {_n(batches['pending'])} pending",
        *([links] if (links := _associations_line(st)) else []),
        f"  errors    {_n(rows['failed'])} failed rows now; {_n(st['num_errors'])} rows HubSpot refused in the"
        " batches as they were sent (retries since may have fixed some)",
        f"  API       {_n(usage['calls_24h'])} calls in the last 24 h"
        + (f" of a {usage['daily_budget']:,} budget" if usage["daily_budget"] else "")
        + (f" (account daily limit {usage['daily_limit']:,}, {_n(usage['daily_remaining'])} left)"
           if usage["daily_limit"] else "")
        + f" · {_n(usage['rate_limited_total'])} answered 429 · {_n(usage['retries_total'])} retries",
        "  by kind   " + " · ".join(f"{k} {_n(v)}" for k, v in st.get("api_calls_by_kind", {}).items()),
        *([checks] if (checks := _checks_line(st)) else []),
        "  tuning    " + " · ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in tuning.items() if k != "max_outage_seconds" and v is not None),
        f"  updated   {st['updated_at']}",
    ]
    if note := _timestamps_line(st):
        lines.append(note)
    if "throughput" in st:
        tp = st["throughput"]
        eta = tp["eta_seconds"]
        lines.append(f"  pace      {tp['rows_per_second']:,.0f} rows/s"
                     + (f" · ETA {eta // 3600:d}h{eta % 3600 // 60:02d}m{eta % 60:02d}s" if eta is not None else ""))
    lines += ["", render_summary(cards, superseded)]
    if st["state"] == JobState.PAUSED.value:
        reason = st.get("paused_reason") or ""
        fix = st.get("fix")
        lines += ["", f"  paused    {reason.partition(FIX_MARKER)[0] if fix else reason}"]
        if fix:
            lines.append(f"  fix       {fix}")
        if st.get("resume_after"):
            lines.append(f"  continue  after {st['resume_after']}")
        lines.append(f"  Resume with: {st['resume_command']}")
    return "\n".join(lines)


def render_jobs(entries: Sequence[dict[str, Any]]) -> str:
    header = f"{'JOB':<36} {'STATE':<22} {'PROGRESS':>8}  {'LAST ACTIVITY':<24} SOURCE"
    lines = [header]
    for e in entries:
        lines.append(
            f"{e['job_id']:<36} {e['state']:<22} {e['progress']:>7.1f}%  {e['last_activity']:<24} {e['source']}"
        )
        if e.get("resume_command"):
            lines.append(f"{'':<36} resume: {e['resume_command']}")
    return "\n".join(lines)


def render_properties(object_type: str, items: Sequence[dict[str, Any]]) -> str:
    """`bulkload properties`: one line a property, then its options as `label = value`."""
    lines = [f"{object_type}: {len(items)} properties", f"  {'NAME':<34} {'TYPE':<22} {'UNIQUE':<7} LABEL"]
    for p in items:
        kind = f"{p.get('type', '?')}/{p.get('fieldType', '?')}"
        flags = "unique" if p.get("hasUniqueValue") else ""
        meta = p.get("modificationMetadata") or {}
        extra = " (read-only)" if isinstance(meta, dict) and meta.get("readOnlyValue") else ""
        if p.get("referencedObjectType") == "OWNER":
            extra += " (an owner id; owner e-mails are resolved by the loader)"
        lines.append(f"  {p.get('name', ''):<34} {kind:<22} {flags:<7} {p.get('label', '')}{extra}")
        for o in p.get("options") or []:
            if isinstance(o, dict):
                lines.append(f"      {o.get('label', '')!s} = {o.get('value', '')!s}")
    return "\n".join(lines)


def render_dry_run(report: dict[str, Any]) -> str:
    """`load --dry-run` for a person: what would be sent, what would fail and why, with
    the first rows of each error type, and what the checks were made against."""
    rows = report["rows"]
    checks = report.get("checks") or {}
    lines = [
        f"Dry run of {report['source']['path']} ({report['source']['format']}): nothing was sent.",
        f"  rows      {rows['total']:,} total · {rows['would_send']:,} would be sent in {report['requests']:,} "
        f"requests · {rows['would_fail_locally']:,} would fail here · {rows['superseded']:,} superseded",
        f"  checks    schema: {checks.get('schema', '?')} · owners: {checks.get('owners', '?')}",
    ]
    if checks.get("note"):
        lines.append(f"            {checks['note']}")
    links = report.get("associations") or {}
    for t in links.get("targets") or ():
        lines.append(f"  assoc.    {t['target']}: {links.get('pairs', 0):,} pairs, {t['distinct_values']:,} distinct "
                     f"values, {t['lookups']:,} to look up")
    problems = report.get("problems") or {}
    if problems:
        lines.append("  problems  (a row may have several)")
        for error_type, n in problems.items():
            lines.append(f"    {error_type} ×{n:,}")
            for ex in (report.get("examples") or {}).get(error_type, []):
                where = f"row {ex['rowNumber']:,}" + (f" (line {ex['lineNumber']:,})" if ex.get("lineNumber") else "")
                lines.append(f"      {where}: {ex.get('propertyName') or ''} = {_short(ex.get('invalidValue'))}: "
                             f"{_short(ex.get('errorMessage'), 100)}")
    else:
        lines.append("  problems  none found")
    return "\n".join(lines)


def _short(value: Any, width: int = 40) -> str:
    text = "" if value is None else str(value)
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= width else text[: width - 1] + "…"
