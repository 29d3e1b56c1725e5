"""The `sandbox` click command, `python -m bulkload.sandbox`, and the import boundary."""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import bulkload.sandbox
from bulkload.sandbox import SandboxConfig, SandboxProcess, sandbox_command
from bulkload.sandbox.config import parse_rate_limit

from .helpers import UPSERT, batch, call


def test_help_lists_the_contract_flags() -> None:
    result = CliRunner().invoke(sandbox_command, ["--help"])
    assert result.exit_code == 0
    for flag in (
        "--host", "--port", "--token", "--unique-property", "--latency-ms", "--rate-limit",
        "--daily-limit", "--fault-rate", "--store", "--mode", "--seed", "--fault ",
        "--read-only-token", "--retry-after", "--latency-jitter-ms", "--lost-write-applied",
    ):  # fmt: skip
        assert flag in result.output, flag


def test_bad_flags_are_usage_errors() -> None:
    runner = CliRunner()
    assert runner.invoke(sandbox_command, ["--rate-limit", "fast"]).exit_code == 2
    assert runner.invoke(sandbox_command, ["--fault", "500=0.1"]).exit_code == 2
    assert runner.invoke(sandbox_command, ["--fault-rate", "2"]).exit_code == 2
    result = runner.invoke(sandbox_command, ["--fault", "502=0.9", "--fault-rate", "0.5"])
    assert result.exit_code == 2
    assert "more than 1" in result.output


def test_parse_rate_limit() -> None:
    assert parse_rate_limit("190/10") == (190, 10.0)
    assert parse_rate_limit("100/10") == (100, 10.0)
    assert parse_rate_limit("5/1.5") == (5, 1.5)
    assert parse_rate_limit("off") == (None, 10.0)


def test_python_m_serves_and_prints_the_listening_line(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "bulkload.sandbox", "--port", "0", "--token", "cli-token",
            "--unique-property", "dialer_id", "--store", str(store), "--rate-limit", "5/10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().rstrip("\n")
        assert line.startswith("listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        url = line.removeprefix("listening on ")
        headers = {"Authorization": "Bearer cli-token"}
        response = httpx.post(url + UPSERT, json=batch(call(1)), headers=headers)
        assert response.status_code == 200
        assert response.headers["x-hubspot-ratelimit-max"] == "5"
        prop = httpx.get(url + "/crm/v3/properties/calls/dialer_id", headers=headers).json()
        assert prop["hasUniqueValue"] is True
        assert httpx.post(url + UPSERT, json=batch(call(2))).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    assert store.exists()


def test_the_sandbox_imports_nothing_else_from_bulkload() -> None:
    package = Path(bulkload.sandbox.__file__).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{module.name}: relative import"
                names = [node.module or ""]
            for name in names:
                if name == "bulkload" or name.startswith("bulkload."):
                    assert name.startswith("bulkload.sandbox"), f"{module.name} imports {name}"


def test_sandbox_process_is_driven_over_the_admin_endpoints(tmp_path: Path) -> None:
    config = SandboxConfig(
        tokens=("p",), unique_properties=("dialer_id",), store_path=str(tmp_path / "p.db")
    )
    with SandboxProcess(config) as sandbox:
        assert sandbox.port > 0
        headers = {"Authorization": "Bearer p"}
        assert (
            httpx.post(sandbox.base_url + UPSERT, json=batch(call(1)), headers=headers).status_code
            == 200
        )
        assert set(sandbox.store_records()) == {"call-1"}
        assert sandbox.counters()["inputs_created"] == 1
        assert sandbox.configure(mode="strict")["mode"] == "strict"
        assert sandbox.config["unique_properties"] == ["dialer_id"]
        with pytest.raises(ValueError):
            sandbox.configure(mode="lenient")
        sandbox.reset_daily()
        sandbox.reset(store=True)
        assert sandbox.store_records() == {}


def test_sandbox_process_refuses_an_injected_clock() -> None:
    with pytest.raises(ValueError, match="system clock"):
        SandboxProcess(SandboxConfig(clock=lambda: 0.0))


def test_bad_unique_property_names_are_usage_errors() -> None:
    runner = CliRunner()
    for name in ("Bad-Name", "hs_call_title"):
        result = runner.invoke(sandbox_command, ["--unique-property", name])
        assert result.exit_code == 2, result.output
    result = runner.invoke(sandbox_command, [f"--unique-property=k{i}" for i in range(10)])
    assert "at most 10 unique properties" in result.output
