"""Injection orders: which sites a campaign visits, in what order.

Orders are separate from execution: each returns an array of site ids.
``site`` (default), ``random`` (seeded), ``msb`` (bit 0 of every parameter
first, then bit 1, ...), ``reverse`` or ``FILE:COLUMN``: the sites of a
scores table (e.g. ``fkhw hessian``'s scores.csv) sorted by that column,
highest (most dangerous) first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fkhw.faults.scores import RankingError, order_from_scores as ranked
from fkhw.faults.sites import SiteError, SiteSpace

BUILTIN = ("site", "random", "msb", "reverse")


def order_from_scores(path: Path, column: str, space: SiteSpace | None = None) -> np.ndarray:
    """Site ids of a scores CSV, highest ``column`` first (ties: lowest site
    id first, the same rule ``fkhw rank`` uses, so its curves predict what
    an ordered campaign finds)."""
    try:
        sites = ranked(Path(path), column)
    except RankingError as e:
        raise SiteError(f"--order: {e}") from None
    if space is not None:
        space.check(sites)
    return sites


def site_order(order: str, space: SiteSpace, seed: int) -> np.ndarray:
    if order == "site":
        return np.arange(space.n_sites)
    if order == "reverse":
        return np.arange(space.n_sites)[::-1].copy()
    if order == "random":
        return np.random.default_rng(seed).permutation(space.n_sites)
    if order == "msb":
        _, _, bit = space.locate(np.arange(space.n_sites))
        return np.lexsort((np.arange(space.n_sites), bit))
    if ":" in order:
        path, column = order.rsplit(":", 1)
        return order_from_scores(Path(path), column, space)
    raise SiteError(f"--order {order!r}: use one of {', '.join(BUILTIN)} or SCORES_CSV:COLUMN")
