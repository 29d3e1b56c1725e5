"""The plain records that pass between the stages, and the states the journal keeps.

Lower layers import this module; it imports nothing of bulkload but the taxonomy, so a
record means the same thing in the reader, the sender, the journal and the report.

- `FailedRow`: the one record of a row that could not land, from the moment a check or
  HubSpot refuses it (`trace_id` set, `row_number` not yet) to the report (every field).
- `Superseded`: an earlier row of a repeated id, never sent.
- `BatchPlan`: what the chunker decided for a range of rows: the inputs to send, the
  rows that failed before sending, the superseded rows.
- `Landed` and `BatchOutcome`: what the sender made of a batch's inputs.
- `JobState`, `BatchStatus`: readable strings, as the journal stores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, NamedTuple, NotRequired, TypedDict

from bulkload.taxonomy import category_of


class JobState(StrEnum):
    RUNNING = "running"  # a process holds the job (scanning or sending); or it died (see status)
    PAUSED = "paused"  # stopped early and resumable
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"


FINISHED_STATES = frozenset({JobState.COMPLETED, JobState.COMPLETED_WITH_ERRORS})


class BatchStatus(StrEnum):
    IN_FLIGHT = "in_flight"  # claimed before sending; its outcome is not recorded (re-sent on resume)
    DONE = "done"  # every row of the batch landed
    PARTIAL = "partial"  # some rows failed
    FAILED = "failed"  # every row failed


FINISHED_BATCHES = (BatchStatus.DONE, BatchStatus.PARTIAL, BatchStatus.FAILED)

Origin = Literal["local", "hubspot"]


class UpsertInput(TypedDict):
    """One input of `POST .../batch/upsert`: the loader always sends idProperty and a
    unique objectWriteTraceId (what makes HubSpot answer per input)."""

    id: str
    properties: dict[str, str]
    idProperty: NotRequired[str]
    objectWriteTraceId: NotRequired[str]


def trace_id_of(inp: UpsertInput) -> str:
    """The key an input is known by in outcomes: its trace id, else its id value."""
    return inp.get("objectWriteTraceId") or inp["id"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a row: a row with three bad values has three."""

    error_type: str
    message: str
    property_name: str | None = None
    invalid_value: str | None = None


@dataclass(frozen=True, slots=True)
class FailedRow:
    """A row that could not land: what went wrong, and (once known) where it is.

    The first fields say what: `error_type` (taxonomy.ErrorType, or a newer HubSpot one),
    HubSpot's or our message, the property and value at fault. `problems` lists every
    problem when there are several (the first is the same as the top-level fields).
    `category` is computed once, here. The sender knows a failure by its `trace_id`;
    the pipeline adds the row's place in the file and its source data.
    """

    error_type: str
    message: str
    property_name: str | None = None
    invalid_value: str | None = None
    origin: Origin = "local"
    http_status: int | None = None
    hubspot_category: str | None = None
    hubspot_code: str | None = None
    correlation_id: str | None = None
    problems: tuple[Problem, ...] = ()
    trace_id: str | None = None
    row_number: int | None = None
    line_number: int | None = None
    id_value: str | None = None
    batch_no: int | None = None
    row_data: Mapping[str, Any] | None = None
    category: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "category", category_of(self.error_type).value)

    @property
    def all_problems(self) -> tuple[Problem, ...]:
        """Every problem of the row, the first one first."""
        if self.problems:
            return self.problems
        return (Problem(self.error_type, self.message, self.property_name, self.invalid_value),)


@dataclass(frozen=True, slots=True)
class Superseded:
    """An earlier row of a repeated id: never sent, a warning in the report."""

    row_number: int
    line_number: int | None
    id_value: str
    superseded_by: int  # the last row with that id: the one sent
    row_data: Mapping[str, Any]


class Landed(NamedTuple):
    """One input HubSpot wrote: its trace id, the record's id, created (vs updated).

    A NamedTuple: one is built per written row, on the hot path.
    """

    trace_id: str
    record_id: str
    created: bool
    created_at: str | None = None  # the record's createdAt, as HubSpot's answer says it


@dataclass(frozen=True, slots=True)
class Target:
    """One `--associate COLUMN=OBJECT.PROPERTY`: associate each row with the records of
    `object_type` whose `property_name` equals a value of its `column`."""

    column: str
    object_type: str
    property_name: str

    @property
    def folds_case(self) -> bool:
        """E-mails are matched case-insensitively (HubSpot stores them lower-cased)."""
        return self.property_name == "email"

    @property
    def needs_lookup(self) -> bool:
        return self.property_name != "hs_object_id"

    def __str__(self) -> str:
        return f"{self.column}={self.object_type}.{self.property_name}"


class Link(NamedTuple):
    """One pair to make: a source row and a value of one of its association columns."""

    row_number: int
    target: int  # index into the job's targets
    value: str


@dataclass(frozen=True, slots=True)
class KnownBatch:
    """A batch the journal already has: a resume reuses its rows exactly."""

    batch_no: int
    first_row: int
    last_row: int
    done: bool


@dataclass(slots=True)
class BatchPlan:
    """A range of source rows and what becomes of each: sent, failed locally, superseded.

    `refs[k]` is (table, index) of input k, so source data is built only for the rows
    that fail. A replayed batch (`retry`) has `replay=True` and no row range of its own.
    """

    batch_no: int
    first_row: int
    last_row: int = 0
    first_line: int | None = None  # where first_row starts in a CSV: a resume may read from there
    inputs: list[UpsertInput] = field(default_factory=list)
    input_lines: list[int | None] = field(default_factory=list)
    failures: list[FailedRow] = field(default_factory=list)
    superseded: list[Superseded] = field(default_factory=list)
    refs: list[tuple[Any, int]] = field(default_factory=list, repr=False)
    links: list[Link] = field(default_factory=list)  # the pairs of the inputs, made once they land
    naive_timestamps: int = 0  # inputs with a timestamp that had no zone (read in the job's zone)
    fixed: bool = False  # boundaries come from the journal
    done: bool = False  # the journal has its outcome: never sent again
    replay: bool = False

    @property
    def n_rows(self) -> int:
        return self.last_row - self.first_row + 1


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What became of every input of one batch, and what it cost."""

    landed: list[Landed]
    failures: list[FailedRow]
    requests: int = 0  # HTTP requests, retries and splits included
    splits: int = 0
    retries: int = 0
    rate_limited: int = 0
    http_status: int | None = None  # the first answer that was not transient (200, 207, 400, ...)
    elapsed: float = 0.0

