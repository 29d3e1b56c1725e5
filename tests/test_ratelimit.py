"""The RateLimiter on virtual time: real threads, a fake clock, no real sleeping.

Several simulated senders (threads) acquire slots, "send" to a fake HubSpot
window that counts arrivals and answers rate headers, stay in flight for a
latency, and feed the headers back. Time only moves when every sender is
asleep, so ten minutes of traffic take well under a second.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import threading
from collections.abc import Callable

import pytest

from bulkload.errors import Interrupted
from bulkload.hubspot.ratelimit import RateLimiter, RateLimitInfo

WINDOW = 10.0


class VirtualTime:
    """A clock for N threads: sleep() parks the caller; once all are parked, time jumps."""

    def __init__(self, participants: int) -> None:
        self._cond = threading.Condition()
        self._now = 0.0
        self._active = participants
        self._parked = 0
        self._heap: list[tuple[float, int]] = []
        self._released: set[int] = set()
        self._seq = itertools.count()

    def clock(self) -> float:
        with self._cond:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._cond:
            token = next(self._seq)
            heapq.heappush(self._heap, (self._now + max(0.0, seconds), token))
            self._parked += 1
            self._advance()
            while token not in self._released:
                # A real-time timeout: if this fires, some thread blocked outside
                # sleep() (e.g. slept while holding the limiter's lock).
                if not self._cond.wait(timeout=10):
                    raise AssertionError("virtual time deadlocked")
            self._released.discard(token)

    def done(self) -> None:
        with self._cond:
            self._active -= 1
            self._advance()

    def _advance(self) -> None:
        if not self._heap or self._parked < self._active:
            return
        wake, token = heapq.heappop(self._heap)
        self._now = max(self._now, wake)
        self._released.add(token)
        self._parked -= 1
        # Everyone due at the same instant wakes together.
        while self._heap and self._heap[0][0] <= self._now:
            self._released.add(heapq.heappop(self._heap)[1])
            self._parked -= 1
        self._cond.notify_all()


class FakeWindow:
    """HubSpot's rolling window: counts arrivals (ours and another app's), answers headers."""

    def __init__(
        self,
        limit: int,
        *,
        others_every: float | None = None,
        others_from: float = -WINDOW,
        headers: bool = True,
    ) -> None:
        self.limit = limit
        self._others_from = others_from
        self.headers = headers
        self.own: list[float] = []
        self.others: list[float] = []
        self._others_every = others_every
        self._lock = threading.Lock()

    def hit(self, now: float) -> RateLimitInfo:
        with self._lock:
            if self._others_every is not None:
                nxt = self.others[-1] + self._others_every if self.others else self._others_from
                while nxt <= now:
                    self.others.append(nxt)
                    nxt += self._others_every
            self.own.append(now)
            used = _count(self.own, now) + _count(self.others, now)
        if not self.headers:
            return RateLimitInfo()
        return RateLimitInfo(
            max=self.limit, remaining=max(0, self.limit - used), interval_ms=10_000
        )

    def worst_window(self) -> int:
        """The most arrivals in any 10-s window ending at an arrival."""
        every = sorted(self.own + self.others)
        return max(_count(every, t) for t in every)


def _count(times: list[float], at: float) -> int:
    """Arrivals in (at - WINDOW, at], `times` ascending."""
    return bisect.bisect_right(times, at) - bisect.bisect_right(times, at - WINDOW)


def simulate(
    make_limiter: Callable[[VirtualTime], RateLimiter],
    window: FakeWindow,
    *,
    senders: int = 6,
    latency: float = 0.15,
    duration: float = 600.0,
) -> RateLimiter:
    vt = VirtualTime(senders)
    limiter = make_limiter(vt)
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            while True:
                sent_at = limiter.acquire()
                now = vt.clock()
                if now >= duration:
                    return
                info = window.hit(now)
                vt.sleep(latency)  # in flight
                limiter.observe(info, sent_at)
        except BaseException as exc:
            errors.append(exc)
        finally:
            vt.done()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    return limiter


def usage(times: list[float], limit: int, start: float, end: float) -> float:
    """Our share of the limit over [start, end), in windows' worth."""
    sent = bisect.bisect_left(times, end) - bisect.bisect_left(times, start)
    return sent / ((end - start) / WINDOW * limit)


def test_never_exceeds_the_window_and_uses_at_least_97_percent() -> None:
    window = FakeWindow(100, headers=False)
    simulate(lambda vt: RateLimiter(100, 10.0, clock=vt.clock, sleep=vt.sleep), window)
    assert window.worst_window() <= 100
    assert usage(window.own, 100, 10.0, 600.0) >= 0.97


def test_adapts_to_the_limit_in_the_headers() -> None:
    # Starts at the safe default of 100; HubSpot says 190.
    window = FakeWindow(190)
    limiter = simulate(lambda vt: RateLimiter(clock=vt.clock, sleep=vt.sleep), window, senders=12)
    assert limiter.max_requests == 190 and limiter.interval == 10.0
    assert window.worst_window() <= 190
    assert usage(window.own, 190, 20.0, 600.0) >= 0.97


@pytest.mark.parametrize("others_from", [-WINDOW, 300.0], ids=["already-there", "appears-midway"])
def test_leaves_room_for_another_app_sharing_the_window(others_from: float) -> None:
    # Someone else sends 50 requests per 10 s, from before we start or from minute 5.
    window = FakeWindow(190, others_every=0.2, others_from=others_from)
    simulate(lambda vt: RateLimiter(clock=vt.clock, sleep=vt.sleep), window, senders=12)
    assert window.worst_window() <= 190
    # What the other app leaves is still used.
    assert usage(window.own, 140, others_from + 20.0, 600.0) >= 0.97


def test_a_fixed_rate_overrides_the_headers() -> None:
    window = FakeWindow(190)
    limiter = simulate(
        lambda vt: RateLimiter(50, 10.0, clock=vt.clock, sleep=vt.sleep, fixed=True),
        window,
        duration=120.0,
    )
    assert limiter.max_requests == 50
    assert max(_count(window.own, t) for t in window.own) <= 50


def test_blocks_every_caller_after_a_429() -> None:
    now = [0.0]
    limiter = RateLimiter(
        100, 10.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
    )
    for _ in range(5):
        limiter.acquire()
    now[0] = 3.0
    limiter.on_rate_limited(4.0)
    assert limiter.acquire() >= 7.0
    assert now[0] >= 7.0


def test_a_429_without_retry_after_waits_for_the_window_and_slows_down() -> None:
    now = [0.0]
    limiter = RateLimiter(
        100, 10.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
    )
    limiter.observe(RateLimitInfo(max=100, remaining=90, interval_ms=10_000))
    assert limiter.budget == 89  # 10 requests are someone else's
    limiter.acquire()
    limiter.on_rate_limited(None)
    # A full window we sent one request into: the other 99 are someone else's.
    assert limiter.budget == 1
    slot = limiter.acquire()
    assert slot >= 1.0  # at least the minimum block, here until our request left the window


def test_sleeping_callers_wait_for_a_block_imposed_after_they_queued() -> None:
    vt = VirtualTime(3)
    limiter = RateLimiter(100, 10.0, clock=vt.clock, sleep=vt.sleep)
    slots: list[float] = []
    lock = threading.Lock()

    def caller() -> None:
        try:
            for _ in range(3):
                slot = limiter.acquire()
                with lock:
                    slots.append(slot)
        finally:
            vt.done()

    def blocker() -> None:
        try:
            vt.sleep(0.15)
            limiter.on_rate_limited(5.0)
        finally:
            vt.done()

    threads = [
        threading.Thread(target=caller),
        threading.Thread(target=caller),
        threading.Thread(target=blocker),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(slots) == 6
    assert all(s <= 0.15 or s >= 5.15 for s in slots), slots


def test_missing_headers_change_nothing() -> None:
    limiter = RateLimiter(100, 10.0, clock=lambda: 0.0, sleep=lambda s: None)
    limiter.observe(RateLimitInfo())
    limiter.observe(None)
    limiter.observe(RateLimitInfo(max=0, interval_ms=5))  # nonsense is ignored
    assert (limiter.max_requests, limiter.interval, limiter.budget) == (100, 10.0, 99)


def test_cancel_interrupts_a_waiting_caller() -> None:
    now = [0.0]
    stop = threading.Event()

    def sleep(seconds: float) -> None:
        now[0] += seconds
        stop.set()  # the stop arrives while the caller waits

    limiter = RateLimiter(100, 10.0, clock=lambda: now[0], sleep=sleep)
    limiter.on_rate_limited(30.0)
    with pytest.raises(Interrupted):
        limiter.acquire(stop)
    assert now[0] < 1.0
