"""The run loop, the only module that composes the stages:
source -> mapping -> chunker -> sender -> journal.

One thread (the caller's) reads, maps, chunks and writes the journal; N sender
threads only talk HTTP. So the journal has a single writer and every transition
is one transaction on it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
import pyarrow.compute as pc

from bulkload.chunker import Chunker, PlannedBatch
from bulkload.config import Connection, JobConfig, Tuning
from bulkload.errors import (
    ApiUnavailable,
    AuthError,
    BulkloadError,
    Interrupted,
    MappingError,
    QuotaExhausted,
    SourceError,
    StopResumable,
)
from bulkload.hubspot.client import HubSpotClient
from bulkload.hubspot.errors import InputFailure
from bulkload.hubspot.exceptions import RateLimited, TransientError
from bulkload.hubspot.ratelimit import RateLimiter
from bulkload.journal import BatchResult, ErrorRecord, JobState, Journal
from bulkload.mapping import ColumnMap, Schema, id_strings, map_chunk
from bulkload.sender import BatchOutcome, RetryPolicy, Sender, next_midnight_utc
from bulkload.source import Source, SourceChunk, StartAt

SEND_CHUNK_ROWS = 16_384  # small chunks keep the journal thread responsive between mappings
GRACE_SECONDS = 10.0  # how long a graceful stop waits for in-flight requests
USAGE_REFRESH_SECONDS = 30.0


class Progress(Protocol):
    def start(self, total: int, done: int) -> None: ...
    def advance(self, rows: int) -> None: ...
    def close(self) -> None: ...


class NoProgress:
    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, rows: int) -> None:
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


# ---- pass 1: the scan --------------------------------------------------------------------


# A fixed-size bit set over the ids' hashes: its size, not the file's, bounds the
# scan's memory. A set bit seen again means "maybe repeated": the id goes to the
# journal with its row. A false alarm (two ids sharing a bit) is harmless: an id
# seen once has that one row as its "last" row, so it is sent as usual.
DUP_BITS = 1 << 27  # 16 MiB; ~0.75 % false alarms at 1M ids
DUP_FLUSH = 50_000


def scan_source(journal: Journal, source: Source, column_map: ColumnMap) -> int:
    """Count the rows and find repeated ids, with memory that does not grow with the file.

    Returns the number of rows. Every problem that makes the file unusable
    surfaces here, before any request is sent.
    """
    journal.reset_scan()
    bits = bytearray(DUP_BITS // 8)
    mask = DUP_BITS - 1
    maybe_repeated: dict[str, int] = {}
    total = 0
    with_id = 0
    malformed = 0
    first_malformed = ""
    for chunk in source.chunks([column_map.id_column], rows_per_chunk=SEND_CHUNK_ROWS):
        ids = id_strings(chunk.table.column(column_map.id_column))
        rows = chunk.row_numbers
        if len(rows):
            total = max(total, int(rows[-1].as_py()))
        if chunk.malformed:
            total = max(total, max(m.row_number for m in chunk.malformed))
            if not malformed:
                m = chunk.malformed[0]
                first_malformed = f"line {m.line_number}: {m.message}"
            malformed += len(chunk.malformed)
        present = pc.and_kleene(pc.is_valid(ids), pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(ids)), 0))
        present = pc.fill_null(present, False)
        keep_rows = pc.filter(rows, present).to_pylist()
        keep_ids = pc.filter(ids, present).to_pylist()
        with_id += len(keep_rows)
        for row, id_value in zip(keep_rows, keep_ids, strict=True):
            h = hash(id_value) & mask
            bit = 1 << (h & 7)
            if bits[h >> 3] & bit:
                maybe_repeated[id_value] = row
            else:
                bits[h >> 3] |= bit
        if len(maybe_repeated) >= DUP_FLUSH:
            journal.add_dup_ids(maybe_repeated)
            maybe_repeated = {}
    if total == 0:
        raise SourceError(f"{source.path.name}: no data rows (the file has a header only)")
    if malformed == total:
        raise SourceError(f"{source.path.name}: every row is malformed (first, {first_malformed})")
    if with_id == 0:
        raise SourceError(f"{source.path.name}: every value of the id column {column_map.id_column!r} is empty")
    journal.add_dup_ids(maybe_repeated)
    journal.complete_scan(total)
    return total


# ---- pre-flight: the object's properties -------------------------------------------------


def fetch_schema(
    client: HubSpotClient, limiter: RateLimiter, config: JobConfig, rt: Runtime, meter: UsageMeter | None = None
) -> Schema:
    """Read the object's properties: types for conversion, and a check of idProperty and mapping.

    A token without the schema-read scope (403) falls back to known types; the
    upsert itself then says what is wrong. Each read is an API call like any
    other: it goes through the limiter and counts against the daily budget.
    """
    last: Exception | None = None
    for attempt in range(5):
        limiter.acquire()
        status: int | None = None
        if meter is not None:
            meter.before_request()
        try:
            items = client.list_properties(config.object_type)
            status = 200
            return Schema.from_api_properties(items)
        except AuthError as e:
            status = e.status
            if e.status == 403:
                return Schema.fallback()
            raise
        except RateLimited as e:
            status = 429
            if e.daily:
                # Waiting out the ten-second window cannot help: pause until the quota resets.
                raise QuotaExhausted(
                    f"HubSpot's daily API limit is spent: {e.message}",
                    resume_after=(
                        utc_in(e.retry_after) if e.retry_after is not None else next_midnight_utc(datetime.now(UTC))
                    ),
                ) from None
            last = e
            limiter.on_rate_limited(e.retry_after)
        except TransientError as e:
            last = e
            rt.sleep(min(30.0, 0.5 * 2**attempt) * rt.rng.random())
        except BulkloadError:
            return Schema.fallback()
        finally:
            if meter is not None:
                meter.after_response(status, None)
    raise ApiUnavailable(f"cannot read the {config.object_type} properties from HubSpot: {last}")


def check_id_property(schema: Schema, config: JobConfig) -> None:
    if not schema.from_api:
        return
    info = schema.properties.get(config.id_property)
    if info is None:
        raise MappingError(f"the id property {config.id_property!r} does not exist on {config.object_type}")
    if not info.has_unique_value:
        raise MappingError(
            f"the id property {config.id_property!r} is not a unique-value property (hasUniqueValue=false); "
            "HubSpot upserts only by unique properties"
        )


# ---- the send loop -----------------------------------------------------------------------


class UsageMeter:
    """Counts API calls for the journal and enforces --daily-budget (a rolling 24 h)."""

    def __init__(self, journal: Journal, budget: int | None, wall: Callable[[], float]) -> None:
        self.journal = journal
        self.budget = budget
        self.wall = wall
        self._lock = threading.Lock()
        self._calls = 0
        self._limited = 0
        self._last_rate: dict[str, Any] | None = None
        self._refresh_at = 0.0
        self._base = 0
        self._oldest: int | None = None

    def _refresh(self) -> None:
        now = self.wall()
        if now >= self._refresh_at:
            self._base = self.journal.usage_since(now - 86_400)[0]
            self._oldest = self.journal.oldest_usage_minute_since(now - 86_400)
            self._refresh_at = now + USAGE_REFRESH_SECONDS

    def check(self) -> None:
        """Raise QuotaExhausted when the budget is spent. Main thread (touches the journal)."""
        if self.budget is None:
            return
        self._refresh()
        with self._lock:
            used = self._base + self._calls
        if used >= self.budget:
            raise self.exhausted()

    def exhausted(self) -> QuotaExhausted:
        """The pause, with when the rolling 24 hours free the oldest calls again."""
        now = self.wall()
        oldest = self._oldest if self._oldest is not None else int(now // 60)
        at = datetime.fromtimestamp((oldest + 1) * 60 + 86_400, UTC)
        return QuotaExhausted(
            f"the daily budget of {self.budget:,} API calls is spent; calls free up from "
            f"{at:%Y-%m-%d %H:%M} UTC",
            resume_after=at,
        )

    # SendHooks, called from sender threads.
    def before_request(self) -> None:
        if self.budget is None:
            return
        with self._lock:
            spent = self._base + self._calls >= self.budget
            if not spent:
                self._calls += 1  # counted before sending: a lost response still cost a call
        if spent:
            raise self.exhausted()

    def after_response(self, status: int | None, rate: Any) -> None:
        with self._lock:
            if self.budget is None:
                self._calls += 1
            if status == 429:
                self._limited += 1
            if rate is not None:
                self._last_rate = {
                    k: getattr(rate, k, None) for k in ("max", "remaining", "interval_ms", "daily", "daily_remaining")
                }

    def take(self) -> tuple[int, int, dict[str, Any] | None]:
        """The calls and 429s counted since the last take, and the latest rate headers."""
        with self._lock:
            calls, limited, rate = self._calls, self._limited, self._last_rate
            self._calls = self._limited = 0
            self._base += calls
            self._last_rate = None
        return calls, limited, rate

    def flush(self, retries: int = 0) -> None:
        """Move the counted calls into the journal in a transaction of their own."""
        calls, limited, rate = self.take()
        self.journal.commit(usage=(calls, limited, retries, self.wall()), last_rate=rate)


def _trim(chunk: SourceChunk, after_row: int) -> SourceChunk | None:
    """Drop the rows a resume has already done, without mapping them."""
    if after_row <= 0:
        return chunk
    rows = chunk.row_numbers
    n = len(rows)
    malformed = tuple(m for m in chunk.malformed if m.row_number > after_row)
    k = int(pc.sum(pc.less_equal(rows, after_row)).as_py() or 0) if n else 0  # rows ascend
    if k == n and not malformed:
        return None
    if k == 0 and len(malformed) == len(chunk.malformed):
        return chunk
    return SourceChunk(
        table=chunk.table.slice(k),
        row_numbers=rows.slice(k),
        line_numbers=chunk.line_numbers.slice(k) if chunk.line_numbers is not None else None,
        malformed=malformed,
    )


def _failure_record(batch: PlannedBatch, f: InputFailure, id_by_trace: dict[str, str]) -> ErrorRecord:
    trace = f.trace_id or ""
    return ErrorRecord.from_hubspot(
        f, row_number=int(trace), line_number=batch.line_for(trace), id_value=id_by_trace.get(trace),
        batch_no=batch.batch_no, row_data=batch.row_data_for(trace),
    )


def outcome_to_result(batch: PlannedBatch, outcome: BatchOutcome) -> BatchResult:
    errors: list[ErrorRecord] = []
    if outcome.failures:
        id_by_trace = {i["objectWriteTraceId"]: i["id"] for i in batch.inputs}
        errors = [_failure_record(batch, f, id_by_trace) for f in outcome.failures if f.trace_id in id_by_trace]
    created = sum([s.created for s in outcome.successes])
    return BatchResult(
        created=created,
        updated=len(outcome.successes) - created,
        errors=errors,
        requests=outcome.requests,
        splits=outcome.splits,
        retries=outcome.retries,
        rate_limited=outcome.rate_limited,
        http_status=outcome.http_status,
        duration_ms=int(outcome.elapsed * 1000),
    )


EMPTY_RESULT = BatchResult(0, 0, (), 0, 0, 0, 0, None, 0)


def plan_batches(journal: Journal, source: Source, column_map: ColumnMap, schema: Schema,
                 config: JobConfig) -> tuple[Iterator[PlannedBatch], int]:
    """The batches still to send, in order; and the rows already finished (skipped unread)."""
    prefix_no, prefix_row = journal.done_prefix()
    known = [kb for kb in journal.known_batches() if kb.batch_no > prefix_no]
    chunker = Chunker(
        batch_size=config.batch_size,
        id_property=config.id_property,
        next_batch_no=prefix_no + 1,
        known=known,
        dup_ids=journal.dup_ids(),
    )

    # Start reading at the last finished batch of the prefix rather than at the top:
    # the rows before it are done and need not even be parsed. (_trim drops the rest.)
    start: StartAt | None = None
    first = journal.start_of(prefix_no) if prefix_no else None
    if first is not None and first[1] is not None:
        start = StartAt(first[0], first[1])

    def batches() -> Iterator[PlannedBatch]:
        for chunk in source.chunks(rows_per_chunk=SEND_CHUNK_ROWS, start=start):
            trimmed = _trim(chunk, prefix_row)
            if trimmed is None:
                continue
            yield from chunker.feed(map_chunk(trimmed, column_map, schema))
        yield from chunker.finish()

    return batches(), prefix_row


@dataclass
class SendStats:
    rows_done: int = 0
    batches_sent: int = 0


def send_all(
    journal: Journal,
    batches: Iterator[PlannedBatch],
    sender: Sender,
    meter: UsageMeter,
    config: JobConfig,
    tuning: Tuning,
    rt: Runtime,
) -> SendStats:
    """Claim, send and record every batch; stop cleanly on a stop request or a resumable error.

    Each turn of the loop writes one journal transaction: the outcomes that came
    back and the claims of the batches about to be sent. A claim is committed
    before its batch is submitted, so a crash never loses track of a sent batch.
    """
    stats = SendStats()
    inflight: dict[Future[BatchOutcome], PlannedBatch] = {}
    stop_error: BulkloadError | None = None
    exhausted = False
    grace_deadline: float | None = None
    outcomes: list[tuple[PlannedBatch, BatchResult]] = []
    retries = 0
    pool = ThreadPoolExecutor(max_workers=tuning.concurrency, thread_name_prefix="bulkload-send")
    try:
        while True:
            claims: list[PlannedBatch] = []
            to_send: list[PlannedBatch] = []
            while (stop_error is None and not rt.stop.is_set() and not exhausted
                   and len(inflight) + len(to_send) < tuning.concurrency):
                try:
                    meter.check()
                except QuotaExhausted as e:
                    stop_error = e
                    break
                batch = next(batches, None)
                if batch is None:
                    exhausted = True
                    break
                claims.append(batch)
                if batch.inputs:
                    to_send.append(batch)
                else:  # only local failures / superseded rows: nothing to send
                    outcomes.append((batch, EMPTY_RESULT))
            calls, limited, rate = meter.take()
            turn, outcomes = outcomes, []  # taken first: a crash inside commit must not write them twice
            turn_retries, retries = retries, 0
            # A batch with nothing to send is claimed and finished in this same turn:
            # its outcome goes in a second transaction, after its claim.
            empty = [(b, r) for b, r in turn if r is EMPTY_RESULT]
            sent = [(b, r) for b, r in turn if r is not EMPTY_RESULT]
            journal.commit(outcomes=sent, claims=claims, usage=(calls, limited, turn_retries, rt.wall()),
                           last_rate=rate)
            if empty:
                journal.commit(outcomes=empty)
            for b, _ in turn:
                stats.rows_done += b.n_rows
                rt.progress.advance(b.n_rows)
            stats.batches_sent += len(sent)
            for batch in to_send:
                inflight[pool.submit(sender.send, config.object_type, batch.inputs)] = batch
            if not inflight:
                break
            if (stop_error is not None or rt.stop.is_set()) and grace_deadline is None:
                grace_deadline = rt.clock() + GRACE_SECONDS
            if grace_deadline is not None and rt.clock() >= grace_deadline:
                break  # in-flight batches stay claimed: resume re-sends them
            done, _ = wait(list(inflight), timeout=0.25, return_when=FIRST_COMPLETED)
            for fut in done:
                batch = inflight.pop(fut)
                try:
                    outcome = fut.result()
                except (StopResumable, AuthError) as e:
                    if stop_error is None or (isinstance(e, AuthError) and not isinstance(stop_error, AuthError)):
                        stop_error = e
                    if isinstance(e, AuthError):
                        grace_deadline = rt.clock()  # a refused token: stop at once
                    continue
                retries += outcome.retries
                outcomes.append((batch, outcome_to_result(batch, outcome)))
    finally:
        rt.stop.set()  # tells senders still backing off to give up
        pool.shutdown(wait=False, cancel_futures=True)
        # Outcomes already back (e.g. when Ctrl-C came during the wait) are real: keep them.
        calls, limited, rate = meter.take()
        journal.commit(outcomes=[(b, r) for b, r in outcomes if r is not EMPTY_RESULT],
                       usage=(calls, limited, retries, rt.wall()), last_rate=rate)
    if stop_error is not None:
        raise stop_error
    if not exhausted:
        raise Interrupted("interrupted")
    return stats


def make_sender(client: HubSpotClient, limiter: RateLimiter, meter: UsageMeter, tuning: Tuning,
                rt: Runtime) -> Sender:
    return Sender(
        client,
        limiter,
        policy=RetryPolicy(max_attempts=tuning.max_attempts, max_outage_seconds=tuning.max_outage_seconds),
        clock=rt.clock,
        sleep=rt.sleep,
        rng=rt.rng,
        stop=rt.stop,
        hooks=meter,
    )


def make_limiter(tuning: Tuning, rt: Runtime) -> RateLimiter:
    if tuning.rate is not None:
        return RateLimiter(tuning.rate.requests, tuning.rate.seconds, clock=rt.clock, sleep=rt.sleep, fixed=True)
    return RateLimiter(clock=rt.clock, sleep=rt.sleep)


def make_client(conn: Connection, tuning: Tuning, rt: Runtime, schema: Schema | None = None) -> HubSpotClient:
    return HubSpotClient(
        conn.base_url,
        conn.token,
        transport=rt.transport,
        timeout=tuning.timeout,
        max_connections=max(4, tuning.concurrency * 2),
        property_types=schema.types() if schema is not None else None,
    )


def pause_reason(e: BulkloadError) -> str:
    return str(e) or type(e).__name__


def resume_after_text(e: BulkloadError) -> str | None:
    ra = getattr(e, "resume_after", None)
    if isinstance(ra, datetime):
        return ra.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def paused_state_for(e: BulkloadError, journal: Journal) -> None:
    journal.set_state(JobState.PAUSED, reason=pause_reason(e), resume_after=resume_after_text(e), pid=None)


def finish_state(journal: Journal) -> dict[str, Any]:
    counts = journal.counts()
    rows = counts["rows"]
    if rows["pending"] > 0:
        journal.set_state(JobState.PAUSED, reason="rows still pending", pid=None)
    elif rows["failed"] > 0:
        journal.set_state(JobState.COMPLETED_WITH_ERRORS, pid=None)
    else:
        journal.set_state(JobState.COMPLETED, pid=None)
    return counts


def utc_in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
