"""Held-out validation of a TMR map: does it protect the bits that are
sensitive on modules it was not chosen on?

The held-out modules are drawn (seeded) from the same data file among the
modules no campaign of the map used, or from another file (another physics
process is the real test). An exhaustive software campaign on them gives
each site's held-out emd_norm; the map is then judged by

- coverage: held-out-sensitive bits (held-out emd_norm > T) that the map
  protects, over all held-out-sensitive bits;
- the worst held-out emd_norm among the bits it leaves unprotected, and the
  bits behind it.

A map is *stable* when coverage >= 99% and the worst unprotected held-out
emd_norm is <= T + 0.01 (``STABLE_COVERAGE``, ``STABLE_MARGIN``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fkhw.campaign.files import damage_column
from fkhw.model import data

DEFAULT_MODULES = 1024
STABLE_COVERAGE = 0.99
STABLE_MARGIN = 0.01
_SEED_SALT = 0x4E1D0  # the held-out draw is apart from the campaign's draw of the same seed
N_LISTED = 20  # unprotected held-out-sensitive bits listed in the report


def heldout_rows(charges: np.ndarray, exclude, n: int, seed: int, path, option: str) -> np.ndarray:
    """``n`` seeded module rows with non-zero charge, none of them in ``exclude``."""
    if n < 1:
        raise data.DataError(f"--validate-inputs must be at least 1, got {n}")
    nonzero = np.flatnonzero(charges.sum(axis=1) > 0)
    free = np.setdiff1d(nonzero, np.asarray(exclude, dtype=np.int64))
    if free.size < n:
        raise data.DataError(
            f"{option} {path}: {free.size} modules with non-zero charge are left besides the campaign's "
            f"{len(exclude)}, the held-out set needs {n} (give --validate-inputs, --validate-data or a bigger file)")
    rng = np.random.default_rng([_SEED_SALT, int(seed)])
    return np.sort(rng.choice(free, size=n, replace=False))


@dataclass(frozen=True)
class Validation:
    threshold: float
    modules: int  # held-out modules
    data: str
    campaign: str  # the held-out campaign folder
    sensitive_bits: int  # held-out emd_norm > T
    protected_sensitive_bits: int
    coverage: float
    worst_unprotected_emd_norm: float
    missed: list  # unprotected held-out-sensitive bits, worst first (at most N_LISTED)
    n_missed: int
    column: str = "emd_norm"  # the damage the bits are judged by (the campaign's metric column)

    @property
    def stable(self) -> bool:
        return self.coverage >= STABLE_COVERAGE and self.worst_unprotected_emd_norm <= self.threshold + STABLE_MARGIN

    def to_dict(self) -> dict:
        return {**asdict(self), "stable": self.stable,
                "stable_means": f"coverage >= {STABLE_COVERAGE:.0%} and worst unprotected held-out "
                                f"{self.column} <= T + {STABLE_MARGIN:g}"}

    def line(self) -> str:
        worst = ", ".join(f"site {m['site']} ({m['layer']} {m['tensor']}[{m['index']}] bit {m['bit']}) "
                          f"{m['heldout_emd_norm']:.4f}" for m in self.missed[:3])
        return (f"held-out check on {self.modules} other modules: coverage {100 * self.coverage:.2f}% "
                f"({self.protected_sensitive_bits} of {self.sensitive_bits} bits with {self.column} > {self.threshold:g} "
                f"there are protected); worst unprotected held-out {self.column} {self.worst_unprotected_emd_norm:.4f}"
                + (f" from {worst}" if worst else ""))


def validate(protected_sites, heldout_table, threshold: float, campaign_table=None) -> Validation:
    """Judge a map (``protected_sites``) against a held-out campaign table
    (``fkhw.tmr.select.CampaignTable``); ``campaign_table`` adds each missed
    bit's own campaign value and interval to the listing."""
    protected = np.isin(heldout_table.site, np.asarray(protected_sites, dtype=np.int64))
    sensitive = heldout_table.emd_norm > threshold
    n_sens = int(sensitive.sum())
    n_cov = int((sensitive & protected).sum())
    unprot = np.flatnonzero(~protected)
    worst = float(heldout_table.emd_norm[unprot].max()) if unprot.size else 1.0
    missed_rows = unprot[heldout_table.emd_norm[unprot] > threshold]
    missed_rows = missed_rows[np.lexsort((heldout_table.site[missed_rows], -heldout_table.emd_norm[missed_rows]))]
    own = {}
    if campaign_table is not None:
        hi = campaign_table.emd_norm_hi if campaign_table.emd_norm_hi is not None else campaign_table.emd_norm
        lo = campaign_table.emd_norm_lo if campaign_table.emd_norm_lo is not None else campaign_table.emd_norm
        own = {int(s): (float(m), float(a), float(b))
               for s, m, a, b in zip(campaign_table.site, campaign_table.emd_norm, lo, hi)}
    missed = []
    for r in missed_rows[:N_LISTED].tolist():
        site = int(heldout_table.site[r])
        entry = {"site": site, "layer": heldout_table.layer[r], "tensor": heldout_table.tensor[r],
                 "index": int(heldout_table.index[r]), "bit": int(heldout_table.bit[r]),
                 "heldout_emd_norm": float(heldout_table.emd_norm[r])}
        if site in own:
            entry["campaign_emd_norm"], entry["campaign_emd_norm_lo"], entry["campaign_emd_norm_hi"] = own[site]
        missed.append(entry)
    return Validation(float(threshold), int(heldout_table.summary.get("inputs", 0)),
                      str(heldout_table.summary.get("data", "")), str(heldout_table.path), n_sens, n_cov,
                      n_cov / n_sens if n_sens else 1.0, worst, missed, int(missed_rows.size),
                      damage_column(heldout_table.summary))


def run_heldout(bundle, out: Path, rows, data_path, seed: int, quiet: bool = False, metric: dict | None = None):
    """The exhaustive software campaign on the held-out modules (resumable
    like any campaign); returns its table."""
    from fkhw.campaign.run import CampaignSpec, run_campaign
    from fkhw.tmr.select import CampaignTable

    spec = CampaignSpec(bundle.name, level="software", seed=seed, data=None if data_path is None else str(data_path),
                        rows=tuple(int(r) for r in rows), n_inputs=len(rows), **(metric or {}))
    run_campaign(spec, bundle, Path(out), quiet=quiet)
    return CampaignTable.load(out)
