"""Daily API usage: count every call by kind, and hold the job to its --daily-budget.

The budget is a rolling 24 hours, as HubSpot's own daily limit is a day: the calls the
journal has counted since 24 hours ago (read through `usage_since`, refreshed every
half minute) plus the calls counted here since. A call is counted before it is sent,
so a lost response still costs one. The meter is the SendHooks of every sender thread;
the run loop takes its counts into the journal once a turn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bulkload.errors import QuotaExhausted
from bulkload.hubspot.ratelimit import RateLimitInfo

REFRESH_SECONDS = 30.0
DAY = 86_400.0


class UsageMeter:
    """Counts API calls by kind and enforces --daily-budget; thread-safe."""

    def __init__(
        self,
        budget: int | None,
        *,
        wall: Callable[[], float],
        usage_since: Callable[[float], int],
        oldest_minute_since: Callable[[float], int | None],
    ) -> None:
        self.budget = budget
        self.wall = wall
        self._usage_since = usage_since
        self._oldest_since = oldest_minute_since
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}
        self._limited: dict[str, int] = {}
        self._retries: dict[str, int] = {}
        self._server_errors: dict[str, int] = {}
        self._last_rate: dict[str, Any] | None = None
        self._refresh_at = 0.0
        self._base = 0  # calls in the journal over the last 24 h, at the last refresh
        self._pending = 0  # calls counted here and not yet taken into the journal
        self._oldest: int | None = None

    def _refresh(self) -> None:
        now = self.wall()
        if now >= self._refresh_at:
            base = self._usage_since(now - DAY)
            oldest = self._oldest_since(now - DAY)
            with self._lock:
                self._base, self._oldest = base, oldest
            self._refresh_at = now + REFRESH_SECONDS

    def check(self) -> None:
        """Raise QuotaExhausted when the budget is spent (the run loop's thread)."""
        if self.budget is None:
            return
        self._refresh()
        with self._lock:
            used = self._base + self._pending
        if used >= self.budget:
            raise self.exhausted()

    def exhausted(self) -> QuotaExhausted:
        """The pause, with when the rolling 24 hours free the oldest calls again."""
        now = self.wall()
        oldest = self._oldest if self._oldest is not None else int(now // 60)
        at = datetime.fromtimestamp((oldest + 1) * 60 + DAY, UTC)
        return QuotaExhausted(
            f"the daily budget of {self.budget:,} API calls is spent; calls free up from {at:%Y-%m-%d %H:%M} UTC",
            resume_after=at,
        )

    # ---- SendHooks, called from sender threads -------------------------------------------

    def before_request(self, kind: str) -> None:
        with self._lock:
            spent = self.budget is not None and self._base + self._pending >= self.budget
            if not spent:
                self._pending += 1
                self._calls[kind] = self._calls.get(kind, 0) + 1
        if spent:
            raise self.exhausted()

    def after_response(self, kind: str, status: int | None, rate: RateLimitInfo | None) -> None:
        with self._lock:
            if status == 429:
                self._limited[kind] = self._limited.get(kind, 0) + 1
            elif status is not None and status >= 500:
                self._server_errors[kind] = self._server_errors.get(kind, 0) + 1
            if rate is not None:
                self._last_rate = {k: getattr(rate, k) for k in ("max", "remaining", "interval_ms", "daily",
                                                                  "daily_remaining")}

    def on_retry(self, kind: str) -> None:
        with self._lock:
            self._retries[kind] = self._retries.get(kind, 0) + 1

    # ---- the run loop -------------------------------------------------------------------------

    def take(self) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, Any] | None]:
        """The calls, 429s and retries by kind counted since the last take, and the latest rate headers."""
        with self._lock:
            out = (self._calls, self._limited, self._retries, self._last_rate)
            self._calls, self._limited, self._retries, self._last_rate = {}, {}, {}, None
            self._base += self._pending
            self._pending = 0
        return out

    def take_server_errors(self) -> dict[str, int]:
        """The 5xx answers by kind since the last call, for the health page's timeline (one
        counted between `take` and this goes with this turn's calls or the next's, which a
        10-second timeline cannot tell apart)."""
        with self._lock:
            out, self._server_errors = self._server_errors, {}
        return out
