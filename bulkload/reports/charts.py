"""The health page's timeline as plain geometry for an inline SVG: requests per window
against HubSpot's limit, 429s and 5xx marked, pauses shaded.

Pure functions of the journal's 10-second ticks and its runs; the template draws what
comes out (rectangles, marks, bands, labels), so nothing here knows HTML. A long job is
kept small: idle stretches longer than `BREAK_SECONDS` (a pause between runs, a quota
wait) are drawn as a narrow shaded band instead of hours of nothing, and when the active
time still holds more than `MAX_BARS` windows, windows are merged (20 s, 30 s, 1 min, ...)
and the limit line is scaled to match.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bulkload.journal import RunRow, Tick

WIDTH = 1000.0
HEIGHT = 200.0
TOP = 16.0  # room for the 429 / 5xx marks above the bars
BOTTOM = 22.0  # room for the time labels
BREAK_WIDTH = 28.0
BREAK_SECONDS = 300
MAX_BARS = 600
MIN_BARS = 60
BUCKETS = (10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    calls: int
    rate_limited: int
    server_errors: int
    retries: int
    label: str  # the window, e.g. "10:42:10-10:42:20 UTC"
    over: bool  # above the window's limit


@dataclass(frozen=True)
class Band:
    """A stretch without requests: a pause between runs, or a wait inside one."""

    x: float
    w: float
    label: str
    paused: bool  # True: between runs (the job was paused or stopped); False: waiting in a run


@dataclass(frozen=True)
class Mark:
    x: float
    kind: str  # "429" | "5xx"
    count: int
    label: str


@dataclass(frozen=True)
class Timeline:
    bucket_seconds: int
    bars: list[Bar] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)  # (x, time label) on the axis
    limit: float | None = None  # requests per bucket HubSpot allows
    limit_y: float | None = None
    y_max: int = 0
    width: float = WIDTH
    height: float = HEIGHT
    baseline: float = HEIGHT - BOTTOM
    peak: int = 0  # the most requests in one bucket

    @property
    def empty(self) -> bool:
        return not self.bars


def epoch_of(iso: str | None) -> float | None:
    """Unix seconds of an ISO-8601 time from the journal (naive taken as UTC); None if unreadable."""
    if not iso:
        return None
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def duration_text(seconds: float) -> str:
    """3h 12m, 4m 05s, 12s."""
    s = round(seconds)
    if s >= 86_400:
        return f"{s // 86_400}d {s % 86_400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def _segments(times: Sequence[int]) -> list[tuple[int, int]]:
    """Runs of 10-second ticks (start, end inclusive) with no gap longer than BREAK_SECONDS."""
    out: list[tuple[int, int]] = []
    for t in times:
        if out and t - out[-1][1] <= BREAK_SECONDS:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def _bucket_for(segments: Sequence[tuple[int, int]]) -> int:
    active = sum(end - start + 10 for start, end in segments)
    for b in BUCKETS:
        if active / b <= MAX_BARS:
            return b
    return BUCKETS[-1]


def _run_gaps(runs: Sequence[RunRow]) -> list[tuple[float, float]]:
    """(end of a run, start of the next): the job was paused or stopped in between."""
    out = []
    for prev, nxt in itertools.pairwise(runs):
        end, start = epoch_of(prev.finished_at), epoch_of(nxt.started_at)
        if end is not None and start is not None and start > end:
            out.append((end, start))
    return out


def build_timeline(ticks: Sequence[Tick], runs: Sequence[RunRow], *, limit_per_10s: float | None) -> Timeline:
    """The timeline of a job's requests (see the module docstring)."""
    active = [t for t in ticks if t.calls or t.rate_limited or t.server_errors or t.retries]
    if not active:
        return Timeline(bucket_seconds=10)
    segments = _segments([t.at for t in active])
    bucket = _bucket_for(segments)
    # Windows of `bucket` seconds, aligned to the clock, per segment.
    merged: dict[int, list[int]] = {}
    for t in active:
        key = t.at - t.at % bucket
        acc = merged.setdefault(key, [0, 0, 0, 0])
        acc[0] += t.calls
        acc[1] += t.rate_limited
        acc[2] += t.server_errors
        acc[3] += t.retries
    spans = [(s - s % bucket, e - e % bucket) for s, e in segments]
    spans = _join_overlaps(spans, bucket)
    n_bars = sum((e - s) // bucket + 1 for s, e in spans)
    breaks = len(spans) - 1
    # A short job's few windows are drawn at the width of MIN_BARS, left to right, not stretched.
    bar_w = (WIDTH - breaks * BREAK_WIDTH) / max(MIN_BARS, n_bars)
    limit = limit_per_10s * bucket / 10 if limit_per_10s else None
    peak = max(acc[0] for acc in merged.values())
    # A limit far above what was sent (a --rate of 1,000,000/10) would flatten the bars to
    # nothing: the chart then scales to the requests and says the limit in words.
    limit_on_chart = limit is not None and limit <= 20 * peak
    y_max = max(peak, int(limit or 0) if limit_on_chart else 0) or 1
    y_max = int(y_max * 1.1) + 1
    base = HEIGHT - BOTTOM
    scale = (base - TOP) / y_max

    def y_of(v: float) -> float:
        return round(base - v * scale, 2)

    bars: list[Bar] = []
    marks: list[Mark] = []
    bands: list[Band] = []
    axis: list[tuple[float, str]] = []
    gaps = _run_gaps(runs)
    x = 0.0
    positions: list[tuple[int, int, float]] = []  # (span start, span end, x of its start)
    for i, (start, end) in enumerate(spans):
        if i:
            prev_end = spans[i - 1][1] + bucket
            paused = any(g0 < start and g1 > prev_end for g0, g1 in gaps)
            what = "paused" if paused else "no requests"
            bands.append(Band(round(x, 2), BREAK_WIDTH, f"{what} for {duration_text(start - prev_end)}", paused))
            x += BREAK_WIDTH
        positions.append((start, end, x))
        axis.append((round(x, 2), _clock(start)))
        for key in range(start, end + bucket, bucket):
            calls, limited, server, retries = merged.get(key, (0, 0, 0, 0))
            if calls or limited or server or retries:
                h = calls * scale
                window = f"{_clock(key)}-{_clock(key + bucket)} UTC"
                bars.append(Bar(round(x, 2), y_of(calls), round(max(bar_w - 0.4, 0.6), 2), round(h, 2), calls,
                                limited, server, retries, window, limit is not None and calls > limit))
                mid = round(x + bar_w / 2, 2)
                if limited:
                    marks.append(Mark(mid, "429", limited, f"{window}: {limited:,} answered 429"))
                if server:
                    marks.append(Mark(mid, "5xx", server, f"{window}: {server:,} answered 5xx"))
            x += bar_w
    # Pauses between runs that fit inside one stretch (a quick resume) are shaded in place.
    for g0, g1 in gaps:
        for start, end, x0 in positions:
            if start <= g0 and g1 <= end + bucket:
                gx = x0 + (g0 - start) / bucket * bar_w
                gw = max(2.0, (g1 - g0) / bucket * bar_w)
                bands.append(Band(round(gx, 2), round(gw, 2), f"paused for {duration_text(g1 - g0)}", True))
    axis = _thin(axis + _inner_ticks(positions, bucket, bar_w), min_gap=90.0)
    if not axis or x - axis[-1][0] >= 90.0:  # the end of the last window, where it has room
        axis.append((round(x, 2), _clock(spans[-1][1] + bucket)))
    return Timeline(bucket_seconds=bucket, bars=bars, bands=bands, marks=marks, ticks=axis, limit=limit,
                    limit_y=y_of(limit) if limit is not None and limit_on_chart else None, y_max=y_max, peak=peak)


def _join_overlaps(spans: list[tuple[int, int]], bucket: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if out and s <= out[-1][1] + bucket:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _inner_ticks(positions: Sequence[tuple[int, int, float]], bucket: int, bar_w: float) -> list[tuple[float, str]]:
    """A time label every ~150 px inside each stretch."""
    out = []
    step = max(1, int(150 / max(bar_w, 0.01)))
    for start, end, x0 in positions:
        n = (end - start) // bucket + 1
        for k in range(step, n, step):
            out.append((round(x0 + k * bar_w, 2), _clock(start + k * bucket)))
    return out


def _thin(ticks: list[tuple[float, str]], min_gap: float) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    for x, label in sorted(ticks):
        if not out or x - out[-1][0] >= min_gap:
            out.append((x, label))
    return [t for t in out if t[0] <= WIDTH - min_gap]


def bar_share(value: int, whole: int) -> float:
    """A bar's width in percent of its track (a non-zero value is never invisible)."""
    if whole <= 0 or value <= 0:
        return 0.0
    return round(max(0.5, min(100.0, 100.0 * value / whole)), 2)
