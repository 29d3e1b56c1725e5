"""The exceptions the HubSpot client raises for answers that are not 200/207.

See the tree in bulkload.hubspot.client's docstring. Each carries what the
sender needs to decide (retry, wait, bisect, stop) and never the token.
"""

from __future__ import annotations

from bulkload.errors import EXIT_RESUMABLE, HubSpotError
from bulkload.hubspot.ratelimit import RateLimitInfo
from bulkload.models import FailedRow

__all__ = ["BatchRejected", "RateLimited", "RequestRejected", "TransientError", "UnexpectedResponse"]


class BatchRejected(HubSpotError):
    """HubSpot refused the whole request (400, 409, other 4xx about the inputs).

    `failures` carry a trace id when the body says which input is at fault
    (context.objectWriteTraceId, context.ids, or a one-input batch); one with
    trace_id None describes the batch as a whole. Nothing was written.
    """

    def __init__(
        self,
        status: int,
        failures: list[FailedRow],
        message: str,
        *,
        correlation_id: str | None = None,
        rate: RateLimitInfo | None = None,
    ) -> None:
        super().__init__(f"HubSpot rejected the batch (HTTP {status}): {message}")
        self.status = status
        self.failures = failures
        self.message = message
        self.correlation_id = correlation_id
        self.rate = rate

    @property
    def attributed(self) -> dict[str, FailedRow]:
        """Failures the body tied to an input, by trace id."""
        return {f.trace_id: f for f in self.failures if f.trace_id is not None}


class RateLimited(HubSpotError):
    """429: a rate limit was hit. `policy` is HubSpot's policyName (TEN_SECONDLY_ROLLING, DAILY)."""

    # Should it escape the sender, the job is resumable, not broken.
    exit_code = EXIT_RESUMABLE

    def __init__(
        self,
        policy: str | None,
        retry_after: float | None,
        rate: RateLimitInfo | None,
        message: str = "",
    ) -> None:
        super().__init__(
            f"HubSpot rate limit hit (policy {policy or 'unknown'}): {message or 'HTTP 429'}"
        )
        self.policy = policy
        self.retry_after = retry_after
        self.rate = rate
        self.message = message

    @property
    def daily(self) -> bool:
        return (self.policy or "").upper() == "DAILY"


class TransientError(HubSpotError):
    """A failure worth retrying: 5xx, 423, 477, timeouts, resets, a garbled 2xx.

    `status` is None when no response arrived. The request may or may not have
    been applied; resending an upsert keyed by idProperty is harmless.
    """

    exit_code = EXIT_RESUMABLE

    def __init__(
        self,
        reason: str,
        status: int | None = None,
        *,
        retry_after: float | None = None,
        rate: RateLimitInfo | None = None,
    ) -> None:
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"transient HubSpot failure ({where}): {reason}")
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.rate = rate


class RequestRejected(HubSpotError):
    """An answer about the request itself, not any input: a non-unique idProperty, an
    unknown object type, a 404 or 405 on the endpoint. Every batch would get the same
    answer, so the run stops at the first one (see bulkload.errors)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UnexpectedResponse(RequestRejected):
    """An answer the protocol does not allow for (3xx, a malformed request of ours)."""
