"""Mapping: columns to properties, and only the conversions HubSpot needs."""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa
import pytest

from bulkload.convert import normalize_datetime
from bulkload.errors import MappingError, SourceError
from bulkload.mapping import Schema, map_chunk, resolve_columns
from bulkload.source import SourceChunk
from bulkload.taxonomy import ErrorType

SCHEMA = Schema.from_api_properties(
    [
        {"name": "external_call_id", "type": "string", "hasUniqueValue": True},
        {"name": "hs_timestamp", "type": "datetime"},
        {"name": "hs_call_duration", "type": "number"},
        {"name": "hs_call_title", "type": "string"},
        {"name": "hs_call_has_voicemail", "type": "bool"},
    ]
)


def chunk(data: dict[str, list[object]], types: dict[str, pa.DataType] | None = None) -> SourceChunk:
    types = types or {}
    table = pa.RecordBatch.from_pydict({k: pa.array(v, types.get(k, pa.string())) for k, v in data.items()})
    n = table.num_rows
    return SourceChunk(table=table, row_numbers=pa.array(range(1, n + 1), pa.int64()), line_numbers=None)


def test_csv_text_is_sent_as_written() -> None:
    values = ["0012", "N/A", "null", "NaN", "1e5", "  padded  "]
    c = chunk({"external_call_id": [f"c{i}" for i in range(len(values))], "hs_call_title": values})
    cm = resolve_columns(["external_call_id", "hs_call_title"], "external_call_id", {})
    m = map_chunk(c, cm, SCHEMA)
    assert [p["hs_call_title"] for p in m.properties if p] == values
    # The id travels in `id`, not also in properties.
    assert all("external_call_id" not in (p or {}) for p in m.properties)


def test_empty_cells_are_left_out() -> None:
    c = chunk({"external_call_id": ["a", "b"], "hs_call_title": ["", None]})
    m = map_chunk(c, resolve_columns(["external_call_id", "hs_call_title"], "external_call_id", {}), SCHEMA)
    assert m.properties == [{}, {}]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T10:00:00.123456Z", "2024-05-01T10:00:00.123Z"),
        ("2024-05-01 10:00:00", "2024-05-01T10:00:00.000Z"),
        ("1714557600000", "2024-05-01T10:00:00.000Z"),
        ("1714557600123", "2024-05-01T10:00:00.123Z"),
        ("2024-05-01", "2024-05-01T00:00:00.000Z"),
        ("tomorrow", None),
        ("2024-13-01T00:00:00Z", None),
    ],
)
def test_datetime_normalisation(given: str, expected: str | None) -> None:
    assert normalize_datetime(given) == expected


def test_datetime_column_converted_and_bad_values_fail_locally() -> None:
    c = chunk({"external_call_id": ["a", "b", "c"],
               "hs_timestamp": ["2024-05-01T10:00:00Z", "1714557600000", "tomorrow"]})
    m = map_chunk(c, resolve_columns(["external_call_id", "hs_timestamp"], "external_call_id", {}), SCHEMA)
    assert m.properties[0] == {"hs_timestamp": "2024-05-01T10:00:00Z"}  # canonical: untouched
    assert m.properties[1] == {"hs_timestamp": "2024-05-01T10:00:00.000Z"}
    assert m.properties[2] is None
    assert m.failures[2].error_type is ErrorType.INVALID_TIMESTAMP
    assert m.failures[2].invalid_value == "tomorrow"


def test_typed_parquet_values_become_hubspot_strings() -> None:
    c = chunk(
        {
            "external_call_id": [1, 2],
            "hs_timestamp": [datetime(2024, 5, 1, 10, 0, 0, 123456), None],
            "hs_call_duration": [120000.0, 1.5],
            "hs_call_has_voicemail": [True, False],
            "hs_call_title": [date(2024, 1, 2), None],
        },
        {"external_call_id": pa.int64(), "hs_timestamp": pa.timestamp("us"), "hs_call_duration": pa.float64(),
         "hs_call_has_voicemail": pa.bool_(), "hs_call_title": pa.date32()},
    )
    cm = resolve_columns(list(c.table.schema.names), "external_call_id", {})
    m = map_chunk(c, cm, SCHEMA)
    assert m.ids == ["1", "2"]
    assert m.properties[0] == {"hs_timestamp": "2024-05-01T10:00:00.123Z", "hs_call_duration": "120000",
                               "hs_call_has_voicemail": "true", "hs_call_title": "2024-01-02"}
    assert m.properties[1] == {"hs_call_duration": "1.5", "hs_call_has_voicemail": "false"}


def test_missing_id_and_too_long_values_fail_locally() -> None:
    c = chunk({"external_call_id": ["", "  ", "ok", "long"], "hs_call_title": ["a", "b", "c", "x" * 65_537]})
    m = map_chunk(c, resolve_columns(["external_call_id", "hs_call_title"], "external_call_id", {}), SCHEMA)
    assert m.failures[0].error_type is ErrorType.MISSING_ID_VALUE
    assert m.failures[1].error_type is ErrorType.MISSING_ID_VALUE
    assert m.properties[2] == {"hs_call_title": "c"}
    assert m.failures[3].error_type is ErrorType.VALUE_TOO_LONG


def test_overrides_rename_and_drop_columns() -> None:
    cm = resolve_columns(["Call ID", "title", "junk"], "external_call_id",
                         {"Call ID": "external_call_id", "title": "hs_call_title", "junk": ""})
    assert cm.pairs == (("Call ID", "external_call_id"), ("title", "hs_call_title"))
    assert cm.id_column == "Call ID"


def test_mapping_errors() -> None:
    with pytest.raises(MappingError, match="unknown column"):
        resolve_columns(["a"], "a", {"nope": "x"})
    with pytest.raises(SourceError, match="no id column"):
        resolve_columns(["a", "b"], "external_call_id", {})
    with pytest.raises(MappingError, match="same property"):
        resolve_columns(["a", "b"], "a", {"b": "a"})
    cm = resolve_columns(["external_call_id", "hs_call_titel"], "external_call_id", {})
    with pytest.raises(MappingError, match="hs_call_titel"):
        cm.check_against(SCHEMA)
