"""The hls level runs the parameter fault kinds bit-exactly and refuses the rest.

hls4ml's C-simulation (compiled C++, no mocks) of a small model with other
widths than ECON-T: every weight a fault changes is written into its
tensor's txt file, the C-sim runs, the files are restored. Its outcome must
equal the software level's (itself pinned to the fault model) for seeded
samples of mbu:2 and accumulate:4; pipeline, control, late and scrubbed
upsets have no counterpart in an unclocked C-sim and are refused with an
error naming what cannot be represented. The project is compiled once per
module (about a minute with hls4ml's C-sim build).
"""

from __future__ import annotations

import numpy as np
import pytest

from fkhw.model import data

from fkhw.model import engine
from fkhw.faults.kinds import KindOptions, enumerate_faults, parse_kind
from fkhw.faults.space import Fault, FaultError, FaultSet, FlipFlopSpace, Upset
from fkhw.hls.project import generate
from fkhw.levels.hls import HlsLevel
from fkhw.levels.software import SoftwareLevel
from fkhw.model.bundle import load_model

pytestmark = [pytest.mark.hls]

N_INPUTS = 64
N_FAULTS = 150


@pytest.fixture(scope="module")
def small(tmp_path_factory, small_model_dir):
    """(bundle, hls project, flip-flop space, inputs) of the small model."""
    bundle = load_model(str(small_model_dir))
    project, _ = generate(bundle, tmp_path_factory.mktemp("hls") / f"{bundle.name}-Vitis", "Vitis")
    charges = data.load_charges()
    x = data.encoder_input_codes(charges[data.select_modules(charges, N_INPUTS, 2)], bundle.ir.input.fmt)
    return bundle, project, FlipFlopSpace.of(bundle.ir), x


@pytest.fixture(scope="module")
def level(small):
    bundle, project, _, _ = small
    with HlsLevel(bundle.ir, project) as lvl:
        yield lvl


def kind(space, spec: str, x, **opts):
    return enumerate_faults(space, parse_kind(spec), KindOptions(x.shape[0], **opts))


def sample(fs: FaultSet, n: int, seed: int) -> FaultSet:
    return fs if len(fs) <= n else fs.take(np.random.default_rng(seed).choice(len(fs), n, replace=False))


def tensors_of(space, fault) -> set:
    return {int(space.sites.locate([u.ff])[0][0]) for u in fault.upsets}


def assert_hls_equals_software(level, ir, fs, x):
    got = level.run_faults(fs, x)
    want = SoftwareLevel(ir).run_faults(fs, x)
    bad = want.mismatches(got)
    assert int(bad.sum()) == 0, f"{int(bad.sum())} of {len(fs)} faults differ, e.g. {fs.fault(int(np.argmax(bad)))}"
    assert not got.lost.any() and not got.extra.any()
    changed = (want.latent != engine.forward(ir, x)[None]).any(axis=(1, 2))
    assert changed.sum() >= len(fs) // 10, "most faults change nothing: the injection may not be happening"


def test_mbu_2_samples_equal_the_software_level(small, level):
    bundle, _, space, x = small
    fs = sample(kind(space, "mbu:2", x), N_FAULTS, seed=1)
    assert len(tensors_of(space, fs.fault(0))) == 1
    assert_hls_equals_software(level, bundle.ir, fs, x)


def test_accumulate_4_samples_equal_the_software_level(small, level):
    bundle, _, space, x = small
    fs = kind(space, "accumulate:4", x, samples=N_FAULTS, seed=2)
    spans = [len(tensors_of(space, f)) for f in fs.faults()]
    assert max(spans) >= 3, "the sample must write several weight files for one fault"
    assert_hls_equals_software(level, bundle.ir, fs, x)


def test_a_parameter_faults_file_spanning_every_tensor_equals_the_software_level(small, level):
    bundle, _, space, x = small
    # one upset in the sign bit of the last word of every tensor, then the same minus one tensor, ...
    signs = [t.offset + (t.size - 1) * t.fmt.bits for t in space.sites.tensors]
    faults = [Fault(tuple(Upset(s) for s in signs[:k])) for k in range(len(signs), 0, -1)]
    fs = FaultSet.of("file", np.arange(len(faults)), faults)
    assert_hls_equals_software(level, bundle.ir, fs, x)
    # every file restored afterwards
    np.testing.assert_array_equal(level.golden(x), engine.forward(bundle.ir, x))


def test_two_workers_give_the_same_answers(small, level):
    bundle, project, space, x = small
    fs = kind(space, "accumulate:3", x, samples=40, seed=3)
    with HlsLevel(bundle.ir, project, workers=2) as two:
        np.testing.assert_array_equal(two.run_faults(fs, x).latent, level.run_faults(fs, x).latent)


@pytest.mark.parametrize("what, upsets, scrub, message", [
    ("pipeline", "data", None, r"pipeline upset \(s\d+_data\[\d+\] bit \d+\).*do not exist in the C-sim"),
    ("control", "valid", None, r"control upset \(s0_valid bit 0\).*do not exist in the C-sim"),
    ("late", "param@3", None, r"upset at cycle 3: the C-sim has no clock"),
    ("scrub", "param", 5, r"scrubbed at cycle 5.*no clock"),
    ("absent", "beyond", None, r"does not have"),
])
def test_what_the_c_sim_cannot_represent_is_refused_by_name(small, level, what, upsets, scrub, message):
    bundle, _, space, x = small
    ff, cycle = {"data": (space.stages[0].first_id + 1, 0), "valid": (space.first_control, 0),
                 "param@3": (0, 3), "param": (1, 0), "beyond": (space.n_ff + 4, 0)}[upsets]
    fs = FaultSet.of("file", [0, 7], [Fault((Upset(2),)), Fault((Upset(5), Upset(ff, cycle)), scrub)])
    with pytest.raises(FaultError, match=r"--level hls: fault 7 .*" + message):
        level.run_faults(fs, x)
