"""The RTL level: the generated Verilog on Verilator, driven by cocotb.

Each site is one *frame* of the HDL testbench (rtl_tb/hdl/fkhw_tb.v): the
encoder streams a pre-upset window, then the N inputs; right after the clock
edge that samples the first of the N inputs, the cocotb test deposits the
flipped value into the weight register's flip-flops (an SEU, not a changed
weight file); the outputs of the N inputs are recorded; after the pipeline
drains the register is scrubbed through the configuration port. Outputs
that left the pipeline before the upset cycle are checked against the
integer engine (an error if any differ).

    level = RtlLevel(load_model("econt-bol").ir, jobs=os.cpu_count())
    out = level.run(sites, x_codes, progress=lambda n: ...)  # (S, N, n_out)

The Verilator model is built once per RTL content hash under
``build/rtl_sim/<key>`` (``FKHW_RTL_BUILD`` moves it) and reused.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from fkhw import engine
from fkhw.model.ir import IntegerModel
from fkhw.rtlgen.emit import RtlDesign, generate
from fkhw.rtlgen.sim import MAX_VECTORS, RtlSimError, SimBuild, build, default_root, run_frames
from fkhw.sites import SiteSpace, tensor_codes

__all__ = ["RtlLevel", "RtlSimError", "encoder_inputs", "param_codes", "injections_for"]


def encoder_inputs(model: IntegerModel, path=None) -> np.ndarray:
    """Input codes of the vendored HGCAL rows (or a CSV): load, normalise,
    8x8 image, input quantizer."""
    from fkhw.data import encoder_input_codes, load_charges

    return encoder_input_codes(load_charges(path), model.input.fmt)


def param_codes(model: IntegerModel) -> np.ndarray:
    """Every parameter code in register-address (= site) order."""
    return np.concatenate([tensor_codes(model, t).astype(np.int64).reshape(-1) for t in SiteSpace.of(model).tensors])


def injections_for(model: IntegerModel, meta: dict, sites) -> list:
    """[regfile instance, index, deposit value, register address] per site:
    the register's bit pattern with the site's bit inverted."""
    space = SiteSpace.of(model)
    tn, idx, bit = space.locate(sites)
    codes = param_codes(model)
    rfs = meta["register_files"]
    out = []
    for t, i, b in zip(tn.tolist(), idx.tolist(), bit.tolist()):
        rf = rfs[t]
        addr = rf["base"] + i
        raw = int(codes[addr]) & ((1 << rf["bits"]) - 1)
        out.append([rf["instance"], i, raw ^ (1 << (rf["bits"] - 1 - b)), addr])
    return out


class RtlLevel:
    """Level protocol on the generated RTL (see module docstring).

    ``jobs``: simulator processes to split the sites over (default: CPU
    count). ``timeout``: seconds before a simulation is declared hung and
    killed (default: scaled to the work). ``n_pre``: pre-upset vectors per
    frame (default LATENCY + 5, so LATENCY... checked outputs per frame).
    """

    name = "rtl"

    def __init__(self, model, *, jobs: int | None = None, timeout: float | None = None,
                 build_root: Path | None = None, n_pre: int | None = None, log=None, work_dir: Path | None = None,
                 design: RtlDesign | None = None):
        self.model: IntegerModel = model.ir if hasattr(model, "ir") else model
        # refuses an unsupported IR here; ``design``: another variant of the
        # same model's encoder (e.g. the hardened one, fkhw.tmr.harden)
        self.design: RtlDesign = design if design is not None else generate(self.model)
        self.meta = self.design.meta
        self.jobs = int(jobs) if jobs else (os.cpu_count() or 1)
        self.timeout = timeout
        self.root = Path(build_root) if build_root is not None else default_root()
        self.latency = int(self.meta["latency"])
        self.n_pre = int(n_pre) if n_pre is not None else self.latency + 5
        self.log = log
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self._build: SimBuild | None = None
        self.stats: dict = {}

    @classmethod
    def for_bundle(cls, bundle, jobs: int | None = None) -> "RtlLevel":
        """The level a campaign uses: parallelism comes from the campaign's
        executor (Dask workers), so one simulator process per level."""
        return cls(bundle.ir, jobs=jobs or 1)

    def lower(self, injections: list) -> list:
        """RTL injections as this level's device takes them: unchanged for
        the RTL, renamed register nets for a synthesised netlist."""
        if self.design.flip_flops is not None:
            from fkhw.rtlgen.netlist import lower_injections

            bits = np.concatenate([np.full(rf["count"], rf["bits"]) for rf in self.meta["register_files"]])
            raw = param_codes(self.model) & ((1 << bits) - 1)  # register bit patterns
            return lower_injections(injections, raw, self.design.flip_flops)
        return injections

    # --- build -----------------------------------------------------------
    def build(self) -> SimBuild:
        if self._build is None:
            rtl_dir = self.root / "rtl" / self.meta["rtl_digest"]
            if not (rtl_dir / "fkhw_encoder.json").is_file():
                self.root.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(dir=self.root, prefix="rtl-"))
                self.design.write(tmp)
                rtl_dir.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.replace(tmp, rtl_dir)
                except OSError:  # another process won the race
                    shutil.rmtree(tmp, ignore_errors=True)
            sb = build(rtl_dir, self.root, log=self.log)
            # a shared build may come from another model with the same RTL
            # (only weights differ): use this model's own metadata
            self._build = dataclasses.replace(sb, meta=self.meta)
            self.stats["build_seconds"] = self._build.seconds
        return self._build

    # --- Level protocol ----------------------------------------------------
    def _check_inputs(self, inputs) -> np.ndarray:
        x = np.asarray(inputs, dtype=np.int64)
        if x.shape[1:] != tuple(self.model.input.shape):
            raise ValueError(f"input shape {x.shape[1:]} does not match model input {tuple(self.model.input.shape)}")
        return x

    def _work(self) -> tempfile.TemporaryDirectory | None:
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            return None
        (self.root / "work").mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(dir=self.root / "work", prefix="run-")

    def golden(self, inputs) -> np.ndarray:
        """(N, n_out) fault-free RTL outputs (not compared here: that is the
        caller's check; pre-upset mismatches are kept in ``stats``)."""
        x = self._check_inputs(inputs)
        sb = self.build()
        outs, pre_err = [], 0
        for lo in range(0, x.shape[0], MAX_VECTORS):
            xc = x[lo:lo + MAX_VECTORS]
            gold = engine.forward(self.model, xc)
            tmp = self._work()
            work = Path(tmp.name) if tmp else self.work_dir
            try:
                rec, err = run_frames(sb, work, xc, gold, param_codes(self.model), [], self.n_pre, jobs=1,
                                      timeout=self.timeout)
            finally:
                if tmp:
                    tmp.cleanup()
            outs.append(rec[0, -xc.shape[0]:])
            pre_err += err
        self.stats["golden_pre_err"] = pre_err
        return np.concatenate(outs, axis=0)

    def run_faults(self, fs, inputs, progress=None):
        """What each fault of ``fs`` does to the N window inputs (fkhw.faults).
        For now: one parameter upset at cycle 0 per fault."""
        from fkhw.faults import FaultError, Observed

        if fs.single_param_sites is None:
            raise FaultError(f"the {self.name} level runs single parameter upsets at cycle 0 only, not {fs.kind}")
        return Observed.clean(self.run(fs.single_param_sites, inputs, progress=progress))

    def run(self, sites, inputs, progress=None) -> np.ndarray:
        """(len(sites), N, n_out) outputs with each site's upset present.

        Raises RtlSimError if any output before an upset cycle differs from
        the integer engine (a broken scrub or an upset that leaked)."""
        x = self._check_inputs(inputs)
        space = SiteSpace.of(self.model)
        sites = space.check(sites)
        if x.shape[0] > MAX_VECTORS:
            raise RtlSimError(f"{x.shape[0]} inputs per site: the RTL testbench streams at most {MAX_VECTORS}")
        n_out = int(self.meta["ports"]["out_data"]["elements"])
        if sites.size == 0:
            return np.zeros((0, x.shape[0], n_out), dtype=np.int64)
        sb = self.build()
        gold = engine.forward(self.model, x)
        inj = self.lower(injections_for(self.model, self.meta, sites))
        tmp = self._work()
        work = Path(tmp.name) if tmp else self.work_dir
        t0 = time.time()
        try:
            rec, pre_err = run_frames(sb, work, x, gold, param_codes(self.model), inj, self.n_pre,
                                      jobs=self.jobs, timeout=self.timeout, progress=progress,
                                      hang=getattr(self, "_hang", False))
        finally:
            if tmp:
                tmp.cleanup()
        self.stats.update(sim_seconds=time.time() - t0, injections=int(sites.size), pre_err=pre_err)
        if pre_err:
            raise RtlSimError(f"{pre_err} output(s) before an upset cycle differ from the integer engine: "
                              "the RTL or its scrubbing is broken")
        return rec[:, -x.shape[0]:, :].astype(np.int64)


def netlist_design(model: IntegerModel, protect=None, log=None) -> RtlDesign:
    """The Yosys gate-level netlist of the plain (or, with ``protect``, the
    hardened) encoder, cached by content hash (fkhw.rtlgen.netlist)."""
    from fkhw.rtlgen.netlist import synthesize_netlist

    return synthesize_netlist(generate(model, protect=protect), progress=log)


def netlist_level(model: IntegerModel, jobs: int = 1, log=None) -> RtlLevel:
    """The RTL level on the synthesised netlist: the same testbench, the
    same frames, upsets deposited into the netlist's flip-flops."""
    lv = RtlLevel(model, jobs=jobs, design=netlist_design(model, log=log), log=log)
    lv.name = "netlist"
    return lv
