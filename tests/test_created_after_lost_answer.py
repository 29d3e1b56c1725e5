"""`created` when HubSpot's first answer to a batch was lost after it wrote."""

from __future__ import annotations

import json
from pathlib import Path

from bulkload.sandbox import SandboxConfig, SandboxServer
from tests.conftest import TOKEN, cli_env, good_row, run_cli, write_csv


def test_records_this_job_created_count_as_created_after_a_lost_answer(job_dir: Path, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(1, 1001)])
    # A 503 after the write was applied: the resend is answered new=false, yet the record is
    # one this job created (the portal was empty).
    config = SandboxConfig(tokens=(TOKEN,), rate_limit_max=None, seed=5, fault_requests=("upsert",),
                           fault_probabilities={"503": 0.3}, lost_write_applied=1.0)
    with SandboxServer(config) as sb:
        env = cli_env(sb)
        r = run_cli(["load", str(src), "--id-property", "external_call_id", "--job-id", "c", "--job-dir",
                     str(job_dir), "--max-attempts", "20"], env=env)
        assert r.exit_code == 0, r.output
        assert sb.counters()["faults"].get("503", 0) > 0
        status = json.loads(run_cli(["status", "c", "--job-dir", str(job_dir), "--json"], env=env).output)
        out = tmp_path / "up.jsonl"
        run_cli(["report", "c", "--job-dir", str(job_dir), "--upserted", "--format", "jsonl", "-o", str(out)], env=env)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert (status["rows"]["created"], status["rows"]["updated"]) == (1000, 0)
    assert all(line["created"] for line in lines)
