"""How firm a campaign's per-site damage figure is: a confidence interval of
emd_norm over the campaign's modules.

emd_norm of a site is a ratio of two means over the *same* modules:
``mean_n faulty_emd[n] / mean_n fault_free_emd[n]``. The interval is a
paired bootstrap: each replicate redraws the modules with replacement and
recomputes both means on the same redrawn modules, so the module-to-module
spread that numerator and denominator share cancels, as it does in the point
value. Why a bootstrap and not the delta method: an upset changes the output
of only a few modules for most sites (9% of (site, module) pairs on
econt-bol), so the per-module differences are far from normal and a
symmetric analytic interval would reach below 1.0 for sites that can only
raise the EMD. The plain percentile interval ran short on such skewed data
(88% coverage for a nominal 95% with 32-64 modules in the seeded simulation
of tests/damage/test_evidence.py), so the percentiles are bias-corrected and
accelerated (BCa, Efron 1987; acceleration from the leave-one-module-out
jackknife): 92-95% there. What no interval can fix: a site that changes the
output of a module only rarely (1 in 20) shows no change at all on many
32-module samples, and its interval is then the point [1, 1]; the held-out
validation of a TMR map (fkhw.tmr.heldout) is the check for that.

With ``denominator`` given (the paper's rule: the fault-free mean over the
whole data file, a fixed number) only the numerator is redrawn.

The replicate weights depend only on the number of modules and the seed, and
sites are processed in a fixed order: the same campaign gives the same
intervals bit for bit, however it was chunked or resumed.
"""

from __future__ import annotations

import math

import numpy as np

from fkhw.errors import InputError

N_BOOT = 1000
_SEED_SALT = 0xB0075  # keeps the bootstrap stream apart from the module choice of the same seed
_BLOCK = 256  # sites per matrix product: bounds memory at (N_BOOT x modules) + (modules x block)


class EvidenceError(InputError):
    """A confidence level or input the interval cannot be computed for."""


def check_confidence(confidence: float, option: str = "--confidence") -> float:
    c = float(confidence)
    if not (0.0 < c < 1.0):
        raise EvidenceError(f"{option} {confidence:g}: a confidence level lies strictly between 0 and 1 (e.g. 0.95)")
    return c


def bootstrap_weights(n_modules: int, seed: int, n_boot: int = N_BOOT) -> np.ndarray:
    """(n_boot, n_modules) counts: how often each module is drawn in each replicate."""
    rng = np.random.default_rng([_SEED_SALT, int(seed)])
    return rng.multinomial(n_modules, np.full(n_modules, 1.0 / n_modules), size=n_boot).astype(np.float64)


def emd_norm_interval(baseline_emd: np.ndarray, indptr: np.ndarray, module: np.ndarray, emd: np.ndarray,
                      confidence: float, seed: int, denominator: float | None = None,
                      n_boot: int = N_BOOT) -> tuple:
    """(lo, hi) of emd_norm per site.

    ``baseline_emd`` (N,): fault-free EMD per module. Site ``s`` changed the
    output of modules ``module[indptr[s]:indptr[s+1]]``, whose faulty EMDs
    are ``emd[...]``; on every other module its EMD is the baseline's.
    ``denominator``: a fixed fault-free mean (None: the paired mean).
    """
    from scipy.special import ndtr, ndtri

    check_confidence(confidence)
    base = np.asarray(baseline_emd, dtype=np.float64)
    n = base.size
    n_sites = indptr.size - 1
    w = bootstrap_weights(n, seed, n_boot)
    base_sum = w @ base  # (B,) sum of fault-free EMDs over each replicate's modules
    fixed = denominator is not None
    den = np.full(n_boot, float(denominator) * n) if fixed else base_sum
    z = ndtri(np.array([(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0]))
    lo, hi = np.empty(n_sites), np.empty(n_sites)
    counts = np.diff(indptr)
    # a site that changes nothing has the fault-free ratio in every replicate
    lo_1, hi_1 = np.quantile(base_sum / den, ndtr(z))
    lo[counts == 0], hi[counts == 0] = lo_1, hi_1
    changed = np.flatnonzero(counts > 0)
    delta = np.asarray(emd, dtype=np.float64) - base[module]
    sb = base.sum()
    for s0 in range(0, changed.size, _BLOCK):
        block = changed[s0:s0 + _BLOCK]
        d = np.zeros((n, block.size))
        for j, s in enumerate(block.tolist()):
            sl = slice(indptr[s], indptr[s + 1])
            d[module[sl], j] = delta[sl]
        ratio = np.sort((base_sum[:, None] + w @ d) / den[:, None], axis=0)
        sa = sb + d.sum(axis=0)
        point = sa / (sb if not fixed else float(denominator) * n)
        # bias correction: where the point value sits among the replicates
        below = ((ratio < point).sum(axis=0) + 0.5 * (ratio == point).sum(axis=0)) / n_boot
        z0 = ndtri(np.clip(below, 0.5 / n_boot, 1.0 - 0.5 / n_boot))
        # acceleration from the jackknife (leave one module out)
        jack_den = (sb - base)[:, None] if not fixed else float(denominator) * (n - 1)
        jack = (sa[None, :] - base[:, None] - d) / jack_den
        u = jack.mean(axis=0)[None, :] - jack
        su2 = (u ** 2).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):  # su2 == 0 (e.g. 0/1 damages of a classifier): a = 0
            a = np.where(su2 > 0, (u ** 3).sum(axis=0) / (6.0 * np.maximum(su2, 1e-300) ** 1.5), 0.0)
        for k, out in ((0, lo), (1, hi)):
            zz = z0 + z[k]
            level = ndtr(z0 + zz / (1.0 - a * zz))
            pos = np.clip(level * (n_boot - 1), 0, n_boot - 1)
            i0 = np.floor(pos).astype(np.int64)
            i1 = np.minimum(i0 + 1, n_boot - 1)
            frac = pos - i0
            cols = np.arange(block.size)
            out[block] = ratio[i0, cols] * (1 - frac) + ratio[i1, cols] * frac
        # the interval always holds the measured value itself (BCa's shifted percentiles
        # could, in principle, leave it): a rule on the upper end then protects at least
        # what the rule on the value protects
        lo[block] = np.minimum(lo[block], point)
        hi[block] = np.maximum(hi[block], point)
    return lo, hi


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple:
    """The Wilson score interval of a binomial fraction ``k / n`` (the share
    of faults that degrade the output): the one interval of fractions in
    fkhw (campaign summaries, risk tables). With no trials (``n == 0``)
    every fraction is possible: (0, 1)."""
    from scipy.special import ndtri

    if n == 0:
        return (0.0, 1.0)
    z = float(ndtri((1.0 + confidence) / 2.0))
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    # the bounds at k = 0 and k = n are exactly 0 and 1 (rounding would leave 1e-18 off)
    return (0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half))
