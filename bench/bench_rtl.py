"""Benchmark: the exhaustive RTL campaign on econt-bol.

10,720 sites x 32 inputs: each site is one SEU deposited into a weight
flip-flop of the generated Verilog, simulated by Verilator under cocotb,
with the register scrubbed through the configuration port afterwards.
Figures printed:
- wall time including a cold Verilator build (fresh build directory; the
  Verilator runtime objects are not reused either), split into build and
  simulation, and the injection rate over the whole and over simulation;
- in the same run, the software level's rate on the same sites (the
  vectorised integer engine), and the ratio;
- agreement: RTL outputs == software outputs for every site and input.
Floor (issue 6): < 120 s wall for the exhaustive campaign including the build.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

FLOOR_S = 120.0
N_INPUTS = 32


def software_rate(model, sites, x) -> tuple:
    try:
        from fkhw.levels.software import SoftwareLevel

        level, how = SoftwareLevel(model), "fkhw.levels.software.SoftwareLevel"
        t = time.perf_counter()
        out = level.run(sites, x)
        return len(sites) / (time.perf_counter() - t), out, how
    except ImportError:
        from fkhw.model import engine
        from fkhw.faults.sites import SiteSpace, flip

        space = SiteSpace.of(model)
        t = time.perf_counter()
        out = np.stack([engine.forward(flip(model, space, int(s)), x) for s in sites])
        return len(sites) / (time.perf_counter() - t), out, "engine.forward per flipped model (naive)"


def main() -> int:
    from fkhw.levels.rtl import RtlLevel, encoder_inputs
    from fkhw.model.bundle import load_model
    from fkhw.faults.sites import SiteSpace

    model = load_model("econt-bol").ir
    x = encoder_inputs(model)[:N_INPUTS]
    sites = np.arange(SiteSpace.of(model).n_sites)
    jobs = os.cpu_count() or 1
    print(f"machine: {machine()}")
    print(f"RTL campaign: econt-bol, {sites.size} sites x {N_INPUTS} inputs, {jobs} simulator processes")
    with tempfile.TemporaryDirectory(prefix="fkhw-bench-rtl-") as root:
        t0 = time.perf_counter()
        level = RtlLevel(model, jobs=jobs, build_root=Path(root))
        level.build()
        t_build = time.perf_counter() - t0
        out = level.run(sites, x)
        total = time.perf_counter() - t0
    t_sim = total - t_build
    print(f"  build (cold)   : {t_build:6.1f} s")
    print(f"  simulation     : {t_sim:6.1f} s   {sites.size / t_sim:8.0f} injections/s "
          f"({sites.size * N_INPUTS / t_sim:.0f} vectors/s)")
    print(f"  total          : {total:6.1f} s   {sites.size / total:8.0f} injections/s including the build "
          f"(floor < {FLOOR_S:.0f} s: {'PASS' if total < FLOOR_S else 'FAIL'})")
    rate, sw, how = software_rate(model, sites, x)
    agree = int((out == sw).all(axis=(1, 2)).sum())
    print(f"software level   : {rate:8.0f} injections/s ({how}); software/RTL-incl-build = {rate / (sites.size / total):.1f}x, "
          f"software/RTL-sim = {rate / (sites.size / t_sim):.1f}x")
    print(f"agreement        : {agree} of {sites.size} sites identical on all {N_INPUTS} inputs")
    return 0 if total < FLOOR_S and agree == sites.size else 1


if __name__ == "__main__":
    sys.exit(main())
