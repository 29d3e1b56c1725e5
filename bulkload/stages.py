"""The stage of `load` and `resume`: batches planned from the source file.

A resume skips the leading run of finished batches unread (the CSV reader starts at the
last one's first line), re-plans known batches with exactly their journaled rows, and
never emits a done batch again. The send pass checks, chunk by chunk, that the file is
still the one the scan read (`expect`), so no row read after a change is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.compute as pc
import pyarrow.parquet as pq

from bulkload.associations import AssociationStep
from bulkload.chunker import Chunker
from bulkload.config import JobConfig
from bulkload.journal import BatchResult, Journal, LinkResult, Usage
from bulkload.mapping import ColumnMap, Schema, check_column_types, map_chunk, resolve_columns
from bulkload.models import BatchPlan
from bulkload.scan import RepeatedIds
from bulkload.source import Fingerprint, Source, SourceChunk, StartAt

SEND_CHUNK_ROWS = 16_384  # small chunks keep the journal thread responsive between mappings


def trim(chunk: SourceChunk, after_row: int) -> SourceChunk | None:
    """Drop the rows a resume has already done, without mapping them."""
    if after_row <= 0:
        return chunk
    rows = chunk.row_numbers
    n = len(rows)
    malformed = tuple(m for m in chunk.malformed if m.row_number > after_row)
    k = int(pc.sum(pc.less_equal(rows, after_row)).as_py() or 0) if n else 0  # rows ascend
    if k == n and not malformed:
        return None
    if k == 0 and len(malformed) == len(chunk.malformed):
        return chunk
    return SourceChunk(
        table=chunk.table.slice(k),
        row_numbers=rows.slice(k),
        line_numbers=chunk.line_numbers.slice(k) if chunk.line_numbers is not None else None,
        malformed=malformed,
    )


def column_map_of(source: Source, config: JobConfig) -> ColumnMap:
    """The job's columns -> properties, refused (exit 2) when it cannot work for this file."""
    column_map = resolve_columns(source.columns, config.id_property, config.columns, config.associations,
                                 config.object_type)
    if source.format == "parquet":
        check_column_types(pq.read_schema(source.path), column_map)
    return column_map


@dataclass
class SourceStage:
    """Batches from the source file, journaled as the job's batches."""

    command: str  # "load" | "resume"
    journal: Journal
    source: Source
    column_map: ColumnMap
    config: JobConfig
    expect: Fingerprint | None = None
    links: AssociationStep | None = None
    values: bool = True  # False (a dry run): check every value, build no inputs to send

    def batches(self, schema: Schema) -> Iterator[BatchPlan]:
        self.column_map.check_against(schema, self.config.object_type)
        journal = self.journal
        prefix_no, prefix_row = journal.done_prefix()
        chunker = Chunker(
            batch_size=self.config.batch_size,
            id_property=self.config.id_property,
            next_batch_no=prefix_no + 1,
            known=journal.known_batches(after=prefix_no),
            winners=RepeatedIds(journal.iter_superseding_ids(), journal.superseding_rows),
            count_only=not self.values,
        )
        # Start reading at the last finished batch of the prefix rather than at the top:
        # the rows before it are done and need not even be parsed (trim drops the rest).
        start: StartAt | None = None
        first = journal.start_of(prefix_no) if prefix_no else None
        if first is not None and first[1] is not None:
            start = StartAt(first[0], first[1])
        return self._plan(chunker, schema, start, prefix_row)

    def _plan(self, chunker: Chunker, schema: Schema, start: StartAt | None, prefix_row: int) -> Iterator[BatchPlan]:
        for chunk in self.source.chunks(rows_per_chunk=SEND_CHUNK_ROWS, start=start, expect=self.expect):
            trimmed = trim(chunk, prefix_row)
            if trimmed is not None:
                yield from chunker.feed(map_chunk(trimmed, self.column_map, schema, self.config.timezone,
                                                  self.config.associations, values=self.values))
        yield from chunker.finish()

    def record(self, journal: Journal, run_no: int, outcomes: list[BatchResult], claims: list[BatchPlan],
               closed: list[BatchPlan], usage: Usage, links: list[LinkResult]) -> None:
        journal.record_turn(run_no=run_no, outcomes=outcomes, claims=claims, closed=closed, usage=usage, links=links)

    def progress_total(self, journal: Journal) -> tuple[int, int]:
        rows = journal.counts()["rows"]
        return rows["total"], rows["total"] - rows["pending"]
