"""Benchmark: the exhaustive software campaign against FKeras-style injection.

Figures printed:
- wall time of the whole `fkhw campaign` command (exhaustive, econt-bol,
  32 inputs, EMD, Figure 1 skipped), with a warm and a cold extraction cache,
  and the child's peak memory;
- faults/s of that command, and of the FKeras way on a sample of faults in
  the same run: set the faulty weight into the QKeras model, predict with
  encoder and decoder, EMD with ot.emd2 per input;
- the ratio of the two rates.
Floors (issue 3): < 10 s wall, >= 100x the FKeras rate, < 2 GiB peak.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fkhw_cmd, machine, run_timed  # noqa: E402

N_FKERAS = 60


def fkeras_style_rate(n_faults: int) -> float:
    import ot

    from fkhw.campaign.run import make_workload
    from fkhw.model.data import from_image, geometry
    from fkhw.levels.qkeras import QKerasLevel
    from fkhw.model.bundle import load_model
    from fkhw.model.keras_io import load_decoder

    bundle = load_model("econt-bol")
    level, dec = QKerasLevel(bundle), load_decoder(bundle.files)
    work = make_workload(bundle, None, 32, 0)
    x = (work.inputs * 2.0 ** -bundle.ir.input.fmt.frac).astype(np.float32)
    M = geometry().ground_distance
    sites = np.random.default_rng(0).choice(level.space.n_sites, n_faults, replace=False)
    t0 = time.perf_counter()
    for site in sites.tolist():
        with level.upset(site) as enc:  # set the faulty weight into the QKeras model
            latent = enc.predict(x, verbose=0)
        cells = from_image(dec.predict(latent, verbose=0)).astype(np.float64)
        emd = [ot.emd2(c / c.sum(), o / o.sum(), M) for c, o in zip(work.charges, cells)]
        float(np.mean(emd))
    return n_faults / (time.perf_counter() - t0)


def main() -> None:
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        cold_cache = Path(tmp) / "cache"
        args = ["campaign", "--model", "econt-bol", "--level", "software", "--inputs", "32", "--seed", "0",
                "--no-plot"]
        cold, peak_cold, _ = run_timed(fkhw_cmd(*args, "--out", f"{tmp}/cold"), env={"FKHW_CACHE": str(cold_cache)})
        warm, peak_warm, proc = run_timed(fkhw_cmd(*args, "--out", f"{tmp}/warm"), env={"FKHW_CACHE": str(cold_cache)})
        print(proc.stdout.strip())
    n_sites = 10720
    ours = n_sites / warm
    print(f"fkhw campaign, exhaustive {n_sites} sites x 32 inputs with EMD (whole command):")
    print(f"  warm cache: {warm:6.2f} s wall  ({ours:8.0f} faults/s)   peak RSS {peak_warm:6.0f} MiB")
    print(f"  cold cache: {cold:6.2f} s wall  (includes TensorFlow + model extraction)   peak RSS {peak_cold:6.0f} MiB")
    fk = fkeras_style_rate(N_FKERAS)
    print(f"FKeras-style (set weight, QKeras+Keras predict, ot.emd2), {N_FKERAS} sampled faults: {fk:8.2f} faults/s")
    print(f"ratio fkhw / FKeras-style: {ours / fk:8.0f}x  (floor 100x; wall floor 10 s: "
          f"{'met' if warm < 10 else 'MISSED'}; memory floor 2 GiB: {'met' if peak_warm < 2048 else 'MISSED'})")


if __name__ == "__main__":
    main()
