"""Agreement between two campaigns, joined on ``site``.

Two levels agree on a site when every latent code they recorded for it, on
the same inputs, is identical. The inputs are checked first: a comparison
of different inputs or models means nothing and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.campaign_files import read_outputs, read_summary
from fkhw.outputs import CampaignOutputs

_BLOCK = 256  # sites compared at once: bounds memory at many modules


class AgreementError(ValueError):
    """Two campaigns that cannot be compared, and why."""


@dataclass(frozen=True)
class Campaign:
    path: Path
    summary: dict
    sites: np.ndarray
    inputs: np.ndarray
    baseline: np.ndarray
    outputs: CampaignOutputs

    @staticmethod
    def load(path: Path, option: str = "--campaign") -> "Campaign":
        path = Path(path)
        summary = read_summary(path, option)
        z = read_outputs(path, summary, option)
        return Campaign(path, summary, z.sites, z.inputs, z.baseline, z)


@dataclass(frozen=True)
class Agreement:
    level_a: str
    level_b: str
    common_sites: int
    only_a: int
    only_b: int
    baseline_identical: bool
    disagreeing_sites: list
    mismatching_values: int

    def to_dict(self) -> dict:
        return {
            "level_a": self.level_a,
            "level_b": self.level_b,
            "common_sites": self.common_sites,
            "sites_only_in_a": self.only_a,
            "sites_only_in_b": self.only_b,
            "baseline_identical": self.baseline_identical,
            "disagreeing": len(self.disagreeing_sites),
            "mismatching_latent_values": self.mismatching_values,
            "disagreeing_sites": self.disagreeing_sites,
        }


def compare(a: Campaign, b: Campaign) -> Agreement:
    for key in ("model_digest", "inputs"):
        if a.summary.get(key) != b.summary.get(key):
            raise AgreementError(f"{a.path} and {b.path} differ in {key}: "
                                 f"{a.summary.get(key)!r} vs {b.summary.get(key)!r}")
    if not np.array_equal(a.inputs, b.inputs):
        raise AgreementError(f"{a.path} and {b.path} ran different inputs (check --seed, --inputs, --data)")
    common, ia, ib = np.intersect1d(a.sites, b.sites, return_indices=True)
    if common.size == 0:
        raise AgreementError(f"{a.path} and {b.path} have no site in common")
    bad, mismatching = [], 0
    for k in range(0, common.size, _BLOCK):
        sl = slice(k, k + _BLOCK)
        diff = a.outputs.latent(ia[sl]).astype(np.int64) != b.outputs.latent(ib[sl]).astype(np.int64)
        bad.append(common[sl][diff.any(axis=(1, 2))])
        mismatching += int(diff.sum())
    bad_sites = np.concatenate(bad)
    return Agreement(
        level_a=a.summary.get("level", "?"),
        level_b=b.summary.get("level", "?"),
        common_sites=int(common.size),
        only_a=int(a.sites.size - common.size),
        only_b=int(b.sites.size - common.size),
        baseline_identical=bool(np.array_equal(a.baseline, b.baseline)),
        disagreeing_sites=[int(s) for s in bad_sites],
        mismatching_values=mismatching,
    )
