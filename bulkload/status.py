"""The status read model: what `status --json`, `jobs` and the library's `status()` show.

A job's state is shown as the contract names it (running, paused, completed,
completed_with_errors): a job whose process died without saying why (a kill, a power
cut) is paused, and a job still in its first pass is running, with `phase: scanning`.
Every command printed for the user to run next carries `--job-dir` when the job does
not live in the default job dir, so it runs as printed from any directory.
"""

from __future__ import annotations

import shlex
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bulkload.config import Tuning, default_job_dir
from bulkload.errors import FIX_MARKER
from bulkload.journal import Journal, lock_holder
from bulkload.models import JobState
from bulkload.portal import checks_ran


def job_dir_flag(job_dir: Path) -> str:
    """` --job-dir DIR` unless `job_dir` is the default job dir (as seen from here)."""
    job_dir = job_dir.resolve()
    try:
        default = default_job_dir().resolve()
    except OSError:
        default = None
    return "" if job_dir == default else f" --job-dir {shlex.quote(str(job_dir))}"


def resume_command(journal: Journal) -> str:
    return f"bulkload resume {journal.job_id}{job_dir_flag(journal.path.parent)}"


def sent_anything(journal: Journal) -> bool:
    """Whether the job ever spent an upsert or landed a row (a properties read is not sending)."""
    return bool(journal.calls_by_kind().get("upsert") or journal.counts()["rows"]["upserted"])


def fix_of(reason: str | None) -> str | None:
    """The fix a pause reason carries after its cause (SystematicRejection's), if any."""
    if not reason or FIX_MARKER not in reason:
        return None
    return reason.partition(FIX_MARKER)[2].strip() or None


def effective_state(journal: Journal) -> tuple[str, str | None]:
    """The job's state as a user should see it: a `running` job whose process is gone is paused."""
    job = journal.job()
    if job.state == JobState.RUNNING and lock_holder(journal.path) is None:
        return JobState.PAUSED.value, job.paused_reason or "the loader stopped without recording why (killed?)"
    return job.state, job.paused_reason


def status_of(journal: Journal) -> dict[str, Any]:
    job = journal.job()
    state, reason = effective_state(journal)
    counts = journal.counts()
    tuning = Tuning.from_choices(job.tuning).to_dict() | {"batch_size": int(job.config.get("batch_size", 100))}
    out: dict[str, Any] = {
        "job_id": job.job_id,
        "state": state,
        "phase": "scanning" if not job.scan_complete and state == JobState.RUNNING else None,
        "object_type": job.object_type,
        "id_property": job.id_property,
        "source": {
            "path": job.source_path,
            "format": job.source_format,
            "fingerprint": job.fingerprint.get("sha256", ""),
            "size": job.fingerprint.get("size"),
            "delimiter": job.config.get("delimiter"),
            "delimiter_origin": job.config.get("delimiter_origin"),
        },
        **counts,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
        "journal": str(journal.path.resolve()),
        "tuning": tuning,
        "timestamps": {"without_zone": journal.naive_timestamps(), "read_as": job.config.get("timezone") or "UTC"},
    }
    if state == JobState.PAUSED:
        out["paused_reason"] = reason
        out["resume_after"] = job.resume_after
        out["resume_command"] = resume_command(journal)
        fix = fix_of(reason)
        if fix is not None:
            out["fix"] = fix  # also inside paused_reason, after its cause
    if counts["rows"]["failed"] or counts["associations"]["failed"]:
        out["report_command"] = f"bulkload report {job.job_id}{job_dir_flag(journal.path.parent)}"
    # Which checks ran against the portal at the last run (a 403 leaves them to HubSpot).
    out["checks"] = checks_ran(journal.portal_states(), job.object_type)
    out["usage"] = usage_of(journal)
    by_kind = out["usage"]["calls_by_kind"]
    out["api_calls_by_kind"] = {k: int(by_kind.get(k, 0)) for k in ("upsert", "read", "associate", "schema")}
    if state == JobState.RUNNING:
        out["throughput"] = throughput_of(journal, counts["rows"]["pending"])
    return out


def throughput_of(journal: Journal, pending: int, window_s: float = 60.0) -> dict[str, Any]:
    """Rows/s over the last minute of finished batches, and the ETA at that pace."""
    since = (datetime.now(UTC) - timedelta(seconds=window_s)).strftime("%Y-%m-%dT%H:%M:%S")
    rows, first_at = journal.rows_finished_since(since)
    if not rows or first_at is None:
        return {"rows_per_second": 0.0, "eta_seconds": None}
    first = datetime.strptime(first_at[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    elapsed = max(1.0, (datetime.now(UTC) - first).total_seconds())
    rate = rows / elapsed
    return {"rows_per_second": round(rate, 1), "eta_seconds": round(pending / rate) if rate else None}


def usage_of(journal: Journal) -> dict[str, Any]:
    """API usage: the last 24 hours against the budget or the account's daily limit."""
    job = journal.job()
    day_ago = time.time() - 86_400
    calls_24h, limited_24h, retries_24h = journal.usage_since(day_ago)
    calls, limited, retries = journal.usage_since(0)
    last_rate = job.last_rate or {}
    return {
        "calls_24h": calls_24h,
        "daily_budget": job.tuning.get("daily_budget"),
        "daily_limit": last_rate.get("daily"),
        "daily_remaining": last_rate.get("daily_remaining"),
        "rate_limited_24h": limited_24h,
        "retries_24h": retries_24h,
        "calls_total": calls,
        "rate_limited_total": limited,
        "retries_total": retries,
        "calls_by_kind": journal.calls_by_kind(),
    }


def job_entry(journal: Journal) -> dict[str, Any]:
    """One line of `jobs`."""
    job = journal.job()
    state, reason = effective_state(journal)
    rows = journal.counts()["rows"]
    done = rows["total"] - rows["pending"]
    entry: dict[str, Any] = {
        "job_id": job.job_id,
        "source": job.source_path,
        "state": state,
        "rows": rows,
        "progress": round(100.0 * done / rows["total"], 1) if rows["total"] else 0.0,
        "last_activity": job.updated_at,
        "created_at": job.created_at,
        "job_dir": str(journal.path.parent.resolve()),
    }
    if state == JobState.PAUSED:
        entry["paused_reason"] = reason
        entry["resume_command"] = resume_command(journal)
    return entry
