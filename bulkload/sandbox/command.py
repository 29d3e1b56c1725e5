"""`bulkload sandbox`: the click command that runs a local HubSpot-compatible server.

Only parsing here; the server is `serve()` and the knobs are `SandboxConfig`.
"""

from __future__ import annotations

import json
from typing import Any

import click

from bulkload.sandbox.config import FaultKind, SandboxConfig, make_config, parse_rate_limit
from bulkload.sandbox.server import serve

_FAULT_KINDS = ", ".join(kind.value for kind in FaultKind)
_DEFAULTS = SandboxConfig()


def _rate_limit(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int | None, float]:
    try:
        return parse_rate_limit(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _faults(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in values:
        kind, sep, rate = item.partition("=")
        if not sep or kind not in {k.value for k in FaultKind}:
            raise click.BadParameter(
                f"expected KIND=P with KIND one of {_FAULT_KINDS}, not {item!r}"
            )
        try:
            out[kind] = float(rate)
        except ValueError:
            raise click.BadParameter(f"{rate!r} is not a probability") from None
    return out


@click.command(
    "sandbox",
    epilog=(
        "Admin endpoints (no auth): GET /_sandbox/health, GET|POST /_sandbox/config, "
        "GET /_sandbox/store[?id_property=NAME], GET /_sandbox/counters, "
        "POST /_sandbox/reset, POST /_sandbox/reset-daily."
    ),
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free port (printed on the 'listening on' line).",
)
@click.option(
    "--token",
    "tokens",
    multiple=True,
    metavar="TOKEN",
    help="Accept only these bearer tokens (repeatable). Without it any non-empty token is accepted.",
)
@click.option(
    "--read-only-token",
    "read_only_tokens",
    multiple=True,
    metavar="TOKEN",
    help="A token without the write scope: upserts answer 403 MISSING_SCOPES (repeatable).",
)
@click.option(
    "--unique-property",
    "unique_properties",
    multiple=True,
    metavar="NAME",
    help="Add a unique-value string property besides external_call_id (repeatable; at most 10 in all).",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Mean added latency per API request.",
)
@click.option(
    "--latency-jitter-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Latency varies uniformly within +/- this much.",
)
@click.option(
    "--rate-limit",
    "rate_limit",
    default="190/10",
    show_default=True,
    metavar="N/SECONDS",
    callback=_rate_limit,
    help="Per-token rolling window limit, or 'off'.",
)
@click.option(
    "--daily-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Per-account daily request limit (default: none, and no Daily headers).",
)
@click.option(
    "--count-rejected/--no-count-rejected",
    "rate_limit_counts_rejected",
    default=False,
    show_default=True,
    help="Whether 429'd requests use up the rolling window too.",
)
@click.option(
    "--retry-after/--no-retry-after",
    default=False,
    show_default=True,
    help="Send Retry-After on 429 (HubSpot does not document one).",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    metavar="P",
    help="Probability of an injected transient fault per upsert, spread over all kinds.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND=P",
    callback=_faults,
    help=f"Extra probability for one fault kind (repeatable). Kinds: {_FAULT_KINDS}.",
)
@click.option(
    "--fault-reads/--no-fault-reads",
    default=False,
    show_default=True,
    help="Inject faults into the properties API too (default: upserts only).",
)
@click.option(
    "--lost-write-applied",
    type=click.FloatRange(0, 1),
    default=_DEFAULTS.lost_write_applied,
    show_default=True,
    metavar="P",
    help="For dropped, slow and 5xx answers: probability the write was applied first.",
)
@click.option(
    "--slow-response-s",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.slow_response_s,
    show_default=True,
    help="How late a 'slow' fault answers (set above the client's timeout).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the fault and latency draws."
)
@click.option(
    "--mode",
    type=click.Choice(["multi_status", "strict"]),
    default="multi_status",
    show_default=True,
    help="multi_status: invalid inputs with unique objectWriteTraceIds get a 207. "
    "strict: one bad input fails the whole batch (400, or 409 on a unique-value conflict).",
)
@click.option(
    "--unknown-properties",
    type=click.Choice(["error", "ignore"]),
    default="error",
    show_default=True,
    help="Unknown property names: PROPERTY_DOESNT_EXIST, or silently dropped.",
)
@click.option(
    "--coerce-values/--no-coerce-values",
    "coerce_non_string_values",
    default=False,
    show_default=True,
    help="Read JSON numbers/booleans as text instead of refusing the request.",
)
@click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Keep records in this SQLite file so they survive a restart.",
)
@click.option(
    "--portal-id",
    type=int,
    default=_DEFAULTS.portal_id,
    show_default=True,
    help="The portalId shown in validation errors.",
)
@click.option(
    "--config-json",
    hidden=True,
    default=None,
    help="SandboxConfig fields as a JSON object, applied over the flags (used by SandboxProcess).",
)
def sandbox_command(
    host: str,
    port: int,
    rate_limit: tuple[int | None, float],
    faults: dict[str, float],
    config_json: str | None,
    **options: Any,
) -> None:
    """Run a local HubSpot-compatible server for calls batch upserts.

    It serves POST /crm/v3/objects/calls/batch/upsert (also 0-48 and
    /crm/objects/2026-03/calls/...) and the calls Properties API with
    HubSpot's status codes, bodies and rate-limit headers. It always defines
    HubSpot's default call properties plus the unique string property
    external_call_id. Prints 'listening on http://HOST:PORT' once it accepts
    connections; stop it with Ctrl-C.
    """
    try:
        config = make_config(
            rate_limit_max=rate_limit[0],
            rate_limit_window_s=rate_limit[1],
            fault_probabilities=faults,
            **options,
        )
        if config_json:
            config = config.replace(**json.loads(config_json))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    serve(config, host, port)
