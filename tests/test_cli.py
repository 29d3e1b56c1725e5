"""The command line: help everywhere, usage errors are one line and exit 2, layering holds."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from bulkload.cli import cli
from bulkload.sandbox import SandboxServer
from tests.conftest import ROOT, SAMPLE_CSV, TOKEN, cli_env, good_row, run_cli, write_csv

COMMANDS = ["load", "resume", "status", "jobs", "retry", "report", "sandbox", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    res = run_cli([command, "--help"])
    assert res.exit_code == 0
    assert "Usage:" in res.output
    assert len(res.output.splitlines()) > 3


def test_group_help_lists_every_command_and_the_exit_codes() -> None:
    res = run_cli(["--help"])
    for command in COMMANDS:
        assert command in res.output
    assert "75" in res.output and "77" in res.output


def one_line_exit_2(res_output: str, code: int) -> None:
    assert code == 2, res_output
    assert "Traceback" not in res_output


def test_missing_token_is_a_usage_error(tmp_path: Path) -> None:
    res = run_cli(["load", str(SAMPLE_CSV), "--id-property", "external_call_id", "--job-dir", str(tmp_path)],
                  env={"HUBSPOT_BASE_URL": "http://127.0.0.1:9"})
    one_line_exit_2(res.output, res.exit_code)
    assert "HUBSPOT_ACCESS_TOKEN" in res.output


def test_plain_http_is_refused_for_non_loopback_hosts(tmp_path: Path) -> None:
    res = run_cli(["load", str(SAMPLE_CSV), "--id-property", "external_call_id", "--job-dir", str(tmp_path),
                   "--base-url", "http://api.example.com"], env={"HUBSPOT_ACCESS_TOKEN": TOKEN})
    one_line_exit_2(res.output, res.exit_code)
    assert "http://" in res.output
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args",
    [
        ["--batch-size", "101"],
        ["--batch-size", "0"],
        ["--rate", "fast"],
        ["--concurrency", "0"],
        ["--column", "nonsense"],
        ["--column", "no_such_column=hs_call_title"],
    ],
)
def test_bad_flags_exit_2_before_anything_is_sent(
    sandbox: SandboxServer, tmp_path: Path, args: list[str]
) -> None:
    res = run_cli(["load", str(SAMPLE_CSV), "--id-property", "external_call_id", "--job-dir", str(tmp_path),
                   "--no-progress", *args], env=cli_env(sandbox))
    one_line_exit_2(res.output, res.exit_code)
    assert sandbox.counters()["requests_total"] == 0


def test_unknown_property_and_non_unique_id_property_are_refused(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "calls.csv", [good_row(1)], columns=["external_call_id", "hs_timestamp", "hs_call_titel"])
    res = run_cli(["load", str(path), "--id-property", "external_call_id", "--job-dir", str(tmp_path / "j"),
                   "--no-progress"], env=cli_env(sandbox))
    one_line_exit_2(res.output, res.exit_code)
    assert "hs_call_titel" in res.output
    path = write_csv(tmp_path / "calls2.csv", [good_row(1)], columns=["hs_call_title", "hs_timestamp"])
    res = run_cli(["load", str(path), "--id-property", "hs_call_title", "--job-dir", str(tmp_path / "j"),
                   "--no-progress"], env=cli_env(sandbox))
    one_line_exit_2(res.output, res.exit_code)
    assert "unique" in res.output
    assert sandbox.counters()["inputs_written"] == 0
    assert not (tmp_path / "j").exists() or not any((tmp_path / "j").glob("*.journal.sqlite"))


def test_unknown_job_is_exit_2(tmp_path: Path) -> None:
    for args in (["status", "nope"], ["report", "nope"], ["resume", "nope"], ["retry", "nope"]):
        res = run_cli([*args, "--job-dir", str(tmp_path)], env={"HUBSPOT_ACCESS_TOKEN": TOKEN,
                                                               "HUBSPOT_BASE_URL": "http://127.0.0.1:9"})
        one_line_exit_2(res.output, res.exit_code)
        assert "no such job" in res.output


def test_dry_run_sends_nothing_and_says_what_would_be_sent(tmp_path: Path) -> None:
    res = run_cli(["load", str(SAMPLE_CSV), "--id-property", "external_call_id", "--dry-run", "--json",
                   "--job-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["rows"]["total"] == 2000
    assert report["rows"]["superseded"] == 1
    # Offline, against HubSpot's default call properties: every bad row the sample documents.
    assert report["checks"]["schema"] == "defaults"
    assert report["local_failures"] == {"INVALID_TIMESTAMP": 1, "MISSING_ID_VALUE": 1, "INVALID_ENUM_PROPERTY": 2,
                                        "INVALID_NUMBER": 1}
    assert report["rows"]["would_send"] == 2000 - 1 - 5
    assert report["requests"] == 20
    assert not list(tmp_path.iterdir())


def test_a_job_id_cannot_be_reused(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(5)])
    args = ["load", str(path), "--id-property", "external_call_id", "--job-dir", str(tmp_path / "j"),
            "--job-id", "mine", "--no-progress"]
    assert run_cli(args, env=cli_env(sandbox)).exit_code == 0
    res = run_cli(args, env=cli_env(sandbox))
    one_line_exit_2(res.output, res.exit_code)
    assert "bulkload resume mine" in res.output


# ---- layering (STYLE.md): lower layers never import higher ones; the sandbox imports nothing of bulkload

# The layers of STYLE.md, lowest first. Modules of one layer are siblings: they may use each
# other; a module never imports from a layer above its own.
LAYERS: list[set[str]] = [
    {"errors", "taxonomy", "models", "objects"},  # plain data and the error tree
    {"config"},
    {"source", "mapping", "convert", "checks", "chunker", "scan", "budget", "hubspot", "isolation",
     "sender"},  # the stages
    {"journal", "portal", "associations", "stages", "replay", "corrections", "reports", "status",
     "notify"},  # around the journal
    {"pipeline", "dryrun"},  # the one run loop
    {"api", "__init__"},  # the library's face
    {"cli", "views", "demo", "terminal", "__main__"},  # the command line
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _imports(path: Path) -> set[str]:
    """Every bulkload module a file imports, `from bulkload import x` included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            if node.module == "bulkload":
                out.update(f"bulkload.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_sandbox_imports_nothing_from_the_rest_of_bulkload() -> None:
    for path in (ROOT / "bulkload" / "sandbox").rglob("*.py"):
        bad = {m for m in _imports(path) if m.startswith("bulkload") and not m.startswith("bulkload.sandbox")}
        assert not bad, (path.name, bad)


def test_lower_layers_never_import_higher_ones() -> None:
    seen = set()
    for path in (ROOT / "bulkload").rglob("*.py"):
        rel = path.relative_to(ROOT / "bulkload")
        top = rel.parts[0].removesuffix(".py")
        if top == "sandbox":
            continue
        seen.add(top)
        assert top in LAYER_OF, f"{rel}: put the new module in a layer"
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] != "bulkload" or len(parts) < 2 or (parts[1] == "sandbox" and top in ("demo", "cli")):
                continue
            assert parts[1] != "sandbox", (str(rel), module)  # only the demo and the CLI run it
            assert LAYER_OF[parts[1]] <= LAYER_OF[top], (str(rel), "imports", module)
    assert seen == set(LAYER_OF)  # the list names no module that is gone


def test_the_hubspot_package_knows_nothing_of_the_journal_or_the_pipeline() -> None:
    for path in (ROOT / "bulkload" / "hubspot").rglob("*.py"):
        allowed = {"errors", "taxonomy", "models", "config", "hubspot"}
        used = {m.split(".")[1] for m in _imports(path) if m.startswith("bulkload.")}
        assert used <= allowed, (path.name, used - allowed)


def test_cli_object_is_the_console_script() -> None:
    assert cli.name in ("cli", "bulkload")


def test_a_paused_load_with_json_prints_the_status_too(tmp_path: Path) -> None:
    from bulkload.sandbox import SandboxConfig

    path = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(300)])
    with SandboxServer(SandboxConfig(rate_limit_max=None, daily_limit=2)) as sb:
        res = run_cli(["load", str(path), "--id-property", "external_call_id", "--job-dir", str(tmp_path / "j"),
                       "--job-id", "p", "--no-progress", "--json"], env=cli_env(sb))
    assert res.exit_code == 75
    status = json.loads(res.stdout.strip().splitlines()[-1])
    assert status["state"] == "paused" and status["exit_code"] == 75
    # The commands printed carry the non-default job dir, so they run as printed anywhere.
    hint = f"bulkload resume p --job-dir {(tmp_path / 'j').resolve()}"
    assert status["resume_command"] == hint
    assert f"Resume with: {hint}" in res.stderr


def test_the_split_share_is_a_flag_kept_with_the_job_and_checked(tmp_path: Path) -> None:
    # The fix a split-budget pause prints names the flag: it must exist and be kept.
    path = write_csv(tmp_path / "calls.csv", [good_row(i) for i in range(20)])
    jobs = ["--job-dir", str(tmp_path / "j"), "--no-progress"]
    with SandboxServer() as sb:
        bad = run_cli(["load", str(path), "--id-property", "external_call_id", *jobs, "--split-share", "2"],
                      env=cli_env(sb))
        assert bad.exit_code == 2 and "--split-share" in bad.output and "Traceback" not in bad.output
        res = run_cli(["load", str(path), "--id-property", "external_call_id", *jobs, "--job-id", "s",
                       "--split-share", "1"], env=cli_env(sb))
        assert res.exit_code == 0, res.output
    status = json.loads(run_cli(["status", "s", "--job-dir", str(tmp_path / "j"), "--json"]).stdout)
    assert status["tuning"]["split_share"] == 1.0
    for command in ("resume", "retry"):
        assert "--split-share SHARE" in run_cli([command, "--help"]).output
