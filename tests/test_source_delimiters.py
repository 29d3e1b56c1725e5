"""Delimiters (issue 11): `,` `;` tab `|` detected from the header and the first records,
quotes respected; `delimiter=` and format `tsv` override; the source says what it used."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bulkload.errors import SourceError
from bulkload.source import open_source, sniff_delimiter


def write(tmp_path: Path, data: str | bytes, name: str = "calls.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read(path: Path, **kwargs: str) -> tuple[list[str], dict[str, list[object]], list[int], list[int]]:
    source = open_source(path, **kwargs)
    values: dict[str, list[object]] = {}
    rows: list[int] = []
    lines: list[int] = []
    for chunk in source.chunks(rows_per_chunk=3):
        for name, column in chunk.table.to_pydict().items():
            values.setdefault(name, []).extend(column)
        rows += chunk.row_numbers.to_pylist()
        lines += chunk.line_numbers.to_pylist() if chunk.line_numbers is not None else []
    return source.columns, values, rows, lines


# --------------------------------------------------------------------------- sniff_delimiter


@pytest.mark.parametrize(
    ("sample", "want"),
    [
        ("id;name;amount\n1;Doe, John;3,5\n2;Roe;4,0\n", ";"),
        ('id;name\n1;"Doe, John"\n2;"a,b,c"\n', ";"),
        ('id,name\n1,"a;b;c"\n2,"x;y"\n', ","),  # a quoted `;` does not count
        ('"a;b","c;d"\n"1;2","3;4"\n', ","),
        ("id\tname\n1\tx, y\n2\tz\n", "\t"),
        ("id|name|note\n1|x|a,b\n2|y|c\n", "|"),
        ("id\n1\n2\n", None),  # one column: no delimiter
        ("id\nDoe, John\nRoe, Jane\n", None),  # a header of one column decides
        ("a,b;c\n1,2;3\n", ","),  # a tie goes to `,`
        ("id;a\n1;x\n2;y\n3\n4;z\n", ";"),  # a malformed row does not hide it
        ("\ufeffid;a\n1;x\n", ";"),
        ("id;a\r1;x\r2;y\r", ";"),  # bare CR
        ("id;a\r\n1;\"x\r\ny\"\r\n", ";"),
    ],
)
def test_sniff_delimiter(sample: str, want: str | None) -> None:
    assert sniff_delimiter(sample, complete=True) == want
    assert sniff_delimiter(sample.encode("utf-8"), complete=True) == want


def test_sniff_prefers_what_it_is_told_on_a_tie_and_leaves_out_a_cut_last_record() -> None:
    assert sniff_delimiter("a,b\tc\n1,2\t3\n", prefer="\t") == "\t"
    assert sniff_delimiter("a,b\tc\n1,2\t3\n") == ","
    # not complete: the last record may be cut short, so it does not count
    assert sniff_delimiter("id;a;b\n1;2;3\n4;5") == ";"
    assert sniff_delimiter('id;a\n1;"open') == ";"
    assert sniff_delimiter("") is None


# --------------------------------------------------------------------------- open_source


def test_a_semicolon_csv_loads_with_its_columns(tmp_path: Path) -> None:
    path = write(tmp_path, 'id;name;amount\n1;"Doe, John";3,5\n2;"a;b";4,0\n')
    source = open_source(path)
    assert (source.delimiter, source.delimiter_origin) == (";", "detected")
    assert source.delimiter_note == "delimiter ';' (detected)"
    columns, values, rows, lines = read(path)
    assert columns == ["id", "name", "amount"]
    assert values == {"id": ["1", "2"], "name": ["Doe, John", "a;b"], "amount": ["3,5", "4,0"]}
    assert (rows, lines) == ([1, 2], [2, 3])


def test_a_tab_separated_csv_and_a_pipe_file(tmp_path: Path) -> None:
    path = write(tmp_path, "id\tnote\n1\tx, y\n2\tz\n")
    source = open_source(path)
    assert (source.delimiter, source.delimiter_origin, source.delimiter_note) == ("\t", "detected", "delimiter tab (detected)")
    assert read(path)[1] == {"id": ["1", "2"], "note": ["x, y", "z"]}

    path = write(tmp_path, "id|note\n1|x, y\n2|z\n", "pipe.txt")
    assert open_source(path).delimiter == "|"
    assert read(path)[1] == {"id": ["1", "2"], "note": ["x, y", "z"]}


def test_one_column_stays_comma_and_tsv_defaults_to_tab(tmp_path: Path) -> None:
    source = open_source(write(tmp_path, "id\n1\n2\n"))
    assert (source.delimiter, source.delimiter_origin) == (",", "default")
    source = open_source(write(tmp_path, "id\n1\n2\n", "calls.tsv"))
    assert (source.delimiter, source.delimiter_origin) == ("\t", "default")
    source = open_source(write(tmp_path, "id\tx\n1\t2\n", "calls.tsv"))
    assert (source.delimiter, source.delimiter_origin) == ("\t", "detected")


def test_quoted_delimiters_and_line_breaks_do_not_count(tmp_path: Path) -> None:
    text = 'id,note\n1,"a;b;c;d"\n2,"x;\ny;z"\n3,"p;q"\n'
    path = write(tmp_path, text)
    assert open_source(path).delimiter == ","
    _, values, rows, lines = read(path)
    assert values["note"] == ["a;b;c;d", "x;\ny;z", "p;q"]
    assert (rows, lines) == ([1, 2, 3], [2, 3, 5])


def test_a_given_delimiter_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "id,a;b\n1,x;y\n")
    assert open_source(path).delimiter == ","
    source = open_source(path, delimiter=";")
    assert (source.delimiter, source.delimiter_origin) == (";", "given")
    assert source.columns == ["id,a", "b"]
    assert open_source(path, delimiter="\\t").delimiter == "\t"
    assert open_source(path, delimiter="tab").delimiter == "\t"


def test_format_tsv(tmp_path: Path) -> None:
    path = write(tmp_path, "id\tnote\n1\ta,b,c\n", "export.dat")
    source = open_source(path, "tsv")
    assert (source.format, source.delimiter, source.delimiter_origin) == ("csv", "\t", "given")
    assert read(path, format="tsv")[1] == {"id": ["1"], "note": ["a,b,c"]}
    assert open_source(path, "tsv", delimiter="\t").delimiter == "\t"
    with pytest.raises(SourceError, match="--format tsv reads tabs"):
        open_source(path, "tsv", delimiter=";")


@pytest.mark.parametrize("bad", ["", ";;", '"', "\n", "\r", "é"])
def test_a_bad_delimiter_is_refused(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, "id,a\n1,2\n")
    with pytest.raises(SourceError, match="delimiter") as info:
        open_source(path, delimiter=bad)
    assert "\n" not in str(info.value)


def test_a_delimiter_for_parquet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "calls.parquet"
    pq.write_table(pa.table({"id": ["1"]}), path)
    assert open_source(path).delimiter is None and open_source(path).delimiter_note is None
    with pytest.raises(SourceError, match="applies to CSV files"):
        open_source(path, delimiter=";")


# --------------------------------------------------------------------------- line endings


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r"])
def test_each_delimiter_with_each_line_ending(tmp_path: Path, delimiter: str, line_end: str) -> None:
    # Cells hold the other delimiters and, quoted, this one and a line break like the
    # file's own (a bare-CR file counts lines by CR).
    inner = "\r" if line_end == "\r" else "\n"
    records = [
        ["id", "note", "other"],
        ["1", f"x{delimiter}y", ",;|"],
        ["2", f"two{inner}lines", ""],
        ["3", "plain", f'q "{delimiter}" z'],
        ["4", "", "last"],
    ]
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=line_end).writerows(records)
    path = write(tmp_path, out.getvalue())
    source = open_source(path)
    assert (source.delimiter, source.delimiter_origin) == (delimiter, "detected")
    columns, values, rows, lines = read(path)
    assert columns == records[0]
    assert [list(r) for r in zip(*values.values(), strict=True)] == records[1:]
    assert (rows, lines) == ([1, 2, 3, 4], [2, 3, 5, 6])
