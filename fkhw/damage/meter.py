"""Damage of faulty latent codes: decode, map back to 48 cells, EMD.

Most upsets leave most outputs unchanged, and many changed outputs repeat;
the meter decodes and measures each distinct (input, latent) pair once, and
reports the changed pairs so that a campaign can keep them (outputs.npz) and
bootstrap its per-fault interval from them (fkhw.damage.intervals).

**The damage of a fault** (every kind, one definition). A fault can change
only the window slots it touches (:func:`fkhw.faults.space.touched`): a parameter
upset every slot from its cycle to the scrub, a pipeline or valid-flag upset
the one slot its stage holds at that cycle. Over those slots:

* ``emd``      mean EMD of the slots' outputs (a slot whose output did not
               change keeps its fault-free EMD);
* ``emd_norm`` ``emd`` / the fault-free mean EMD over the *same* slots, so a
               fault that corrupts one vector is not diluted by the N - 1
               it cannot reach (with ``--baseline data``: / the data file's
               fault-free mean, as for single upsets);
* ``lost``     window slots whose valid flag was dropped (a consumer never
               sees them; their data still leaves the register and counts in
               ``emd``), ``extra`` valid outputs in the drain after the window
               (a consumer sees an output that does not exist).

A fault with ``lost`` or ``extra`` outputs counts as degraded at every
threshold, whatever its EMD: a dropped or invented output is damage EMD
cannot see. A fault that touches no window slot (an upset of a drain slot)
has the fault-free ``emd`` of the whole window and ``emd_norm`` 1; only
``extra`` can tell what it did. A changed output outside a fault's touched
slots is a level that breaks the timing model, an error, never averaged in.

For one parameter upset at cycle 0 (``--faults seu``) every slot is touched,
and these are exactly the single-bit campaign's figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fkhw.errors import InputError
from fkhw.model.data import from_image
from fkhw.damage.emd import emd_pairs
from fkhw.model.decoder import DecoderIR


class DamageError(InputError):
    """Inputs or decoder outputs on which EMD is undefined."""


@dataclass(eq=False)
class DamageMeter:
    """Per-vector damage of output codes, cached per distinct (input, codes).
    The EMD by default (``decoder``, ``charges``); ``score`` (rows, codes) ->
    (n,) measures another metric (fkhw.damage.metrics.Scorer) instead: the names
    ``emd``, ``baseline_emd`` then hold that metric's per-vector damage."""

    decoder: DecoderIR | None
    charges: np.ndarray  # (N, 48) as read from the data: the EMD reference side
    baseline: np.ndarray  # (N, n_out) fault-free latent codes
    latent_frac: int
    score: object = None  # fkhw.damage.metrics.Scorer, or None: the EMD
    baseline_emd: np.ndarray = field(init=False)  # (N,)
    _cache: dict = field(init=False, default_factory=dict)

    def __post_init__(self):
        if self.score is None and np.any(self.charges.sum(axis=1) <= 0):
            raise DamageError("every campaign input must have non-zero charge")
        self.baseline_emd = self._emd(np.arange(self.baseline.shape[0]), self.baseline)

    def _emd(self, rows: np.ndarray, latent: np.ndarray) -> np.ndarray:
        if self.score is not None:
            return self.score(rows, latent)
        decoded = self.decoder(latent.astype(np.float64) * 2.0 ** -self.latent_frac)
        cells = from_image(decoded)
        res = emd_pairs(self.charges[rows], cells)
        out = np.full(rows.size, np.nan)
        out[res.kept] = res.values
        if np.isnan(out).any():
            # a decoder output of zero mass cannot be compared; never silently
            raise DamageError("the decoder produced an all-zero output: EMD undefined")
        return out

    def measure(self, latent: np.ndarray, touched: np.ndarray | None = None, lost: np.ndarray | None = None,
                extra: np.ndarray | None = None, ids: np.ndarray | None = None) -> "Damage":
        """Damage of latent codes (F, N, n_out) (see the module docstring):
        per-fault mean EMD over the ``touched`` (F, N) slots (default all),
        and the (fault, module) pairs whose output changed with their EMD.
        ``lost`` (F, N) bool and ``extra`` (F,) as a level observed them;
        ``ids`` name the faults in errors."""
        f, n = latent.shape[:2]
        touched = np.ones((f, n), dtype=bool) if touched is None else np.asarray(touched, dtype=bool)
        lost = np.zeros((f, n), dtype=bool) if lost is None else np.asarray(lost, dtype=bool)
        extra = np.zeros(f, dtype=np.int64) if extra is None else np.asarray(extra, dtype=np.int64)
        changed = (latent != self.baseline[None]).any(axis=2)
        outside = np.argwhere((changed | lost) & ~touched)
        if outside.size:
            i, v = (int(x) for x in outside[0])
            name = int(ids[i]) if ids is not None else i
            raise DamageError(f"fault {name} changed window slot {v}, which it cannot touch: the level breaks the "
                              "timing model of fkhw.faults.space (a bug in that level)")
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
        l_idx, l_mod = np.nonzero(lost)
        return Damage(touched_mean(per, touched, self.baseline_emd), changed.sum(axis=1), s_idx, n_idx, values,
                      touched_mean(np.broadcast_to(self.baseline_emd, per.shape), touched, self.baseline_emd),
                      touched.sum(axis=1), lost.sum(axis=1), extra, l_idx, l_mod)


def touched_mean(per: np.ndarray, touched: np.ndarray, baseline_emd: np.ndarray) -> np.ndarray:
    """(F,) mean of ``per`` (F, N) over each fault's touched slots; a fault
    touching none gets the fault-free mean of the whole window."""
    if touched.all():  # every slot: the plain mean (bit for bit what single-upset campaigns always wrote)
        return per.mean(axis=1)
    n_touched = touched.sum(axis=1)
    out = np.full(per.shape[0], float(baseline_emd.mean()))
    some = n_touched > 0
    out[some] = np.where(touched, per, 0.0)[some].sum(axis=1) / n_touched[some]
    return out


@dataclass(frozen=True, eq=False)
class Damage:
    """What a chunk of faults did: ``emd`` (F,) mean EMD over each fault's
    touched slots, ``n_changed`` (F,), and every changed (fault position,
    module) pair with its EMD (the rest of a fault's modules keep the
    fault-free EMD); ``baseline`` (F,) the fault-free mean EMD over the same
    slots; ``n_touched``, ``lost`` (counts), ``extra`` (F,); the lost (fault
    position, module) pairs."""

    emd: np.ndarray
    n_changed: np.ndarray
    pair_site: np.ndarray
    pair_module: np.ndarray
    pair_emd: np.ndarray
    baseline: np.ndarray
    n_touched: np.ndarray
    lost: np.ndarray
    extra: np.ndarray
    lost_fault: np.ndarray
    lost_module: np.ndarray

    def degraded(self, emd_norm: np.ndarray, threshold: float) -> np.ndarray:
        return degraded(emd_norm, self.lost, self.extra, threshold)


def degraded(emd_norm: np.ndarray, lost: np.ndarray, extra: np.ndarray, threshold: float) -> np.ndarray:
    """(F,) bool: faults that degrade the output at ``threshold``: emd_norm
    above it, or any lost or extra output (module docstring)."""
    return (np.asarray(emd_norm) > threshold) | (np.asarray(lost) > 0) | (np.asarray(extra) > 0)
