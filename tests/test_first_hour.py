"""A newcomer's first hour: what someone loading their first export runs into, item by item.

Each test follows one friction a user tried from the README: a job looked for from another
directory, commands pasted from the demo, a semicolon CSV, a fixed row without an id, the
progress display, what the journal records, `-o -`, timestamps without a zone, the
`properties` command, the library, and a refused token on the very first call.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bulkload.journal import journal_path
from bulkload.sandbox import SandboxConfig, SandboxServer
from bulkload.terminal import ShownProgress
from tests.conftest import (
    COLUMNS,
    ROOT,
    TOKEN,
    cli_env,
    good_row,
    read_csv_rows,
    run_cli,
    write_csv,
)

ID = "external_call_id"


def _load(src: Path, *extra: str, env: dict[str, str], job_id: str = "j", job_dir: Path | None = None) -> Any:
    args = ["load", str(src), "--id-property", ID, "--job-id", job_id, "--no-progress", *extra]
    if job_dir is not None:
        args += ["--job-dir", str(job_dir)]
    return run_cli(args, env)


@pytest.fixture
def sb() -> Any:
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=100_000)) as server:
        yield server


# ---- a job is found from any directory -----------------------------------------------------------


def test_a_job_started_in_one_directory_is_found_from_another(sb: SandboxServer, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    here, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    rows = [good_row(i) for i in range(1, 31)]
    rows[4]["hs_call_status"] = "DONE"
    src = write_csv(here / "dialer.csv", rows)
    monkeypatch.chdir(here)
    assert _load(src, env=cli_env(sb), job_id="dialer-20k").exit_code == 1  # into ./jobs
    monkeypatch.chdir(elsewhere)

    status = run_cli(["status", "dialer-20k", "--json"])
    assert status.exit_code == 0 and json.loads(status.stdout)["journal"] == str(
        journal_path((here / "jobs").resolve(), "dialer-20k"))
    assert run_cli(["report", "dialer-20k", "--summary"]).exit_code == 0
    assert run_cli(["resume", "dialer-20k", "--no-progress"], cli_env(sb)).exit_code == 1  # finished, with a failure
    assert run_cli(["retry", "dialer-20k", "--no-progress"], cli_env(sb)).exit_code == 1
    listed = run_cli(["jobs", "--all", "--json"])
    assert [e["job_id"] for e in json.loads(listed.stdout)] == ["dialer-20k"]
    assert run_cli(["jobs"]).stdout.startswith("no jobs in jobs (bulkload jobs --all lists every job dir")


def test_a_job_not_found_says_every_place_looked_and_how_to_point_at_it(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = run_cli(["status", "nope"])
    assert res.exit_code == 2
    line = res.stderr.strip()
    assert line.startswith("error: no such job: nope (looked for ")
    assert str(tmp_path.resolve() / "jobs" / "nope.sqlite") in line
    assert line.endswith("pass --job-dir DIR (or set BULKLOAD_JOB_DIR) where the job was started")


# ---- commands printed run when pasted --------------------------------------------------------------


def _demo_commands(out: str) -> tuple[list[str], str]:
    """The export line and the commands the demo printed under "Next"."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Next, from any directory"))
    block = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    export = next(c for c in block if c.startswith("export "))
    return [c for c in block if not c.startswith("export ")], export


def test_every_command_the_demo_and_status_print_runs_as_pasted(tmp_path: Path) -> None:
    home, other = tmp_path / "home", tmp_path / "other"
    home.mkdir()
    other.mkdir()
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "PATH": f"{Path(sys.executable).parent}:"
           f"{os.environ.get('PATH', '')}"}
    demo = subprocess.Popen([sys.executable, "-m", "bulkload", "demo", "--keep-running"], cwd=home, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = ""
        deadline = time.monotonic() + 90
        assert demo.stdout is not None
        while "sandbox still running" not in out:
            assert time.monotonic() < deadline and demo.poll() is None, out
            out += demo.stdout.readline()
        commands, export = _demo_commands(out)
        assert [c.split()[1] for c in commands] == ["status", "report", "report", "retry", "report"]
        for command in commands:
            # Pasted as printed, into a shell, from another directory, with the printed environment.
            done = subprocess.run(["bash", "-c", f"{export}\n{command}"], cwd=other, env=env, capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode in (0, 1), (command, done.stdout, done.stderr)
            assert "error" not in done.stderr.lower(), (command, done.stderr)
    finally:
        demo.terminate()
        demo.wait(timeout=30)


def test_printed_commands_use_the_program_as_it_was_called(tmp_path: Path) -> None:
    from bulkload.demo import program

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", "/usr/bin:/bin")
        if (ROOT / ".venv" / "bin" / "bulkload").exists():
            mp.setattr(sys, "argv", [str(ROOT / ".venv" / "bin" / "bulkload")])
            assert program() == str(ROOT / ".venv" / "bin" / "bulkload")
            # As `make demo` calls it: relative to the repo, printed absolute (pasted elsewhere, it runs).
            mp.chdir(ROOT)
            mp.setattr(sys, "argv", [".venv/bin/bulkload"])
            assert program() == str(ROOT / ".venv" / "bin" / "bulkload")
        mp.setattr(sys, "argv", ["-m"])
        assert program() == f"{shlex.quote(sys.executable)} -m bulkload"


# ---- delimiters ------------------------------------------------------------------------------------


def _write(path: Path, rows: list[dict[str, str]], delimiter: str) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS), delimiter=delimiter)
        writer.writeheader()
        for r in rows:
            writer.writerow({c: r.get(c, "") for c in COLUMNS})
    return path


@pytest.mark.parametrize(("delimiter", "name", "said"), [
    (";", "excel.csv", "delimiter ';' (detected)"),
    ("\t", "tabs.csv", "delimiter tab (detected)"),
    ("|", "pipes.txt", "delimiter '|' (detected)"),
])
def test_a_semicolon_tab_or_pipe_file_loads_and_the_summary_says_which(
    delimiter: str, name: str, said: str, sb: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    rows = [good_row(i, hs_call_title=f"Title; with, both {i}") for i in range(1, 21)]
    src = _write(tmp_path / name, rows, delimiter)
    res = _load(src, env=cli_env(sb), job_dir=job_dir)
    assert res.exit_code == 0, res.output
    assert said in res.stdout
    assert sb.store_records(ID)["call-000003"]["hs_call_title"] == "Title; with, both 3"


def test_delimiter_and_tsv_can_be_given(sb: SandboxServer, job_dir: Path, tmp_path: Path) -> None:
    rows = [good_row(i) for i in range(1, 11)]
    src = _write(tmp_path / "export.dat", rows, "\t")
    res = _load(src, "--format", "tsv", env=cli_env(sb), job_dir=job_dir, job_id="tsv")
    assert res.exit_code == 0 and "delimiter tab" in res.stdout, res.output
    semi = _write(tmp_path / "semi.csv", rows, ";")
    res = _load(semi, "--delimiter", ";", env=cli_env(sb), job_dir=job_dir, job_id="given")
    assert res.exit_code == 0 and "delimiter ';' (given)" in res.stdout, res.output
    res = _load(semi, "--delimiter", "ab", env=cli_env(sb), job_dir=job_dir, job_id="bad")
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and "delimiter" in res.stderr


# ---- a fixed row without an id --------------------------------------------------------------------


def test_a_row_fixed_by_giving_it_an_id_is_replayed_by_its_row_number(sb: SandboxServer, job_dir: Path,
                                                                      tmp_path: Path) -> None:
    rows = [good_row(i) for i in range(1, 21)]
    rows[6][ID] = ""
    src = write_csv(tmp_path / "calls.csv", rows)
    assert _load(src, env=cli_env(sb), job_dir=job_dir).exit_code == 1
    report = tmp_path / "fix.csv"
    assert run_cli(["report", "j", "--job-dir", str(job_dir), "-o", str(report)]).exit_code == 0
    fixed = read_csv_rows(report)
    assert [r["bulkload_rowNumber"] for r in fixed] == ["7"]
    fixed[0][ID] = "call-000007"
    with report.open("w", newline="", encoding="utf-8") as f:
        import csv

        writer = csv.DictWriter(f, fieldnames=list(fixed[0]))
        writer.writeheader()
        writer.writerows(fixed)

    res = run_cli(["retry", "j", "--job-dir", str(job_dir), "--from", str(report), "--no-progress"], cli_env(sb))

    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("Retried 1 of 1 failed rows: 1 resolved (1 created, 0 updated), 0 still failing.")
    assert sb.store_records(ID)["call-000007"]["hs_call_title"] == "Call 7"


# ---- the progress display ---------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_off_a_terminal_is_a_line_every_half_minute() -> None:
    now = [0.0]
    out = io.StringIO()
    p = ShownProgress("load", stream=out, clock=lambda: now[0])
    p.start(1_000, 0)
    p.advance(100, 2)
    assert out.getvalue() == ""  # not yet
    now[0] = 31.0
    p.note("waiting for the rate limit")  # a wait, and half a minute since the start: a line
    p.advance(100, 0)  # and no other until the next half minute
    assert out.getvalue().splitlines() == [
        "load: 100 of 1,000 rows (10.0 %) · 98 ok · 2 failed · 900 pending · 3 rows/s · waiting for the rate limit"]
    now[0] = 62.0
    p.note(None)
    p.advance(100, 0)
    assert out.getvalue().splitlines()[-1] == "load: 300 of 1,000 rows (30.0 %) · 298 ok · 2 failed · 700 pending · 5 rows/s"


_ON_A_PTY = """
from bulkload.terminal import ShownProgress
p = ShownProgress("load")
p.start(500, 100)
p.note("backing off 8 s after HTTP 502", pace="190/10 s")
p.advance(50, 5)
p.close()
"""


def _drawn_on_a_pty(columns: str | None) -> str:
    """What _ON_A_PTY draws on a real pty nobody sized (it reports 0 columns and rows, as
    CI runners and `script` do), with $COLUMNS as given."""
    import pty

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    if columns is not None:
        env["COLUMNS"] = columns
    chunks = []
    try:
        assert os.get_terminal_size(follower).columns == 0
        subprocess.run([sys.executable, "-c", _ON_A_PTY], stdin=subprocess.DEVNULL, stdout=follower,
                       stderr=follower, env=env, timeout=60, check=True)
        os.close(follower)
        follower = -1
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the follower side is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    return b"".join(chunks).decode()


def test_progress_on_a_terminal_shows_counts_pace_and_what_it_waits_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # tqdm alone draws nothing there (it reads -1 rows); drawn at 80 columns, the wait first.
    assert "load (backing off 8 s after HTTP 502)" in _drawn_on_a_pty(None)
    text = _drawn_on_a_pty("200")
    assert "load (backing off 8 s after HTTP 502)" in text
    assert "145 ok · 5 failed · 350 pending · limit 190/10 s" in text
    monkeypatch.setenv("COLUMNS", "200")
    out = _Tty()
    p = ShownProgress("load", stream=out)
    p.start(500, 0)
    p.note("waiting 4 s for the rate limit")
    p.pace(lambda: "183/190 per 10 s")  # the pace changes; the wait stays shown
    p.close()
    assert "load (waiting 4 s for the rate limit)" in out.getvalue()
    assert "0 ok · 0 failed · 500 pending · limit 183/190 per 10 s" in out.getvalue()
    assert ShownProgress("x", stream=_Tty(), enabled=False).tty is False


# ---- the journal's records are true -------------------------------------------------------------------


def test_the_journal_records_what_happened(job_dir: Path, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 1001)])
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=100_000, fault_probabilities={"502": 0.3},
                                     lost_write_applied=0.0, seed=3)) as server:
        assert _load(src, env=cli_env(server), job_dir=job_dir).exit_code == 0
    path = journal_path(job_dir, "j")
    assert path.name == "j.sqlite"  # datasette serves it at /j
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT SUM(rows_done) FROM runs").fetchone()[0] == 1000
        statuses = {r[0] for r in con.execute("SELECT http_status FROM batches")}
        retried = con.execute("SELECT COUNT(*) FROM batches WHERE retries > 0").fetchone()[0]
        columns = [r[1] for r in con.execute("PRAGMA table_info(api_calls)")]
    finally:
        con.close()
    assert retried > 0 and statuses == {200}  # the answer that decided them, not a 502 before it
    assert "unix_minute" in columns and "kind" in columns


def test_a_stop_is_recorded_as_the_signal_that_caused_it(tmp_path: Path, job_dir: Path) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 3001)])
    with SandboxServer(SandboxConfig(tokens=(TOKEN,), rate_limit_max=100_000, latency_ms=200)) as server:
        proc = subprocess.Popen([sys.executable, "-m", "bulkload", "load", str(src), "--id-property", ID,
                                 "--job-dir", str(job_dir), "--job-id", "sig", "--no-progress", "--concurrency", "2"],
                                cwd=ROOT, env={**os.environ, **cli_env(server)}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while server.counters()["requests_total"] < 4:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.terminate()  # SIGTERM
        assert proc.wait(timeout=30) == 75
    st = json.loads(run_cli(["status", "sig", "--job-dir", str(job_dir), "--json"]).stdout)
    assert st["paused_reason"] == "interrupted by SIGTERM"


# ---- -o - -------------------------------------------------------------------------------------------


def test_report_to_standard_output(sb: SandboxServer, job_dir: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [good_row(i) for i in range(1, 11)]
    rows[2]["hs_call_status"] = "DONE"
    assert _load(write_csv(tmp_path / "calls.csv", rows), env=cli_env(sb), job_dir=job_dir).exit_code == 1
    monkeypatch.chdir(tmp_path)
    res = run_cli(["report", "j", "--job-dir", str(job_dir), "--format", "jsonl", "-o", "-"])
    assert res.exit_code == 0
    [row] = [json.loads(line) for line in res.stdout.splitlines()]
    assert row["sourceData"]["rowNumber"] == 3
    assert not (tmp_path / "-").exists()


# ---- timestamps without a zone ---------------------------------------------------------------------------


def test_timestamps_without_a_zone_are_said_and_read_in_the_zone_given(sb: SandboxServer, job_dir: Path,
                                                                       tmp_path: Path) -> None:
    rows = [good_row(i, hs_timestamp="2024-05-01 10:00:00") for i in range(1, 6)]
    rows += [good_row(i) for i in range(6, 11)]  # these have Z
    src = write_csv(tmp_path / "calls.csv", rows)
    res = _load(src, env=cli_env(sb), job_dir=job_dir, job_id="utc")
    assert res.exit_code == 0
    assert ("  note      5 timestamps had no zone and were taken as UTC; --timezone Europe/Oslo (any IANA zone) "
            "reads them as local") in res.stdout.splitlines()
    st = json.loads(run_cli(["status", "utc", "--job-dir", str(job_dir), "--json"]).stdout)
    assert st["timestamps"] == {"without_zone": 5, "read_as": "UTC"}
    assert sb.store_records(ID)["call-000001"]["hs_timestamp"] == "2024-05-01T10:00:00.000Z"

    res = _load(src, "--timezone", "Europe/Oslo", env=cli_env(sb), job_dir=job_dir, job_id="oslo")
    assert "5 timestamps had no zone and were read in Europe/Oslo" in res.stdout
    assert sb.store_records(ID)["call-000001"]["hs_timestamp"] == "2024-05-01T08:00:00.000Z"  # CEST is UTC+2
    assert sb.store_records(ID)["call-000006"]["hs_timestamp"].endswith("Z")
    assert _load(src, "--timezone", "Mars/Olympus", env=cli_env(sb), job_dir=job_dir, job_id="x").exit_code == 2


# ---- the properties command --------------------------------------------------------------------------------


def test_properties_lists_the_portal_properties_with_option_labels(sb: SandboxServer) -> None:
    res = run_cli(["properties", "calls"], cli_env(sb))
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0].startswith("calls: ")
    assert any(re.match(r"  external_call_id\s+string/text\s+unique", line) for line in lines)
    assert "      Connected = f240bbac-87c9-4f6e-bf70-924b57d47db7" in lines
    assert "      Completed = COMPLETED" in lines
    as_json = json.loads(run_cli(["properties", "contacts", "--json"], cli_env(sb)).stdout)
    assert "email" in {p["name"] for p in as_json}


# ---- the library -------------------------------------------------------------------------------------------


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- library example -->\s*```python\n(.*?)```", text, re.S)
    assert match is not None, "the README has no library example"
    return match.group(1)


def test_the_readme_library_example_runs(sb: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil_copy = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 51)])
    assert shutil_copy.exists()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUBSPOT_BASE_URL", sb.base_url)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    namespace: dict[str, Any] = {}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)
    assert namespace["status"]["rows"]["upserted"] == 50
    assert namespace["status"]["exit_code"] == 0


def test_the_library_raises_what_the_cli_exits_with(tmp_path: Path) -> None:
    import bulkload
    from bulkload.errors import InputError

    with pytest.raises(InputError) as refused:
        bulkload.load(tmp_path / "missing.csv", id_property=ID, token="t", base_url="http://127.0.0.1:9",
                      job_dir=tmp_path / "jobs")
    assert refused.value.exit_code == 2
    assert callable(bulkload.report) and callable(bulkload.resume) and callable(bulkload.retry)


# ---- a refused token on the first call -----------------------------------------------------------------------


def test_a_refused_token_on_the_first_call_says_nothing_was_sent_and_prune_removes_the_job(
    sb: SandboxServer, job_dir: Path, tmp_path: Path
) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 11)])
    res = _load(src, env={"HUBSPOT_ACCESS_TOKEN": "wrong", "HUBSPOT_BASE_URL": sb.base_url}, job_dir=job_dir)
    assert res.exit_code == 77
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Paused: HubSpot refused the token (HTTP 401)")
    assert lines[0].count("refused the token") == 1
    assert lines[1] == (f"Nothing was sent yet. Fix it, then resume with: bulkload resume j --job-dir "
                        f"{job_dir.resolve()}  (or remove the job: bulkload jobs --prune --job-dir {job_dir.resolve()})")
    assert _load(src, env=cli_env(sb), job_dir=job_dir, job_id="kept").exit_code == 0
    res = run_cli(["jobs", "--prune", "--job-dir", str(job_dir)])
    assert res.stdout.splitlines() == ["removed j (it never sent anything)"]
    assert not journal_path(job_dir, "j").exists() and journal_path(job_dir, "kept").exists()
