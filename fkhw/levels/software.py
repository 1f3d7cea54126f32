"""The software level: single-bit upsets evaluated on the integer engine.

An upset in a MAC layer's parameter changes that layer's accumulator by an
exactly known amount (the code delta times one input column, or a shifted
constant for a bias), so each fault costs one rank-one update plus the
layers downstream, evaluated for a whole batch of faults at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fkhw import engine
from fkhw.model.ir import IntegerModel, acc_frac
from fkhw.sites import SiteSpace, tensor_codes

# bound on elements of one faulty-accumulator batch (int64): ~256 MiB
_MAX_BATCH_ELEMS = 1 << 25


@dataclass(eq=False)
class SoftwareLevel:
    model: IntegerModel
    name: str = "software"
    space: SiteSpace = field(init=False)

    def __post_init__(self):
        self.space = SiteSpace.of(self.model)

    def golden(self, inputs: np.ndarray) -> np.ndarray:
        return engine.forward(self.model, inputs)

    def run(self, sites: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        sites = self.space.check(sites)
        acts = engine.activations(self.model, inputs)
        n_out = acts[-1].shape[1]
        out = np.empty((sites.size, inputs.shape[0], n_out), dtype=np.int64)
        tn, idx, bit = self.space.locate(sites)
        for k, t in enumerate(self.space.tensors):
            sel = np.flatnonzero(tn == k)
            if sel.size:
                out[sel] = self._run_tensor(t, idx[sel], bit[sel], acts)
        return out

    def _run_tensor(self, t, idx: np.ndarray, bit: np.ndarray, acts: list) -> np.ndarray:
        pos = t.layer_pos
        layer = self.model.layers[pos]
        specs = self.model.tensor_specs()
        x_in, in_frac = acts[pos], specs[pos].frac
        acc = acts[pos + 1]  # golden accumulator, (N, ..., cout)
        frac = acc_frac(in_frac, layer)
        codes = tensor_codes(self.model, t).reshape(-1)
        delta = t.fmt.flip(codes[idx], bit) - codes[idx]
        cout = acc.shape[-1]
        if t.tensor == "kernel":
            rows = engine.mac_layer_inputs(layer, x_in).reshape(acc.shape[:-1] + (-1,))
            shift = frac - (in_frac + layer.kernel_fmt.frac)
            k_row, channel = idx // cout, idx % cout
        else:
            shift = frac - layer.bias_fmt.frac
            channel = idx
        per_site = max(1, acc.size)
        step = max(1, _MAX_BATCH_ELEMS // per_site)
        results = []
        for s in range(0, idx.size, step):
            sl = slice(s, s + step)
            faulty = np.broadcast_to(acc, (len(idx[sl]),) + acc.shape).copy()
            for j, (c, d) in enumerate(zip(channel[sl], delta[sl])):
                if t.tensor == "kernel":
                    faulty[j, ..., c] += (d * rows[..., k_row[s + j]]) << shift
                else:
                    faulty[j, ..., c] += int(d) << shift
            flat = faulty.reshape((-1,) + acc.shape[1:])
            y = engine.run_from(self.model, pos + 1, flat, frac)
            results.append(y.reshape(len(idx[sl]), acc.shape[0], -1))
        return np.concatenate(results)
