"""Land one batch: send it under the rate limiter, retry what is transient, split what is rejected.

`Sender.send()` turns a batch of upsert inputs into a BatchOutcome in which every input
is exactly once either landed or failed; `Sender.call()` runs any other request (the
properties read, lookups) through the same loop. On the way it:

- acquires the shared RateLimiter before every HTTP request and feeds every answer's
  rate headers back to it;
- retries transient failures (5xx, 423, 477, timeouts, resets, ten-secondly 429s) with
  capped exponential backoff and full jitter, and gives up with ApiUnavailable (exit 75,
  the batch stays unrecorded) after a bounded number of attempts or of outage time: a
  transient failure never becomes a failed row;
- stops with QuotaExhausted on HubSpot's daily 429, with AuthError at once on 401/403,
  with Interrupted when the stop event is set while it waits, and lets RequestRejected
  (an answer about the request, not an input) through for the pipeline to stop on;
- splits a batch HubSpot rejected whole (400/409) until each bad input stands alone, so
  every good input still lands (about 2*log2(n) extra requests per bad input); when the
  answer names the invalid value ("Property values were not valid: [...]" does), the
  inputs carrying it fail at once and the rest is re-sent whole, and later batches
  carrying a value HubSpot refused fail it without being sent;
- splits the inputs a partial answer left unaccounted for when it carried errors that
  name no input, until each such error stands with its one input; inputs an answer
  simply did not mention are sent again, a bounded number of times;
- bounds what isolating costs (bulkload.isolation): split requests stay within a share of
  the run's requests, and a cause that isolation shows every row shares stops the run.
  Both raise SystematicRejection (exit 75): the batch is unrecorded, its rows pending,
  and no row is failed that was not isolated.

Nothing here knows the journal: the pipeline records the outcome. When the sender
raises, nothing of the batch is recorded and it is sent again on resume; upsert keyed
by idProperty makes that replay harmless.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from bulkload.config import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_OUTAGE,
    DEFAULT_SPLIT_FLOOR,
    DEFAULT_SPLIT_SHARE,
    SYSTEMATIC_AFTER,
    SYSTEMATIC_SHARE,
    Tuning,
)
from bulkload.errors import ApiUnavailable, AuthError, Interrupted, QuotaExhausted
from bulkload.hubspot.client import Reply, UpsertResponse
from bulkload.hubspot.exceptions import BatchRejected, RateLimited, RequestRejected, TransientError
from bulkload.hubspot.linking import AssociateAnswer, Pair, ReadAnswer
from bulkload.hubspot.ratelimit import Permit, RateLimiter, RateLimitInfo
from bulkload.hubspot.responses import fail_by_value, refused_values, unknown_failure, with_input
from bulkload.isolation import IsolationLedger
from bulkload.models import BatchOutcome, FailedRow, Landed, UpsertInput, trace_id_of
from bulkload.taxonomy import ErrorType

__all__ = ["LinkApi", "LinkOutcome", "NoHooks", "RetryPolicy", "SendHooks", "Sender", "UpsertApi", "next_midnight_utc"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# A stop request is noticed within this many seconds of a backoff wait.
_STOP_POLL = 0.25


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying one request through transient failures.

    Delays are full-jitter exponential: uniform(0, min(cap, base * 2**n)) before the
    n-th retry. The attempts and outage time come from Tuning (the one place defaults
    live); the defaults ride out a few minutes of HubSpot trouble, then pause the job.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # tries of one request, the first included
    max_outage_seconds: float = DEFAULT_MAX_OUTAGE
    base: float = 0.5
    cap: float = 60.0
    locked_wait: float = 2.0  # HubSpot: "Locks will last for 2 seconds"
    missing_resends: int = 2  # resends of inputs an answer did not mention
    # Isolating rejected inputs (bulkload.isolation): the split budget and what a
    # systematic cause is.
    split_share: float = DEFAULT_SPLIT_SHARE
    split_floor: int = DEFAULT_SPLIT_FLOOR
    systematic_after: int = SYSTEMATIC_AFTER
    systematic_share: float = SYSTEMATIC_SHARE

    @classmethod
    def of(cls, tuning: Tuning) -> RetryPolicy:
        return cls(max_attempts=tuning.max_attempts, max_outage_seconds=tuning.max_outage_seconds,
                   split_share=tuning.split_share)

    def ledger(self) -> IsolationLedger:
        return IsolationLedger(share=self.split_share, floor=self.split_floor, after=self.systematic_after,
                               systematic_share=self.systematic_share)


class SendHooks(Protocol):
    """What the pipeline learns of, and may veto, each HTTP request."""

    def before_request(self, kind: str) -> None:
        """Called before every request; may raise QuotaExhausted (--daily-budget)."""

    def after_response(self, kind: str, status: int | None, rate: RateLimitInfo | None) -> None:
        """Called after every request: the HTTP status (None: no response) and rate headers."""

    def on_retry(self, kind: str) -> None:
        """Called when a request is about to be repeated after a transient failure."""


class NoHooks:
    """The default SendHooks: nothing to enforce, nothing to count."""

    def before_request(self, kind: str) -> None:
        return None

    def after_response(self, kind: str, status: int | None, rate: RateLimitInfo | None) -> None:
        return None

    def on_retry(self, kind: str) -> None:
        return None


class UpsertApi(Protocol):
    """The one client method `send` uses (HubSpotClient provides it)."""

    def upsert_batch(self, object_type: str, inputs: Sequence[UpsertInput]) -> UpsertResponse: ...


class LinkApi(Protocol):
    """The client methods of the association step (HubSpotClient provides them)."""

    def batch_read(self, object_type: str, id_property: str, values: Sequence[str]) -> ReadAnswer: ...

    def associate(self, from_type: str, to_type: str, pairs: Sequence[Pair]) -> AssociateAnswer: ...


@dataclass
class LinkOutcome:
    """What became of a pack of pairs, and what it cost."""

    made: set[Pair] = field(default_factory=set)
    failures: dict[Pair, FailedRow] = field(default_factory=dict)
    requests: int = 0


@dataclass
class _Run:
    """The mutable tally of one send() call (a Sender is shared between threads)."""

    landed: dict[str, Landed] = field(default_factory=dict)
    failures: dict[str, FailedRow] = field(default_factory=dict)
    requests: int = 0
    splits: int = 0
    retries: int = 0
    rate_limited: int = 0
    status: int | None = None  # the first answer that was not transient: how HubSpot judged the batch
    # Answers that created records they could not tie to inputs: (their inputs, how many).
    unpaired: list[tuple[frozenset[str], int]] = field(default_factory=list)
    # When a request of this batch that may have been applied went unanswered (a 5xx, a
    # timeout): the records its resend calls "updated" may be ones it created.
    unanswered_at: datetime | None = None


# How far HubSpot's clock may be from ours when a record's createdAt is compared with the
# time this job sent the request that may have created it.
CLOCK_SKEW = timedelta(seconds=60)


def _created_since(landed: Landed, since: datetime) -> bool:
    """Whether the record was created after `since` (less the skew), by its createdAt."""
    if not landed.created_at:
        return False
    try:
        created = datetime.fromisoformat(landed.created_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created >= since - CLOCK_SKEW


def next_midnight_utc(now: datetime) -> datetime:
    """The first midnight UTC after `now`."""
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


class Sender:
    """Sends batches through one client under one limiter; safe to share between threads."""

    def __init__(
        self,
        client: UpsertApi,
        limiter: RateLimiter,
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        stop: threading.Event | None = None,
        hooks: SendHooks | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        notice: Callable[[str | None], None] = lambda wait: None,
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._policy = policy or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        # random.Random's methods are atomic under the GIL, so threads may share it.
        self._rng = rng or random.Random()
        self._stop = stop
        self._hooks: SendHooks = hooks or NoHooks()
        self._now = now
        self._notice = notice  # what a wait is for, shown by the progress display
        # What isolating rejected inputs has cost and shown in this run, across threads.
        self.isolation = self._policy.ledger()

    # --- any request ----------------------------------------------------------------

    def call(self, kind: str, request: Callable[[], Reply[T]]) -> T:
        """Run one read (`kind`: "schema", "read", ...) through the request loop."""
        reply = self._request(kind, request, _Run())
        return reply.value

    # --- a batch of upserts ------------------------------------------------------------

    def send(self, object_type: str, inputs: Sequence[UpsertInput]) -> BatchOutcome:
        """Upsert `inputs`; every input ends up once in landed or failures.

        Raises AuthError, QuotaExhausted, ApiUnavailable, Interrupted, RequestRejected or
        SystematicRejection; then nothing of the batch should be recorded.
        """
        started = self._clock()
        run = _Run()
        if inputs:
            self.isolation.check()
            group = list(inputs)
            known = self.isolation.refused_inputs(group)
            if known:
                # Values HubSpot refused earlier in this run: failed as it said, not sent.
                run.failures.update(known)
                group = [i for i in group if trace_id_of(i) not in known]
            if group:
                self._land(object_type, group, run, self._policy.missing_resends)
        self._credit_unpaired(run)
        order = [trace_id_of(i) for i in inputs]
        return BatchOutcome(
            landed=[run.landed[t] for t in order if t in run.landed],
            failures=[run.failures[t] for t in order if t in run.failures],
            requests=run.requests,
            splits=run.splits,
            retries=run.retries,
            rate_limited=run.rate_limited,
            http_status=run.status,
            elapsed=self._clock() - started,
        )

    def _land(self, object_type: str, group: list[UpsertInput], run: _Run, resends_left: int, depth: int = 0,
              *, split: bool = False) -> None:
        """Send `group`, `depth` bisections below its batch; `split`: this request is one
        half of a bisection (it counts against the split budget). The rest of a group re-sent
        after its answer named the bad inputs or values does not: each such request follows
        one that isolated at least one input, so they are never more than the failed rows."""
        if split:
            self.isolation.before_split("upsert")
        try:
            response = self._request("upsert", lambda: self._client.upsert_batch(object_type, group), run)
        except BatchRejected as rejected:
            run.status = run.status or rejected.status
            self._split(object_type, group, rejected, run, resends_left, depth)
            return
        run.status = run.status or response.http_status
        for landed in response.successes:
            if not landed.created and run.unanswered_at is not None and _created_since(landed, run.unanswered_at):
                # The unanswered request wrote it; this resend found it there ("updated").
                landed = landed._replace(created=True)
            run.landed[landed.trace_id] = landed
        if depth:
            self.isolation.cleared("upsert", len(response.successes))
        for failure in response.failures:
            if failure.trace_id is not None:
                run.failures[failure.trace_id] = failure
        if response.unpaired_created:
            run.unpaired.append((frozenset(response.missing), response.unpaired_created))
        if not response.missing:
            return
        missing = set(response.missing)
        unanswered = [i for i in group if trace_id_of(i) in missing]
        if response.unattributed and len(unanswered) > 1:
            if self._fail_refused(response.unattributed, unanswered, run):
                rest = [i for i in unanswered if trace_id_of(i) not in run.failures]
                if rest:
                    self._land(object_type, rest, run, resends_left, depth)
                return
            # Errors that name no input: halve the inputs they may belong to until each
            # error stands with its one input (read_upsert_answer pairs them then), as a
            # rejected batch is halved.
            run.splits += 1
            middle = len(unanswered) // 2
            self._land(object_type, unanswered[:middle], run, resends_left, depth + 1, split=True)
            self._land(object_type, unanswered[middle:], run, resends_left, depth + 1, split=True)
            return
        if resends_left > 0:
            log.info("resending %d inputs HubSpot's answer did not account for", len(unanswered))
            self._land(object_type, unanswered, run, resends_left - 1, depth)
            return
        for inp in unanswered:
            trace = trace_id_of(inp)
            if response.unattributed:  # alone, and still an error that names nothing: it is this one's
                run.failures[trace] = with_input(response.unattributed[0], inp)
                if depth:
                    self.isolation.isolated("upsert", run.failures[trace])
                continue
            run.failures[trace] = unknown_failure(
                trace,
                f"HubSpot's HTTP {response.http_status} answer never mentioned this input "
                f"({self._policy.missing_resends + 1} tries)",
                response.http_status,
            )

    def _split(self, object_type: str, group: list[UpsertInput], rejected: BatchRejected, run: _Run,
               resends_left: int, depth: int) -> None:
        """A rejected group: record the culprit if it stands alone, else narrow it down:
        by the inputs the answer names, else by the values it names, else by halving."""
        if len(group) == 1:
            inp = group[0]
            trace = trace_id_of(inp)
            failure = rejected.attributed.get(trace)
            if failure is None and rejected.failures:
                failure = with_input(rejected.failures[0], inp)
            run.failures[trace] = failure = failure or unknown_failure(
                trace, rejected.message, rejected.status, correlation_id=rejected.correlation_id
            )
            refused = refused_values(rejected.failures, group)
            if refused:
                self.isolation.refuse(refused)  # its value is at fault: later inputs with it fail unsent
            elif depth:
                self.isolation.isolated("upsert", failure)  # evidence of a cause; may stop the run
            return
        traces = {trace_id_of(i) for i in group}
        named = {
            t: f
            for t, f in rejected.attributed.items()
            if t in traces and f.error_type != ErrorType.DUPLICATE_ID_IN_SOURCE
        }
        run.splits += 1
        if named:
            # The body says which inputs are at fault: record them and resend the
            # rest at once, which is cheaper than bisecting towards them.
            run.failures.update(named)
            rest = [i for i in group if trace_id_of(i) not in named]
            if rest:
                self._land(object_type, rest, run, resends_left, depth)
            return
        if self._fail_refused(rejected.failures, group, run):
            # The body names the invalid value: the inputs carrying it are isolated by
            # their value; the rest goes again whole.
            rest = [i for i in group if trace_id_of(i) not in run.failures]
            if rest:
                self._land(object_type, rest, run, resends_left, depth)
            return
        # Left half first: should a group ever hold the same id twice, the later
        # row is written last and wins, as the source order says it should.
        middle = len(group) // 2
        self._land(object_type, group[:middle], run, resends_left, depth + 1, split=True)
        self._land(object_type, group[middle:], run, resends_left, depth + 1, split=True)

    def _fail_refused(self, failures: Sequence[FailedRow], group: list[UpsertInput], run: _Run) -> bool:
        """Fail the inputs of `group` that carry a value `failures` name as invalid, and
        remember the values for the rest of the run. False when they name none it carries."""
        refused = refused_values(failures, group)
        if not refused:
            return False
        self.isolation.refuse(refused)
        run.failures.update(fail_by_value(refused, group))
        return True

    @staticmethod
    def _credit_unpaired(run: _Run) -> None:
        """Records an answer created but could not tie to inputs were written again by a
        later, tied answer, which says "updated": they were created by this batch."""
        for traces, created in run.unpaired:
            later = [t for t in traces if t in run.landed and not run.landed[t].created]
            for trace in sorted(later, key=_trace_order)[:created]:
                run.landed[trace] = run.landed[trace]._replace(created=True)

    # --- the association step: lookups and associations -----------------------------

    def lookup(self, client: LinkApi, object_type: str, id_property: str, values: Sequence[str]) -> ReadAnswer:
        """Which of `values` name a record of `object_type`; values the answers never
        mention after a resend stay in `missing`."""
        answer = self._request("read", lambda: client.batch_read(object_type, id_property, values), _Run())
        if answer.missing:
            again = self._request("read", lambda: client.batch_read(object_type, id_property, answer.missing), _Run())
            return ReadAnswer({**answer.found, **again.found}, answer.not_found | again.not_found, again.missing,
                              again.http_status, again.rate)
        return answer

    def associate(self, client: LinkApi, from_type: str, to_type: str, pairs: Sequence[Pair]) -> LinkOutcome:
        """Associate `pairs` with HubSpot's default type; every pair ends made or failed.

        A batch HubSpot rejects whole, or answers with errors that name no pair, is split
        until each failure stands with its pair, as an upsert batch is, under the same
        split budget; a cause every pair shares stops the run (SystematicRejection), the
        pairs not yet made staying pending."""
        out = LinkOutcome()
        self.isolation.check()
        self._link(client, from_type, to_type, list(pairs), out, self._policy.missing_resends)
        return out

    def _link(self, client: LinkApi, from_type: str, to_type: str, pairs: list[Pair], out: LinkOutcome,
              resends_left: int, depth: int = 0, *, split: bool = False) -> None:
        if split:
            self.isolation.before_split("associate")
        run = _Run()
        try:
            answer = self._request("associate", lambda: client.associate(from_type, to_type, pairs), run)
        except BatchRejected as rejected:
            out.requests += run.requests
            if len(pairs) == 1:
                out.failures[pairs[0]] = failure = rejected.failures[0] if rejected.failures else unknown_failure(
                    None, rejected.message, rejected.status)
                if depth:
                    self.isolation.isolated("associate", failure)
                return
            middle = len(pairs) // 2
            self._link(client, from_type, to_type, pairs[:middle], out, resends_left, depth + 1, split=True)
            self._link(client, from_type, to_type, pairs[middle:], out, resends_left, depth + 1, split=True)
            return
        out.requests += run.requests
        out.made |= answer.made
        if depth:
            self.isolation.cleared("associate", len(answer.made))
        out.failures.update(answer.failures)
        rest = answer.missing
        if not rest:
            return
        if answer.unattributed and len(rest) > 1:
            middle = len(rest) // 2
            self._link(client, from_type, to_type, rest[:middle], out, resends_left, depth + 1, split=True)
            self._link(client, from_type, to_type, rest[middle:], out, resends_left, depth + 1, split=True)
        elif answer.unattributed:
            out.failures[rest[0]] = answer.unattributed[0]
            if depth:
                self.isolation.isolated("associate", answer.unattributed[0])
        elif resends_left > 0:
            self._link(client, from_type, to_type, rest, out, resends_left - 1, depth)
        else:
            for pair in rest:
                out.failures[pair] = unknown_failure(None, "HubSpot's answer never mentioned this association",
                                                     answer.http_status)

    # --- one request, through transient failures ------------------------------------

    def _request(self, kind: str, send: Callable[[], T], run: _Run) -> T:
        policy = self._policy
        limiter = self._limiter
        attempt = 0
        outage_started: float | None = None
        while True:
            permit = self._acquire()
            try:
                self._hooks.before_request(kind)
            except BaseException:
                limiter.release(permit)  # refused (--daily-budget): never sent
                raise
            run.requests += 1
            self.isolation.sent()
            attempt += 1
            limiter.sent(permit)
            sent_at = self._now()
            try:
                answer = send()
            except RateLimited as exc:
                if exc.daily:
                    # Whether the ten-second window counted it is unknown.
                    limiter.observe(permit, None)
                else:
                    # The limiter holds every sender until the window frees; the
                    # jittered backoff below also spreads the threads out again.
                    limiter.on_rate_limited(permit, exc.retry_after, exc.rate)
                self._after(kind, 429, exc.rate)
                run.rate_limited += 1
                if exc.daily:
                    raise QuotaExhausted(
                        f"HubSpot's daily API limit is spent: {exc.message}",
                        resume_after=self._daily_reset(exc.retry_after),
                    ) from None
                delay = self._backoff(attempt)
                reason = str(exc)
            except TransientError as exc:
                limiter.observe(permit, exc.rate)  # rate is None when no answer came
                self._after(kind, exc.status, exc.rate)
                if run.unanswered_at is None:
                    run.unanswered_at = sent_at
                delay = self._backoff(attempt)
                if exc.status == 423:
                    delay = max(delay, policy.locked_wait)
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                reason = str(exc)
            except BatchRejected as exc:
                limiter.observe(permit, exc.rate)
                self._after(kind, exc.status, exc.rate)
                raise
            except (AuthError, RequestRejected) as exc:
                limiter.observe(permit, None)
                self._after(kind, exc.status, None)
                raise
            except BaseException:
                # Not an answer we know (a bug, an interrupt): the request may
                # still be in HubSpot's window, which is what observe(None) keeps.
                limiter.observe(permit, None)
                raise
            else:
                rate = getattr(answer, "rate", None)
                limiter.observe(permit, rate)
                self._after(kind, getattr(answer, "http_status", None) or getattr(answer, "status", None), rate)
                return answer

            now = self._clock()
            if outage_started is None:
                outage_started = now
            outage = now - outage_started
            if attempt >= policy.max_attempts or outage + delay > policy.max_outage_seconds:
                # A long wait HubSpot asked for (477 "Migration in progress" says
                # Retry-After, up to hours) tells the resume when to come back.
                raise ApiUnavailable(
                    f"HubSpot kept failing for {outage:.0f}s over {attempt} attempts; last: {reason}",
                    resume_after=self._now() + timedelta(seconds=delay) if delay > 60 else None,
                )
            log.info("retrying in %.2fs after attempt %d: %s", delay, attempt, reason)
            run.retries += 1
            self._hooks.on_retry(kind)
            self._notice(f"backing off {delay:.0f} s after {_short(reason)}")
            self._pause(delay)
            self._notice(None)

    def pace(self) -> str:
        """Requests sent in the last window against the limit, for the progress display."""
        limiter = self._limiter
        return f"{limiter.sent_lately()}/{limiter.max_requests} per {limiter.interval:g} s"

    def _acquire(self) -> Permit:
        def waiting(seconds: float | None) -> None:
            # Blocked after a 429, or the window is held by others: say so, or the bar freezes.
            self._notice(None if seconds is None else f"waiting {seconds:.0f} s for the rate limit")

        return self._limiter.acquire(self._stop, waiting=waiting)

    def _after(self, kind: str, status: int | None, rate: RateLimitInfo | None) -> None:
        self._hooks.after_response(kind, status, rate)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform over [0, min(cap, base * 2**(attempt-1))]."""
        ceiling = min(self._policy.cap, self._policy.base * 2 ** min(attempt - 1, 32))
        return self._rng.uniform(0.0, ceiling)

    def _pause(self, delay: float) -> None:
        """Sleep `delay` seconds in short steps, raising Interrupted once `stop` is set."""
        remaining = delay
        while True:
            if self._stop is not None and self._stop.is_set():
                raise Interrupted("stopped while waiting to retry a request")
            if remaining <= 0:
                return
            step = min(remaining, _STOP_POLL) if self._stop is not None else remaining
            self._sleep(step)
            remaining -= step

    def _daily_reset(self, retry_after: float | None) -> datetime:
        now = self._now()
        if retry_after is not None:
            return now + timedelta(seconds=retry_after)
        # HubSpot resets the daily limit at midnight in the account's time zone,
        # which the API does not tell us. Midnight UTC may be hours early or late;
        # resuming early costs one more daily 429, resuming late only waiting.
        return next_midnight_utc(now)


def _short(reason: str) -> str:
    """`transient HubSpot failure (HTTP 502): ...` -> `HTTP 502`, for a one-line display."""
    start, end = reason.find("("), reason.find(")")
    return reason[start + 1 : end] if 0 <= start < end else reason[:40]


def _trace_order(trace: str) -> tuple[int, str]:
    # Trace ids are row numbers: order them as rows, and anything else after.
    return (int(trace), "") if trace.isdigit() else (1 << 62, trace)

