"""The scores table: one score per site (higher = more dangerous), written
by ``fkhw hessian`` (``scores.csv``), read by ``fkhw rank`` and by
``fkhw campaign --order FILE:COLUMN``. One reader and one writer, and the one
tie rule (lowest site id first) that both rankings and ordered campaigns use.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fkhw.outpaths import atomic_open


class RankingError(ValueError):
    """A scores or campaign table that cannot be used, naming the file."""


def write_scores_csv(path: Path, scores: dict) -> None:
    names = list(scores)
    n = len(scores[names[0]])
    with atomic_open(path, "w", newline="") as f:
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
            rows = [r for r in reader if r]
    except (UnicodeDecodeError, csv.Error) as e:
        raise RankingError(f"{path}: not a readable CSV text file ({e})") from None
    if not rows:
        raise RankingError(f"{path}: no rows")
    try:
        arr = np.array(rows, dtype=np.float64)
    except ValueError:
        raise RankingError(f"{path}: every value must be numeric") from None
    if arr.ndim != 2 or not np.isfinite(arr).all():
        raise RankingError(f"{path}: rows must all have {len(header)} finite numbers")
    site_col = arr[:, header.index("site")]
    if (site_col != np.round(site_col)).any() or (site_col < 0).any() or (site_col >= 2**53).any():
        raise RankingError(f"{path}: 'site' must hold site ids (non-negative integers)")
    sites = site_col.astype(np.int64)
    if np.unique(sites).size != sites.size:
        raise RankingError(f"{path}: a site is listed twice")
    return sites, {h: arr[:, i] for i, h in enumerate(header) if h != "site"}


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
