"""Earth mover's distance on the trigger-cell geometry.

Reference definition: POT's ``ot.emd2`` with the euclidean distance between
cell centres (in units of ``tc_unit``), both sides normalised to sum 1. We
call POT's network-simplex core directly on the non-zero cells of the
detector side (zero-mass bins carry no flow, so the optimum is the same),
which is ~10x faster than ``ot.emd2``'s generic wrapper.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass

import numpy as np

from fkhw.model.data import geometry

_MAX_ITER = 100000
# imported by POT's package for solvers fkhw does not call (ot.gromov, ot.lowrank, ot.da), each inside
# `try: ... except ImportError`; together ~1 s of every process that computes an EMD
_OPTIONAL_FOR_POT = ("sklearn", "networkx")


@functools.cache
def _emd_c():
    """POT's network-simplex core, imported on first use: POT's package
    imports everything it has (~1.5 s), so commands that compute no EMD skip
    it, and scikit-learn and networkx, which POT treats as optional, are
    hidden from it while it loads unless something has loaded them already."""
    # POT probes every ML backend at import; TensorFlow alone costs seconds
    for backend in ("TENSORFLOW", "PYTORCH", "JAX", "CUPY"):
        os.environ.setdefault(f"POT_BACKEND_DISABLE_{backend}", "1")
    hidden = [m for m in _OPTIONAL_FOR_POT if m not in sys.modules]
    for m in hidden:
        sys.modules[m] = None  # an import of it raises ImportError
    try:
        from ot.lp.emd_wrap import emd_c
    finally:
        for m in hidden:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]
    return emd_c


@dataclass(frozen=True)
class EmdResult:
    """EMD of each kept pair; pairs whose either side has zero mass are
    excluded (they have no EMD), and ``kept`` says which rows remain."""

    values: np.ndarray
    kept: np.ndarray

    def mean(self) -> float:
        if self.values.size == 0:
            raise ValueError("no module with non-zero charge: EMD is undefined")
        return float(self.values.mean())


def emd_pairs(a: np.ndarray, b: np.ndarray, ground: np.ndarray | None = None) -> EmdResult:
    """EMD between rows of ``a`` and ``b`` (N, 48), each row normalised."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"EMD needs two (N, cells) arrays of one shape, got {a.shape} and {b.shape}")
    M = np.ascontiguousarray(geometry().ground_distance if ground is None else ground, dtype=np.float64)
    sa, sb = a.sum(axis=1), b.sum(axis=1)
    kept = np.flatnonzero((sa > 0) & (sb > 0))
    out = np.empty(kept.size)
    emd_c = _emd_c()
    # normalised rows, computed for all at once (elementwise: the same values as row by row)
    an, bn = a[kept] / sa[kept, None], b[kept] / sb[kept, None]
    for j in range(kept.size):
        ai, bi = an[j], bn[j]
        ia, ib = np.flatnonzero(ai > 0), np.flatnonzero(bi > 0)
        b_nz = bi[ib]
        sub = M[ia[:, None], ib]  # fancy indexing gives a fresh C-contiguous block
        bi_nz = b_nz * (ai.sum() / b_nz.sum())  # equal mass, as ot.emd2 does
        out[j] = emd_c(ai[ia], bi_nz, sub, _MAX_ITER, 1)[1]
    return EmdResult(out, kept)
