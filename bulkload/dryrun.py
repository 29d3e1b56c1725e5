"""`load --dry-run`: read, map and chunk the whole file locally and say what would be sent.

No request is made and no job is created; the scan runs in a throw-away journal.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bulkload.config import JobConfig
from bulkload.journal import Journal
from bulkload.mapping import Schema, check_column_types, resolve_columns
from bulkload.pipeline import plan_batches, scan_source
from bulkload.source import open_source


def dry_run(config: JobConfig) -> dict[str, Any]:
    source = open_source(config.source, config.source_format)
    column_map = resolve_columns(source.columns, config.id_property, config.columns)
    if source.format == "parquet":
        check_column_types(pq.read_schema(source.path), column_map)
    with tempfile.TemporaryDirectory(prefix="bulkload-dry-") as tmp:
        journal = Journal.create(Path(tmp) / "dry.journal.sqlite")
        try:
            journal.create_job(job_id="dry-run", object_type=config.object_type, id_property=config.id_property,
                               config=config.to_dict(), source_path=str(config.source), source_format=source.format,
                               fingerprint={}, columns=list(source.columns))
            total = scan_source(journal, source, column_map)
            batches, _ = plan_batches(journal, source, column_map, Schema.fallback(), config)
            n_batches = inputs = superseded = 0
            failures: Counter[str] = Counter()
            for b in batches:
                if b.inputs:
                    n_batches += 1
                inputs += len(b.inputs)
                superseded += len(b.superseded)
                failures.update(f.failure.error_type.value for f in b.failures)
        finally:
            journal.close()
    return {
        "dry_run": True,
        "source": {"path": str(config.source), "format": source.format, "columns": list(source.columns)},
        "mapping": {c: p for c, p in column_map.pairs},
        "rows": {"total": total, "would_send": inputs, "would_fail_locally": sum(failures.values()),
                 "superseded": superseded},
        "local_failures": dict(failures.most_common()),
        "requests": n_batches,
        "batch_size": config.batch_size,
    }
