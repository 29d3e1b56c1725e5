"""The summary cards, modelled on HubSpot's sync-health screen: one card per error category
with its errors, affected rows, top error types with an example message, and how to fix
them; superseded rows are a warning line, not a card.

A row with several problems counts each problem under its type (and its category), so a
card says how many things there are to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bulkload.hubspot.responses import embedded_validations
from bulkload.journal import Journal
from bulkload.taxonomy import Category, ErrorType, category_of, how_to_fix

TOP_TYPES = 3


@dataclass(frozen=True)
class CategoryCard:
    category: str
    errors: int  # current errors (unresolved, most recent per id)
    affected_rows: int  # distinct source rows with a current error
    top: list[tuple[str, int, str]]  # (errorType, count, the most common message), most first
    fixes: dict[str, str]  # every errorType in the card -> how to fix it


def summary(journal: Journal) -> tuple[list[CategoryCard], int]:
    """One card per category, all eight in DESIGN order (empty ones too, so the screen is
    stable), and the number of superseded rows (warnings, not failures)."""
    with journal.snapshot():
        single, multi, samples = journal.card_counts()
        counts: dict[tuple[str, str], int] = {}
        affected = {c.value: 0 for c in Category}
        known = {c.value for c in Category}
        for category, error_type, n in single:
            cat = category if category in known else Category.OTHER.value
            counts[(cat, error_type)] = counts.get((cat, error_type), 0) + n
            affected[cat] += n
        last_row: int | None = None
        cats_of_row: set[str] = set()
        for row, error_type in multi:
            cat = category_of(error_type).value
            counts[(cat, error_type)] = counts.get((cat, error_type), 0) + 1
            if row != last_row:
                for c in cats_of_row:
                    affected[c] += 1
                last_row, cats_of_row = row, set()
            cats_of_row.add(cat)
        for c in cats_of_row:
            affected[c] += 1
        # Failed associations: their rows landed, the association did not (one problem a pair).
        pair_counts, pair_samples = journal.failed_pair_counts()
        for error_type, n, rows in pair_counts:
            key = (Category.ASSOCIATIONS.value, error_type)
            counts[key] = counts.get(key, 0) + n
            affected[Category.ASSOCIATIONS.value] += rows
            samples.setdefault(error_type, pair_samples.get(error_type, ""))
        superseded = journal.superseded_count()
        job_id = journal.job().job_id
    types_of: dict[str, list[tuple[str, int]]] = {c.value: [] for c in Category}
    for (cat, error_type), n in counts.items():
        types_of[cat].append((error_type, n))
    cards = []
    for cat in Category:
        types = sorted(types_of[cat.value], key=lambda t: (-t[1], t[0]))
        cards.append(CategoryCard(
            category=cat.value,
            errors=sum(n for _, n in types),
            affected_rows=affected[cat.value],
            top=[(t, n, samples.get(t, "")) for t, n in types[:TOP_TYPES]],
            fixes={t: how_to_fix(t, job_id) for t, _ in types},
        ))
    return cards, superseded


def summary_dict(cards: Sequence[CategoryCard], superseded: int) -> dict[str, Any]:
    """The cards as JSON (`report --summary --json`)."""
    return {
        "categories": [
            {
                "category": c.category,
                "errors": c.errors,
                "affectedRows": c.affected_rows,
                "top": [{"errorType": t, "count": n, "sampleMessage": m} for t, n, m in c.top],
                "howToFix": c.fixes,
            }
            for c in cards
        ],
        "errors": sum(c.errors for c in cards),
        "warnings": {ErrorType.DUPLICATE_ID_IN_SOURCE.value: superseded},
    }


def readable_message(message: str) -> str:
    """HubSpot's "Property values were not valid: [{...}]" as the sentence inside it.

    The report keeps HubSpot's message as it came; the cards show what a person reads.
    """
    inner = [str(v["message"]) for v in embedded_validations(message) if isinstance(v.get("message"), str)]
    return "; ".join(inner) if inner else message


def _printable(text: str, width: int = 100) -> str:
    """Messages quote source values: no control characters (escape sequences) reach a terminal."""
    clean = "".join(ch if ch.isprintable() else " " for ch in readable_message(text))
    return clean if len(clean) <= width else clean[: width - 1] + "…"


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def render_summary(cards: Sequence[CategoryCard], superseded: int) -> str:
    """The cards as text: one per category with errors, a line for the rest, the superseded line."""
    with_errors = [c for c in cards if c.errors]
    lines: list[str] = []
    if with_errors:
        lines.append("Failed rows by category (current errors, the most recent per id):")
        for c in with_errors:
            lines.append(f"  {c.category}: {_n(c.errors, 'error')}, {_n(c.affected_rows, 'row')} affected")
            for error_type, n, message in c.top:
                lines.append(f"    {error_type} ×{n:,}" + (f'  e.g. "{_printable(message)}"' if message else ""))
                lines.append(f"      fix: {c.fixes.get(error_type) or how_to_fix(error_type)}")
            more = len(c.fixes) - len(c.top)
            if more > 0:
                lines.append(f"    … and {more} more error type{'s' if more > 1 else ''} (see the report)")
        empty = [c.category for c in cards if not c.errors]
        if empty:
            lines.append(f"  No errors: {', '.join(empty)}")
    else:
        lines.append("No failed rows.")
    if superseded:
        lines.append(
            f"Warnings, not failures: {superseded:,} superseded row{'s' if superseded != 1 else ''}"
            f" ({ErrorType.DUPLICATE_ID_IN_SOURCE.value}): {how_to_fix(ErrorType.DUPLICATE_ID_IN_SOURCE)}"
        )
    return "\n".join(lines)
