"""The cocotb test that runs a simulation job on fkhw_encoder inside hdl/fkhw_tb.v.

``run_job``: driven by ``FKHW_RTL_JOB`` (a job.json written by
fkhw.rtlgen.sim.run_frames): start the HDL sequencer, then make each upset
and scrub at its cycle, right after that rising edge: an upset reads the
flip-flops' register, inverts the bit and writes it back (a deposit through
VPI, ``dut.u_enc.<regfile>.mem[i].value = ...``, ``u_stage<k>.q``...: an SEU,
not a changed weight file); a scrub writes the golden value. One Timer per
cycle that has deposits. The HDL compares every output slot with the
fault-free one and records the differences. :func:`drive` is the whole of
it, for other cocotb tests to reuse (fkhw.levels.rtl_check).
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


async def drive(dut, job: dict) -> dict:
    """Run one job (see the module docstring) and return the HDL's counts."""
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
        # the waveform's markers for this clock (the HDL clears them at the next edge)
        if masks:
            dut.wave_upset.value = 1
        if restores:
            dut.wave_scrub.value = 1
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


@cocotb.test()
async def run_job(dut):
    job = json.loads(Path(os.environ["FKHW_RTL_JOB"]).read_text())
    result = await drive(dut, job)
    Path(job["result"]).write_text(json.dumps(result))


