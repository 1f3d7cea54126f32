"""The SEC-DED encoder (fkhw.rtlgen.variant.DesignVariant.secded): every
parameter register stored with its check bits and corrected by its decoder.

It is lint-clean; on Verilator, fault-free, it equals the integer engine;
every single upset of a parameter (data) bit changes no output; two upsets
in one register pass uncorrected, exactly as the plain design with both
bits inverted (the software fault model) gives. Sizes come from the model.
"""

from __future__ import annotations

import numpy as np
import pytest

from fkhw.rtlgen.emit import generate
from fkhw.rtlgen.testing import tiny_model
from fkhw.rtlgen.variant import DesignVariant

pytestmark = pytest.mark.verilator


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def level(model):
    from fkhw.levels.rtl import RtlLevel

    return RtlLevel(model, jobs=1, design=generate(model, DesignVariant.secded()))


@pytest.fixture(scope="module")
def x(model):
    rng = np.random.default_rng(0)
    fmt = model.input.fmt
    return rng.integers(fmt.lo, fmt.hi + 1, size=(12, *model.input.shape))


def test_the_secded_encoder_is_lint_clean(model, tmp_path):
    from fkhw.rtlgen.emit import TOP
    from fkhw.rtlgen.lint import lint

    design = generate(model, DesignVariant.secded())
    files = design.write(tmp_path)
    res = lint([f for f in files if f.suffix == ".v"], TOP, include_dirs=[tmp_path])
    assert res.ok, res.output
    ecc = design.meta["ecc"]
    assert ecc["check_bits"] == sum(f["check_bits"] * f["registers"] for f in ecc["register_files"])
    assert design.meta["flip_flops_expected"] == generate(model).meta["flip_flops_expected"] + ecc["check_bits"]


def test_fault_free_it_equals_the_engine(model, level, x):
    from fkhw.model import engine

    assert np.array_equal(level.golden(x), engine.forward(model, x).reshape(x.shape[0], -1))


def test_no_single_upset_of_a_parameter_bit_changes_an_output(model, level, x):
    from fkhw.faults.space import FaultSet
    from fkhw.model import engine

    n = level.space.sites.n_sites
    fs = FaultSet.single("seu", np.arange(n), np.arange(n))
    obs = level.run_faults(fs, x)
    gold = engine.forward(model, x).reshape(x.shape[0], -1)
    assert (obs.latent == gold[None]).all() and not obs.lost.any() and not obs.extra.any()


def test_two_upsets_in_one_register_pass_as_in_the_plain_design(model, level, x):
    """A double upset is detected, not corrected: the datapath sees the
    register with both bits inverted, as the plain design (software fault model) does."""
    from fkhw.faults.space import Fault, FaultSet, Upset
    from fkhw.levels.software import SoftwareLevel
    from fkhw.model import engine

    space = level.space.sites
    faults = []
    for t in space.tensors:
        for i in range(0, t.size, max(1, t.size // 4)):
            first = t.offset + i * t.fmt.bits
            faults += [Fault((Upset(first, 0), Upset(first + b, 0))) for b in range(1, t.fmt.bits)]
    fs = FaultSet.of("mbu:2", np.arange(len(faults)), faults)
    got = level.run_faults(fs, x)
    want = SoftwareLevel(model).run_faults(fs, x)
    assert not got.mismatches(want).any()
    gold = engine.forward(model, x).reshape(x.shape[0], -1)
    assert (got.latent != gold[None]).any(axis=(1, 2)).sum() > 0  # some of them change an output
