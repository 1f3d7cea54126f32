"""The RTL level: the generated Verilog on Verilator, driven by cocotb.

Each fault is one *frame* of the HDL testbench (fkhw/rtlgen/tb/hdl/fkhw_tb.v): the
encoder streams the N window inputs at one per clock, then drain slots;
each upset of the fault is a deposit into its flip-flops right after rising
edge ``cycle`` of the frame (fkhw.faults.space: edge 0 samples window vector 0):
cocotb reads the register (a parameter register ``u_enc.<regfile>.mem[i]``,
a replica ``mem_b``/``mem_c``, a pipeline register ``u_enc.u_stage<k>.q``
or its valid flag ``q_valid``), inverts the bit and writes it back. The
scrub writes the golden value back into every parameter (and replica)
register the frame touched, at the fault's scrub cycle and always at the
frame's last cycle, so the next frame starts clean. Frames follow each other
back to back: only the pipeline holds two frames at once.

The HDL compares every output slot with the fault-free one (the integer
engine's output; valid 1 in window slots, 0 in drain slots) and writes only
the slots that differ; a slot that differs where the fault cannot reach
(fkhw.faults.space.touched) is an error (a broken scrub or a deposit that leaked).

    level = RtlLevel(load_model("econt-bol").ir, jobs=os.cpu_count())
    obs = level.run_faults(fault_set, x_codes, progress=lambda n: ...)  # fkhw.faults.space.Observed
    out = level.run(sites, x_codes)  # (S, N, n_out): one parameter upset per site at cycle 0

The Verilator model is built once per RTL content hash under
``~/.cache/fkhw/rtl_sim/<key>`` (fkhw.host.cachedirs; ``FKHW_RTL_BUILD`` moves it) and reused; a second
build, with the pipeline registers public, runs fault sets that upset them.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from fkhw.model import engine
from fkhw.faults.space import FaultError, FaultSet, FlipFlopSpace, Observed, check_fault_set
from fkhw.model.ir import IntegerModel
from fkhw.rtlgen.emit import RtlDesign, generate
from fkhw.rtlgen.sim import MAX_VECTORS, Deposits, FrameOutputs, RtlSimError, SimBuild, build, default_root, run_frames
from fkhw.faults.sites import SiteSpace, tensor_codes

__all__ = ["RtlLevel", "RtlSimError", "RtlRegister", "encoder_inputs", "param_codes", "fault_deposits", "frame_period",
           "rtl_register"]


def encoder_inputs(model: IntegerModel, path=None) -> np.ndarray:
    """Input codes of the vendored HGCAL rows (or a CSV): load, normalise,
    8x8 image, input quantizer."""
    from fkhw.model.data import encoder_input_codes, load_charges

    return encoder_input_codes(load_charges(path), model.input.fmt)


def param_codes(model: IntegerModel) -> np.ndarray:
    """Every parameter code in register-address (= site) order."""
    return np.concatenate([tensor_codes(model, t).astype(np.int64).reshape(-1) for t in SiteSpace.of(model).tensors])


def design_space(model: IntegerModel, meta: dict) -> FlipFlopSpace:
    """The flip-flop space of a design (its replicas when it is hardened)."""
    protect = ([e["site"] for e in meta["tmr"]["sites"]] + list(meta["tmr"].get("flip_flops", []))
               if "tmr" in meta else None)
    refresh = bool(meta.get("tmr", {}).get("refresh", False))
    return FlipFlopSpace.from_meta(model, meta, protect, refresh)


def frame_period(fs: FaultSet, space: FlipFlopSpace, n_vectors: int) -> int:
    """Clocks per frame. Window slot N-1 reads a parameter of the MAC layer
    fed by stage k until edge N+k, so the restore at the frame's last cycle
    (right after edge period-1) needs period >= N + kmax + 1; the next
    frame's upsets at cycles < k then reach only this frame's drain slots,
    where a parameter changes nothing observable. So parameter-only sets run
    N + kmax + 1 clocks (or up to their latest upset); sets that upset
    pipeline or valid flip-flops keep all LATENCY drain slots (a valid upset
    there is an extra output)."""
    if not fs.ff.size or (space.register_tensor(fs.ff) < 0).any():  # pipeline, valid (or their replicas)
        return n_vectors + space.latency
    kmax = int(space.tensor_stages.max())
    return int(max(n_vectors + kmax + 1, int(fs.cycle.max()) + 1))


@dataclasses.dataclass(frozen=True)
class RtlRegister:
    """Where one flip-flop of fkhw.faults.space sits in the generated RTL:
    Verilog bit ``bit`` of ``u_enc.<instance>.<register>[index]`` (index -1:
    a register without one)."""

    instance: str  # rf_<layer>_<tensor> (a register file), u_stage<k> (a pipeline stage)
    register: str  # mem, mem_b, mem_c (replicas), mem_chk (check bits); q, q_valid; data_<a|b|c>, valid_<a|b|c>
    #                (a triplicated stage)
    index: int
    bit: int

    @property
    def name(self) -> str:
        """The hierarchical name under the testbench (fkhw_tb.u_enc...)."""
        return f"u_enc.{self.instance}.{self.register}" + (f"[{self.index}]" if self.index >= 0 else "")


def rtl_register(space: FlipFlopSpace, meta: dict, ff: int) -> RtlRegister:
    """The register and Verilog bit that hold flip-flop ``ff`` of a design
    (its ``meta``): parameter bit b of register i of a register file is
    Verilog bit bits-1-b of ``mem[i]`` (its replicas: ``mem_b``, ``mem_c``);
    bit b of element e of a stage is bit e*width + width-1-b of
    ``u_stage<k>.q`` (a triplicated stage: ``data_<replica>``), its valid
    flag ``q_valid`` (``valid_<replica>``); check bit j of register i of a
    SEC-DED design is Verilog bit r-1-j of ``mem_chk[i]`` (word i)."""
    ff = int(ff)
    cls = str(space.classes([ff])[0])
    if cls == "check":
        tn, word, j = (int(v[0]) for v in space.check_location([ff]))
        return RtlRegister(meta["register_files"][tn]["instance"], "mem_chk", word,
                           space.code_of(tn).check_bits - 1 - j)
    b_ff = int(space.base([ff])[0])
    letter = space.replica_site(ff)[1] if cls == "replica" else "a"
    if b_ff < space.sites.n_sites:  # a parameter bit or one of its replicas
        tn, idx, bit = (int(v[0]) for v in space.sites.locate(np.array([b_ff])))
        rf = meta["register_files"][tn]
        return RtlRegister(rf["instance"], "mem" if cls == "param" else f"mem_{letter}", idx, rf["bits"] - 1 - bit)
    if b_ff == space.tmr_err_flag:
        raise FaultError(f"flip-flop {ff} is the tmr_err flag, not a register of the datapath")
    st = space.stage_of(b_ff)
    tripled = any(s["stage"] == st.stage and s.get("module") == "fkhw_pipe_tmr" for s in meta["stages"])
    if b_ff < space.first_control:  # a pipeline data bit
        _, e, b = space.pipeline_location(b_ff)
        return RtlRegister(f"u_stage{st.stage}", f"data_{letter}" if tripled else "q", -1,
                           e * st.width + st.width - 1 - b)
    return RtlRegister(f"u_stage{st.stage}", f"valid_{letter}" if tripled else "q_valid", -1, 0)


def _replica_bits(meta: dict) -> dict:
    """(register file, register) -> the mask of its protected bits: the only
    bits replicas B and C hold."""
    rep_bits = {}
    for e in meta.get("tmr", {}).get("sites", []):
        rep_bits[e["instance"], e["index"]] = rep_bits.get((e["instance"], e["index"]), 0) | (1 << e["bit"])
    return rep_bits


def _upset_classes(space: FlipFlopSpace, ffs: np.ndarray) -> tuple:
    """The class of each flip-flop as its deposit sees it (a replica of a
    pipeline or valid flip-flop is upset like one, in its replica register),
    and its base flip-flop."""
    cls = space.classes(ffs) if ffs.size else np.array([], dtype=object)
    base = space.base(ffs)
    cls = np.where((cls == "replica") & (base >= space.sites.n_sites),
                   np.where(base >= space.first_control, "control", "pipeline"), cls).astype(object)
    return cls, base


def _golden_register(space: FlipFlopSpace, codes: np.ndarray, rf: dict, r, ff: int, rep_bits: dict) -> tuple:
    """(golden value, bits that exist) of the register holding parameter,
    replica or check flip-flop ``ff`` (``r``: its fkhw.levels.registers
    location): a check register holds its word's check bits as the encoder
    wrote them; replicas B and C hold the protected bits alone."""
    if r.register == "mem_chk":
        tn = int(space.check_location([ff])[0][0])
        code, words = space.code_of(tn), space.words_of(tn)
        raw = int(code.encode(words.data(codes[rf["base"]:rf["base"] + rf["count"]], r.index)))
        return raw, (1 << code.check_bits) - 1
    raw = int(codes[rf["base"] + r.index]) & ((1 << rf["bits"]) - 1)
    return raw, (1 << rf["bits"]) - 1 if r.register == "mem" else rep_bits.get((r.instance, r.index), 0)


def _restores(fs: FaultSet, owner: np.ndarray, target: np.ndarray, period: int) -> tuple:
    """The restore events of every (frame, register) a parameter or replica
    upset touched: the golden value at the frame's last cycle, and at its
    scrub cycle when that comes earlier. Returns (frames, cycles, targets,
    bits = -1: the whole register), the frame ends first."""
    pairs = np.unique(np.stack([owner, target], axis=1), axis=0)
    scrub = fs.scrub[pairs[:, 0]]
    early = np.flatnonzero((scrub >= 0) & (scrub < period - 1))
    at = np.concatenate([np.arange(len(pairs)), early])
    cycles = np.concatenate([np.full(len(pairs), period - 1), scrub[early]])
    return pairs[at, 0], cycles, pairs[at, 1], np.full(at.size, -1, dtype=np.int64)


def fault_deposits(fs: FaultSet, space: FlipFlopSpace, model: IntegerModel, meta: dict, period: int,
                   ffmap: dict | None = None) -> Deposits:
    """The deposits of a fault set, one frame per fault (frame i = fault i):
    each upset inverts its flip-flop (fkhw.faults.space ids -> registers and
    Verilog bits: parameter bit b of register i of a register file is Verilog
    bit bits-1-b of ``mem[i]``; bit b of element e of a stage is Verilog bit
    e*width + width-1-b of ``u_stage<k>.q``), and every parameter or replica
    register a frame touched is restored (golden value) at its scrub cycle
    and at the frame's last cycle. ``ffmap``: a synthesised netlist's
    flip-flops (fkhw.rtlgen.netlist.flip_flop_map, pipeline registers
    included): the same bits in the nets that hold them; a parameter bit
    synthesis merged away (a replica without keep) gets no deposit."""
    codes = param_codes(model)
    targets, golden, check, tid = [], [], [], {}
    rep_bits = _replica_bits(meta)

    def target(key: tuple, gold: int, bits: int) -> int:
        if key not in tid:
            tid[key] = len(targets)
            targets.append(list(key))
            golden.append(int(gold))
            check.append(int(bits))
        return tid[key]

    uniq, inverse = np.unique(fs.ff, return_inverse=True)
    cls, base = _upset_classes(space, uniq)
    tripled = {st["stage"] for st in meta["stages"] if st.get("module") == "fkhw_pipe_tmr"}
    u_tgt = np.full(uniq.size, -1, dtype=np.int64)
    u_bit = np.zeros(uniq.size, dtype=np.int64)
    u_param = np.isin(cls, ("param", "replica", "check"))
    rf_of = {rf["instance"]: rf for rf in meta["register_files"]}
    for j, (ff, c) in enumerate(zip(uniq.tolist(), cls)):
        r = rtl_register(space, meta, ff)
        if c in ("param", "replica", "check"):
            raw, word = _golden_register(space, codes, rf_of[r.instance], r, ff, rep_bits)
            if ffmap is None:
                u_tgt[j], u_bit[j] = target((r.instance, r.register, r.index), raw, word), r.bit
                continue
            hit = ffmap.get((r.instance, r.register, r.index, r.bit))
            if hit is None:
                continue  # a bit synthesis merged away (a replica without keep): nothing there to upset
            net, nb, whole = hit
            u_tgt[j] = target(("", net, -1), raw if whole else (raw >> r.bit) & 1, word if whole else 1)
            u_bit[j] = nb if whole else 0
            continue
        stage = space.stage_of(int(base[j])).stage
        if ffmap is None:
            u_tgt[j], u_bit[j] = target((r.instance, r.register, -1), 0, 0), r.bit
            continue
        if stage in tripled:
            raise FaultError(f"{c} flip-flop {ff} ({space.describe(ff).register}): upsets of triplicated "
                             "pipeline stages run on the RTL, not on a netlist")
        hit = ffmap.get(("pipe", stage, r.bit) if c == "pipeline" else ("valid", stage))
        if hit is None:
            raise FaultError(f"{c} flip-flop {ff} ({space.describe(ff).register}) has no flip-flop in the netlist")
        net, nb, _ = hit
        u_tgt[j], u_bit[j] = target(("", net, -1), 0, 0), nb
    owner = fs.owners()
    there = u_tgt[inverse] >= 0
    owner, ev_tgt, ev_bit = owner[there], u_tgt[inverse][there], u_bit[inverse][there]
    events = [(owner, fs.cycle[there], ev_tgt, ev_bit)]
    par = u_param[inverse][there]
    if par.any():
        events.append(_restores(fs, owner[par], ev_tgt[par], period))
    frame, cycle, tgts, bits = (np.concatenate(column) for column in zip(*events))
    return Deposits(targets, golden, check, frame, cycle.astype(np.int64), tgts, bits)


def observed_from(out: FrameOutputs, gold: np.ndarray, n_faults: int) -> Observed:
    """Observed outputs from the differing slots the testbench recorded
    (every other window slot is the golden output, valid)."""
    n = gold.shape[0]
    latent = np.broadcast_to(gold, (n_faults,) + gold.shape).copy()
    lost = np.zeros((n_faults, n), dtype=bool)
    extra = np.zeros(n_faults, dtype=np.int64)
    w = out.slot < n
    latent[out.frame[w], out.slot[w]] = out.data[w]
    lost[out.frame[w], out.slot[w]] = ~out.valid[w]
    np.add.at(extra, out.frame[~w], out.valid[~w].astype(np.int64))
    return Observed(latent, lost, extra)


def leaks(out: FrameOutputs, fs: FaultSet, space: FlipFlopSpace, n_vectors: int) -> np.ndarray:
    """(L,) bool: recorded slots no upset of the frame's fault can explain:
    a window slot outside every upset's reach (a parameter upset: its layer's
    slots from its cycle to the scrub; a pipeline or valid upset: the one
    slot it holds), a dropped valid or an extra output without a valid upset."""
    if not out.frame.size:
        return np.zeros(0, dtype=bool)
    base = space.base(fs.ff)
    tn = space.register_tensor(fs.ff)
    par = tn >= 0  # a parameter bit, one of its replicas or a check bit
    k = np.zeros(fs.ff.size, dtype=np.int64)
    if par.any():
        k[par] = space.tensor_stages[tn[par]]
    k[~par] = space.stage_numbers(base[~par])  # the tmr_err flag is in no stage: 0
    owner = fs.owners()
    lo = fs.cycle - k
    scrub = fs.scrub[owner]
    hi = np.where(par, np.where(scrub >= 0, scrub - k, n_vectors), lo + 1)
    has_valid = np.zeros(len(fs), dtype=bool)
    has_valid[owner[(base >= space.first_control) & (base < space.first_control + space.latency)]] = True
    f, v = out.frame, out.slot
    covered = np.zeros(f.size, dtype=bool)
    n_up = fs.n_upsets()[f]
    for j in range(int(n_up.max()) if n_up.size else 0):
        u = fs.indptr[f] + np.minimum(j, n_up - 1)
        covered |= (j < n_up) & (lo[u] <= v) & (v < hi[u])
    window = v < n_vectors
    return (window & ~covered) | ((~out.valid | ~window) & ~has_valid[f])


class RtlLevel:
    """Level protocol on the generated RTL (see module docstring).

    ``jobs``: simulator processes to split the faults over (default: CPU
    count). ``timeout``: seconds before a simulation is declared hung and
    killed (default: scaled to the work). ``waves`` ("vcd" or "fst"): a
    build that writes a waveform of each simulator process's run into its
    job folder under ``work_dir`` (``job<j>/fkhw_waves.<format>``;
    fkhw.rtlgen.sim.WAVES_FILE), for fkhw.replays.
    """

    name = "rtl"

    def __init__(self, model, *, jobs: int | None = None, timeout: float | None = None,
                 build_root: Path | None = None, log=None, work_dir: Path | None = None,
                 design: RtlDesign | None = None, waves: str | None = None):
        self.model: IntegerModel = model.ir if hasattr(model, "ir") else model
        # refuses an unsupported IR here; ``design``: another variant of the
        # same model's encoder (e.g. the hardened one, fkhw.rtlgen.harden)
        self.design: RtlDesign = design if design is not None else generate(self.model)
        self.meta = self.design.meta
        self.space = design_space(self.model, self.meta)
        # a self-correcting design's tmr_err is sticky: a configuration write at the end of every frame
        # (fkhw_tb.v clear_err) clears it as a user would between upsets, so each frame starts low
        self.clear_err = bool(self.meta.get("tmr", {}).get("refresh", False))
        self.jobs = int(jobs) if jobs else (os.cpu_count() or 1)
        self.timeout = timeout
        self.root = Path(build_root) if build_root is not None else default_root()
        self.latency = int(self.meta["latency"])
        self.log = log
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.waves = waves
        self._builds: dict = {}
        self.stats: dict = {}

    @classmethod
    def for_bundle(cls, bundle, jobs: int | None = None) -> "RtlLevel":
        """The level a campaign uses: parallelism comes from the campaign's
        executor (Dask workers), so one simulator process per level."""
        return cls(bundle.ir, jobs=jobs or 1)

    # --- build -----------------------------------------------------------
    def build(self, pipeline: bool = False) -> SimBuild:
        """The Verilator model (``pipeline``: the build whose pipeline data
        and valid registers can be upset)."""
        # a design with triplicated pipeline or valid flip-flops is proven by upsetting their replicas, so it
        # is always built with them public: one build, not two (a hardened econt-bol build is minutes, ~9 GB)
        pipeline = pipeline or (bool(self.meta.get("tmr", {}).get("flip_flops")) and self.design.flip_flops is None)
        if pipeline not in self._builds:
            # keyed by the files as they are now (not the digest recorded at generation: a design
            # edited since must not run the cached unedited RTL)
            rtl_dir = self.root / "rtl" / self.design.digest
            if not (rtl_dir / "fkhw_encoder.json").is_file():
                self.root.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(dir=self.root, prefix="rtl-"))
                self.design.write(tmp)
                rtl_dir.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.replace(tmp, rtl_dir)
                except OSError:  # another process won the race
                    shutil.rmtree(tmp, ignore_errors=True)
            # a netlist's build is the largest (econt-bol: 134 CPU s, 15+ min wall when 4 engineers share 2 cores)
            sb = build(rtl_dir, self.root, log=self.log, pipeline=pipeline, waves=self.waves,
                       timeout=3600 if "netlist" in self.meta else 900)
            # a shared build may come from another model with the same RTL
            # (only weights differ): use this model's own metadata
            self._builds[pipeline] = dataclasses.replace(sb, meta=self.meta)
            self.stats["build_seconds"] = self._builds[pipeline].seconds
        return self._builds[pipeline]

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

    def _simulate(self, fs: FaultSet, x: np.ndarray, progress=None, jobs: int | None = None) -> tuple:
        """(FrameOutputs, period): one frame per fault of ``fs`` (one
        fault-free frame if it is empty)."""
        if x.shape[0] > MAX_VECTORS:
            raise RtlSimError(f"{x.shape[0]} inputs per frame: the RTL testbench streams at most {MAX_VECTORS}")
        # clear_err: one more drain clock, so that an upset at the last cycle a window slot can be hit
        # (period - 2 without it) has set the sticky flag before the end-of-frame write clears it
        period = frame_period(fs, self.space, x.shape[0]) + int(self.clear_err)
        # a netlist makes its pipeline nets public itself (fkhw.rtlgen.netlist)
        pipe = bool((self.space.register_tensor(fs.ff) < 0).any()) and self.design.flip_flops is None
        pipe = pipe or True in self._builds  # a pipeline build runs parameter upsets too: no second build
        sb = self.build(pipeline=pipe)
        dep = fault_deposits(fs, self.space, self.model, self.meta, period, ffmap=self.design.flip_flops)
        gold = engine.forward(self.model, x).reshape(x.shape[0], -1)  # out_data: the output in C order
        tmp = self._work()
        work = Path(tmp.name) if tmp else self.work_dir
        try:
            out = run_frames(sb, work, x, gold, param_codes(self.model), max(1, len(fs)), period, dep,
                             jobs=jobs or self.jobs, timeout=self._timeout(len(fs), period, jobs or self.jobs),
                             progress=progress, clear_err=self.clear_err)
        finally:
            if tmp:
                tmp.cleanup()
        return out, gold, period

    def _timeout(self, n_frames: int, period: int, jobs: int) -> float | None:
        """The given timeout, or for a netlist one scaled to its cells: a
        gate-level clock costs ~2 ns per cell here (econt-bol, 1.16 M cells:
        ~2.5 ms, against tens of microseconds for the RTL), given 5x margin;
        None: the RTL's default (fkhw.rtlgen.sim.run_frames)."""
        if self.timeout is not None or "netlist" not in self.meta:
            return self.timeout
        per_job = -(-max(1, n_frames) // max(1, jobs))
        return 120 + 1e-8 * self.meta["netlist"]["synthesis"]["cells"] * period * per_job

    def golden(self, inputs) -> np.ndarray:
        """(N, n_out) fault-free RTL outputs (not compared here: that is the
        caller's check; ``stats["golden_valid_errors"]`` counts window slots
        without their valid flag and valid drain slots)."""
        x = self._check_inputs(inputs)
        outs, bad_valid = [], 0
        for lo in range(0, x.shape[0], MAX_VECTORS):
            xc = x[lo:lo + MAX_VECTORS]
            out, gold, _ = self._simulate(FaultSet.single("none", [], []), xc, jobs=1)
            obs = observed_from(out, gold, 1)
            outs.append(obs.latent[0])
            bad_valid += int(obs.lost.sum() + obs.extra.sum())
        self.stats["golden_valid_errors"] = bad_valid
        return np.concatenate(outs, axis=0)

    def run_faults(self, fs: FaultSet, inputs, progress=None) -> Observed:
        """What each fault of ``fs`` does to the N window inputs (fkhw.faults.space).

        Raises RtlSimError if an output differs from the integer engine
        where no upset of its fault can reach (a broken scrub or a leak)."""
        return self._run_faults(fs, inputs, progress)[0]

    def run_faults_with_flags(self, fs: FaultSet, inputs, progress=None) -> tuple:
        """(Observed, error flags): :meth:`run_faults` plus the design's error
        flags per fault: on a hardened design tmr_err at its frame's edge 0
        and after it ((F, 2) bool); on a design of SEC-DED words
        ecc_err_single and ecc_err_double at edge 0, then after it ((F, 4)
        bool); None on the plain design."""
        return self._run_faults(fs, inputs, progress)

    def _run_faults(self, fs: FaultSet, inputs, progress=None) -> tuple:
        x = self._check_inputs(inputs)
        check_fault_set(fs, self.space, x.shape[0])
        n_out = int(self.meta["ports"]["out_data"]["elements"])
        if len(fs) == 0:
            z = np.zeros((0, x.shape[0]), dtype=bool)
            return Observed(np.zeros((0, x.shape[0], n_out), dtype=np.int64), z, np.zeros(0, dtype=np.int64)), None
        t0 = time.time()
        out, gold, period = self._simulate(fs, x, progress)
        bad = leaks(out, fs, self.space, x.shape[0])
        self.stats.update(sim_seconds=time.time() - t0, injections=len(fs), period=period, pre_err=int(bad.sum()),
                          state_errors=out.state_errors)
        if out.state_errors:
            raise RtlSimError(f"{out.state_errors} parameter register read(s) differ from golden plus the upsets "
                              "deposited since: a scrub went missing or hit the wrong register")
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RtlSimError(f"{int(bad.sum())} output slot(s) differ from the integer engine where no upset of "
                              f"their fault reaches (first: fault {int(fs.ids[out.frame[i]])}, slot {out.slot[i]}): "
                              "the RTL, its scrubbing or the deposits are broken")
        return observed_from(out, gold, len(fs)), out.tmr_err if out.ecc_err is None else out.ecc_err

    def run(self, sites, inputs, progress=None) -> np.ndarray:
        """(len(sites), N, n_out) outputs with each site's parameter upset
        (at cycle 0, no scrub) present: :meth:`run_faults` of ``seu``."""
        sites = SiteSpace.of(self.model).check(sites)
        fs = FaultSet.single("seu", np.arange(sites.size), sites)
        return self.run_faults(fs, inputs, progress=progress).latent


def netlist_design(model: IntegerModel, design: RtlDesign | None = None, log=None) -> RtlDesign:
    """The Yosys gate-level netlist of ``design``, a generated encoder of
    ``model`` (default: the plain one; fkhw.levels.protected_design gives a
    protected one), cached by content hash (fkhw.rtlgen.netlist)."""
    from fkhw.rtlgen.netlist import synthesize_netlist

    return synthesize_netlist(generate(model) if design is None else design, progress=log)


def netlist_level(model: IntegerModel, jobs: int = 1, log=None, design: RtlDesign | None = None) -> RtlLevel:
    """The RTL level on the synthesised netlist of ``design`` (default: the
    plain encoder): the same testbench, the same frames, upsets deposited
    into the netlist's flip-flops."""
    design = netlist_design(model, design, log=log)
    lv = RtlLevel(model, jobs=jobs, design=design, log=log)
    lv.name = "netlist"
    return lv
