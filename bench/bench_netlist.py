"""Benchmark: the gate-level netlist under the RTL testbench.

On a model given by name (default: the toy model of fkhw.rtlgen.testing;
``--model econt-bol`` for the reference) and in fresh cache directories
(``--cache DIR`` to reuse one):
- Yosys: synthesis + ABC of the plain netlist (seconds, cells, flip-flops,
  flip-flops named: parameter bits found, unmapped);
- Verilator: cold builds of the testbench around the RTL and around the
  netlist (each kept dot-product module a hierarchical block, verilated and
  compiled once), wall and CPU seconds of the build processes;
- fault-free netlist == integer engine on every vendored row (a model
  without vendored rows: 2,000 random inputs);
- the exhaustive (``--sample N``: N seeded random sites) single-bit campaign
  on the netlist and, as baseline in the same run, on the RTL: injections/s
  of each, disagreeing sites (must be 0);
- ``--hardened``: the selectively hardened design (the map of a software
  campaign at emd_norm > 1.05, as ``make sim`` picks it): its netlist, the
  replica flip-flops counted, its build, and the replica-upset proof on the
  netlist through the campaign executor (frames/s, ok).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

N_INPUTS = 32


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(fn):
    t, c = time.perf_counter(), _cpu()
    out = fn()
    return out, time.perf_counter() - t, _cpu() - c


def _netlist_line(name: str, nl, secs: float) -> None:
    info = nl.meta["netlist"]
    print(f"{name} netlist: Yosys {secs:.1f} s, {info['synthesis']['cells']:,} cells, {info['flip_flops']:,} "
          f"flip-flops ({info['parameter_bits_found']:,}/{info['parameter_bits']:,} parameter bits found, "
          f"{info['replica_flip_flops_found']:,}/{info['replica_flip_flops_expected']:,} replicas, "
          f"{info['unmapped']} unmapped)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="toy", help="toy (default), tiny, or a model name / directory")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--hardened", action="store_true", help="also the selectively hardened netlist and its proof")
    ap.add_argument("--sample", type=int, default=None, metavar="N",
                    help="the seu campaign on N seeded random sites instead of all (a netlist clock costs ~2 ns "
                         "per cell: econt-bol exhaustive is ~8 min on 2 quiet cores)")
    ap.add_argument("--cache", default=None, help="cache directory to use (default: a fresh one: cold figures)")
    args = ap.parse_args()
    tmp = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="fkhw-bench-netlist-"))
    os.environ["FKHW_RTL_BUILD"] = str(tmp / "rtl_sim")
    os.environ["FKHW_NETLIST_CACHE"] = str(tmp / "netlist")

    from fkhw.model import engine
    from fkhw.levels.rtl import RtlLevel, encoder_inputs
    from fkhw.rtlgen.emit import generate
    from fkhw.rtlgen.netlist import synthesize_netlist
    from fkhw.rtlgen.testing import tiny_model, toy_inputs, toy_model
    from fkhw.faults.sites import SiteSpace

    bundle = None
    if args.model in ("toy", "tiny"):
        ir = toy_model() if args.model == "toy" else tiny_model()
        x = toy_inputs(ir, N_INPUTS, seed=2)
        rows, rows_name = toy_inputs(ir, 2000, seed=5), "2,000 random inputs"
    else:
        from fkhw.model.bundle import load_model

        bundle = load_model(args.model)
        ir = bundle.ir
        rows = encoder_inputs(ir)
        rows_name = f"all {rows.shape[0]:,} vendored rows"
        x = rows[np.random.default_rng(0).choice(rows.shape[0], N_INPUTS, replace=False)]
    sites = np.arange(SiteSpace.of(ir).n_sites)
    if args.sample:
        sites = np.sort(np.random.default_rng(1).choice(sites, min(args.sample, sites.size), replace=False))
    print(f"machine: {machine()} (load average at start {os.getloadavg()[0]:.2f}: the machine is shared)")
    print(f"model {ir.name}: {sites.size} sites x {N_INPUTS} inputs, {args.jobs} simulator processes; cache {tmp}")

    nl, t_synth, _ = _timed(lambda: synthesize_netlist(generate(ir), progress=lambda m: print(f"  {m}", flush=True)))
    _netlist_line("plain", nl, t_synth)

    out, ok = {}, True
    for name, design in (("rtl", None), ("netlist", nl)):
        lv = RtlLevel(ir, jobs=args.jobs, design=design)
        _, t_build, c_build = _timed(lv.build)
        line = f"{name:<8} Verilator build {t_build:6.1f} s wall, {c_build:6.1f} s CPU"
        if name == "netlist":
            gold, t_gold, _ = _timed(lambda: lv.golden(rows))
            bad = int((gold != engine.forward(ir, rows)).any(axis=1).sum())
            ok &= bad == 0
            line += f"; fault-free on {rows_name}: {bad} differ from the engine ({t_gold:.1f} s)"
        print(line, flush=True)
        out[name], t_run, _ = _timed(lambda: lv.run(sites, x))
        print(f"{name:<8} {'sampled' if args.sample else 'exhaustive'} seu campaign {t_run:6.1f} s = {sites.size / t_run:8.0f} injections/s", flush=True)
    disagree = int((out["rtl"] != out["netlist"]).any(axis=(1, 2)).sum())
    changed = int((out["netlist"] != engine.forward(ir, x)[None]).any(axis=(1, 2)).sum())
    print(f"netlist vs RTL: {disagree} disagreeing sites of {sites.size} ({changed} sites change an output)")
    ok &= disagree == 0 and nl.meta["netlist"]["unmapped"] == 0
    if args.hardened:
        ok &= _hardened(ir, bundle, x, args.jobs, tmp, sites if args.sample else None)
    return 0 if ok else 1


def _hardened(ir, bundle, x, jobs: int, tmp: Path, sample=None) -> bool:
    """``sample``: the unprotected sites the proof checks are those of the
    sample (every replica of every protected bit is upset regardless)."""
    from fkhw.campaign.run import CampaignSpec, run_campaign
    from fkhw.levels.software import SoftwareLevel
    from fkhw.rtlgen.netlist import synthesize_netlist
    from fkhw.faults.sites import SiteSpace
    from fkhw.rtlgen.harden import harden
    from fkhw.tmr.proof import HardenedRtlLevel, prove
    from fkhw.tmr.select import CampaignTable, parse_rule, select

    if bundle is not None:
        run_campaign(CampaignSpec(model=bundle.name), bundle, tmp / "sw", quiet=True, fresh=True)
        table = CampaignTable.load(tmp / "sw")
        prot = np.sort(table.site[select(table, parse_rule(1.05, None), ir.n_param_bits()).rows])
    else:  # a toy model has no decoder (no EMD): every 5th bit
        prot = np.arange(0, ir.n_param_bits(), 5)
    nl, t_synth, _ = _timed(lambda: synthesize_netlist(harden(ir, prot), progress=lambda m: print(f"  {m}", flush=True)))
    _netlist_line(f"hardened ({prot.size} protected bits)", nl, t_synth)
    level = HardenedRtlLevel(ir, prot, jobs=jobs, design=nl)
    _, t_build, c_build = _timed(level.build)
    print(f"hardened netlist Verilator build {t_build:6.1f} s wall, {c_build:6.1f} s CPU", flush=True)
    unprot = np.setdiff1d(np.arange(SiteSpace.of(ir).n_sites) if sample is None else sample, prot)
    plain = SoftwareLevel(ir).run(unprot, x)
    rep, t_proof, _ = _timed(lambda: prove(ir, prot, x, plain_outputs=plain, unprotected=unprot, level=level))
    print(f"hardened netlist proof ({rep['executor']}): {rep['frames']:,} frames in {rep['seconds']['simulation']:.1f} s "
          f"= {rep['frames'] / max(rep['seconds']['simulation'], 1e-9):.0f} injections/s; {rep['replica_upsets']:,} "
          f"replica upsets, {rep['protected_output_changes']} output changes, {rep['protected_tmr_err_misses']} "
          f"tmr_err misses; {rep['unprotected_mismatches']} of {rep['unprotected_sites']:,} unprotected bits differ "
          f"from the plain design; ok = {rep['ok']} ({t_proof:.1f} s)", flush=True)
    return bool(rep["ok"])


if __name__ == "__main__":
    sys.exit(main())
