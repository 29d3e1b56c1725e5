"""Pace requests under HubSpot's rolling rate-limit window, ahead of the limit.

HubSpot allows `X-HubSpot-RateLimit-Max` requests per rolling
`-Interval-Milliseconds` window per app (100-250 per 10 s) and answers 429 to
everything past it. The loader should never need those 429s to find the
limit, so one RateLimiter, shared by every sender thread, hands out send slots:

- Slots are spaced evenly, `window / budget` apart, where `window` is the
  interval plus a small time margin and `budget` is the limit minus a reserve
  and minus what other apps are seen to use. Even spacing (rather than bursts
  at the window's edge) keeps the server's view independent of a few ms of
  network jitter.
- A sliding log of recent slots is the hard rule: a slot is only granted if
  fewer than `budget` slots lie in the `window` before it. Spacing alone would
  keep that, but after the budget drops (a 429, another app appearing) the log
  is what holds senders back until old requests leave the window.
- `observe()` reads the rate headers of every response: Max and Interval set
  the limit (unless the user fixed `--rate`), and Remaining, compared with our
  own count in the same window, reveals other apps sharing the window.
- `on_rate_limited()` blocks every caller, for Retry-After when HubSpot sends
  it, else until our oldest request in the window expires.

The margins: 0.15 s of extra window absorbs jitter between our clock and the
arrival times HubSpot counts; one request of reserve absorbs requests sent
outside the limiter (property look-ups). At 100/10 s that uses 97.5 % of the
window, at 190/10 s 98 %.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bulkload.errors import Interrupted

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_MAX_REQUESTS", "RateLimitInfo", "RateLimiter"]

# The lowest burst limit HubSpot gives a private app (Free/Starter); the first
# response's headers raise it to the account's real limit.
DEFAULT_MAX_REQUESTS = 100
DEFAULT_INTERVAL = 10.0

# Sleeping is chunked so a stop request is noticed within this many seconds.
_CANCEL_POLL = 0.25


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


@dataclass(frozen=True)
class RateLimitInfo:
    """HubSpot's X-HubSpot-RateLimit-* headers of one response; None where absent or garbage."""

    max: int | None = None
    remaining: int | None = None
    interval_ms: int | None = None
    daily: int | None = None
    daily_remaining: int | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo:
        # httpx.Headers is case-insensitive already; plain dicts are lowered here.
        lowered = {k.lower(): v for k, v in headers.items()}
        return cls(
            max=_header_int(lowered, "x-hubspot-ratelimit-max"),
            remaining=_header_int(lowered, "x-hubspot-ratelimit-remaining"),
            interval_ms=_header_int(lowered, "x-hubspot-ratelimit-interval-milliseconds"),
            daily=_header_int(lowered, "x-hubspot-ratelimit-daily"),
            daily_remaining=_header_int(lowered, "x-hubspot-ratelimit-daily-remaining"),
        )


class RateLimiter:
    """Thread-safe pacing of requests under a rolling window; see the module docstring."""

    def __init__(
        self,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        interval: float = DEFAULT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = 0.15,
        reserve: int = 1,
        fixed: bool = False,
        min_block: float = 1.0,
    ) -> None:
        if max_requests < 1 or interval <= 0:
            raise ValueError("the rate limit must allow at least one request per positive interval")
        self._clock = clock
        self._sleep = sleep
        self._margin = max(0.0, margin)
        self._reserve = max(0, reserve)
        self._fixed = fixed
        self._min_block = min_block
        self._lock = threading.Lock()
        self._max = max_requests
        self._interval = interval
        self._server_max: int | None = None
        self._server_interval: float | None = None
        self._log: list[float] = []  # granted slots, ascending; includes slots not yet reached
        self._next_slot = -math.inf
        self._blocked_until = -math.inf
        self._external = 0  # requests other apps made in the server's current window
        self._external_at = -math.inf

    # --- what the limiter currently believes -----------------------------------

    @property
    def max_requests(self) -> int:
        return self._max

    @property
    def interval(self) -> float:
        return self._interval

    @property
    def fixed(self) -> bool:
        return self._fixed

    @property
    def budget(self) -> int:
        with self._lock:
            return self._budget(self._clock())

    def _budget(self, now: float) -> int:
        external = self._external if now - self._external_at <= self._server_window() else 0
        return max(1, self._max - self._reserve - external)

    def _window(self) -> float:
        return self._interval + self._margin

    def _server_window(self) -> float:
        return self._server_interval or self._interval

    # --- granting slots -----------------------------------------------------------

    def acquire(self, cancel: threading.Event | None = None) -> float:
        """Block until a request may be sent; return its slot time (pass it to observe()).

        Raises bulkload.errors.Interrupted if `cancel` is set while waiting.
        """
        with self._lock:
            slot = self._reserve_slot(self._clock())
        while True:
            self._wait_until(slot, cancel)
            with self._lock:
                if self._still_valid(slot):
                    return slot
                # The limits tightened while we slept (a 429, a lower budget): queue again.
                self._release(slot)
                slot = self._reserve_slot(self._clock())

    def _reserve_slot(self, now: float) -> float:
        window = self._window()
        self._prune(now)
        budget = self._budget(now)
        slot = max(now, self._next_slot, self._blocked_until)
        while True:
            first = bisect.bisect_right(self._log, slot - window)
            last = bisect.bisect_right(self._log, slot)
            in_window = last - first
            if in_window < budget:
                break
            # The slot must wait until enough earlier slots have left the window.
            leaving = self._log[first + in_window - budget]
            slot = leaving + window
            while slot - window < leaving:
                # (a + w) - w can round below a; step past it so the loop progresses.
                slot = math.nextafter(slot, math.inf)
        bisect.insort(self._log, slot)
        self._next_slot = max(self._next_slot, slot + window / budget)
        return slot

    def _still_valid(self, slot: float) -> bool:
        if slot < self._blocked_until:
            return False
        window = self._window()
        first = bisect.bisect_right(self._log, slot - window)
        last = bisect.bisect_right(self._log, slot)
        # `slot` itself is in the log; the others in its window must be fewer than the budget.
        return last - first - 1 < self._budget(self._clock())

    def _release(self, slot: float) -> None:
        index = bisect.bisect_left(self._log, slot)
        if index < len(self._log) and self._log[index] == slot:
            del self._log[index]

    def _prune(self, now: float) -> None:
        # Keep two windows of history: observe() counts our requests in the
        # window before a response's send time, which may lie a latency back.
        horizon = now - 2 * max(self._window(), self._server_window())
        drop = bisect.bisect_left(self._log, horizon)
        if drop:
            del self._log[:drop]

    def _wait_until(self, slot: float, cancel: threading.Event | None) -> None:
        while True:
            wait = slot - self._clock()
            if cancel is not None and cancel.is_set():
                with self._lock:
                    self._release(slot)
                raise Interrupted("stopped while waiting for the rate limit")
            if wait <= 0:
                return
            self._sleep(min(wait, _CANCEL_POLL) if cancel is not None else wait)

    # --- learning from responses ------------------------------------------------------

    def observe(self, rate: RateLimitInfo | None, sent_at: float | None = None) -> None:
        """Adapt to one response's rate headers. `sent_at` is the slot acquire() returned."""
        if rate is None:
            return
        with self._lock:
            now = self._clock()
            if rate.max is not None and rate.max >= 1:
                self._server_max = rate.max
                if not self._fixed:
                    self._max = rate.max
            if rate.interval_ms is not None and rate.interval_ms >= 100:
                self._server_interval = rate.interval_ms / 1000.0
                if not self._fixed:
                    self._interval = self._server_interval
            if rate.remaining is not None and self._server_max is not None:
                # Remaining counts every app's requests; the part our own log
                # cannot account for is someone else's, and is left to them.
                at = now if sent_at is None else min(sent_at, now)
                used = max(0, self._server_max - rate.remaining)
                external = max(0, used - self._count_own(at, self._server_window()))
                if self._comparable():
                    self._external = external
                    self._external_at = now

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        """A ten-secondly 429 arrived: block every caller until the window frees."""
        with self._lock:
            now = self._clock()
            own = self._count_own(now, self._server_window())
            limit = self._server_max if self._server_max is not None else self._max
            if self._comparable():
                # The server's window is full: whatever we did not send, someone else did.
                self._external = max(self._external, limit - own)
                self._external_at = now
            if retry_after is not None:
                until = now + max(0.0, retry_after)
            else:
                first = bisect.bisect_right(self._log, now - self._window())
                oldest = self._log[first] if first < len(self._log) else now
                until = max(now + self._min_block, oldest + self._window())
                until = min(until, now + self._window())
            self._blocked_until = max(self._blocked_until, until)
            # Slots granted but not yet reached must wait for the block too.
            self._next_slot = max(self._next_slot, self._blocked_until)

    def _count_own(self, at: float, window: float) -> int:
        return bisect.bisect_right(self._log, at) - bisect.bisect_right(self._log, at - window)

    def _comparable(self) -> bool:
        # With a user-fixed interval different from the server's, counts in one
        # window say nothing exact about the other; then only the user's rate applies.
        if self._server_interval is None:
            return True
        return abs(self._server_interval - self._interval) <= 0.01 * self._interval
