"""cocotb tests for fkhw_encoder inside hdl/fkhw_tb.v (this folder: fkhw/rtlgen/tb, shipped with fkhw).

``run_job``: driven by ``FKHW_RTL_JOB`` (a job.json written by
fkhw.rtlgen.sim.run_frames): start the HDL sequencer, then make each upset
and scrub at its cycle, right after that rising edge: an upset reads the
flip-flops' register, inverts the bit and writes it back (a deposit through
VPI, ``dut.u_enc.<regfile>.mem[i].value = ...``, ``u_stage<k>.q``...: an SEU,
not a changed weight file); a scrub writes the golden value. One Timer per
cycle that has deposits. The HDL compares every output slot with the
fault-free one and records the differences.

``encoder_vs_engine`` (``make SIM=verilator`` in the repository's rtl_tb/, whose Makefile runs these files): with no job file,
prepare a job from the model (``FKHW_MODEL``, default econt-bol): the first
``FKHW_ROWS`` (default 256) vendored rows, a fault-free frame, then a few
upsets; check every output against the integer engine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.triggers import RisingEdge, Timer

CLOCK_NS = 10
INJECT_OFFSET_NS = 2  # after the upset edge, well before the falling edge


def _target(dut, inst: str, reg: str, idx: int):
    """``u_enc.<inst>.<reg>[idx]``; inst "": a net of the top (a synthesised
    netlist's register, fkhw.rtlgen.netlist), idx -1: no index."""
    h = getattr(dut.u_enc, inst) if inst else dut.u_enc
    h = getattr(h, reg)
    return h if idx < 0 else h[idx]


async def _run(dut, job: dict) -> dict:
    used = set(job["target"])  # the others are upset by the HDL (fkhw_events.hex)
    handles = [_target(dut, *t) if k in used else None for k, t in enumerate(job["targets"])]
    golden, check = job["golden"], job["check"]
    cycles, targets, bits = job["cycle"], job["target"], job["bit"]
    period = int(job["period"])
    dut.n_vec.value = int(job["n_vec"])
    dut.period.value = period
    dut.n_frames.value = int(job["n_frames"])
    dut.n_ev.value = int(job.get("n_ev", 0))
    dut.n_pev.value = int(job.get("n_pev", 0))
    dut.clear_err.value = int(bool(job.get("clear_err", False)))
    dut.start.value = 1
    await RisingEdge(dut.running)  # one edge before run edge 0
    progress = job.get("progress")
    ticker = cocotb.start_soon(_report_progress(progress, period, int(job["n_frames"]))) if progress else None
    # what each parameter register should hold (golden, then the deposits
    # made since its last restore): every read is checked on the bits of
    # ``check`` (a replica's unprotected bits are not loaded), so a restore
    # that went missing or hit the wrong register is seen
    expect = list(golden)
    state_err = 0
    now, i, n = 0, 0, len(cycles)
    while i < n:
        c = cycles[i]
        t = (c + 1) * CLOCK_NS + INJECT_OFFSET_NS
        await Timer(t - now, unit="ns")
        now = t
        masks, restores = {}, []
        while i < n and cycles[i] == c:
            b = bits[i]
            if b >= 0:
                masks[targets[i]] = masks.get(targets[i], 0) ^ (1 << b)
            else:
                restores.append(targets[i])
            i += 1
        for k, m in masks.items():
            h = handles[k]
            v = _read(h)
            if (v ^ expect[k]) & check[k]:
                state_err += 1
            expect[k] ^= m
            h.value = v ^ m  # the upset: read, invert, write
        for k in restores:
            handles[k].value = golden[k]  # the scrub
            expect[k] = golden[k]
    if not int(dut.done.value):
        await RisingEdge(dut.done)
    if ticker is not None:
        ticker.cancel()
    await Timer(CLOCK_NS, unit="ns")
    # every frame ends with its registers restored
    state_err += sum(1 for k, h in enumerate(handles) if h is not None and (_read(h) ^ golden[k]) & check[k])
    state_err += int(dut.state_err.value)
    result = {"n_diff": int(dut.n_diff.value), "state_err": state_err}
    if progress:
        Path(progress).write_text(str(int(job["n_frames"])))
    return result


async def _report_progress(path: str, period: int, n_frames: int, every: int = 256) -> None:
    """Frames done, every ``every`` frames of simulated time (for the caller's progress)."""
    done = 0
    while done < n_frames:
        await Timer(every * period * CLOCK_NS, unit="ns")
        done = min(n_frames, done + every)
        Path(path).write_text(str(done))


def _read(h) -> int:
    v = h.value
    return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)


@cocotb.test(skip=os.environ.get("FKHW_RTL_JOB") is None)
async def run_job(dut):
    job = json.loads(Path(os.environ["FKHW_RTL_JOB"]).read_text())
    result = await _run(dut, job)
    Path(job["result"]).write_text(json.dumps(result))


@cocotb.test(skip=os.environ.get("FKHW_RTL_JOB") is not None)
async def encoder_vs_engine(dut):
    """Self-contained check used by the Makefile flow."""
    import numpy as np

    import dataclasses

    from fkhw.model import engine
    from fkhw.faults.space import FaultSet
    from fkhw.levels.rtl import design_space, encoder_inputs, fault_deposits, frame_period, observed_from, param_codes
    from fkhw.model.bundle import load_model
    from fkhw.rtlgen.sim import _job_events, _write_common, FrameOutputs, unpack_hex
    from fkhw.faults.sites import flip

    model = load_model(os.environ.get("FKHW_MODEL", "econt-bol")).ir
    rows = int(os.environ.get("FKHW_ROWS", "256"))
    meta = json.loads(Path(os.environ.get("FKHW_RTL_DIR", "."), "fkhw_encoder.json").read_text())
    x = encoder_inputs(model)[:rows]
    gold = engine.forward(model, x)
    space = design_space(model, meta)
    sites = np.linspace(0, space.sites.n_sites - 1, 16).astype(int)
    work = Path.cwd()
    _write_common(work, meta, x, gold, param_codes(model))
    # frame 0: no upset; then one upset per site at cycle 0
    fs = FaultSet.single("seu", np.arange(sites.size), sites)
    period = frame_period(fs, space, rows)
    dep = fault_deposits(fs, space, model, meta, period)
    dep = dataclasses.replace(dep, frame=dep.frame + 1)
    job = {"n_vec": rows, "period": period, "n_frames": 1 + len(sites), "targets": dep.targets,
           "golden": dep.golden, "check": dep.check, **_job_events(dep, 0, 1 + len(sites), period), "progress": None}
    result = await _run(dut, job)
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
