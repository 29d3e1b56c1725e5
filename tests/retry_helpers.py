"""Helpers for the end-to-end retry-stage and `retry` command tests.

Rows come from `tests.conftest.good_row`, with a few bad ones mixed in; the
expected store is computed from the rows themselves (Python's csv module and
`expected_datetime`), independently of bulkload's mapping.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from click.testing import Result

from bulkload import api
from bulkload.config import Connection, JobConfig, Tuning
from bulkload.errors import BulkloadError
from bulkload.journal import journal_path
from bulkload.pipeline import Runtime
from bulkload.sandbox import SandboxServer
from tests.conftest import COLUMNS, TOKEN, cli_env, expected_datetime, good_row, run_cli, write_csv

ID = "external_call_id"
DATETIME_PROPS = frozenset({"hs_timestamp"})


def fast_sleep(seconds: float) -> None:
    """Backoff waits shrunk 25-fold: the sender's pauses come in steps of at most
    0.25 s, each now 10 ms. The rate limiter re-reads the real clock after every
    sleep, so its pacing is unchanged (it only polls more often)."""
    time.sleep(min(seconds, 0.01))


def fast_runtime() -> Runtime:
    return Runtime(sleep=fast_sleep)


def make_rows(n: int, bad: Mapping[int, Mapping[str, str]] = {}, **common: str) -> list[dict[str, Any]]:
    """Rows 1..n; `bad` maps a 1-based row number to the cells that spoil it."""
    rows = []
    for i in range(1, n + 1):
        row = good_row(i, **common)
        row.update(bad.get(i, {}))
        rows.append(row)
    return rows


def write_rows(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> Path:
    return write_csv(path, rows, columns)


def expected_store(rows: Iterable[Mapping[str, Any]], failing_ids: Iterable[str] = ()) -> dict[str, dict[str, str]]:
    """Last row per id, failing ids left out, values as HubSpot stores them."""
    skip = set(failing_ids)
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        id_value = str(row[ID])
        if not id_value or id_value in skip:
            continue
        out[id_value] = {
            k: (expected_datetime(str(v)) if k in DATETIME_PROPS else str(v))
            for k, v in row.items()
            if v not in (None, "") and k != ID
        }
    return out


def assert_store_exact(sb: SandboxServer, expected: Mapping[str, Mapping[str, str]]) -> None:
    """The sandbox holds exactly the expected records, each with exactly the expected values."""
    store = sb.store_records(ID)
    assert set(store) == set(expected), (sorted(set(store) - set(expected))[:5],
                                          sorted(set(expected) - set(store))[:5])
    volatile = {"hs_object_id", "hs_createdate", "hs_lastmodifieddate", ID}
    for id_value, props in expected.items():
        got = {k: v for k, v in store[id_value].items() if k not in volatile}
        assert got == dict(props), id_value


def job_args(path: Path, job_dir: Path, job_id: str, *extra: str) -> list[str]:
    return ["load", str(path), "--id-property", ID, "--job-dir", str(job_dir), "--job-id", job_id,
            "--no-progress", *extra]


def cli(args: Sequence[str], sb: SandboxServer, **env: str) -> Result:
    return run_cli(args, env=cli_env(sb) | env)


def status_json(job_dir: Path, job_id: str) -> dict[str, Any]:
    res = run_cli(["status", job_id, "--job-dir", str(job_dir), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert isinstance(out, dict)
    return out


def check_rows_invariant(status: Mapping[str, Any]) -> None:
    rows = status["rows"]
    assert rows["upserted"] + rows["failed"] + rows["superseded"] + rows["pending"] == rows["total"], rows


def journal_query(job_dir: Path, job_id: str, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(journal_path(job_dir, job_id))
    try:
        return list(con.execute(sql, list(args)))
    finally:
        con.close()


def current_errors(job_dir: Path, job_id: str) -> dict[int, dict[str, Any]]:
    """Unresolved row errors by row number."""
    cols = ("row_number", "id_value", "error_type", "category", "property_name", "invalid_value", "attempts",
            "origin", "http_status")
    rows = journal_query(job_dir, job_id, f"SELECT {', '.join(cols)} FROM row_errors WHERE resolved = 0")
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}


def report_jsonl(job_dir: Path, job_id: str, tmp: Path, *extra: str) -> list[dict[str, Any]]:
    """The failed-rows report (errors only, warnings dropped), through the CLI."""
    out = tmp / f"{job_id}-{len(list(tmp.glob('*.jsonl')))}.jsonl"
    res = run_cli(["report", job_id, "--job-dir", str(job_dir), "--format", "jsonl", "-o", str(out), *extra])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in lines if r.get("severity", "error") == "error"]


def run_api(
    fn: Callable[[], api.RunResult],
) -> tuple[int, api.RunResult | BulkloadError]:
    """(exit code, result or error) of a library call, as the CLI would map it."""
    try:
        result = fn()
    except BulkloadError as e:
        return e.exit_code, e
    return result.exit_code, result


def api_load(sb: SandboxServer, path: Path, job_dir: Path, job_id: str, *, batch_size: int = 100,
             token: str = TOKEN, **tuning: Any) -> tuple[int, api.RunResult | BulkloadError]:
    config = JobConfig(source=path, id_property=ID, batch_size=batch_size)
    conn = Connection(base_url=sb.base_url, token=token)
    return run_api(lambda: api.load(config, conn, job_dir=job_dir, job_id=job_id, tuning=Tuning(**tuning),
                                    runtime=fast_runtime()))


def api_resume(sb: SandboxServer, job_dir: Path, job_id: str, *, token: str = TOKEN,
               **tuning: Any) -> tuple[int, api.RunResult | BulkloadError]:
    conn = Connection(base_url=sb.base_url, token=token)
    return run_api(lambda: api.resume(job_id, conn, job_dir=job_dir, tuning=Tuning(**tuning),
                                      runtime=fast_runtime()))
