"""Every fault kind on the RTL (cocotb on Verilator), bit-exact against the
fault model (fkhw.faults.software: the definition every level must equal).

Real simulator, no mocks. Upsets are deposits into the flip-flops at their
cycles (rtl_tb/test_encoder.py); the HDL records the output slots that differ
from a fault-free encoder. Sizes come from the model: the small conftest
model (other shapes and widths than ECON-T) exhaustively, econt-bol sampled.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from fkhw.model import engine
from fkhw.faults.kinds import KindOptions, enumerate_faults, parse_kind
from fkhw.faults.software import simulate_set
from fkhw.faults.space import Fault, FaultSet, FlipFlopSpace, Upset, check_fault_set, read_faults_file
from fkhw.levels.rtl import RtlLevel, encoder_inputs, fault_deposits, frame_period, leaks, param_codes
from fkhw.model.bundle import load_model
from fkhw.rtlgen.emit import TOP, generate
from fkhw.rtlgen.sim import run_frames
from fkhw.rtlgen.synth import synth
from fkhw.tmr.proof import HardenedRtlLevel, replica_flip_flop

pytestmark = [pytest.mark.verilator, pytest.mark.yosys]

JOBS = 2
N = 16  # window vectors of the small model's frames


@pytest.fixture(scope="module")
def small(small_model_dir):
    return load_model(str(small_model_dir)).ir


@pytest.fixture(scope="module")
def small_x(small):
    return encoder_inputs(small)[:N]


@pytest.fixture(scope="module")
def small_level(small):
    return RtlLevel(small, jobs=JOBS)


def _agree(level, model, fs, x):
    """(RTL Observed, fault-model Observed, mismatching fault ids)."""
    obs = level.run_faults(fs, x)
    ref = simulate_set(model, level.space, fs, x)
    bad = obs.mismatches(ref)
    return obs, ref, fs.ids[bad]


@pytest.mark.parametrize("kind", ["seu", "mbu:2", "pipeline", "accumulate:4"])
def test_every_kind_equals_the_fault_model_on_the_small_model(small, small_x, small_level, kind):
    """Exhaustive seu, mbu:2 and pipeline (every data and valid flip-flop at
    every window cycle), 300 seeded accumulate:4: 0 mismatching faults."""
    space = small_level.space
    fs = enumerate_faults(space, parse_kind(kind), KindOptions(n_vectors=N, samples=300, seed=2))
    if kind == "pipeline":
        assert len(fs) == (space.n_pipeline + space.latency) * N
    obs, ref, bad = _agree(small_level, small, fs, small_x)
    assert bad.size == 0, f"{kind}: {bad.size} of {len(fs)} faults differ from the fault model, e.g. {bad[:5]}"
    golden = engine.forward(small, small_x)
    changed = (obs.latent != golden[None]).any(axis=(1, 2)) | obs.lost.any(axis=1)
    assert changed.sum() > 0.2 * len(fs), f"{kind}: only {int(changed.sum())} of {len(fs)} faults change anything"
    if kind == "pipeline":  # the valid flip-flops at window cycles drop exactly their slot
        assert int(obs.lost.sum()) == space.latency * N == int(ref.lost.sum())


def test_faults_file_with_cycles_scrubs_drain_slots_and_repeated_upsets(small, small_x, small_level, tmp_path):
    """Upsets at cycles > 0 and in the drain (valid: an extra output), a
    scrub between upsets, the same flip-flop twice (restored), several
    registers per frame, a frame that mixes every class."""
    space = small_level.space
    n_slots = N + space.latency
    last = space.stages[-1]
    lastv = space.first_control + last.stage
    p0 = space.sites.tensors[0].offset  # first conv kernel bit (sign)
    pl = space.sites.tensors[-1].offset + 1  # a bit of the last parameter tensor
    data = [space.stages[k].first_id + 3 for k in range(space.latency)]
    rows = [
        {"upsets": [[p0, 3]], "scrub": 9},
        {"upsets": [[pl, 5], [p0, 0]], "scrub": None},
        {"upsets": [[pl, 2], [pl, 7]], "scrub": None},  # twice: restored from cycle 7 on
        {"upsets": [[lastv, last.stage + N]], "scrub": None},  # drain slot N made valid: extra
        {"upsets": [[lastv, last.stage + n_slots - 1], [space.first_control, 4]], "scrub": None},
        {"upsets": [[d, space.stages[k].stage + 2 * k + 1] for k, d in enumerate(data)] + [[pl + 2, 1]],
         "scrub": 6},
        {"upsets": [[data[-1], last.stage + N + 1]], "scrub": None},  # drain data: nothing observable
        {"upsets": [[p0 + 1, 0], [p0 + 2, 0], [pl, 2]], "scrub": 2},  # upset and scrub at one cycle
    ]
    f = tmp_path / "faults.json"
    f.write_text(json.dumps([{"fault": 100 + k, **r} for k, r in enumerate(rows)]))
    fs = read_faults_file(f)
    check_fault_set(fs, space, N)
    obs, ref, bad = _agree(small_level, small, fs, small_x)
    assert bad.size == 0, f"{bad.size} of {len(fs)} faults differ from the fault model: {bad.tolist()}"
    assert obs.extra.tolist()[3:5] == [1, 1] and obs.lost[4].sum() == 1
    golden = engine.forward(small, small_x)
    changed = (obs.latent != golden[None]).any(axis=(1, 2)) | obs.lost.any(axis=1) | (obs.extra > 0)
    assert changed.sum() >= 5 and not changed[6], changed.tolist()


def test_a_missing_scrub_is_caught(small, small_x, small_level, tmp_path):
    """The checks can fail: leave out the restores. After the run every
    parameter register a deposit touched must hold golden again (three stay
    upset here), and outputs that differ where no upset of the frame reaches
    are caught (the leaked upsets are seen before frame 4's own upset)."""
    space = small_level.space
    first, last = space.sites.tensors[0], space.sites.tensors[-1]
    fs = FaultSet.of("file", np.arange(5), [Fault((Upset(s, 0),)) for s in range(first.offset, first.offset + 3)]
                     + [Fault((Upset(last.offset, 0),)), Fault((Upset(first.offset + first.fmt.bits, N - 1),))])
    period = frame_period(fs, space, N)
    dep = fault_deposits(fs, space, small, small_level.meta, period)
    keep = dep.bit >= 0
    broken = dataclasses.replace(dep, frame=dep.frame[keep], cycle=dep.cycle[keep], target=dep.target[keep],
                                 bit=dep.bit[keep])
    gold = engine.forward(small, small_x)
    sb = small_level.build()
    ok = run_frames(sb, tmp_path / "ok", small_x, gold, param_codes(small), len(fs), period, dep)
    bad = run_frames(sb, tmp_path / "bad", small_x, gold, param_codes(small), len(fs), period, broken)
    assert ok.state_errors == 0 and not leaks(ok, fs, space, N).any()
    # registers 0, 1 (first tensor) and register 0 of the last tensor stay upset
    assert bad.state_errors == 3, bad.state_errors
    assert leaks(bad, fs, space, N).sum() > 0


@pytest.fixture(scope="module")
def hard(small):
    prot = np.arange(0, FlipFlopSpace.of(small).sites.n_sites, 3)
    return prot, HardenedRtlLevel(small, prot, jobs=JOBS)


def test_replica_upsets_on_the_hardened_design_equal_the_fault_model(small, small_x, hard):
    """One replica of a protected bit: masked (and tmr_err); two replicas
    of one bit: the bit flips; a protected and an unprotected bit together;
    two replicas upset at different cycles and scrubbed: flipped in between."""
    prot, level = hard
    space = level.space
    assert space.protected == tuple(prot.tolist())
    unprot = np.setdiff1d(np.arange(space.sites.n_sites), prot)
    faults, kinds = [], []
    for s in prot[::4].tolist():
        for reps in ((0,), (1,), (2,), (0, 1), (1, 2), (0, 2)):
            faults.append(Fault(tuple(sorted(Upset(replica_flip_flop(space, s, r), 0) for r in reps))))
            kinds.append(len(reps))
    for s, u in zip(prot[1::9].tolist(), unprot[::9].tolist()):
        faults.append(Fault((Upset(u, 0), Upset(replica_flip_flop(space, s, 2), 1))))
        kinds.append(0)
        # B from cycle 0, C from cycle 3, both scrubbed at cycle 5: two replicas agree for two cycles
        faults.append(Fault((Upset(replica_flip_flop(space, s, 1), 0), Upset(replica_flip_flop(space, s, 2), 3)),
                            scrub=5))
        kinds.append(3)
    fs = FaultSet.of("file", np.arange(len(faults)), faults)
    obs, err = level.run_faults_with_err(fs, small_x)
    ref = simulate_set(small, space, fs, small_x)
    bad = obs.mismatches(ref)
    assert int(bad.sum()) == 0, f"{int(bad.sum())} of {len(fs)} faults differ from the fault model"
    kinds = np.array(kinds)
    golden = engine.forward(small, small_x)
    changed = (obs.latent != golden[None]).any(axis=(1, 2))
    assert not changed[kinds == 1].any()  # one replica: masked
    assert changed[kinds == 2].mean() > 0.5  # two replicas of one bit: the voter follows them
    assert err[kinds >= 1].all()


def test_self_correcting_tmr_repairs_replicas_a_clock_apart_and_keeps_a_defeat_in_one_clock(small, small_x, hard,
                                                                                               tmp_path):
    """The refresh variant of the hardened RTL: two replicas of one bit upset
    one clock apart are repaired (the plain hardened design flips), two in
    the same clock defeat the voter and the wrong majority stays; both equal
    the fault model. Yosys keeps every replica and the sticky flag."""
    from fkhw.rtlgen.harden import harden

    prot, plain_hard = hard
    level = RtlLevel(small, jobs=JOBS, design=harden(small, prot, refresh=True))
    space = level.space
    assert space.refresh and space.tmr_err_flag is not None
    faults = []
    for s in prot[::4].tolist():
        k = int(space.mac_stage(space.sites.tensors[int(space.sites.locate([s])[0][0])].layer_pos))
        b, c = (replica_flip_flop(space, s, r) for r in (1, 2))
        faults += [Fault((Upset(s, k), Upset(b, k + 1))), Fault((Upset(b, k + 2), Upset(c, k + 2))),
                   Fault((Upset(s, k), Upset(c, k + 3)))]
    fs = FaultSet.of("file", np.arange(len(faults)), faults)
    obs, ref = level.run_faults(fs, small_x), simulate_set(small, space, fs, small_x)
    assert int(obs.mismatches(ref).sum()) == 0, f"{int(obs.mismatches(ref).sum())} of {len(fs)} faults differ"
    golden = engine.forward(small, small_x)
    changed = (obs.latent != golden[None]).any(axis=(1, 2))
    same_clock = np.arange(len(fs)) % 3 == 1
    assert not changed[~same_clock].any(), "replicas a clock apart must be repaired by the refresh"
    assert changed[same_clock].mean() > 0.5
    # the same clock-apart pairs on the design without refresh: the voter follows them
    plain_space = plain_hard.space
    apart = FaultSet.of("file", np.arange(int((~same_clock).sum())), [
        Fault(tuple(Upset(u.ff if u.ff < plain_space.sites.n_sites else u.ff - 1, u.cycle) for u in f.upsets))
        for f, keep in zip(faults, ~same_clock) if keep])
    assert (plain_hard.run_faults(apart, small_x).latent != golden[None]).any(axis=(1, 2)).mean() > 0.5
    d = tmp_path / "refresh"
    level.design.write(d)
    rep = synth(level.design.verilog_files(d), TOP, work_dir=d / "synth", include_dirs=[d], abc=False)
    assert rep["flip_flops"] == space.n_ff


def test_yosys_flip_flops_equal_the_flip_flop_space(small, hard, tmp_path):
    """Yosys' flip-flop count of the plain and the hardened RTL is the
    number of flip-flops fkhw.faults.space names."""
    prot, level = hard
    for name, design, n_ff in (("plain", generate(small), FlipFlopSpace.of(small).n_ff),
                               ("hardened", level.design, FlipFlopSpace.of(small, protect=prot).n_ff)):
        d = tmp_path / name
        design.write(d)
        rep = synth(design.verilog_files(d), TOP, work_dir=d / "synth", include_dirs=[d], abc=False)
        assert rep["flip_flops"] == n_ff, (name, rep["flip_flops"], n_ff)


# --- econt-bol, sampled ------------------------------------------------------------

@pytest.mark.parametrize("kind,n", [("seu", 300), ("mbu:2", 300), ("pipeline", 400), ("accumulate:4", 200)])
def test_econt_bol_sampled_equals_the_fault_model(bol_ir, kind, n):
    x = encoder_inputs(bol_ir)[:32]
    level = RtlLevel(bol_ir, jobs=JOBS)
    fs = enumerate_faults(level.space, parse_kind(kind), KindOptions(n_vectors=32, samples=n, seed=5))
    rng = np.random.default_rng(7)
    if len(fs) > n:
        fs = fs.take(np.sort(rng.choice(len(fs), n, replace=False)))
    obs, ref, bad = _agree(level, bol_ir, fs, x)
    assert bad.size == 0, f"econt-bol {kind}: {bad.size} of {len(fs)} faults differ from the fault model, e.g. {bad[:5]}"


# --- the synthesised netlist -----------------------------------------------------------

def test_netlist_runs_every_kind_like_the_fault_model(tmp_path):
    """The Yosys netlist of the tiny model (fkhw.rtlgen.testing): parameter
    and pipeline/valid upsets deposited into its flip-flops equal the fault
    model (exhaustive seu and pipeline, 100 accumulate:3)."""
    from fkhw.levels.rtl import netlist_level
    from fkhw.rtlgen.testing import tiny_model, toy_inputs

    tiny = tiny_model()
    level = netlist_level(tiny, jobs=JOBS)
    x = toy_inputs(tiny, 8, seed=2)
    for kind in ("seu", "pipeline", "accumulate:3"):
        fs = enumerate_faults(level.space, parse_kind(kind), KindOptions(n_vectors=8, samples=100, seed=1))
        obs, ref, bad = _agree(level, tiny, fs, x)
        assert bad.size == 0, f"netlist {kind}: {bad.size} of {len(fs)} faults differ, e.g. {bad[:5]}"


# --- triplicated pipeline data bits and valid flags (a TMR map listing non-weight flip-flops) -------------

def _transient_protection(space: FlipFlopSpace) -> np.ndarray:
    """Every 5th pipeline data bit of every stage and every valid flag, with
    every 3rd parameter bit: a map that lists flip-flops of every class."""
    data = np.arange(space.sites.n_sites, space.first_control)[::5]
    valid = np.arange(space.first_control, space.first_control + space.latency)
    return np.concatenate([np.arange(0, space.sites.n_sites, 3), data, valid])


@pytest.fixture(scope="module")
def hard_pipe(small):
    from fkhw.rtlgen.harden import harden

    prot = _transient_protection(FlipFlopSpace.of(small))
    return prot, RtlLevel(small, jobs=JOBS, design=harden(small, prot))


def test_triplicated_pipeline_and_valid_flip_flops_equal_the_fault_model(small, small_x, hard_pipe):
    """Exhaustive replicas (each B, C alone at every window cycle of its
    stage), replica pairs (two of three in one clock) and the pipeline kind
    on a design that triplicates pipeline data bits and every valid flag:
    RTL == fault model == software level, 0 mismatches; one replica changes
    nothing and raises tmr_err, two of one bit in one clock act as one upset
    of the plain design."""
    from fkhw.levels.software import SoftwareLevel

    prot, level = hard_pipe
    space = level.space
    assert space.protected == tuple(prot.tolist()) and space.protected_transients
    hl = HardenedRtlLevel(small, prot, jobs=JOBS, design=level.design)
    sw = SoftwareLevel(small, protect=tuple(prot.tolist()))
    golden = engine.forward(small, small_x)
    plain = RtlLevel(small, jobs=JOBS).space
    for kind in ("replicas", "replica-pairs", "pipeline"):
        fs = enumerate_faults(space, parse_kind(kind), KindOptions(n_vectors=N))
        tr = space.base(fs.ff[fs.indptr[:-1]]) >= space.sites.n_sites  # faults of pipeline / valid replicas
        if kind != "pipeline":
            fs = fs.take(np.flatnonzero(tr))
        obs, err = hl.run_faults_with_err(fs, small_x)
        ref = simulate_set(small, space, fs, small_x)
        soft = sw.run_faults(fs, small_x)
        assert int(obs.mismatches(ref).sum()) == 0, f"{kind}: {int(obs.mismatches(ref).sum())} of {len(fs)} differ"
        assert int(soft.mismatches(ref).sum()) == 0, f"{kind}: software differs on {int(soft.mismatches(ref).sum())}"
        changed = (obs.latent != golden[None]).any(axis=(1, 2)) | obs.lost.any(axis=1) | (obs.extra > 0)
        if kind == "replicas":
            assert len(fs) == 2 * len(space.protected_transients) * N
            assert not changed.any() and err.all(), (int(changed.sum()), int((~err).sum()))
        elif kind == "replica-pairs":
            assert err.all()
            # each pair acts as one upset of the unprotected flip-flop at that cycle on the plain design
            base = space.base(fs.ff[fs.indptr[:-1]])
            as_plain = FaultSet.single("pipeline", fs.ids, base, 0)
            as_plain = FaultSet(as_plain.kind, as_plain.ids, as_plain.indptr, as_plain.ff, fs.cycle[fs.indptr[:-1]],
                                as_plain.scrub)
            p = simulate_set(small, plain, as_plain, small_x)
            assert int(obs.mismatches(p).sum()) == 0
            assert obs.lost.any(axis=1).sum() == 3 * space.latency * N  # every valid pair drops its slot
        else:  # protected pipeline and valid flip-flops' replica A: masked; the others as on the plain design
            a = np.isin(fs.ff, np.asarray(space.protected_transients))
            assert not changed[a].any() and err[a].all()
            assert changed[~a].mean() > 0.2 and not err[~a].any()


def test_the_testbench_builds_without_warnings_of_its_own(small_level, hard_pipe):
    """The builds of the plain design, its pipeline-public variant and a design
    with triplicated pipeline stages: Verilator warns about nothing in the
    testbench's own files (fkhw_tb.v and the deposits it includes), so a
    hardware engineer reading build.log sees only what concerns the design.
    An event's 16-bit register index and bit are cut to the width of the
    array or vector they select."""
    for sb in (small_level.build(), small_level.build(pipeline=True), hard_pipe[1].build(pipeline=True)):
        log = (sb.sim_dir.parent / "build.log").read_text()
        own = [line for line in log.splitlines() if line.startswith("%Warning") and "fkhw_tb" in line]
        assert not own, f"{sb.sim_dir.parent / 'build.log'}: {len(own)} testbench warnings, e.g. {own[0]}"


def test_yosys_keeps_the_pipeline_and_valid_replicas(small, hard_pipe, tmp_path):
    """The design with triplicated pipeline and valid flip-flops lints clean
    (verilator -Wall) and Yosys' flip-flop count is the flip-flop space's
    (two replicas each kept)."""
    from fkhw.rtlgen.lint import lint

    prot, level = hard_pipe
    d = tmp_path / "pipe_tmr"
    level.design.write(d)
    res = lint(level.design.verilog_files(d), TOP, include_dirs=[d])
    assert res.ok, res.output
    rep = synth(level.design.verilog_files(d), TOP, work_dir=d / "synth", include_dirs=[d], abc=False)
    space = level.space
    assert rep["flip_flops"] == space.n_ff == FlipFlopSpace.of(small).n_ff + 2 * len(prot), \
        (rep["flip_flops"], space.n_ff)
