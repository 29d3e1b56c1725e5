"""Make realistic, deterministic call files (CSV and Parquet) for the demo, the tests and
the benchmarks.

    python sample_data/generate.py --rows 2000 --seed 7 --out sample_data            # the committed sample
    python sample_data/generate.py --rows 1000000 --out /tmp/bench --bad-rate 0.001 --dup-rate 0.001

Every value comes from one seeded `random.Random` stream (no wall clock, no hash
randomisation), so the same arguments give the same bytes. Rows are built a chunk at a
time, column by column with Arrow compute (a million rows in about ten seconds), and
written as they are built, so memory stays flat whatever `--rows` is.

The rows carry the CSV edge cases a loader must survive (quoted commas, embedded LF and
CRLF, doubled quotes, non-ASCII text, `0012`/`N/A`/`null`/`NaN`/`1e5` that must stay text,
leading and trailing spaces) and, with `--bad`, a documented handful of bad rows at fixed
positions (see FIXED_BAD_ROWS and sample_data/README.md). `--bad-rate`/`--dup-rate` add
sparse bad and repeated-id rows for benchmark files.

The Parquet file holds the same rows with typed columns: hs_timestamp is
timestamp[ms, tz=UTC], hs_call_duration and hubspot_owner_id are int64, the rest string.
A value that cannot exist in a typed column (`tomorrow` as a timestamp, `12m30s` as a
duration) is null there, and every empty CSV cell is null.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import itertools
import json
import random
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

COLUMNS: tuple[str, ...] = (
    "external_call_id",
    "hs_timestamp",
    "hs_call_title",
    "hs_call_body",
    "hs_call_direction",
    "hs_call_status",
    "hs_call_duration",
    "hs_call_from_number",
    "hs_call_to_number",
    "hubspot_owner_id",
    "hs_call_recording_url",
    "hs_call_disposition",
)

PARQUET_SCHEMA = pa.schema(
    [
        pa.field("external_call_id", pa.string()),
        pa.field("hs_timestamp", pa.timestamp("ms", tz="UTC")),
        pa.field("hs_call_title", pa.string()),
        pa.field("hs_call_body", pa.string()),
        pa.field("hs_call_direction", pa.string()),
        pa.field("hs_call_status", pa.string()),
        pa.field("hs_call_duration", pa.int64()),
        pa.field("hs_call_from_number", pa.string()),
        pa.field("hs_call_to_number", pa.string()),
        pa.field("hubspot_owner_id", pa.int64()),
        pa.field("hs_call_recording_url", pa.string()),
        pa.field("hs_call_disposition", pa.string()),
    ]
)

# With contacts > 0, a last column names the call's contacts by e-mail: those the
# sandbox seeds with `--contacts N` (contact i is contact-{i:05d}@example.com), and one
# e-mail no contact has, so a demo shows the ASSOCIATIONS card.
CONTACT_COLUMN = "contact_email"
UNKNOWN_CONTACT_ROW = 606
UNKNOWN_CONTACT = "pat.unknown@example.com"

# HubSpot's default call outcomes (HUBSPOT.md section 1.6).
DISPOSITIONS: dict[str, str] = {
    "busy": "9d9162e7-6cf3-4944-bf63-4dff82258764",
    "connected": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
    "left_live_message": "a4c4c377-d246-4b32-a13b-75a56a4cd0ff",
    "left_voicemail": "b2cf5968-551e-4856-9783-52b3da59a7d0",
    "no_answer": "73a0d17f-1163-4015-bdd5-ec830791da20",
    "wrong_number": "17b47fee-58de-441e-a44c-c6300d46f273",
}
STATUSES = (
    "BUSY",
    "CALLING_CRM_USER",
    "CANCELED",
    "COMPLETED",
    "CONNECTING",
    "FAILED",
    "IN_PROGRESS",
    "NO_ANSWER",
    "QUEUED",
    "RINGING",
)
_STATUS_WEIGHTS = (6, 2, 4, 62, 2, 4, 2, 12, 3, 3)

# Values HubSpot rejects, used by the bad rows.
INVALID_STATUS = "DONE"
INVALID_TIMESTAMP = "tomorrow"
INVALID_DISPOSITION = "5a7c1d3e-9b2f-4c8a-a1e6-3f0d2b9c7e41"  # GUID-shaped, not an outcome
INVALID_DURATION = "12m30s"

BadKind = Literal[
    "invalid_status",
    "invalid_timestamp",
    "missing_id",
    "invalid_disposition",
    "invalid_duration",
    "duplicate_id",
]
_SPARSE_KINDS: tuple[BadKind, ...] = (
    "invalid_status",
    "invalid_timestamp",
    "missing_id",
    "invalid_disposition",
    "invalid_duration",
)
# Each sparse kind -> the errorType a loader must report when such a row is the last row of
# its id (an earlier row of a repeated id is superseded instead, bad or not). The tests'
# oracle and bench/dry_run.py both judge a load by it.
ERROR_TYPE_OF_KIND: dict[str, str] = {
    "invalid_status": "INVALID_ENUM_PROPERTY",
    "invalid_disposition": "INVALID_ENUM_PROPERTY",
    "invalid_timestamp": "INVALID_TIMESTAMP",
    "invalid_duration": "INVALID_NUMBER",
    "missing_id": "MISSING_ID_VALUE",
}

# The documented bad rows of every file made with --bad (1-based data row numbers; rows
# beyond --rows are left out). sample_data/README.md describes each one; keep both in step.
FIXED_BAD_ROWS: dict[int, BadKind] = {
    101: "invalid_status",
    202: "invalid_timestamp",
    303: "missing_id",
    404: "invalid_disposition",
    505: "invalid_duration",
    1500: "duplicate_id",
}
# Row 1500 repeats the id of row 700: the later row wins, row 700 is superseded.
FIXED_DUPLICATE_OF = {1500: 700}

# Good rows that carry one CSV edge case each, at fixed positions (so tests can find
# them), and sprinkled at --edge-rate elsewhere. (column, value) pairs.
EDGE_CASES: tuple[tuple[tuple[str, str], ...], ...] = (
    (("hs_call_title", "Pricing call, renewal + upsell"),),
    (("hs_call_body", "Discussed renewal.\nNext step: send the quote."),),
    (("hs_call_body", "Windows notes line one\r\nline two\r\nline three"),),
    (("hs_call_body", 'Customer said "call me back Tuesday", then hung up'),),
    (
        ("hs_call_title", "Café São Paulo — Müller & Søn"),
        ("hs_call_body", "Zoë asked about the façade"),
    ),
    (("hs_call_title", "电话会议：续约讨论"), ("hs_call_body", "客户要求下周回电。")),
    (("hs_call_title", "📞 Follow-up ✅"), ("hs_call_body", "Sent the deck 🚀 — waiting 🙏")),
    (("hs_call_title", "0012"), ("hs_call_from_number", "0012 345 678")),
    (("hs_call_title", "  padded title  "), ("hs_call_body", " leading space only")),
    (("hs_call_title", "N/A"), ("hs_call_body", "null")),
    (("hs_call_title", "NaN"), ("hs_call_body", "1e5")),
    (
        (
            "hs_call_body",
            'Multi-line, with "quotes", commas,\nand a second line\n\nafter a blank one',
        ),
    ),
    (("hs_call_title", 'Ticket #4411; ref="A,B"'),),
)
EDGE_FIRST_ROW = 2  # EDGE_CASES[i] sits at row EDGE_FIRST_ROW + i

_TITLES = (
    "Discovery call",
    "Follow-up",
    "Demo",
    "Renewal check-in",
    "Onboarding",
    "Support callback",
    "Quarterly review",
    "Intro call",
    "Pricing questions",
    "Contract review",
)
_COMPANIES = (
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Soylent",
    "Vandelay Industries",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
)
_BODIES = (
    "Left a voicemail, will try again tomorrow.",
    "Walked through the pricing tiers; they want a proposal.",
    "Customer reported an issue with invoices; escalated to billing.",
    "Confirmed the renewal date and the number of seats.",
    "Intro call. Interested in the API tier.",
    "Scheduled a demo for next week with their ops lead.",
    "No decision yet; budget review at the end of the quarter.",
    "Resolved the login problem together on the call.",
)
_OFFSETS = ((2, 0), (-5, 0), (5, 30), (1, 0), (-8, 0), (9, 0))
_OWNER_IDS = tuple(str(10_000_000 + 7919 * i) for i in range(1, 26))

# Calls run from 2023-01-01 to 2025-06-30 (UTC), spread evenly over the rows.
_START_S = 1_672_531_200
# Rows are drawn a chunk at a time, column by column, so the chunk size is part of what
# the seed means: changing it changes the bytes.
_CHUNK_ROWS = 50_000
_SPAN_S = 1_751_241_600 - _START_S


@dataclass(frozen=True)
class BadRow:
    """One deliberately bad row: where it is, its id and what the loader should do."""

    row_number: int
    external_call_id: str
    kind: BadKind
    column: str
    csv_value: str
    note: str


@dataclass
class GenerationResult:
    rows: int
    seed: int
    paths: list[Path] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        kinds: dict[str, int] = {}
        for bad in self.bad_rows:
            kinds[bad.kind] = kinds.get(bad.kind, 0) + 1
        return {
            "rows": self.rows,
            "seed": self.seed,
            "files": [str(p) for p in self.paths],
            "bad_rows": len(self.bad_rows),
            "bad_rows_by_kind": kinds,
        }


@dataclass
class _Chunk:
    text: pa.Buffer  # the chunk's CSV lines, UTF-8, each ending with the line terminator
    table: pa.Table  # the same rows, typed as PARQUET_SCHEMA
    bad_rows: list[BadRow]


class _Draws:
    """Uniform random integers for a whole chunk at once, from the seeded stream.

    One `randbytes` call per column instead of one `random()` call per cell is what makes
    a million rows take seconds: everything after the draw is Arrow compute.
    """

    def __init__(self, rng: random.Random, n: int) -> None:
        self._rng = rng
        self._n = n

    def u32(self) -> pa.Array:
        raw = pa.py_buffer(self._rng.randbytes(4 * self._n))
        return pa.Array.from_buffers(pa.uint32(), self._n, [None, raw]).cast(pa.int64())

    def below(self, k: int) -> pa.Array:
        """Integers in [0, k), k < 2**31."""
        return pc.divide(pc.multiply(self.u32(), k), 1 << 32)

    def chance(self, p: float) -> pa.Array:
        """True with probability p (resolution 2**-32)."""
        return pc.less(self.u32(), int(p * (1 << 32)))

    def weighted(self, weights: tuple[int, ...]) -> pa.Array:
        """Indices into `weights`, drawn in proportion to them (resolution 1/4096)."""
        return pc.take(_weight_table(weights), self.below(4096))


@functools.cache
def _weight_table(weights: tuple[int, ...]) -> pa.Array:
    """Slot -> index, each index owning a share of the 4096 slots proportional to its weight."""
    bounds = list(itertools.accumulate(weights))
    total = bounds[-1]
    return pa.array([bisect.bisect_right(bounds, slot * total / 4096) for slot in range(4096)])


def _pick(options: Sequence[str], index: pa.Array) -> pa.Array:
    return pc.take(pa.array(options, pa.string()), index)


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _phone_pool(rng: random.Random, size: int) -> pa.Array:
    """Phone numbers to pick from: people get called more than once, and picking from a
    pool is much cheaper than formatting a number per row."""
    draws = _Draws(rng, size)
    area = pc.cast(pc.add(draws.below(800), 200), pa.string())
    line = pc.utf8_lpad(pc.cast(draws.below(10_000_000), pa.string()), width=7, padding="0")
    d = _join(area, line)  # 10 digits

    def cut(start: int, stop: int) -> pa.Array:
        return pc.utf8_slice_codeunits(d, start, stop)

    styles = [
        _join("+1 (", cut(0, 3), ") ", cut(3, 6), "-", cut(6, 10)),
        _join("(", cut(0, 3), ") ", cut(3, 6), " ", cut(6, 10)),
        _join("+44 20 ", cut(2, 6), " ", cut(6, 10)),
        _join("+1", d),
        # International prefix with leading zeros: must stay text.
        _join("0049 30 ", cut(3, 6), " ", cut(6, 10)),
    ]
    return pc.choose(draws.below(len(styles)), *styles)


_PHONE_POOL_SIZE = 50_000


def _iso(instants: pa.Array, unit: str) -> pa.Array:
    """`2024-05-01T10:00:00[.123]` from integer instants. Casting a tz-naive timestamp to
    string is ~10x faster than pc.strftime; only the separator needs fixing."""
    return pc.utf8_replace_slice(
        pc.cast(instants.cast(pa.timestamp(unit)), pa.string()), 10, 11, "T"
    )


def _timestamps(draws: _Draws, millis: pa.Array) -> tuple[pa.Array, pa.Array]:
    """The CSV text of each instant, in one of four shapes HubSpot accepts, and the
    instant that text means (whole seconds where the shape has no milliseconds)."""
    seconds = pc.divide(millis, 1000)
    iso_z = _join(_iso(seconds, "s"), "Z")
    iso_ms = _join(_iso(millis, "ms"), "Z")
    which = draws.below(len(_OFFSETS))
    shift = pc.take(pa.array([h * 3600 + (m if h >= 0 else -m) * 60 for h, m in _OFFSETS]), which)
    suffix = _pick([f"{'-' if h < 0 else '+'}{abs(h):02d}:{m:02d}" for h, m in _OFFSETS], which)
    iso_offset = _join(_iso(pc.add(seconds, shift), "s"), suffix)
    epoch_ms = pc.cast(millis, pa.string())
    shape = draws.weighted((50, 10, 20, 20))
    text = pc.choose(shape, iso_z, iso_ms, iso_offset, epoch_ms)
    whole = pc.multiply(seconds, 1000)
    return text, pc.choose(shape, whole, millis, whole, millis)


def _quote(column: pa.Array) -> pa.Array:
    """CSV-quote the cells that need it (delimiter, quote, line break): minimal quoting,
    as spreadsheets and most exporters write it."""
    needs = pc.match_substring_regex(column, r'[,"\r\n]')
    if not pc.any(needs).as_py():
        return column
    quoted = _join('"', pc.replace_substring(column, '"', '""'), '"')
    return pc.if_else(needs, quoted, column)


def _empty_to_null(column: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)


_COMPLETED_OUTCOMES = ("connected", "left_voicemail", "left_live_message", "wrong_number")
_OUTCOME_OF_STATUS = {"BUSY": "busy", "NO_ANSWER": "no_answer"}


def _make_chunk(
    rng: random.Random,
    phones: pa.Array,
    altered: set[int],
    first_row: int,
    count: int,
    total_rows: int,
    id_width: int,
    *,
    bad: bool,
    bad_rate: float,
    dup_rate: float,
    edge_rate: float,
    line_end: str,
    contacts: int = 0,
) -> _Chunk:
    """Build `count` rows column by column, then place the few edge-case and bad rows.

    Every draw is taken whatever the options, so --no-bad changes only the bad rows.
    """
    draws = _Draws(rng, count)
    rows = pa.array(range(first_row, first_row + count), pa.int64())
    step_ms = max(_SPAN_S * 1000 // max(total_rows, 1), 1)
    step_ms = min(step_ms, (1 << 31) - 1)

    ids = _join("call-", pc.utf8_lpad(pc.cast(rows, pa.string()), width=id_width, padding="0"))
    millis = pc.add(
        pc.add(pc.multiply(pc.subtract(rows, 1), step_ms), _START_S * 1000),
        draws.below(step_ms),
    )
    stamps, millis = _timestamps(draws, millis)
    statuses = _pick(STATUSES, draws.weighted(_STATUS_WEIGHTS))
    completed = pc.equal(statuses, "COMPLETED")
    directions = pc.if_else(draws.chance(0.7), "OUTBOUND", "INBOUND")
    all_titles = [f"{title} — {company}" for title in _TITLES for company in _COMPANIES]
    titles = pc.if_else(draws.chance(0.97), _pick(all_titles, draws.below(len(all_titles))), "")
    bodies = pc.if_else(draws.chance(0.85), _pick(_BODIES, draws.below(len(_BODIES))), "")
    durations = pc.if_else(
        completed,
        pc.add(draws.below(2_685_000), 15_000),
        pc.if_else(draws.chance(0.6), 0, pa.scalar(None, pa.int64())),
    )
    by_status = [
        DISPOSITIONS[_OUTCOME_OF_STATUS[s]] if s in _OUTCOME_OF_STATUS else "" for s in STATUSES
    ]
    outcome = pc.if_else(
        completed,
        _pick([DISPOSITIONS[o] for o in _COMPLETED_OUTCOMES], draws.weighted((70, 15, 10, 5))),
        _pick(by_status, pc.index_in(statuses, value_set=pa.array(STATUSES))),
    )
    dispositions = pc.if_else(draws.chance(0.9), outcome, "")
    from_numbers = pc.take(phones, draws.below(len(phones)))
    to_numbers = pc.if_else(draws.chance(0.98), pc.take(phones, draws.below(len(phones))), "")
    owners = pc.if_else(draws.chance(0.95), _pick(_OWNER_IDS, draws.below(len(_OWNER_IDS))), "")
    extensions = pc.if_else(draws.chance(0.7), ".mp3", ".wav")
    recordings = pc.if_else(
        pc.and_(completed, draws.chance(0.65)),
        _join("https://recordings.example.com/calls/", ids, extensions),
        "",
    )
    cols: dict[str, pa.Array] = {
        "external_call_id": ids,
        "hs_timestamp": stamps,
        "hs_call_title": titles,
        "hs_call_body": bodies,
        "hs_call_direction": directions,
        "hs_call_status": statuses,
        "hs_call_duration": pc.fill_null(pc.cast(durations, pa.string()), ""),
        "hs_call_from_number": from_numbers,
        "hs_call_to_number": to_numbers,
        "hubspot_owner_id": owners,
        "hs_call_recording_url": recordings,
        "hs_call_disposition": dispositions,
    }

    edge_pick = draws.chance(edge_rate)
    edge_which = draws.below(len(EDGE_CASES))
    sparse_pick = draws.chance(bad_rate)
    sparse_kind = draws.below(len(_SPARSE_KINDS))
    dup_pick = draws.chance(dup_rate)
    dup_target = pc.add(pc.divide(pc.multiply(draws.u32(), pc.subtract(rows, 1)), 1 << 32), 1)
    # Drawn last and always, so that the other columns are the same with or without them.
    contact_first = pc.add(draws.below(max(contacts, 1)), 1)
    contact_second = pc.add(draws.below(max(contacts, 1)), 1)
    contact_shape = draws.below(100)  # <7: no contact, <10: two, else one
    if contacts > 0:
        def address(index: pa.Array) -> pa.Array:
            padded = pc.utf8_lpad(pc.cast(index, pa.string()), width=5, padding="0")
            return _join("contact-", padded, "@example.com")

        one = address(contact_first)
        two = _join(one, ";", address(contact_second))
        cols[CONTACT_COLUMN] = pc.if_else(pc.less(contact_shape, 7), "",
                                          pc.if_else(pc.less(contact_shape, 10), two, one))
    names = tuple(cols)

    # The few rows to edit, in Python: {column: {index: value}}.
    edits: dict[str, dict[int, str]] = {name: {} for name in names}
    edge_last = EDGE_FIRST_ROW + len(EDGE_CASES) - 1
    edge_rows = set(pc.indices_nonzero(edge_pick).to_pylist())
    edge_rows.update(r - first_row for r in range(EDGE_FIRST_ROW, edge_last + 1))
    for index in sorted(edge_rows):
        row = first_row + index
        if not 0 <= index < count:
            continue
        which = row - EDGE_FIRST_ROW if row <= edge_last else edge_which[index].as_py()
        for column, value in EDGE_CASES[which]:
            edits[column][index] = value
    if contacts > 0 and 0 <= UNKNOWN_CONTACT_ROW - first_row < count:
        edits[CONTACT_COLUMN][UNKNOWN_CONTACT_ROW - first_row] = UNKNOWN_CONTACT

    bad_rows: list[BadRow] = []
    bad_index = set(pc.indices_nonzero(pc.or_(sparse_pick, dup_pick)).to_pylist())
    if bad:
        bad_index.update(r - first_row for r in FIXED_BAD_ROWS if 0 <= r - first_row < count)
    for index in sorted(bad_index):
        row = first_row + index
        kind: BadKind
        target = 0
        if bad and row in FIXED_BAD_ROWS:
            kind = FIXED_BAD_ROWS[row]
            target = FIXED_DUPLICATE_OF.get(row, 0)
        elif bad and row in FIXED_DUPLICATE_OF.values():
            continue  # keeps its id: a fixed bad row repeats it
        elif row > 1 and dup_pick[index].as_py():
            kind, target = "duplicate_id", dup_target[index].as_py()
            # Repeat the id of a row that still has its own id (not an earlier bad one).
            while target in altered and target > 1:
                target -= 1
            if target in altered:
                continue
        elif sparse_pick[index].as_py():
            kind = _SPARSE_KINDS[sparse_kind[index].as_py()]
        else:
            continue
        values = {name: edits[name].get(index, cols[name][index].as_py()) for name in names}
        bad_rows.append(_apply_bad(kind, row, values, target, id_width))
        if kind in ("missing_id", "duplicate_id"):
            altered.add(row)
        for name in names:
            if values[name] != cols[name][index].as_py():
                edits[name][index] = values[name]

    positions = pa.array(range(count), pa.int64())
    for name, changes in edits.items():
        if changes:
            where = sorted(changes)
            mask = pc.is_in(positions, value_set=pa.array(where, pa.int64()))
            cols[name] = pc.replace_with_mask(
                cols[name], mask, pa.array([changes[i] for i in where], pa.string())
            )

    lines = pc.binary_join_element_wise(*(_quote(cols[name]) for name in names), ",")
    terminated = pc.binary_join_element_wise(lines, "", line_end)
    # The chunk's file bytes are the string data buffer, between its first and last offset.
    _, offset_buffer, data = terminated.buffers()
    offsets = pa.Array.from_buffers(
        pa.int32(), len(terminated) + 1, [None, offset_buffer], offset=terminated.offset
    )
    start, stop = offsets[0].as_py(), offsets[len(terminated)].as_py()
    text = data.slice(start, stop - start)

    duration_text = cols["hs_call_duration"]
    typed: dict[str, pa.Array] = {name: _empty_to_null(cols[name]) for name in names}
    bad_stamp = pc.equal(cols["hs_timestamp"], INVALID_TIMESTAMP)
    typed["hs_timestamp"] = pc.if_else(bad_stamp, pa.scalar(None, pa.int64()), millis).cast(
        pa.timestamp("ms", tz="UTC")
    )
    typed["hs_call_duration"] = pc.if_else(
        pc.utf8_is_digit(duration_text), duration_text, pa.scalar(None, pa.string())
    ).cast(pa.int64())
    typed["hubspot_owner_id"] = typed["hubspot_owner_id"].cast(pa.int64())
    table = pa.table([typed[name] for name in names], schema=parquet_schema(contacts))
    return _Chunk(text, table, bad_rows)


def columns(contacts: int = 0) -> tuple[str, ...]:
    """The file's columns: COLUMNS, and CONTACT_COLUMN when the rows name contacts."""
    return (*COLUMNS, CONTACT_COLUMN) if contacts > 0 else COLUMNS


def parquet_schema(contacts: int = 0) -> pa.Schema:
    return PARQUET_SCHEMA.append(pa.field(CONTACT_COLUMN, pa.string())) if contacts > 0 else PARQUET_SCHEMA


def _apply_bad(
    kind: BadKind,
    row: int,
    values: dict[str, str],
    dup_target: int,
    id_width: int,
) -> BadRow:
    """Spoil one row's values in place; return its description."""
    if kind == "invalid_status":
        column, value = "hs_call_status", INVALID_STATUS
        note = "not an hs_call_status option: a failed row (INVALID_ENUM_PROPERTY)"
    elif kind == "invalid_timestamp":
        column, value = "hs_timestamp", INVALID_TIMESTAMP
        note = (
            "unparseable hs_timestamp: a failed row (INVALID_TIMESTAMP locally, or HubSpot's "
            "INVALID_LONG); null in Parquet, where hs_timestamp is then missing on create"
        )
    elif kind == "missing_id":
        column, value = "external_call_id", ""
        note = "empty id: never sent; a failed row (MISSING_ID_VALUE)"
    elif kind == "invalid_disposition":
        column, value = "hs_call_disposition", INVALID_DISPOSITION
        note = "a GUID that is not a call outcome: a failed row (INVALID_ENUM_PROPERTY)"
    elif kind == "invalid_duration":
        column, value = "hs_call_duration", INVALID_DURATION
        note = (
            "non-numeric hs_call_duration: a failed row (INVALID_NUMBER locally, or HubSpot's "
            "INVALID_LONG); null in Parquet, where the row is then good"
        )
    else:
        column, value = "external_call_id", f"call-{dup_target:0{id_width}d}"
        values["hs_call_title"] = f"Updated: {values['hs_call_title'] or 'call'}"
        note = (
            f"repeats the id of row {dup_target}: this later row wins; row {dup_target} is "
            "superseded (DUPLICATE_ID_IN_SOURCE warning, never sent)"
        )
    values[column] = value
    return BadRow(row, values["external_call_id"], kind, column, value, note)


def _chunks(
    rows: int,
    seed: int,
    *,
    bad: bool,
    bad_rate: float,
    dup_rate: float,
    edge_rate: float,
    line_end: str,
    contacts: int = 0,
) -> Iterator[_Chunk]:
    rng = random.Random(seed)
    phones = _phone_pool(rng, _PHONE_POOL_SIZE)
    altered: set[int] = set()  # rows whose id is not their own (sparse: bad rows only)
    id_width = max(7, len(str(rows)))
    for first in range(1, rows + 1, _CHUNK_ROWS):
        count = min(_CHUNK_ROWS, rows - first + 1)
        yield _make_chunk(
            rng,
            phones,
            altered,
            first,
            count,
            rows,
            id_width,
            bad=bad,
            bad_rate=bad_rate,
            dup_rate=dup_rate,
            edge_rate=edge_rate,
            line_end=line_end,
            contacts=contacts,
        )


def generate(
    rows: int,
    seed: int,
    out_dir: Path | str,
    *,
    name: str = "calls",
    format: Literal["csv", "parquet", "both"] = "both",
    bad: bool = True,
    bad_rate: float = 0.0,
    dup_rate: float = 0.0,
    edge_rate: float = 0.01,
    crlf: bool = False,
    contacts: int = 0,
) -> GenerationResult:
    """Write `<out_dir>/<name>.csv` and/or `.parquet` holding `rows` call rows.

    Same arguments, same bytes. `bad` places FIXED_BAD_ROWS; `bad_rate` and `dup_rate`
    add sparse bad rows and repeated ids; `edge_rate` sprinkles the CSV edge cases;
    `contacts` > 0 adds a contact_email column naming the sandbox's seeded contacts.
    """
    if rows < 0:
        raise ValueError("rows must be >= 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = GenerationResult(rows=rows, seed=seed)
    csv_path = out / f"{name}.csv"
    parquet_path = out / f"{name}.parquet"
    want_csv = format in ("csv", "both")
    want_parquet = format in ("parquet", "both")

    line_end = "\r\n" if crlf else "\n"

    with ExitStack() as stack:
        csv_file: BinaryIO | None = None
        writer: pq.ParquetWriter | None = None
        if want_csv:
            csv_file = stack.enter_context(open(csv_path, "wb"))
            csv_file.write((",".join(columns(contacts)) + line_end).encode())
        if want_parquet:
            writer = stack.enter_context(pq.ParquetWriter(parquet_path, parquet_schema(contacts)))
        for chunk in _chunks(
            rows,
            seed,
            bad=bad,
            bad_rate=bad_rate,
            dup_rate=dup_rate,
            edge_rate=edge_rate,
            line_end=line_end,
            contacts=contacts,
        ):
            result.bad_rows.extend(chunk.bad_rows)
            if csv_file is not None:
                csv_file.write(memoryview(chunk.text))
            if writer is not None:
                # One row group per chunk keeps the writer's memory flat.
                writer.write_table(chunk.table)
    if want_csv:
        result.paths.append(csv_path)
    if want_parquet:
        result.paths.append(parquet_path)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=2000, help="data rows to write")
    parser.add_argument("--seed", type=int, default=7, help="random seed (same seed, same bytes)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--format", choices=("csv", "parquet", "both"), default="both")
    parser.add_argument(
        "--bad",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="put the documented bad rows at their fixed positions (default: on)",
    )
    parser.add_argument("--bad-rate", type=float, default=0.0, help="extra sparse bad rows")
    parser.add_argument("--dup-rate", type=float, default=0.0, help="rows repeating an earlier id")
    parser.add_argument("--edge-rate", type=float, default=0.01, help="rows with CSV edge cases")
    parser.add_argument("--crlf", action="store_true", help="end CSV lines with CRLF")
    parser.add_argument("--name", default="calls", help="file name stem")
    parser.add_argument("--manifest", type=Path, help="write the bad rows as JSON here")
    parser.add_argument(
        "--contacts",
        type=int,
        default=0,
        help="add a contact_email column naming contacts 1..N (bulkload sandbox --contacts N)",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    result = generate(
        args.rows,
        args.seed,
        args.out,
        name=args.name,
        format=args.format,
        bad=args.bad,
        bad_rate=args.bad_rate,
        dup_rate=args.dup_rate,
        edge_rate=args.edge_rate,
        crlf=args.crlf,
        contacts=args.contacts,
    )
    if args.manifest is not None:
        args.manifest.write_text(
            json.dumps([asdict(b) for b in result.bad_rows], ensure_ascii=False, indent=1) + "\n",
            encoding="utf-8",
        )
    summary = result.summary()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
