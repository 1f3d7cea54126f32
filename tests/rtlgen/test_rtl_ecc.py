"""The SEC-DED encoder (fkhw.rtlgen.variant.DesignVariant.secded): every
register file kept as code words with their check bits, each word corrected
by its decoder: a word per register (``secded``) or N-bit words packed
across the registers (``secded:N``, words that split registers).

It is lint-clean; on Verilator, fault-free, it equals the integer engine;
the software level, the fault model and the RTL agree on every upset of
every word (data and check bits, singles, pairs, triples, upsets at two
cycles, a scrub). Sizes come from the model.
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


WORDS = ("secded", "secded:7")  # 7 bits: words that split the tiny model's registers


@pytest.fixture(scope="module", params=WORDS)
def level(model, request):
    from fkhw.levels.rtl import RtlLevel

    return RtlLevel(model, jobs=1, design=generate(model, DesignVariant.secded(request.param)))


@pytest.fixture(scope="module")
def x(model):
    rng = np.random.default_rng(0)
    fmt = model.input.fmt
    return rng.integers(fmt.lo, fmt.hi + 1, size=(12, *model.input.shape))


@pytest.mark.parametrize("ecc", WORDS)
def test_the_secded_encoder_is_lint_clean(model, tmp_path, ecc):
    from fkhw.rtlgen.emit import TOP
    from fkhw.rtlgen.lint import lint

    design = generate(model, DesignVariant.secded(ecc))
    files = design.write(tmp_path)
    res = lint([f for f in files if f.suffix == ".v"], TOP, include_dirs=[tmp_path])
    assert res.ok, res.output
    ecc = design.meta["ecc"]
    assert ecc["check_bits"] == sum(f["check_bits"] * f["words"] for f in ecc["register_files"])
    assert design.meta["flip_flops_expected"] == generate(model).meta["flip_flops_expected"] + ecc["check_bits"]


def test_fault_free_it_equals_the_engine(model, level, x):
    from fkhw.model import engine

    assert np.array_equal(level.golden(x), engine.forward(model, x).reshape(x.shape[0], -1))


def _word_faults(space, rng) -> list:
    """Faults within one code word (data and check bits) of every register:
    each flip-flop alone, every pair at one cycle, a sample of triples (which
    a SEC-DED decoder may miscorrect), pairs a few cycles apart (corrected,
    then uncorrectable) and pairs cut short by a scrub."""
    from itertools import combinations

    from fkhw.faults.space import Fault, Upset

    faults = []
    for word in (w.tolist() for w in space.code_words()):
        faults += [Fault((Upset(f, 0),)) for f in word]
        faults += [Fault((Upset(a, 0), Upset(b, 0))) for a, b in combinations(word, 2)]
        for _ in range(3):
            trio = rng.choice(word, size=3, replace=False)
            faults.append(Fault(tuple(sorted(Upset(int(f), 0) for f in trio))))
        a, b = rng.choice(word, size=2, replace=False)
        faults.append(Fault(tuple(sorted((Upset(int(a), 1), Upset(int(b), 5))))))
        faults.append(Fault(tuple(sorted((Upset(int(a), 0), Upset(int(b), 2)))), scrub=6))
    return faults


def test_every_upset_within_a_code_word_equals_the_fault_model(model, level, x):
    """Software level (through the decoder model), the fault model itself
    and the RTL agree on every fault; singles change nothing and some
    doubles and triples do (the check can fail both ways)."""
    from fkhw.faults.software import simulate_set
    from fkhw.faults.space import FaultSet
    from fkhw.levels.software import SoftwareLevel

    space = level.space
    assert space.secded and space.n_check == level.meta["ecc"]["check_bits"]
    faults = _word_faults(space, np.random.default_rng(1))
    fs = FaultSet.of("file", np.arange(len(faults)), faults)
    sw = SoftwareLevel(model, ecc=space.ecc).run_faults(fs, x)
    ref = simulate_set(model, space, fs, x)
    rtl = level.run_faults(fs, x)
    assert not sw.mismatches(ref).any()
    assert int(rtl.mismatches(sw).sum()) == 0
    n_up = fs.n_upsets()
    gold = level.golden(x)
    changed = (sw.latent != gold[None]).any(axis=(1, 2))
    assert not changed[n_up == 1].any() and changed[n_up == 2].any() and changed[n_up == 3].any()


def test_the_proof_passes_on_every_word(level, x):
    """Every single upset of every word corrected and flagged single, every
    pair flagged double, every frame starting clean; counts from the space."""
    from math import comb

    from fkhw.protect.proof import prove_words

    space = level.space
    proof = prove_words(level, x)
    assert proof.ok, proof.failures
    sizes = [len(space.word_sites(tn, j)) + space.code_of(tn).check_bits
             for tn in range(len(space.sites.tensors)) for j in range(space.words_of(tn).n_words)]
    assert proof.words == len(sizes) and proof.singles == sum(sizes) == space.sites.n_sites + space.n_check
    assert proof.pairs == sum(comb(n, 2) for n in sizes)


def test_the_proof_fails_when_the_decoder_misses_one_column(model, x):
    """The decoder with one data bit's correction term removed: its upsets
    pass uncorrected and are flagged double; the proof names them."""
    import dataclasses
    import re

    from fkhw.levels.rtl import RtlLevel
    from fkhw.protect.proof import prove_words

    design = generate(model, DesignVariant.secded("secded:7"))
    name = next(n for n in design.files if re.fullmatch(r"fkhw_secded_dec_k\d+\.v", n))
    text, hits = re.subn(r"assign flip\[3\] = \(syndrome == \d+'b[01]+\);", "assign flip[3] = 1'b0;",
                         design.files[name])
    assert hits == 1
    broken = dataclasses.replace(design, files={**design.files, name: text})
    level = RtlLevel(model, jobs=1, design=broken)
    proof = prove_words(level, x, pairs=False)
    space = level.space
    with_bit3 = sum(3 in space.word_sites(tn, j)  # a last word may end before its bit 3
                    for tn in range(len(space.sites.tensors)) for j in range(space.words_of(tn).n_words))
    assert not proof.ok
    assert proof.singles_unflagged == proof.singles_double == with_bit3 > 0
    assert proof.singles_changed > 0 and any("bit" in f for f in proof.failures)
