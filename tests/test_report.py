"""The failed-rows report: rows, paging, filters, files, the CSV template's round trip, cards."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from bulkload.corrections import open_corrected_file, read_corrected_file
from bulkload.demo import demo_report
from bulkload.errors import EXIT_INPUT, InputError, JobNotFound
from bulkload.journal import BatchResult, Journal, journal_path
from bulkload.models import BatchOutcome, BatchPlan, FailedRow, Landed, Superseded
from bulkload.reports import (
    ERROR_COLUMNS,
    SEVERITY_COLUMN,
    CategoryCard,
    Format,
    ReportWritten,
    decode_cursor,
    describe_written,
    neutralise_cell,
    render_summary,
    report_rows,
    restore_cell,
    summary,
    summary_dict,
    write_report,
)
from bulkload.taxonomy import HOW_TO_FIX, Category, ErrorType

COLUMNS = ["Call ID", "hs_timestamp", "hs_call_status", "hs_call_body", "phone"]
JOB_ID = "calls-test"

# (row, errorType, property, invalid value); rows 1..40 with gaps for successes and superseded rows.
FAILURES: list[tuple[int, ErrorType, str | None, str | None]] = [
    (2, ErrorType.INVALID_ENUM_PROPERTY, "hs_call_status", "DONE"),
    (3, ErrorType.INVALID_ENUM_PROPERTY, "hs_call_status", "OK"),
    (5, ErrorType.INVALID_TIMESTAMP, "hs_timestamp", "yesterday"),
    (6, ErrorType.MISSING_ID_VALUE, "external_call_id", ""),
    (7, ErrorType.INVALID_ENUM_PROPERTY, "hs_call_status", "DONE"),
    (8, ErrorType.VALUE_TOO_LONG, "hs_call_body", "x" * 50),
    (9, ErrorType.PROPERTY_DOESNT_EXIST, "phone", "+33 6 12 34 56 78"),
    (11, ErrorType.INVALID_ENUM_PROPERTY, "hs_call_status", "DONE"),
    (12, ErrorType.CONFLICTING_UNIQUE_VALUE, "external_call_id", "c-12"),
    (13, ErrorType.INVALID_TIMESTAMP, "hs_timestamp", "32/13/2024"),
    (14, ErrorType.UNKNOWN_ERROR, None, None),
    (15, ErrorType.INVALID_ENUM_PROPERTY, "hs_call_status", "DONE"),
    (17, ErrorType.INVALID_PROPERTY_VALUE, "hs_call_body", "?"),
    (18, ErrorType.INVALID_ENUM_PROPERTY, "hs_call_status", "DONE"),
    (19, ErrorType.INVALID_ASSOCIATION, None, None),
    (21, ErrorType.INVALID_ENUM_PROPERTY, "hs_call_status", "DONE"),
    (22, ErrorType.INVALID_TIMESTAMP, "hs_timestamp", "never"),
    (23, ErrorType.INVALID_ENUM_PROPERTY, "hs_call_status", "MAYBE"),
    (25, ErrorType.MISSING_REQUIRED_PROPERTY, "hs_timestamp", None),
    (26, ErrorType.INVALID_ENUM_PROPERTY, "hs_call_status", "DONE"),
    (27, ErrorType.INVALID_NUMBER, "hs_call_body", "12 min"),
    (29, ErrorType.INVALID_ENUM_PROPERTY, "hs_call_status", "DONE"),
    (31, ErrorType.INVALID_ENUM_PROPERTY, "hs_call_status", "DONE"),
    (33, ErrorType.TYPE_MISMATCH, "phone", "abc"),
    (35, ErrorType.INVALID_ENUM_PROPERTY, "hs_call_status", "DONE"),
]
MALFORMED_ROW = 37  # a row the CSV reader could not split
RESOLVED = (11, 21)  # failed, then a `retry` upserted them
SUPERSEDED = {1: 30, 4: 30, 16: 39}  # row -> the later row with the same id


def row_data(row: int) -> dict[str, Any]:
    return {
        "Call ID": "" if row == 6 else f"c-{row:03d}",
        "hs_timestamp": "2024-05-01T10:00:00Z",
        "hs_call_status": "COMPLETED",
        "hs_call_body": f"note for row {row}",
        "phone": f"+33 6 00 00 00 {row:02d}",
    }


def error(row: int, error_type: str, prop: str | None = None, invalid: str | None = None,
          *, id_value: str | None = None, message: str | None = None,
          data: dict[str, Any] | None = None) -> FailedRow:
    return FailedRow(
        row_number=row, line_number=row + 1, id_value=id_value if id_value is not None else f"c-{row:03d}",
        batch_no=1, error_type=error_type, message=message or f"{error_type} on {prop}: {invalid!r}",
        property_name=prop, invalid_value=invalid, http_status=400, hubspot_category="VALIDATION_ERROR",
        hubspot_code=None, correlation_id=f"corr-{row}", origin="hubspot", row_data=data or row_data(row),
    )


def resolve(j: Journal, rows: list[int]) -> None:
    """A retry turn whose sends landed `rows` (the production transition)."""
    run = j.start_run("retry", {}, {}, takes_over=False)
    landed = [Landed(str(r), "", False) for r in rows]
    j.record_replay(run_no=run, outcomes=[BatchResult(BatchPlan(0, min(rows), replay=True),
                                                      BatchOutcome(landed, []), [])])


def new_journal(job_dir: Path, *, job_id: str = JOB_ID, columns: list[str] | None = None) -> Journal:
    journal = Journal.create(journal_path(job_dir, job_id))
    journal.create_job(
        job_id=job_id, object_type="calls", id_property="external_call_id",
        config={"columns": {"Call ID": "external_call_id"}, "batch_size": 100},
        source_path="/data/calls.csv", source_format="csv", fingerprint={"sha256": "0" * 64},
        columns=COLUMNS if columns is None else columns,
    )
    return journal


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    """~25 current errors over 8 categories, 2 resolved, a malformed row, 3 superseded rows."""
    j = new_journal(tmp_path)
    # The scan decides which ids repeat; claiming a batch records its superseded rows.
    j.add_superseding({f"c-{later:03d}": later for later in SUPERSEDED.values()})
    j.complete_scan(40)
    sup = [Superseded(r, r + 1, f"c-{later:03d}", later, row_data(r)) for r, later in SUPERSEDED.items()]
    j.record_turn(run_no=0, claims=[BatchPlan(batch_no=1, first_row=1, last_row=40, superseded=sup)])
    j.upsert_errors([error(r, t, p, v, id_value="" if r == 6 else None) for r, t, p, v in FAILURES])
    j.upsert_errors([error(MALFORMED_ROW, ErrorType.MALFORMED_ROW, None, 'c-037,"unclosed', id_value="",
                           data={"_raw": 'c-037,"unclosed,quote'})])
    resolve(j, list(RESOLVED))
    yield j
    j.close()


def current_rows() -> list[int]:
    rows = {r for r, *_ in FAILURES} | {MALFORMED_ROW} | set(SUPERSEDED)
    return sorted(rows - set(RESOLVED))


def numbers(rows: list[dict[str, Any]]) -> list[int]:
    return [r["sourceData"]["rowNumber"] for r in rows]


# ---- rows, filters, paging --------------------------------------------------------------------


def test_rows_have_the_contract_shape(journal: Journal) -> None:
    rows = report_rows(journal).rows
    assert numbers(rows) == current_rows()
    first = next(r for r in rows if r["sourceData"]["rowNumber"] == 2)
    for key in ("id", "createdAt", "errorType", "category", "errorMessage", "propertyName", "invalidValue",
                "idPropertyValue", "objectType", "resolved", "attempts", "severity", "sourceData"):
        assert key in first
    assert first["errorType"] == "INVALID_ENUM_PROPERTY" and first["category"] == "PICKLISTS"
    assert first["invalidValue"] == "DONE" and first["idPropertyValue"] == "c-002"
    assert first["objectType"] == "calls" and first["resolved"] is False and first["attempts"] == 1
    assert first["severity"] == "error"
    assert first["sourceData"] == {"file": "calls.csv", "rowNumber": 2, "lineNumber": 3, "rowData": row_data(2)}
    # The renamed id column is named as the source has it.
    assert next(r for r in rows if r["sourceData"]["rowNumber"] == 6)["sourceColumn"] == "Call ID"
    assert first["sourceColumn"] == "hs_call_status"
    # ids are stable per row across calls.
    assert [r["id"] for r in report_rows(journal).rows] == [r["id"] for r in rows]
    assert len({r["id"] for r in rows}) == len(rows)


def test_superseded_rows_are_warnings_not_failures(journal: Journal) -> None:
    rows = report_rows(journal, error_types=["DUPLICATE_ID_IN_SOURCE"]).rows
    assert numbers(rows) == sorted(SUPERSEDED)
    for r in rows:
        assert r["severity"] == "warning" and r["category"] == "DUPLICATES" and r["attempts"] == 0
        assert r["supersededBy"] == SUPERSEDED[r["sourceData"]["rowNumber"]]
    assert rows[0]["sourceData"]["rowData"] == row_data(1)
    assert rows[-1]["sourceData"]["rowData"] == row_data(16)
    assert numbers(report_rows(journal, include_warnings=False).rows) == sorted(
        set(current_rows()) - set(SUPERSEDED)
    )


def test_filters_by_error_type_and_category(journal: Journal) -> None:
    enum = report_rows(journal, error_types=["invalid_enum_property"]).rows
    expected = sorted(r for r, t, *_ in FAILURES if t == ErrorType.INVALID_ENUM_PROPERTY and r not in RESOLVED)
    assert numbers(enum) == expected
    both = report_rows(journal, error_types=["INVALID_TIMESTAMP,MALFORMED_ROW"]).rows
    assert {r["errorType"] for r in both} == {"INVALID_TIMESTAMP", "MALFORMED_ROW"}
    dupes = report_rows(journal, categories=["DUPLICATES"]).rows
    assert numbers(dupes) == sorted([12, *SUPERSEDED])
    with pytest.raises(InputError, match="unknown error type"):
        report_rows(journal, error_types=["INVALID_ENUM"])
    with pytest.raises(InputError, match="unknown category"):
        report_rows(journal, categories=["NOPE"])


def test_resolved_rows_hidden_unless_asked(journal: Journal) -> None:
    assert not set(RESOLVED) & set(numbers(report_rows(journal).rows))
    rows = report_rows(journal, include_resolved=True).rows
    assert numbers(rows) == sorted([*current_rows(), *RESOLVED])
    resolved = [r for r in rows if r["resolved"]]
    assert numbers(resolved) == list(RESOLVED)
    assert all(r["resolvedAt"] for r in resolved)


def test_most_recent_error_per_row_and_per_id(journal: Journal) -> None:
    # A later attempt at row 2 replaces its error: only the new one is reported.
    journal.upsert_errors([error(2, ErrorType.INVALID_PROPERTY_VALUE, "hs_call_body", "new")])
    row2 = [r for r in report_rows(journal).rows if r["sourceData"]["rowNumber"] == 2]
    assert [(r["errorType"], r["invalidValue"], r["attempts"]) for r in row2] == [
        ("INVALID_PROPERTY_VALUE", "new", 2)
    ]
    # Two rows about the same record: only its most recent error is current (sync-errors rule).
    journal.upsert_errors([error(38, ErrorType.INVALID_EMAIL_ADDRESS, "email", "a@", id_value="c-shared")],
                          ts="2020-01-01T00:00:00.000Z")
    journal.upsert_errors([error(39, ErrorType.INVALID_NUMBER, "n", "x", id_value="c-shared")],
                          ts="2020-01-02T00:00:00.000Z")
    shared = [r for r in report_rows(journal).rows if r["idPropertyValue"] == "c-shared"]
    assert [r["sourceData"]["rowNumber"] for r in shared] == [39]
    # ... and a success of that record resolves it, as HubSpot's sync errors do.
    resolve(journal, [39])
    assert not [r for r in report_rows(journal).rows if r["idPropertyValue"] == "c-shared"]
    # Rows without an id are each their own record, never merged.
    journal.upsert_errors([error(40, ErrorType.MISSING_ID_VALUE, "external_call_id", "", id_value="")])
    assert {6, 40} <= set(numbers(report_rows(journal, error_types=["MISSING_ID_VALUE"]).rows))


@pytest.mark.parametrize("size", [1, 3, 7])
@pytest.mark.parametrize("include_resolved", [False, True])
def test_paging_covers_every_row_once(journal: Journal, size: int, include_resolved: bool) -> None:
    everything = report_rows(journal, include_resolved=include_resolved).rows
    assert len(everything) >= 25
    seen: list[dict[str, Any]] = []
    after: str | None = None
    pages = 0
    while True:
        page = report_rows(journal, include_resolved=include_resolved, limit=size, after=after)
        assert 0 < len(page.rows) <= size
        seen += page.rows
        pages += 1
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert [r["id"] for r in seen] == [r["id"] for r in everything]
    assert pages == -(-len(everything) // size)


def test_paging_with_filters_and_same_row_kinds(journal: Journal) -> None:
    # A row number held by both an error and a warning (never by construction, but the
    # cursor must not lose either): rows sort error first, and a page may end between them.
    journal.db.execute("INSERT INTO superseded(row_number, id_value, superseded_by) VALUES (2, 'c-002', 40)")
    everything = report_rows(journal, categories=["PICKLISTS", "DUPLICATES"]).rows
    assert numbers(everything).count(2) == 2
    seen, after = [], None
    while True:
        page = report_rows(journal, categories=["PICKLISTS", "DUPLICATES"], limit=1, after=after)
        seen += page.rows
        if not (after := page.next_cursor):
            break
    assert [r["id"] for r in seen] == [r["id"] for r in everything]


@pytest.mark.parametrize("cursor", ["nonsense", "", "djE6eA", "!!!!"])
def test_bad_cursor_is_an_input_error(journal: Journal, cursor: str) -> None:
    with pytest.raises(InputError, match="invalid cursor") as e:
        report_rows(journal, limit=2, after=cursor or " ")
    assert e.value.exit_code == EXIT_INPUT


def test_cursor_is_opaque_but_stable(journal: Journal) -> None:
    page = report_rows(journal, limit=3)
    assert page.next_cursor == report_rows(journal, limit=3).next_cursor
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor) == (numbers(page.rows)[-1], 0)


# ---- files -----------------------------------------------------------------------------------


def read_back(written: ReportWritten) -> list[dict[str, Any]]:
    """Any report file -> (rowNumber, errorType, severity, rowData) dicts, like report_rows."""
    path = written.path
    if written.format == "jsonl":
        return [dict(orjson.loads(line)) for line in path.read_bytes().splitlines()]
    if written.format == "parquet":
        table: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        for r in table:
            text = r["sourceData"]["rowData"]
            r["sourceData"]["rowData"] = None if text is None else json.loads(text)
        return table
    out = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        for cells in csv.DictReader(f):
            cells = {restore_cell(k): restore_cell(v) for k, v in cells.items()}
            if cells["bulkload_raw"]:
                data: dict[str, Any] | None = {"_raw": cells["bulkload_raw"]}
            elif all(cells[c] == "" for c in COLUMNS):
                data = None
            else:
                data = {c: cells[c] for c in COLUMNS}
            out.append({"errorType": cells["bulkload_errorType"], "severity": cells["bulkload_severity"],
                        "sourceData": {"rowNumber": int(cells["bulkload_rowNumber"]), "rowData": data}})
    return out


def essence(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["sourceData"]["rowNumber"], r["errorType"], r["severity"], r["sourceData"]["rowData"])
            for r in rows]


FORMATS: list[Format] = ["csv", "jsonl", "parquet"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_round_trips_the_same_rows(journal: Journal, fmt: Format) -> None:
    expected = report_rows(journal, include_resolved=True).rows
    written = write_report(journal, fmt, include_resolved=True)
    assert written.path == journal.path.parent / f"{JOB_ID}.failed-rows.{fmt}"
    assert written.rows == len(expected) and written.warnings == len(SUPERSEDED)
    assert written.errors == written.rows - written.warnings and written.next_cursor is None
    assert essence(read_back(written)) == essence(expected)
    if fmt != "csv":  # csv keeps the template's columns; the others keep every field
        assert read_back(written) == expected


def test_csv_is_a_corrected_file_template(journal: Journal, tmp_path: Path) -> None:
    written = write_report(journal, "csv", tmp_path / "fix.csv")
    raw = written.path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets read UTF-8
    header = next(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert header == [*COLUMNS, *ERROR_COLUMNS]
    assert all(c.startswith("bulkload_") for c in ERROR_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    malformed = next(r for r in rows if r["bulkload_rowNumber"] == str(MALFORMED_ROW))
    assert malformed["bulkload_raw"] == 'c-037,"unclosed,quote'
    assert all(malformed[c] == "" for c in COLUMNS)
    enum = next(r for r in rows if r["bulkload_rowNumber"] == "2")
    assert enum["bulkload_howToFix"] == HOW_TO_FIX[ErrorType.INVALID_ENUM_PROPERTY]
    assert enum["bulkload_resolved"] == "false" and enum["bulkload_lineNumber"] == "3"
    # Read back for `retry --from`: error columns dropped, warnings skipped, values as the source had them.
    columns, back = read_corrected_file(written.path)
    assert columns == COLUMNS
    back_rows = list(back)
    n_warnings = len(SUPERSEDED)
    assert len(back_rows) == len(rows) - n_warnings
    assert back_rows[0] == row_data(2)
    _, with_warnings = read_corrected_file(written.path, include_warnings=True)
    assert len(list(with_warnings)) == len(rows)
    _, corrected = open_corrected_file(written.path)
    got = list(corrected)
    assert [c.row_number for c in got] == [r for r in current_rows() if r not in SUPERSEDED]
    for c in got:
        expected = dict.fromkeys(COLUMNS, "") if c.row_number == MALFORMED_ROW else row_data(c.row_number or 0)
        assert c.values == expected


FORMULAS = ["=1+1", "+33 6 12 34 56 78", "-5", "@SUM(A1:A9)", "\tx", "\rx", "'quoted", "''twice",
            "=HYPERLINK(\"http://evil\")", "plain", "", "a=b", "line\nbreak", "'"]


def test_formula_cells_are_neutralised_and_restored_exactly(tmp_path: Path) -> None:
    journal = new_journal(tmp_path, columns=[*COLUMNS, "=header"])
    data = [{**row_data(i + 1), "hs_call_body": v, "=header": v} for i, v in enumerate(FORMULAS)]
    journal.upsert_errors([error(i + 1, ErrorType.INVALID_PROPERTY_VALUE, "hs_call_body", v, data=d)
                           for i, (v, d) in enumerate(zip(FORMULAS, data, strict=True))])
    written = write_report(journal, "csv")
    # bytes, not read_text: universal newlines would turn the "\rx" cell into "\nx"
    cells = list(csv.reader(io.StringIO(written.path.read_bytes().decode("utf-8-sig"), newline="")))
    body_at = cells[0].index("hs_call_body")
    assert cells[0][-len(ERROR_COLUMNS) - 1] == "'=header"
    for value, row in zip(FORMULAS, cells[1:], strict=True):
        cell = row[body_at]
        dangerous = value[:1] in ("=", "+", "-", "@", "\t", "\r", "'")
        assert cell == ("'" + value if dangerous else value)
        # the invalid value echoed in the error columns is neutralised too
        assert row[cells[0].index("bulkload_invalidValue")] == cell
    columns, back = read_corrected_file(written.path)
    assert columns == [*COLUMNS, "=header"]
    assert list(back) == data
    journal.close()


def test_neutralise_and_restore_are_inverse() -> None:
    for s in [*FORMULAS, "'=1", "'''", " =1", "x'", "\n", "\r\n=1"]:
        assert restore_cell(neutralise_cell(s)) == s
        assert neutralise_cell(s)[:1] not in ("=", "+", "-", "@", "\t", "\r")


def test_corrected_file_after_a_spreadsheet(tmp_path: Path, journal: Journal) -> None:
    """A person fixed values, a European spreadsheet saved it with ';', blank lines, no BOM."""
    written = write_report(journal, "csv", tmp_path / "fix.csv")
    cells = list(csv.reader(io.StringIO(written.path.read_bytes().decode("utf-8-sig"), newline="")))
    header, body = cells[0], cells[1:]
    status_at = header.index("hs_call_status")
    enum_rows = set()
    for r in body:
        if r[header.index("bulkload_errorType")] == "INVALID_ENUM_PROPERTY":
            r[status_at] = "CONNECTED"
            enum_rows.add(int(r[header.index("bulkload_rowNumber")]))
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\r\n").writerows([*cells, [], ["", "", ""]])
    saved = tmp_path / "saved.csv"
    saved.write_text(out.getvalue(), encoding="utf-8", newline="")
    columns, back = open_corrected_file(saved)
    assert columns == COLUMNS
    fixed = list(back)
    assert len(fixed) == len(body) - len(SUPERSEDED)
    assert {c.row_number for c in fixed if c.values["hs_call_status"] == "CONNECTED"} == enum_rows
    for c in fixed:
        if c.row_number not in enum_rows and c.row_number != MALFORMED_ROW:
            assert c.values == row_data(c.row_number or 0)  # "+33 …" came back without its "'"


def test_corrected_file_refusals(tmp_path: Path) -> None:
    only_errors = tmp_path / "e.csv"
    only_errors.write_text(",".join(ERROR_COLUMNS) + "\r\n", encoding="utf-8")
    with pytest.raises(InputError, match="no source columns"):
        read_corrected_file(only_errors)
    latin = tmp_path / "l.csv"
    latin.write_bytes("Call ID,note\r\nc-1,caf\xe9\r\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        list(read_corrected_file(latin)[1])
    with pytest.raises(InputError):
        read_corrected_file(tmp_path / "missing.csv")
    # A source column that really starts with the prefix is kept when named.
    odd = tmp_path / "o.csv"
    odd.write_text("id,bulkload_batch,bulkload_errorType\r\n1,b,X\r\n", encoding="utf-8")
    assert read_corrected_file(odd)[0] == ["id"]
    cols, rows = read_corrected_file(odd, source_columns=["id", "bulkload_batch"])
    assert cols == ["id", "bulkload_batch"] and list(rows) == [{"id": "1", "bulkload_batch": "b"}]


def test_parquet_report_and_plain_parquet_as_corrected_files(journal: Journal, tmp_path: Path) -> None:
    written = write_report(journal, "parquet")
    columns, back = read_corrected_file(written.path)
    assert columns == COLUMNS
    rows = list(back)
    assert rows[0] == row_data(2)
    assert len(rows) == len(current_rows()) - len(SUPERSEDED)
    import pyarrow as pa

    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"Call ID": ["c-1"], "n": [3], "bulkload_errorType": ["X"],
                             SEVERITY_COLUMN: ["error"], "bulkload_rowNumber": [7]}), plain)
    columns, prow = open_corrected_file(plain)
    assert columns == ["Call ID", "n"]
    got = list(prow)
    assert [(r.values, r.row_number) for r in got] == [({"Call ID": "c-1", "n": 3}, 7)]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("fmt", FORMATS)
def test_report_files_are_private(journal: Journal, tmp_path: Path, fmt: Format) -> None:
    target = tmp_path / f"r.{fmt}"
    target.write_text("old")
    os.chmod(target, 0o644)
    old_umask = os.umask(0)
    try:
        written = write_report(journal, fmt, target)
    finally:
        os.umask(old_umask)
    assert written.path == target and mode(target) == 0o600
    assert target.read_bytes() != b"old"
    assert mode(write_report(journal, fmt).path) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_output_directory_and_missing_directory(journal: Journal, tmp_path: Path) -> None:
    assert write_report(journal, "jsonl", tmp_path).path == tmp_path / f"{JOB_ID}.failed-rows.jsonl"
    with pytest.raises(InputError, match="no directory"):
        write_report(journal, "csv", tmp_path / "nope" / "r.csv")
    with pytest.raises(InputError, match="unknown report format"):
        write_report(journal, "xlsx")  # type: ignore[arg-type]


def test_write_report_pages_like_report_rows(journal: Journal, tmp_path: Path) -> None:
    seen: list[int] = []
    after = None
    while True:
        w = write_report(journal, "jsonl", tmp_path / "page.jsonl", limit=4, after=after)
        seen += [r["sourceData"]["rowNumber"] for r in read_back(w)]
        if not (after := w.next_cursor):
            break
        assert f"--after {after}" in describe_written(w)
    assert seen == current_rows()


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_report_has_headers(tmp_path: Path, fmt: Format) -> None:
    journal = new_journal(tmp_path)
    written = write_report(journal, fmt)
    assert (written.rows, written.errors, written.warnings) == (0, 0, 0)
    if fmt == "csv":
        header = written.path.read_text(encoding="utf-8-sig").splitlines()
        assert header == [",".join([*COLUMNS, *ERROR_COLUMNS])]
    elif fmt == "parquet":
        table = pq.read_table(written.path)
        assert table.num_rows == 0 and "sourceData" in table.column_names
    else:
        assert written.path.read_bytes() == b""
    assert describe_written(written).startswith("No failed rows: wrote an empty report")
    assert describe_written(written, filtered=True).startswith("No rows match the filters")
    journal.close()


def test_columns_from_row_data_when_the_job_has_none(tmp_path: Path) -> None:
    journal = new_journal(tmp_path, columns=[])
    journal.upsert_errors([error(1, ErrorType.UNKNOWN_ERROR, data={"b": "1", "a": "2"}),
                           error(2, ErrorType.UNKNOWN_ERROR, data={"b": "3", "c": "4"}),
                           error(3, ErrorType.MALFORMED_ROW, data={"_raw": "x,y"})])
    columns, rows = read_corrected_file(write_report(journal, "csv").path)
    assert columns == ["b", "a", "c"]
    assert list(rows) == [{"b": "1", "a": "2", "c": ""}, {"b": "3", "a": "", "c": "4"},
                          {"b": "", "a": "", "c": ""}]
    journal.close()


def test_unknown_job_is_exit_2(tmp_path: Path) -> None:
    with pytest.raises(JobNotFound) as e:
        demo_report("no-such-job", tmp_path)
    assert e.value.exit_code == EXIT_INPUT


# ---- summary cards ---------------------------------------------------------------------------


def test_summary_cards(journal: Journal) -> None:
    cards, superseded = summary(journal)
    assert [c.category for c in cards] == [c.value for c in Category]
    assert superseded == len(SUPERSEDED)
    by = {c.category: c for c in cards}
    current = [(r, t) for r, t, *_ in FAILURES if r not in RESOLVED] + [(MALFORMED_ROW, ErrorType.MALFORMED_ROW)]
    from bulkload.taxonomy import category_of

    for cat in Category:
        rows = [r for r, t in current if category_of(t) == cat]
        assert by[cat.value].errors == len(rows), cat
        assert by[cat.value].affected_rows == len(set(rows)), cat
    picklists = by["PICKLISTS"]
    assert picklists.top[0][:2] == ("INVALID_ENUM_PROPERTY", 10)
    assert picklists.top[0][2] == "INVALID_ENUM_PROPERTY on hs_call_status: 'DONE'"  # the most common
    assert picklists.fixes == {"INVALID_ENUM_PROPERTY": HOW_TO_FIX[ErrorType.INVALID_ENUM_PROPERTY]}
    source = by["SOURCE_DATA"]
    assert source.top[0][:2] == ("INVALID_TIMESTAMP", 3) and len(source.top) == 3
    assert set(source.fixes) == {"INVALID_TIMESTAMP", "MISSING_ID_VALUE", "VALUE_TOO_LONG", "INVALID_NUMBER",
                                 "MALFORMED_ROW"}
    assert by["PERMISSIONS"].errors == 0 and by["PERMISSIONS"].top == []
    # Superseded rows are not failures: the DUPLICATES card counts only CONFLICTING_UNIQUE_VALUE.
    assert by["DUPLICATES"].errors == 1
    assert summary_dict(cards, superseded)["warnings"] == {"DUPLICATE_ID_IN_SOURCE": 3}
    assert summary_dict(cards, superseded)["errors"] == len(current)


def test_render_summary(journal: Journal) -> None:
    text = render_summary(*summary(journal))
    assert "PICKLISTS: 10 errors, 10 rows affected" in text
    assert f"fix: {HOW_TO_FIX[ErrorType.INVALID_ENUM_PROPERTY]}" in text
    assert "… and 2 more error types" in text  # SOURCE_DATA has 5 types, 3 shown
    assert "No errors: PERMISSIONS" in text
    assert "3 superseded rows (DUPLICATE_ID_IN_SOURCE)" in text
    assert render_summary([CategoryCard(c.value, 0, 0, [], {}) for c in Category], 0) == "No failed rows."


def test_render_summary_keeps_control_characters_off_the_terminal() -> None:
    card = CategoryCard("OTHER", 1, 1, [("UNKNOWN_ERROR", 1, "bad \x1b[31mred\x1b[0m\r\nvalue")],
                        {"UNKNOWN_ERROR": "x"})
    assert "\x1b" not in render_summary([card], 0) and "\r" not in render_summary([card], 0)


def test_demo_report(journal: Journal) -> None:
    job_dir = journal.path.parent
    text, _ = demo_report(JOB_ID, job_dir)
    path = job_dir / f"{JOB_ID}.failed-rows.csv"
    assert path.exists() and mode(path) == 0o600
    assert f"Failed-rows report (CSV, a corrected-file template): {path}" in text
    assert f"bulkload retry {JOB_ID} --job-dir {job_dir} --from {path}" in text
    assert "PICKLISTS: 10 errors" in text
