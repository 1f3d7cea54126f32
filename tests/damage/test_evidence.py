"""The per-site interval of emd_norm (fkhw.damage.intervals), as a specification."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from fkhw.damage.intervals import EvidenceError, emd_norm_interval


def population(rng, n: int, p_changed: float):
    """Modules of a made-up site: fault-free EMDs spread like the real ones
    (gamma, mean ~1.3) and an upset that raises the EMD of a fraction of
    modules by a skewed amount (most upsets hit few modules, some hard)."""
    base = rng.gamma(4.0, 0.33, n)
    hit = rng.random(n) < p_changed
    delta = np.where(hit, rng.exponential(0.6, n), 0.0)
    return base, base + delta


def sample_interval(base, faulty, rows, confidence, seed):
    changed = np.flatnonzero(faulty[rows] != base[rows])
    indptr = np.array([0, changed.size])
    return emd_norm_interval(base[rows], indptr, changed, faulty[rows][changed], confidence, seed)


@pytest.mark.parametrize("n_modules,p_changed", [(64, 0.3), (256, 0.1)])
def test_intervals_contain_the_full_data_value_at_about_the_stated_rate(n_modules, p_changed):
    rng = np.random.default_rng(12)
    base, faulty = population(rng, 50_000, p_changed)
    truth = faulty.mean() / base.mean()  # the value over the whole "data file"
    trials, hits = 300, 0
    for k in range(trials):
        rows = rng.choice(base.size, n_modules, replace=False)
        lo, hi = sample_interval(base, faulty, rows, 0.95, seed=k)
        hits += bool(lo[0] <= truth <= hi[0])
    rate = hits / trials
    # 300 trials: the binomial spread of a 95% rate is 1.3 points; percentile
    # bootstraps run a little short of nominal on skewed data
    assert 0.90 <= rate <= 0.985, f"coverage {rate:.3f} of a 95% interval"


def test_a_lower_confidence_gives_a_narrower_interval_inside_the_wider_one():
    rng = np.random.default_rng(3)
    base, faulty = population(rng, 2000, 0.3)
    rows = np.arange(128)
    lo95, hi95 = sample_interval(base, faulty, rows, 0.95, seed=0)
    lo50, hi50 = sample_interval(base, faulty, rows, 0.50, seed=0)
    assert lo95[0] < lo50[0] < hi50[0] < hi95[0]


def test_an_upset_that_changes_nothing_has_the_point_interval_one():
    base = np.random.default_rng(0).gamma(4.0, 0.33, 40)
    lo, hi = emd_norm_interval(base, np.array([0, 0, 0]), np.zeros(0, dtype=int), np.zeros(0), 0.95, 0)
    assert lo.tolist() == hi.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("c", [0.0, 1.0, 1.5, -0.2])
def test_a_confidence_outside_zero_one_is_refused(c):
    with pytest.raises(EvidenceError, match="--confidence"):
        emd_norm_interval(np.ones(4), np.array([0, 0]), np.zeros(0, dtype=int), np.zeros(0), c, 0)


def test_campaign_table_carries_the_interval_around_each_value(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fkhw", "campaign", "--inputs", "16", "--stop-after", "600",
                        "--out", str(tmp_path), "--no-plot"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with (tmp_path / "campaign.csv").open() as f:
        rows = list(csv.DictReader(f))
    m = np.array([float(x["emd_norm"]) for x in rows])
    lo = np.array([float(x["emd_norm_lo"]) for x in rows])
    hi = np.array([float(x["emd_norm_hi"]) for x in rows])
    changed = np.array([int(x["n_changed"]) for x in rows]) > 0
    assert np.all(lo <= m) and np.all(m <= hi)
    assert np.all(lo[~changed] == 1.0) and np.all(hi[~changed] == 1.0)
    assert np.any(hi[changed] > lo[changed])


def test_cli_refuses_a_confidence_outside_zero_one(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fkhw", "campaign", "--confidence", "1.2", "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--confidence 1.2" in r.stderr and len(r.stderr.strip().splitlines()) == 1
