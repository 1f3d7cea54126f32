"""Agreement between two campaigns, joined on ``site`` (seu) or on the
stable fault id (every other kind).

Two levels agree on a fault when every latent code they recorded for it, on
the same inputs, is identical, and so are the slots it left without a valid
flag and its count of extra outputs. The inputs and the faults are checked
first: a comparison of different inputs, models or faults means nothing and
is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.errors import InputError
from fkhw.campaign.files import kind_of, read_outputs, read_summary
from fkhw.campaign.outputs import CampaignOutputs

_BLOCK = 256  # sites compared at once: bounds memory at many modules


class AgreementError(InputError):
    """Two campaigns that cannot be compared, and why."""


@dataclass(frozen=True)
class Campaign:
    """What agreement reads of a campaign folder: its summary and recorded outputs."""

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
    """Two campaigns compared: the rows (sites or faults) they share, those
    whose outputs differ (``disagreeing_sites``, empty when they agree),
    the mismatching output values, and whether the fault-free outputs are
    identical. ``to_dict()`` is ``agreement.json``."""

    level_a: str
    level_b: str
    common_sites: int  # common rows: sites (seu) or faults
    only_a: int
    only_b: int
    baseline_identical: bool
    disagreeing_sites: list  # the disagreeing row keys
    mismatching_values: int
    kind: str = "seu"
    mismatching_lost: int = 0  # (fault, slot) pairs whose valid flag differs
    mismatching_extra: int = 0  # faults whose count of extra outputs differs

    @property
    def unit(self) -> str:
        return "sites" if self.kind == "seu" else "faults"

    def to_dict(self) -> dict:
        u = self.unit
        d = {
            "level_a": self.level_a,
            "level_b": self.level_b,
            f"common_{u}": self.common_sites,
            f"{u}_only_in_a": self.only_a,
            f"{u}_only_in_b": self.only_b,
            "baseline_identical": self.baseline_identical,
            "disagreeing": len(self.disagreeing_sites),
            "mismatching_latent_values": self.mismatching_values,
            f"disagreeing_{u}": self.disagreeing_sites,
        }
        if self.kind != "seu":
            d = {"kind": self.kind, **d, "mismatching_lost_slots": self.mismatching_lost,
                 "mismatching_extra": self.mismatching_extra}
        return d


def compare(a: Campaign, b: Campaign) -> Agreement:
    """Join ``a`` and ``b`` on site (or fault id) and compare every recorded
    output; campaigns of different models, inputs or faults are refused
    (AgreementError)."""
    for key in ("model_digest", "inputs"):
        if a.summary.get(key) != b.summary.get(key):
            raise AgreementError(f"{a.path} and {b.path} differ in {key}: "
                                 f"{a.summary.get(key)!r} vs {b.summary.get(key)!r}")
    if not np.array_equal(a.inputs, b.inputs):
        raise AgreementError(f"{a.path} and {b.path} ran different inputs (check --seed, --inputs, --data)")
    kind_a, kind_b = kind_of(a.summary), kind_of(b.summary)
    if (kind_a == "seu") != (kind_b == "seu"):
        raise AgreementError(f"{a.path} ran --faults {kind_a}, {b.path} --faults {kind_b}: compare campaigns of "
                             "the same faults")
    if "file" not in (kind_a, kind_b) and kind_a != kind_b:
        raise AgreementError(f"{a.path} ran --faults {kind_a}, {b.path} --faults {kind_b}: compare campaigns of "
                             "the same faults")
    unit = "site" if kind_a == "seu" else "fault"
    common, ia, ib = np.intersect1d(a.sites, b.sites, return_indices=True)
    if common.size == 0:
        raise AgreementError(f"{a.path} and {b.path} have no {unit} in common")
    if kind_a != "seu":
        _check_same_faults(a, b, ia, ib)
    bad, mismatching, lost_diff, extra_diff = [], 0, 0, 0
    for k in range(0, common.size, _BLOCK):
        sl = slice(k, k + _BLOCK)
        diff = a.outputs.latent(ia[sl]).astype(np.int64) != b.outputs.latent(ib[sl]).astype(np.int64)
        lost = a.outputs.lost(ia[sl]) != b.outputs.lost(ib[sl])
        extra = a.outputs.extras(ia[sl]) != b.outputs.extras(ib[sl])
        bad.append(common[sl][diff.any(axis=(1, 2)) | lost.any(axis=1) | extra])
        mismatching += int(diff.sum())
        lost_diff += int(lost.sum())
        extra_diff += int(extra.sum())
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
        kind=kind_a if kind_a == kind_b else f"{kind_a} / {kind_b}",
        mismatching_lost=lost_diff,
        mismatching_extra=extra_diff,
    )


def _check_same_faults(a: Campaign, b: Campaign, ia: np.ndarray, ib: np.ndarray) -> None:
    """The faults behind the common ids must be the same upsets (a faults
    file and a kind can share ids and mean different things)."""
    fa, fb = a.outputs.fault_set, b.outputs.fault_set
    for i, j in zip(ia.tolist(), ib.tolist()):
        x, y = fa.fault(i), fb.fault(j)
        if x != y:
            raise AgreementError(f"{a.path} and {b.path} ran different faults under id {int(fa.ids[i])} "
                                 f"({x.key()} vs {y.key()}): compare campaigns of the same faults")
