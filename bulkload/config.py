"""What a job is (JobConfig), how fast it may go (Tuning), and where HubSpot is (Connection).

The definition (source, object type, idProperty, mapping, batch size) is fixed when the
job is created and journaled with it, because chunking must be the same on every resume.
Tuning is the user's choice of pace and patience; every choice made at `load` is kept in
the journal too, and a later `resume` or `retry` uses it unless a flag says otherwise.
Every default lives here, once.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bulkload.errors import InputError
from bulkload.models import Target
from bulkload.objects import canonical

DEFAULT_BASE_URL = "https://api.hubapi.com"
DEFAULT_OBJECT_TYPE = "calls"
# HubSpot's path families (HUBSPOT.md section 8): date-based, and the legacy /crm/v3 and
# /crm/v4 ones (unsupported from 2027). New jobs use the date-based one.
ApiVersion = Literal["2026-03", "v3"]
API_VERSIONS: tuple[ApiVersion, ...] = ("2026-03", "v3")
DEFAULT_API_VERSION: ApiVersion = "2026-03"
MAX_BATCH_SIZE = 100  # "Object API batch endpoints are limited to 100 inputs per request."
DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 3600.0
DEFAULT_MAX_ATTEMPTS = 8  # tries of one request through transient failures, the first included
DEFAULT_MAX_OUTAGE = 300.0  # seconds of failing before the job pauses (exit 75)
MAX_CONCURRENCY = 64
# Isolating rejected inputs (see bulkload.isolation): requests sent only because HubSpot
# rejected a batch whole may be at most this share of the requests a run spends, or
# DEFAULT_SPLIT_FLOOR, whichever is more (a small job can still isolate a few bad rows:
# one bad input costs about 2*log2(100) = 14 of them in a batch of 100).
DEFAULT_SPLIT_SHARE = 0.2
DEFAULT_SPLIT_FLOOR = 50
# A systematic cause: at least this many inputs isolated by bisection failed one way, and
# they are at least this share of every input bisection resolved.
SYSTEMATIC_AFTER = 10
SYSTEMATIC_SHARE = 0.9


def check_timezone(name: str | None) -> str | None:
    """The IANA zone `--timezone` names, refused (exit 2) when it is not one."""
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown --timezone {name!r}: use an IANA name such as Europe/Oslo or UTC") from None
    return name


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
    """How fast and how patiently a run goes. Kept in the journal; flags override it."""

    concurrency: int = DEFAULT_CONCURRENCY
    rate: Rate | None = None  # None: learn from X-HubSpot-RateLimit-* headers
    daily_budget: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_outage_seconds: float = DEFAULT_MAX_OUTAGE
    # The share of requests a run may spend isolating rejected inputs; 1 isolates every
    # row whatever it costs and never stops on a systematic cause.
    split_share: float = DEFAULT_SPLIT_SHARE

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise InputError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
        if self.daily_budget is not None and self.daily_budget < 1:
            raise InputError("--daily-budget must be at least 1")
        if not (math.isfinite(self.timeout) and 0.1 <= self.timeout <= MAX_TIMEOUT):
            raise InputError(f"--timeout must be between 0.1 and {MAX_TIMEOUT:g} seconds (got {self.timeout:g})")
        if self.max_attempts < 1:
            raise InputError("--max-attempts must be at least 1")
        if not (math.isfinite(self.max_outage_seconds) and self.max_outage_seconds > 0):
            raise InputError("the outage time must be a positive number of seconds")
        if not (isinstance(self.split_share, int | float) and 0.0 <= self.split_share <= 1.0):
            raise InputError(f"the split share must be between 0 and 1 (got {self.split_share!r})")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rate"] = str(self.rate) if self.rate is not None else None
        return d

    @classmethod
    def from_choices(cls, choices: Mapping[str, Any]) -> Tuning:
        """A Tuning from the user's choices (journaled or given as flags); the rest defaults."""
        known = {f.name for f in fields(cls)}
        unknown = set(choices) - known
        if unknown:
            raise InputError(f"unknown tuning option(s): {', '.join(sorted(unknown))}")
        values = {k: v for k, v in choices.items() if v is not None}
        if isinstance(values.get("rate"), str):
            values["rate"] = Rate.parse(values["rate"])
        try:
            return cls(**values)
        except TypeError as e:  # a wrong type from a library caller
            raise InputError(f"invalid tuning: {e}") from None


def tuning_choices(tuning: Tuning | Mapping[str, Any] | None) -> dict[str, Any]:
    """The choices a caller made, as JSON-ready values (None and defaults left out of a Tuning)."""
    if tuning is None:
        return {}
    if isinstance(tuning, Tuning):
        default = Tuning().to_dict()
        return {k: v for k, v in tuning.to_dict().items() if v != default[k]}
    out = {k: v for k, v in tuning.items() if v is not None}
    if isinstance(out.get("rate"), Rate):
        out["rate"] = str(out["rate"])
    return out


def merge_tuning(stored: Mapping[str, Any], given: Mapping[str, Any]) -> tuple[Tuning, dict[str, Any]]:
    """The tuning in force (stored choices, then the flags given now) and the choices to keep."""
    choices = {**{k: v for k, v in stored.items() if v is not None}, **given}
    return Tuning.from_choices(choices), choices


@dataclass(frozen=True)
class JobConfig:
    """What a job loads and how it is chunked; journaled at `load`, reused by `resume`."""

    source: Path
    id_property: str
    object_type: str = DEFAULT_OBJECT_TYPE
    source_format: str | None = None  # None: detect from the file
    columns: dict[str, str] = field(default_factory=dict)  # source column -> property ("" drops it)
    batch_size: int = MAX_BATCH_SIZE
    delimiter: str | None = None  # None: detect (CSV)
    api_version: str = DEFAULT_API_VERSION  # HubSpot's path family: "2026-03" or "v3"
    timezone: str | None = None  # how to read timestamps without a zone (None: UTC)
    associations: tuple[Target, ...] = ()  # --associate COLUMN=OBJECT.PROPERTY, in order

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise InputError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}")
        if not self.id_property:
            raise InputError("--id-property is required")
        if self.api_version not in API_VERSIONS:
            raise InputError(f"--api-version must be one of {', '.join(API_VERSIONS)}, not {self.api_version!r}")
        check_timezone(self.timezone)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["source"] = str(self.source)
        d["associations"] = [str(t) for t in self.associations]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobConfig:
        return cls(
            source=Path(d["source"]),
            id_property=d["id_property"],
            object_type=d.get("object_type", DEFAULT_OBJECT_TYPE),
            source_format=d.get("source_format"),
            columns=dict(d.get("columns") or {}),
            batch_size=int(d.get("batch_size", MAX_BATCH_SIZE)),
            delimiter=d.get("delimiter"),
            api_version=d.get("api_version", "v3"),  # a job journaled before the switch kept v3
            timezone=d.get("timezone"),
            associations=tuple(parse_association(a) for a in d.get("associations") or ()),
        )


def define_job(
    source: Path, *, id_property: str, object_type: str = DEFAULT_OBJECT_TYPE,
    api_version: str = DEFAULT_API_VERSION, map_file: Path | None = None, columns: Mapping[str, str] | None = None,
    associate: Sequence[str] = (), source_format: str | None = None, delimiter: str | None = None,
    timezone: str | None = None, batch_size: int = MAX_BATCH_SIZE,
) -> JobConfig:
    """A job's definition from what a user gives (the CLI's flags, the library's keywords):
    `columns` over the map file's `[columns]`, `associate` over its `[associations]` (for
    the same column), the object by any of its names."""
    mapping = read_map_file(map_file) if map_file else {}
    mapping.update(columns or {})
    links = {t.column: str(t) for t in (read_map_associations(map_file) if map_file else ())}
    links.update({t.column: str(t) for t in parse_associations(list(associate))})
    return JobConfig(source=source, id_property=id_property, object_type=canonical(object_type),
                     api_version=api_version, source_format=source_format, columns=mapping, batch_size=batch_size,
                     delimiter=delimiter, timezone=timezone, associations=parse_associations(list(links.values())))


_ASSOCIATION = re.compile(r"\s*(?P<column>[^=]+?)\s*=\s*(?P<object>[A-Za-z0-9_-]+)\.(?P<prop>[A-Za-z0-9_]+)\s*")


def parse_association(text: str) -> Target:
    """`COLUMN=OBJECT.PROPERTY` (e.g. `contact_email=contacts.email`)."""
    m = _ASSOCIATION.fullmatch(text)
    if m is None:
        raise InputError(f"invalid --associate {text!r}: expected COLUMN=OBJECT.PROPERTY, e.g. "
                         "contact_email=contacts.email")
    return Target(m["column"], m["object"].lower() if not m["object"][0].isdigit() else m["object"], m["prop"])


def parse_associations(pairs: Sequence[str] | Mapping[str, str]) -> tuple[Target, ...]:
    """Several --associate (or a map file's [associations] table); one column, one target."""
    items = [f"{k}={v}" for k, v in pairs.items()] if isinstance(pairs, Mapping) else list(pairs)
    targets = tuple(parse_association(p) for p in items)
    columns = [t.column for t in targets]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise InputError(f"the column {', '.join(twice)} is given to --associate twice")
    return targets


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
    return _read_toml(path)[0]


def read_map_associations(path: Path) -> tuple[Target, ...]:
    """A mapping file's `[associations]` table: `"column" = "OBJECT.PROPERTY"`."""
    return parse_associations(_read_toml(path)[1])


def _read_toml(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"mapping file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"mapping file {path} is not valid TOML: {e}") from None
    except OSError as e:
        raise InputError(f"cannot read mapping file {path}: {e.strerror or e}") from None
    table = data.get("columns", {k: v for k, v in data.items() if isinstance(v, str)})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise InputError(f"mapping file {path}: [columns] must map column names to property names")
    links = data.get("associations", {})
    if not isinstance(links, dict) or not all(isinstance(v, str) for v in links.values()):
        raise InputError(f"mapping file {path}: [associations] must map column names to OBJECT.PROPERTY")
    return {str(k): str(v) for k, v in table.items()}, {str(k): str(v) for k, v in links.items()}


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
    """`localhost` or a literal loopback address (127.0.0.0/8, ::1): the only hosts plain
    http:// may go to. A name that merely ends in .localhost may resolve anywhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> None:
    """Plain http:// is refused except for loopback hosts: the token would travel in clear."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as e:
        raise InputError(f"invalid base URL {url!r}: {e}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InputError(f"invalid base URL {url!r}: expected https://HOST")
    if parts.scheme == "http" and not is_loopback(host):
        raise InputError(f"refusing plain http:// for non-loopback host {host}; use https://")


def read_token_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise InputError(f"token file {path} is not UTF-8 text") from None
    except OSError as e:
        raise InputError(f"cannot read token file {path}: {e.strerror or e}") from None


def resolve_connection(
    base_url: str | None, token_file: Path | None, *, env: Mapping[str, str] | None = None, token: str | None = None
) -> Connection:
    environ = os.environ if env is None else env
    url = base_url or environ.get("HUBSPOT_BASE_URL") or DEFAULT_BASE_URL
    if token is None:
        token = read_token_file(token_file) if token_file is not None else environ.get("HUBSPOT_ACCESS_TOKEN", "")
    token = token.strip()
    if not token:
        raise InputError("no access token: set HUBSPOT_ACCESS_TOKEN or pass --token-file PATH")
    return Connection(base_url=url.rstrip("/"), token=token)
