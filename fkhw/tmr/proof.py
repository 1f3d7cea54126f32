"""Proof by fault injection that the selectively hardened encoder works.

:class:`HardenedRtlLevel` is the RTL level (cocotb + Verilator, the same
frames as :class:`fkhw.levels.rtl.RtlLevel`) on the hardened encoder of
:func:`fkhw.rtlgen.harden.harden`. An upset of a protected site flips its bit
in ONE replica flip-flop (``replica`` 0, 1 or 2 = ``mem``, ``mem_b``,
``mem_c``); an upset of an unprotected site flips its single flip-flop.
Each upset is an :class:`fkhw.faults.space.Upset` of a flip-flop of the hardened
design's space (replica B, C of a protected bit: their own ids). The
testbench also records, per frame, whether ``tmr_err`` was 1 before the
upset (it must not) and after it.

:func:`prove` runs, in one simulation: every protected site upset in each
of its three replicas in turn (exhaustive: outputs must equal the
fault-free outputs, tmr_err must rise), every replica of each protected
pipeline data bit and valid flag at every window cycle of its stage
(:func:`transient_replica_faults`: the same two requirements, no output
lost or added), and every unprotected site (or a given list: outputs must
equal the plain design's under the same upset, tmr_err must stay low).

On the self-correcting (refresh) design tmr_err is sticky: it stays set
until a configuration write. A user reads it and clears it that way, so the
proof's testbench does the same: at the last edge of every frame it rewrites
register 0 with its golden value through the configuration port (a write
that changes no flip-flop's value), and each frame starts with the flag low
and must raise it. (A reset would clear it too, but also the valid pipeline
that still holds the frame's drain: the configuration write is the clean
and the realistic way.)

    level = HardenedRtlLevel(ir, protect_sites)          # name 'rtl-tmr'
    run_campaign(spec, bundle, out, level=level)          # worst emd_norm <= T
    report = prove(ir, protect_sites, inputs, jobs=2)
"""

from __future__ import annotations

import time

import numpy as np

from fkhw.model import engine
from fkhw.faults.space import Fault, FaultSet, FlipFlopSpace, Observed, Upset, cycle_bounds
from fkhw.levels.rtl import RtlLevel
from fkhw.model.ir import IntegerModel
from fkhw.rtlgen.sim import RtlSimError
from fkhw.faults.sites import SiteSpace
from fkhw.rtlgen.harden import harden

__all__ = ["HardenedRtlLevel", "prove", "replica_faults", "transient_replica_faults"]


def _replica_list(replica) -> list:
    reps = [replica] if isinstance(replica, (int, np.integer)) else list(replica)
    if not reps or any(int(r) not in (0, 1, 2) for r in reps) or len(set(int(r) for r in reps)) != len(reps):
        raise ValueError(f"replica {replica!r}: give 0, 1 or 2 (A, B, C), or distinct ones for a multiple upset")
    return [int(r) for r in reps]


def replica_flip_flop(space: FlipFlopSpace, site: int, replica: int) -> int:
    """The flip-flop id of replica 0, 1, 2 (A = the parameter bit, B, C) of a
    protected site (fkhw.faults.space: B and C follow the valid flags)."""
    if replica == 0:
        return int(site)
    pos = int(np.searchsorted(space.protected, site))
    return space.first_replica + 2 * pos + replica - 1


def replica_faults(space: FlipFlopSpace, sites, replicas) -> FaultSet:
    """One fault per site, upsets at cycle 0, no scrub: the listed replicas
    (``replicas``: 0, 1, 2 or a tuple of distinct ones for all sites, or a
    list with one such spec per site) of a
    protected site's bit, the single flip-flop of an unprotected one."""
    sites = np.asarray(sites, dtype=np.int64).reshape(-1)
    prot = set(space.protected)
    if isinstance(replicas, (list, np.ndarray)):  # a list: one spec per site (an int or a tuple: the same for all)
        if len(replicas) != sites.size:
            raise ValueError(f"{len(replicas)} replica specs for {sites.size} sites")
        specs = list(replicas)
    else:
        specs = [replicas] * sites.size
    faults = []
    for s, spec in zip(sites.tolist(), specs):
        reps = _replica_list(spec) if s in prot else [0]
        faults.append(Fault(tuple(sorted(Upset(replica_flip_flop(space, s, r), 0) for r in reps))))
    return FaultSet.of("replica", np.arange(sites.size), faults)


def transient_replica_faults(space: FlipFlopSpace, n_vectors: int, max_faults: int = 4096) -> tuple:
    """(FaultSet, flip-flop, replica) of the proof for protected pipeline
    data bits and valid flags: each replica (A, B, C) upset alone at every
    cycle at which its stage holds a window vector; when that is more than
    ``max_faults`` frames, at one such cycle each, taken in turn (the voter
    is the same at every cycle; every slot is still covered)."""
    prot = np.asarray(space.protected_transients, dtype=np.int64)
    if not prot.size:
        return FaultSet.of("replica", [], []), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    lo, _ = cycle_bounds(space, prot, n_vectors)
    every = 3 * prot.size * n_vectors <= max_faults
    faults, ffs, reps = [], [], []
    for j, ff in enumerate(prot.tolist()):
        for r in range(3):
            rep_ff = ff if r == 0 else space.first_replica + 2 * space.protected.index(ff) + r - 1
            slots = range(n_vectors) if every else [(3 * j + r) % n_vectors]
            for v in slots:
                faults.append(Fault((Upset(rep_ff, int(lo[j]) + v),)))
                ffs.append(ff)
                reps.append(r)
    return (FaultSet.of("replica", np.arange(len(faults)), faults), np.array(ffs, dtype=np.int64),
            np.array(reps, dtype=np.int64))


class HardenedRtlLevel(RtlLevel):
    """Level protocol on the hardened RTL (name ``rtl-tmr``). ``replica``:
    which replica of a protected bit an upset hits in :meth:`run` (0, 1, 2 =
    ``REPLICA_MEMS`` A, B, C, or a tuple for a multiple upset of the same
    bit). :meth:`run_faults` takes any fault set of the hardened design's
    flip-flop space (``self.space``: replicas included)."""

    name = "rtl-tmr"

    def __init__(self, model, protect_sites, replica=0, jobs: int | None = 1, design=None, refresh: bool = False,
                 **kw):
        """``protect_sites``: the protected flip-flop ids (parameter bits =
        site ids, pipeline data bits, valid flags). ``design``: the hardened
        design to run (default: ``harden(ir, protect_sites, refresh)``; e.g.
        its synthesised netlist, fkhw.rtlgen.netlist). A self-correcting
        (refresh) design's sticky tmr_err is cleared by a configuration
        write at the end of every frame, as a user clears it after reading
        it (fkhw_tb.v ``clear_err``), so every frame starts with it low."""
        ir = model.ir if hasattr(model, "ir") else model
        design = design if design is not None else harden(ir, protect_sites, refresh=refresh)
        super().__init__(ir, jobs=jobs, design=design, **kw)
        _replica_list(replica)
        self.replica = replica
        self.protected = np.array([e["site"] for e in self.meta["tmr"]["sites"]], dtype=np.int64)
        self.transients = np.array(self.meta["tmr"].get("flip_flops", []), dtype=np.int64)
        self.refresh = bool(self.meta["tmr"].get("refresh", False))

    @classmethod
    def for_bundle(cls, bundle, protect_sites=(), jobs: int | None = None) -> "HardenedRtlLevel":
        return cls(bundle.ir, protect_sites, jobs=jobs or 1)

    def run(self, sites, inputs, progress=None) -> np.ndarray:
        out, _ = self.run_with_err(sites, inputs, self.replica, progress=progress)
        return out

    def run_with_err(self, sites, inputs, replica=None, progress=None) -> tuple:
        """(outputs (S, N, n_out), tmr_err (S,) bool): outputs with each
        site's upset present and whether tmr_err rose after it. ``replica``:
        as in the constructor (default: the level's), or one spec per site."""
        sites = SiteSpace.of(self.model).check(sites)
        fs = replica_faults(self.space, sites, self.replica if replica is None else replica)
        obs, err = self.run_faults_with_err(fs, inputs, progress)
        return obs.latent, err

    def run_faults_with_err(self, fs: FaultSet, inputs, progress=None) -> tuple:
        """(Observed, tmr_err (F,) bool: tmr_err was 1 at some edge of the
        frame after its edge 0). Raises RtlSimError if an output differs where
        no upset reaches or tmr_err was already 1 at a frame's edge 0."""
        obs, flags = self._run_faults(fs, inputs, progress)
        return obs, _err_after(flags)


def _err_after(flags) -> np.ndarray:
    """tmr_err after each frame's upset from the testbench's records (F, 2);
    raises if it was already 1 at a frame's edge 0."""
    if flags is None:
        return np.zeros(0, dtype=bool)
    if flags[:, 0].any():
        raise RtlSimError(f"tmr_err was 1 before the upset in {int(flags[:, 0].sum())} frame(s): "
                          "a replica was left corrupted (scrubbing broken?)")
    return flags[:, 1].copy()


# --- execution: the proof's frames go through the campaign executors (fkhw.campaign.executors) ----------

def chunk_with_flags(level, fs: FaultSet, inputs, progress=None) -> tuple:
    """Executor function: a chunk's Observed and tmr_err records on the
    level an executor holds (a Dask worker's, or the local one)."""
    return level.run_faults_with_flags(fs, inputs, progress)


def proof_task(level: HardenedRtlLevel, inputs, bundle=None):
    """The ChunkTask a Dask worker rebuilds ``level``'s design from: the rtl
    (or, for a netlist design, the netlist) level with the same hardening.
    ``bundle``: the model bundle, needed only by Dask workers."""
    from fkhw.campaign.executors import ChunkTask
    from fkhw.faults.space import Hardening

    tmr = level.meta.get("tmr", {})
    protect = sorted(int(f) for f in np.concatenate([level.protected, level.transients]))
    hardening = Hardening(tuple(protect), bool(tmr.get("refresh", False)))
    return ChunkTask("netlist" if "netlist" in level.meta else "rtl", bundle, np.asarray(inputs, dtype=np.int64),
                     hardening)


def proof_chunk_size(executor, level) -> int:
    """Faults per chunk: local self-parallel levels take LOCAL_SIM_CHUNK per simulator
    process (as ``fkhw campaign`` does), Dask workers 1,024."""
    from fkhw.campaign.run import LOCAL_SIM_CHUNK
    from fkhw.campaign.executors import InProcess

    return LOCAL_SIM_CHUNK * max(1, int(level.jobs)) if isinstance(executor, InProcess) else 1024


def execute(executor, task, fs: FaultSet, chunk: int, progress=None) -> tuple:
    """(Observed, tmr_err after each upset) of ``fs`` run through
    ``executor`` in chunks, in fault order whatever order chunks finish in.
    ``progress``: called with the running total of faults done."""
    from fkhw.campaign.run import take
    from fkhw.faults.space import Observed

    chunks = [take(fs, np.arange(lo, min(lo + chunk, len(fs)))) for lo in range(0, len(fs), chunk)]
    pos = {int(i): k for k, i in enumerate(fs.ids.tolist())}
    parts, done = [], 0

    def within(total: int) -> None:  # the running total of the chunk in flight
        if progress is not None:
            progress(done + total)

    for part, (obs, flags) in executor.map(task, chunks, fn=chunk_with_flags, progress=within):
        parts.append((np.array([pos[int(i)] for i in part.ids.tolist()]), obs, _err_after(flags)))
        done += len(part)
        if progress is not None:
            progress(done)
    order = np.argsort(np.concatenate([p[0] for p in parts]))
    obs = Observed(*(np.concatenate([getattr(p[1], f) for p in parts])[order] for f in ("latent", "lost", "extra")))
    return obs, np.concatenate([p[2] for p in parts])[order]


def _unprotected_sites(space: SiteSpace, prot: np.ndarray, unprotected) -> np.ndarray:
    """The unprotected sites the proof checks: all of them by default."""
    unprot = np.setdiff1d(np.arange(space.n_sites), prot) if unprotected is None else space.check(unprotected)
    if np.isin(unprot, prot).any():
        raise ValueError(f"unprotected list holds protected site(s) {unprot[np.isin(unprot, prot)][:5].tolist()}")
    return unprot


def _plain_reference(ir: IntegerModel, unprot: np.ndarray, x: np.ndarray, plain_outputs) -> tuple:
    """The plain design's outputs under each unprotected upset (given, or
    from the software level) and the seconds computing them took."""
    from fkhw.levels.software import SoftwareLevel

    if plain_outputs is not None:
        plain_outputs = np.asarray(plain_outputs)
        if plain_outputs.shape[0] != unprot.size:
            raise ValueError(f"plain_outputs has {plain_outputs.shape[0]} sites, {unprot.size} unprotected to check")
        return plain_outputs, 0.0
    t0 = time.time()
    out = SoftwareLevel(ir).run(unprot, x) if unprot.size else np.zeros((0,) + (x.shape[0], 0))
    return out, time.time() - t0


def _register_results(prot: np.ndarray, unprot: np.ndarray, obs: Observed, err: np.ndarray, golden: np.ndarray,
                      plain_outputs: np.ndarray) -> tuple:
    """Counts and first failures of the register-file upsets: each protected
    site's three replicas (rows 0 .. 3P-1 of ``obs``), then the unprotected
    sites. Returns (counts, failures, ok)."""
    out, n3 = obs.latent, 3 * prot.size
    p_out, p_err = out[:n3].reshape(prot.size, 3, *out.shape[1:]), err[:n3].reshape(prot.size, 3)
    changed = (p_out != golden[None, None]).any(axis=(2, 3))  # (P, 3)
    u_out, u_err = out[n3:], err[n3:]
    mismatch = (u_out != plain_outputs).any(axis=(1, 2)) if unprot.size else np.zeros(0, dtype=bool)
    counts = {
        "protected_sites": int(prot.size),
        "replica_upsets": int(n3),
        "protected_output_changes": int(changed.sum()),
        "protected_tmr_err_misses": int((~p_err).sum()),
        "unprotected_sites": int(unprot.size),
        "unprotected_mismatches": int(mismatch.sum()),
        "unprotected_output_changes": int((u_out != golden[None]).any(axis=(1, 2)).sum()),
        "unprotected_tmr_err_raised": int(u_err.sum()),
    }
    failures = {
        "output_change": [[int(prot[i]), int(r)] for i, r in zip(*np.nonzero(changed))][:20],
        "tmr_err_miss": [[int(prot[i]), int(r)] for i, r in zip(*np.nonzero(~p_err))][:20],
        "unprotected_mismatch": unprot[mismatch][:20].tolist(),
        "unprotected_tmr_err": unprot[u_err][:20].tolist(),
    }
    return counts, failures, bool(not changed.any() and p_err.all() and not mismatch.any() and not u_err.any())


def _transient_results(level: HardenedRtlLevel, obs: Observed, err: np.ndarray, golden: np.ndarray, t_ff: np.ndarray,
                       t_rep: np.ndarray) -> tuple:
    """Counts and first failures of the upsets of protected pipeline and
    valid flip-flops' replicas (``obs`` holds their rows alone): no output
    changed, lost or added, tmr_err raised. Returns (counts, failures, ok)."""
    changed = (obs.latent != golden[None]).any(axis=(1, 2)) | obs.lost.any(axis=1) | (obs.extra > 0)
    counts = {
        "protected_pipeline_and_valid_flip_flops": int(level.transients.size),
        "pipeline_and_valid_replica_upsets": int(len(err)),
        "pipeline_and_valid_output_changes": int(changed.sum()),
        "pipeline_and_valid_tmr_err_misses": int((~err).sum()),
    }
    failures = {
        "pipeline_and_valid_output_change": [[int(f), int(r)] for f, r in zip(t_ff[changed], t_rep[changed])][:20],
        "pipeline_and_valid_tmr_err_miss": [[int(f), int(r)] for f, r in zip(t_ff[~err], t_rep[~err])][:20],
    }
    return counts, failures, bool(not changed.any() and err.all())


def _netlist_results(level: HardenedRtlLevel, n_protected: int) -> tuple:
    """After synthesis: the three flip-flops of every protected bit, counted
    in the netlist. Returns (the netlist's counts or None, ok)."""
    nl = level.meta.get("netlist")
    if nl is None:
        return None, True
    counts = {k: nl[k] for k in ("flip_flops", "parameter_bits", "parameter_bits_found", "replica_flip_flops_expected",
                                 "replica_flip_flops_found", "replicas_missing", "unmapped")}
    ok = (nl["replica_flip_flops_found"] == nl["replica_flip_flops_expected"] == 2 * n_protected
          and nl["parameter_bits_found"] == nl["parameter_bits"] and nl["unmapped"] == 0)
    return counts, bool(ok)


def _slice(obs: Observed, rows: slice) -> Observed:
    return Observed(obs.latent[rows], obs.lost[rows], obs.extra[rows])


def prove(ir: IntegerModel, protect_sites, inputs, plain_outputs=None, jobs: int = 2, unprotected=None,
          level: HardenedRtlLevel | None = None, progress=None, refresh: bool = False, executor=None,
          bundle=None) -> dict:
    """Exhaustive single-upset proof on the hardened RTL (see the module
    docstring). ``plain_outputs``: (len(unprotected), N, n_out) outputs of
    the plain design under the same upsets (e.g. a campaign's latent codes,
    bit-identical to the software level); computed with the software level
    when not given. ``unprotected``: the unprotected sites to check
    (default: all). Returns counts, the sites that failed (first few) and
    timings; ``ok`` is True when nothing failed. ``executor``
    (fkhw.campaign.executors, e.g. a DaskExecutor; ``bundle``: the model's bundle
    its workers load): where the frames run (default: in this process, on
    ``level``'s own simulator processes)."""
    from fkhw.campaign.executors import InProcess

    t_all = time.time()
    x = np.asarray(inputs, dtype=np.int64)
    level = level or HardenedRtlLevel(ir, protect_sites, jobs=jobs, refresh=refresh)
    prot = level.protected
    unprot = _unprotected_sites(SiteSpace.of(ir), prot, unprotected)
    plain_outputs, t_ref = _plain_reference(ir, unprot, x, plain_outputs)
    executor = executor if executor is not None else InProcess(level)
    task = proof_task(level, x, bundle)
    t0 = time.time()
    if isinstance(executor, InProcess):
        level.build()  # timed on its own here; a Dask worker builds before its first frame
    t_build = time.time() - t0
    golden = executor.golden(task)
    fault_free_ok = bool(np.array_equal(golden, engine.forward(ir, x)))

    # one simulation: protected x 3 replicas, then the unprotected sites
    sites = np.concatenate([np.repeat(prot, 3), unprot])
    fs = replica_faults(level.space, sites, [0, 1, 2] * prot.size + [0] * unprot.size)
    n_p = len(fs)
    # then every replica of each protected pipeline data bit and valid flag (in their own frames)
    fs_t, t_ff, t_rep = transient_replica_faults(level.space, x.shape[0])
    if len(fs_t):
        fs = FaultSet.of("replica", np.arange(len(fs) + len(fs_t)), list(fs.faults()) + list(fs_t.faults()))
    t0 = time.time()
    obs, err = execute(executor, task, fs, proof_chunk_size(executor, level), progress)
    t_sim = time.time() - t0
    r_counts, r_fail, r_ok = _register_results(prot, unprot, _slice(obs, slice(0, n_p)), err[:n_p], golden,
                                               plain_outputs)
    t_counts, t_fail, t_ok = _transient_results(level, _slice(obs, slice(n_p, None)), err[n_p:], golden, t_ff, t_rep)
    netlist, nl_ok = _netlist_results(level, prot.size)
    report = {
        **r_counts, **t_counts,
        "refresh": bool(level.refresh),
        "tmr_err_cleared_between_upsets": ("by a configuration write at the end of every frame (register 0 "
                                           "rewritten with its golden value), as a user clears the sticky flag"
                                           if level.refresh else "combinational: low once the replicas agree"),
        "fault_free_equals_engine": fault_free_ok,
        "inputs": int(x.shape[0]),
        "failures": {**r_fail, **t_fail},
        "seconds": {"reference": round(t_ref, 2), "build": round(t_build, 2), "simulation": round(t_sim, 2),
                    "total": round(time.time() - t_all, 2)},
        "frames": int(len(fs)),
        "jobs": int(level.jobs),
        "executor": executor.name,
    }
    if netlist is not None:
        report["netlist"] = netlist
    report["ok"] = bool(fault_free_ok and r_ok and t_ok and nl_ok)
    return report
