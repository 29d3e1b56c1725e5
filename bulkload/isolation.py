"""What isolating rejected inputs has cost and shown in one run of a job, shared by the
sender threads: the split budget, the evidence of a systematic cause, the refused values.

When HubSpot rejects a batch whole (400/409) and its answer names no input, the sender
bisects it until each failure stands alone: 2n - 1 requests for n inputs when every one
is bad. A cause every row shares (a portal validation rule, a property made required)
would so spend about two requests a row, days of quota over a million rows, to learn one
thing n times. This ledger bounds that:

- Split requests are the halves of a bisection: requests sent only to narrow down
  inputs an answer did not name. A run may spend at most `share` of its requests on them
  (20 % by default), or `floor`, whichever is more, so that a small job can still isolate
  a few bad rows (one costs about 2 * log2(100) = 14 in a batch of 100). Reaching that
  stops the run: SplitBudgetSpent. (The rest of a group re-sent after an answer named its
  bad inputs or values is not a split request: each follows a request that isolated at
  least one input, so there are never more of them than failed rows.)
- A systematic cause: at least `after` inputs isolated by bisection (each alone in a
  request HubSpot rejected without naming it) failed with one cause, the same errorType,
  HubSpot code and property, and they are at least `systematic_share` of every input that
  bisection resolved (those isolated and those that landed out of a split group).
  Bisection then finds almost nothing but that one error: the rows are not at fault one
  by one, a rule is, and bisecting on would cost 2n - 1 requests a batch to say the same
  thing again. That stops the run: SystematicRejection, with the cause and the fix.
  A file whose bad rows are a minority (a tenth of the rows miss a conditionally required
  value) never qualifies: bisection lands nine rows for each one it isolates. One batch
  whose rows all fail one way can qualify on its own; bisecting it to the end (199
  requests) would spend the split budget of a young run anyway.
- Refused values: the (property, value) pairs a rejection named as invalid (HubSpot's
  "Property values were not valid: [...]" names the value). Every later input carrying
  one fails the same way without being sent (same property, same value, same verdict).

The evidence is per run (a Sender lives for one run; `resume` starts afresh) and per
request kind: a landed upsert says nothing about associations. A stop, once decided, is
raised in every thread that next wants to isolate, and the batches those threads hold
stay unrecorded, so their rows stay pending. All of it sits behind one lock: the tallies
are a few integers, and a decision must see them all at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence

from bulkload.config import (
    DEFAULT_SPLIT_FLOOR,
    DEFAULT_SPLIT_SHARE,
    SYSTEMATIC_AFTER,
    SYSTEMATIC_SHARE,
)
from bulkload.errors import SplitBudgetSpent, SystematicRejection
from bulkload.hubspot.responses import fail_by_value
from bulkload.models import FailedRow, UpsertInput
from bulkload.taxonomy import ErrorType, how_to_fix

__all__ = ["Cause", "IsolationLedger"]

Cause = tuple[str, str | None, str | None]  # (errorType, HubSpot's code, property)

_NOUN = {"upsert": "rows", "associate": "associations"}
_RULE_TYPES = frozenset({ErrorType.MISSING_REQUIRED_PROPERTY.value, ErrorType.VALIDATION_RULE.value})


def cause_of(failure: FailedRow) -> Cause:
    return failure.error_type, failure.hubspot_code, failure.property_name


class IsolationLedger:
    """The split budget, the evidence of a systematic cause and the refused values of one
    run; safe to share between threads."""

    def __init__(
        self,
        *,
        share: float = DEFAULT_SPLIT_SHARE,
        floor: int = DEFAULT_SPLIT_FLOOR,
        after: int = SYSTEMATIC_AFTER,
        systematic_share: float = SYSTEMATIC_SHARE,
    ) -> None:
        self.share = share
        self.floor = floor
        self.after = after
        self.systematic_share = systematic_share
        self._lock = threading.Lock()
        self.requests = 0  # every request of the run, split requests included
        self.split_requests = 0
        self._isolated: dict[str, Counter[Cause]] = {}
        self._example: dict[tuple[str, Cause], FailedRow] = {}
        self._cleared: Counter[str] = Counter()
        self._stop: SystematicRejection | None = None
        self._refused: dict[str, dict[str, FailedRow]] = {}

    @property
    def unbounded(self) -> bool:
        """share 1: isolate every row whatever it costs, never stop on a cause."""
        return self.share >= 1.0

    # --- what happened ------------------------------------------------------------------

    def sent(self) -> None:
        """One request went out (any kind, any reason)."""
        with self._lock:
            self.requests += 1

    def before_split(self, kind: str) -> None:
        """A split request is about to go out: count it, or raise when the run must stop
        isolating (the budget is spent, or a stop was decided)."""
        with self._lock:
            if (self._stop is None and not self.unbounded
                    and self.split_requests + 1 > max(self.floor, self.share * (self.requests + 1))):
                self._stop = self._budget_spent(kind)
            self._raise_stop()
            self.split_requests += 1

    def isolated(self, kind: str, failure: FailedRow) -> None:
        """Bisection isolated `failure` (alone in a request rejected without naming it);
        raises SystematicRejection once the evidence says the cause is not the rows."""
        cause = cause_of(failure)
        with self._lock:
            counts = self._isolated.setdefault(kind, Counter())
            counts[cause] += 1
            self._example.setdefault((kind, cause), failure)
            n = counts[cause]
            resolved = sum(counts.values()) + self._cleared[kind]
            if self._stop is None and not self.unbounded and n >= self.after and n >= self.systematic_share * resolved:
                self._stop = self._systematic(kind, cause, n, resolved)
            self._raise_stop()

    def cleared(self, kind: str, n: int) -> None:
        """`n` inputs landed out of a split group: bisection found them good."""
        if n:
            with self._lock:
                self._cleared[kind] += n

    def check(self) -> None:
        """Raise the run's stop, if one was decided (before a new batch is sent)."""
        if self._stop is not None:
            with self._lock:
                self._raise_stop()

    # --- refused values -----------------------------------------------------------------

    def refuse(self, refused: Mapping[str, Mapping[str, FailedRow]]) -> None:
        """Remember values HubSpot named as invalid, for the rest of the run."""
        with self._lock:
            for name, values in refused.items():
                known = self._refused.setdefault(name, {})
                for value, failure in values.items():
                    known.setdefault(value, failure)

    def refused_inputs(self, inputs: Sequence[UpsertInput]) -> dict[str, FailedRow]:
        """The inputs that carry a value HubSpot already refused, failed as it said."""
        if not self._refused:
            return {}
        with self._lock:
            refused = {name: dict(values) for name, values in self._refused.items()}
        return fail_by_value(refused, inputs)

    # --- the stops ----------------------------------------------------------------------

    def _raise_stop(self) -> None:
        stop = self._stop
        if stop is None:
            return
        # A fresh exception for each thread: one instance raised in several threads at
        # once would share (and garble) one traceback.
        cls = type(stop)
        raise cls(stop.cause, stop.fix, error_type=stop.error_type, property_name=stop.property_name,
                  isolated=stop.isolated, split_requests=stop.split_requests, requests=stop.requests)

    def _systematic(self, kind: str, cause: Cause, n: int, resolved: int) -> SystematicRejection:
        error_type, code, name = cause
        noun = _NOUN.get(kind, "inputs")
        example = self._example[(kind, cause)]
        what = f"{error_type}{f' on {name}' if name else ''}{f' ({code})' if code and code != error_type else ''}"
        cause_text = (
            f"HubSpot rejects whole batches and names no {noun[:-1]}, and bisection finds one cause: "
            f"{n} of the {resolved} {noun} it resolved failed with {what}: {_short(example.message)}. "
            f"Isolating stopped after {self.split_requests} of the run's {self.requests} requests; "
            f"the {noun} not yet isolated are pending."
        )
        if error_type in _RULE_TYPES and name:
            fix = (f"HubSpot requires {name} on every write (a required property or a validation rule of the "
                   f"portal): lift the rule in HubSpot, or map a column to {name}, then resume.")
        else:
            fix = (f"{how_to_fix(error_type)} When every row fails this way the cause is shared (a setting of the "
                   "portal, the mapping, the whole file): fix it, then resume.")
        return SystematicRejection(cause_text, fix, error_type=error_type, property_name=name, isolated=n,
                                   split_requests=self.split_requests, requests=self.requests)

    def _budget_spent(self, kind: str) -> SplitBudgetSpent:
        noun = _NOUN.get(kind, "inputs")
        counts = self._isolated.get(kind, Counter())
        top = counts.most_common(1)
        seen = ""
        error_type = name = None
        n = 0
        if top:
            (error_type, _, name), n = top[0]
            seen = f"; {sum(counts.values())} isolated so far, {n} of them with {error_type}" + (
                f" on {name}" if name else "")
        cause_text = (
            f"HubSpot rejects whole batches and names no {noun[:-1]}: isolating the bad {noun} took "
            f"{self.split_requests} of the run's {self.requests} requests, the most it may "
            f"({self.share:.0%}, at least {self.floor}){seen}. The {noun} not yet isolated are pending."
        )
        fix = ("Look at what failed so far (bulkload report), fix the cause in HubSpot or in the file, then resume; "
               "to isolate every row whatever it costs, resume with --split-share 1 "
               "(bulkload.resume(JOB_ID, split_share=1)).")
        return SplitBudgetSpent(cause_text, fix, error_type=error_type, property_name=name, isolated=n,
                                split_requests=self.split_requests, requests=self.requests)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
