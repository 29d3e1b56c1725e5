"""`load --dry-run`: read, map, check and chunk the whole file locally; say what would be sent.

No request is made and no job is created: the scan runs in a throw-away journal, and
the batches are planned by the same stage a load uses, so the counts are the load's.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bulkload.config import JobConfig
from bulkload.journal import Journal
from bulkload.mapping import Schema
from bulkload.scan import scan_source
from bulkload.source import open_source
from bulkload.stages import SourceStage, column_map_of


def dry_run(config: JobConfig) -> dict[str, Any]:
    source = open_source(config.source, config.source_format, delimiter=config.delimiter)
    column_map = column_map_of(source, config)
    with tempfile.TemporaryDirectory(prefix="bulkload-dry-") as tmp, \
            Journal.create(Path(tmp) / "dry.sqlite") as journal:
        journal.create_job(job_id="dry-run", object_type=config.object_type, id_property=config.id_property,
                           config=config.to_dict(), source_path=str(config.source), source_format=source.format,
                           fingerprint={}, columns=list(source.columns))
        total = scan_source(source, column_map, sink=journal.add_superseding).total_rows
        journal.complete_scan(total)
        stage = SourceStage("dry-run", journal, source, column_map, config)
        n_batches = inputs = superseded = 0
        failures: Counter[str] = Counter()
        for b in stage.batches(Schema.fallback()):
            if b.inputs:
                n_batches += 1
            inputs += len(b.inputs)
            superseded += len(b.superseded)
            failures.update(f.error_type for f in b.failures)
            if b.links:
                journal.add_planned_pairs(b.links)
        pairs = journal.association_counts()["total"]
        distinct = journal.distinct_values()
    return {
        "dry_run": True,
        "source": {"path": str(config.source), "format": source.format, "columns": list(source.columns)},
        "mapping": {c: p for c, p in column_map.pairs},
        "rows": {"total": total, "would_send": inputs, "would_fail_locally": sum(failures.values()),
                 "superseded": superseded},
        "local_failures": dict(failures.most_common()),
        "requests": n_batches,
        "batch_size": config.batch_size,
        "associations": {
            "pairs": pairs,
            "targets": [{"target": str(t), "distinct_values": distinct.get(i, 0),
                         "lookups": distinct.get(i, 0) if t.needs_lookup else 0}
                        for i, t in enumerate(config.associations)],
        },
    }
