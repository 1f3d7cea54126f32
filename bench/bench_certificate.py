"""Benchmark: the formal certificate (fkhw.tmr.certificate) of the area table's TMR designs.

On a model given by name (default: digits; ``--model econt-bol`` for the
reference) the register-file netlists of selective (every ``--every``-th
parameter bit), selective + refresh, full and full + refresh TMR are
synthesised (or taken from the synthesis cache) and certified. Printed per
design: replica flip-flops covered, gates, seconds of the whole certificate
(wall and CPU of this process and its Yosys child) and the verdict.

The baseline is what a simulation proof covers in comparable time:
``fkhw tmr`` prints its own (proof.json, ``seconds``: every replica of the
hardened RTL upset on the campaign's first 32 modules with the model's
weights); the certificate covers every register content and port input of
the synthesised register files. Run both with ``make sim`` and compare the
``seconds``.
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
from common import cpu_seconds, machine  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="digits", help="model name (default: digits)")
    ap.add_argument("--every", type=int, default=12, help="selective: protect every N-th parameter bit")
    args = ap.parse_args()

    from fkhw.model.bundle import load_model
    from fkhw.rtlgen.emit import generate
    from fkhw.tmr.area import area_designs, design_dir, regfile_netlist
    from fkhw.tmr.certificate import certify

    ir = load_model(args.model).ir
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    prot = np.arange(0, ir.n_param_bits(), args.every)
    plain = generate(ir)
    print(f"model {args.model}: {ir.n_param_bits():,} parameter bits; selective = {prot.size:,} bits "
          f"(every {args.every}th)", flush=True)
    print(f"{'design':<20} {'replica FFs':>11} {'synth s':>8} {'cert wall s':>11} {'cert CPU s':>10}  verdict")
    with tempfile.TemporaryDirectory(prefix="fkhw-bench-cert-") as tmp:
        for name, design, _n, _refresh in area_designs(ir, prot)[1:]:
            slug = design_dir(name)
            t0 = time.perf_counter()
            netlist, _ = regfile_netlist(design, plain, Path(tmp) / "synth" / slug)
            synth_s = time.perf_counter() - t0
            c0, t0 = cpu_seconds(), time.perf_counter()
            cert = certify(design, netlist, Path(tmp) / "cert" / slug, name)
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            verdict = "proven" if cert.proven else "NOT proven: " + cert.counterexample.line()
            print(f"{name:<20} {cert.protected_flip_flops:11,} {synth_s:8.1f} {wall:11.1f} {cpu:10.1f}  {verdict}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
