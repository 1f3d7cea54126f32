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

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from wave_probe import Probe

pytestmark = [pytest.mark.verilator]

ROOT = Path(__file__).resolve().parents[2]


def _make(folder: Path, *args: str) -> subprocess.CompletedProcess:
    from fkhw.rtlgen.sim import compiler_cache_env
    from fkhw.rtlgen.tools import tool_env

    # the suite's compiler cache in front of g++ (Verilator's OBJCACHE), as for fkhw's own builds: it serves
    # a C++ file only for the same preprocessed input, so the simulator is the one a user's make builds
    env = {**os.environ, **compiler_cache_env(tool_env()["PATH"])}
    return subprocess.run(["make", "-s", "SIM=verilator", "MODEL=digits", f"PY={sys.executable}", *args],
                          cwd=folder, capture_output=True, text=True, timeout=1500, env=env)


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


def _changing_site(model, x) -> int:
    """The first parameter bit whose upset changes an output of the rows ``x`` (integer engine)."""
    from fkhw.faults.sites import SiteSpace, flip
    from fkhw.model import engine

    space, gold = SiteSpace.of(model), engine.forward(model, x)
    return next(s for s in range(space.n_sites) if not np.array_equal(engine.forward(flip(model, space, s), x), gold))


def test_make_waves_writes_the_replay_waveform_with_its_markers(tmp_path):
    """``make WAVES=1 SITES=S`` writes the testbench's own waveform (the one
    `fkhw replay --waves` writes): read back with pywellen, the upset marker
    is high right after edge 0 of the upset's frame, the site's register
    flips its Verilog bit then, and out_differs is high in exactly the
    window slots whose output the integer engine says the upset changes."""
    from fkhw.faults.sites import flip
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.levels.rtl import encoder_inputs, rtl_register
    from fkhw.model import engine
    from fkhw.model.bundle import load_model
    from fkhw.rtlgen.emit import generate

    rows = 8
    model = load_model("digits").ir
    x = encoder_inputs(model)[:rows]  # what rtl_check streams
    site = _changing_site(model, x)
    folder = tmp_path / "rtl_tb"
    folder.mkdir()
    shutil.copy(ROOT / "rtl_tb" / "Makefile", folder / "Makefile")
    r = _make(folder, f"ROWS={rows}", "WAVES=1", f"SITES={site}")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "fault-free 8 rows and 1 upsets: RTL == integer engine" in r.stdout + r.stderr
    probe = Probe(folder / "fkhw_waves.vcd")
    meta = generate(model).meta
    reg = rtl_register(FlipFlopSpace.from_meta(model, meta), meta, site)
    marks = probe.upsets()
    # frame 0 is fault-free, frame 1 upsets the site at its cycle 0 (rtl_check)
    assert [(f, c) for _, f, c in marks] == [(1, 0)], marks
    t = marks[0][0]
    assert probe.before("fkhw_tb." + reg.name, t) ^ probe.at("fkhw_tb." + reg.name, t) == 1 << reg.bit
    want = engine.forward(flip(model, FlipFlopSpace.of(model).sites, site), x).reshape(rows, -1)
    changed = np.flatnonzero((want != engine.forward(model, x).reshape(rows, -1)).any(axis=1)).tolist()
    seen = sorted(probe.differing(1, rows))
    assert changed and seen == changed


def test_the_makefile_verilates_with_the_options_of_fkhw_rtl_level():
    """rtl_tb/Makefile builds the testbench a user runs by hand with every
    Verilator option and make variable the RTL level builds with
    (fkhw.rtlgen.sim), so both run the same model the same way."""
    import shlex

    from fkhw.rtlgen.sim import BUILD_ARGS, MAKE_VARS

    text = (ROOT / "rtl_tb" / "Makefile").read_text().replace("\\\n", " ")
    compile_args = " ".join(ln.split("+=", 1)[1] for ln in text.splitlines() if ln.startswith("COMPILE_ARGS +="))
    build_vars = " ".join(ln.split("+=", 1)[1] for ln in text.splitlines() if ln.startswith("BUILD_ARGS +="))
    args = shlex.split(compile_args)
    assert [a for a in BUILD_ARGS if a not in args] == [], "rtl_tb/Makefile lacks these Verilator arguments"
    # an option and its value (--output-split-cfuncs 500) stand side by side in both
    valued = [(opt, value) for opt, value in zip(BUILD_ARGS, BUILD_ARGS[1:]) if not value.startswith("-")]
    assert [p for p in valued if p not in set(zip(args, args[1:]))] == [], "rtl_tb/Makefile gives other values"
    assert set(shlex.split(build_vars)) == set(MAKE_VARS.split())
