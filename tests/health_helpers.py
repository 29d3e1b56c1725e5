"""Reading the health page back: its data fields, cards and links, with the standard
library's HTML parser (an oracle independent of the Jinja2 template that wrote it)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

URL_ATTRS = ("src", "href", "action", "formaction", "poster", "data", "xlink:href", "srcset", "background")


@dataclass
class Page:
    fields: dict[str, list[str]] = field(default_factory=dict)  # data-field -> every data-value
    texts: dict[str, list[str]] = field(default_factory=dict)  # data-field -> every shown text
    cards: dict[str, dict[str, str]] = field(default_factory=dict)  # category -> its data-* attributes
    tags: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)  # every URL-ish attribute value, and every url(...)
    details: list[dict[str, str]] = field(default_factory=list)  # the card tables' data-* attributes
    hidden_counts: list[int] = field(default_factory=list)
    table_rows: dict[str, int] = field(default_factory=dict)  # category -> <tr data-row> in its table
    text: str = ""


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._open: list[str | None] = []  # the data-field of each open <span>
        self._card: str | None = None
        self._chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.page.tags.append(tag)
        for k, v in a.items():
            if k in URL_ATTRS:
                self.page.urls.append(v)
            if k == "style":
                self.page.urls += re.findall(r"url\(([^)]*)\)", v)
        if tag == "article" and "data-category" in a:
            self._card = a["data-category"]
            self.page.cards[self._card] = {k: v for k, v in a.items() if k.startswith("data-")}
            self.page.table_rows[self._card] = 0
        if tag == "details" and "data-rows-total" in a:
            self.page.details.append({k: v for k, v in a.items() if k.startswith("data-")} | {"card": self._card or ""})
        if "data-rows-hidden" in a:
            self.page.hidden_counts.append(int(a["data-rows-hidden"]))
        if tag == "tr" and "data-row" in a and self._card:
            self.page.table_rows[self._card] += 1
        if tag == "span":
            name = a.get("data-field")
            if name is not None:
                self.page.fields.setdefault(name, []).append(a.get("data-value", ""))
                self._chunks = []
            self._open.append(name)

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open:
            name = self._open.pop()
            if name is not None:
                self.page.texts.setdefault(name, []).append("".join(self._chunks).strip())
        if tag == "article":
            self._card = None

    def handle_data(self, data: str) -> None:
        self._chunks.append(data)
        self.page.text += data


def read_page(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    page = reader.page
    for css in re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.S):
        page.urls += re.findall(r"url\(([^)]*)\)", css)
        page.urls += re.findall(r"@import\s+([^;]+);", css)
    return page


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def as_text(value: Any) -> str:
    return "" if value is None else str(value)


# The fields the page must show, each equal to `status --json`.
REQUIRED_FIELDS = (
    "state", "api_calls",
    "rows.total", "rows.upserted", "rows.created", "rows.updated", "rows.failed", "rows.superseded", "rows.pending",
    "usage.calls_24h", "usage.rate_limited_24h", "usage.retries_24h", "usage.rate_limited_total",
    "usage.retries_total",
    "api_calls_by_kind.upsert", "api_calls_by_kind.read", "api_calls_by_kind.associate", "api_calls_by_kind.schema",
)


def assert_numbers_equal_status(page: Page, status: dict[str, Any], *, links: bool) -> None:
    flat = flatten(status)
    required = list(REQUIRED_FIELDS)
    if links:
        required += ["associations.created", "associations.failed", "associations.pending"]
    missing = [f for f in required if f not in page.fields]
    assert not missing, f"the page does not show {missing}"
    for name, values in page.fields.items():
        if name.startswith("funnel.") or name == "paused_reason":
            continue
        assert name in flat, f"the page shows {name}, which status --json has not"
        for value in values:
            assert value == as_text(flat[name]), (name, value, flat[name])
    for name, shown in page.texts.items():
        if name in flat and isinstance(flat[name], int) and not isinstance(flat[name], bool):
            for text in shown:
                assert text.replace(",", "") == str(flat[name]), (name, text, flat[name])
