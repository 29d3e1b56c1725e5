"""A non-editable install carries what the package needs at run time besides its code:
the health page's template (package data, not a module)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_the_wheel_holds_the_health_page_template(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("bulkload-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bulkload/reports/templates/health.html.j2" in names
    shipped = zipfile.ZipFile(wheel).read("bulkload/reports/templates/health.html.j2")
    assert shipped == (ROOT / "bulkload" / "reports" / "templates" / "health.html.j2").read_bytes()
