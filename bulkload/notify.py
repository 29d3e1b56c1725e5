"""`--notify URL`: one POST when a `load`, `resume` or `retry` ends, saying how the job is.

The body is one JSON object (DESIGN.md section 2): `job_id`, `state`, `exit_code`,
`rows`, `associations`, `errors_by_category` (current errors per category, as the cards
count them), `resume_command`, and ours: `event` (finished | paused | stopped),
`report_command`, `paused_reason`, `api_calls`, `at`. A Slack incoming-webhook URL also
gets `text`, the one line Slack shows. Never the token, never row data: everything in it
comes from the job's status and its error counts, which hold neither.

The webhook is a bystander. It is called once, after the run has settled the job's state,
with a 10-second timeout; a failure (timeout, non-2xx, unreachable) is recorded in the
journal (`record_notice`) and changes nothing else: the exit code stays what the job
earned. Where the URL is recorded, only its scheme and host are: a webhook's path is
often its secret (Slack's is).
"""

from __future__ import annotations

import contextlib
import ipaddress
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from bulkload.errors import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_RESUMABLE,
    EXIT_ROWS_FAILED,
    BulkloadError,
    InputError,
)
from bulkload.journal import Journal
from bulkload.models import FINISHED_STATES, JobState
from bulkload.reports.cards import summary
from bulkload.status import resume_command, status_of

TIMEOUT_SECONDS = 10.0
SLACK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """The webhook URL, refused (exit 2, before anything is sent) unless it is https, or
    http to a loopback host: the same rule as the HubSpot base URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"--notify needs an http(s) URL, e.g. https://hooks.slack.com/services/...; got {url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise InputError(f"--notify: plain http:// is allowed only for loopback hosts; use https:// "
                         f"(got a URL to {parts.hostname})")
    return url.strip()


def target_of(url: str) -> str:
    """What the journal keeps of a webhook URL: scheme and host (and port), never the path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def is_slack(url: str) -> bool:
    return (urlsplit(url).hostname or "") in SLACK_HOSTS


def exit_code_for(exc: BaseException) -> int:
    """The exit code a run that raised `exc` ends with (what the CLI exits with)."""
    if isinstance(exc, BulkloadError):
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_RESUMABLE
    return EXIT_ROWS_FAILED  # a bug: Python's exit code for an uncaught exception


def is_crash(exc: BaseException) -> bool:
    """Not a stop bulkload meant (a bug): the job is left resumable, and says so."""
    return not isinstance(exc, BulkloadError | KeyboardInterrupt)


def event_of(state: str, exit_code: int, crashed: bool = False) -> str:
    """finished (completed or completed_with_errors), stopped (refused with exit 2, or a
    crash), else paused (Ctrl-C, quota, token refused, HubSpot unreachable, rows pending)."""
    if state in FINISHED_STATES:
        return "finished"
    if crashed or exit_code == EXIT_INPUT:
        return "stopped"
    return "paused"


def payload(journal: Journal, exit_code: int, *, crashed: bool = False) -> dict[str, Any]:
    """The notification's body, from the job's status and its error counts (no row data)."""
    st = status_of(journal)
    state = st["state"]
    if state == JobState.RUNNING.value:
        # The run is over and this process is letting go of the job: that is a pause.
        state = JobState.PAUSED.value
    cards, _ = summary(journal)
    body: dict[str, Any] = {
        "job_id": st["job_id"],
        "event": event_of(state, exit_code, crashed),
        "state": state,
        "exit_code": exit_code,
        "rows": st["rows"],
        "associations": st.get("associations") or {},
        "errors_by_category": {c.category: c.errors for c in cards if c.errors},
        "resume_command": st.get("resume_command") if state == JobState.PAUSED.value else None,
        "report_command": st.get("report_command"),
        "paused_reason": _short(st.get("paused_reason")) if state == JobState.PAUSED.value else None,
        "object_type": st["object_type"],
        "api_calls": st["api_calls"],
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if state == JobState.PAUSED.value and not body["resume_command"]:
        body["resume_command"] = resume_command(journal)
    return body


def _short(text: str | None, limit: int = 300) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def slack_text(body: dict[str, Any]) -> str:
    rows = body["rows"]
    line = (f"bulkload job {body['job_id']}: {body['state'].replace('_', ' ')} (exit {body['exit_code']}) · "
            f"{rows['upserted']:,} of {rows['total']:,} rows upserted · {rows['failed']:,} failed · "
            f"{rows['pending']:,} pending")
    links = body.get("associations") or {}
    if links.get("failed"):
        line += f" · {links['failed']:,} associations failed"
    if body["errors_by_category"]:
        line += " · errors: " + ", ".join(f"{c} {n:,}" for c, n in body["errors_by_category"].items())
    if body.get("resume_command"):
        line += f"\nResume with: `{body['resume_command']}`"
    elif body.get("report_command"):
        line += f"\nReview: `{body['report_command']}`"
    return line


@dataclass(frozen=True)
class Notifier:
    """Where and how to notify; `transport` is the seam tests may use."""

    url: str
    timeout: float = TIMEOUT_SECONDS
    transport: httpx.BaseTransport | None = None

    @classmethod
    def of(cls, notify: str | Notifier | None) -> Notifier | None:
        if notify is None or isinstance(notify, Notifier):
            return notify
        return cls(check_url(notify))

    def send(self, journal: Journal, exit_code: int, *, crashed: bool = False) -> bool:
        """POST the job's notification once; record how it went. Never raises: whatever
        the webhook does, the job's outcome and exit code stay as they are."""
        try:
            body = payload(journal, exit_code, crashed=crashed)
        except (BulkloadError, sqlite3.Error) as e:
            self._record(journal, "unknown", "unknown", exit_code, "failed", None, f"no payload: {e}")
            return False
        if is_slack(self.url):
            body["text"] = slack_text(body)
        status: int | None = None
        error: str | None = None
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport, follow_redirects=False) as client:
                response = client.post(self.url, json=body, headers={"User-Agent": "bulkload-notify"})
            status = response.status_code
            if not 200 <= status < 300:
                error = f"the webhook answered HTTP {status}"
        except httpx.TimeoutException:
            error = f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as e:
            error = f"unreachable: {type(e).__name__}: {e}"
        except Exception as e:  # never let the webhook change the job's outcome
            error = f"{type(e).__name__}: {e}"
        self._record(journal, body["event"], body["state"], exit_code, "failed" if error else "sent", status,
                     error)
        return error is None

    def _record(self, journal: Journal, event: str, state: str, exit_code: int, outcome: str, status: int | None,
                error: str | None) -> None:
        # The error text may quote the URL (httpx does): keep only its scheme and host.
        if error:
            error = error.replace(self.url, target_of(self.url))[:500]
        with contextlib.suppress(sqlite3.Error, BulkloadError):
            journal.record_notice(event=event, state=state, exit_code=exit_code, target=target_of(self.url),
                                  outcome=outcome, http_status=status, error=error)


class Outcome:
    """What a run came to, set by the code inside `notifying` when it returns normally."""

    exit_code: int = EXIT_OK


@contextmanager
def notifying(notifier: Notifier | None, journal: Journal) -> Iterator[Outcome]:
    """Notify once when the block ends: with the exit code the block set on the Outcome,
    or the one its exception carries (re-raised unchanged). The job's state is settled
    by then (the run paused or finished it), so the notification says what status says."""
    outcome = Outcome()
    if notifier is None:
        yield outcome
        return
    try:
        yield outcome
    except BaseException as e:
        notifier.send(journal, exit_code_for(e), crashed=is_crash(e))
        raise
    notifier.send(journal, outcome.exit_code)
