"""The run loop, the only module that composes the stages:
source -> mapping -> chunker -> sender -> journal.

`run()` serves `load`, `resume` and `retry` alike; what differs is passed in as a Stage:
the batches to send (read from the source, or from the journal's failed rows, or from a
corrected file) and how an outcome is journaled (a batch of the source, or a replay).
Around it, once: the daily budget, the pre-flight read of the object's properties
through the sender's request loop, the claim-send-record turns under a fixed number of
sender threads, the stop and its grace period, and the job's state at the end.

One thread (the caller's) reads, maps, chunks and writes the journal; the sender threads
only talk HTTP. They are daemon threads: a request stalled past the grace period is
abandoned (its batch stays claimed and is sent again on resume), and the process can
always exit.
"""

from __future__ import annotations

import contextlib
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import httpx

from bulkload.associations import AssociationStep, LinkTask, check_targets
from bulkload.budget import UsageMeter
from bulkload.config import Connection, JobConfig, Tuning
from bulkload.errors import (
    EXIT_RESUMABLE,
    AuthError,
    BulkloadError,
    InputError,
    Interrupted,
    JournalWriteFailed,
    QuotaExhausted,
    RequestRefused,
    StopResumable,
)
from bulkload.hubspot.client import HubSpotClient
from bulkload.hubspot.exceptions import RequestRejected
from bulkload.hubspot.paths import ApiPaths, ApiVersion
from bulkload.hubspot.ratelimit import RateLimiter
from bulkload.journal import BatchResult, Journal, LinkResult, Usage
from bulkload.mapping import ColumnMap, Schema, row_data
from bulkload.models import FINISHED_STATES, BatchPlan, FailedRow, JobState
from bulkload.portal import read_portal, read_properties
from bulkload.sender import RetryPolicy, Sender
from bulkload.status import resume_command

GRACE_SECONDS = 10.0  # how long a graceful stop waits for in-flight requests
# Batches with nothing to send (only superseded or failed rows) journaled in one turn at most:
# a long run of them must not pile up in memory or in one transaction.
MAX_CLOSED_PER_TURN = 8
_POLL = 0.25


class Progress(Protocol):
    def start(self, total: int, done: int) -> None: ...
    def advance(self, rows: int, failed: int = 0) -> None: ...
    def note(self, wait: str | None = None, pace: str | None = None) -> None: ...
    def pace(self, pace: Callable[[], str]) -> None: ...  # asked only where it is shown
    def close(self) -> None: ...


class NoProgress:
    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, rows: int, failed: int = 0) -> None:
        pass

    def note(self, wait: str | None = None, pace: str | None = None) -> None:
        pass

    def pace(self, pace: Callable[[], str]) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Runtime:
    """Side effects a run needs, injectable so tests control time, faults and stops."""

    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    transport: httpx.BaseTransport | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Progress = field(default_factory=NoProgress)
    checkpoint: Callable[[str], None] | None = None
    grace_seconds: float = GRACE_SECONDS
    stop_reason: list[str] = field(default_factory=list)  # what set `stop` (the CLI's signal handler)

    def interrupted(self) -> Interrupted:
        what = self.stop_reason[-1] if self.stop_reason else "a stop request"
        return Interrupted(f"interrupted by {what}")


class Stage(Protocol):
    """What differs between load/resume (the source) and retry (failed rows)."""

    command: str
    column_map: ColumnMap  # which column feeds which property

    def batches(self, schema: Schema) -> Iterator[BatchPlan]:
        """The batches to send, in order, planned once the schema is known. It checks the
        schema first and raises (MappingError: exit 2) before returning the iterator."""

    links: AssociationStep | None  # the association step, when the job associates

    def record(self, journal: Journal, run_no: int, outcomes: list[BatchResult], claims: list[BatchPlan],
               closed: list[BatchPlan], usage: Usage, links: list[LinkResult]) -> None:
        """Write one turn to the journal, in one transaction."""

    def progress_total(self, journal: Journal) -> tuple[int, int]:
        """(rows in all, rows already done) for the progress bar."""


@dataclass(frozen=True)
class RunResult:
    job_id: str
    state: str
    exit_code: int
    counts: dict[str, Any]
    journal: Any  # Path
    rows_done: int = 0  # rows this run finished


# ---- the pre-flight ----------------------------------------------------------------------------


# ---- the sender threads --------------------------------------------------------------------------


Work = BatchPlan | LinkTask


class _Senders:
    """N daemon threads that send batches and association requests; results come back on a queue."""

    def __init__(self, n: int, send: Callable[[Work], Any]) -> None:
        self._todo: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[tuple[Work, Any, BaseException | None]] = queue.SimpleQueue()
        self._n = n
        for i in range(n):
            threading.Thread(target=self._work, args=(send,), name=f"bulkload-send-{i}", daemon=True).start()

    def _work(self, send: Callable[[Work], Any]) -> None:
        while (item := self._todo.get()) is not None:
            try:
                self.done.put((item, send(item), None))
            except BaseException as exc:  # handed to the run loop, which decides
                self.done.put((item, None, exc))

    def submit(self, item: Work) -> None:
        self._todo.put(item)

    def wait(self, timeout: float) -> list[tuple[Work, Any, BaseException | None]]:
        out = []
        try:
            out.append(self.done.get(timeout=timeout))
            while True:
                out.append(self.done.get_nowait())
        except queue.Empty:
            return out

    def close(self) -> None:
        for _ in range(self._n):
            self._todo.put(None)


def _place(plan: BatchPlan, failures: list[FailedRow]) -> list[FailedRow]:
    """Tie each failure to its source row (trace ids are row numbers)."""
    if not failures:
        return []
    by_trace = {inp["objectWriteTraceId"]: k for k, inp in enumerate(plan.inputs)}
    out = []
    for f in failures:
        k = by_trace.get(f.trace_id or "")
        if k is None:
            continue
        inp = plan.inputs[k]
        table, index = plan.refs[k]
        out.append(replace(f, row_number=int(inp["objectWriteTraceId"]), line_number=plan.input_lines[k],
                           id_value=inp["id"], batch_no=None if plan.replay else plan.batch_no,
                           row_data=row_data(table, index)))
    return out


def _turn(stage: Stage, journal: Journal, run_no: int, outcomes: list[BatchResult], claims: list[BatchPlan],
          closed: list[BatchPlan], meter: UsageMeter, wall: float, links: list[LinkResult]) -> None:
    calls, limited, retries, rate = meter.take()
    usage = Usage(calls, limited, retries, wall, rate, meter.take_server_errors())
    try:
        stage.record(journal, run_no, outcomes, claims, closed, usage, links)
    except sqlite3.Error as e:
        # A full disk or an I/O error: the transaction rolled back, what the journal holds
        # is consistent, and a resume re-sends what was not recorded.
        raise JournalWriteFailed(f"cannot write the journal {journal.path}: {e} (is the disk full?)") from None


def _send_all(stage: Stage, journal: Journal, run_no: int, batches: Iterator[BatchPlan], sender: Sender,
              client: HubSpotClient, meter: UsageMeter, config: JobConfig, tuning: Tuning, rt: Runtime) -> int:
    """Claim, send and record every batch, then the association requests their rows need;
    stop cleanly on a stop request or an error.

    Each turn writes one journal transaction: the outcomes that came back and the claims
    of the batches about to be sent. A claim is committed before its batch is handed to a
    sender, so a crash never loses track of a sent batch. Association work needs no claim:
    its pairs are pending in the journal until their result is recorded.
    """
    step = stage.links

    def send(item: Work) -> Any:
        if isinstance(item, LinkTask):
            return AssociationStep.run(item, sender, client, config.object_type)
        return sender.send(config.object_type, item.inputs)

    senders = _Senders(tuning.concurrency, send)
    inflight = upserts_inflight = 0
    stop_error: BaseException | None = None
    exhausted = False
    grace_deadline: float | None = None
    outcomes: list[BatchResult] = []
    links: list[LinkResult] = []
    returned: list[LinkTask] = []  # back from a sender, their results not yet in the journal
    rows_done = 0
    try:
        while True:
            claims: list[BatchPlan] = []
            closed: list[BatchPlan] = []
            tasks: list[LinkTask] = []
            stopping = stop_error is not None or rt.stop.is_set()
            if step is not None and not stopping:
                # Full packs go first (so pending pairs stay few); the rest once the upserts are done.
                tasks = step.tasks(final=exhausted and not upserts_inflight and not outcomes,
                                   room=tuning.concurrency - inflight)
            while not stopping and not exhausted and inflight + len(claims) + len(tasks) < tuning.concurrency \
                    and len(closed) < MAX_CLOSED_PER_TURN:
                try:
                    meter.check()
                    plan = next(batches, None)
                except BulkloadError as e:  # a spent budget; the file changed under us
                    stop_error = e
                    rt.progress.note("paused: daily budget spent" if isinstance(e, QuotaExhausted) else "stopping")
                    break
                if plan is None:
                    exhausted = True
                    break
                (claims if plan.inputs else closed).append(plan)
            if step is not None and not stopping and exhausted and not tasks and not claims:
                # The read just ended (a retry with only associations to redo ends at once):
                # what is left may go now. Final once every row's outcome is in the journal
                # (so its pairs are too).
                tasks = step.tasks(final=not upserts_inflight and not outcomes, room=tuning.concurrency - inflight)
            turn, outcomes = outcomes, []  # taken first: a crash inside the write must not write them twice
            turn_links, links = links, []
            _turn(stage, journal, run_no, turn, claims, closed, meter, rt.wall(), turn_links)
            if step is not None:
                # Only now, with their results written, may their values and pairs be planned
                # again: planned earlier, a value in a result not yet recorded is looked up twice.
                for task in returned:
                    step.finished(task)
                returned.clear()
            for plan, failed in [*((r.plan, len(r.failures)) for r in turn), *((p, 0) for p in closed)]:
                n = plan.n_rows if not plan.replay else len(plan.inputs) + len(plan.failures)
                rows_done += n
                rt.progress.advance(n, failed + len(plan.failures))
            rt.progress.pace(sender.pace)
            items: list[Work] = [*claims, *tasks]
            for item in items:
                senders.submit(item)
                inflight += 1
                upserts_inflight += isinstance(item, BatchPlan)
            # Done when nothing is out, nothing came back to record, and nothing is left to
            # plan: one more turn after a write, whose rows may have pairs to associate.
            if not inflight and not links and (stopping or (exhausted and not tasks
                                                            and not (turn or turn_links or closed))):
                break
            if (stop_error is not None or rt.stop.is_set()) and grace_deadline is None:
                grace_deadline = rt.clock() + rt.grace_seconds
            if grace_deadline is not None and rt.clock() >= grace_deadline:
                break  # in-flight batches stay claimed: resume re-sends them
            for item, result, exc in senders.wait(_POLL if inflight else 0.0):
                inflight -= 1
                if isinstance(item, LinkTask):
                    returned.append(item)
                else:
                    upserts_inflight -= 1
                if exc is not None:
                    if isinstance(exc, Interrupted) and rt.stop.is_set():
                        exc = rt.interrupted()  # the stop, not where a sender happened to notice it
                    stop_error = _first_stop(stop_error, exc)
                    if isinstance(exc, AuthError | RequestRejected):
                        grace_deadline = rt.clock()  # every batch would get the same answer: stop at once
                    continue
                if isinstance(item, LinkTask):
                    links.append(result)
                else:
                    outcomes.append(BatchResult(item, result, _place(item, result.failures)))
    finally:
        rt.stop.set()  # tells senders still backing off to give up
        senders.close()
        # Outcomes already back (e.g. when Ctrl-C came during the wait) are real: keep them.
        with contextlib.suppress(JournalWriteFailed):
            _turn(stage, journal, run_no, outcomes, [], [], meter, rt.wall(), links)
    if stop_error is not None:
        raise stop_error
    if not exhausted or inflight:  # stopped, with batches not yet planned or still unanswered
        raise rt.interrupted()
    return rows_done


def _first_stop(current: BaseException | None, new: BaseException) -> BaseException:
    """The error that decides how the run ends: a refused token or request wins."""
    if current is None:
        return new
    if isinstance(new, AuthError | RequestRejected) and not isinstance(current, AuthError | RequestRejected):
        return new
    return current


# ---- one run --------------------------------------------------------------------------------------


def make_client(conn: Connection, tuning: Tuning, rt: Runtime, paths: ApiPaths | None = None) -> HubSpotClient:
    return HubSpotClient(conn.base_url, conn.token, transport=rt.transport, timeout=tuning.timeout,
                         max_connections=max(4, tuning.concurrency * 2), paths=paths)


def make_limiter(tuning: Tuning, rt: Runtime) -> RateLimiter:
    if tuning.rate is not None:
        return RateLimiter(tuning.rate.requests, tuning.rate.seconds, clock=rt.clock, sleep=rt.sleep, fixed=True)
    return RateLimiter(clock=rt.clock, sleep=rt.sleep)


def resume_after_text(e: BaseException) -> str | None:
    ra = getattr(e, "resume_after", None)
    if isinstance(ra, datetime):
        return ra.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def exit_code_of(counts: dict[str, Any]) -> int:
    """The exit code a job's counts earn, computed once: 75 while rows or associations
    are pending (a retry of a paused job: resumable, not finished), else 1 with failed
    rows or failed associations, else 0."""
    rows = counts["rows"]
    links = counts.get("associations") or {}
    if rows["pending"] or links.get("pending"):
        return EXIT_RESUMABLE
    return 1 if rows["failed"] or links.get("failed") else 0


def run(journal: Journal, stage: Stage, *, config: JobConfig, conn: Connection, tuning: Tuning,
        choices: dict[str, Any], rt: Runtime) -> RunResult:
    """Pre-flight, send everything the stage plans, and settle the job's state."""
    run_no = journal.start_run(stage.command, choices, tuning.to_dict(), takes_over=stage.command != "retry")
    outcome = "error"
    rows_done = 0
    try:
        meter = UsageMeter(
            tuning.daily_budget, wall=rt.wall,
            usage_since=lambda since: journal.usage_since(since)[0],
            oldest_minute_since=journal.oldest_usage_minute_since,
        )
        meter.check()  # a spent --daily-budget pauses before even the properties read is sent
        limiter = make_limiter(tuning, rt)
        with make_client(conn, tuning, rt, ApiPaths(cast(ApiVersion, config.api_version))) as client:
            sender = Sender(client, limiter, policy=RetryPolicy.of(tuning), clock=rt.clock, sleep=rt.sleep,
                            rng=rt.rng, stop=rt.stop, hooks=meter, notice=rt.progress.note)
            try:
                schema = read_portal(sender, client, journal, config.object_type,
                                     [p for _, p in stage.column_map.property_pairs])
            finally:
                _turn(stage, journal, run_no, [], [], [], meter, rt.wall(), [])
            client.set_property_types(schema.types())
            if config.associations:
                try:
                    check_targets(config.associations, lambda obj: read_properties(sender, client, obj))
                finally:
                    _turn(stage, journal, run_no, [], [], [], meter, rt.wall(), [])
            batches = stage.batches(schema)
            total, done = stage.progress_total(journal)
            rt.progress.start(total, done)
            try:
                rows_done = _send_all(stage, journal, run_no, batches, sender, client, meter, config, tuning, rt)
            finally:
                rt.progress.close()
        counts = _settle(journal, stage)
        outcome = journal.job().state
        return RunResult(journal.job_id, outcome, exit_code_of(counts), counts, journal.path, rows_done)
    except RequestRejected as e:
        outcome = "stopped: request refused"
        if journal.counts()["rows"]["upserted"] == 0:
            refused = RequestRefused(f"{e}; nothing was written")
            _pause(journal, refused)
            raise refused from None
        stop = StopResumable(f"{e}; fix it, then resume")
        _pause(journal, stop)
        raise stop from None
    except (StopResumable, AuthError) as e:
        outcome = f"stopped: {type(e).__name__}"
        _pause(journal, e)
        raise
    except InputError as e:
        outcome = f"refused: {type(e).__name__}"
        _pause(journal, e)
        raise
    except KeyboardInterrupt:
        outcome = "stopped: Interrupted"
        rt.stop_reason.append("Ctrl-C")
        stop = rt.interrupted()
        _pause(journal, stop)
        raise stop from None
    except Exception as e:  # a bug: the journal is consistent, so the job stays resumable
        outcome = f"stopped: {type(e).__name__}"
        _pause(journal, StopResumable(f"stopped by {type(e).__name__}: {e}"))
        raise
    finally:
        with contextlib.suppress(sqlite3.Error):
            journal.finish_run(run_no, outcome)


def _pause(journal: Journal, e: BaseException) -> None:
    """Pause the job with the error's reason, and tell the error how to resume it."""
    with contextlib.suppress(sqlite3.Error):
        journal.pause(str(e) or type(e).__name__, resume_after_text(e))
    if isinstance(e, BulkloadError):
        e.journal = journal.path
        if e.hint is None and not isinstance(e, InputError):
            e.hint = resume_command(journal)


def _settle(journal: Journal, stage: Stage) -> dict[str, Any]:
    """The job's state follows its rows once nothing is left to send. A retry leaves a job
    that was paused paused (its rows are still pending)."""
    counts = journal.counts()
    rows = counts["rows"]
    if stage.command == "retry" and journal.job().state not in FINISHED_STATES:
        return counts
    if rows["pending"] > 0:
        raise StopResumable(f"{rows['pending']:,} rows are still pending; resume sends them")
    if counts["associations"]["pending"] > 0:
        raise StopResumable(f"{counts['associations']['pending']:,} associations are still pending; resume makes them")
    else:
        # Failed associations count: every row landed, yet the job exits 1 and says why.
        failed = rows["failed"] or counts["associations"]["failed"]
        journal.finish_job(JobState.COMPLETED_WITH_ERRORS if failed else JobState.COMPLETED)
    return counts


__all__ = ["GRACE_SECONDS", "NoProgress", "Progress", "QuotaExhausted", "RunResult", "Runtime", "Stage", "run"]
