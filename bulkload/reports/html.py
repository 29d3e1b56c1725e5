"""`report --format html`: the job's health page as one self-contained file, mode 0600.

The page is rendered by Jinja2 from `templates/health.html.j2` (shipped as package data)
with autoescaping on for every value: a call title holding `<script>` is shown as text.
CSS is inline, the charts are inline SVG made from the journal, there is no script, and
a Content-Security-Policy forbids the browser to load anything, so the file works
offline and can be attached to a ticket. What the page shows is `reports/health.py`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import jinja2

from bulkload.errors import InputError
from bulkload.journal import Journal
from bulkload.reports.files import STDOUT, _private_file
from bulkload.reports.health import HealthPage, health_page


@dataclass(frozen=True)
class PageWritten:
    path: Path
    bytes: int
    failed_rows: int
    cards: int


def default_page_path(job_dir: Path, job_id: str) -> Path:
    """Beside the journal: <job_dir>/<job_id>.health.html."""
    return job_dir / f"{job_id}.health.html"


def _number(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bulkload.reports", "templates"),
        # Every value is escaped, whatever the template's name: the page is all HTML.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.filters["n"] = _number
    return env


def _version() -> str:
    try:
        return version("bulkload")
    except PackageNotFoundError:  # run from a source tree without installing
        return "dev"


def render_page(page: HealthPage) -> str:
    """The page as HTML text."""
    return _environment().get_template("health.html.j2").render(page=page, version=_version())


def _target(journal: Journal, path: Path | None) -> Path:
    if path is None:
        return default_page_path(journal.path.parent, journal.job_id)
    if path.is_dir():
        return default_page_path(path, journal.job_id)
    if not path.parent.is_dir():
        raise InputError(f"cannot write the page to {path}: no directory {path.parent}")
    return path


def write_page(journal: Journal, path: Path | None = None, *, now: float | None = None) -> PageWritten:
    """Write the health page (default <job_dir>/<job_id>.health.html; a directory puts that
    name in it; `-` is standard output). Mode 0600, written atomically."""
    target = STDOUT if path == STDOUT else _target(journal, path)
    page = health_page(journal, now=now)
    data = render_page(page).encode("utf-8")
    if target == STDOUT:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        try:
            with _private_file(target) as f:
                f.write(data)
        except OSError as e:
            raise InputError(f"cannot write the page to {target}: {e.strerror or e}") from None
    return PageWritten(target, len(data), int(page.status["rows"]["failed"]), len(page.cards))
