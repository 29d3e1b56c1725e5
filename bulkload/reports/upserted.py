"""`report --upserted`: every row that landed, with the HubSpot record it became.

Salesforce's successful-results file is the anchor: one line per landed row,
`{"idPropertyValue", "objectId" (HubSpot's record id, null when HubSpot's answer did not
say which), "created" (true if this job created the record), "upsertedAt",
"associations": {"contacts": ["..."]}, "sourceData": {"file", "rowNumber", "lineNumber"}}`,
in row order, paged by an opaque cursor, as csv, jsonl or parquet (mode 0600).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from bulkload.errors import InputError
from bulkload.journal import Journal
from bulkload.reports.fields import neutralise_cell
from bulkload.reports.files import STDOUT, ReportWritten, _private_file, _stdout
from bulkload.reports.rows import check_limit

PAGE = 5_000


def _encode(row: int) -> str:
    return base64.urlsafe_b64encode(f"u1:{row}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.strip() + "=" * (-len(cursor.strip()) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    m = re.fullmatch(r"u1:(\d{1,18})", text)
    if m is None:
        raise InputError(f"invalid cursor {cursor!r}: pass --after the next cursor `report --upserted` printed")
    return int(m.group(1))


def iter_upserted(journal: Journal, *, after: str | None = None) -> Iterator[dict[str, Any]]:
    """Every landed row after the cursor, in row order, with its associated record ids."""
    job = journal.job()
    file = Path(job.source_path).name
    objects = [str(a).split("=", 1)[1].rsplit(".", 1)[0] for a in job.config.get("associations") or []]
    rows = journal.iter_landed(after=_decode(after) if after else None)
    while page := list(islice(rows, PAGE)):
        links: dict[int, dict[str, list[str]]] = {}
        if objects:
            for row, target, to_id in journal.pairs_of_rows(page[0][0], page[-1][0]):
                if to_id is not None and 0 <= target < len(objects):
                    links.setdefault(row, {}).setdefault(objects[target], []).append(str(to_id))
        for row, id_value, object_id, created, line, landed_at in page:
            yield {
                "idPropertyValue": id_value,
                "objectId": None if object_id is None else str(object_id),
                "created": bool(created),
                "upsertedAt": datetime.fromtimestamp(landed_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "associations": links.get(row, {}),
                "sourceData": {"file": file, "rowNumber": row, "lineNumber": line},
            }


_COLUMNS = ("idPropertyValue", "objectId", "created", "upsertedAt", "associations", "rowNumber", "lineNumber")
_SCHEMA = pa.schema([
    ("idPropertyValue", pa.string()), ("objectId", pa.string()), ("created", pa.bool_()), ("upsertedAt", pa.string()),
    ("associations", pa.map_(pa.string(), pa.list_(pa.string()))),
    ("sourceData", pa.struct([("file", pa.string()), ("rowNumber", pa.int64()), ("lineNumber", pa.int64())])),
])


def _write(fmt: str, f: IO[bytes], rows: Iterator[dict[str, Any]]) -> None:
    if fmt == "jsonl":
        for row in rows:
            f.write(orjson.dumps(row) + b"\n")
    elif fmt == "csv":
        text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(_COLUMNS)
        for row in rows:
            links = ";".join(f"{obj}:{rid}" for obj, ids in row["associations"].items() for rid in ids)
            writer.writerow([neutralise_cell(row["idPropertyValue"] or ""), row["objectId"] or "",
                             "true" if row["created"] else "false", row["upsertedAt"], links,
                             row["sourceData"]["rowNumber"], row["sourceData"]["lineNumber"] or ""])
        text.flush()
        text.detach()
    else:
        with pq.ParquetWriter(f, _SCHEMA, compression="zstd") as writer:
            wrote = False
            while batch := list(islice(rows, PAGE)):
                for r in batch:
                    r["associations"] = list(r["associations"].items())
                writer.write_table(pa.Table.from_pylist(batch, schema=_SCHEMA))
                wrote = True
            if not wrote:
                writer.write_table(_SCHEMA.empty_table())


def write_upserted(journal: Journal, fmt: str, path: Path | None = None, *, limit: int | None = None,
                   after: str | None = None) -> ReportWritten:
    """Write the landed rows (or one page of them); `-` is standard output."""
    if fmt not in ("csv", "jsonl", "parquet"):
        raise InputError(f"unknown report format {fmt!r}; use csv, jsonl or parquet")
    check_limit(limit)
    job_id = journal.job_id
    if path is None:
        target = journal.path.parent / f"{job_id}.upserted.{fmt}"
    elif path == STDOUT:
        target = STDOUT
    elif path.is_dir():
        target = path / f"{job_id}.upserted.{fmt}"
    elif not path.parent.is_dir():
        raise InputError(f"cannot write the report to {path}: no directory {path.parent}")
    else:
        target = path
    count = [0]
    last = [0]
    rows = iter_upserted(journal, after=after)

    def counted(source: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in source:
            count[0] += 1
            last[0] = row["sourceData"]["rowNumber"]
            yield row

    with journal.snapshot(), (_stdout() if target == STDOUT else _private_file(target)) as f:
        _write(fmt, f, counted(islice(rows, limit) if limit is not None else rows))
        more = limit is not None and next(rows, None) is not None
    return ReportWritten(path=target, rows=count[0], errors=0, warnings=0,
                         next_cursor=_encode(last[0]) if more and count[0] else None, format=fmt, job_id=job_id)
