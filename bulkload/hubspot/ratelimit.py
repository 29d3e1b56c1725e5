"""Pace requests under HubSpot's rolling rate-limit window, from what the answers show.

HubSpot admits `X-HubSpot-RateLimit-Max` requests per rolling
`-Interval-Milliseconds` window W per private app, counted at their *arrival*,
answers 429 past that, and says in every answer how many places were left
(`-Remaining`) when it arrived. One RateLimiter, shared by a load's sender
threads, hands out permits so that the window fills to the last request
without 429s to find it. The sender says when each request really left
(`sent`) and when its answer came (`observe`), because neither the permit's
time nor the order of sending is what the server saw: a send can start late
(the GIL, a busy journal thread), and a later request can arrive first.

Other traffic is a range. A request sent at s and answered at a arrived
somewhere in [s, a]. If its answer says the server counted C in (arrival - W,
arrival], then our requests that *may* lie in that window are those sent
before a and not answered before s - W (unanswered ones included: a timeout
may well have been counted), and those that *must* are the counted ones
answered before s and sent after a - W. Other apps held between C - may and
C - must. The ranges of the last few answers are intersected. Alone, the lower
end is never above zero, whatever the reordering, so reordering can never pass
for another app. The estimate of other traffic moves only when the
intersection rules its value out, and otherwise decays over a window (other
apps' requests leave the server's window within one), so a real other app
keeps pushing it up and a gone one fades.

While other traffic is seen, the budget takes the upper end of the fresh range:
own requests in the window <= Max minus the most the others may hold. That is
Remaining used directly: Remaining, minus own requests that may have arrived
since, plus own entries that have left the window since, as far as we can know
them. It follows a second process on the token within one round trip (a single
answer raises the lower end at once), and costs a request or two of the window.

Own requests are paced by a log of actual send times: fewer than the budget in
any interval + margin. The margin covers the spread between send time and the
server's view, and is measured: an answer that counted K of ours in one window
proves that K of our requests arrived within W, so the tightest run of K sends
around it was compressed by at least its span minus W. The margin is the
largest such compression of the last _SPREAD_WINDOWS windows, plus twice the
gap to the second largest (about how far a sample maximum falls short of the
true one when the tail thins out linearly, as the difference of two uniform
delays does). It starts at DEFAULT_MARGIN, narrows over about a window of
answers when they show room, widens at once when an answer or a 429 shows
less, and never goes below _MIN_MARGIN. Measuring narrower margins needs
answers that come close to full; now and then (about once in ten minutes in
the simulation) that is a 429, which widens the margin again.

Readings say nothing about our spread while others' requests are in the window
(they would pass for compression): the margin is measured only after a window
without other traffic, and once other traffic shows after a quiet spell, what
was measured in the last _SUSPECT_WINDOWS windows is dropped and the margin
goes back to what it was before them.

Spacing: permits are also spread window/budget apart, with a burst tolerance.
Alone, bunching costs nothing (the log holds the count), so two gaps of
tolerance let late sends catch up. Sharing the token, permits are spaced
strictly, so the count of others that the answers see moves slowly, as
intersecting their ranges assumes.

Two loads on one token each see the other only through Remaining. Each leaves
the other the upper end of its range, which is wider the more of its own
requests are in flight, so the larger load leaves more room and the smaller
one takes it: shares settle near even, and neither needs to know the other
exists. In its first window a load cannot tell a newcomer's pace from what it
holds so far (both started at once each see the other hold little): there, the
traffic that grew since its first answer is left what it would hold over a whole
window at the pace it shows, up to half the window, so two loads started together
share from the first second instead of filling the window at twice the rate and
then both waiting out its far end. While sharing, each paces with at least DEFAULT_MARGIN: a margin
measured alone would let one load re-send sooner after its requests leave the
window than a newcomer, and win it the places that free up.

`on_rate_limited()` blocks every caller: for Retry-After when HubSpot sends one,
else until our oldest request in the window leaves it (`min_block` when none of
ours is in it). `fixed` (the user's `--rate`) keeps the user's count and
interval whatever the headers say; other traffic seen still lowers the budget.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from bulkload.errors import Interrupted

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_MARGIN",
    "DEFAULT_MAX_REQUESTS",
    "Permit",
    "RateLimitInfo",
    "RateLimiter",
]

# The lowest burst limit HubSpot gives a private app (Free/Starter); the first
# response's headers raise it to the account's real limit.
DEFAULT_MAX_REQUESTS = 100
DEFAULT_INTERVAL = 10.0
# The margin before any answer has shown the spread: the old fixed value, which
# covered +-50 ms of jitter with room to spare.
DEFAULT_MARGIN = 0.15

# A wait this long or longer is told to acquire()'s `waiting` (for a progress display).
_SHOWN_WAIT = 1.0
# Sleeping is chunked so a stop request is noticed within this many seconds.
_CANCEL_POLL = 0.25
# How many answers' ranges of other traffic are intersected. Each is about
# +-2 requests wide (our requests in flight near its send and near its window's
# far end); eight narrow that to about +-1 and span under half a second at full
# rate, in which another app's count moves by about one.
_RANGE_READINGS = 8
# Other traffic counts as seen from half a request on (the estimate decays
# continuously; below that it rounds to none).
_SEEN = 0.5
# How long a measured compression is remembered, in windows: long enough for a
# few thousand answers, short enough to follow a network that calms down.
_SPREAD_WINDOWS = 30
# The sample maximum of a tail that thins out linearly falls short of the true
# maximum by about twice the gap between the two largest samples.
_TAIL_FACTOR = 2.0
# A few timer ticks: sends are not placed more precisely than sleep() and a
# thread switch allow. It also leaves a gap after each of our requests leaves the
# window, so another app's request can get in (and be seen) even on a network
# too steady to leave any: on no jitter at all a naive app would be starved.
_MIN_MARGIN = 0.01
# How far back, in windows, measurements are suspect once other traffic shows
# after a quiet spell: a newcomer ramps up for a window or two before its share
# exceeds what our own requests in flight could explain.
_SUSPECT_WINDOWS = 3
# Burst tolerance of the spacing, in gaps: alone, and while sharing the token.
_BURST_ALONE = 2.0
_BURST_SHARED = 0.0
# A request still unanswered this long after it was sent never will be (the
# client times out after 30 s by default).
_LOST_AFTER = 600.0


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


class _State(Enum):
    GRANTED = "granted"  # acquire() returned it; not sent yet
    SENT = "sent"  # on its way or waiting for its answer
    COUNTED = "counted"  # answered with rate headers: the server counted it
    ANSWERED = "answered"  # answered (or given up on) without knowing whether it counted
    REJECTED = "rejected"  # a ten-secondly 429: not in the server's window
    RELEASED = "released"  # never sent


class Permit:
    """One request's way through the limiter. Opaque to the sender: pass it back."""

    __slots__ = ("_answered", "_granted", "_sent", "_state")

    def __init__(self, granted: float) -> None:
        self._granted = granted
        self._sent: float | None = None
        self._answered: float | None = None
        self._state = _State.GRANTED

    @property
    def granted_at(self) -> float:
        return self._granted

    @property
    def sent_at(self) -> float | None:
        return self._sent

    @property
    def answered_at(self) -> float | None:
        return self._answered

    def __repr__(self) -> str:
        return f"Permit(granted_at={self._granted:.3f}, {self._state.value})"


class _Times:
    """A sorted multiset of times, counted by bisection."""

    __slots__ = ("v",)

    def __init__(self) -> None:
        self.v: list[float] = []

    def add(self, t: float) -> None:
        bisect.insort(self.v, t)

    def remove(self, t: float) -> None:
        i = bisect.bisect_left(self.v, t)
        if i < len(self.v) and self.v[i] == t:
            del self.v[i]

    def upto(self, t: float) -> int:
        """How many are <= t."""
        return bisect.bisect_right(self.v, t)

    def between(self, lo: float, hi: float) -> int:
        """How many lie in (lo, hi]."""
        return max(0, bisect.bisect_right(self.v, hi) - bisect.bisect_right(self.v, lo))

    def __len__(self) -> int:
        return len(self.v)


class _Spread:
    """The largest compressions measured lately: the two largest per window, for a while."""

    def __init__(self) -> None:
        self._buckets: deque[tuple[int, list[float]]] = deque()  # (window number, top two)

    def add(self, at: float, window: float, value: float) -> None:
        number = math.floor(at / window)
        if not self._buckets or self._buckets[-1][0] != number:
            self._buckets.append((number, []))
        top = self._buckets[-1][1]
        top.append(value)
        top.sort(reverse=True)
        del top[2:]

    def drop_since(self, number: int) -> None:
        while self._buckets and self._buckets[-1][0] >= number:
            self._buckets.pop()

    def floor(self, at: float, window: float) -> float:
        """A value below which a new sample cannot change the current window's top two."""
        number = math.floor(at / window)
        if self._buckets and self._buckets[-1][0] == number and len(self._buckets[-1][1]) == 2:
            return self._buckets[-1][1][1]
        return -math.inf

    def top_two(self, now: float, window: float) -> tuple[float, float] | None:
        oldest = math.floor(now / window) - _SPREAD_WINDOWS
        while self._buckets and self._buckets[0][0] < oldest:
            self._buckets.popleft()
        values = sorted((v for _, top in self._buckets for v in top), reverse=True)
        if len(values) < 2:
            return None
        return values[0], values[1]


@dataclass(frozen=True)
class _Reading:
    sent: float
    answered: float
    low: int  # outside traffic: at least
    high: int  # and at most


class RateLimiter:
    """Thread-safe pacing of requests under a rolling window; see the module docstring."""

    def __init__(
        self,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        interval: float = DEFAULT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = DEFAULT_MARGIN,
        fixed: bool = False,
        min_block: float = 1.0,
    ) -> None:
        if max_requests < 1 or interval <= 0:
            raise ValueError("the rate limit must allow at least one request per positive interval")
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._fixed = fixed
        self._min_block = min_block
        self._max = max_requests
        self._interval = interval
        self._server_max: int | None = None
        self._server_interval: float | None = None
        self._margin = max(0.0, margin)
        # Other apps' requests in the server's window: a decaying estimate, and
        # the range the freshest answers allow.
        self._outside = 0.0
        self._outside_at = -math.inf
        self._readings: deque[_Reading] = deque(maxlen=_RANGE_READINGS)
        self._seen_outside_at = -math.inf  # the last answer that proved other traffic
        # Compressions (see the module docstring), and the margin at the start of
        # each recent window, to go back to should they turn out to be others' requests.
        self._spread = _Spread()
        self._margins: deque[tuple[int, float]] = deque(maxlen=_SUSPECT_WINDOWS + 1)
        self._blocked_until = -math.inf
        self._tat = -math.inf  # when the next permit is due by the spacing alone
        self._started_at: float | None = None  # the first own send
        self._first_outside: float | None = None  # other traffic seen by the first answer
        self._granted: set[Permit] = set()  # not yet sent
        self._permits: deque[Permit] = deque()  # in grant order, until they are of no use
        # Own requests not known to be rejected: send times, answer times; and
        # the same for those the server is known to have counted.
        self._sends = _Times()
        self._answers = _Times()
        self._counted_sends = _Times()
        self._counted_answers = _Times()

    # --- what the limiter currently believes ----------------------------------------

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
    def margin(self) -> float:
        """Seconds added to the interval to cover the spread of arrival times."""
        with self._lock:
            return self._margin

    @property
    def outside(self) -> float:
        """Other apps' requests believed to be in the server's window now."""
        with self._lock:
            return self._outside_now(self._clock())

    def sent_lately(self) -> int:
        """Own requests sent in the last interval: the pace, for a person to see."""
        with self._lock:
            now = self._clock()
            return self._sends.between(now - self._interval, now) + len(self._granted)

    @property
    def budget(self) -> int:
        """Own requests allowed in one (interval + margin)."""
        with self._lock:
            return math.floor(self._budget(self._clock()))

    # --- granting permits -------------------------------------------------------------

    def acquire(
        self,
        cancel: threading.Event | None = None,
        waiting: Callable[[float | None], None] | None = None,
    ) -> Permit:
        """Block until a request may be sent; return its permit.

        Raises bulkload.errors.Interrupted once `cancel` is set while waiting. `waiting`
        hears of a wait of a second or more (its length) and of its end (None): the
        pacing's own gaps are shorter, a block after a 429 longer.
        """
        shown = False
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    raise Interrupted("stopped while waiting for the rate limit")
                got = self.try_acquire()
                if isinstance(got, Permit):
                    return got
                if waiting is not None and not shown and got >= _SHOWN_WAIT:
                    waiting(got)
                    shown = True
                self._sleep(min(got, _CANCEL_POLL) if cancel is not None else got)
        finally:
            if shown and waiting is not None:
                waiting(None)

    def try_acquire(self) -> Permit | float:
        """A permit if a request may be sent now, else the seconds to wait before asking again."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            budget = self._budget(now)
            wait = self._wait(now, budget)
            if wait > 0:
                return wait
            permit = Permit(now)
            self._granted.add(permit)
            self._permits.append(permit)
            self._tat = max(self._tat, now) + self._window() / budget
            return permit

    def _wait(self, now: float, budget: float) -> float:
        if now < self._blocked_until:
            return self._blocked_until - now
        window = self._window()
        gap = window / budget
        tolerance = _BURST_SHARED if self._sharing(now) else _BURST_ALONE
        due = self._tat - tolerance * gap
        if due > now:
            return due - now
        # The log: fewer than `budget` own requests in the window up to now.
        # Permits not yet sent will leave at `now` or later: they count in full.
        allowed = math.floor(budget)
        v = self._sends.v
        first = bisect.bisect_right(v, now - window)
        count = len(v) - first + len(self._granted)
        if count < allowed:
            return 0.0
        if len(self._granted) >= allowed:
            return gap  # all taken by permits about to be sent: look again shortly
        # Wait until enough of the oldest have left the window.
        leaving = v[first + count - allowed]
        return max(leaving + window - now, 1e-6)

    def _window(self) -> float:
        if self._outside >= _SEEN:
            # Sharing the token, the margin cannot be measured (the others'
            # requests would pass for compression), and one measured alone would
            # make this load re-send sooner after its requests leave the window
            # than a newcomer that never ran alone, winning it the places that
            # free up. So while sharing, each keeps at least the first guess.
            return self._interval + max(self._margin, DEFAULT_MARGIN)
        return self._interval + self._margin

    def _server_window(self) -> float:
        return self._server_interval or self._interval

    def _comparable(self) -> bool:
        # With a user-fixed interval different from the server's, counts in one
        # window say nothing exact about the other; then only the user's rate applies.
        if self._server_interval is None:
            return True
        return abs(self._server_interval - self._interval) <= 0.01 * self._interval

    def _budget(self, now: float) -> float:
        outside = 0.0
        if self._comparable():
            outside = self._outside_now(now)
            if outside >= _SEEN:
                fresh = [r.high for r in self._readings if now - r.answered < self._server_window()]
                # While other traffic is seen, leave it the most it may hold;
                # without a fresh answer to say how much, one request more.
                outside = max(outside, float(min(fresh))) if fresh else outside + 1.0
                outside = self._projected(outside, now)
        return max(1.0, self._max - outside)

    def _projected(self, outside: float, now: float) -> float:
        # In our first window, other traffic that grows is counted so far only for the
        # time since we started, not at its pace: two loads started together would each
        # leave the other the little it holds yet, fill the window at twice the rate and
        # then both wait out its far end. So early on, leave what has grown since our
        # first answer what it would hold over a whole window at its pace, up to half
        # the window (a fair share; more would starve us for a burst). What was there
        # before we started is steady traffic and is left as it is.
        if self._started_at is None or self._first_outside is None:
            return outside
        w = self._server_window()
        elapsed = now - self._started_at
        if elapsed >= w:
            return outside
        grown = max(0.0, outside - self._first_outside)
        pace = self._first_outside + grown * w / max(elapsed, w / self._max)
        return max(outside, min(pace, self._max / 2))

    def _sharing(self, now: float) -> bool:
        return self._outside_now(now) >= _SEEN

    def _outside_now(self, now: float) -> float:
        if now > self._outside_at:
            if self._outside > 0.0 and self._outside_at > -math.inf:
                self._outside *= math.exp(-(now - self._outside_at) / self._server_window())
                if self._outside < 0.01 * _SEEN:
                    self._outside = 0.0  # gone
            self._outside_at = now
        return self._outside

    # --- a request's life -------------------------------------------------------------

    def sent(self, permit: Permit, at: float | None = None) -> None:
        """The request of `permit` leaves now (or left at `at`, by this limiter's clock)."""
        with self._lock:
            if permit._state is _State.GRANTED:
                self._mark_sent(permit, self._clock() if at is None else at)

    def release(self, permit: Permit) -> None:
        """The request of `permit` was never sent (e.g. the daily budget refused it)."""
        with self._lock:
            if permit._state is not _State.GRANTED:
                return
            self._granted.discard(permit)
            permit._state = _State.RELEASED
            # Give its turn back to the spacing.
            self._tat -= self._window() / self._budget(self._clock())

    def observe(
        self, permit: Permit, rate: RateLimitInfo | None, answered_at: float | None = None
    ) -> None:
        """The answer to `permit`'s request, with its rate headers (None: no headers, or
        no answer at all: a timeout, a reset). Call it for every answer but a 429 of
        the ten-secondly limit (on_rate_limited); a request with no answer may still
        have been counted, and is kept as one that may lie in the server's window."""
        with self._lock:
            now = self._clock() if answered_at is None else answered_at
            if permit._state is _State.GRANTED:  # sent() was not called: assume it left then
                self._mark_sent(permit, permit._granted)
            if permit._state is not _State.SENT:
                return
            assert permit._sent is not None
            a = permit._answered = max(now, permit._sent)
            self._learn_limits(rate)
            self._answers.add(a)
            if rate is None or rate.remaining is None or self._server_max is None:
                permit._state = _State.ANSWERED
                return
            permit._state = _State.COUNTED
            self._counted_sends.add(permit._sent)
            self._counted_answers.add(a)
            self._read(permit._sent, a, max(1, self._server_max - rate.remaining), now)

    def on_rate_limited(
        self,
        permit: Permit | None = None,
        retry_after: float | None = None,
        rate: RateLimitInfo | None = None,
    ) -> None:
        """A ten-secondly 429 answered `permit`'s request: block every caller until the
        window frees (for `retry_after` seconds when HubSpot said so)."""
        with self._lock:
            now = self._clock()
            self._learn_limits(rate)
            if permit is not None and permit._state in (_State.GRANTED, _State.SENT):
                if permit._state is _State.GRANTED:
                    self._mark_sent(permit, permit._granted)
                assert permit._sent is not None
                # Not counted: it does not hold a place in the server's window.
                self._sends.remove(permit._sent)
                permit._answered = max(now, permit._sent)
                permit._state = _State.REJECTED
                self._read_rejection(permit._sent, now)
            if retry_after is not None:
                until = now + max(0.0, retry_after)
            else:
                window = self._window()
                first = bisect.bisect_right(self._sends.v, now - window)
                if first < len(self._sends):
                    until = max(now, self._sends.v[first] + window)
                else:
                    until = now + self._min_block  # nothing of ours to wait for
                until = min(until, now + window)
            self._blocked_until = max(self._blocked_until, until)

    def _mark_sent(self, permit: Permit, at: float) -> None:
        self._granted.discard(permit)
        permit._sent = max(at, permit._granted)
        permit._state = _State.SENT
        self._sends.add(permit._sent)
        if self._started_at is None:
            self._started_at = permit._sent

    def _learn_limits(self, rate: RateLimitInfo | None) -> None:
        if rate is None:
            return
        if rate.max is not None and rate.max >= 1:
            self._server_max = rate.max
            if not self._fixed:
                self._max = rate.max
        if rate.interval_ms is not None and rate.interval_ms >= 100:
            self._server_interval = rate.interval_ms / 1000.0
            if not self._fixed:
                self._interval = self._server_interval

    # --- reading the answers ----------------------------------------------------------------

    def _own_may(self, s: float, a: float) -> int:
        """Own requests that may lie in the server's window at an arrival in [s, a]:
        sent before a, not answered before s - W (requests without an answer included)."""
        return self._sends.upto(a) - self._answers.upto(s - self._server_window())

    def _read(self, s: float, a: float, count: int, now: float) -> None:
        """A counted request sent at s, answered at a: the server saw `count` in its window."""
        w = self._server_window()
        # Counted own requests that must lie in the window: answered before s,
        # sent after a - w; this one too. (Those sent before a - w and answered
        # after s are subtracted as well, which only makes the count smaller.)
        must = self._counted_answers.upto(s) - self._counted_sends.upto(a - w) + 1
        low = count - self._own_may(s, a)
        high = count - max(1, must)
        self._readings.append(_Reading(s, a, low, high))
        low_all = max(r.low for r in self._readings)
        high_all = min(r.high for r in self._readings)
        if low_all > high_all:
            # The other traffic moved more than the answers allow for: start over.
            self._readings.clear()
            self._readings.append(_Reading(s, a, low, high))
            low_all, high_all = low, high
        if self._comparable():
            outside = self._outside_now(now)
            if outside < low_all:
                self._outside = float(low_all)
            elif outside > high_all:
                self._outside = float(max(0, high_all))
        if self._first_outside is None:
            self._first_outside = self._outside_now(now)
        if low_all >= 1:
            self._saw_outside(now)
        elif now - self._seen_outside_at > w:
            self._measure_spread(s, count, now, rejected=False)

    def _read_rejection(self, s: float, now: float) -> None:
        """A 429 for a request sent at s: the window held `max` without it."""
        if self._server_max is None:
            return
        low = self._server_max - self._own_may(s, now)
        if self._comparable() and self._outside_now(now) < low:
            self._outside = float(low)
        if low >= 1:
            self._saw_outside(now)
        elif now - self._seen_outside_at > self._server_window():
            # It arrived within a window of `max` of ours: max + 1 in all.
            self._measure_spread(s, self._server_max + 1, now, rejected=True)

    def _saw_outside(self, now: float) -> None:
        w = self._server_window()
        if now - self._seen_outside_at > w:
            # Other traffic after a quiet spell: it has probably been there for a
            # while, below what our own requests in flight could explain, and what
            # was measured meanwhile was partly its requests. Forget that.
            since = math.floor(now / w) - _SUSPECT_WINDOWS
            self._spread.drop_since(since)
            before = [m for number, m in self._margins if number <= since]
            self._margin = min(self._margin, before[-1] if before else DEFAULT_MARGIN)
        self._seen_outside_at = now

    def _measure_spread(self, s: float, k: int, now: float, *, rejected: bool) -> None:
        """k of our requests, the one sent at s among them, arrived within one window:
        the tightest run of k sends around s was compressed by at least its span - W."""
        w = self._server_window()
        v = self._sends.v
        if rejected:
            v = sorted([*v, s])
        p = bisect.bisect_left(v, s)
        first, last = max(0, p - k + 1), min(p, len(v) - k)
        # Only an answer that found the window about as full as our pacing fills
        # it tests the margin (the run spans nearly W); one from a window still
        # filling up (at the start, after a pause) says nothing.
        untested = -2.0 * w / self._max
        # Any run's span bounds the tightest one's: if even that cannot make the
        # largest few, skip the scan.
        if k >= 2 and first <= last and (
            rejected
            or v[last + k - 1] - v[last] - w > max(untested, self._spread.floor(now, w))
        ):
            compression = min(v[q + k - 1] - v[q] for q in range(first, last + 1)) - w
            if compression >= untested:
                self._spread.add(now, w, compression)
        self._update_margin(now)

    def _update_margin(self, now: float) -> None:
        w = self._server_window()
        number = math.floor(now / w)
        if not self._margins or self._margins[-1][0] != number:
            self._margins.append((number, self._margin))
        top = self._spread.top_two(now, w)
        if top is None:
            return
        # No compression shown (<= 0) is no compression: the gap between two
        # such values says nothing about the tail.
        first, second = max(0.0, top[0]), max(0.0, top[1])
        target = max(_MIN_MARGIN, first + _TAIL_FACTOR * (first - second))
        if target > self._margin:
            self._margin = target
        else:
            # Narrow by 1/max of the difference per answer: most of it within a
            # window's worth of answers at full rate.
            self._margin -= (self._margin - target) / max(1, self._max)

    # --- forgetting -----------------------------------------------------------------------

    def _prune(self, now: float) -> None:
        # Answers read own requests up to a window and a round trip back.
        horizon = now - 2 * max(self._window(), self._server_window())
        if self._granted:
            for permit in [p for p in self._granted if p._granted < horizon]:
                # Granted long ago and neither sent nor released: it never will be.
                self._granted.discard(permit)
                permit._state = _State.RELEASED
        permits = self._permits
        while permits:
            permit = permits[0]
            state = permit._state
            if state is _State.GRANTED:
                break
            if state is _State.SENT:
                assert permit._sent is not None
                if permit._sent >= now - _LOST_AFTER:
                    break  # still waiting for its answer (or its timeout)
                self._sends.remove(permit._sent)  # lost: no answer will ever come
            elif state in (_State.COUNTED, _State.ANSWERED):
                assert permit._sent is not None and permit._answered is not None
                if permit._answered >= horizon:
                    break
                self._sends.remove(permit._sent)
                self._answers.remove(permit._answered)
                if state is _State.COUNTED:
                    self._counted_sends.remove(permit._sent)
                    self._counted_answers.remove(permit._answered)
            permits.popleft()
