"""Benchmark: the gate-level netlist under the RTL testbench.

On a model given by name (default: the toy model of fkhw.rtlgen.testing;
``--model econt-bol`` for the reference, whose netlist build takes very
long, see the README) and in fresh cache directories:
- Yosys: synthesis + ABC of the plain netlist (seconds, cells, flip-flops,
  flip-flops named: parameter bits found, unmapped);
- Verilator: build of the testbench around the netlist (cold);
- the exhaustive single-bit campaign on the netlist: injections/s;
- baseline in the same run: the same campaign on the RTL (its own cold
  build), and the agreement of the two (disagreeing sites must be 0).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

N_INPUTS = 32


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="toy", help="toy (default), tiny, or a model name / directory")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fkhw-bench-netlist-"))
    os.environ["FKHW_RTL_BUILD"] = str(tmp / "rtl_sim")
    os.environ["FKHW_NETLIST_CACHE"] = str(tmp / "netlist")

    from fkhw.levels.rtl import RtlLevel, encoder_inputs
    from fkhw.rtlgen.emit import generate
    from fkhw.rtlgen.netlist import synthesize_netlist
    from fkhw.rtlgen.testing import tiny_model, toy_inputs, toy_model
    from fkhw.sites import SiteSpace

    if args.model in ("toy", "tiny"):
        ir = toy_model() if args.model == "toy" else tiny_model()
        x = toy_inputs(ir, N_INPUTS, seed=2)
    else:
        from fkhw.model.bundle import load_model

        ir = load_model(args.model).ir
        rows = encoder_inputs(ir)
        x = rows[np.random.default_rng(0).choice(rows.shape[0], N_INPUTS, replace=False)]
    sites = np.arange(SiteSpace.of(ir).n_sites)
    print(f"machine: {machine()}")
    print(f"model {ir.name}: {sites.size} sites x {N_INPUTS} inputs, {args.jobs} simulator processes")

    t = time.perf_counter()
    nl = synthesize_netlist(generate(ir), progress=lambda m: print(f"  {m}", flush=True))
    t_synth = time.perf_counter() - t
    info = nl.meta["netlist"]
    print(f"yosys netlist: {t_synth:.1f} s, {info['synthesis']['cells']:,} cells, {info['flip_flops']:,} flip-flops "
          f"({info['parameter_bits_found']:,}/{info['parameter_bits']:,} parameter bits found, "
          f"{info['unmapped']} unmapped)")

    out = {}
    for name, design in (("rtl", None), ("netlist", nl)):
        lv = RtlLevel(ir, jobs=args.jobs, design=design)
        t = time.perf_counter()
        lv.build()
        t_build = time.perf_counter() - t
        t = time.perf_counter()
        out[name] = lv.run(sites, x)
        t_run = time.perf_counter() - t
        print(f"{name:<8} build {t_build:6.1f} s   exhaustive campaign {t_run:6.1f} s = "
              f"{sites.size / t_run:8.0f} injections/s")
    disagree = int((out["rtl"] != out["netlist"]).any(axis=(1, 2)).sum())
    print(f"netlist vs RTL: {disagree} disagreeing sites of {sites.size}")
    return 0 if disagree == 0 and info["unmapped"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
