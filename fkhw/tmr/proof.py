"""Proof by fault injection that the selectively hardened encoder works.

:class:`HardenedRtlLevel` is the RTL level (cocotb + Verilator, the same
frames as :class:`fkhw.levels.rtl.RtlLevel`) on the hardened encoder of
:func:`fkhw.tmr.harden.harden`. An upset of a protected site flips its bit
in ONE replica flip-flop (``replica`` 0, 1 or 2 = ``mem``, ``mem_b``,
``mem_c``); an upset of an unprotected site flips its single flip-flop.
The testbench also records, per frame, whether ``tmr_err`` rose before the
upset (it must not) and after it.

:func:`prove` runs, in one simulation: every protected site upset in each
of its three replicas in turn (exhaustive: outputs must equal the
fault-free outputs, tmr_err must rise), and every unprotected site (or a
given list: outputs must equal the plain design's under the same upset,
tmr_err must stay low).

    level = HardenedRtlLevel(ir, protect_sites)          # name 'rtl-tmr'
    run_campaign(spec, bundle, out, level=level)          # worst emd_norm <= T
    report = prove(ir, protect_sites, inputs, jobs=2)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fkhw import engine
from fkhw.levels.rtl import RtlLevel, injections_for, param_codes
from fkhw.model.ir import IntegerModel
from fkhw.rtlgen.emit import REPLICA_MEMS
from fkhw.rtlgen.sim import MAX_VECTORS, RtlSimError, run_frames
from fkhw.sites import SiteSpace
from fkhw.tmr.harden import harden

__all__ = ["HardenedRtlLevel", "prove", "tmr_injections"]


def _replica_names(replica) -> list:
    reps = [replica] if isinstance(replica, (int, np.integer)) else list(replica)
    if not reps or any(int(r) not in (0, 1, 2) for r in reps) or len(set(int(r) for r in reps)) != len(reps):
        raise ValueError(f"replica {replica!r}: give 0, 1 or 2 (A, B, C), or distinct ones for a multiple upset")
    return [REPLICA_MEMS[int(r)] for r in reps]


def tmr_injections(model: IntegerModel, meta: dict, sites, replicas) -> list:
    """Injections for the hardened testbench: per site [instance, index,
    flipped value, address, [memories]]. ``replicas``: an int 0..2 or a
    tuple of distinct ones (every listed replica of the bit is upset) for
    all sites, or a list with one such spec per site. Unprotected sites have one
    flip-flop (``mem``) whatever the spec."""
    sites = np.asarray(sites, dtype=np.int64).reshape(-1)
    prot = {e["site"] for e in meta["tmr"]["sites"]}
    base = injections_for(model, meta, sites)
    per_site = None
    if isinstance(replicas, (list, np.ndarray)):  # a list: one spec per site (an int or a tuple: the same for all)
        if len(replicas) != sites.size:
            raise ValueError(f"{len(replicas)} replica specs for {sites.size} sites")
        per_site = list(replicas)
    out = []
    for k, (s, inj) in enumerate(zip(sites.tolist(), base)):
        spec = per_site[k] if per_site is not None else replicas
        mems = _replica_names(spec) if s in prot else ["mem"]
        out.append(inj + [mems])
    return out


class HardenedRtlLevel(RtlLevel):
    """Level protocol on the hardened RTL (name ``rtl-tmr``). ``replica``:
    which replica of a protected bit an upset hits in :meth:`run` (0, 1, 2,
    or a tuple for a multiple upset of the same bit)."""

    name = "rtl-tmr"

    def __init__(self, model, protect_sites, replica=0, jobs: int | None = 1, design=None, **kw):
        """``design``: the hardened design to run (default: ``harden(ir,
        protect_sites)``; e.g. its synthesised netlist, fkhw.rtlgen.netlist)."""
        ir = model.ir if hasattr(model, "ir") else model
        design = design if design is not None else harden(ir, protect_sites)
        super().__init__(ir, jobs=jobs, design=design, **kw)
        _replica_names(replica)
        self.replica = replica
        self.protected = np.array([e["site"] for e in self.meta["tmr"]["sites"]], dtype=np.int64)

    @classmethod
    def for_bundle(cls, bundle, protect_sites=(), jobs: int | None = None) -> "HardenedRtlLevel":
        return cls(bundle.ir, protect_sites, jobs=jobs or 1)

    def run(self, sites, inputs, progress=None) -> np.ndarray:
        out, _ = self.run_with_err(sites, inputs, self.replica, progress=progress)
        return out

    def run_with_err(self, sites, inputs, replica=None, progress=None) -> tuple:
        """(outputs (S, N, n_out), tmr_err (S,) bool): outputs with each
        site's upset present and whether tmr_err rose after it. ``replica``:
        as in the constructor (default: the level's), or one spec per site.
        Raises RtlSimError if an output before an upset cycle differs from
        the integer engine or tmr_err was already 1 there."""
        x = self._check_inputs(inputs)
        sites = SiteSpace.of(self.model).check(sites)
        if x.shape[0] > MAX_VECTORS:
            raise RtlSimError(f"{x.shape[0]} inputs per site: the RTL testbench streams at most {MAX_VECTORS}")
        n_out = int(self.meta["ports"]["out_data"]["elements"])
        if sites.size == 0:
            return np.zeros((0, x.shape[0], n_out), dtype=np.int64), np.zeros(0, dtype=bool)
        inj = tmr_injections(self.model, self.meta, sites, self.replica if replica is None else replica)
        return self._run_injections(inj, x, progress)

    def _run_injections(self, inj: list, x: np.ndarray, progress=None) -> tuple:
        inj = self.lower(inj)
        sb = self.build()
        gold = engine.forward(self.model, x)
        tmp = self._work()
        work = Path(tmp.name) if tmp else self.work_dir
        flags: dict = {}
        timeout = self.timeout
        if timeout is None:
            # measured ~4 ms per frame per process on econt-bol (cocotb deposit + Timer, 46 clocks);
            # generous so a loaded machine does not trip it, still finite for a hung simulator
            timeout = 120 + 0.05 * len(inj) / max(1, min(self.jobs, len(inj)))
        t0 = time.time()
        try:
            rec, pre_err = run_frames(sb, work, x, gold, param_codes(self.model), inj, self.n_pre, jobs=self.jobs,
                                      timeout=timeout, progress=progress, flags_out=flags)
        finally:
            if tmp:
                tmp.cleanup()
        self.stats.update(sim_seconds=time.time() - t0, injections=len(inj), pre_err=pre_err)
        if pre_err:
            raise RtlSimError(f"{pre_err} output(s) before an upset cycle differ from the integer engine: "
                              "the RTL or its scrubbing is broken")
        if flags["tmr_err_pre"].any():
            raise RtlSimError(f"tmr_err was 1 before the upset in {int(flags['tmr_err_pre'].sum())} frame(s): "
                              "a replica was left corrupted (scrubbing broken?)")
        return rec[:, -x.shape[0]:, :].astype(np.int64), flags["tmr_err_post"].copy()


def prove(ir: IntegerModel, protect_sites, inputs, plain_outputs=None, jobs: int = 2, unprotected=None,
          level: HardenedRtlLevel | None = None, progress=None) -> dict:
    """Exhaustive single-upset proof on the hardened RTL (see the module
    docstring). ``plain_outputs``: (len(unprotected), N, n_out) outputs of
    the plain design under the same upsets (e.g. a campaign's latent codes,
    bit-identical to the software level); computed with the software level
    when not given. ``unprotected``: the unprotected sites to check
    (default: all). Returns counts, the sites that failed (first few) and
    timings; ``ok`` is True when nothing failed."""
    from fkhw.levels.software import SoftwareLevel

    t_all = time.time()
    x = np.asarray(inputs, dtype=np.int64)
    level = level or HardenedRtlLevel(ir, protect_sites, jobs=jobs)
    space = SiteSpace.of(ir)
    prot = level.protected
    unprot = np.setdiff1d(np.arange(space.n_sites), prot) if unprotected is None else space.check(unprotected)
    if np.isin(unprot, prot).any():
        raise ValueError(f"unprotected list holds protected site(s) {unprot[np.isin(unprot, prot)][:5].tolist()}")
    if plain_outputs is None:
        t0 = time.time()
        plain_outputs = SoftwareLevel(ir).run(unprot, x) if unprot.size else np.zeros((0,) + (x.shape[0], 0))
        t_ref = time.time() - t0
    else:
        plain_outputs = np.asarray(plain_outputs)
        if plain_outputs.shape[0] != unprot.size:
            raise ValueError(f"plain_outputs has {plain_outputs.shape[0]} sites, {unprot.size} unprotected to check")
        t_ref = 0.0
    t0 = time.time()
    level.build()
    t_build = time.time() - t0
    golden = level.golden(x)
    fault_free_ok = bool(np.array_equal(golden, engine.forward(ir, x)))

    # one simulation: protected x 3 replicas, then the unprotected sites
    sites = np.concatenate([np.repeat(prot, 3), unprot])
    reps = [0, 1, 2] * prot.size + [0] * unprot.size
    inj = tmr_injections(ir, level.meta, sites, reps)
    t0 = time.time()
    out, err = level._run_injections(inj, x, progress)
    t_sim = time.time() - t0
    n3 = 3 * prot.size
    p_out, p_err = out[:n3].reshape(prot.size, 3, *out.shape[1:]), err[:n3].reshape(prot.size, 3)
    changed = (p_out != golden[None, None]).any(axis=(2, 3))  # (P, 3)
    u_out, u_err = out[n3:], err[n3:]
    mismatch = (u_out != plain_outputs).any(axis=(1, 2)) if unprot.size else np.zeros(0, dtype=bool)
    u_changed = (u_out != golden[None]).any(axis=(1, 2))
    report = {
        "protected_sites": int(prot.size),
        "replica_upsets": int(n3),
        "protected_output_changes": int(changed.sum()),
        "protected_tmr_err_misses": int((~p_err).sum()),
        "unprotected_sites": int(unprot.size),
        "unprotected_mismatches": int(mismatch.sum()),
        "unprotected_output_changes": int(u_changed.sum()),
        "unprotected_tmr_err_raised": int(u_err.sum()),
        "fault_free_equals_engine": fault_free_ok,
        "inputs": int(x.shape[0]),
        "failures": {
            "output_change": [[int(prot[i]), int(r)] for i, r in zip(*np.nonzero(changed))][:20],
            "tmr_err_miss": [[int(prot[i]), int(r)] for i, r in zip(*np.nonzero(~p_err))][:20],
            "unprotected_mismatch": unprot[mismatch][:20].tolist(),
            "unprotected_tmr_err": unprot[u_err][:20].tolist(),
        },
        "seconds": {"reference": round(t_ref, 2), "build": round(t_build, 2), "simulation": round(t_sim, 2),
                    "total": round(time.time() - t_all, 2)},
        "frames": int(len(inj)),
        "jobs": int(level.jobs),
    }
    ok = fault_free_ok and not changed.any() and p_err.all() and not mismatch.any() and not u_err.any()
    nl = level.meta.get("netlist")
    if nl is not None:
        # after synthesis: the three flip-flops of every protected bit, counted in the netlist
        report["netlist"] = {k: nl[k] for k in ("flip_flops", "parameter_bits", "parameter_bits_found",
                                                "replica_flip_flops_expected", "replica_flip_flops_found",
                                                "replicas_missing", "unmapped")}
        ok = ok and nl["replica_flip_flops_found"] == nl["replica_flip_flops_expected"] == 2 * prot.size \
            and nl["parameter_bits_found"] == nl["parameter_bits"] and nl["unmapped"] == 0
    report["ok"] = bool(ok)
    return report
