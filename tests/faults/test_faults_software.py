"""The software level's fast routes equal the fault model bit for bit.

SoftwareLevel.run_faults computes each fault along a route chosen from its
upsets (one register word, one transient, a batched frame, or the fault
model itself for hardened bits); every route is checked against
fkhw.faults.software.simulate_set, exhaustively where that is quick and on
seeded samples otherwise, on ECON-T and on a small model of other widths.
Each check also asserts that the faults took the route under test and that
some of them change an output, so a route that did nothing cannot pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from fkhw.model import data

from fkhw.model import engine
from fkhw.faults.kinds import KindOptions, enumerate_faults, parse_kind
from fkhw.faults.software import simulate_set
from fkhw.faults.space import Fault, FaultSet, FlipFlopSpace, Upset, check_fault_set, cycle_bounds
from fkhw.levels.software import ROUTES, SoftwareLevel
from fkhw.model.bundle import load_model

N_INPUTS = 32


@pytest.fixture(scope="module", params=["econt-bol", "small"])
def case(request):
    """(level, flip-flop space, inputs)."""
    name = str(request.getfixturevalue("small_model_dir")) if request.param == "small" else request.param
    ir = load_model(name).ir
    charges = data.load_charges()
    x = data.encoder_input_codes(charges[data.select_modules(charges, N_INPUTS, 0)], ir.input.fmt)
    return SoftwareLevel(ir), FlipFlopSpace.of(ir), x


def sample(fs: FaultSet, n: int, seed: int) -> FaultSet:
    if len(fs) <= n:
        return fs
    return fs.take(np.sort(np.random.default_rng(seed).choice(len(fs), n, replace=False)))


def check_equal(level, space, fs, x, route: str, also=()) -> None:
    """run_faults == the fault model on ``fs``, whose faults take ``route``
    (and perhaps routes ``also``)."""
    taken = np.asarray(ROUTES)[level.routes(fs)]
    assert (taken == route).any() and set(taken) <= {route, *also}
    got = level.run_faults(fs, x)
    want = simulate_set(level.model, space, fs, x)
    bad = want.mismatches(got)
    assert int(bad.sum()) == 0, f"{int(bad.sum())} of {len(fs)} faults differ, e.g. {fs.fault(int(np.argmax(bad)))}"
    golden = engine.forward(level.model, x)
    effect = (want.latent != golden[None]).any(axis=(1, 2)) | want.lost.any(axis=1) | (want.extra > 0)
    assert effect.any(), "no fault of the sample changes anything: the check would be vacuous"


def kind(space, spec: str, x, **opts) -> FaultSet:
    return enumerate_faults(space, parse_kind(spec), KindOptions(x.shape[0], **opts))


# --- one register word (seu, mbu:K) ------------------------------------------------

def test_mbu_2_exhaustive_equals_the_fault_model(case):
    level, space, x = case
    check_equal(level, space, kind(space, "mbu:2", x), x, "register")


@pytest.mark.parametrize("k", [3, "widest"])
def test_mbu_k_equals_the_fault_model(case, k):
    level, space, x = case
    k = max(t.fmt.bits for t in space.sites.tensors) if k == "widest" else k
    check_equal(level, space, sample(kind(space, f"mbu:{k}", x), 400, seed=k), x, "register")


def test_one_word_upsets_at_a_later_cycle_and_with_a_scrub_equal_the_fault_model(case):
    level, space, x = case
    n = x.shape[0]
    mbu = sample(kind(space, "mbu:2", x), 300, seed=1)
    rng = np.random.default_rng(2)
    faults = []
    for f in mbu.faults():
        c = int(rng.integers(0, n))
        scrub = None if rng.random() < 0.5 else int(rng.integers(c, n + space.latency))
        faults.append(Fault(tuple(Upset(u.ff, c) for u in f.upsets), scrub))
    seu_late = kind(space, "seu", x, cycle=n // 2)
    check_equal(level, space, FaultSet.of("file", np.arange(len(faults)), faults), x, "register")
    check_equal(level, space, sample(seu_late, 300, seed=3), x, "register")


# --- transients (pipeline) ------------------------------------------------------------

def test_pipeline_samples_and_every_valid_upset_equal_the_fault_model(case):
    level, space, x = case
    fs = kind(space, "pipeline", x)
    valid = np.flatnonzero(fs.ff >= space.first_control)
    picks = np.union1d(np.random.default_rng(4).choice(len(fs), 600, replace=False), valid)
    check_equal(level, space, fs.take(picks), x, "transient")
    # drain cycles: nothing changes for data, extra outputs for valid flags
    drain = FaultSet.single("file", np.arange(space.latency * 2),
                            [space.first_control + k for k in range(space.latency)]
                            + [st.first_id for st in space.stages],
                            cycle=x.shape[0] + space.latency - 1)
    assert set(np.asarray(ROUTES)[level.routes(drain)]) == {"transient"}
    want = simulate_set(level.model, space, drain, x)
    assert int(want.mismatches(level.run_faults(drain, x)).sum()) == 0
    assert want.extra.tolist() == [1] * space.latency + [0] * space.latency


def test_pipeline_upsets_of_a_design_with_triplicated_valid_flags_and_data_bits_equal_the_fault_model(case):
    """A map that triplicates every valid flag and some data bits of each
    stage: their replica A upsets go by the voter (masked), the other
    pipeline upsets by the fast transient route; replica pairs in one clock
    are the plain upset. All equal the fault model."""
    level, plain, x = case
    data_bits = np.concatenate([np.arange(st.first_id, st.first_id + st.n_ff, 97) for st in plain.stages])
    valid = np.arange(plain.first_control, plain.first_control + plain.latency)
    prot = tuple(np.concatenate([np.arange(0, plain.sites.n_sites, 50), data_bits, valid]).tolist())
    hard = SoftwareLevel(level.model, protect=prot)
    space = hard.ffs
    fs = kind(space, "pipeline", x)
    mine = np.flatnonzero(np.isin(fs.ff, np.asarray(space.protected_transients)))
    picks = np.union1d(np.random.default_rng(6).choice(len(fs), 400, replace=False), mine)
    check_equal(hard, space, fs.take(picks), x, "transient", also=["reference"])
    assert set(np.asarray(ROUTES)[hard.routes(fs.take(mine))]) == {"reference"}
    masked = hard.run_faults(fs.take(mine), x)
    golden = engine.forward(level.model, x)
    assert not (masked.latent != golden[None]).any() and not masked.lost.any() and not masked.extra.any()
    pairs = kind(space, "replica-pairs", x)
    tr = np.flatnonzero(space.base(pairs.ff[pairs.indptr[:-1]]) >= space.sites.n_sites)
    check_equal(hard, space, sample(pairs.take(tr), 300, 7), x, "reference")


def test_single_upsets_of_stage_0_at_cycle_0_are_transients_not_parameter_sites(case):
    level, space, x = case
    st = space.stages[0]
    fs = FaultSet.single("file", np.arange(st.n_ff), np.arange(st.first_id, st.first_id + st.n_ff), cycle=0)
    check_equal(level, space, fs, x, "transient")


def test_pipeline_exhaustive_on_the_small_model(request):
    ir = load_model(str(request.getfixturevalue("small_model_dir"))).ir
    space = FlipFlopSpace.of(ir)
    charges = data.load_charges()
    x = data.encoder_input_codes(charges[data.select_modules(charges, 8, 1)], ir.input.fmt)
    check_equal(SoftwareLevel(ir), space, kind(space, "pipeline", x), x, "transient")


# --- batched frames (accumulate:K, mixed faults files) ----------------------------------

@pytest.mark.parametrize("k", [2, 4, 16])
def test_accumulate_k_equals_the_fault_model(case, k):
    level, space, x = case
    # two of the K bits may share a register word: that fault is one-word
    check_equal(level, space, kind(space, f"accumulate:{k}", x, samples=300, seed=k), x, "batched", also=["register"])


def random_faults(space, n_vectors: int, count: int, seed: int) -> FaultSet:
    """Faults mixing parameter, pipeline and valid upsets at random cycles inside
    the frame (a fifth only valid flags, so that slots are lost and added),
    one flip-flop of each upset twice, half of them scrubbed (never before one
    of their parameter upsets: fkhw.faults.space.check_fault_set refuses that)."""
    rng = np.random.default_rng(seed)
    lo, hi = cycle_bounds(space, np.arange(space.n_ff), n_vectors)
    faults = []
    for _ in range(count):
        pool = [np.arange(space.n_ff), np.arange(space.sites.n_sites, space.n_ff),
                np.arange(space.first_control, space.first_replica)][int(rng.choice(3, p=[0.5, 0.3, 0.2]))]
        ffs = rng.choice(pool, int(rng.integers(2, 7)))
        ups = {Upset(int(f), int(rng.integers(lo[f], hi[f]))) for f in ffs}
        twice = int(ffs[0])
        ups.add(Upset(twice, int(rng.integers(lo[twice], hi[twice]))))
        last_param = max([u.cycle for u in ups if u.ff < space.sites.n_sites or u.ff >= space.first_replica],
                         default=0)
        scrub = None if rng.random() < 0.5 else int(rng.integers(last_param, hi.max()))
        faults.append(Fault(tuple(sorted(ups)), scrub))
    fs = FaultSet.of("file", np.arange(count), faults)
    check_fault_set(fs, space, n_vectors)
    return fs


def test_mixed_faults_equal_the_fault_model(case):
    level, space, x = case
    fs = random_faults(space, x.shape[0], 400, seed=5)
    batched = np.flatnonzero(level.routes(fs) == ROUTES.index("batched"))
    assert batched.size > 300
    check_equal(level, space, fs.take(batched), x, "batched")
    want = simulate_set(level.model, space, fs.take(batched), x)
    assert want.lost.any() and want.extra.any(), "the sample must exercise valid upsets"


def test_a_fault_set_mixing_every_route_equals_the_fault_model(case):
    level, space, x = case
    parts = [sample(kind(space, "seu", x, cycle=3), 50, 6), sample(kind(space, "mbu:2", x), 50, 7),
             sample(kind(space, "pipeline", x), 50, 8), kind(space, "accumulate:3", x, samples=50, seed=9)]
    faults = [f for p in parts for f in p.faults()] + list(random_faults(space, x.shape[0], 50, seed=10).faults())
    fs = FaultSet.of("file", np.arange(len(faults)), faults)
    assert set(np.asarray(ROUTES)[level.routes(fs)]) == {"register", "transient", "batched"}
    got = level.run_faults(fs, x)
    assert int(simulate_set(level.model, space, fs, x).mismatches(got).sum()) == 0
    # chunks of a campaign see the same outcome as the whole set
    half = fs.take(np.arange(len(fs) // 2, len(fs)))
    np.testing.assert_array_equal(level.run_faults(half, x).latent, got.latent[len(fs) // 2:])


# --- hardened designs go through the fault model -------------------------------------------

def test_a_hardened_design_routes_protected_bits_to_the_fault_model(case):
    level, plain, x = case
    protect = np.arange(0, plain.sites.n_sites, 3)
    hard = SoftwareLevel(level.model, protect=tuple(protect.tolist()))
    space = hard.ffs
    assert space.counts()["replica"] == 2 * protect.size
    fs = random_faults(space, x.shape[0], 200, seed=11)
    routes = np.asarray(ROUTES)[hard.routes(fs)]
    touches = [any(u.ff >= space.first_replica or u.ff in set(protect.tolist()) for u in f.upsets) for f in fs.faults()]
    assert (routes == "reference").tolist() == touches
    assert int(simulate_set(hard.model, space, fs, x).mismatches(hard.run_faults(fs, x)).sum()) == 0
