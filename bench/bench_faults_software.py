"""Benchmark: the software level's fault routes against the fault model.

econt-bol, 32 inputs (the campaign's default workload). For each fault kind
(seu, mbu:2 and pipeline exhaustive; accumulate:4 with 2,000 seeded samples):
- the fast routes of SoftwareLevel.run_faults on every fault of the kind:
  wall time and faults/s, whole set at once and in campaign-sized chunks
  (the chunked run bounds memory: the largest array is one chunk's outputs);
- the baseline in the same run: fkhw.faults.software.simulate_set (the
  definition, one fault at a time) on a seeded sample, its rate and the time
  it would take on the whole kind;
- mismatches between the two on that sample (``--exhaustive``: on every fault).
Target (issue 14): exhaustive mbu:2 and pipeline <= 10 s each on 2 cores.

    .venv/bin/python bench/bench_faults_software.py [--sample 1000] [--exhaustive]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

N_INPUTS = 32
KINDS = ("seu", "mbu:2", "pipeline", "accumulate:4")
TARGET_S = {"mbu:2": 10.0, "pipeline": 10.0}
CHUNK = 4096


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=1000, help="faults per kind run through the fault model")
    ap.add_argument("--exhaustive", action="store_true", help="run the fault model on every fault (slow)")
    args = ap.parse_args()

    from fkhw.campaign.run import make_workload
    from fkhw.faults.kinds import KindOptions, enumerate_faults, parse_kind
    from fkhw.faults.software import simulate_set
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.levels.software import ROUTES, SoftwareLevel
    from fkhw.model.bundle import load_model

    bundle = load_model("econt-bol")
    x = make_workload(bundle, None, N_INPUTS, 0).inputs
    space = FlipFlopSpace.of(bundle.ir)
    level = SoftwareLevel(bundle.ir)
    level.ffs  # the flip-flop space (RTL stage layout) once, outside the timings
    print(f"machine: {machine()}")
    print(f"software level fault routes: econt-bol, {N_INPUTS} inputs, {space.n_ff} flip-flops")
    print(f"{'kind':<13}{'faults':>8} {'route':<10}{'fast s':>8}{'fast f/s':>10}{'chunked s':>10}"
          f"{'ref sample':>11}{'ref f/s':>9}{'ref s (all)':>12}{'speedup':>9}{'mismatch':>10}  target")
    ok = True
    for spec in KINDS:
        fs = enumerate_faults(space, parse_kind(spec), KindOptions(N_INPUTS, samples=2000, seed=0))
        routes = ("sites" if fs.single_param_sites(level.space.n_sites) is not None  # today's seu: SoftwareLevel.run
                  else ",".join(sorted({ROUTES[r] for r in np.unique(level.routes(fs))})))
        t_fast, fast = timed(lambda: level.run_faults(fs, x))
        t_chunked, _ = timed(lambda: [level.run_faults(fs.take(np.arange(s, min(s + CHUNK, len(fs)))), x)
                                      for s in range(0, len(fs), CHUNK)])
        n_ref = len(fs) if args.exhaustive else min(args.sample, len(fs))
        pick = np.sort(np.random.default_rng(1).choice(len(fs), n_ref, replace=False))
        sub = fs.take(pick)
        t_ref, ref = timed(lambda: simulate_set(bundle.ir, space, sub, x))
        got = type(ref)(fast.latent[pick], fast.lost[pick], fast.extra[pick])
        bad = int(ref.mismatches(got).sum())
        ref_all = t_ref / n_ref * len(fs)
        target = TARGET_S.get(spec)
        verdict = "" if target is None else f"<= {target:.0f} s: {'PASS' if t_fast <= target else 'FAIL'}"
        ok &= bad == 0 and (target is None or t_fast <= target)
        print(f"{spec:<13}{len(fs):>8} {routes:<10}{t_fast:>8.2f}{len(fs) / t_fast:>10.0f}{t_chunked:>10.2f}"
              f"{n_ref:>11}{n_ref / t_ref:>9.0f}{ref_all:>12.1f}{ref_all / t_fast:>8.1f}x{bad:>10}  {verdict}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB (largest: the whole-set outputs, pipeline: "
          f"{70240 * N_INPUTS * 16 * 8 / 2**20:.0f} MiB of int64 latents); chunks of {CHUNK} faults")
    print("ref s (all): the fault model's time extrapolated from its sample to every fault of the kind")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
