"""Headless Chromium for the tests that open the health page in a real browser.

Debian's `chromium` package (`.ci/run` installs it when absent). Where it cannot run, a
test skips with the reason on a developer's machine, and fails in CI (CI=true): a browser
test that silently skips in CI proves nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 90


def find_chromium() -> str | None:
    given = os.environ.get("BULKLOAD_CHROMIUM")
    if given:
        return given if Path(given).exists() else shutil.which(given)
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    """The browser's path, or skip (fail in CI) saying why."""
    found = find_chromium()
    if found is None:
        why = ("headless Chromium is not installed (apt-get install -y chromium, or set BULKLOAD_CHROMIUM); "
               ".ci/run installs it")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the browser test: {why}")
        pytest.skip(why)
    return found


def chromium(binary: str, url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once on `url` with a throw-away profile."""
    with tempfile.TemporaryDirectory(prefix="bulkload-chromium-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
               f"--user-data-dir={profile}", *flags, url]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            _cannot(f"{binary} did not run: {e}")
        if done.returncode != 0:
            _cannot(f"{binary} exited {done.returncode}: {done.stderr[-800:]}")
        return done


def _cannot(why: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(why)
    pytest.skip(why)
