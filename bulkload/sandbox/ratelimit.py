"""HubSpot's two request limits: a rolling window per token (TEN_SECONDLY_ROLLING)
and a daily count per account (DAILY), with the X-HubSpot-RateLimit-* headers.

A batch request counts as one request. By default only admitted requests use up
the window: HubSpot says an app over its limit "will receive a 429 for all
subsequent API calls", which holds while the window is full; whether the 429s
themselves extend the lockout is not documented, so `counts_rejected` makes the
stricter reading available.

The daily counter resets when the clock passes midnight UTC (HubSpot resets at
midnight in the account's time zone), or on `reset_daily()`. Private-app tokens
get the Daily headers on every answer; OAuth tokens (`oauth_tokens`) neither
count against the daily limit nor get Daily headers, as HubSpot answers OAuth apps.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from bulkload.sandbox.config import SandboxConfig


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one request against the limits, and the headers to send."""

    policy: str | None  # None: admitted; else "TEN_SECONDLY_ROLLING" or "DAILY"
    headers: list[tuple[bytes, bytes]]
    retry_after_s: int = 0


class RateLimiter:
    def __init__(self, config: SandboxConfig) -> None:
        self.windows: dict[str, deque[float]] = {}
        self.daily_used = 0
        self._day: int | None = None
        self.configure(config)

    def configure(self, config: SandboxConfig) -> None:
        """Take the limits from `config`; requests already counted stay counted."""
        self.max_requests = config.rate_limit_max
        self.window_s = config.rate_limit_window_s
        self.daily_limit = config.daily_limit
        self.counts_rejected = config.rate_limit_counts_rejected
        self.oauth_tokens = frozenset(config.oauth_tokens)
        self._interval = str(round(self.window_s * 1000)).encode()
        self._max = str(self.max_requests).encode()
        self._daily = str(self.daily_limit).encode()

    def reset_daily(self) -> None:
        self.daily_used = 0

    def reset(self) -> None:
        self.windows.clear()
        self.daily_used = 0

    def check(self, token: str, now: float) -> Verdict:
        """Count one request by `token` at `now` (seconds) and say whether it may proceed."""
        day = int(now // 86_400)
        if day != self._day:
            self._day = day
            self.daily_used = 0

        window: deque[float] | None = None
        in_window = 0
        if self.max_requests is not None:
            window = self.windows.get(token)
            if window is None:
                window = self.windows[token] = deque()
            horizon = now - self.window_s
            while window and window[0] <= horizon:
                window.popleft()
            in_window = len(window)

        daily = self.daily_limit is not None and token not in self.oauth_tokens
        policy: str | None = None
        retry_after = 0.0
        if daily and self.daily_limit is not None and self.daily_used >= self.daily_limit:
            policy = "DAILY"
            retry_after = (day + 1) * 86_400 - now
        elif (
            window is not None and self.max_requests is not None and in_window >= self.max_requests
        ):
            policy = "TEN_SECONDLY_ROLLING"
            retry_after = window[in_window - self.max_requests] + self.window_s - now

        if policy is None or self.counts_rejected:
            if window is not None:
                window.append(now)
                in_window += 1
            if daily:
                self.daily_used += 1

        headers: list[tuple[bytes, bytes]] = []
        if self.max_requests is not None:
            remaining = max(0, self.max_requests - in_window)
            headers += [
                (b"x-hubspot-ratelimit-max", self._max),
                (b"x-hubspot-ratelimit-remaining", str(remaining).encode()),
                (b"x-hubspot-ratelimit-interval-milliseconds", self._interval),
            ]
        if daily and self.daily_limit is not None:
            headers += [
                (b"x-hubspot-ratelimit-daily", self._daily),
                (
                    b"x-hubspot-ratelimit-daily-remaining",
                    str(max(0, self.daily_limit - self.daily_used)).encode(),
                ),
            ]
        return Verdict(policy, headers, max(1, math.ceil(retry_after)) if policy else 0)
