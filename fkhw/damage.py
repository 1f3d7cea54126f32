"""Damage of faulty latent codes: decode, map back to 48 cells, EMD.

Most upsets leave most outputs unchanged, and many changed outputs repeat;
the meter decodes and measures each distinct (input, latent) pair once, and
reports the changed pairs so that a campaign can keep them (outputs.npz) and
bootstrap its per-site interval from them (fkhw.evidence).
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

    def measure(self, latent: np.ndarray) -> "Damage":
        """Damage of latent codes (S, N, n_out): per-site mean EMD, and the
        (site, module) pairs whose output changed with their EMD."""
        changed = (latent != self.baseline[None]).any(axis=2)
        s_idx, n_idx = np.nonzero(changed)
        values = np.empty(s_idx.size)
        if s_idx.size:
            lat = latent[s_idx, n_idx].astype(np.int64)
            keys, first, inverse = np.unique(np.concatenate([n_idx[:, None], lat], axis=1), axis=0,
                                             return_index=True, return_inverse=True)
            u_values = np.empty(keys.shape[0])
            todo = []
            for j, key in enumerate(keys):
                hit = self._cache.get(key.tobytes())
                if hit is None:
                    todo.append(j)
                else:
                    u_values[j] = hit
            if todo:
                todo = np.array(todo)
                rows = first[todo]
                u_values[todo] = self._emd(n_idx[rows], lat[rows])
                for j in todo.tolist():
                    self._cache[keys[j].tobytes()] = float(u_values[j])
            values = u_values[inverse.reshape(-1)]
        per = np.broadcast_to(self.baseline_emd, changed.shape).copy()
        per[s_idx, n_idx] = values
        return Damage(per.mean(axis=1), changed.sum(axis=1), s_idx, n_idx, values)


@dataclass(frozen=True, eq=False)
class Damage:
    """What a chunk of sites did: ``emd`` (S,) mean EMD per site,
    ``n_changed`` (S,), and every changed (site position, module) pair with
    its EMD (the rest of a site's modules keep the fault-free EMD)."""

    emd: np.ndarray
    n_changed: np.ndarray
    pair_site: np.ndarray
    pair_module: np.ndarray
    pair_emd: np.ndarray
