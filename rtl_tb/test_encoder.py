"""cocotb tests for fkhw_encoder inside rtl_tb/hdl/fkhw_tb.v.

``run_job``: driven by ``FKHW_RTL_JOB`` (a job.json written by
fkhw.rtlgen.sim / fkhw.levels.rtl): start the HDL sequencer, then for each
frame deposit one flipped weight into its flip-flops at the upset cycle
(``dut.u_enc.<regfile>.mem[i].value = ...``: an SEU, not a changed weight
file) and tell the HDL which register to scrub; one Timer per frame. The HDL
compares pre-upset outputs with the golden ones and records the rest.

``encoder_vs_engine`` (``make SIM=verilator`` in rtl_tb/): with no job file,
prepare a job from the model (``FKHW_MODEL``, default econt-bol): the first
``FKHW_ROWS`` (default 256) vendored rows, a fault-free frame, then a few
injections; check every output against the integer engine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.triggers import RisingEdge, Timer

CLOCK_NS = 10
INJECT_OFFSET_NS = 2  # after the upset edge, well before the falling edge


def _mems(inj) -> list:
    """(memory, value) pairs an injection deposits: [inst, idx, val, addr] ->
    the register file's ``mem`` gets val; a fifth element lists replica
    memories of a hardened register file (``mem``, ``mem_b``, ``mem_c``),
    each of which gets val (two names: a double upset), or, for a netlist,
    [net, value] pairs (fkhw.rtlgen.netlist.lower_injections)."""
    val = inj[2]
    return [(m, val) if isinstance(m, str) else (m[0], m[1]) for m in (inj[4] if len(inj) > 4 else ["mem"])]


def _target(dut, inst: str, mem: str, idx):
    """The register an upset deposits into: ``u_enc.<inst>.<mem>[idx]`` in
    the RTL; in a synthesised netlist (fkhw.rtlgen.netlist) the register is
    a net of the top, ``u_enc.<mem>``: inst is "" and idx None."""
    h = getattr(dut.u_enc, inst) if inst else dut.u_enc
    h = getattr(h, mem)
    return h if idx is None else h[idx]


async def _run(dut, job: dict) -> dict:
    injections = job["injections"]
    regs = {}
    for inj in injections:
        inst, idx = inj[0], inj[1]
        for mem, _ in _mems(inj):
            if inst is not None and (inst, mem, idx) not in regs:
                regs[inst, mem, idx] = _target(dut, inst, mem, idx)
    dut.n_vec.value = int(job["n_vec"])
    dut.n_pre.value = int(job["n_pre"])
    dut.n_frames.value = int(job["n_frames"])
    dut.start.value = 1
    if job.get("hang"):
        # test hook for the caller's timeout: wait on something that never comes
        await RisingEdge(dut.done)
        await RisingEdge(dut.done)
    await RisingEdge(dut.inj_pt)
    await Timer(INJECT_OFFSET_NS, unit="ns")
    period = int(dut.frame_len.value) * CLOCK_NS
    progress = job.get("progress")
    for k, inj in enumerate(injections):
        inst, idx, val, addr = inj[:4]
        if inst is not None:
            for mem, v in _mems(inj):
                regs[inst, mem, idx].value = int(v)  # the upset: a deposit on the weight register
        dut.scrub_addr.value = int(addr)  # the HDL rewrites it after the frame
        await Timer(period, unit="ns")
        if progress and (k & 63) == 63:
            Path(progress).write_text(str(k + 1))
    if not int(dut.done.value):
        await RisingEdge(dut.done)
    await Timer(CLOCK_NS, unit="ns")
    result = {"pre_err": int(dut.pre_err.value), "frames": int(dut.frame.value)}
    if progress:
        Path(progress).write_text(str(len(injections)))
    return result


@cocotb.test(skip=os.environ.get("FKHW_RTL_JOB") is None)
async def run_job(dut):
    job = json.loads(Path(os.environ["FKHW_RTL_JOB"]).read_text())
    result = await _run(dut, job)
    Path(job["result"]).write_text(json.dumps(result))


@cocotb.test(skip=os.environ.get("FKHW_RTL_JOB") is not None)
async def encoder_vs_engine(dut):
    """Self-contained check used by the Makefile flow."""
    import numpy as np

    from fkhw import engine
    from fkhw.levels.rtl import encoder_inputs, injections_for, param_codes
    from fkhw.model.bundle import load_model
    from fkhw.rtlgen.sim import _write_common, unpack_hex
    from fkhw.sites import SiteSpace, flip

    model = load_model(os.environ.get("FKHW_MODEL", "econt-bol")).ir
    rows = int(os.environ.get("FKHW_ROWS", "256"))
    meta = json.loads(Path(os.environ.get("FKHW_RTL_DIR", "."), "fkhw_encoder.json").read_text())
    x = encoder_inputs(model)[:rows]
    gold = engine.forward(model, x)
    space = SiteSpace.of(model)
    sites = np.linspace(0, space.n_sites - 1, 16).astype(int)
    work = Path.cwd()
    _write_common(work, meta, x, gold, param_codes(model))
    lat = int(meta["latency"])
    n_pre = lat + 5
    # frame 0: no upset (scrub of register 0 is harmless); then one per site
    inj = injections_for(model, meta, sites)
    job = {"n_vec": rows, "n_pre": n_pre, "n_frames": 1 + len(sites),
           "injections": [[None, 0, 0, 0]] + inj, "progress": None}
    result = await _run(dut, job)
    assert result["pre_err"] == 0, f"{result['pre_err']} pre-upset outputs differ from the integer engine"
    out = meta["ports"]["out_data"]
    lines = (work / "fkhw_out.hex").read_text().split()
    n_rec = rows + lat - 2
    rec = unpack_hex(lines, out["elements"], out["element_bits"], out["signed"]).reshape(-1, n_rec, out["elements"])
    got = rec[:, -rows:]
    assert np.array_equal(got[0], gold), f"fault-free: {int((got[0] != gold).any(1).sum())} of {rows} rows differ"
    for k, s in enumerate(sites):
        want = engine.forward(flip(model, space, int(s)), x)
        assert np.array_equal(got[k + 1], want), f"site {s}: RTL differs from the engine"
    dut._log.info("fault-free %d rows and %d upsets: RTL == integer engine", rows, len(sites))
