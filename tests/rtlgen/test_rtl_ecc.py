"""The SEC-DED encoder (fkhw.rtlgen.variant.DesignVariant.secded): every
register file kept as code words with their check bits, each word corrected
by its decoder: a word per register (``secded``), N-bit words packed
across the registers (``secded:N``, words that split registers) or N-bit
words bit-interleaved across the file (``secded:Ni``).

It is lint-clean; on Verilator, fault-free, it equals the integer engine;
the software level, the fault model and the RTL agree on every upset of
every word (data and check bits, singles, pairs, triples, upsets at two
cycles, a scrub). Sizes come from the model.
"""

from __future__ import annotations

import numpy as np
import pytest

from code_word_faults import faults_within_words
from fkhw.rtlgen.emit import generate
from fkhw.rtlgen.testing import tiny_model, toy_inputs
from fkhw.rtlgen.variant import DesignVariant

pytestmark = pytest.mark.verilator


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def x(model):
    """12 window inputs over the model's whole input range."""
    return toy_inputs(model, 12, seed=0)


WORDS = ("secded", "secded:7", "secded:7i")  # 7 bits: words that split the tiny model's registers
# and on the simulator, 5-bit words too: narrower than the 6-bit bias registers, so a file holds more words than
# registers (the testbench must index its check bits by word)
LEVEL_WORDS = WORDS + ("secded:5",)


@pytest.fixture(scope="module", params=LEVEL_WORDS)
def level(model, request):
    from fkhw.levels.rtl import RtlLevel

    return RtlLevel(model, jobs=1, design=generate(model, DesignVariant.secded(request.param)))


@pytest.mark.parametrize("ecc", WORDS)
def test_the_secded_encoder_is_lint_clean(model, tmp_path, ecc):
    from fkhw.rtlgen.emit import TOP
    from fkhw.rtlgen.lint import lint

    design = generate(model, DesignVariant.secded(ecc))
    files = design.write(tmp_path)
    res = lint([f for f in files if f.suffix == ".v"], TOP, include_dirs=[tmp_path])
    assert res.ok, res.output
    ecc = design.meta["ecc"]
    assert ecc["check_flip_flops"] == sum(f["check_flip_flops"] for f in ecc["register_files"]) > 0
    assert design.meta["flip_flops_expected"] == generate(model).meta["flip_flops_expected"] + ecc["check_flip_flops"]


def test_fault_free_it_equals_the_engine(model, level, x):
    from fkhw.model import engine

    assert np.array_equal(level.golden(x), engine.forward(model, x).reshape(x.shape[0], -1))


def test_every_upset_within_a_code_word_equals_the_fault_model(model, level, x):
    """Software level (through the decoder model), the fault model itself
    and the RTL agree on every fault; singles change nothing and some
    doubles and triples do (the check can fail both ways)."""
    from fkhw.faults.software import simulate_set
    from fkhw.faults.space import FaultSet
    from fkhw.levels.software import SoftwareLevel

    space = level.space
    assert space.coded and space.n_check == level.meta["ecc"]["check_flip_flops"]
    faults = faults_within_words(space, np.random.default_rng(1), trios=3)
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


def test_only_interleaved_words_correct_every_upset_of_two_adjacent_bits(level, x):
    """``mbu:2`` (two adjacent bits of one register, the multiple upset
    seen most often): interleaved, the two bits are in two words, each
    corrects its own, so no output changes and no frame flags a double; a
    word per register or words in a row hold both bits, and some pairs
    get through (flagged double)."""
    from fkhw.faults.kinds import KindOptions, enumerate_faults, parse_kind

    space = level.space
    fs = enumerate_faults(space, parse_kind("mbu:2"), KindOptions(n_vectors=x.shape[0]))
    obs, flags = level.run_faults_with_flags(fs, x)
    changed = (obs.latent != level.golden(x)[None]).any(axis=(1, 2))
    double, single = flags[:, 1] | flags[:, 3], flags[:, 0] | flags[:, 2]
    word = space.word_place(fs.ff)[1].reshape(-1, 2)  # mbu:2: two upsets per fault, in order
    one_word = word[:, 0] == word[:, 1]
    assert (double == one_word).all() and (single == ~one_word).all()  # two words: a single error in each
    assert not changed[~one_word].any()
    if space.words_of(0).interleaved:
        assert not one_word.any()
    else:
        assert changed.any()


def test_the_proof_passes_on_every_word(level, x):
    """Every single upset of every word corrected and flagged single, every
    pair flagged double, every frame starting clean; counts from the space."""
    from math import comb

    from fkhw.protect.proof import prove_words

    space = level.space
    proof = prove_words(level, x)
    assert proof.ok, proof.failures
    sizes = [len(space.word_sites(tn, j)) + len(space.words_of(tn).stored_checks(j))
             for tn in range(len(space.sites.tensors)) for j in range(space.words_of(tn).n_words)]
    assert proof.words == len(sizes) and proof.singles == sum(sizes) == space.sites.n_sites + space.n_check
    assert proof.pairs == sum(comb(n, 2) for n in sizes)


def _without_the_correction_of_bit_3(design):
    """``design`` with its decoder's correction term of data bit 3 removed."""
    import dataclasses
    import re

    name = next(n for n in design.files if re.fullmatch(r"fkhw_secded_dec_k\d+\.v", n))
    text, hits = re.subn(r"assign flip\[3\] = \(syndrome == \d+'b[01]+\);", "assign flip[3] = 1'b0;",
                         design.files[name])
    assert hits == 1
    return dataclasses.replace(design, files={**design.files, name: text})


def _words_holding_bit_3(space) -> int:
    """Code words with a data bit 3 (a last word may end before it)."""
    return sum(3 in space.word_sites(tn, j)
               for tn in range(len(space.sites.tensors)) for j in range(space.words_of(tn).n_words))


def test_the_proof_fails_when_the_decoder_misses_one_column(model, x):
    """The decoder with one data bit's correction term removed: its upsets
    pass uncorrected and are flagged double; the proof names them."""
    from fkhw.levels.rtl import RtlLevel
    from fkhw.protect.proof import prove_words

    broken = _without_the_correction_of_bit_3(generate(model, DesignVariant.secded("secded:7")))
    level = RtlLevel(model, jobs=1, design=broken)
    proof = prove_words(level, x, pairs=False)
    assert not proof.ok
    assert proof.singles_unflagged == proof.singles_misflagged == _words_holding_bit_3(level.space) > 0
    assert proof.singles_changed > 0 and any("bit" in f for f in proof.failures)


@pytest.mark.yosys
@pytest.mark.parametrize("ecc", WORDS)
def test_the_proof_passes_on_the_register_files_netlist(model, x, tmp_path, ecc):
    """After synthesis: the register files' Yosys + ABC netlist (the area
    table's), every check flip-flop found in it, the same proof on its
    flip-flops, the same counts as on the RTL."""
    from fkhw.protect.proof import prove_words, regfiles_netlist_level

    level = regfiles_netlist_level(model, generate(model, DesignVariant.secded(ecc)), tmp_path / "synth",
                                   cache=tmp_path / "cache")
    info = level.meta["netlist"]
    assert info["check_flip_flops_found"] == info["check_flip_flops_expected"] == level.space.n_check > 0
    assert info["parameter_bits_found"] == level.space.sites.n_sites and info["unmapped"] == 0
    proof = prove_words(level, x)
    assert proof.ok, proof.failures
    assert proof.singles == level.space.sites.n_sites + level.space.n_check


@pytest.mark.yosys
def test_the_netlist_proof_fails_when_the_decoder_misses_one_column(model, x, tmp_path):
    """The decoder without one data bit's correction term, synthesised: the
    netlist proof finds the same upsets the RTL proof does."""
    from fkhw.protect.proof import prove_words, regfiles_netlist_level

    broken = _without_the_correction_of_bit_3(generate(model, DesignVariant.secded("secded:7i")))
    level = regfiles_netlist_level(model, broken, tmp_path / "synth", cache=tmp_path / "cache")
    proof = prove_words(level, x, pairs=False)
    assert not proof.ok and proof.singles_unflagged == proof.singles_misflagged == _words_holding_bit_3(level.space) > 0


@pytest.mark.yosys
def test_the_whole_netlist_runs_upsets_of_check_and_data_bits_as_the_rtl_does(model, x):
    """--level netlist of a SEC-DED design: the whole encoder synthesised,
    every check bit upset alone and a pair in every word, the same outputs
    and flags as the RTL."""
    from fkhw.faults.space import Fault, FaultSet, Upset
    from fkhw.levels.rtl import RtlLevel, netlist_level

    design = generate(model, DesignVariant.secded("secded:7i"))
    gates, rtl = netlist_level(model, design=design), RtlLevel(model, jobs=1, design=design)
    space = rtl.space
    assert gates.meta["netlist"]["check_flip_flops_found"] == space.n_check
    faults = [Fault((Upset(int(f), 0),)) for f in range(space.first_check, space.n_ff)]
    faults += [Fault((Upset(int(w[0]), 0), Upset(int(w[-1]), 0))) for w in space.code_words()]
    fs = FaultSet.of("file", np.arange(len(faults)), faults)
    (a, fa), (b, fb) = gates.run_faults_with_flags(fs, x), rtl.run_faults_with_flags(fs, x)
    assert int(a.mismatches(b).sum()) == 0 and np.array_equal(fa, fb)
    assert fa[:, 2].sum() == space.n_check and fa[:, 3].sum() == len(space.code_words())
