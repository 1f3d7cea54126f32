"""The fault model (fkhw.faults.software), pinned against independent constructions.

Every level is checked against this model, so the model itself is checked
here against what each fault kind means: parameter upsets are the integer
engine run on a model with those bits flipped (fkhw.faults.sites.flip), for the
slots that pass the layer while the bit is upset; a pipeline upset changes
one element of one slot; a valid upset drops a window slot or adds a drain
output; a hardened bit flips only under a majority of its replicas. And the
flip-flop space counts exactly the flip-flops the RTL generator declares
(which the netlist tests tie to Yosys' count).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fkhw.model import data

from fkhw.model import engine
from fkhw.faults.kinds import KindOptions, enumerate_faults, parse_kind
from fkhw.faults.software import simulate
from fkhw.faults.space import Fault, FlipFlopSpace, Upset, check_fault_set, touched
from fkhw.model.bundle import load_model
from fkhw.rtlgen.emit import generate
from fkhw.rtlgen.harden import harden
from fkhw.faults.sites import flip

N_INPUTS = 24


def window_inputs(ir, n: int = N_INPUTS, seed: int = 0) -> np.ndarray:
    """n vendored detector modules as encoder input codes."""
    charges = data.load_charges()
    return data.encoder_input_codes(charges[data.select_modules(charges, n, seed)], ir.input.fmt)


@pytest.fixture(scope="module", params=["econt-bol", "small"])
def case(request):
    """(model, plain flip-flop space, inputs) for ECON-T and a small model of other widths."""
    name = str(request.getfixturevalue("small_model_dir")) if request.param == "small" else request.param
    ir = load_model(name).ir
    return ir, FlipFlopSpace.of(ir), window_inputs(ir)


def flipped(ir, space, sites):
    """The model with every listed site's bit flipped (a site listed twice is restored)."""
    for s in sites:
        ir = flip(ir, space.sites, int(s))
    return ir


def run(ir, space, upsets, x, scrub=None):
    return simulate(ir, space, Fault(tuple(sorted(Upset(int(f), int(c)) for f, c in upsets)), scrub), x)


def sample_sites(space, n_random: int, seed: int) -> np.ndarray:
    """MSB and LSB of the first and last word of every tensor, plus random sites."""
    chosen = []
    for t in space.sites.tensors:
        for index in (0, t.size - 1):
            chosen += [t.offset + index * t.fmt.bits, t.offset + index * t.fmt.bits + t.fmt.bits - 1]
    chosen += np.random.default_rng(seed).choice(space.sites.n_sites, n_random, replace=False).tolist()
    return np.unique(chosen)


def stage_of_site(space, site: int) -> int:
    tn = int(space.sites.locate([site])[0][0])
    return space.mac_stage(space.sites.tensors[tn].layer_pos)


# --- parameter upsets = the engine on a model with the bits flipped ------------

def test_seu_at_cycle_0_is_the_engine_on_the_flipped_model(case):
    ir, space, x = case
    golden = engine.forward(ir, x)
    changed = 0
    for s in sample_sites(space, 40, seed=1):
        latent, lost, extra = run(ir, space, [(s, 0)], x)
        want = engine.forward(flipped(ir, space, [s]), x)
        np.testing.assert_array_equal(latent, want, err_msg=f"site {s}")
        assert not lost.any() and extra == 0
        changed += bool((want != golden).any())
    assert changed > 0, "the sample must contain upsets that change outputs"


@pytest.mark.parametrize("k", [2, "widest"])
def test_mbu_is_the_engine_on_the_model_with_its_k_adjacent_bits_flipped(case, k):
    ir, space, x = case
    k = max(t.fmt.bits for t in space.sites.tensors) if k == "widest" else k
    fs = enumerate_faults(space, parse_kind(f"mbu:{k}"), KindOptions(x.shape[0]))
    picks = np.random.default_rng(2).choice(len(fs), min(60, len(fs)), replace=False)
    for i in picks:
        fault = fs.fault(int(i))
        sites = [u.ff for u in fault.upsets]
        assert len(sites) == k and len({space.describe(s).register for s in sites}) == 1
        assert sorted(space.describe(s).bit for s in sites) == list(range(space.describe(sites[0]).bit,
                                                                      space.describe(sites[0]).bit + k))
        latent, lost, extra = simulate(ir, space, fault, x)
        np.testing.assert_array_equal(latent, engine.forward(flipped(ir, space, sites), x), err_msg=str(fault))


def test_accumulate_is_the_engine_on_the_model_with_all_k_bits_flipped(case):
    ir, space, x = case
    fs = enumerate_faults(space, parse_kind("accumulate:4"), KindOptions(x.shape[0], samples=60, seed=3))
    golden, changed = engine.forward(ir, x), 0
    for fault in fs.faults():
        assert len({u.ff for u in fault.upsets}) == 4
        want = engine.forward(flipped(ir, space, [u.ff for u in fault.upsets]), x)
        latent, lost, extra = simulate(ir, space, fault, x)
        np.testing.assert_array_equal(latent, want, err_msg=str(fault))
        changed += bool((want != golden).any())
    assert changed > 0


def test_a_parameter_upset_at_cycle_c_is_seen_from_slot_c_minus_its_stage_on(case):
    ir, space, x = case
    n = x.shape[0]
    golden = engine.forward(ir, x)
    for s in sample_sites(space, 10, seed=4):
        k = stage_of_site(space, s)
        c = k + n // 2  # the layer's stage holds slot n//2 at cycle c
        latent, _, _ = run(ir, space, [(s, c)], x)
        np.testing.assert_array_equal(latent[:n // 2], golden[:n // 2])
        np.testing.assert_array_equal(latent[n // 2:], engine.forward(flipped(ir, space, [s]), x)[n // 2:])


def test_the_scrub_restores_the_parameter_for_the_slots_after_it(case):
    ir, space, x = case
    n = x.shape[0]
    golden = engine.forward(ir, x)
    for s in sample_sites(space, 10, seed=5):
        k = stage_of_site(space, s)
        latent, _, _ = run(ir, space, [(s, 0)], x, scrub=k + n // 3)  # scrubbed before slot n//3 reaches the layer
        np.testing.assert_array_equal(latent[:n // 3], engine.forward(flipped(ir, space, [s]), x)[:n // 3])
        np.testing.assert_array_equal(latent[n // 3:], golden[n // 3:])


def test_two_upsets_of_one_parameter_flip_flop_restore_it(case):
    ir, space, x = case
    n = x.shape[0]
    golden = engine.forward(ir, x)
    for s in sample_sites(space, 5, seed=6):
        k = stage_of_site(space, s)
        latent, _, _ = run(ir, space, [(s, 0), (s, k + n // 2)], x)
        np.testing.assert_array_equal(latent[:n // 2], engine.forward(flipped(ir, space, [s]), x)[:n // 2])
        np.testing.assert_array_equal(latent[n // 2:], golden[n // 2:])


# --- pipeline data and valid upsets ----------------------------------------------

def data_flip_flops(space, stage, n: int, seed: int) -> np.ndarray:
    """First and last flip-flop of the stage plus random ones."""
    rng = np.random.default_rng(seed)
    return np.unique([stage.first_id, stage.first_id + stage.n_ff - 1]
                     + rng.integers(stage.first_id, stage.first_id + stage.n_ff, n).tolist())


def test_an_output_stage_upset_changes_one_output_code_of_one_slot_by_the_flipped_bit(case):
    ir, space, x = case
    n = x.shape[0]
    golden = engine.forward(ir, x)
    out_stage = next(st for st in space.stages if st.layer_pos == len(ir.layers))
    assert out_stage.stage == space.latency - 1
    fmt = out_stage.fmt()
    for j, ff in enumerate(data_flip_flops(space, out_stage, 30, seed=7)):
        slot = j % n
        latent, lost, extra = run(ir, space, [(ff, out_stage.stage + slot)], x)
        diff = np.argwhere(latent != golden)
        _, element, bit = space.pipeline_location(int(ff))
        assert diff.tolist() == [[slot, element]], f"flip-flop {ff}"
        assert fmt.to_unsigned(latent[slot, element]) ^ fmt.to_unsigned(golden[slot, element]) == 1 << (fmt.bits - 1 - bit)
        assert not lost.any() and extra == 0


def test_a_data_upset_of_stage_k_at_cycle_c_changes_only_slot_c_minus_k(case):
    ir, space, x = case
    n = x.shape[0]
    golden = engine.forward(ir, x)
    acts = engine.activations(ir, x)
    specs = ir.tensor_specs()
    for st in space.stages:
        changed = 0
        for j, ff in enumerate(data_flip_flops(space, st, 20, seed=8 + st.stage)):
            slot = (3 * j) % n
            latent, lost, extra = run(ir, space, [(ff, st.stage + slot)], x)
            # independent: flip the element of that one vector and run the layers after the stage
            _, element, bit = space.pipeline_location(int(ff))
            held = acts[st.layer_pos][slot].reshape(-1).copy()
            held[element] = st.fmt().flip(held[element], bit)
            want = golden.copy()
            want[slot] = engine.run_from(ir, st.layer_pos, held.reshape((1,) + acts[st.layer_pos].shape[1:]),
                                         specs[st.layer_pos].frac).reshape(-1)
            np.testing.assert_array_equal(latent, want, err_msg=f"stage {st.stage} flip-flop {ff}")
            assert not lost.any() and extra == 0
            changed += bool((latent != golden).any())
        assert changed > 0, f"no upset of stage {st.stage} changed an output"
        # in the drain (slot >= N) no window output depends on the stage
        latent, lost, extra = run(ir, space, [(st.first_id, st.stage + n)], x)
        np.testing.assert_array_equal(latent, golden)
        assert not lost.any() and extra == 0


def test_valid_upsets_lose_a_window_slot_add_a_drain_output_and_cancel_in_pairs(case):
    ir, space, x = case
    n = x.shape[0]
    golden = engine.forward(ir, x)
    valid = [space.first_control + st.stage for st in space.stages]
    assert [space.describe(v).cls for v in valid] == ["control"] * space.latency
    for k, ff in enumerate(valid):
        for slot in (0, n - 1):
            latent, lost, extra = run(ir, space, [(ff, k + slot)], x)
            np.testing.assert_array_equal(latent, golden)
            assert np.flatnonzero(lost).tolist() == [slot] and extra == 0
        for drain in range(space.latency):
            latent, lost, extra = run(ir, space, [(ff, k + n + drain)], x)
            assert not lost.any() and extra == 1
    # one slot's valid inverted at two stages: restored
    if space.latency >= 2:
        latent, lost, extra = run(ir, space, [(valid[0], 0 + 5), (valid[-1], space.latency - 1 + 5)], x)
        assert not lost.any() and extra == 0
        # at two different slots: both lost
        latent, lost, extra = run(ir, space, [(valid[0], 5), (valid[-1], space.latency - 1 + 6)], x)
        assert np.flatnonzero(lost).tolist() == [5, 6]


# --- hardened designs: the majority of three replicas -----------------------------

def test_a_protected_bit_flips_only_while_two_of_its_three_replicas_are_upset(case):
    ir, plain, x = case
    n = x.shape[0]
    golden = engine.forward(ir, x)
    sites = sample_sites(plain, 6, seed=9)
    protect = sites[::2]
    space = FlipFlopSpace.of(ir, protect=protect)
    assert space.n_ff == plain.n_ff + 2 * protect.size
    changed = 0
    for s in protect:
        b, c = [f for f in range(space.first_replica, space.n_ff) if space.replica_site(f)[0] == s]
        assert [space.describe(f).cls for f in (s, b, c)] == ["param", "replica", "replica"]
        k = stage_of_site(space, s)
        for one in (s, b, c):
            latent, _, _ = run(ir, space, [(one, 0)], x)
            np.testing.assert_array_equal(latent, golden, err_msg=f"one replica of site {s}")
        want = engine.forward(flipped(ir, space, [s]), x)
        for pair in ((s, b), (b, c), (s, c)):
            # the first replica upset at cycle 0, the second while it is still upset: from then on a majority
            latent, _, _ = run(ir, space, [(pair[0], 0), (pair[1], k + n // 2)], x)
            np.testing.assert_array_equal(latent[:n // 2], golden[:n // 2])
            np.testing.assert_array_equal(latent[n // 2:], want[n // 2:])
            changed += bool((want[n // 2:] != golden[n // 2:]).any())
        # all three: the voter sees the flipped bit
        latent, _, _ = run(ir, space, [(s, 0), (b, 0), (c, 0)], x)
        np.testing.assert_array_equal(latent, want)
    assert changed > 0
    for s in np.setdiff1d(sites, protect):  # an unprotected bit of the hardened design: as in the plain one
        latent, _, _ = run(ir, space, [(s, 0)], x)
        np.testing.assert_array_equal(latent, engine.forward(flipped(ir, space, [s]), x))


def test_with_refresh_replicas_upset_in_different_clocks_are_repaired_and_in_one_clock_defeat_the_voter(case):
    """Self-correcting TMR: every edge rewrites the voted value into the
    replicas, so a second replica upset a clock after the first finds the
    first repaired; two in one clock outvote the good one, and the wrong
    majority is written back (it stays until the scrub)."""
    ir, plain, x = case
    n = x.shape[0]
    golden = engine.forward(ir, x)
    sites = sample_sites(plain, 4, seed=11)
    space = FlipFlopSpace.of(ir, protect=sites, refresh=True)
    assert space.counts()["control"] == plain.counts()["control"] + 1  # the sticky tmr_err flag
    assert space.describe(space.tmr_err_flag).register == "tmr_err"
    changed = 0
    for s in sites:
        b, c = [f for f in range(space.first_replica, space.n_ff) if space.replica_site(f)[0] == s]
        k = stage_of_site(space, s)
        want = engine.forward(flipped(ir, space, [s]), x)
        for pair in ((s, b), (b, c), (s, c)):
            latent, _, _ = run(ir, space, [(pair[0], k), (pair[1], k + 1)], x)  # one clock apart: repaired
            np.testing.assert_array_equal(latent, golden, err_msg=f"site {s}: replicas {pair} a clock apart")
            latent, _, _ = run(ir, space, [(pair[0], k + n // 2), (pair[1], k + n // 2)], x)  # same clock
            np.testing.assert_array_equal(latent[:n // 2], golden[:n // 2])
            np.testing.assert_array_equal(latent[n // 2:], want[n // 2:])
            changed += bool((want[n // 2:] != golden[n // 2:]).any())
        # without refresh the same two upsets a clock apart do defeat it
        hard = FlipFlopSpace.of(ir, protect=sites)
        latent, _, _ = run(ir, hard, [(s, k), (b, k + 1)], x)
        np.testing.assert_array_equal(latent[1:], want[1:])
        # an upset of the sticky flag is a false alarm: no output changes
        latent, lost, extra = run(ir, space, [(space.tmr_err_flag, 3)], x)
        np.testing.assert_array_equal(latent, golden)
        assert not lost.any() and extra == 0
    assert changed > 0


def test_a_protected_pipeline_or_valid_flip_flop_is_inverted_only_by_two_replicas_in_one_clock(case):
    """Triplicated pipeline data bits and valid flags reload every clock: one
    replica upset changes nothing; two (or three) in the same clock are the
    plain design's upset of that flip-flop at that cycle; two in different
    clocks change nothing. Parameter replicas keep their ids when pipeline
    and valid flip-flops are protected too (theirs follow)."""
    ir, plain, x = case
    n = x.shape[0]
    golden = engine.forward(ir, x)
    sites = sample_sites(plain, 4, seed=5)
    data = np.concatenate([data_flip_flops(plain, st, 2, seed=st.stage) for st in plain.stages])
    valid = np.arange(plain.first_control, plain.first_control + plain.latency)
    space = FlipFlopSpace.of(ir, protect=np.concatenate([sites, data, valid]))
    params_only = FlipFlopSpace.of(ir, protect=sites)
    assert space.first_replica == params_only.first_replica
    assert space.table()["register"][:params_only.n_ff] == params_only.table()["register"]
    assert space.n_ff == plain.n_ff + 2 * (sites.size + data.size + valid.size)
    changed = 0
    for ff in np.concatenate([data, valid]).tolist():
        j = space.protected.index(ff)
        b, c = space.first_replica + 2 * j, space.first_replica + 2 * j + 1
        assert [space.describe(f).cls for f in (b, c)] == ["replica", "replica"]
        assert space.replica_site(b) == (ff, "b") and space.describe(c).stage == space.describe(ff).stage
        k = space.stage_of(ff).stage
        cyc = k + n // 3
        for one in (ff, b, c):
            latent, lost, extra = run(ir, space, [(one, cyc)], x)
            np.testing.assert_array_equal(latent, golden)
            assert not lost.any() and extra == 0
        want = run(ir, plain, [(ff, cyc)], x)
        for pair in ((ff, b), (b, c), (ff, c), (ff, b, c)):
            got = run(ir, space, [(f, cyc) for f in pair], x)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
            assert got[2] == want[2]
            changed += bool((got[0] != golden).any() or got[1].any())
            apart = run(ir, space, [(pair[0], cyc), (pair[1], cyc + 1)], x)
            np.testing.assert_array_equal(apart[0], golden)
            assert not apart[1].any()
    assert changed > 0


# --- the flip-flop count -------------------------------------------------------

@pytest.mark.parametrize("model", ["econt-bol", "small", "fkeras-eol"])
@pytest.mark.parametrize("hardened", [False, True, "refresh"])
def test_the_flip_flop_space_counts_the_flip_flops_the_rtl_declares(model, hardened, request):
    name = str(request.getfixturevalue("small_model_dir")) if model == "small" else model
    ir = load_model(name).ir
    plain = FlipFlopSpace.of(ir)
    protect = np.arange(0, plain.sites.n_sites, 7) if hardened else None
    refresh = hardened == "refresh"
    space = FlipFlopSpace.of(ir, protect=protect, refresh=refresh)
    meta = (generate(ir) if protect is None else harden(ir, protect, refresh)).meta
    assert space.n_ff == meta["flip_flops_expected"]
    breakdown = meta["flip_flops_breakdown"]
    counts = space.counts()
    assert (counts["param"], counts["pipeline"], counts["control"]) == (
        breakdown["parameter_bits"], breakdown["pipeline_data_bits"],
        breakdown["valid_bits"] + breakdown.get("tmr_err_flag", 0))
    assert counts["replica"] == breakdown.get("tmr_replica_bits", 0) == (2 * protect.size if hardened else 0)
    table = space.table()
    assert len(set(zip(table["register"], table["bit"]))) == space.n_ff, "every flip-flop names its own bit"


# --- the slots a fault is measured on ------------------------------------------

def touched_by_rule(fs, space, n: int) -> np.ndarray:
    """fkhw.faults.space.touched's docstring, upset by upset: a register of
    parameters is wrong for the slots from the upset's cycle minus the stage
    feeding its layer up to the scrub; a pipeline or valid flip-flop for the
    one slot passing its stage; the sticky tmr_err flag for none."""
    out = np.zeros((len(fs), n), dtype=bool)
    for i, f in enumerate(fs.faults()):
        for u in f.upsets:
            if u.ff == space.tmr_err_flag:
                continue
            base = int(space.base([u.ff])[0])
            tn = int(space.register_tensor([u.ff])[0])
            if tn >= 0:
                k = space.mac_stage(space.sites.tensors[tn].layer_pos)
                end = n if f.scrub is None or f.scrub < 0 else f.scrub - k
                out[i, max(u.cycle - k, 0):max(min(end, n), 0)] = True
            elif 0 <= u.cycle - space.stage_of(base).stage < n:
                out[i, u.cycle - space.stage_of(base).stage] = True
    return out


@pytest.mark.parametrize("kind", ["seu", "mbu:2", "pipeline", "accumulate:4", "replica-pairs"])
def test_the_touched_slots_follow_each_upset_and_hold_every_slot_the_fault_changes(case, kind):
    ir, space, x = case
    n = x.shape[0]
    protect = sample_sites(space, 40, seed=8)
    hard = FlipFlopSpace.of(ir, protect, refresh=True)  # replicas and the sticky flag too
    fs = enumerate_faults(hard, parse_kind(kind), KindOptions(n_vectors=n, samples=300))
    # a third of the faults scrubbed, a few cycles after their last upset (within the frame: its last cycle
    # is the last stage's, fkhw.faults.space.check_fault_set)
    last = np.maximum.reduceat(fs.cycle, fs.indptr[:-1]) if fs.ff.size else np.zeros(0, dtype=np.int64)
    pick = np.arange(len(fs)) % 3 == 0
    scrub = np.where(pick, np.minimum(last + 1 + np.arange(len(fs)) % 4, 2 * (hard.latency - 1) + n), -1)
    fs = dataclasses.replace(fs, scrub=scrub.astype(np.int64))
    check_fault_set(fs, hard, n)
    got = touched(fs, hard, n)
    np.testing.assert_array_equal(got, touched_by_rule(fs, hard, n))
    golden = engine.forward(ir, x)
    for i in np.random.default_rng(9).choice(len(fs), min(len(fs), 25), replace=False):
        latent, lost, _ = simulate(ir, hard, fs.fault(int(i)), x)
        changed = (latent != golden).any(axis=1) | lost
        assert not (changed & ~got[i]).any(), f"{kind} fault {int(fs.ids[i])}: changes slots it does not touch"


def test_the_faults_csv_names_each_fault_and_its_registers_as_the_fault_and_describe_do(case, tmp_path):
    """faults.csv, row by row: the upsets as Fault.key spells them (sorted by
    flip-flop, then cycle, whatever order the set holds them in), the scrub,
    the count, the classes, and each upset's register as describe names it."""
    import csv

    from fkhw.faults.space import FaultSet, read_faults_file, write_faults_csv

    ir, space, _ = case
    last_site, first_pipe = space.sites.n_sites - 1, space.sites.n_sites
    # upsets stored out of order, a flip-flop upset twice, a scrub, a pipeline and a control flip-flop
    fs = FaultSet("file", np.array([7, 3, 11]), np.array([0, 3, 4, 6]),
                  np.array([last_site, 0, last_site, first_pipe, space.first_control, 0]),
                  np.array([2, 1, 0, 5, 4, 0]), np.array([-1, 3, -1]))
    write_faults_csv(fs, space, tmp_path / "faults.csv")
    with (tmp_path / "faults.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(fs)
    for i, row in enumerate(rows):
        fault = fs.fault(i)
        assert int(row["fault"]) == int(fs.ids[i]) and row["upsets"] == fault.key()
        assert row["scrub"] == ("" if fault.scrub is None else str(fault.scrub))
        assert int(row["n_upsets"]) == len(fault.upsets)
        assert row["classes"] == ";".join(sorted({str(c) for c in space.classes([u.ff for u in fault.upsets])}))
        assert row["registers"] == ";".join(f"{d.register}/{d.bit}" for d in (space.describe(u.ff) for u in fault.upsets))
    assert rows[0]["upsets"] == f"0@1;{last_site}@0;{last_site}@2"  # stored as last_site@2, 0@1, last_site@0
    again = read_faults_file(tmp_path / "faults.csv")
    assert [again.fault(i) for i in range(len(again))] == [fs.fault(i) for i in range(len(fs))]
