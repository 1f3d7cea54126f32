"""Benchmark: the RTL level (cocotb on Verilator) on every fault kind, econt-bol.

32 inputs, the Verilator builds cached (built first, not timed). For each
kind: injections/s of ``RtlLevel.run_faults`` (2 simulator processes = the
machine's cores), the clocks per frame, and the mismatches against the
software level (``SoftwareLevel(model).run_faults``: the fault model) on the
same faults. Kinds: ``seu`` exhaustive, ``mbu:2`` exhaustive, ``pipeline``
exhaustive (or ``--pipeline-sample N`` seeded faults), ``accumulate:4``
(``--samples``).

Baseline in the same run (``--baseline``): the pure C++ Verilator harness,
bench/bench_rtl_harness.py (``--skip-campaign``), when it is in the tree;
otherwise the issue's figure (8,200 injections/s on 2 processes) is printed
as a reference only. Targets (issue 14): seu within 3x of the 2-process
harness; pipeline and mbu:2 at >= half the seu rate per injection.

    .venv/bin/python bench/bench_rtl_faults.py [--kinds seu,mbu:2,pipeline] [--pipeline-sample 20000] [--baseline]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

N_INPUTS = 32


def harness_baseline() -> str:
    script = Path(__file__).resolve().parent / "bench_rtl_harness.py"
    if not script.is_file():
        return "bench/bench_rtl_harness.py not present: issue figure, C++ harness 8,200 injections/s (2 processes)"
    p = subprocess.run([sys.executable, str(script), "--skip-campaign"], capture_output=True, text=True)
    return "C++ harness (bench/bench_rtl_harness.py):\n" + (p.stdout + p.stderr).strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="seu,mbu:2,pipeline,accumulate:4")
    ap.add_argument("--pipeline-sample", type=int, default=0, help="pipeline: a seeded sample of N faults (0: all)")
    ap.add_argument("--samples", type=int, default=2000, help="accumulate: samples")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--baseline", action="store_true", help="also run the C++ harness (bench_rtl_harness.py)")
    args = ap.parse_args()

    from fkhw.faults.kinds import KindOptions, enumerate_faults, parse_kind
    from fkhw.levels.rtl import RtlLevel, encoder_inputs
    from fkhw.levels.software import SoftwareLevel
    from fkhw.model.bundle import load_model

    model = load_model("econt-bol").ir
    x = encoder_inputs(model)[:N_INPUTS]
    level = RtlLevel(model, jobs=args.jobs)
    sw = SoftwareLevel(model)
    print(f"machine: {machine()}")
    print(f"RTL level, econt-bol, {N_INPUTS} inputs, {args.jobs} simulator processes, builds cached")
    t = time.perf_counter()
    level.build()
    level.build(pipeline=True)
    print(f"  builds (plain, pipeline-public): {time.perf_counter() - t:.1f} s (0 when cached)")
    ok, rates = True, {}
    for kind in args.kinds.split(","):
        fs = enumerate_faults(level.space, parse_kind(kind), KindOptions(n_vectors=N_INPUTS, samples=args.samples))
        if kind == "pipeline" and args.pipeline_sample and args.pipeline_sample < len(fs):
            rng = np.random.default_rng(14)
            fs = fs.take(np.sort(rng.choice(len(fs), args.pipeline_sample, replace=False)))
        t = time.perf_counter()
        obs = level.run_faults(fs, x)
        dt = time.perf_counter() - t
        ref = sw.run_faults(fs, x)
        bad = int(obs.mismatches(ref).sum())
        ok = ok and bad == 0
        rates[kind] = len(fs) / dt
        print(f"  {kind:14s}: {len(fs):7d} faults in {dt:6.1f} s = {len(fs) / dt:7.0f} injections/s, "
              f"{level.stats['period']} clocks/frame; mismatches vs software: {bad}; "
              f"lost slots {int(obs.lost.sum())}, extra outputs {int(obs.extra.sum())}")
    if "seu" in rates:
        for kind in ("mbu:2", "pipeline"):
            if kind in rates:
                print(f"  {kind} / seu rate per injection: {rates[kind] / rates['seu']:.2f} (target >= 0.5)")
    if args.baseline:
        print(harness_baseline())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
