"""Bit-level sensitivity scores, and how well a score finds dangerous bits.

Every score ranks *all* sites (higher = more dangerous); a ranking is
compared with a campaign by Spearman correlation with ``emd_norm`` and by
the curve of sensitive bits found (``emd_norm > T``) against bits
injected when injecting in score order.

Scores (``SCORES``):

``taylor2``
    Second-order estimate of the loss change when the bit flips:
    ``g_p d + 0.5 H_pp d^2`` with ``d`` the change of the parameter's
    quantized value (flipped code - code) * 2**-frac. A single flip moves a
    single parameter, so the diagonal is the only curvature that enters.
``taylor2_abs``, ``curvature_abs``
    ``|taylor2|`` and ``0.5 |H_pp| d^2``. A campaign measures how far the
    output moves from the fault-free one (EMD), not whether the training
    loss went up: a flip the expansion says *lowers* the loss still moves
    the output, and H_pp < 0 (the decoder makes the loss non-convex) is
    still curvature. On econt-bol these rank better than the signed forms.
``taylor1``, ``curvature``
    The two terms of ``taylor2`` alone (``g_p d`` and ``0.5 H_pp d^2``), to
    see which one carries (or spoils) the ranking.
``hessian_eigen``
    FKeras: parameter score ``sum_i |lambda_i v_i[p]|`` over the top-k
    eigenpairs, expanded to bits MSB first (every parameter's bit 0 in
    parameter-score order, then every bit 1, ...).
``hessian_diag``
    The same MSB-first expansion of ``|H_pp|`` (Figure 2's quantity).
``gradient``
    The same expansion of ``|g_p|``.
``msb``
    Bit 0 first, then bit 1, ...; parameters in site order inside a bit.
``random``
    A seeded random permutation.

MSB-first scores are encoded as ``(max_bits - bit) + rank_fraction`` so
that "higher = more dangerous" sorts bit level first and parameter score
second. Ties in any score are broken by site id, lowest first, the rule of
``fkhw campaign --order`` too, so a curve drawn here is the order a
campaign would run.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.model.ir import IntegerModel
from fkhw.sites import SiteSpace
from fkhw.validate import InputError, integer_column, number_column

SCORES = ("taylor2", "hessian_eigen", "gradient", "msb", "random", "taylor2_abs", "curvature_abs",
          "taylor1", "curvature", "hessian_diag")
FRACTIONS = (0.5, 0.9, 1.0)
DEFAULT_THRESHOLDS = (1.0, 1.05, 1.1)


class RankingError(ValueError):
    """A scores or campaign table that cannot be used, naming the file."""


# --------------------------------------------------------------------------
# sites <-> parameters
# --------------------------------------------------------------------------


def site_params(space: SiteSpace) -> tuple:
    """(parameter index, bit, bits of the format) for every site, with
    parameters numbered in site order (the flat vector of fkhw.hessian)."""
    sites = np.arange(space.n_sites)
    tn, idx, bit = space.locate(sites)
    starts = np.cumsum([0] + [t.size for t in space.tensors])[:-1]
    widths = np.array([t.fmt.bits for t in space.tensors])
    return starts[tn] + idx, bit, widths[tn]


def bit_deltas(model: IntegerModel, space: SiteSpace) -> np.ndarray:
    """Change of the quantized parameter value when each site's bit flips."""
    table = space.table(model)
    tn, _, bit = space.locate(table["site"])
    out = np.empty(space.n_sites)
    for k, t in enumerate(space.tensors):
        sel = tn == k
        codes = table["code"][sel]
        out[sel] = (t.fmt.flip(codes, bit[sel]) - codes) * 2.0 ** -t.fmt.frac
    return out


def msb_first(param_score: np.ndarray, space: SiteSpace) -> np.ndarray:
    """Site scores that order bit level first (MSB first), then the
    parameter's score (higher first), FKeras' expansion of a parameter
    ranking to bits."""
    param, bit, _ = site_params(space)
    max_bits = max(t.fmt.bits for t in space.tensors)
    from scipy.stats import rankdata

    # rank fraction in [0, 1): equal parameter scores stay tied
    frac = (rankdata(param_score, method="min") - 1) / len(param_score)
    return (max_bits - bit) + frac[param]


def bit_scores(model: IntegerModel, gradient: np.ndarray, diagonal: np.ndarray,
               eigenvalues: np.ndarray, eigenvectors: np.ndarray, seed: int = 0) -> dict:
    """Every score in :data:`SCORES` for every site (arrays indexed by site)."""
    space = SiteSpace.of(model)
    param, bit, _ = site_params(space)
    n_params = int(param.max()) + 1
    for name, arr in (("gradient", gradient), ("diagonal", diagonal)):
        if np.shape(arr) != (n_params,):
            raise ValueError(f"{name} must have one entry per parameter ({n_params}), got shape {np.shape(arr)}")
    eigenvectors = np.atleast_2d(eigenvectors)
    if eigenvectors.shape[1] != n_params or len(eigenvalues) != eigenvectors.shape[0]:
        raise ValueError(f"eigenvectors must be (k, {n_params}) with k eigenvalues")
    d = bit_deltas(model, space)
    g, h = gradient[param], diagonal[param]
    eig_param = np.abs(np.asarray(eigenvalues)[:, None] * eigenvectors).sum(axis=0)
    max_bits = max(t.fmt.bits for t in space.tensors)
    scores = {
        "taylor2": g * d + 0.5 * h * d ** 2,
        "hessian_eigen": msb_first(eig_param, space),
        "gradient": msb_first(np.abs(gradient), space),
        "msb": (max_bits - bit).astype(np.float64),
        "random": np.random.default_rng(seed).permutation(space.n_sites) / space.n_sites,
        "taylor2_abs": np.abs(g * d + 0.5 * h * d ** 2),
        "curvature_abs": 0.5 * np.abs(h) * d ** 2,
        "taylor1": g * d,
        "curvature": 0.5 * h * d ** 2,
        "hessian_diag": msb_first(np.abs(diagonal), space),
    }
    return scores


def write_scores_csv(path: Path, scores: dict) -> None:
    names = list(scores)
    n = len(scores[names[0]])
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["site"] + names)
        cols = [np.asarray(scores[k], dtype=np.float64) for k in names]
        for s in range(n):
            w.writerow([s] + [repr(float(c[s])) for c in cols])


def read_scores_csv(path: Path) -> tuple:
    """(site ids, {column: values}) of a scores table (a file or a
    directory holding scores.csv)."""
    path = Path(path)
    if path.is_dir():
        path = path / "scores.csv"
    if not path.is_file():
        raise RankingError(f"{path}: no scores table (run `fkhw hessian --out DIR` first)")
    try:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or "site" not in header:
                raise RankingError(f"{path}: no 'site' column in the header")
            rows, lines = [], []
            for r in reader:
                if r:
                    rows.append(r)
                    lines.append(reader.line_num)
    except (UnicodeDecodeError, csv.Error) as e:
        raise RankingError(f"{path}: not a readable CSV text file ({e})") from None
    if not rows:
        raise RankingError(f"{path}: no rows")
    short = next((k for k, r in enumerate(rows) if len(r) != len(header)), None)
    if short is not None:
        raise RankingError(f"{path} row {lines[short]}: {len(rows[short])} cells, the header has {len(header)}")
    try:  # every cell checked by fkhw.validate, named by row and column
        sites = np.array(integer_column([r[header.index("site")] for r in rows],
                                        lambda k: f"{path} row {lines[k]} column site", 0), dtype=np.int64)
        cols = {h: number_column([r[i] for r in rows], lambda k, h=h: f"{path} row {lines[k]} column {h}")
                for i, h in enumerate(header) if h != "site"}
    except InputError as e:
        raise RankingError(str(e)) from None
    if np.unique(sites).size != sites.size:
        raise RankingError(f"{path}: a site is listed twice")
    return sites, cols


def order_by(sites: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Sites, highest score first, ties by site id (lowest first)."""
    sites = np.asarray(sites, dtype=np.int64)
    score = np.asarray(score, dtype=np.float64)
    if np.isnan(score).any():
        raise RankingError("a score is NaN: it cannot be ranked")
    return sites[np.lexsort((sites, -score))]


def order_from_scores(scores_csv_path, column: str) -> np.ndarray:
    """Site ids of a scores table, most dangerous (highest ``column``) first."""
    sites, cols = read_scores_csv(scores_csv_path)
    if column not in cols:
        raise RankingError(f"{scores_csv_path}: no column {column!r} (it has {', '.join(cols)})")
    return order_by(sites, cols[column])


# --------------------------------------------------------------------------
# comparison with a campaign
# --------------------------------------------------------------------------


def read_campaign(path: Path, column: str = "emd_norm") -> tuple:
    """(site ids, emd_norm) of DIR/campaign.csv (or the CSV itself), read
    and checked by the one campaign reader; ``column="emd_norm_hi"`` reads
    the upper end of its interval instead."""
    from fkhw.campaign_files import CampaignFileError, read_table

    try:
        table = read_table(path)
        return table.site, table.number(column)
    except CampaignFileError as e:
        raise RankingError(str(e)) from None


def found_curve(order: np.ndarray, sensitive: np.ndarray) -> np.ndarray:
    """found[k-1] = sensitive sites among the first k injected."""
    hit = np.isin(order, sensitive)
    return np.cumsum(hit)


def injections_to_find(found: np.ndarray, n_sensitive: int, fraction: float) -> int | None:
    """Fewest injections whose curve reaches ``ceil(fraction * n_sensitive)``
    sensitive sites (None if there are none to find)."""
    if n_sensitive == 0:
        return None
    need = max(1, math.ceil(fraction * n_sensitive - 1e-9))
    return int(np.searchsorted(found, need) + 1)


def expected_random_injections(n: int, n_sensitive: int, fraction: float) -> float | None:
    """Expected injections for a uniformly random order: the m-th of S
    marked items among N sits at m (N + 1) / (S + 1) on average."""
    if n_sensitive == 0:
        return None
    m = max(1, math.ceil(fraction * n_sensitive - 1e-9))
    return m * (n + 1) / (n_sensitive + 1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")  # a constant has no rank correlation
    return float(spearmanr(a, b).statistic)


@dataclass(frozen=True, eq=False)
class Comparison:
    """One campaign against the scores: rows of the table, and curves."""

    rows: list  # dicts: threshold, score, n_sites, n_sensitive, spearman, inj_50, inj_90, inj_100
    curves: dict  # threshold -> {name: found array}
    n_sites: int
    missing: int  # campaign sites absent from the scores


def compare(camp_sites: np.ndarray, emd_norm: np.ndarray, score_sites: np.ndarray, scores: dict,
            thresholds=DEFAULT_THRESHOLDS) -> Comparison:
    """Rank only the sites the campaign injected (a sampled campaign is
    compared on its own sites); ``oracle`` is the true order (emd_norm
    descending), ``random_expected`` the mean of a uniform random order."""
    pos = {int(s): i for i, s in enumerate(score_sites)}
    keep = np.array([int(s) in pos for s in camp_sites])
    missing = int((~keep).sum())
    sites, emd = camp_sites[keep], emd_norm[keep]
    if sites.size == 0:
        raise RankingError("no campaign site appears in the scores table (different models?)")
    idx = np.array([pos[int(s)] for s in sites])
    n = sites.size
    orders = {name: order_by(sites, col[idx]) for name, col in scores.items()}
    orders["oracle"] = order_by(sites, emd)
    rhos = {name: spearman(col[idx], emd) for name, col in scores.items()}
    rhos["oracle"] = 1.0
    rows, curves = [], {}
    for t in thresholds:
        sensitive = sites[emd > t]
        s = int(sensitive.size)
        curves[t] = {}
        for name, order in orders.items():
            found = found_curve(order, sensitive)
            curves[t][name] = found
            row = {"threshold": t, "score": name, "n_sites": n, "n_sensitive": s, "spearman": rhos[name]}
            for f in FRACTIONS:
                row[f"inj_{int(round(f * 100))}"] = injections_to_find(found, s, f)
            rows.append(row)
        row = {"threshold": t, "score": "random_expected", "n_sites": n, "n_sensitive": s, "spearman": 0.0}
        for f in FRACTIONS:
            e = expected_random_injections(n, s, f)
            row[f"inj_{int(round(f * 100))}"] = None if e is None else round(e, 1)
        rows.append(row)
        curves[t]["random_expected"] = np.arange(1, n + 1) * (s / n)
    return Comparison(rows, curves, n, missing)


RANK_COLUMNS = ["threshold", "score", "n_sites", "n_sensitive", "spearman", "inj_50", "inj_90", "inj_100"]


def write_rank_csv(path: Path, rows: list) -> None:
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(RANK_COLUMNS)
        for r in rows:
            w.writerow(["" if r[c] is None else (f"{r[c]:.4f}" if c == "spearman" else r[c]) for c in RANK_COLUMNS])

