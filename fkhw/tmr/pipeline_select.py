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

from pathlib import Path

import numpy as np

from fkhw.campaign.files import FlipFlopDamage, flip_flop_damage, kind_of, read_summary
from fkhw.faults.space import FlipFlopSpace
from fkhw.tmr.select import TmrError


def pipeline_damage(folder: Path, space: FlipFlopSpace, model_digest: str, threshold: float) -> FlipFlopDamage:
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
    return flip_flop_damage(folder, summary, space, threshold, "--pipeline-campaign").of(space.sites.n_sites,
                                                                                         space.first_control)


def select_pipeline(damage: FlipFlopDamage, fraction: float) -> np.ndarray:
    """The data flip-flops whose upsets degrade more than ``fraction`` of the time."""
    if not 0 <= fraction < 1:
        raise TmrError(f"--pipeline-threshold {fraction:g}: give a fraction of upsets in [0, 1)")
    return damage.ff[damage.fraction > fraction]
