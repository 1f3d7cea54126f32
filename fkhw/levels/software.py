"""The software level: single-bit upsets evaluated on the integer engine.

An upset in a MAC layer's parameter changes that layer's accumulator by an
exactly known amount (the code delta times one input column, or a shifted
constant for a bias), so each fault costs one rank-one update plus the
layers downstream, evaluated for a whole batch of faults at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from fkhw import engine
from fkhw.engine import int_matmul
from fkhw.fault_model import simulate_set
from fkhw.faults import FaultSet, FlipFlopSpace, Observed
from fkhw.fixed import requantize
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

    @cached_property
    def ffs(self) -> FlipFlopSpace:
        return FlipFlopSpace.of(self.model)

    def golden(self, inputs: np.ndarray) -> np.ndarray:
        return engine.forward(self.model, inputs)

    def run_faults(self, fs: FaultSet, inputs: np.ndarray, progress=None) -> Observed:
        """What each fault of ``fs`` does to the N window inputs (fkhw.faults)."""
        if fs.single_param_sites is not None:
            return Observed.clean(self.run(fs.single_param_sites, inputs))
        return simulate_set(self.model, self.ffs, fs, inputs)

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
            k_row = None
            shift = frac - layer.bias_fmt.frac
            channel = idx
        if acc.ndim == 2 and all(later.kind == "quant" for later in self.model.layers[pos + 1:]):
            return self._run_last(pos, channel, delta, shift, acts, frac,
                                  rows[:, k_row] if t.tensor == "kernel" else None)
        hop = self._channel_hop(pos)
        if hop is not None:
            return self._run_channels(hop, t, idx, channel, delta, shift, acts, frac,
                                      rows[..., k_row] if t.tensor == "kernel" else None)
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

    def _channel_hop(self, pos: int):
        """When MAC layer ``pos`` (with spatial outputs) feeds an elementwise
        requantizer, an optional Flatten and a dense layer, an upset moves
        one output channel only: it then suffices to requantize that channel
        and add its change, times the dense rows it feeds, to the dense
        accumulator (exact integer arithmetic, ~1/C of the work). Returns
        the index of that dense layer, or None."""
        layers = self.model.layers
        if pos + 2 >= len(layers) or layers[pos].kind != "conv2d" or layers[pos + 1].kind != "quant":
            return None
        nxt = pos + 2 + (layers[pos + 2].kind == "flatten")
        return nxt if nxt < len(layers) and layers[nxt].kind == "dense" else None

    def _run_channels(self, dense_pos: int, t, idx, channel, delta, shift, acts, frac, cols) -> np.ndarray:
        """Faulty outputs of sites that move one channel of layer ``t.layer_pos``
        (see _channel_hop). ``cols``: (N, ..., S) input column of each kernel
        site (None for biases)."""
        pos = t.layer_pos
        quant, dense = self.model.layers[pos + 1], self.model.layers[dense_pos]
        specs = self.model.tensor_specs()
        acc, q_gold, d_acc = acts[pos + 1], acts[pos + 2], acts[dense_pos + 1]
        n, spatial, cout = acc.shape[0], acc.shape[1:-1], acc.shape[-1]
        positions = int(np.prod(spatial))
        q_frac = quant.fmt.frac
        d_frac = acc_frac(q_frac, dense)
        prod_shift = d_frac - (q_frac + dense.kernel_fmt.frac)
        k2 = dense.kernel.reshape(-1, dense.kernel.shape[-1]).astype(np.int64)
        in_bound = max(abs(specs[dense_pos].lo), abs(specs[dense_pos].hi))
        bound = 2 * in_bound * (1 << (dense.kernel_fmt.bits - 1)) * positions
        out = np.empty((idx.size, n, self.model.output_spec.size), dtype=np.int64)
        step = max(1, _MAX_BATCH_ELEMS // max(1, n * positions * 4))
        for c in np.unique(channel).tolist():
            sel = np.flatnonzero(channel == c)
            # the dense rows fed by channel c: flatten is C order, channel last
            rows_c = k2[np.arange(positions) * cout + c]
            gold_c = acc[..., c].reshape(n, positions)
            q_gold_c = q_gold[..., c].reshape(n, positions)
            for s0 in range(0, sel.size, step):
                part = sel[s0:s0 + step]
                d = delta[part].astype(np.int64)
                if cols is None:
                    bump = np.broadcast_to((d << shift)[:, None, None], (part.size, n, positions))
                else:
                    bump = (d[:, None, None] * np.moveaxis(cols[..., part].reshape(n, positions, -1), -1, 0)) << shift
                moved = requantize(gold_c[None] + bump, frac, quant.fmt) - q_gold_c[None]
                change = int_matmul(moved.reshape(-1, positions), rows_c, bound)
                if prod_shift:
                    change = np.left_shift(change, prod_shift)
                faulty = d_acc[None] + change.reshape(part.size, n, -1)
                y = engine.run_from(self.model, dense_pos + 1, faulty.reshape(part.size * n, -1), d_frac)
                out[part] = y.reshape(part.size, n, -1)
        return out

    def _run_last(self, pos: int, channel, delta, shift, acts, frac, cols) -> np.ndarray:
        """Faulty outputs when MAC layer ``pos`` is followed only by elementwise
        requantizers (a dense output layer): an upset moves one output, the
        others keep their fault-free codes. ``cols``: (N, S) input column of
        each kernel site (None for biases)."""
        acc, golden = acts[pos + 1], acts[-1]
        n = acc.shape[0]
        d = delta.astype(np.int64)
        bump = (d[:, None] << shift) if cols is None else (d[:, None] * cols.T) << shift
        moved = engine.run_from(self.model, pos + 1, acc[:, channel].T + bump, frac)  # (S, N)
        out = np.broadcast_to(golden, (channel.size,) + golden.shape).copy()
        out[np.arange(channel.size)[:, None], np.arange(n)[None, :], channel[:, None]] = moved
        return out
