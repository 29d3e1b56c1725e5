"""`report --format html`: the job's health page as a file. Self-contained (no network),
0600, its numbers those of `status --json`, a card per category with errors, hostile
values shown as text, and small on a big job (caps on rows, columns, values and size)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkload import api
from bulkload.config import Connection, JobConfig, parse_association
from bulkload.journal import Journal, Tick, journal_path
from bulkload.pipeline import Runtime
from bulkload.reports.charts import MAX_BARS, build_timeline
from bulkload.reports.health import SOURCE_COLUMNS, TABLE_ROWS, VALUE_CHARS
from bulkload.sandbox import SandboxConfig, SandboxServer
from tests.conftest import SAMPLE_CONTACTS, SAMPLE_CSV, TOKEN, cli_env, good_row, run_cli, write_csv
from tests.health_helpers import assert_numbers_equal_status, read_page

ID = "external_call_id"
JOB = "sample"


@pytest.fixture(scope="module")
def sample_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The sample loaded once with its associations: three categories of errors."""
    job_dir = tmp_path_factory.mktemp("jobs")
    state = tmp_path_factory.mktemp("state")
    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(state)
    try:
        with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=None, contacts=SAMPLE_CONTACTS)) as sb:
            config = JobConfig(source=SAMPLE_CSV, id_property=ID,
                               associations=(parse_association("contact_email=contacts.email"),))
            api.load(config, Connection(sb.base_url, TOKEN), job_dir=job_dir, job_id=JOB, runtime=Runtime())
        yield job_dir
    finally:
        if old is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = old


def _write(job_dir: Path, job_id: str = JOB, *extra: str) -> tuple[Path, str]:
    res = run_cli(["report", job_id, "--job-dir", str(job_dir), "--format", "html", "--json", *extra])
    assert res.exit_code == 0, res.output
    path = Path(json.loads(res.stdout)["path"])
    return path, path.read_text(encoding="utf-8")


def _status(job_dir: Path, job_id: str = JOB) -> dict[str, Any]:
    res = run_cli(["status", job_id, "--job-dir", str(job_dir), "--json"])
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def test_the_page_is_one_self_contained_file(sample_job: Path) -> None:
    _, html = _write(sample_job)
    page = read_page(html)
    for url in page.urls:
        assert "http:" not in url and "https:" not in url and "//" not in url, url
    # Nothing the browser would fetch or run: no script, no stylesheet link, no frame or image URL.
    assert {"script", "link", "iframe", "img", "object", "embed"}.isdisjoint(page.tags)
    assert "@import" not in html
    assert "default-src 'none'" in html  # and the page says so to the browser too
    assert "<svg" in html and "<style>" in html


def test_the_page_is_0600_beside_the_journal_and_replaces_a_wider_file(sample_job: Path) -> None:
    path, _ = _write(sample_job)
    assert path == (sample_job / f"{JOB}.health.html").resolve() or path == sample_job / f"{JOB}.health.html"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)
    path2, _ = _write(sample_job)
    assert path2 == path and stat.S_IMODE(path.stat().st_mode) == 0o600
    other = sample_job / "elsewhere.html"
    path3, _ = _write(sample_job, JOB, "-o", str(other))
    assert path3 == other and stat.S_IMODE(other.stat().st_mode) == 0o600


def test_the_numbers_equal_status_json(sample_job: Path) -> None:
    _, html = _write(sample_job)
    st = _status(sample_job)
    page = read_page(html)
    assert_numbers_equal_status(page, st, links=True)
    assert page.fields["state"] == [st["state"]]
    # The funnel adds up: what passed the local checks, less what is pending, was sent.
    rows = st["rows"]
    assert rows["total"] == rows["upserted"] + rows["failed"] + rows["superseded"] + rows["pending"]
    passed = int(page.fields["funnel.passed_local_checks"][0])
    sent = int(page.fields["funnel.sent"][0])
    assert passed == sent + rows["pending"]
    assert sent == rows["upserted"] + rows["failed"] - (rows["total"] - rows["superseded"] - passed)


def test_every_category_with_errors_has_its_card_with_its_counts(sample_job: Path) -> None:
    _, html = _write(sample_job)
    res = run_cli(["report", JOB, "--job-dir", str(sample_job), "--summary", "--json"])
    cards = {c["category"]: c for c in json.loads(res.stdout)["categories"] if c["errors"]}
    assert set(cards) == {"SOURCE_DATA", "PICKLISTS", "ASSOCIATIONS"}  # the sample's documented bad rows
    page = read_page(html)
    assert set(page.cards) == set(cards)
    for category, card in cards.items():
        shown = page.cards[category]
        assert int(shown["data-errors"]) == card["errors"]
        assert int(shown["data-affected"]) == card["affectedRows"]
        # Each error type of the card is named with its fix, and the card's replay command.
        for top in card["top"]:
            assert top["errorType"] in html
        assert f"bulkload retry {JOB} --job-dir" in html
    # Each card's table holds its rows (all of them: the sample has few).
    tables = {d["card"]: d for d in page.details}
    for category in cards:
        assert int(tables[category]["data-rows-shown"]) == int(tables[category]["data-rows-total"])
        assert page.table_rows[category] == int(tables[category]["data-rows-total"])
    # The unknown contact of row 606, and its value, are in the ASSOCIATIONS table.
    assert "pat.unknown@example.com" in html


def test_a_job_without_errors_says_so(sandbox: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "good.csv", [good_row(i) for i in range(1, 31)])
    res = run_cli(["load", str(src), "--id-property", ID, "--job-dir", str(job_dir), "--job-id", "good",
                   "--no-progress"], env=cli_env(sandbox))
    assert res.exit_code == 0, res.output
    _, html = _write(job_dir, "good")
    page = read_page(html)
    assert page.cards == {}
    assert "No failed rows." in page.text
    assert_numbers_equal_status(page, _status(job_dir, "good"), links=False)


HOSTILE = "<script>alert('x')</script>"


def test_values_from_the_data_are_escaped(sandbox: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    rows = [good_row(i) for i in range(1, 11)]
    rows[2]["hs_call_title"] = HOSTILE
    rows[2]["hs_call_status"] = "<img src=x onerror=alert(1)>"  # not an option: a PICKLISTS row showing it
    rows[4]["hs_timestamp"] = '"><svg onload=alert(2)>'  # a SOURCE_DATA row
    rows[4]["hs_call_title"] = "</textarea></details></table><b>bold</b>"
    rows[6]["external_call_id"] = "id-<i>7</i>&amp;"
    rows[6]["hs_call_status"] = "BAD"
    src = write_csv(tmp_path / "hostile.csv", rows)
    res = run_cli(["load", str(src), "--id-property", ID, "--job-dir", str(job_dir), "--job-id", "hostile",
                   "--no-progress"], env=cli_env(sandbox))
    assert res.exit_code == 1, res.output
    _, html = _write(job_dir, "hostile")
    page = read_page(html)
    assert "script" not in page.tags and "img" not in page.tags and "b" not in page.tags and "i" not in page.tags
    assert "<script>alert" not in html and "onerror=alert" not in html.replace("&lt;img src=x onerror=alert", "")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "id-&lt;i&gt;7&lt;/i&gt;&amp;amp;" in html
    # Shown as the text it is.
    assert HOSTILE in page.text and "</textarea></details></table><b>bold</b>" in page.text
    assert set(page.cards) == {"PICKLISTS", "SOURCE_DATA"}


def test_an_unwritable_or_missing_output_is_one_line_exit_2(sample_job: Path, tmp_path: Path) -> None:
    for target in (tmp_path / "no" / "such" / "dir" / "page.html", Path("/proc/page.html")):
        res = run_cli(["report", JOB, "--job-dir", str(sample_job), "--format", "html", "-o", str(target)])
        assert res.exit_code == 2, res.output
        assert "Traceback" not in res.output
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: cannot write the page to"), res.stderr


def test_html_takes_no_row_filters(sample_job: Path) -> None:
    res = run_cli(["report", JOB, "--job-dir", str(sample_job), "--format", "html", "--limit", "5"])
    assert res.exit_code == 2
    assert "--limit" in res.output


def test_html_to_standard_output(sample_job: Path) -> None:
    res = run_cli(["report", JOB, "--job-dir", str(sample_job), "--format", "html", "-o", "-"])
    assert res.exit_code == 0
    assert res.stdout.startswith("<!doctype html>") and res.stdout.rstrip().endswith("</html>")


def test_a_paused_job_shows_why_and_the_resume_command(sandbox: SandboxServer, job_dir: Path,
                                                       tmp_path: Path) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 501)])
    res = run_cli(["load", str(src), "--id-property", ID, "--job-dir", str(job_dir), "--job-id", "budget",
                   "--daily-budget", "3", "--no-progress", "--batch-size", "10"], env=cli_env(sandbox))
    assert res.exit_code == 75, res.output
    _, html = _write(job_dir, "budget")
    st = _status(job_dir, "budget")
    page = read_page(html)
    assert st["state"] == "paused" and page.fields["state"] == ["paused"]
    assert st["resume_command"] == f"bulkload resume budget --job-dir {job_dir.resolve()}"
    assert st["resume_command"] in page.text
    assert "daily budget" in page.text
    assert_numbers_equal_status(page, st, links=False)
    assert page.fields["usage.daily_budget"] == ["3"]


def test_a_big_job_is_capped_in_rows_columns_values_and_size(sandbox: SandboxServer, job_dir: Path,
                                                             tmp_path: Path) -> None:
    # 1,200 rows that fail locally (no request spent on them), each with 60 extra columns and
    # a 60,000-character note: the page shows TABLE_ROWS of them, shortened.
    extra = [f"extra_{k:02d}" for k in range(60)]
    columns = ("external_call_id", "hs_timestamp", "hs_call_title", "hs_call_body", *extra)
    long_note = "n" * 60_000
    rows = [{"external_call_id": f"call-{i:06d}", "hs_timestamp": "not a time", "hs_call_title": f"Call {i}",
             "hs_call_body": long_note, **{c: f"value {c} {i}" for c in extra}} for i in range(1, 1201)]
    src = write_csv(tmp_path / "big.csv", rows, columns=columns)
    res = run_cli(["load", str(src), "--id-property", ID, "--job-dir", str(job_dir), "--job-id", "big",
                   "--no-progress", *[a for c in extra for a in ("--column", f"{c}=")]], env=cli_env(sandbox))
    assert res.exit_code == 1, res.output
    path, html = _write(job_dir, "big")
    page = read_page(html)
    assert path.stat().st_size < 5 * 1024 * 1024
    assert page.cards["SOURCE_DATA"]["data-errors"] == "1200"
    assert page.table_rows["SOURCE_DATA"] == TABLE_ROWS
    assert page.hidden_counts == [1200 - TABLE_ROWS]
    assert f"bulkload report big --job-dir {job_dir.resolve()} --error-type INVALID_TIMESTAMP --format csv" in html
    assert long_note not in html and "n" * VALUE_CHARS in html
    assert f"{64 - SOURCE_COLUMNS:,} more columns in the export" in html
    assert_numbers_equal_status(page, _status(job_dir, "big"), links=False)


def test_the_journal_counts_requests_per_10_seconds_with_their_5xx(job_dir: Path, tmp_path: Path) -> None:
    config = SandboxConfig(tokens=(TOKEN,), rate_limit_max=None, fault_probabilities={"502": 0.3},
                           seed=5)
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 81)])
    with SandboxServer(config) as sb:
        res = run_cli(["load", str(src), "--id-property", ID, "--job-dir", str(job_dir), "--job-id", "faults",
                       "--no-progress", "--batch-size", "10"], env=cli_env(sb))
    assert res.exit_code == 0, res.output
    st = _status(job_dir, "faults")
    with Journal.open(journal_path(job_dir, "faults")) as journal:
        ticks = journal.api_ticks()
        assert sum(t.calls for t in ticks) == st["api_calls"]
        assert sum(t.retries for t in ticks) == st["usage"]["retries_total"]
        assert sum(t.rate_limited for t in ticks) == st["usage"]["rate_limited_total"]
        assert 0 < sum(t.server_errors for t in ticks) <= st["usage"]["retries_total"]
    _, html = _write(job_dir, "faults")
    assert 'class="m5xx"' in html  # marked on the timeline


def test_a_turns_429s_and_5xx_land_in_its_10_second_tick(tmp_path: Path) -> None:
    from bulkload.budget import UsageMeter
    from bulkload.journal import Usage

    meter = UsageMeter(None, wall=lambda: 1_700_000_005.0, usage_since=lambda since: 0,
                       oldest_minute_since=lambda since: None)
    for status in (200, 429, 429, 502, 503, 400, None):
        meter.before_request("upsert")
        meter.after_response("upsert", status, None)
    meter.on_retry("upsert")
    calls, limited, retries, rate = meter.take()
    usage = Usage(calls, limited, retries, 1_700_000_005.0, rate, meter.take_server_errors())
    journal = Journal.create(tmp_path / "t.journal.sqlite")
    try:
        journal.create_job(job_id="t", object_type="calls", id_property=ID, config={}, source_path="x.csv",
                           source_format="csv", fingerprint={}, columns=[])
        run_no = journal.start_run("load", {})
        journal.record_turn(run_no=run_no, usage=usage)
        journal.record_turn(run_no=run_no, usage=Usage({"read": 2}, at=1_700_000_009.0))
        assert journal.api_ticks() == [Tick(1_700_000_000, 9, 2, 2, 1)]
        assert meter.take_server_errors() == {}  # taken once
    finally:
        journal.close()


# ---- the timeline's geometry --------------------------------------------------------------------


def _runs(*spans: tuple[int, int]) -> list[Any]:
    from datetime import UTC, datetime

    from bulkload.journal import RunRow

    def iso(t: int) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    return [RunRow(i + 1, "load" if i == 0 else "resume", iso(s), iso(e), "x", 0, 0) for i, (s, e) in enumerate(spans)]


def test_the_timeline_marks_429s_and_5xx_and_shades_the_pause_between_runs() -> None:
    t0 = 1_700_000_000
    ticks = [Tick(t0 + 10 * k, 190, 2 if k == 3 else 0, 1 if k == 5 else 0, 3) for k in range(12)]
    ticks += [Tick(t0 + 7200 + 10 * k, 150, 0, 0, 0) for k in range(6)]  # resumed two hours later
    tl = build_timeline(ticks, _runs((t0, t0 + 120), (t0 + 7200, t0 + 7260)), limit_per_10s=190)
    assert tl.bucket_seconds == 10 and len(tl.bars) == 18
    assert tl.limit == 190 and tl.peak == 190
    assert [m.kind for m in tl.marks] == ["429", "5xx"]
    assert len(tl.bands) == 1 and tl.bands[0].paused and "paused for 1h 58m" in tl.bands[0].label
    assert all(0 <= b.x <= tl.width for b in tl.bars)


def test_a_long_timeline_merges_windows_and_scales_the_limit() -> None:
    t0 = 1_700_000_000
    ticks = [Tick(t0 + 10 * k, 190, 0, 0, 0) for k in range(8_640)]  # a day without a pause
    tl = build_timeline(ticks, _runs((t0, t0 + 86_400)), limit_per_10s=190)
    assert len(tl.bars) <= MAX_BARS and tl.bucket_seconds > 10
    assert tl.limit == 190 * tl.bucket_seconds / 10
    assert tl.peak == 190 * tl.bucket_seconds // 10


def test_no_ticks_no_timeline() -> None:
    assert build_timeline([], [], limit_per_10s=None).empty


def test_a_limit_far_above_the_requests_does_not_flatten_the_bars() -> None:
    t0 = 1_700_000_000
    tl = build_timeline([Tick(t0 + 10 * k, 50, 0, 0, 0) for k in range(5)], _runs((t0, t0 + 50)),
                        limit_per_10s=1_000_000)
    assert tl.limit_y is None and tl.limit == 1_000_000
    assert tl.y_max < 100 and all(b.h > 100 for b in tl.bars)
