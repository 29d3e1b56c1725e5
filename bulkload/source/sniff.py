"""Cheap looks at a source file before it is read: its format (by name and magic bytes),
whether it is plain UTF-8 text, its line break, its delimiter, and its column names.

Nothing here streams the file: these checks read its first bytes only (the 64 KiB probe).
`sniff_delimiter` is a pure function over a sample, for any reader of delimited text.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from bulkload.errors import SourceError
from bulkload.source.arrays import first_line
from bulkload.source.csv_quirks import ends_inside_quotes
from bulkload.source.records import DelimiterOrigin, SourceFormat

# The delimiters detection considers, in the order ties are broken.
DELIMITERS = (",", ";", "\t", "|")
CSV_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": ","}
PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
PARQUET_MAGIC = b"PAR1"
FORMATS = ("csv", "tsv", "parquet")
# How much of a CSV file open_source looks at for its cheap checks (encoding, header,
# delimiter).
PROBE_SIZE = 1 << 16
# Records of the probe that delimiter detection looks at, after the header.
_SNIFF_RECORDS = 200


def detect_format(path: Path, explicit: str | None = None) -> SourceFormat:
    """The file's format: `explicit` if given (csv, tsv or parquet; tsv is CSV with tabs),
    else by extension, else by content; always checked against the content (Parquet
    starts with the magic bytes PAR1)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(PARQUET_MAGIC))
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    looks_parquet = head == PARQUET_MAGIC
    content = "Parquet" if looks_parquet else "not Parquet (no PAR1 magic bytes; text/CSV?)"
    suffix = path.suffix.lower()

    if explicit is not None:
        wanted = explicit.strip().lower()
        if wanted not in FORMATS:
            raise SourceError(f"{path}: unknown format {explicit!r} (use csv, tsv or parquet)")
        if (wanted == "parquet") != looks_parquet:
            raise SourceError(f"{path}: --format {wanted} was given, but the file is {content}")
        return "parquet" if wanted == "parquet" else "csv"
    if suffix in PARQUET_SUFFIXES and not looks_parquet:
        raise SourceError(f"{path}: named {suffix}, but the file is {content}")
    if suffix in CSV_SUFFIXES and looks_parquet:
        raise SourceError(
            f"{path}: named {suffix}, but the file is Parquet; rename it or pass --format parquet"
        )
    return "parquet" if looks_parquet else "csv"


def check_text(path: Path, head: bytes, full: bool) -> None:
    """Refuse what is plainly not a UTF-8 text file, from its first bytes."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError(f"{path}: the file is UTF-16 encoded; save it as UTF-8")
    if head.startswith(b"\x1f\x8b"):
        raise SourceError(f"{path}: the file is gzip-compressed; decompress it first")
    if head.startswith(b"PK\x03\x04"):
        raise SourceError(
            f"{path}: the file is a ZIP archive (an Excel workbook?); export it as CSV (UTF-8)"
        )
    if b"\x00" in head:
        raise SourceError(f"{path}: the file contains NUL bytes; it is not a text (CSV) file")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The probe may cut a multi-byte character in two: that is not an error.
        if not (not full and exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"):
            line = head.count(b"\n", 0, exc.start) + 1
            raise SourceError(
                f"{path}: not UTF-8 (byte 0x{head[exc.start]:02x} on line {line}); "
                "save the file as UTF-8"
            ) from None


def line_break(head: bytes) -> str:
    """What counts as a line break for line numbers: LF (CRLF counts once), or CR in a file
    whose lines end in a bare CR (old Mac exports), which pyarrow splits rows on."""
    first_lf, first_cr = head.find(b"\n"), head.find(b"\r")
    bare_cr = first_cr >= 0 and (first_lf < 0 or first_lf > first_cr + 1)
    return "\r" if bare_cr else "\n"


def check_delimiter(delimiter: str) -> str:
    """A delimiter the caller named, checked: one ASCII character, not a quote or a line
    break. `\\t` and `tab` (as typed on a command line) mean a tab."""
    if delimiter in ("\\t", "tab", "TAB"):
        return "\t"
    if len(delimiter) != 1:
        raise SourceError(f"--delimiter {delimiter!r}: give one character (or 'tab')")
    if delimiter in "\"\r\n" or not delimiter.isascii():
        raise SourceError(
            f"--delimiter {delimiter!r}: a delimiter cannot be a quote, a line break or a "
            "non-ASCII character"
        )
    return delimiter


def choose_delimiter(
    path: Path, head: bytes, full: bool, given: str | None, tsv: bool
) -> tuple[str, DelimiterOrigin]:
    """The delimiter to read `path` with, and how it was chosen: `given` (or tab for
    format tsv), else detected from the probe, else the default for the file's name."""
    if tsv:
        if given is not None and check_delimiter(given) != "\t":
            raise SourceError(f"{path}: --format tsv reads tabs, but --delimiter {given!r} was given")
        return "\t", "given"
    if given is not None:
        return check_delimiter(given), "given"
    default = CSV_SUFFIXES.get(path.suffix.lower(), ",")
    found = sniff_delimiter(head, prefer=default, complete=full)
    return (found, "detected") if found is not None else (default, "default")


def sniff_delimiter(
    sample: bytes | str, *, prefer: str = ",", complete: bool = False
) -> str | None:
    """The delimiter of delimited text, from its header and first records; None if no
    candidate splits it into more than one column.

    Candidates are `,` `;` tab `|` (DELIMITERS). Each is tried with CSV quoting (a `;`
    inside a quoted cell does not count): it qualifies when it splits the header into
    more than one column and at least half of the sampled records into as many (a few
    malformed rows must not hide the right one); the one matching the most records wins,
    ties going to `prefer`, then to the order of DELIMITERS. `complete`: the sample is the
    whole text, so its last record is not cut short (otherwise it is left out).
    """
    text = sample.decode("utf-8", "replace") if isinstance(sample, bytes) else sample
    text = text.removeprefix("\ufeff")
    best, best_score = None, 0.0
    for delimiter in (prefer, *(d for d in DELIMITERS if d != prefer)):
        widths = _widths(text, delimiter, complete)
        if not widths or widths[0] < 2:
            continue
        header, records = widths[0], widths[1:]
        score = sum(w == header for w in records) / len(records) if records else 1.0
        if score >= 0.5 and score > best_score:
            best, best_score = delimiter, score
    return best


def _widths(text: str, delimiter: str, complete: bool) -> list[int]:
    """Cells per record (the header first), blank lines left out."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', doublequote=True)
    widths: list[int] = []
    try:
        for record in reader:
            if record:
                widths.append(len(record))
            if len(widths) > _SNIFF_RECORDS:
                return widths  # the reader went past them: all complete
    except csv.Error:  # a cell over csv's size limit: the records before it are whole
        return widths
    # The sample may end inside the last record: leave it out unless it is the header.
    return widths if complete or len(widths) <= 1 else widths[:-1]


def clean_name(name: str, index: int) -> str:
    # pyarrow strips one UTF-8 BOM; strip a stray second one too (Excel round trips).
    return name.lstrip("\ufeff") if index == 0 else name


def check_names(path: Path, names: list[str]) -> None:
    if not names:
        raise SourceError(f"{path}: no columns")
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if name == "":
            raise SourceError(f"{path}: column {number} of the header has no name")
        if "\n" in name or "\r" in name:
            raise SourceError(
                f"{path}: column {number} of the header holds a line break "
                "(broken quoting in the header?)"
            )
        if name in seen:
            raise SourceError(
                f"{path}: column name {name!r} appears twice (columns {seen[name]} and {number})"
            )
        seen[name] = number


@dataclass(frozen=True)
class CsvProbe:
    """What the first 64 KiB of a CSV say: its column names as pyarrow reads them, its
    delimiter and how it was chosen, and its line break."""

    names: list[str]
    delimiter: str
    origin: DelimiterOrigin
    newline: str


def probe_csv(path: Path, delimiter: str | None = None, *, tsv: bool = False) -> CsvProbe:
    """The cheap checks of a CSV: text, delimiter, header; SourceError if it is unusable."""
    with open(path, "rb") as f:
        head = f.read(PROBE_SIZE)
    full = len(head) < PROBE_SIZE  # the probe holds the whole file
    check_text(path, head, full)
    chosen, origin = choose_delimiter(path, head, full, delimiter, tsv)

    # The header is the first line: a line break inside a quoted header name is refused
    # (check_names), so it cannot span lines.
    ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
    if not ends and not full:
        raise SourceError(f"{path}: no line break in the first {PROBE_SIZE >> 10} KiB: no header row?")
    header = head[: min(ends)] if ends else head
    if ends_inside_quotes(header.decode("utf-8", "replace"), chosen):
        raise SourceError(
            f"{path}: the header opens a quote that the first line does not close "
            "(a line break inside a column name, or broken quoting)"
        )
    # pyarrow parses the header line alone, so the names are exactly the ones the data
    # pass sees (it also strips a UTF-8 BOM).
    try:
        reader = pacsv.open_csv(
            pa.BufferReader(header + b"\n"),
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=parse_options(chosen, None),
        )
        with reader:
            names = list(reader.schema.names)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: cannot read the CSV header: {first_line(exc)}") from None
    check_names(path, [clean_name(name, i) for i, name in enumerate(names)])
    return CsvProbe(names, chosen, origin, line_break(head))


def parse_options(delimiter: str, handler: object) -> pacsv.ParseOptions:
    """The CSV dialect bulkload reads (RFC 4180 quoting, line breaks inside quotes)."""
    return pacsv.ParseOptions(
        delimiter=delimiter,
        quote_char='"',
        double_quote=True,
        escape_char=False,
        newlines_in_values=True,
        # Keep blank lines as records: pyarrow does not count the ones it skips.
        ignore_empty_lines=False,
        invalid_row_handler=handler,
    )
