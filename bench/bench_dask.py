"""Benchmark: RTL campaign rate through the Dask executor, 1 and 2 workers.

Figures printed (same run, same sites, same machine):
- injections/s of an RTL campaign on a local Dask cluster with 1 worker and
  with 2 workers (chunks of 1024 sites, the default; Verilator build already cached, as it
  is on a worker after its first chunk);
- the overhead per chunk, from 1 worker at two chunk sizes:
  t = n_chunks * overhead + n_sites / rate  (two equations, two unknowns);
- the estimate for N workers: rate_N ~= N / (1/rate + overhead/chunk),
  valid while the client (EMD, store) keeps up: its own cost per site is
  printed as well.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

N_SITES = 4096
CHUNK = 1024  # the campaign's default for simulator levels
SMALL = 256


def timed_campaign(bundle, sites, workers: int, chunk: int, out: Path) -> float:
    from fkhw.campaign.run import CampaignSpec, run_campaign
    from fkhw.campaign.executors import DaskExecutor

    executor = DaskExecutor.local(workers)
    spec = CampaignSpec("econt-bol", level="rtl", sites=tuple(sites), chunk=chunk)
    t0 = time.perf_counter()
    run_campaign(spec, bundle, out, quiet=True, executor=executor)
    return time.perf_counter() - t0


def main() -> None:
    from fkhw.campaign.run import CampaignSpec, run_campaign
    from fkhw.levels.rtl import RtlLevel
    from fkhw.levels.software import SoftwareLevel
    from fkhw.model.bundle import load_model

    print(f"machine: {machine()}")
    bundle = load_model("econt-bol")
    RtlLevel(bundle.ir).build()  # the build is cached by RTL hash; workers reuse it
    sites = np.linspace(0, 10719, N_SITES).astype(int)
    with TemporaryDirectory() as tmp:
        t1 = timed_campaign(bundle, sites, 1, CHUNK, Path(tmp) / "w1")
        t2 = timed_campaign(bundle, sites, 2, CHUNK, Path(tmp) / "w2")
        t1s = timed_campaign(bundle, sites, 1, SMALL, Path(tmp) / "w1s")
        t0 = time.perf_counter()
        run_campaign(CampaignSpec("econt-bol", sites=tuple(sites)), bundle, Path(tmp) / "sw", quiet=True,
                     level=SoftwareLevel(bundle.ir))
        t_client = time.perf_counter() - t0
    n_big, n_small = -(-N_SITES // CHUNK), -(-N_SITES // SMALL)
    overhead = (t1s - t1) / (n_small - n_big)
    per_site = (t1 - n_big * overhead) / N_SITES
    print(f"RTL campaign, {N_SITES} sites x 32 inputs, econt-bol, Dask LocalCluster on loopback:")
    print(f"  1 worker : {t1:6.1f} s  {N_SITES / t1:7.0f} injections/s  (chunks of {CHUNK})")
    print(f"  2 workers: {t2:6.1f} s  {N_SITES / t2:7.0f} injections/s  (speed-up {t1 / t2:4.2f}x on 2 cores)")
    print(f"  1 worker, chunks of {SMALL}: {t1s:6.1f} s -> overhead per chunk {overhead * 1000:6.0f} ms, "
          f"simulation {per_site * 1e3:6.2f} ms per injection")
    print(f"  client side (same sites on the software level: EMD + store): {t_client:5.1f} s "
          f"= {t_client / N_SITES * 1e3:5.2f} ms per site")
    for n in (4, 16, 64):
        rate = n / (per_site + overhead / CHUNK)
        print(f"  estimate {n:3d} workers (chunks of {CHUNK}): {rate:8.0f} injections/s, "
              f"exhaustive 10,720 sites in {10720 / rate + overhead:6.1f} s + cluster start")


if __name__ == "__main__":
    main()
