"""Benchmark: what a replay's waveform costs (fkhw.replays, ``fkhw replay --waves``).

On a model given by name (default: digits; ``--model econt-bol`` for the
reference) the generated RTL is built twice in an empty build folder: the
plain Verilator model (the baseline: what every RTL campaign builds) and the
traced one a waveform needs. Then one parameter upset is run on ``--inputs``
modules on each, and the waveform is read back (pywellen). Printed: build
wall and CPU seconds of each, run seconds, the waveform's size and signals,
and the time to read it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_seconds, machine  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="digits", help="model name (default: digits)")
    ap.add_argument("--inputs", type=int, default=32, help="modules streamed in the replayed frame (default 32)")
    args = ap.parse_args()

    import pywellen

    from fkhw.faults.space import FaultSet
    from fkhw.levels.rtl import RtlLevel, encoder_inputs

    from fkhw.model.bundle import load_model

    ir = load_model(args.model).ir
    x = encoder_inputs(ir)[:args.inputs]
    site = ir.n_param_bits() // 2
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    print(f"model {args.model}: {ir.n_param_bits():,} parameter bits; one upset (site {site}) on {x.shape[0]} modules",
          flush=True)
    print(f"{'build':<8} {'build wall s':>12} {'build CPU s':>11} {'run s':>6} {'waveform MB':>11} {'signals':>8} "
          f"{'read s':>6}")
    with tempfile.TemporaryDirectory(prefix="fkhw-bench-replay-") as tmp:
        for waves in (None, "vcd"):
            work = Path(tmp) / f"work-{waves or 'plain'}"
            level = RtlLevel(ir, jobs=1, build_root=Path(tmp) / "builds", work_dir=work, waves=waves,
                             log=lambda line: None)
            c0, t0 = cpu_seconds(), time.perf_counter()
            level.build()
            build_wall, build_cpu = time.perf_counter() - t0, cpu_seconds() - c0
            t0 = time.perf_counter()
            level.run_faults(FaultSet.single("seu", [site], [site]), x)
            run = time.perf_counter() - t0
            size, signals, read = "-", "-", "-"
            if waves:
                path = work / "job0" / f"fkhw_waves.{waves}"
                t0 = time.perf_counter()
                wave = pywellen.Waveform(str(path))
                n = len(wave.all_vars())
                read = f"{time.perf_counter() - t0:.2f}"
                size, signals = f"{path.stat().st_size / 1e6:.1f}", f"{n:,}"
            print(f"{waves or 'plain':<8} {build_wall:>12.1f} {build_cpu:>11.1f} {run:>6.2f} {size:>11} {signals:>8} "
                  f"{read:>6}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
