"""The software level: faults evaluated on the integer engine.

The definition of what a fault does is :mod:`fkhw.faults.software` (slow and
clear); this level computes the same outcome bit for bit along faster
routes, each chosen per fault from what its upsets are:

* ``register``: upsets of one parameter register word, all at one cycle
  (seu, mbu:K). The word's code changes by a known delta, so its MAC
  layer's accumulator moves by delta times one input column (or a shifted
  constant for a bias): one rank-one update plus the layers downstream,
  batched over faults; slots outside the upset's window keep their golden
  outputs.
* ``transient``: one pipeline data or valid upset. A data upset changes one
  element of the one slot its stage holds, so only that vector is run
  downstream; a valid upset leaves the codes golden and marks the slot
  lost (window) or extra (drain).
* ``batched``: anything else on unprotected flip-flops (accumulate:K,
  faults files mixing kinds and cycles): every fault's frame is run layer by
  layer as one batch, each MAC layer's accumulator corrected by the sum of
  its upset weights' rank-one updates on the slots that see them, data
  upsets applied as the stage's slot enters its layer.
* ``reference``: faults touching a hardened design's protected flip-flops
  (parameter, pipeline or valid) or replicas go through the fault model
  itself.

A SEC-DED design's faults are first turned into the plain design's faults
that read the same (fkhw.faults.software.decoded), then routed as above; a
fault its decoders hide entirely keeps the golden outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from fkhw.model import engine
from fkhw.model.engine import int_matmul
from fkhw.faults.software import decoded, simulate_set
from fkhw.faults.space import FaultSet, FlipFlopSpace, Observed
from fkhw.model.fixed import requantize
from fkhw.model.ir import IntegerModel, acc_frac
from fkhw.faults.sites import SiteSpace, tensor_codes

# bound on elements of one faulty-accumulator batch (int64): ~256 MiB
_MAX_BATCH_ELEMS = 1 << 25

ROUTES = ("register", "transient", "batched", "reference")


@dataclass(eq=False)
class SoftwareLevel:
    model: IntegerModel
    name: str = "software"
    protect: tuple | None = None  # protected flip-flop ids of a hardened design (replicas exist), else plain
    refresh: bool = False  # the hardened design is self-correcting (DesignVariant.tmr(ids, refresh=True))
    ecc: str = ""  # "secded[:N[i]]" or "parity[:N[i]]": the registers kept as code words (DesignVariant.code_words)
    space: SiteSpace = field(init=False)

    def __post_init__(self):
        self.space = SiteSpace.of(self.model)

    @cached_property
    def ffs(self) -> FlipFlopSpace:
        return FlipFlopSpace.of(self.model, self.protect, self.refresh, self.ecc)

    def _run_decoded(self, fs: FaultSet, inputs: np.ndarray, progress=None) -> Observed:
        """A SEC-DED design's faults as the plain design's faults that read the same."""
        self.ffs.check(fs.ff)
        eq = FaultSet.of(fs.kind, fs.ids, [decoded(self.ffs, f) for f in fs.faults()])
        shown = np.flatnonzero(eq.n_upsets() > 0)
        n = np.asarray(inputs).shape[0]
        gold = self.golden(inputs)
        obs = Observed(np.broadcast_to(gold, (len(fs),) + gold.shape).copy(), np.zeros((len(fs), n), dtype=bool),
                       np.zeros(len(fs), dtype=np.int64))
        if progress is not None and len(fs) - shown.size:
            progress(len(fs) - shown.size)
        if shown.size:
            sub = SoftwareLevel(self.model).run_faults(eq.take(shown), inputs, progress)
            obs.latent[shown], obs.lost[shown], obs.extra[shown] = sub.latent, sub.lost, sub.extra
        return obs

    def golden(self, inputs: np.ndarray) -> np.ndarray:
        return engine.forward(self.model, inputs).reshape(len(inputs), -1)

    def run_faults(self, fs: FaultSet, inputs: np.ndarray, progress=None) -> Observed:
        """What each fault of ``fs`` does to the N window inputs (fkhw.faults.space)."""
        if self.ecc:
            return self._run_decoded(fs, inputs, progress)
        sites = fs.single_param_sites(self.space.n_sites)
        if sites is not None and not self.protect:
            out = Observed.clean(self.run(sites, inputs))
            if progress is not None:
                progress(len(fs))
            return out
        self.ffs.check(fs.ff)
        x = np.asarray(inputs, dtype=np.int64)
        acts = engine.activations(self.model, x)
        n = x.shape[0]
        golden = acts[-1].reshape(n, -1)
        latent = np.broadcast_to(golden, (len(fs), n, golden.shape[1])).copy()
        obs = Observed(latent, np.zeros((len(fs), n), dtype=bool), np.zeros(len(fs), dtype=np.int64))
        route = self.routes(fs)
        for r, name in enumerate(ROUTES):
            sel = np.flatnonzero(route == r)
            if sel.size:
                getattr(self, f"_route_{name}")(fs, sel, acts, obs)
                if progress is not None:
                    progress(int(sel.size))
        return obs

    def routes(self, fs: FaultSet) -> np.ndarray:
        """(F,) index into ROUTES of the way each fault is computed."""
        sp, n_sites = self.ffs, self.space.n_sites
        f = len(fs)
        n_up = fs.n_upsets()
        owner = np.repeat(np.arange(f), n_up)
        param = fs.ff < n_sites
        transient = (fs.ff >= n_sites) & (fs.ff < sp.first_replica)
        hardened = fs.ff >= sp.first_replica
        if sp.tmr_err_flag is not None:
            transient &= fs.ff != sp.tmr_err_flag
            hardened |= fs.ff == sp.tmr_err_flag
        if sp.protected:  # a protected flip-flop's replica A: read through its voter
            hardened |= np.isin(fs.ff, np.asarray(sp.protected))
        any_hardened = np.bincount(owner, weights=hardened, minlength=f) > 0
        all_param = np.bincount(owner, weights=~param, minlength=f) == 0
        # one register word: same site - bit; one cycle
        _, _, bit = self.space.locate(np.where(param, fs.ff, 0))
        word = np.where(param, fs.ff - bit, -1)
        starts = fs.indptr[:-1]
        nonempty = n_up > 0
        one_word = np.zeros(f, dtype=bool)
        if nonempty.any():
            s = starts[nonempty]
            same = ((np.maximum.reduceat(word, s) == np.minimum.reduceat(word, s))
                    & (np.maximum.reduceat(fs.cycle, s) == np.minimum.reduceat(fs.cycle, s)))
            one_word[nonempty] = same
        route = np.full(f, ROUTES.index("batched"))
        route[all_param & one_word] = ROUTES.index("register")
        route[(n_up == 1) & np.bincount(owner, weights=transient, minlength=f).astype(bool)] = ROUTES.index("transient")
        route[any_hardened | ~nonempty] = ROUTES.index("reference")
        return route

    # --- routes (see the module docstring) ----------------------------------

    def _route_register(self, fs: FaultSet, sel: np.ndarray, acts: list, obs: Observed) -> None:
        """Upsets of one parameter word at one cycle: the word's new code is
        the golden code with the upset bits inverted (XOR of their masks)."""
        ui, lo = _upsets_of(fs, sel)
        tn, _, bit = self.space.locate(fs.ff[ui])
        bits = np.array([t.fmt.bits for t in self.space.tensors])[tn]
        mask = np.zeros(sel.size, dtype=np.int64)
        np.bitwise_xor.at(mask, lo, np.left_shift(np.int64(1), bits - 1 - bit))
        first = fs.indptr[sel]
        tn0, idx0, _ = self.space.locate(fs.ff[first])
        n = acts[0].shape[0]
        golden = acts[-1].reshape(n, -1)
        v = np.arange(n)
        for k, t in enumerate(self.space.tensors):
            m = np.flatnonzero(tn0 == k)
            if not m.size:
                continue
            codes = tensor_codes(self.model, t).reshape(-1)[idx0[m]]
            delta = t.fmt.from_unsigned(t.fmt.to_unsigned(codes) ^ mask[m]) - codes
            out = self._run_tensor(t, idx0[m], delta, acts)
            stage = self.ffs.mac_stage(t.layer_pos)
            scrub = fs.scrub[sel[m]]
            end = np.where(scrub < 0, n, scrub - stage)
            window = (v[None, :] >= (fs.cycle[first[m]] - stage)[:, None]) & (v[None, :] < end[:, None])
            obs.latent[sel[m]] = np.where(window[..., None], out.reshape(m.size, n, -1), golden[None])

    def _route_transient(self, fs: FaultSet, sel: np.ndarray, acts: list, obs: Observed) -> None:
        """One pipeline data or valid upset per fault: one slot at one stage."""
        sp = self.ffs
        n = acts[0].shape[0]
        ff, cyc = fs.ff[fs.indptr[sel]], fs.cycle[fs.indptr[sel]]
        valid = ff >= sp.first_control
        slot = cyc - (ff - sp.first_control)
        obs.lost[sel[valid & (slot >= 0) & (slot < n)], slot[valid & (slot >= 0) & (slot < n)]] = True
        obs.extra[sel[valid & (slot >= n)]] = 1
        specs = self.model.tensor_specs()
        for st in sp.stages:
            slot = cyc - st.stage
            m = np.flatnonzero((ff >= st.first_id) & (ff < st.first_id + st.n_ff) & (slot >= 0) & (slot < n))
            if not m.size:
                continue
            rel = ff[m] - st.first_id
            element = np.asarray(st.used)[rel // st.width]
            bit = rel % st.width
            held = acts[st.layer_pos]
            step = max(1, _MAX_BATCH_ELEMS // max(1, max(a[0].size for a in acts[st.layer_pos:])))
            for s0 in range(0, m.size, step):
                part = np.arange(s0, min(s0 + step, m.size))
                vecs = held.reshape(n, -1)[slot[m[part]]].copy()
                rows = np.arange(part.size)
                vecs[rows, element[part]] = st.fmt().flip(vecs[rows, element[part]], bit[part])
                y = engine.run_from(self.model, st.layer_pos, vecs.reshape((part.size,) + held.shape[1:]),
                                    specs[st.layer_pos].frac)
                obs.latent[sel[m[part]], slot[m[part]]] = y.reshape(part.size, -1)

    def _route_batched(self, fs: FaultSet, sel: np.ndarray, acts: list, obs: Observed) -> None:
        """Any mix of parameter, pipeline data and valid upsets: each fault's
        whole frame, from the first layer one of its upsets reaches."""
        sp, n_layers = self.ffs, len(self.model.layers)
        ui, lo = _upsets_of(fs, sel)
        ff = fs.ff[ui]
        reach = np.full(ff.size, n_layers)
        param = ff < self.space.n_sites
        tn, _, _ = self.space.locate(np.where(param, ff, 0))
        reach[param] = np.array([t.layer_pos for t in self.space.tensors])[tn[param]]
        for st in sp.stages:
            reach[(ff >= st.first_id) & (ff < st.first_id + st.n_ff)] = st.layer_pos
        first = np.full(sel.size, n_layers)
        np.minimum.at(first, lo, reach)
        n = acts[0].shape[0]
        for p0 in np.unique(first).tolist():
            group = sel[first == p0]
            # the widest activation, twice: room for a conv layer's im2col rows
            step = max(1, _MAX_BATCH_ELEMS // (2 * n * max(a[0].size for a in acts[p0:])))
            for s0 in range(0, group.size, step):
                self._batched_chunk(fs, group[s0:s0 + step], p0, acts, obs)

    def _parameter_changes(self, fs: FaultSet, sel: np.ndarray, ff, cyc, lo, n: int) -> tuple:
        """Per (fault, parameter site) with upsets: the code change the site
        shows in each of the ``n`` window slots (0 where the bit reads back
        right: an even number of upsets, before the upset reaches the MAC
        stage, after a scrub). Returns (change (K, N), owner fault, tensor,
        index, each (K,))."""
        sp, model, n_sites = self.ffs, self.model, self.space.n_sites
        v = np.arange(n)
        # parameter upsets: per (fault, site) the slots that see the bit inverted (parity of its upsets)
        pm = ff < n_sites
        tn, _, _ = self.space.locate(ff[pm])
        stage = sp.tensor_stages[tn]
        scrub = fs.scrub[sel][lo[pm]]
        end = np.where(scrub < 0, n, scrub - stage)
        active = ((v[None, :] >= (cyc[pm] - stage)[:, None]) & (v[None, :] < end[:, None])).astype(np.uint8)
        keys, inv = np.unique(lo[pm] * n_sites + ff[pm], return_inverse=True)
        seen = np.zeros((keys.size, n), dtype=np.uint8)
        np.bitwise_xor.at(seen, inv.reshape(-1), active)
        owner, site = keys // n_sites, keys % n_sites
        tn, idx, bit = self.space.locate(site)
        delta = np.zeros(keys.size, dtype=np.int64)
        for k, t in enumerate(self.space.tensors):
            m = tn == k
            if m.any():
                codes = tensor_codes(model, t).reshape(-1)[idx[m]]
                delta[m] = t.fmt.flip(codes, bit[m]) - codes
        return seen.astype(np.int64) * delta[:, None], owner, tn, idx

    def _valid_flips(self, obs: Observed, sel: np.ndarray, ff, cyc, lo, n: int) -> None:
        """Upsets of the valid flags: parity per slot; an odd one loses a
        window slot's output or adds an output in a drain slot."""
        sp = self.ffs
        vm = (ff >= sp.first_control) & (ff < sp.first_replica)
        if vm.any():
            pairs, count = np.unique(np.stack([lo[vm], cyc[vm] - (ff[vm] - sp.first_control)], axis=1),
                                     axis=0, return_counts=True)
            odd = pairs[count % 2 == 1]
            win = odd[(odd[:, 1] >= 0) & (odd[:, 1] < n)]
            obs.lost[sel[win[:, 0]], win[:, 1]] = True
            obs.extra[sel] += np.bincount(odd[odd[:, 1] >= n, 0], minlength=sel.size)

    def _batched_chunk(self, fs: FaultSet, sel: np.ndarray, p0: int, acts: list, obs: Observed) -> None:
        model = self.model
        specs = model.tensor_specs()
        n_layers, n, b = len(model.layers), acts[0].shape[0], sel.size
        ui, lo = _upsets_of(fs, sel)
        ff, cyc = fs.ff[ui], fs.cycle[ui]
        weight_change, owner, tn, idx = self._parameter_changes(fs, sel, ff, cyc, lo, n)

        # x is None while every frame of the chunk is still golden (acts[pos]): the
        # first corrected layer starts from the golden accumulator, no product needed
        x, frac = None, specs[p0].frac
        changing = (weight_change != 0).any(axis=1)
        for pos in range(p0, n_layers + 1):
            if self._stage_upsets(pos, ff, cyc, n).size:
                x = np.broadcast_to(acts[pos], (b,) + acts[pos].shape).copy() if x is None else x
                x = self._flip_stage(x, pos, ff, cyc, lo)
            if pos == n_layers:
                break
            layer = model.layers[pos]
            here = [(t, np.flatnonzero((tn == k) & changing)) for k, t in enumerate(self.space.tensors)
                    if t.layer_pos == pos]
            here = [(t, m) for t, m in here if m.size]
            if x is None and not here:
                frac = specs[pos + 1].frac
                continue
            if x is None:
                y = np.broadcast_to(acts[pos + 1], (b,) + acts[pos + 1].shape).copy()
                yfrac = specs[pos + 1].frac
                golden_rows = engine.mac_layer_inputs(layer, acts[pos])  # (N, ..., S), the same for every fault
            else:
                flat = x.reshape((b * n,) + x.shape[2:])
                bound = max(abs(specs[pos].lo), abs(specs[pos].hi))
                y, yfrac = engine.apply_layer(layer, flat, frac, bound)
                y = y.reshape((b, n) + y.shape[1:])
                faulty_rows = engine.mac_layer_inputs(layer, flat) if here else None
            for t, m in here:
                cout = y.shape[-1]
                lead = (m.size, n) + (1,) * (y.ndim - 3)
                if t.tensor == "kernel":
                    if x is None:
                        cols = np.moveaxis(golden_rows[..., idx[m] // cout], -1, 0)
                    else:
                        cols = faulty_rows.reshape((b, n) + faulty_rows.shape[1:])[owner[m], :, ..., idx[m] // cout]
                    shift = yfrac - (frac + layer.kernel_fmt.frac)
                    change = (weight_change[m].reshape(lead) * cols) << shift
                    channel = idx[m] % cout
                else:
                    shift = yfrac - layer.bias_fmt.frac
                    change = np.broadcast_to(weight_change[m].reshape(lead) << shift, (m.size,) + y.shape[1:-1])
                    channel = idx[m]
                np.add.at(np.moveaxis(y, -1, 1), (owner[m], channel), change)
            x, frac = y, yfrac
        if x is None:
            x = np.broadcast_to(acts[n_layers], (b,) + acts[n_layers].shape)
        obs.latent[sel] = x.reshape(b, n, -1)
        self._valid_flips(obs, sel, ff, cyc, lo, n)

    def _flip_stage(self, x: np.ndarray, pos: int, ff, cyc, lo) -> np.ndarray:
        """Data upsets of the stage holding the input of layer ``pos``:
        each inverts one bit of one element of the slot held at its cycle."""
        m = self._stage_upsets(pos, ff, cyc, x.shape[1])
        if not m.size:
            return x
        st = next(s for s in self.ffs.stages if s.layer_pos == pos)
        slot = cyc - st.stage
        rel = ff[m] - st.first_id
        flat = x.reshape(x.shape[:2] + (-1,))
        mask = np.zeros_like(flat)
        np.bitwise_xor.at(mask, (lo[m], slot[m], np.asarray(st.used)[rel // st.width]),
                          np.left_shift(np.int64(1), st.width - 1 - rel % st.width))
        hit = mask != 0
        fmt = st.fmt()
        flat[hit] = fmt.from_unsigned(fmt.to_unsigned(flat[hit]) ^ mask[hit])
        return flat.reshape(x.shape)

    def _stage_upsets(self, pos: int, ff, cyc, n: int) -> np.ndarray:
        """Positions of the data upsets that hit a window slot in the stage
        holding the input of layer ``pos`` (none if no stage holds it)."""
        st = next((s for s in self.ffs.stages if s.layer_pos == pos), None)
        if st is None:
            return np.zeros(0, dtype=np.int64)
        slot = cyc - st.stage
        return np.flatnonzero((ff >= st.first_id) & (ff < st.first_id + st.n_ff) & (slot >= 0) & (slot < n))

    def _route_reference(self, fs: FaultSet, sel: np.ndarray, acts: list, obs: Observed) -> None:
        ref = simulate_set(self.model, self.ffs, fs.take(sel), acts[0])
        obs.latent[sel], obs.lost[sel], obs.extra[sel] = ref.latent, ref.lost, ref.extra

    # --- single parameter upsets ----------------------------------------------

    def run(self, sites: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        sites = self.space.check(sites)
        acts = engine.activations(self.model, inputs)
        n_out = int(np.prod(acts[-1].shape[1:]))  # every level flattens the output per row (C order)
        out = np.empty((sites.size, inputs.shape[0], n_out), dtype=np.int64)
        tn, idx, bit = self.space.locate(sites)
        for k, t in enumerate(self.space.tensors):
            sel = np.flatnonzero(tn == k)
            if sel.size:
                codes = tensor_codes(self.model, t).reshape(-1)[idx[sel]]
                out[sel] = self._run_tensor(t, idx[sel], t.fmt.flip(codes, bit[sel]) - codes, acts)
        return out

    def _run_tensor(self, t, idx: np.ndarray, delta: np.ndarray, acts: list) -> np.ndarray:
        """Outputs with parameter ``idx`` of tensor ``t`` changed by ``delta``
        (code units), one change per row."""
        pos = t.layer_pos
        layer = self.model.layers[pos]
        specs = self.model.tensor_specs()
        x_in, in_frac = acts[pos], specs[pos].frac
        acc = acts[pos + 1]  # golden accumulator, (N, ..., cout)
        frac = acc_frac(in_frac, layer)
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


def _upsets_of(fs: FaultSet, sel: np.ndarray) -> tuple:
    """(upset positions, position in ``sel`` of their fault) of the faults ``sel``."""
    lens = fs.n_upsets()[sel]
    lo = np.repeat(np.arange(sel.size), lens)
    ui = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(fs.indptr[sel], lens)
    return ui.astype(np.int64), lo
