"""sample_data/: the generator is deterministic, and the committed sample holds the rows
sample_data/README.md documents, where it documents them."""

from __future__ import annotations

import csv
import importlib.util
import io
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pytest

from bulkload.demo import DEMO_CONTACTS
from bulkload.source import open_source

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_generate", SAMPLE_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


gen = load_generator()


def read_table(path: Path) -> tuple[pa.Table, list[int], list[int] | None]:
    chunks = list(open_source(path).chunks())
    assert all(not c.malformed for c in chunks)
    table = pa.Table.from_batches([c.table for c in chunks])
    rows = [r for c in chunks for r in c.row_numbers.to_pylist()]
    lines = None
    if chunks[0].line_numbers is not None:
        lines = [n for c in chunks if c.line_numbers for n in c.line_numbers.to_pylist()]
    return table, rows, lines


# --------------------------------------------------------------------------- generator


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = gen.generate(700, 11, tmp_path / "a", bad_rate=0.01, dup_rate=0.01)
    b = gen.generate(700, 11, tmp_path / "b", bad_rate=0.01, dup_rate=0.01)
    gen.generate(700, 12, tmp_path / "c", bad_rate=0.01, dup_rate=0.01)
    for name in ("calls.csv", "calls.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    assert a.bad_rows == b.bad_rows
    assert a.summary()["rows"] == 700


def test_no_bad_changes_only_the_bad_rows(tmp_path: Path) -> None:
    bad = gen.generate(600, 5, tmp_path / "bad", format="csv")
    good = gen.generate(600, 5, tmp_path / "good", format="csv", bad=False)
    assert [b.row_number for b in bad.bad_rows] == [101, 202, 303, 404, 505]
    assert good.bad_rows == []
    bad_rows = list(csv.reader(io.StringIO((tmp_path / "bad/calls.csv").read_text(), newline="")))
    good_rows = list(csv.reader(io.StringIO((tmp_path / "good/calls.csv").read_text(), newline="")))
    differ = [i for i, (x, y) in enumerate(zip(bad_rows, good_rows, strict=True)) if x != y]
    assert differ == [101, 202, 303, 404, 505]  # list index = data row (header at 0)


def test_sparse_bad_rows_and_crlf(tmp_path: Path) -> None:
    result = gen.generate(
        3000, 3, tmp_path, format="csv", bad=False, bad_rate=0.01, dup_rate=0.01, crlf=True
    )
    kinds = {b.kind for b in result.bad_rows}
    assert kinds == {
        "invalid_status",
        "invalid_timestamp",
        "missing_id",
        "invalid_disposition",
        "invalid_duration",
        "duplicate_id",
    }
    assert 30 < len(result.bad_rows) < 100
    text = (tmp_path / "calls.csv").read_bytes()
    assert text.count(b"\r\n") >= 3001 and text.endswith(b"\r\n")
    assert text.startswith(b",".join(c.encode() for c in gen.COLUMNS) + b"\r\n")
    table, rows, _ = read_table(tmp_path / "calls.csv")
    assert rows == list(range(1, 3001))
    ids = table.column("external_call_id").to_pylist()
    for bad in result.bad_rows:
        assert ids[bad.row_number - 1] == bad.external_call_id
        if bad.kind == "duplicate_id":
            assert bad.external_call_id in ids[: bad.row_number - 1]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gen.main(["--rows", "50", "--out", str(tmp_path), "--format", "parquet"]) == 0
    assert '"rows": 50' in capsys.readouterr().out
    assert (tmp_path / "calls.parquet").exists() and not (tmp_path / "calls.csv").exists()


# --------------------------------------------------------------------------- committed sample


def test_committed_sample_is_what_the_generator_makes(tmp_path: Path) -> None:
    gen.generate(2000, 7, tmp_path, contacts=DEMO_CONTACTS)
    for name in ("calls.csv", "calls.parquet"):
        assert (SAMPLE_DIR / name).read_bytes() == (tmp_path / name).read_bytes(), (
            f"sample_data/{name} is stale: python sample_data/generate.py --rows 2000 "
            f"--seed 7 --out sample_data --contacts {DEMO_CONTACTS}"
        )


# (row, line, external_call_id, column, value) as in sample_data/README.md
DOCUMENTED_BAD_ROWS = [
    (101, 108, "call-0000101", "hs_call_status", "DONE"),
    (202, 209, "call-0000202", "hs_timestamp", "tomorrow"),
    (303, 313, "", "external_call_id", ""),
    (404, 414, "call-0000404", "hs_call_disposition", "5a7c1d3e-9b2f-4c8a-a1e6-3f0d2b9c7e41"),
    (505, 516, "call-0000505", "hs_call_duration", "12m30s"),
    (700, 712, "call-0000700", "external_call_id", "call-0000700"),
    (1500, 1525, "call-0000700", "external_call_id", "call-0000700"),
]
DOCUMENTED_EDGE_ROWS = {  # row: (line, column, value)
    2: (3, "hs_call_title", "Pricing call, renewal + upsell"),
    3: (4, "hs_call_body", "Discussed renewal.\nNext step: send the quote."),
    4: (6, "hs_call_body", "Windows notes line one\r\nline two\r\nline three"),
    5: (9, "hs_call_body", 'Customer said "call me back Tuesday", then hung up'),
    6: (10, "hs_call_title", "Café São Paulo — Müller & Søn"),
    7: (11, "hs_call_title", "电话会议：续约讨论"),
    8: (12, "hs_call_title", "📞 Follow-up ✅"),
    9: (13, "hs_call_title", "0012"),
    10: (14, "hs_call_title", "  padded title  "),
    11: (15, "hs_call_title", "N/A"),
    12: (16, "hs_call_title", "NaN"),
    13: (
        17,
        "hs_call_body",
        'Multi-line, with "quotes", commas,\nand a second line\n\nafter a blank one',
    ),
    14: (21, "hs_call_title", 'Ticket #4411; ref="A,B"'),
}


def test_sample_csv_has_the_documented_rows_where_documented() -> None:
    table, rows, lines = read_table(SAMPLE_DIR / "calls.csv")
    assert lines is not None
    assert table.num_rows == 2000 and rows == list(range(1, 2001))
    assert table.column_names == [*gen.COLUMNS, gen.CONTACT_COLUMN]
    records = table.to_pylist()
    # Contacts the demo's sandbox seeds (1..DEMO_CONTACTS), and one e-mail no contact has.
    emails = [e for r in records if r[gen.CONTACT_COLUMN] for e in r[gen.CONTACT_COLUMN].split(";")]
    unknown = [e for e in emails if not e.startswith("contact-")]
    assert unknown == [gen.UNKNOWN_CONTACT]
    assert records[gen.UNKNOWN_CONTACT_ROW - 1][gen.CONTACT_COLUMN] == gen.UNKNOWN_CONTACT
    assert {int(e[8:13]) for e in emails if e not in unknown} <= set(range(1, DEMO_CONTACTS + 1))
    for row, line, call_id, column, value in DOCUMENTED_BAD_ROWS:
        assert lines[row - 1] == line
        assert records[row - 1]["external_call_id"] == call_id
        assert records[row - 1][column] == value
    for row, (line, column, value) in DOCUMENTED_EDGE_ROWS.items():
        assert lines[row - 1] == line
        assert records[row - 1][column] == value
    assert records[1499]["hs_call_title"].startswith("Updated: ")
    assert records[1499] != records[699]

    # Everywhere else the ids are unique and well formed, the values valid.
    bad_rows = {r for r, *_ in DOCUMENTED_BAD_ROWS}
    ids = [r["external_call_id"] for r in records]
    assert len(set(ids)) == 1999  # one empty, one repeated
    for number, record in enumerate(records, start=1):
        if number in bad_rows:
            continue
        assert record["hs_call_status"] in gen.STATUSES
        assert record["hs_call_disposition"] in ("", *gen.DISPOSITIONS.values())
        assert record["hs_call_duration"] == "" or record["hs_call_duration"].isdigit()
        assert record["hs_call_direction"] in ("INBOUND", "OUTBOUND")
        url = record["hs_call_recording_url"]
        assert url == "" or (url.startswith("https://") and url.endswith((".mp3", ".wav")))

    # The line numbers agree with Python's csv module.
    reader = csv.reader(io.StringIO((SAMPLE_DIR / "calls.csv").read_text(), newline=""))
    next(reader)
    starts = []
    for _ in reader:
        starts.append(reader.line_num)
    # line_num is the line a record ends on; the next record starts one line later.
    assert lines[1:] == [end + 1 for end in starts[:-1]]


def parse_timestamp(text: str) -> int:
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_sample_parquet_holds_the_same_rows_typed() -> None:
    csv_table, _, _ = read_table(SAMPLE_DIR / "calls.csv")
    parquet, rows, lines = read_table(SAMPLE_DIR / "calls.parquet")
    assert lines is None and rows == list(range(1, 2001))
    types = dict(zip(parquet.column_names, parquet.schema.types, strict=True))
    assert types["hs_timestamp"] == pa.timestamp("ms", tz="UTC")
    assert types["hs_call_duration"] == pa.int64()
    assert types["hubspot_owner_id"] == pa.int64()
    assert types["hs_call_title"] == pa.string()

    for name in parquet.column_names:
        typed = parquet.column(name).to_pylist()
        text = csv_table.column(name).to_pylist()
        for row, (t, c) in enumerate(zip(typed, text, strict=True), start=1):
            if name == "hs_timestamp":
                if row == 202:  # "tomorrow": null in Parquet (documented)
                    assert t is None
                else:
                    assert int(t.timestamp() * 1000) == parse_timestamp(c), row
            elif name == "hs_call_duration" and row == 505:  # "12m30s": null (documented)
                assert t is None
            else:
                assert ("" if t is None else str(t)) == c, (name, row)
