"""Benchmark: what each protection of the weight registers costs in area (Yosys + ABC, the area table's method).

On a model given by name (default: digits; ``--model econt-bol`` for the
reference): the plain encoder (the baseline), full TMR of every weight bit
(with and without refresh) and the register files kept as SEC-DED words
(fkhw.rtlgen.variant.DesignVariant.secded: check bits and a decoder per
word), a word per register and words of 8, 16, 32 and 64 bits packed
across the registers (``--words 8 8i``: others, ``i`` bit-interleaved). Printed per design: flip-flops, cells and
transistors (Yosys' CMOS estimate with the flip-flops it leaves out:
fkhw.rtlgen.synth.ff_transistors) of the register files and of the whole
encoder, and the overhead over the plain encoder. Synthesis results are
cached (fkhw.tmr.area), so a second run prints at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="digits", help="model name (default: digits)")
    ap.add_argument("--words", nargs="*", default=["8", "16", "32", "64"],
                    help="SEC-DED words: N data bits, Ni bit-interleaved (default: 8 16 32 64)")
    args = ap.parse_args()

    from fkhw.model.bundle import load_model
    from fkhw.rtlgen.emit import generate
    from fkhw.rtlgen.harden import harden
    from fkhw.rtlgen.variant import DesignVariant
    from fkhw.tmr.area import design_dir, synth_hierarchical

    ir = load_model(args.model).ir
    everything = range(ir.n_param_bits())
    plain = generate(ir)
    designs = [("plain", plain), ("full TMR", harden(ir, everything)),
               ("full TMR + refresh", harden(ir, everything, refresh=True)),
               ("secded (per register)", generate(ir, DesignVariant.secded("secded")))]
    designs += [(f"secded:{n}", generate(ir, DesignVariant.secded(f"secded:{n}"))) for n in args.words]
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    print(f"model {args.model}: {ir.n_param_bits():,} weight bits in {plain.meta['n_registers']:,} registers", flush=True)
    print(f"{'design':<22} {'regfile FFs':>11} {'regfile cells':>13} {'regfile transistors':>19} "
          f"{'total transistors':>17} {'overhead':>9} {'synth s':>8}")
    base = None
    with tempfile.TemporaryDirectory(prefix="fkhw-bench-protect-") as tmp:
        for name, design in designs:
            t0 = time.perf_counter()
            res = synth_hierarchical(design, plain, Path(tmp) / design_dir(name).replace(" ", "_").replace("-", ""))
            rf = res["regfiles"]
            base = base or res
            over = 100.0 * (res["transistors"] - base["transistors"]) / base["transistors"]
            print(f"{name:<22} {rf['flip_flops']:>11,} {rf['cells']:>13,} {rf['transistors']:>19,} "
                  f"{res['transistors']:>17,} {over:>8.1f}% {time.perf_counter() - t0:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
