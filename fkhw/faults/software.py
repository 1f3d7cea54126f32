"""The software model of a fault: what any set of upsets does to a frame.

This is the definition (fkhw.faults.space explains the timing): the integer engine
run layer by layer over the window slots, with

* each parameter bit inverted for the slots that pass its layer while the
  bit is upset (a hardened design's protected bit: while at least two of its
  three replicas are upset, the majority voter's view);
* each pipeline data upset inverting one bit of one element of the one slot
  its stage holds at that cycle;
* each valid-flag upset inverting the valid of one slot (lost if it was a
  window slot, an extra output if it was a drain slot);
* a protected (triplicated) pipeline data bit or valid flag read through its
  voter: its replicas reload every clock, so an upset replica is wrong for
  one clock only, and the voted bit is inverted for that slot exactly when
  at least two of its three replicas are upset at the same cycle.

A SEC-DED design (registers stored as code words with check bits) is the
plain design behind each register's decoder: :func:`decoded` turns its fault
into the plain design's fault that reads the same.

An upset of the same flip-flop twice restores it; the scrub restores every
parameter flip-flop (and check bit). It is written for clarity, one fault at a time; the
software level has vectorised paths for the exhaustive kinds and checks them
against this model in the tests.
"""

from __future__ import annotations

import numpy as np

from fkhw.model import engine
from fkhw.faults.space import Fault, FaultSet, FlipFlopSpace, Observed, Upset
from fkhw.model.ir import IntegerModel
from fkhw.faults.sites import flip


def _param_flips(space: FlipFlopSpace, fault: Fault, n_slots: int) -> dict:
    """site -> (n_slots,) bool: the slots that see the site's bit inverted."""
    k_of = {}
    state = {}  # (site, replica) -> (n_slots,) parity of upsets active per slot
    v = np.arange(n_slots)
    for u in fault.upsets:
        if u.ff < space.sites.n_sites:
            site, rep = u.ff, "a"
        elif u.ff >= space.first_replica and space.replica_site(u.ff)[0] < space.sites.n_sites:
            site, rep = space.replica_site(u.ff)
        else:
            continue
        if site not in k_of:
            tn = int(space.sites.locate([site])[0][0])
            k_of[site] = space.mac_stage(space.sites.tensors[tn].layer_pos)
        k = k_of[site]
        end = n_slots if fault.scrub is None else fault.scrub - k
        active = (v >= u.cycle - k) & (v < end)
        state[site, rep] = state.get((site, rep), np.zeros(n_slots, dtype=bool)) ^ active
    prot = set(space.protected)
    out = {}
    for site in {s for s, _ in state}:
        if site in prot and space.refresh:
            out[site] = _refreshed(space, fault, site, k_of[site], n_slots)
            continue
        reps = [state.get((site, r), np.zeros(n_slots, dtype=bool)) for r in "abc"]
        out[site] = (sum(r.astype(int) for r in reps) >= 2) if site in prot else reps[0]
    return out


def _refreshed(space: FlipFlopSpace, fault: Fault, site: int, k: int, n_slots: int) -> np.ndarray:
    """Self-correcting TMR: at every edge the three replicas reload the voted
    value, so the bit reads wrong from the cycle at which the replicas upset
    in that one clock outvote the current value (the wrong majority is then
    written back into all three) until the next such cycle or the scrub."""
    per_cycle = {}
    for u in fault.upsets:
        if u.ff == site:
            rep = 0
        elif u.ff >= space.first_replica and space.replica_site(u.ff)[0] == site:
            rep = "_bc".index(space.replica_site(u.ff)[1])
        else:
            continue
        toggles = per_cycle.setdefault(u.cycle, [False, False, False])
        toggles[rep] = not toggles[rep]
    v = np.arange(n_slots)
    wrong = np.zeros(n_slots, dtype=bool)
    m = False
    for c in sorted(per_cycle):
        if fault.scrub is not None and c >= fault.scrub:
            break
        new = sum(m ^ t for t in per_cycle[c]) >= 2
        if new != m:
            wrong[v >= c - k] = new
        m = new
    if fault.scrub is not None:
        wrong[v >= fault.scrub - k] = False
    return wrong


def transient_upsets(space: FlipFlopSpace, fault: Fault) -> list:
    """The pipeline data and valid upsets the datapath sees (as Upsets of
    the unreplicated flip-flop ids): an unprotected flip-flop's upsets as
    they are; a protected one's, per cycle, one upset when at least two of
    its replicas are upset an odd number of times in that cycle (the voter)."""
    n_sites, first_replica, prot = space.sites.n_sites, space.first_replica, set(space.protected)
    plain, voted = [], {}
    for u in fault.upsets:
        if u.ff == space.tmr_err_flag:
            continue
        base = int(space.base([u.ff])[0])
        if base < n_sites:
            continue  # a parameter bit or one of its replicas
        if base not in prot:
            plain.append(u)
            continue
        rep = 0 if u.ff < first_replica else "_bc".index(space.replica_site(u.ff)[1])
        toggles = voted.setdefault((base, u.cycle), [False, False, False])
        toggles[rep] = not toggles[rep]
    plain += [Upset(ff, c) for (ff, c), t in voted.items() if sum(t) >= 2]
    return plain


def decoded(space: FlipFlopSpace, fault: Fault) -> Fault:
    """A fault of a design of code words (``space.coded``) as the fault of the
    plain design that the datapath cannot tell from it: per code word, the
    data bits its decoder passes on inverted, each toggled at the cycles at
    which that changes. The code is linear, so the decoder's output is the
    golden word XOR the decoding of the error pattern alone (data and check
    bits upset so far): one upset decodes to nothing, two to the data bits
    among them (detected, not corrected), three may be miscorrected, all as
    the decoder does (a correction of a word's constant padding bit reaches
    no register). Pipeline and valid upsets and the scrub are kept."""
    if not space.coded:
        return fault
    in_words = space.register_tensor([u.ff for u in fault.upsets]) >= 0
    kept = [u for u, w in zip(fault.upsets, in_words) if not w]  # pipeline and valid upsets
    coded = [u for u, w in zip(fault.upsets, in_words) if w]
    events = {}  # (tensor, word) -> {cycle: [data error, check error]}
    if coded:
        for u, tn, word, d, c in zip(coded, *space.word_errors([u.ff for u in coded])):
            at = events.setdefault((int(tn), int(word)), {}).setdefault(u.cycle, [0, 0])
            at[0] ^= int(d)
            at[1] ^= int(c)
    for (tn, word), by_cycle in events.items():
        code, site_of = space.code_of(tn), space.word_sites(tn, word)
        err_d = err_c = seen = 0
        for c in sorted(by_cycle):
            err_d ^= by_cycle[c][0]
            err_c ^= by_cycle[c][1]
            now = int(code.decode(err_d, err_c).data)  # the data bits read inverted from cycle c on
            kept += [Upset(site, c) for p, site in site_of.items() if (now ^ seen) >> p & 1]
            seen = now
    return Fault(tuple(sorted(kept)), fault.scrub)


def simulate(model: IntegerModel, space: FlipFlopSpace, fault: Fault, inputs: np.ndarray) -> tuple:
    """(latent (N, n_out), lost (N,), extra) of one fault on the N window inputs."""
    if space.coded:
        fault, space = decoded(space, fault), space.plain()
    x = np.asarray(inputs, dtype=np.int64)
    n = x.shape[0]
    specs = model.tensor_specs()
    flips = _param_flips(space, fault, n)
    by_layer = {}
    for site, slots in flips.items():
        tn = int(space.sites.locate([site])[0][0])
        by_layer.setdefault(space.sites.tensors[tn].layer_pos, []).append((site, slots))
    transients = transient_upsets(space, fault)
    data_ups = [u for u in transients if u.ff < space.first_control]
    frac = model.input.fmt.frac
    for pos in range(len(model.layers) + 1):
        x = _flip_stage_data(space, data_ups, pos, x)
        if pos == len(model.layers):
            break
        layer = model.layers[pos]
        bound = max(abs(specs[pos].lo), abs(specs[pos].hi))
        if pos not in by_layer:
            x, frac = engine.apply_layer(layer, x, frac, bound)
            continue
        # slots grouped by which of this layer's sites they see inverted
        pattern = np.stack([slots for _, slots in by_layer[pos]], axis=1)  # (N, sites)
        keys, inverse = np.unique(pattern, axis=0, return_inverse=True)
        out = None
        for g, key in enumerate(keys):
            m = model
            for (site, _), on in zip(by_layer[pos], key):
                if on:
                    m = flip(m, space.sites, site)
            rows = np.flatnonzero(inverse.reshape(-1) == g)
            y, yfrac = engine.apply_layer(m.layers[pos], x[rows], frac, bound)
            if out is None:
                out = np.empty((n,) + y.shape[1:], dtype=np.int64)
            out[rows] = y
        x, frac = out, yfrac
    lost = np.zeros(n, dtype=bool)
    extra = 0
    valid_flips = {}
    for u in transients:
        if space.first_control <= u.ff < space.first_control + space.latency:
            slot = u.cycle - (u.ff - space.first_control)
            valid_flips[slot] = valid_flips.get(slot, 0) ^ 1
    for slot, odd in valid_flips.items():
        if odd and 0 <= slot < n:
            lost[slot] = True
        elif odd and slot >= n:
            extra += 1
    return x.reshape(n, -1), lost, extra


def _flip_stage_data(space: FlipFlopSpace, ups: list, layer_pos: int, x: np.ndarray) -> np.ndarray:
    """Apply the pipeline data upsets of the stage that holds the activation
    entering ``layer_pos`` to the slots it holds at their cycles."""
    stage = next((st for st in space.stages if st.layer_pos == layer_pos), None)
    if stage is None:
        return x
    mine = [u for u in ups if stage.first_id <= u.ff < stage.first_id + stage.n_ff]
    if not mine:
        return x
    x = x.copy()
    flat = x.reshape(x.shape[0], -1)
    fmt = stage.fmt()
    for u in mine:
        slot = u.cycle - stage.stage
        if not 0 <= slot < x.shape[0]:
            continue  # a drain slot: no window output depends on it
        _, element, bit = space.pipeline_location(u.ff)
        flat[slot, element] = fmt.flip(flat[slot, element], bit)
    return flat.reshape(x.shape)


def simulate_set(model: IntegerModel, space: FlipFlopSpace, fs: FaultSet, inputs: np.ndarray) -> Observed:
    """:func:`simulate` for every fault of a set."""
    res = [simulate(model, space, f, inputs) for f in fs.faults()]
    n, n_out = np.asarray(inputs).shape[0], model.output_spec.size
    if not res:
        return Observed(np.zeros((0, n, n_out), dtype=np.int64), np.zeros((0, n), dtype=bool),
                        np.zeros(0, dtype=np.int64))
    return Observed(np.stack([r[0] for r in res]).astype(np.int64), np.stack([r[1] for r in res]),
                    np.array([r[2] for r in res], dtype=np.int64))
