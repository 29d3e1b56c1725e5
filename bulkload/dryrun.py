"""`load --dry-run`: the load's pre-flight and every check over the whole file; nothing is
written and no job is created.

With a token and a reachable portal, the schema (and the owners, when an owner property
is sent) come from the portal, as a load reads them: a column that names no property, an
id property HubSpot cannot upsert by, or an association target it cannot look records up
by is refused (exit 2), as `load` would refuse it. Without, the file is checked offline
against HubSpot's default properties of the object (calls), and the answer says so.

The scan runs in a throw-away journal and the batches are planned by the stage a load
uses, so the counts are the load's: rows per error type (each row's every problem), the
first rows of each type, pairs to associate and values to look up.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, cast

from bulkload.associations import check_targets
from bulkload.config import Connection, JobConfig, Tuning
from bulkload.errors import ApiUnavailable, AuthError, BulkloadError, MappingError
from bulkload.hubspot import HubSpotClient
from bulkload.hubspot.paths import ApiPaths, ApiVersion
from bulkload.hubspot.ratelimit import RateLimiter
from bulkload.journal import Journal
from bulkload.mapping import Schema
from bulkload.portal import checks_ran, read_portal, read_properties
from bulkload.scan import scan_source
from bulkload.sender import RetryPolicy, Sender
from bulkload.source import open_source
from bulkload.stages import SourceStage, column_map_of

EXAMPLES_PER_TYPE = 5
# A dry run waits for the portal briefly: it is a question, not a job.
_PATIENCE = Tuning(timeout=10.0, max_attempts=3, max_outage_seconds=20.0)


def dry_run(config: JobConfig, conn: Connection | None = None, *, transport: Any = None) -> dict[str, Any]:
    source = open_source(config.source, config.source_format, delimiter=config.delimiter)
    column_map = column_map_of(source, config)
    sends = [p for _, p in column_map.property_pairs]
    schema, checks = _schema(config, conn, sends, transport)
    with tempfile.TemporaryDirectory(prefix="bulkload-dry-") as tmp, \
            Journal.create(Path(tmp) / "dry.sqlite") as journal:
        journal.create_job(job_id="dry-run", object_type=config.object_type, id_property=config.id_property,
                           config=config.to_dict(), source_path=str(config.source), source_format=source.format,
                           fingerprint={}, columns=list(source.columns))
        total = scan_source(source, column_map, sink=journal.add_superseding).total_rows
        journal.complete_scan(total)
        stage = SourceStage("dry-run", journal, source, column_map, config, values=False)
        n_batches = inputs = superseded = 0
        rows_by_type: Counter[str] = Counter()
        problems: Counter[str] = Counter()
        examples: dict[str, list[dict[str, Any]]] = {}
        for b in stage.batches(schema):  # refuses unknown columns when the portal said what exists
            if b.inputs:
                n_batches += 1
            inputs += len(b.inputs)
            superseded += len(b.superseded)
            for f in b.failures:
                rows_by_type[f.error_type] += 1
                for p in f.problems or (f,):
                    problems[p.error_type] += 1
                    shown = examples.setdefault(p.error_type, [])
                    if len(shown) < EXAMPLES_PER_TYPE:
                        shown.append({"rowNumber": f.row_number, "lineNumber": f.line_number,
                                      "propertyName": p.property_name, "invalidValue": p.invalid_value,
                                      "errorMessage": p.message})
            if b.links:
                journal.add_planned_pairs(b.links)
        pairs = journal.association_counts()["total"]
        distinct = journal.distinct_values()
    return {
        "dry_run": True,
        "source": {"path": str(config.source), "format": source.format, "columns": list(source.columns),
                   "delimiter": source.delimiter},
        "mapping": {c: p for c, p in column_map.pairs},
        "checks": checks,
        "rows": {"total": total, "would_send": inputs, "would_fail_locally": sum(rows_by_type.values()),
                 "superseded": superseded},
        # Rows by their first problem's type (as the report leads with it), and every problem.
        "local_failures": dict(rows_by_type.most_common()),
        "problems": dict(problems.most_common()),
        "examples": examples,
        "requests": n_batches,
        "batch_size": config.batch_size,
        "associations": {
            "pairs": pairs,
            "targets": [{"target": str(t), "distinct_values": distinct.get(i, 0),
                         "lookups": distinct.get(i, 0) if t.needs_lookup else 0}
                        for i, t in enumerate(config.associations)],
        },
    }


def _schema(config: JobConfig, conn: Connection | None, sends: list[str], transport: Any
            ) -> tuple[Schema, dict[str, str]]:
    """The portal's schema as a load would read it, or the offline one and why."""
    offline = Schema.offline(config.object_type)
    if conn is None:
        return offline, {"schema": offline.source, "owners": "not read",
                         "note": _offline_note(offline, "no token (HUBSPOT_ACCESS_TOKEN), so nothing was asked")}
    paths = ApiPaths(cast(ApiVersion, config.api_version))
    with HubSpotClient(conn.base_url, conn.token, transport=transport, timeout=_PATIENCE.timeout,
                       paths=paths) as client:
        sender = Sender(client, RateLimiter(), policy=RetryPolicy.of(_PATIENCE))
        try:
            schema = read_portal(sender, client, None, config.object_type, sends)
            if config.associations:
                check_targets(config.associations, lambda obj: read_properties(sender, client, obj))
        except MappingError:
            raise
        except AuthError as e:
            if e.status == 401:
                raise  # the load would stop here too (exit 77): no offline answer stands for it
            return offline, {"schema": offline.source, "owners": "not read",
                             "note": _offline_note(offline, f"the portal refused to answer ({e})")}
        except ApiUnavailable as e:
            return offline, {"schema": offline.source, "owners": "not read",
                             "note": _offline_note(offline, f"the portal could not be asked ({e})")}
        except BulkloadError as e:
            return offline, {"schema": offline.source, "owners": "not read",
                             "note": _offline_note(offline, f"the portal's answer could not be used ({e})")}
    states = {f"properties:{config.object_type}": "read" if schema.from_api else "refused",
              "owners": "read" if schema.owners is not None else
              ("skipped" if not any(schema.info(n).owner for n in sends) else "refused")}
    return schema, checks_ran(states, config.object_type)


def _offline_note(schema: Schema, why: str) -> str:
    against = ("HubSpot's default properties of the object" if schema.source == "defaults"
               else "datetime properties only (bulkload knows no default properties of this object)")
    return f"checked offline against {against}: {why}"
