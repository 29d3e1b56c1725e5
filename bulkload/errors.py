"""The exception tree of bulkload; each class carries the exit code it maps to.

Failed rows are data (rows in the journal), never exceptions. Exceptions are control
flow: they stop a job, and the CLI turns them into an exit code in one place (its group
catches `BulkloadError` once and exits with `exit_code`, as click's own exceptions do).

    BulkloadError                 exit 2 unless a branch says otherwise
    ├── InputError                exit 2: unusable file, flags or job; nothing was sent
    │   ├── SourceError           the source file cannot be used (empty, not UTF-8, ...)
    │   ├── MappingError          a column or mapping that cannot work
    │   ├── SourceChanged         resume found a different file than the job's
    │   ├── JobNotFound           no journal for that job id (says every place looked)
    │   ├── JobBusy               another live process holds the job (names it)
    │   ├── JournalUnusable       not a journal, truncated, or from a newer bulkload
    │   └── RequestRefused        HubSpot refused the request itself, before any row landed
    ├── StopResumable             exit 75: the job is paused and `resume` continues it
    │   ├── Interrupted           Ctrl-C / SIGTERM
    │   ├── QuotaExhausted        HubSpot's daily limit or --daily-budget spent
    │   ├── ApiUnavailable        transient failures outlasted the retry budget
    │   ├── SourceModified        the file changed between the scan and the send pass
    │   ├── JournalWriteFailed    the journal cannot be written (disk full, I/O error)
    │   └── SystematicRejection   rejected rows fail one way: a cause to fix, not rows to fail
    │       └── SplitBudgetSpent  isolating rejected rows reached its share of the requests
    ├── AuthError                 exit 77: 401 / 403; the job is paused, not failed
    └── HubSpotError              a protocol-level answer (see bulkload.hubspot.exceptions)
        └── ...                   RequestRejected: about the request, not an input

A `RequestRejected` (non-unique idProperty, unknown object, 404 on the endpoint) stops
the run at the first answer: the pipeline turns it into `RequestRefused` (exit 2) when
nothing has landed yet, or pauses the job (75) with the reason when rows already have.
"""

from __future__ import annotations

from datetime import datetime

EXIT_OK = 0
EXIT_ROWS_FAILED = 1
EXIT_INPUT = 2
EXIT_RESUMABLE = 75
EXIT_AUTH = 77


class BulkloadError(Exception):
    """Root of every error bulkload raises on purpose.

    `hint` is the command that helps next (e.g. the resume command of a paused job) and
    `journal` the job it concerns, when the error stopped a job.
    """

    exit_code = EXIT_INPUT
    hint: str | None = None
    journal: object | None = None


class InputError(BulkloadError):
    """The input cannot be used; nothing was sent."""

    exit_code = EXIT_INPUT


class SourceError(InputError):
    """The source file cannot be used at all."""


class MappingError(InputError):
    """The column mapping cannot work (unknown column, unknown property, ...)."""


class SourceChanged(InputError):
    """`resume` found a source file that differs from the one the job was started on."""


class JobNotFound(InputError):
    """No journal exists for the requested job id."""


class JobBusy(InputError):
    """Another live process is running this job."""


class JournalUnusable(InputError):
    """The journal file is not a bulkload journal, is damaged, or is newer than this bulkload."""


class RequestRefused(InputError):
    """HubSpot refused the request itself (not any row) before anything landed."""


class StopResumable(BulkloadError):
    """The job stopped early and is resumable."""

    exit_code = EXIT_RESUMABLE

    def __init__(self, message: str, *, resume_after: datetime | None = None) -> None:
        super().__init__(message)
        self.resume_after = resume_after


class Interrupted(StopResumable):
    """SIGINT or SIGTERM asked the job to stop."""


class QuotaExhausted(StopResumable):
    """HubSpot's daily limit, or this job's --daily-budget, is spent."""


class ApiUnavailable(StopResumable):
    """HubSpot kept failing transiently for longer than the retry budget allows."""


class SourceModified(StopResumable):
    """The source file changed (grew, shrank, was rewritten) after the scan, while the job
    was reading it to send. No row read after the change was handed out; putting the
    scanned file back lets `resume` continue, and `resume` refuses a different file."""

    def __init__(self, message: str, *, path: str, change: str) -> None:
        super().__init__(message)
        self.path = path  # the file, as the job names it
        self.change = change  # what changed, e.g. "size 1,234 -> 1,300 bytes"


class JournalWriteFailed(StopResumable):
    """The journal could not be written (disk full, I/O error); what it holds is consistent."""


# Between a pause's cause and its fix in the reason the journal keeps (`status` shows both).
FIX_MARKER = " Fix: "


class SystematicRejection(StopResumable):
    """HubSpot rejects batches whole and the inputs isolated so far all fail one way: a
    portal rule (or a mapping), not the rows. The run stops instead of bisecting on; the
    rows not yet isolated stay pending, so `resume` sends them once the cause is fixed.

    `cause` says what was seen, `fix` what to do; str() is both, as the pause reason.
    """

    def __init__(self, cause: str, fix: str, *, error_type: str | None = None,
                 property_name: str | None = None, isolated: int = 0, split_requests: int = 0,
                 requests: int = 0) -> None:
        super().__init__(f"{cause}{FIX_MARKER}{fix}")
        self.cause = cause
        self.fix = fix
        self.error_type = error_type
        self.property_name = property_name
        self.isolated = isolated  # inputs isolated with this cause, this run
        self.split_requests = split_requests  # requests spent isolating, this run
        self.requests = requests  # every request of this run


class SplitBudgetSpent(SystematicRejection):
    """Isolating rejected inputs reached its share of the requests the run spent (the
    `split_share` tuning); the rows not yet isolated stay pending."""


class AuthError(BulkloadError):
    """HubSpot refused the token (401) or it lacks scopes (403)."""

    exit_code = EXIT_AUTH

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class HubSpotError(BulkloadError):
    """HubSpot answered in a way the protocol does not allow for."""
