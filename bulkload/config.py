"""JobConfig: everything that defines a job (what to load, where, how) and its tuning.

The definition (source, object type, idProperty, mapping, batch size) is fixed
when the job is created and journaled with it, because chunking must be the
same on every resume. Tuning (concurrency, rate, daily budget) may differ per
run and is passed to each run separately.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bulkload.errors import InputError

DEFAULT_BASE_URL = "https://api.hubapi.com"
DEFAULT_OBJECT_TYPE = "calls"
MAX_BATCH_SIZE = 100  # "Object API batch endpoints are limited to 100 inputs per request."
DEFAULT_CONCURRENCY = 4


def default_job_dir() -> Path:
    return Path(os.environ.get("BULKLOAD_JOB_DIR") or "jobs")


@dataclass(frozen=True)
class Rate:
    """A request allowance: `requests` per `seconds` (from `--rate N/SECONDS`)."""

    requests: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        m = re.fullmatch(r"\s*(\d+)\s*(?:/\s*(\d+(?:\.\d+)?)\s*s?)?\s*", text)
        if not m or int(m.group(1)) <= 0 or (m.group(2) is not None and float(m.group(2)) <= 0):
            raise InputError(f"invalid rate {text!r}: expected N/SECONDS, e.g. 190/10")
        return cls(int(m.group(1)), float(m.group(2) or 10))

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds:g}"


@dataclass(frozen=True)
class Tuning:
    """How fast a run may go. May change between `load` and each `resume`."""

    concurrency: int = DEFAULT_CONCURRENCY
    rate: Rate | None = None  # None: learn from X-HubSpot-RateLimit-* headers
    daily_budget: int | None = None
    timeout: float = 30.0
    max_attempts: int = 8  # per request, for transient failures
    max_outage_seconds: float = 300.0  # then the job pauses (exit 75)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise InputError("--concurrency must be at least 1")
        if self.daily_budget is not None and self.daily_budget < 1:
            raise InputError("--daily-budget must be at least 1")


@dataclass(frozen=True)
class JobConfig:
    """What a job loads and how it is chunked; journaled at `load`, reused by `resume`."""

    source: Path
    id_property: str
    object_type: str = DEFAULT_OBJECT_TYPE
    source_format: str | None = None  # None: detect from the file
    columns: dict[str, str] = field(default_factory=dict)  # source column -> property ("" drops it)
    batch_size: int = MAX_BATCH_SIZE

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise InputError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}")
        if not self.id_property:
            raise InputError("--id-property is required")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["source"] = str(self.source)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobConfig:
        return cls(
            source=Path(d["source"]),
            id_property=d["id_property"],
            object_type=d.get("object_type", DEFAULT_OBJECT_TYPE),
            source_format=d.get("source_format"),
            columns=dict(d.get("columns") or {}),
            batch_size=int(d.get("batch_size", MAX_BATCH_SIZE)),
        )


def parse_column_overrides(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`--column SRC=PROP` pairs; `SRC=` (empty property) drops the column."""
    out: dict[str, str] = {}
    for pair in pairs:
        src, sep, prop = pair.partition("=")
        if not sep or not src.strip():
            raise InputError(f"invalid --column {pair!r}: expected SOURCE_COLUMN=PROPERTY")
        out[src.strip()] = prop.strip()
    return out


def read_map_file(path: Path) -> dict[str, str]:
    """A TOML mapping file: a `[columns]` table of `"source column" = "property"`.

    An empty string drops the column. Top-level string keys are accepted too, so
    a file holding nothing but `a = "b"` lines works.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"mapping file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"mapping file {path} is not valid TOML: {e}") from None
    table = data.get("columns", {k: v for k, v in data.items() if isinstance(v, str)})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise InputError(f"mapping file {path}: [columns] must map column names to property names")
    return {str(k): str(v) for k, v in table.items()}


@dataclass(frozen=True)
class Connection:
    """Where HubSpot is and how to authenticate. The token lives only in memory."""

    base_url: str
    token: str = field(repr=False)

    def __post_init__(self) -> None:
        check_base_url(self.base_url)
        if not self.token.strip():
            raise InputError("the access token is empty")


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1: the only hosts plain http:// may go to."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> None:
    """Plain http:// is refused except for loopback hosts: the token would travel in clear."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"invalid base URL {url!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise InputError(f"refusing plain http:// for non-loopback host {parts.hostname}; use https://")


def resolve_connection(
    base_url: str | None, token_file: Path | None, *, env: dict[str, str] | None = None
) -> Connection:
    environ = os.environ if env is None else env
    url = base_url or environ.get("HUBSPOT_BASE_URL") or DEFAULT_BASE_URL
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise InputError(f"cannot read token file {token_file}: {e.strerror}") from None
    else:
        token = environ.get("HUBSPOT_ACCESS_TOKEN", "").strip()
    if not token:
        raise InputError("no access token: set HUBSPOT_ACCESS_TOKEN or pass --token-file PATH")
    return Connection(base_url=url.rstrip("/"), token=token)
