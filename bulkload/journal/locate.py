"""Where jobs live: job dirs, journal file names, the per-user index of job dirs, and the
lock that lets one process at a time run a job.

- A job dir is created with mode 0700 (its journals hold call data).
- A journal is `<job dir>/<job id>.sqlite`, so datasette serves it at `/<job id>` (a `.`
  in a database name would become `~2E`); journals of the first round,
  `<job id>.journal.sqlite`, are still found.
- The index, `$XDG_STATE_HOME/bulkload/job-dirs.json` (mode 0600), holds the absolute
  paths of the job dirs this user has used, nothing else. It lets `resume`, `status`,
  `report` and `retry` find a job by id from any directory. It is a convenience: when it
  cannot be read or written, bulkload works as if it were empty.
- The lock is an flock on `<journal>.lock`, which also names its holder (pid, command,
  start). The kernel releases it when the holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bulkload.config import default_job_dir
from bulkload.errors import InputError, JobBusy, JobNotFound

JOURNAL_SUFFIX = ".sqlite"
LEGACY_SUFFIX = ".journal.sqlite"
INDEX_NAME = "job-dirs.json"


def journal_path(job_dir: Path, job_id: str) -> Path:
    """The journal of `job_id` in `job_dir` (the first round's name if that one exists)."""
    legacy = job_dir / f"{job_id}{LEGACY_SUFFIX}"
    return legacy if legacy.exists() else job_dir / f"{job_id}{JOURNAL_SUFFIX}"


def job_id_of(path: Path) -> str:
    name = path.name
    return name.removesuffix(LEGACY_SUFFIX) if name.endswith(LEGACY_SUFFIX) else name.removesuffix(JOURNAL_SUFFIX)


def journal_files(path: Path) -> list[Path]:
    """The journal and the files SQLite and the lock keep beside it."""
    return [path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", ".lock"))]


def journals_in(job_dir: Path) -> list[Path]:
    """Every journal file in a job dir, by name."""
    if not job_dir.is_dir():
        return []
    return sorted(p for p in job_dir.glob(f"*{JOURNAL_SUFFIX}") if p.is_file())


def ensure_job_dir(job_dir: Path) -> Path:
    """The job dir, created (mode 0700) if it does not exist; one line when it cannot be."""
    if job_dir.is_dir():
        return job_dir
    if job_dir.exists():
        raise InputError(f"job dir {job_dir} exists and is not a directory")
    try:
        job_dir.mkdir(parents=True, mode=0o700)
        os.chmod(job_dir, 0o700)  # whatever the umask
    except FileExistsError:
        if not job_dir.is_dir():
            raise InputError(f"job dir {job_dir} exists and is not a directory") from None
    except NotADirectoryError:
        raise InputError(f"cannot create job dir {job_dir}: a part of its path is a file") from None
    except OSError as e:
        raise InputError(f"cannot create job dir {job_dir}: {e.strerror or e}") from None
    return job_dir


# ---- the per-user index -------------------------------------------------------------------


def index_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "bulkload" / INDEX_NAME


def known_job_dirs() -> list[Path]:
    """The job dirs in the index that still exist, most recently used first."""
    try:
        data = json.loads(index_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    dirs = data.get("job_dirs") if isinstance(data, dict) else None
    if not isinstance(dirs, list):
        return []
    return [Path(d) for d in dirs if isinstance(d, str) and Path(d).is_dir()]


def remember_job_dir(job_dir: Path) -> None:
    """Put `job_dir` first in the index (best effort: never fails a job)."""
    path = index_path()
    entry = str(job_dir.resolve())
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # two loads starting at once must not lose a dir
            dirs = [str(d) for d in known_job_dirs() if str(d) != entry]
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            wfd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
            with os.fdopen(wfd, "w", encoding="utf-8") as f:
                json.dump({"job_dirs": [entry, *dirs][:200]}, f)
            os.replace(tmp, path)
        finally:
            os.close(fd)


def default_dir_or(job_dir: Path | None) -> Path:
    return job_dir if job_dir is not None else default_job_dir()


def find_journal(job_id: str, job_dir: Path | None) -> Path:
    """The journal of `job_id`: in the given job dir when there is one, else in the default
    job dir, else in any job dir of the index. JobNotFound says every place looked."""
    if not job_id or "/" in job_id or job_id.startswith("."):
        raise JobNotFound(f"invalid job id {job_id!r}")
    places = [job_dir] if job_dir is not None else [default_job_dir(), *known_job_dirs()]
    looked: list[Path] = []
    for place in dict.fromkeys(p.resolve() for p in places):
        path = journal_path(place, job_id)
        looked.append(path)
        if path.exists():
            return path
    where = ", ".join(str(p) for p in looked)
    hint = "pass --job-dir DIR (or set BULKLOAD_JOB_DIR) where the job was started"
    raise JobNotFound(f"no such job: {job_id} (looked for {where}); {hint}")


# ---- one process per job --------------------------------------------------------------------


@contextmanager
def job_lock(journal: Path, command: str) -> Iterator[None]:
    """Hold `journal`'s lock for the duration; JobBusy names the live process holding it."""
    lock_path = journal.with_name(journal.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as e:
        raise InputError(f"cannot lock job {job_id_of(journal)}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise JobBusy(f"job {job_id_of(journal)} is being run by {_holder(fd)}; "
                          "wait for it to finish or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command,
                                  "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}).encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process"
    return f"process {info['pid']} (bulkload {info.get('command', '?')}, since {info.get('since', '?')})"


def lock_holder(journal: Path) -> int | None:
    """The pid of the live process running the job, if any.

    Read from the lock file rather than by probing the lock, so a `status` never makes a
    starting `resume` think the job is busy. A holder killed by SIGKILL leaves its pid
    behind: it counts only while that process lives.
    """
    lock_path = journal.with_name(journal.name + ".lock")
    try:
        info = json.loads(lock_path.read_bytes() or b"{}")
    except (OSError, ValueError):
        return None
    pid = info.get("pid") if isinstance(info, dict) else None
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, another user's
    return pid
