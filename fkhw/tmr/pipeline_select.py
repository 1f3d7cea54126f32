"""Which pipeline data bits to triplicate: their damage in a ``pipeline`` campaign.

A pipeline data upset is a transient: it corrupts the one vector its stage
holds at that clock, then the register reloads. So its risk is per upset,
not per scrub interval, and a map protects a data bit when its upsets
degrade the output often: ``fkhw tmr --pipeline-campaign DIR
--pipeline-threshold F`` protects every pipeline data flip-flop whose upsets
(one per window cycle, the plain design's ``pipeline`` campaign) give
emd_norm > T (the map's threshold) in more than a fraction F of the cycles.
The campaign must be of the same model and of the plain design (the damage
of an unprotected flip-flop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.campaign_files import FAULTS, kind_of, read_fault_table, read_summary
from fkhw.faults import FaultError, FlipFlopSpace, read_faults_file
from fkhw.tmr.select import TmrError


@dataclass(frozen=True, eq=False)
class PipelineDamage:
    ff: np.ndarray  # pipeline data flip-flop ids, ascending
    fraction: np.ndarray  # fraction of its upsets with emd_norm > T
    upsets: np.ndarray  # upsets of it in the campaign


def pipeline_damage(folder: Path, space: FlipFlopSpace, model_digest: str, threshold: float) -> PipelineDamage:
    """Per pipeline data flip-flop of ``space`` (the plain design), the
    fraction of its upsets in the ``pipeline`` campaign at ``folder`` whose
    emd_norm exceeds ``threshold``. Raises TmrError for a campaign of
    another kind, model or design."""
    folder = Path(folder)
    opt = f"--pipeline-campaign {folder}"
    summary = read_summary(folder, "--pipeline-campaign")
    if kind_of(summary) != "pipeline":
        raise TmrError(f"{opt}: a {kind_of(summary)} campaign; give one run with --faults pipeline")
    if summary.get("model_digest") != model_digest:
        raise TmrError(f"{opt} was run on model {summary.get('model')!r}, not on the map's model")
    if summary.get("design", {}).get("hardened"):
        raise TmrError(f"{opt} was run on a hardened design; give the plain design's pipeline campaign")
    table = read_fault_table(folder, summary, "--pipeline-campaign")
    try:
        fs = read_faults_file(folder / FAULTS)
        space.check(fs.ff)
    except FaultError as e:
        raise TmrError(f"{opt}: {e}") from None
    if len(fs) != table.fault.size or not np.array_equal(fs.ids, table.fault) or (fs.n_upsets() != 1).any():
        raise TmrError(f"{opt}: faults.csv does not list one upset per fault of campaign.csv")
    data = (fs.ff >= space.sites.n_sites) & (fs.ff < space.first_control)
    ff = np.unique(fs.ff[data])
    pos = np.searchsorted(ff, fs.ff[data])
    n = np.bincount(pos, minlength=ff.size)
    bad = np.bincount(pos, weights=table.emd_norm[data] > threshold, minlength=ff.size)
    return PipelineDamage(ff, bad / np.maximum(n, 1), n)


def select_pipeline(damage: PipelineDamage, fraction: float) -> np.ndarray:
    """The data flip-flops whose upsets degrade more than ``fraction`` of the time."""
    if not 0 <= fraction < 1:
        raise TmrError(f"--pipeline-threshold {fraction:g}: give a fraction of upsets in [0, 1)")
    return damage.ff[damage.fraction > fraction]
