"""The report's vocabulary: its fields and columns, and the cells of its CSV.

A CSV report is a corrected-file template: the job's source columns first, under their
original names, then the error columns `bulkload_<field>` for the fields in
`ERROR_FIELDS`. Every cell (the header too) goes through `neutralise_cell`, so a
spreadsheet runs no formula from call data (OWASP "CSV injection"); `restore_cell`
undoes it exactly when the file comes back through `retry --from`.
"""

from __future__ import annotations

import json
from typing import Any

SEVERITY_ERROR = "error"
SEVERITY_WARNING = "warning"

# Rows sharing a row number sort errors first; the cursor records which of the two it stopped at.
KIND_ERROR = 0
KIND_WARNING = 1
KIND_ASSOCIATION = 2  # a row that landed, and an association of it that failed

ERROR_COLUMN_PREFIX = "bulkload_"

# The CSV template's error columns, after the source columns, each named PREFIX + field.
# Each is the report row's field of the same name, except rowNumber and lineNumber (from
# `sourceData`) and raw (a malformed row's text).
LEADING_FIELDS: tuple[str, ...] = (
    "severity",  # error | warning (warnings are superseded rows: never sent, not failures)
    "errorType",  # what went wrong (taxonomy.ErrorType)
    "category",  # where a person goes to fix it (taxonomy.Category)
    "errorMessage",
    "propertyName",  # the HubSpot property the error is about
    "sourceColumn",  # the source column feeding that property
    "invalidValue",
    "idPropertyValue",
    "howToFix",  # one line from taxonomy.HOW_TO_FIX
)
TRAILING_FIELDS: tuple[str, ...] = (
    "resolved",  # true | false
    "attempts",
    "createdAt",
    "updatedAt",
    "hubspotCode",
    "correlationId",  # quote it to HubSpot support
    "supersededBy",  # for warnings: the later row with the same id, the one sent
    "id",  # stable report id of the row
)
ERROR_FIELDS: tuple[str, ...] = (
    *LEADING_FIELDS,
    "rowNumber",  # 1-based data row in the source (header not counted)
    "lineNumber",  # physical line where the row starts (CSV sources)
    *TRAILING_FIELDS,
    "raw",  # a malformed row's raw text (its source columns are then empty)
)
ERROR_COLUMNS: tuple[str, ...] = tuple(ERROR_COLUMN_PREFIX + f for f in ERROR_FIELDS)
# A row with several problems: the first is in the columns above, problem k (k >= 2) in
# bulkload_error<k>_<field> after them, as many as the report's most problematic row has.
PROBLEM_FIELDS: tuple[str, ...] = ("errorType", "propertyName", "invalidValue", "errorMessage")


def problem_columns(most: int) -> tuple[str, ...]:
    return tuple(f"{ERROR_COLUMN_PREFIX}error{k}_{f}" for k in range(2, most + 1) for f in PROBLEM_FIELDS)


def joined_message(problems: list[dict[str, Any]]) -> str:
    """Every problem of a row in one readable line (the CSV's errorMessage)."""
    return "; ".join(f"{p.get('propertyName') or '?'}: {p.get('errorMessage') or p.get('errorType')}"
                     for p in problems)
ERROR_COLUMN_SET = frozenset(ERROR_COLUMNS)
SEVERITY_COLUMN = ERROR_COLUMN_PREFIX + "severity"
ROW_NUMBER_COLUMN = ERROR_COLUMN_PREFIX + "rowNumber"
CATEGORY_COLUMN = ERROR_COLUMN_PREFIX + "category"
SOURCE_COLUMN_COLUMN = ERROR_COLUMN_PREFIX + "sourceColumn"
INVALID_VALUE_COLUMN = ERROR_COLUMN_PREFIX + "invalidValue"

# row_data of a row the CSV reader could not split into columns.
RAW_KEY = "_raw"

# OWASP "CSV injection": spreadsheets run a cell starting with = + - @ tab or CR as a
# formula. The escape "'" is itself escaped too, so that `restore_cell` is an exact inverse.
ESCAPE = "'"
# A NUL first (a Parquet source may hold one) is neutralised too: some spreadsheets drop it
# and read what follows as a formula.
NEEDS_ESCAPE = frozenset("=+-@\t\r\0" + ESCAPE)

SPREADSHEET_MAX_ROWS = 1_048_575  # Excel's and LibreOffice's 1,048,576 rows, less the header

# ---- cells -----------------------------------------------------------------------------------


def neutralise_cell(value: str) -> str:
    """Prefix a formula-looking cell with "'" so a spreadsheet shows it as text.

    A value already starting with "'" gets one more, so `restore_cell` can undo this
    exactly for every string.
    """
    return ESCAPE + value if value and value[0] in NEEDS_ESCAPE else value


def restore_cell(value: str) -> str:
    """The exact inverse of `neutralise_cell`: drop one leading "'"."""
    return value[1:] if value.startswith(ESCAPE) else value


def cell_text(value: Any) -> str:
    """A value as a neutralised CSV cell; non-text source values spelled the way HubSpot takes them."""
    if isinstance(value, str):
        return ESCAPE + value if value and value[0] in NEEDS_ESCAPE else value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return neutralise_cell(str(int(value)))  # HubSpot's numbers carry no ".0"
    if isinstance(value, int | float):
        return neutralise_cell(str(value))  # "-5"
    return neutralise_cell(json.dumps(value, ensure_ascii=False))
