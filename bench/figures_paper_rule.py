"""Figures: how many bits are "sensitive" under the FKeras paper's rule and
under the same-module rule, and how the paper's-rule fraction moves with the
choice of 32 modules (README, "The paper's rule").

The paper's rule (``--baseline data``): a bit is sensitive when the mean EMD
of the faulty model over its 32 modules exceeds the fault-free mean over the
whole data file. The same-module rule (fkhw's default): ... exceeds the
fault-free mean over the same 32 modules. One exhaustive software campaign
per (model, seed) gives both: the per-site mean EMD does not depend on the
denominator.

    .venv/bin/python bench/figures_paper_rule.py [--seeds 20] [--inputs 32]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402


def main() -> None:
    from fkhw.campaign.run import CampaignSpec, data_baseline_emd, run_campaign
    from fkhw.model.data import DEFAULT_DATA
    from fkhw.model.bundle import load_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--inputs", type=int, default=32)
    ap.add_argument("--models", nargs="+", default=["fkeras-eol", "econt-bol"])
    args = ap.parse_args()
    print(f"machine: {machine()}")
    print(f"data: {DEFAULT_DATA}; {args.seeds} seeds x {args.inputs} modules; exhaustive software campaigns")
    for name in args.models:
        bundle = load_model(name)
        data_mean = data_baseline_emd(bundle, DEFAULT_DATA)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for seed in range(args.seeds):
                res = run_campaign(CampaignSpec(name, n_inputs=args.inputs, seed=seed), bundle, Path(tmp) / str(seed),
                                   quiet=True)
                with (res.out / "campaign.csv").open() as f:
                    table = list(csv.DictReader(f))
                emd = np.array([float(r["emd"]) for r in table])
                kernel = np.array([r["tensor"] == "kernel" for r in table])
                own = res.summary["baseline_emd"]
                rows.append({"seed": seed, "own_mean": own,
                             "paper": float(np.mean(emd / data_mean > 1.0)),
                             "paper_kernel": float(np.mean(emd[kernel] / data_mean > 1.0)),
                             "same": float(np.mean(emd / own > 1.0)),
                             "same_105": float(np.mean(emd / own > 1.05)),
                             "paper_105": float(np.mean(emd / data_mean > 1.05))})
        print(f"\n{name}: fault-free mean EMD over the whole file {data_mean:.4f}")
        print("  seed  32-module mean   paper's rule (all / kernel bits)   same-module rule   (T=1.05: paper / same)")
        for r in rows:
            print(f"  {r['seed']:4d}  {r['own_mean']:14.4f}   {100 * r['paper']:8.2f}% / {100 * r['paper_kernel']:6.2f}%"
                  f"          {100 * r['same']:8.2f}%          {100 * r['paper_105']:6.2f}% / {100 * r['same_105']:6.2f}%")
        for key, label in (("paper", "paper's rule, T = 1"), ("paper_kernel", "paper's rule, T = 1, kernel bits"),
                           ("same", "same-module rule, T = 1"), ("paper_105", "paper's rule, T = 1.05"),
                           ("same_105", "same-module rule, T = 1.05")):
            v = np.array([r[key] for r in rows]) * 100
            print(f"  {label:<34} min {v.min():6.2f}%  median {np.median(v):6.2f}%  max {v.max():6.2f}%")


if __name__ == "__main__":
    main()
