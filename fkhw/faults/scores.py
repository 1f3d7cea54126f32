"""The scores table: one score per site (higher = more dangerous), written
by ``fkhw hessian`` (``scores.csv``), read by ``fkhw rank`` and by
``fkhw campaign --order FILE:COLUMN``. One reader and one writer, and the one
tie rule (lowest site id first) that both rankings and ordered campaigns use.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fkhw.errors import InputError
from fkhw.outpaths import atomic_open
from fkhw.validate import integer_column, number_column


class RankingError(InputError):
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
