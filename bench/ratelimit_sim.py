"""Discrete-event simulation of bulkload's RateLimiter against HubSpot's rolling window.

    .venv/bin/python bench/ratelimit_sim.py [--seeds 1 2 3] [--old REV] [--minutes 10]

The REAL limiter (bulkload.hubspot.ratelimit) runs on a simulated clock against
the sandbox's own window counter (bulkload.sandbox.ratelimit: a deque of
admitted arrival times per token, 429'd requests not counted), so nothing but
the network and the threads is modelled:

- every request's round trip is `latency` +- uniform `jitter`, split into an
  uplink (send -> the server counts it) and a downlink at a random share, so a
  later request can arrive first;
- a sender starts its request up to `late` seconds after the permit (the GIL, a
  busy journal thread) and tells the limiter when it really left;
- `concurrency` senders share one limiter, `loads` limiters share one token
  (two jobs on one private app), and a naive competitor may send `competitor`
  requests per window on the same token at a fixed pace;
- a 429 makes the sender back off like bulkload's Sender (full jitter from 0.5 s).

Time only moves from event to event, so ten simulated minutes take well under
a second and a seed makes a run exactly repeatable. The figures, over the
steady state (after `warmup`): the share of the window used (admitted requests
per window / the limit), the share of requests answered 429, and the most
requests admitted in any rolling window.

Run as a script it prints, for each scenario and seed, the limiter of this
checkout side by side with the one at git revision `--old` (default: the
limiter before the rewrite), loaded from git and driven through its old API.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import itertools
import random
import subprocess
import sys
import types
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from bulkload.hubspot.ratelimit import Permit, RateLimiter, RateLimitInfo
from bulkload.sandbox.config import SandboxConfig
from bulkload.sandbox.ratelimit import RateLimiter as ServerWindow

ROOT = Path(__file__).resolve().parent.parent
OLD_REVISION = "7deef57"  # the last commit with the limiter issue 14 reviewed

# A simulated task yields how long it sleeps; the loop resumes it then.
Task = Generator[float, None, None]


@dataclass(frozen=True)
class Scenario:
    """One simulated run: the token's limit, the network, the senders and the other traffic."""

    name: str = "alone"
    limit: int = 190
    window: float = 10.0
    duration: float = 600.0
    warmup: float = 30.0  # the figures count from here on
    latency: float = 0.15
    jitter: float = 0.05
    uplink: tuple[float, float] = (0.4, 0.6)  # share of the round trip before the server counts
    late: float = 0.1  # a send starts up to this long after its permit
    concurrency: int = 8
    loads: int = 1
    starts: tuple[float, ...] = ()  # when each load starts (default: all at 0)
    competitor: int = 0  # a naive app's requests per window, evenly paced
    competitor_from: float = 0.0  # when it starts
    retry_after: bool = False  # the server sends Retry-After on 429 (HubSpot does not)
    seed: int = 1


@dataclass
class LoadResult:
    requests: int = 0
    admitted: int = 0
    limited: int = 0
    steady_admitted: int = 0
    arrivals: list[float] = field(default_factory=list)  # admitted, in server order

    @property
    def limited_share(self) -> float:
        return self.limited / self.requests if self.requests else 0.0


@dataclass
class SimResult:
    scenario: Scenario
    loads: list[LoadResult]
    competitor: LoadResult
    worst_window: int  # most admitted requests in any rolling window, all sources
    limiters: list[Any]

    def share(self, load: int) -> float:
        """Load `load`'s admitted requests per window over the steady state, / the limit."""
        return self._share(self.loads[load].steady_admitted)

    @property
    def combined_share(self) -> float:
        steady = sum(r.steady_admitted for r in self.loads) + self.competitor.steady_admitted
        return self._share(steady)

    @property
    def loads_share(self) -> float:
        return self._share(sum(r.steady_admitted for r in self.loads))

    def _share(self, admitted: int) -> float:
        sc = self.scenario
        windows = (sc.duration - sc.warmup) / sc.window
        return admitted / (windows * sc.limit)


# ---- how the simulation talks to a limiter ------------------------------------------------------


class Driver(Protocol):
    """One limiter as the senders of a load use it."""

    limiter: Any

    def acquire(self, now: Callable[[], float]) -> Generator[float, None, Any]: ...
    def sent(self, permit: Any, at: float) -> None: ...
    def release(self, permit: Any) -> None: ...
    def answered(self, permit: Any, rate: RateLimitInfo, at: float) -> None: ...
    def rejected(self, permit: Any, rate: RateLimitInfo, retry_after: float | None) -> None: ...


class NewDriver:
    """This checkout's limiter, through its public API (try_acquire is what acquire() loops on)."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def acquire(self, now: Callable[[], float]) -> Generator[float, None, Permit]:
        while True:
            got = self.limiter.try_acquire()
            if isinstance(got, Permit):
                return got
            yield got

    def sent(self, permit: Permit, at: float) -> None:
        self.limiter.sent(permit, at)

    def release(self, permit: Permit) -> None:
        self.limiter.release(permit)

    def answered(self, permit: Permit, rate: RateLimitInfo, at: float) -> None:
        self.limiter.observe(permit, rate, at)

    def rejected(self, permit: Permit, rate: RateLimitInfo, retry_after: float | None) -> None:
        self.limiter.on_rate_limited(permit, retry_after, rate)


class OldDriver:
    """The limiter before the rewrite: acquire() reserved a slot, slept until it, checked it
    was still valid; the sender passed the slot to observe() and knew no send times."""

    def __init__(self, limiter: Any) -> None:
        self.limiter = limiter

    def acquire(self, now: Callable[[], float]) -> Generator[float, None, float]:
        lim = self.limiter
        with lim._lock:
            slot: float = lim._reserve_slot(now())
        while True:
            if slot > now():
                yield slot - now()
            with lim._lock:
                if lim._still_valid(slot):
                    return slot
                lim._release(slot)
                slot = lim._reserve_slot(now())

    def sent(self, permit: float, at: float) -> None:
        return None

    def release(self, permit: float) -> None:
        with self.limiter._lock:
            self.limiter._release(permit)

    def answered(self, permit: float, rate: RateLimitInfo, at: float) -> None:
        self.limiter.observe(rate, permit)

    def rejected(self, permit: float, rate: RateLimitInfo, retry_after: float | None) -> None:
        self.limiter.observe(rate, permit)
        self.limiter.on_rate_limited(retry_after)


LimiterFactory = Callable[[Callable[[], float], int], Driver]


def new_limiter(clock: Callable[[], float], load: int) -> Driver:
    return NewDriver(RateLimiter(clock=clock, sleep=_no_sleep))


def old_limiter_factory(revision: str = OLD_REVISION) -> LimiterFactory:
    """The limiter module at `revision`, loaded from git, as a factory for simulate()."""
    source = subprocess.run(
        ["git", "show", f"{revision}:bulkload/hubspot/ratelimit.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    module = types.ModuleType(f"ratelimit_{revision}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{revision}:bulkload/hubspot/ratelimit.py", "exec"), module.__dict__)

    def make(clock: Callable[[], float], load: int) -> Driver:
        return OldDriver(module.RateLimiter(clock=clock, sleep=_no_sleep))

    return make


def _no_sleep(seconds: float) -> None:
    raise AssertionError("the simulation drives try_acquire(); nothing may sleep")


# ---- the simulation ------------------------------------------------------------------------------


class _Loop:
    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Task]] = []
        self._seq = itertools.count()

    def start(self, task: Task, at: float = 0.0) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), task))

    def run(self) -> None:
        while self._heap:
            at, _, task = heapq.heappop(self._heap)
            self.now = max(self.now, at)
            try:
                delay = next(task)
            except StopIteration:
                continue
            heapq.heappush(self._heap, (self.now + max(0.0, delay), next(self._seq), task))


# Called after each answer: (load, its limiter, sent at, arrived at, admitted).
Watcher = Callable[[int, Any, float, float, bool], None]


def simulate(
    scenario: Scenario, make: LimiterFactory = new_limiter, watch: Watcher | None = None
) -> SimResult:
    """Run `scenario` with limiters from `make`; see the module docstring."""
    sc = scenario
    rng = random.Random(sc.seed)
    loop = _Loop()
    server = ServerWindow(
        SandboxConfig(rate_limit_max=sc.limit, rate_limit_window_s=sc.window, retry_after=True)
    )
    token = "token"
    end = sc.duration
    loads = [LoadResult() for _ in range(sc.loads)]
    competitor = LoadResult()
    drivers = [make(lambda: loop.now, n) for n in range(sc.loads)]
    starts = list(sc.starts) + [0.0] * (sc.loads - len(sc.starts))

    def round_trip() -> tuple[float, float]:
        rtt = max(0.0, sc.latency + rng.uniform(-sc.jitter, sc.jitter))
        up = rtt * rng.uniform(*sc.uplink)
        return up, rtt - up

    def arrive(result: LoadResult) -> tuple[bool, RateLimitInfo, float | None]:
        verdict = server.check(token, loop.now)
        info = RateLimitInfo.from_headers({k.decode(): v.decode() for k, v in verdict.headers})
        result.requests += 1
        if verdict.policy is None:
            result.admitted += 1
            result.arrivals.append(loop.now)
            if sc.warmup <= loop.now < end:
                result.steady_admitted += 1
            return True, info, None
        result.limited += 1
        return False, info, float(verdict.retry_after_s) if sc.retry_after else None

    def sender(n: int, driver: Driver, result: LoadResult) -> Task:
        attempt = 0
        while True:
            permit = yield from driver.acquire(lambda: loop.now)
            if loop.now >= end:
                driver.release(permit)
                return
            yield rng.uniform(0.0, sc.late)
            sent = loop.now
            driver.sent(permit, sent)
            up, down = round_trip()
            yield up
            arrived = loop.now
            ok, info, retry_after = arrive(result)
            yield down
            if watch is not None:
                watch(n, driver.limiter, sent, arrived, ok)
            if ok:
                attempt = 0
                driver.answered(permit, info, loop.now)
                continue
            attempt += 1
            driver.rejected(permit, info, retry_after)
            yield rng.uniform(0.0, min(60.0, 0.5 * 2 ** (attempt - 1)))

    def naive(every: float) -> Task:
        while loop.now < end:
            loop.start(one_naive())
            yield every

    def one_naive() -> Task:
        up, _ = round_trip()
        yield up
        arrive(competitor)

    for n, driver in enumerate(drivers):
        for _ in range(sc.concurrency):
            loop.start(sender(n, driver, loads[n]), starts[n])
    if sc.competitor:
        every = sc.window / sc.competitor
        loop.start(naive(every), sc.competitor_from + rng.uniform(0, every))
    loop.run()

    admitted = sorted(itertools.chain(competitor.arrivals, *(r.arrivals for r in loads)))
    return SimResult(sc, loads, competitor, _worst_window(admitted, sc.window),
                     [d.limiter for d in drivers])


def _worst_window(times: Sequence[float], window: float) -> int:
    """The most times in any half-open window (t - window, t]."""
    worst = 0
    for i, t in enumerate(times):
        worst = max(worst, i + 1 - bisect.bisect_right(times, t - window, 0, i + 1))
    return worst


# ---- the scenarios of issue 14 ----------------------------------------------------------------


def scenarios(seed: int, minutes: float = 10.0) -> Iterator[Scenario]:
    """Issue 14's cases at 190/10 s, 150 ms round trips, sends up to 100 ms late."""
    base = Scenario(seed=seed, duration=60.0 * minutes)
    yield replace(base, name="alone +-50ms")
    yield replace(base, name="alone +-100ms", jitter=0.1)
    yield replace(base, name="two loads", loads=2, concurrency=6)
    yield replace(base, name="two loads, 2nd at 60s", loads=2, concurrency=6, starts=(0.0, 60.0),
                  warmup=90.0)
    yield replace(base, name="beside naive 30/10s", competitor=30)
    yield replace(base, name="naive 90/10s from 200s", competitor=90, competitor_from=200.0)
    # As the sandbox does it: all the latency before the count; sends barely late.
    yield replace(base, name="all jitter uplink", uplink=(1.0, 1.0), late=0.01)


def table_row(label: str, result: SimResult) -> str:
    sc = result.scenario
    shares = " / ".join(f"{result.share(n):6.2%}" for n in range(len(result.loads)))
    limited = " / ".join(f"{load.limited_share:5.2%}" for load in result.loads)
    naive = f"{result.competitor.limited_share:6.2%}" if sc.competitor else "     -"
    return (f"{sc.name:24s} {sc.seed:4d} {label:3s}  {result.combined_share:7.2%}  {shares:17s}"
            f"  {limited:15s}  {naive}  {result.worst_window:5d}")


TABLE_HEADER = (f"{'scenario':24s} {'seed':>4s} {'':3s}  {'window':>7s}  {'each load':17s}"
                f"  {'429s of each':15s}  {'naive':>6s}  {'worst':>5s}")


def describe(result: SimResult) -> str:
    sc = result.scenario
    parts = [f"used {result.combined_share:7.2%}", f"worst {result.worst_window:3d}"]
    for n, load in enumerate(result.loads):
        parts.append(f"L{n + 1} {result.share(n):6.2%} 429 {load.limited_share:6.2%}")
    if sc.competitor:
        parts.append(f"naive 429 {result.competitor.limited_share:6.2%}")
    return "  ".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--old", default=OLD_REVISION, help="git revision of the limiter to compare with")
    ap.add_argument("--no-old", action="store_true", help="only this checkout's limiter")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--only", default=None, help="run only scenarios whose name contains this")
    args = ap.parse_args(argv)
    old = None if args.no_old else old_limiter_factory(args.old)
    print("window: admitted per window / the limit over the steady state, all sources;")
    print("each load: its share of the limit; worst: most admitted in any rolling window")
    print(TABLE_HEADER, flush=True)
    for name in [sc.name for sc in scenarios(0, args.minutes)]:
        if args.only and args.only not in name:
            continue
        for seed in args.seeds:
            sc = next(sc for sc in scenarios(seed, args.minutes) if sc.name == name)
            print(table_row("new", simulate(sc)), flush=True)
            if old is not None:
                print(table_row("old", simulate(sc, old)), flush=True)


if __name__ == "__main__":
    main()
