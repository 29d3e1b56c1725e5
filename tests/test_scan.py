"""The scan's repeated-id detection: bounded memory, and false alarms cost nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkload import api, scan
from bulkload.config import Connection, JobConfig
from bulkload.sandbox import SandboxServer
from tests.conftest import TOKEN, good_row, write_csv


@pytest.mark.parametrize("bits", [8, 1 << 20])
def test_only_true_repeats_are_superseded_even_when_the_bit_set_collides(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, job_dir: Path, tmp_path: Path, bits: int
) -> None:
    # 8 bits: almost every id "collides", the worst case for false alarms.
    monkeypatch.setattr(scan, "DUP_BITS", bits)
    rows = [good_row(i) for i in range(300)]
    rows[250] = good_row(10, hs_call_title="the last word for call 10")
    rows[260] = good_row(20, hs_call_title="second")
    rows[270] = good_row(20, hs_call_title="third and last for call 20")
    path = write_csv(tmp_path / "calls.csv", rows)
    result = api.load(JobConfig(source=path, id_property="external_call_id"),
                      Connection(sandbox.base_url, TOKEN), job_dir=job_dir)
    assert result.exit_code == 0
    assert result.counts["rows"]["superseded"] == 3  # rows 11, 21 and 261 (1-based)
    assert result.counts["rows"]["upserted"] == 297
    store = sandbox.store_records("external_call_id")
    assert len(store) == 297
    assert store["call-000010"]["hs_call_title"] == "the last word for call 10"
    assert store["call-000020"]["hs_call_title"] == "third and last for call 20"
    # Every id was written once: no superseded row was ever sent.
    assert max(sandbox.counters()["writes_per_id"].values()) == 1
