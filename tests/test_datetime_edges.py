"""Datetime values rewritten into values the user never wrote (each test pins one)."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from bulkload.convert import datetimes, typed_to_strings

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.mark.parametrize("text", ["2024-03-10 02:30:00", "2024-03-10T02:30", "2024-03-10T02:30:00.5"])
def test_a_wall_clock_time_in_the_spring_forward_gap_keeps_its_minutes(text: str) -> None:
    # 02:30 does not exist in New York on 2024-03-10: it is 02:30 EST (07:30Z) or EDT (06:30Z),
    # never 01:59:59.999 EST (Arrow's nonexistent="earliest").
    got = datetimes(pa.array([text]), "America/New_York").values.to_pylist()[0]
    assert got[:16] in ("2024-03-10T07:30", "2024-03-10T06:30"), got


def test_the_arrow_and_python_paths_agree_on_a_gap_time() -> None:
    fast = datetimes(pa.array(["2024-03-10T02:30:00"]), "America/New_York").values.to_pylist()[0]
    slow = datetimes(pa.array(["2024-03-10T02:30:00,000"]), "America/New_York").values.to_pylist()[0]
    assert fast == slow


def test_a_naive_parquet_timestamp_in_the_gap_keeps_its_minutes() -> None:
    from datetime import datetime
    arr = pa.array([datetime(2024, 3, 10, 2, 30)], pa.timestamp("us"))
    got = typed_to_strings(arr, "datetime", "America/New_York")[0].to_pylist()[0]
    assert got[:16] in ("2024-03-10T07:30", "2024-03-10T06:30"), got


@pytest.mark.parametrize("text", ["253402300800000", "-62198755200000"])
def test_an_epoch_beyond_four_digit_years_is_refused_or_sent_well_formed(text: str) -> None:
    d = datetimes(pa.array([text]))
    value, bad = d.values.to_pylist()[0], d.bad.to_pylist()[0]
    assert bad or ISO_MS.fullmatch(value), value  # "10000-01-0T 00:00:00.000Z" is neither


@pytest.mark.parametrize("text", ["2024-05-01T10:00:00+24:00", "2024-05-01T10:00:00+19:00"])
def test_an_offset_no_parser_takes_is_refused_not_rewritten(text: str) -> None:
    # Java's ZoneOffset stops at +/-18:00 and Python's at 24h exclusive: HubSpot refuses it.
    assert datetimes(pa.array([text])).bad.to_pylist()[0], datetimes(pa.array([text])).values.to_pylist()
