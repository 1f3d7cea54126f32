"""``rtl_tb/Makefile``: cocotb's own Makefile flow, as its README tells a user
to run it (``make SIM=verilator``), builds the packaged testbench around the
generated encoder and runs ``fkhw.levels.rtl_check``: the fault-free rows and
16 upsets equal the integer engine. A failing cocotb test fails ``make``.

The flow writes ``sim_build/`` and ``results.xml`` beside the Makefile, so
the test runs a copy of it in a temporary folder (with this checkout's
Python), on the shipped digits classifier: the smallest model, a build of
about a minute.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = [pytest.mark.verilator]

ROOT = Path(__file__).resolve().parents[1]


def _make(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "SIM=verilator", "MODEL=digits", f"PY={sys.executable}", *args],
                          cwd=folder, capture_output=True, text=True, timeout=1500)


def test_make_sim_verilator_checks_the_encoder_against_the_engine(tmp_path):
    folder = tmp_path / "rtl_tb"
    folder.mkdir()
    shutil.copy(ROOT / "rtl_tb" / "Makefile", folder / "Makefile")
    r = _make(folder, "ROWS=64")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    cases = ET.parse(folder / "results.xml").getroot().iter("testcase")
    ran = {c.get("name"): [f.tag for f in c if f.tag in ("failure", "error", "skipped")] for c in cases}
    assert ran == {"encoder_vs_engine": []}, ran
    assert "fault-free 64 rows and 16 upsets: RTL == integer engine" in r.stdout + r.stderr

    # the same build with an input the check refuses: cocotb reports the failure and make fails
    r = _make(folder, "ROWS=many")
    assert r.returncode != 0
    assert "FKHW_ROWS='many'" in r.stdout + r.stderr
