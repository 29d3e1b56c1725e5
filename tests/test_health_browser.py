"""The demo job's health page in a real browser (headless Chromium): the DOM it renders
holds the numbers of `status --json` and a card per category with errors, and a
screenshot of it is kept as a test artefact (build/test-artifacts/, or
$BULKLOAD_TEST_ARTIFACTS).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkload import api
from bulkload.demo import run_demo
from bulkload.journal import job_id_of, journals_in
from bulkload.reports import summary, summary_dict
from bulkload.reports.html import write_page
from tests.browser import chromium, require_chromium
from tests.conftest import ROOT
from tests.health_helpers import assert_numbers_equal_status, read_page

ARTIFACTS = Path(os.environ.get("BULKLOAD_TEST_ARTIFACTS") or ROOT / "build" / "test-artifacts")


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The demo run offline, its page written: (the page, the job id)."""
    require_chromium()  # before the demo's run: a skip costs nothing
    job_dir = tmp_path_factory.mktemp("demo") / "jobs"
    state = tmp_path_factory.mktemp("state")
    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(state)
    try:
        assert run_demo(job_dir, keep_running=False, echo=lambda line: None) == 0
        (journal_file,) = journals_in(job_dir)
        with api.open_journal(job_dir, job_id_of(journal_file)) as journal:
            written = write_page(journal)
            job_id = journal.job_id
        yield written.path, job_id
    finally:
        if old is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = old


def test_the_rendered_page_shows_the_status_numbers_and_every_card(demo_page: tuple[Path, str]) -> None:
    binary = require_chromium()
    path, job_id = demo_page
    done = chromium(binary, path.resolve().as_uri(), "--dump-dom")
    dom = done.stdout
    assert "<main>" in dom and "</html>" in dom, dom[:500]
    page = read_page(dom)
    st = api.status(job_id, job_dir=path.parent)
    assert_numbers_equal_status(page, st, links=True)
    with api.open_journal(path.parent, job_id) as journal:
        cards = summary_dict(*summary(journal))
    expected = {c["category"]: c for c in cards["categories"] if c["errors"]}
    assert set(page.cards) == set(expected) and expected
    for category, card in expected.items():
        assert page.cards[category]["data-errors"] == str(card["errors"])
        assert page.cards[category]["data-affected"] == str(card["affectedRows"])
    # What the browser rendered holds no script and asks for nothing over the network.
    assert "script" not in page.tags
    for url in page.urls:
        assert "http:" not in url and "https:" not in url and "//" not in url, url
    assert json.dumps(st["rows"]["total"]) in dom


def test_a_screenshot_of_the_demo_page_is_kept(demo_page: tuple[Path, str]) -> None:
    binary = require_chromium()
    path, _ = demo_page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "health-page.png"
    shot.unlink(missing_ok=True)
    chromium(binary, path.resolve().as_uri(), f"--screenshot={shot}", "--window-size=1280,3000",
             "--force-device-scale-factor=1")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 3000)
    assert len(data) > 20_000  # a page, not a blank window
    print(f"screenshot: {shot}")
