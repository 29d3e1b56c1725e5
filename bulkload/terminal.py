"""What a long run shows a person while it works, and how it stops: the progress display
and the Ctrl-C / SIGTERM handling of the command line.

On a terminal, a tqdm bar with rows done, the counts (upserted, failed, pending), the pace
against HubSpot's limit, and what the run waits for ("waiting for the rate limit",
"backing off 8 s after HTTP 502"). Elsewhere (a CI log, a pipe) a line every half minute
says the same, so a long job in a log is not silent. `--no-progress` shows nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import IO, Any

import click
from tqdm import tqdm

from bulkload.errors import EXIT_RESUMABLE

LOG_EVERY_SECONDS = 30.0


class ShownProgress:
    """The pipeline's Progress, shown as a bar (terminal) or as periodic lines (elsewhere)."""

    def __init__(self, desc: str, *, enabled: bool = True, stream: IO[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.desc = desc
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.clock = clock
        self.bar: tqdm[Any] | None = None
        self.total = self.done = self.failed = 0
        self.started = 0.0
        self.wait: str | None = None
        self.shown_pace: str | None = None
        self._next_log = 0.0
        self._lock = threading.Lock()

    # ---- Progress ----------------------------------------------------------------------------

    def start(self, total: int, done: int) -> None:
        self.total, self.done, self.started = total, done, self.clock()
        self._next_log = self.started + LOG_EVERY_SECONDS
        if self.tty:
            # A terminal that reports 0 columns (some CI runners, odd TERMs) would get no bar.
            # tqdm's dynamic width asks the terminal again at each draw, and would draw nothing
            # where it reports 0 columns (a pty nobody sized: CI runners, `script`): fixed then.
            # Its rows too: at 0 rows (tqdm reads -1) it draws no bar at position 0.
            cols, rows = _size(self.stream)
            self.bar = tqdm(total=total, initial=done, unit="row", unit_scale=True, desc=self.desc,
                            ncols=cols or 80, nrows=rows or 24, file=self.stream, smoothing=0.1,
                            dynamic_ncols=cols > 0 and rows > 0)
            self._refresh()

    def advance(self, rows: int, failed: int = 0) -> None:
        with self._lock:
            self.done += rows
            self.failed += failed
            if self.bar is not None:
                self.bar.update(rows)
                self._refresh()
            elif self.enabled and self.clock() >= self._next_log:
                self._log()

    def note(self, wait: str | None = None, pace: str | None = None) -> None:
        """What the run is waiting for (None: nothing), and the pace it holds to."""
        with self._lock:
            self.wait = wait
            if pace is not None:
                self.shown_pace = pace
            if self.bar is not None:
                self._refresh()
            elif self.enabled and wait and self.clock() >= self._next_log:
                self._log()

    def pace(self, pace: Callable[[], str]) -> None:
        """The pace the run holds to, e.g. "183/190 per 10 s" (requests in the last window),
        asked for only when a bar shows it."""
        with self._lock:
            if self.bar is None:
                return
            text = pace()
            if text != self.shown_pace:
                self.shown_pace = text
                self._refresh()

    def close(self) -> None:
        with self._lock:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            elif self.enabled and self.total and self.clock() - self.started >= LOG_EVERY_SECONDS:
                self._log()

    # ---- drawing ---------------------------------------------------------------------------------

    def _counts(self) -> str:
        upserted = max(0, self.done - self.failed)
        pending = max(0, self.total - self.done)
        return f"{upserted:,} ok · {self.failed:,} failed · {pending:,} pending"

    def _refresh(self) -> None:
        assert self.bar is not None
        self.bar.set_description(f"{self.desc} ({self.wait})" if self.wait else self.desc, refresh=False)
        self.bar.set_postfix_str(self._counts() + (f" · limit {self.shown_pace}" if self.shown_pace else ""), refresh=True)

    def _log(self) -> None:
        elapsed = max(1e-9, self.clock() - self.started)
        share = f" ({100 * self.done / self.total:.1f} %)" if self.total else ""
        wait = f" · {self.wait}" if self.wait else ""
        print(f"{self.desc}: {self.done:,} of {self.total:,} rows{share} · {self._counts()} · "
              f"{self.done / elapsed:,.0f} rows/s{wait}", file=self.stream, flush=True)
        self._next_log = self.clock() + LOG_EVERY_SECONDS


def _size(stream: IO[str]) -> tuple[int, int]:
    """The terminal's (columns, rows) as it reports them, $COLUMNS and $LINES first (as
    shutil reads them); 0 where it reports none."""
    try:
        size = os.get_terminal_size(stream.fileno())
        cols, rows = size.columns, size.lines
    except (AttributeError, OSError, ValueError):
        cols = rows = 0
    return _env_int("COLUMNS") or max(0, cols), _env_int("LINES") or max(0, rows)


def _env_int(name: str) -> int:
    try:
        return max(0, int(os.environ.get(name, "0")))
    except ValueError:
        return 0


@contextmanager
def graceful_signals(stop: threading.Event, hint: str, reason: list[str] | None = None) -> Iterator[None]:
    """First Ctrl-C/SIGTERM: stop claiming batches and let in-flight ones finish (up to the
    grace period). Second: leave at once. The journal is consistent at every instant, so
    both are resumable. `reason` receives which signal it was, for the journal."""

    received: list[int] = []  # the signals themselves: `stop` is also set when a run ends

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) > 1:
            click.echo(f"\nInterrupted. Resume with: {hint}", err=True)
            os._exit(EXIT_RESUMABLE)
        if reason is not None:
            reason.append("Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name)
        stop.set()
        click.echo("\nStopping: finishing in-flight requests (Ctrl-C again to stop at once)…", err=True)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
