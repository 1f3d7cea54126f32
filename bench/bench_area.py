"""Benchmark: Yosys + ABC area of the TMR register files, kept voters vs flat.

On a model given by name (default: the toy model of fkhw.rtlgen.testing;
``--model econt-bol`` for the reference) the register-file runs of the area
table (selective = every ``--every``-th parameter bit, with and without
refresh; full TMR, with and without refresh) are synthesised twice, each
into a fresh work directory, no cache:

- baseline: flattened, the voters inside one ABC network (how the area
  table synthesised them before);
- now: each distinct ``fkhw_tmr_voter`` mapped once and counted per
  instance (``fkhw.tmr.area.KEEP``, what ``area_table`` runs).

Printed per run: CPU seconds of Yosys (user + sys), wall seconds,
flip-flops (must be equal), cells and transistors of both. The datapath run
is the same in both and is not repeated here.
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


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model name (default: the toy model)")
    ap.add_argument("--every", type=int, default=12, help="selective: protect every N-th parameter bit")
    ap.add_argument("--work", default=None, help="work directory (default: a temporary one)")
    args = ap.parse_args()

    from fkhw.rtlgen.emit import TOP
    from fkhw.rtlgen.synth import synth
    from fkhw.tmr.area import KEEP, _runs, area_designs

    if args.model:
        from fkhw.model.bundle import load_model

        ir = load_model(args.model).ir
    else:
        from fkhw.rtlgen.testing import toy_model

        ir = toy_model()
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    prot = np.arange(0, ir.n_param_bits(), args.every)
    designs = area_designs(ir, prot, refresh=True)
    with tempfile.TemporaryDirectory(prefix="fkhw-bench-area-") as tmp:
        work = Path(args.work or tmp)
        runs = _runs(designs, work / "rtl")[2:]  # the TMR designs' register files
        print(f"model {ir.name}: {ir.n_param_bits():,} parameter bits; selective = {prot.size:,} bits "
              f"(every {args.every}th)", flush=True)
        print(f"{'design':<20} {'method':<12} {'CPU s':>7} {'wall s':>7} {'FF':>7} {'cells':>9} {'transistors':>12}")
        total = {"flat": 0.0, "kept voters": 0.0}
        for (name, *_), run in zip(designs[1:], runs):
            _, files, libs, _, include = run
            got = {}
            for method, keep in (("flat", ("fkhw_dot",)), ("kept voters", KEEP)):
                c0, t0 = _cpu(), time.perf_counter()
                res = synth(files, TOP, work_dir=work / "synth" / f"{name}_{method}".replace(" ", "_"),
                            include_dirs=[include], lib_files=libs, keep=keep)
                cpu, wall = _cpu() - c0, time.perf_counter() - t0
                total[method] += cpu
                got[method] = res
                print(f"{name:<20} {method:<12} {cpu:7.1f} {wall:7.1f} {res['flip_flops']:7,} {res['cells']:9,} "
                      f"{res['transistors']:12,}", flush=True)
            if got["flat"]["flip_flops"] != got["kept voters"]["flip_flops"]:
                print(f"ERROR: {name}: flip-flops differ", file=sys.stderr)
                return 1
        print(f"register files of the four TMR designs: CPU {total['flat']:.1f} s flat (baseline), "
              f"{total['kept voters']:.1f} s with kept voters ({total['flat'] / max(total['kept voters'], 1e-9):.1f}x "
              f"less); load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
