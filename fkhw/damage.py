"""Damage of faulty latent codes: decode, map back to 48 cells, EMD.

Most upsets leave most outputs unchanged, and many changed outputs repeat;
the meter decodes and measures each distinct (input, latent) pair once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fkhw.data import from_image
from fkhw.emd import emd_pairs
from fkhw.model.decoder import DecoderIR


class DamageError(ValueError):
    """Inputs or decoder outputs on which EMD is undefined."""


@dataclass(eq=False)
class DamageMeter:
    decoder: DecoderIR
    charges: np.ndarray  # (N, 48) as read from the data: the EMD reference side
    baseline: np.ndarray  # (N, n_out) fault-free latent codes
    latent_frac: int
    baseline_emd: np.ndarray = field(init=False)  # (N,)
    _cache: dict = field(init=False, default_factory=dict)

    def __post_init__(self):
        if np.any(self.charges.sum(axis=1) <= 0):
            raise DamageError("every campaign input must have non-zero charge")
        self.baseline_emd = self._emd(np.arange(self.baseline.shape[0]), self.baseline)

    def _emd(self, rows: np.ndarray, latent: np.ndarray) -> np.ndarray:
        decoded = self.decoder(latent.astype(np.float64) * 2.0 ** -self.latent_frac)
        cells = from_image(decoded)
        res = emd_pairs(self.charges[rows], cells)
        out = np.full(rows.size, np.nan)
        out[res.kept] = res.values
        if np.isnan(out).any():
            # a decoder output of zero mass cannot be compared; never silently
            raise DamageError("the decoder produced an all-zero output: EMD undefined")
        return out

    def measure(self, latent: np.ndarray) -> tuple:
        """Per-site mean EMD and number of inputs whose output changed, for
        latent codes (S, N, n_out)."""
        changed = (latent != self.baseline[None]).any(axis=2)
        per = np.broadcast_to(self.baseline_emd, changed.shape).copy()
        s_idx, n_idx = np.nonzero(changed)
        pending: dict = {}
        for s, n in zip(s_idx.tolist(), n_idx.tolist()):
            key = (n, latent[s, n].tobytes())
            hit = self._cache.get(key)
            if hit is None:
                pending.setdefault(key, []).append(s)
            else:
                per[s, n] = hit
        if pending:
            keys = list(pending)
            rows = np.array([k[0] for k in keys])
            lat = np.array([latent[pending[k][0], k[0]] for k in keys])
            for key, v in zip(keys, self._emd(rows, lat)):
                self._cache[key] = float(v)
                per[pending[key], key[0]] = v
        return per.mean(axis=1), changed.sum(axis=1)
