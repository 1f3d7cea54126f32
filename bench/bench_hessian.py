"""Time the Hessian analysis of econt-bol as `fkhw hessian` runs it:
Hutchinson trace per layer, top-5 eigenpairs, the exact diagonal and every
bit score, on a 1024-module batch. Prints the machine (cores, CPU model,
load) with the numbers; the target is < 60 s on 2 cores.

    .venv/bin/python bench/bench_hessian.py
"""

from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    from fkhw.analysis.hessian import Settings, analyse
    from fkhw.model.bundle import load_model
    from fkhw.analysis.ranking import bit_scores

    print(f"machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {cpu_model()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    bundle = load_model("econt-bol")  # IR from the cache: not part of the Hessian's cost
    t0 = time.perf_counter()
    a = analyse(bundle, Settings())
    t = time.perf_counter()
    scores = bit_scores(bundle.ir, a.gradient, a.diagonal, a.eigen.values, a.eigen.vectors)
    t_scores = time.perf_counter() - t
    total = time.perf_counter() - t0
    s = a.seconds
    print(f"econt-bol, {a.gradient.size} parameters, 1024 modules, {a.n_hvp} HVPs:")
    for k, v in s.items():
        if k != "total":
            print(f"  {v:7.2f} s  {k}")
    print(f"  {t_scores:7.2f} s  {len(scores)} bit scores x {len(next(iter(scores.values())))} sites")
    print(f"  trace {a.trace.total:.5g} (exact from the diagonal {a.diagonal.sum():.5g}); "
          f"top-5 {np.array2string(a.eigen.values, precision=4)}")
    budget = 60.0
    verdict = "OK" if total < budget else "OVER BUDGET"
    print(f"total (load + trace + top-5 eigenpairs + exact diagonal + all scores): {total:.1f} s "
          f"[{verdict}: target < {budget:.0f} s]")
    return 0 if total < budget else 1


if __name__ == "__main__":
    sys.exit(main())
