"""A self-contained cocotb check of the generated encoder against the integer
engine: what ``make SIM=verilator`` in the repository's ``rtl_tb/`` runs.

With the RTL of ``FKHW_MODEL`` (default econt-bol) in ``FKHW_RTL_DIR``, it
simulates the first ``FKHW_ROWS`` (default 256) of the model's inputs: a
fault-free frame, then one upset at cycle 0 of each of 16 parameter sites
spread over the design (or of the sites ``FKHW_SITES`` lists, comma
separated: ``make SITES=395``), and checks every output word against the
integer engine (the fault-free model, and the model with that bit flipped). It
prepares the job the way :class:`fkhw.levels.rtl.RtlLevel` does and runs it
with the testbench's own :func:`fkhw.rtlgen.tb.test_encoder.drive`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cocotb
import numpy as np

from fkhw.faults.sites import flip
from fkhw.faults.space import FaultSet
from fkhw.levels.rtl import design_space, encoder_inputs, fault_deposits, frame_period, observed_from, param_codes
from fkhw.model import engine
from fkhw.model.bundle import load_model
from fkhw.rtlgen.sim import FrameOutputs, job_events, unpack_hex, write_common
from fkhw.rtlgen.tb.test_encoder import drive

N_UPSETS = 16


def _positive_env(name: str, default: int) -> int:
    text = os.environ.get(name, str(default))
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name}={text!r}: give a whole number >= 1")
    return int(text)


def _sites(n_sites: int) -> np.ndarray:
    """FKHW_SITES (comma separated site ids), or N_UPSETS sites spread over the design."""
    text = os.environ.get("FKHW_SITES", "").strip()
    if not text:
        return np.linspace(0, n_sites - 1, N_UPSETS).astype(int)
    parts = text.split(",")
    if not all(p.strip().isdigit() and int(p) < n_sites for p in parts):
        raise ValueError(f"FKHW_SITES={text!r}: give site ids 0..{n_sites - 1}, comma separated")
    return np.array([int(p) for p in parts])


@cocotb.test()
async def encoder_vs_engine(dut):
    """Fault-free rows and one upset per sampled site: RTL == integer engine."""
    model = load_model(os.environ.get("FKHW_MODEL", "econt-bol")).ir
    rows = _positive_env("FKHW_ROWS", 256)
    meta = json.loads(Path(os.environ.get("FKHW_RTL_DIR", "."), "fkhw_encoder.json").read_text())
    x = encoder_inputs(model)[:rows]
    rows = x.shape[0]
    gold = engine.forward(model, x)
    space = design_space(model, meta)
    sites = _sites(space.sites.n_sites)
    work = Path.cwd()
    write_common(work, meta, x, gold, param_codes(model))
    # frame 0: no upset; then one upset per site at cycle 0
    fs = FaultSet.single("seu", np.arange(sites.size), sites)
    period = frame_period(fs, space, rows)
    dep = fault_deposits(fs, space, model, meta, period)
    dep = dataclasses.replace(dep, frame=dep.frame + 1)
    job = {"n_vec": rows, "period": period, "n_frames": 1 + len(sites), "targets": dep.targets,
           "golden": dep.golden, "check": dep.check, **job_events(dep, 0, 1 + len(sites), period), "progress": None}
    result = await drive(dut, job)
    assert result["state_err"] == 0, f"{result['state_err']} register reads differ from what the deposits left"
    out = meta["ports"]["out_data"]
    tok = np.array((work / "fkhw_diff.txt").read_text().split(), dtype=object).reshape(-1, 4)
    assert tok.shape[0] == result["n_diff"]
    rec = FrameOutputs(tok[:, 0].astype(np.int64), tok[:, 1].astype(np.int64), tok[:, 2].astype(np.int64) == 1,
                       unpack_hex(tok[:, 3].tolist(), out["elements"], out["element_bits"], out["signed"]), None)
    obs = observed_from(rec, gold, 1 + len(sites))
    assert not obs.lost.any() and not obs.extra.any(), "valid flags differ from a fault-free encoder"
    got = obs.latent
    assert np.array_equal(got[0], gold), f"fault-free: {int((got[0] != gold).any(1).sum())} of {rows} rows differ"
    for k, s in enumerate(sites):
        want = engine.forward(flip(model, space.sites, int(s)), x)
        assert np.array_equal(got[k + 1], want), f"site {s}: RTL differs from the engine"
    dut._log.info("fault-free %d rows and %d upsets: RTL == integer engine", rows, len(sites))
