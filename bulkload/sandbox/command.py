"""`bulkload sandbox`: the click command that runs a local HubSpot-compatible server.

Only parsing here; the server is `serve()` and the knobs are `SandboxConfig`.
"""

from __future__ import annotations

import json
from typing import Any

import click

from bulkload.sandbox.config import (
    FaultKind,
    SandboxConfig,
    make_config,
    normalise_required,
    parse_rate_limit,
)
from bulkload.sandbox.server import serve

_FAULT_KINDS = ", ".join(kind.value for kind in FaultKind)
_DEFAULTS = SandboxConfig()


def _rate_limit(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int | None, float]:
    try:
        return parse_rate_limit(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _daily_limit(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    text = value.strip().lower()
    if text in ("off", "none", "0"):
        return None
    try:
        limit = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise click.BadParameter(f"expected a number of requests or 'off', not {value!r}") from None
    if limit < 1:
        raise click.BadParameter("the daily limit must be positive (or 'off')")
    return limit


def _required(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, tuple[str, ...]]:
    try:
        return normalise_required(list(values))
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
        "GET /_sandbox/store[?object_type=OBJECT&id_property=NAME], POST /_sandbox/records, "
        "GET /_sandbox/associations?from=OBJECT&id=ID&to=OBJECT, GET /_sandbox/owners, "
        "GET /_sandbox/counters, POST /_sandbox/reset, POST /_sandbox/reset-daily."
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
    help="A token without the write scopes: writes answer 403 MISSING_SCOPES (repeatable).",
)
@click.option(
    "--oauth-token",
    "oauth_tokens",
    multiple=True,
    metavar="TOKEN",
    help="An OAuth app's token: no daily limit and no Daily headers, as HubSpot answers OAuth apps (repeatable).",
)
@click.option(
    "--no-schema-read-token",
    "no_schema_read_tokens",
    multiple=True,
    metavar="TOKEN",
    help="A token without the schema-read scope: GET properties answers 403 (repeatable).",
)
@click.option(
    "--no-owners-read-token",
    "no_owners_read_tokens",
    multiple=True,
    metavar="TOKEN",
    help="A token without crm.objects.owners.read: GET owners answers 403 (repeatable).",
)
@click.option(
    "--unique-property",
    "unique_properties",
    multiple=True,
    metavar="[OBJECT.]NAME",
    help="Add a unique-value string property to an object (calls when no OBJECT is given) "
    "besides its own (external_call_id, external_contact_id, ...; repeatable; at most 10 per object).",
)
@click.option(
    "--require-property",
    "required_properties",
    multiple=True,
    metavar="[OBJECT.]NAME",
    callback=_required,
    help="A portal validation rule (HubSpot's 2026-09 write validation): every create and "
    "update of OBJECT (calls when not given) must set NAME, else 400 VALIDATION_ERROR "
    "MISSING_REQUIRED_PROPERTY (repeatable; switch at run time through POST /_sandbox/config).",
)
@click.option(
    "--owners",
    type=click.IntRange(min=0),
    default=_DEFAULTS.owners,
    show_default=True,
    help="Seed N owners: owner i has id 10000000+7919*i and e-mail owner-{i:03d}@example.com.",
)
@click.option(
    "--archived-owners",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed N more owners (after --owners), archived: not valid hubspot_owner_id values.",
)
@click.option(
    "--contacts",
    type=click.IntRange(min=0, max=10_000_000),
    default=0,
    show_default=True,
    help="Seed N contacts: contact i has e-mail contact-{i:05d}@example.com and record id 1000000+i.",
)
@click.option(
    "--partial-status",
    type=click.Choice(["200", "207"]),
    default=None,
    help="How a batch with some failed inputs is answered (numErrors and errors are in the body "
    "either way). Default: 207 on /crm/v3 and /crm/v4 paths, 200 on date-based ones.",
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
    default=str(_DEFAULTS.daily_limit),
    show_default=True,
    metavar="N|off",
    callback=_daily_limit,
    help="Per-account daily request limit (a Professional account's by default); "
    "'off' removes it and the Daily headers.",
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
    help="Probability of an injected transient fault per write (upsert, association), spread over all kinds.",
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
    help="Inject faults into reads too: batch read, properties, owners, association reads "
    "(default: writes only).",
)
@click.option(
    "--fault-requests",
    multiple=True,
    type=click.Choice(["upsert", "read", "associate", "properties", "owners", "association_read"]),
    help="Inject faults into these requests only (repeatable), e.g. --fault-requests associate "
    "--fault 429=0.2: a run whose association step is refused and failing.",
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
    """Run a local HubSpot-compatible server.

    It serves batch upsert and batch read of every CRM object (calls, contacts,
    companies, deals, tickets, emails, meetings, notes, tasks and the custom
    object p_machines, by name or type id), their Properties API, the owners API
    and associations, in both path families (/crm/v3, /crm/v4 and
    /crm/.../2026-03/...), with HubSpot's status codes, bodies and rate-limit
    headers. Every object has HubSpot's default properties plus a unique string
    property (external_call_id, external_contact_id, ...). Prints 'listening on
    http://HOST:PORT' once it accepts connections; stop it with Ctrl-C.
    """
    partial = options.pop("partial_status")
    try:
        config = make_config(
            rate_limit_max=rate_limit[0],
            rate_limit_window_s=rate_limit[1],
            fault_probabilities=faults,
            partial_status=int(partial) if partial else None,
            **options,
        )
        if config_json:
            config = config.replace(**json.loads(config_json))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    serve(config, host, port)
