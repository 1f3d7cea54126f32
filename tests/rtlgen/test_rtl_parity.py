"""The parity encoder (fkhw.rtlgen.variant.DesignVariant.code_words with a
``parity`` spelling): every register file kept as words with one even-parity
bit each, passed on to the datapath as stored, an odd number of upsets in
a word raising ``ecc_err_parity``: a word per register (``parity``), N-bit
words packed across the registers (``parity:N``) or bit-interleaved
(``parity:Ni``).

It is lint-clean; on Verilator, fault-free, it equals the integer engine;
the software level, the fault model and the RTL agree on every upset of
every word; the proof holds on the RTL and on the register files' netlist
and fails when one word is left out of a file's flag. Sizes come from the model.
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


WORDS = ("parity", "parity:7", "parity:5i")  # 7 bits split the tiny model's registers; 5 is narrower than a bias


@pytest.fixture(scope="module", params=WORDS)
def level(model, request):
    from fkhw.levels.rtl import RtlLevel

    return RtlLevel(model, jobs=1, design=generate(model, DesignVariant.code_words(request.param)))


@pytest.mark.parametrize("ecc", WORDS)
def test_the_parity_encoder_is_lint_clean_with_one_check_bit_per_word(model, tmp_path, ecc):
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.rtlgen.emit import TOP
    from fkhw.rtlgen.lint import lint

    design = generate(model, DesignVariant.code_words(ecc))
    files = design.write(tmp_path)
    res = lint([f for f in files if f.suffix == ".v"], TOP, include_dirs=[tmp_path])
    assert res.ok, res.output
    meta = design.meta["ecc"]
    assert meta["code"] == "parity" and meta["flags"] == ["ecc_err_parity"]
    words = sum(f["words"] for f in meta["register_files"])
    assert meta["check_flip_flops"] == words == len(FlipFlopSpace.of(model, ecc=ecc).code_words())
    assert design.meta["flip_flops_expected"] == generate(model).meta["flip_flops_expected"] + words
    top = design.files["fkhw_encoder.v"]
    assert "output wire              ecc_err_parity" in top and "ecc_err_single" not in top


def test_fault_free_it_equals_the_engine(model, level, x):
    from fkhw.model import engine

    assert np.array_equal(level.golden(x), engine.forward(model, x).reshape(x.shape[0], -1))


def test_every_upset_within_a_parity_word_equals_the_fault_model(model, level, x):
    """Software level, the fault model and the RTL agree on every fault; a
    data bit's upset passes on (parity corrects nothing) and a check bit's
    changes no output; the flag is up exactly when the code says."""
    from fkhw.faults.software import simulate_set
    from fkhw.faults.space import FaultSet
    from fkhw.levels.software import SoftwareLevel
    from fkhw.protect.proof import expected_decoding

    space = level.space
    assert space.coded and space.n_check == level.meta["ecc"]["check_flip_flops"]
    faults = faults_within_words(space, np.random.default_rng(1), trios=1)
    fs = FaultSet.of("file", np.arange(len(faults)), faults)
    sw = SoftwareLevel(model, ecc=space.ecc).run_faults(fs, x)
    ref = simulate_set(model, space, fs, x)
    rtl, flags = level.run_faults_with_flags(fs, x)
    assert not sw.mismatches(ref).any()
    assert int(rtl.mismatches(sw).sum()) == 0
    changed = (sw.latent != level.golden(x)[None]).any(axis=(1, 2))
    one = fs.n_upsets() == 1
    check = fs.ff[fs.indptr[:-1]] >= space.first_check
    assert not changed[one & check].any() and changed[one & ~check].any()
    assert not flags[:, [0, 1, 2]].any()  # no single-error flag, every frame starts clean
    at_once = one | (np.maximum.reduceat(fs.cycle, fs.indptr[:-1]) == np.minimum.reduceat(fs.cycle, fs.indptr[:-1]))
    sub = fs.take(np.flatnonzero(at_once))
    assert np.array_equal(flags[at_once, 3], expected_decoding(space, sub)[1])


def test_interleaving_turns_two_adjacent_upsets_into_two_flagged_words(level, x):
    """``mbu:2``: in words in a row, two adjacent bits of a register are in
    one word and keep its parity (nothing flagged, the output may change);
    interleaved, they are in two words and each flags."""
    from fkhw.faults.kinds import KindOptions, enumerate_faults, parse_kind

    space = level.space
    fs = enumerate_faults(space, parse_kind("mbu:2"), KindOptions(n_vectors=x.shape[0]))
    _, flags = level.run_faults_with_flags(fs, x)
    word = space.word_place(fs.ff)[1].reshape(-1, 2)  # mbu:2: two upsets per fault, in order
    one_word = word[:, 0] == word[:, 1]
    assert np.array_equal(flags[:, 3], ~one_word)
    assert not one_word.any() if space.words_of(0).interleaved else one_word.any()


def test_the_proof_passes_on_every_word(level, x):
    """Every single upset flagged, every pair within a word not flagged (the
    code's blind spot), a check bit's upset changing nothing; counts from
    the space."""
    from math import comb

    from fkhw.protect.proof import prove_words

    space = level.space
    proof = prove_words(level, x)
    assert proof.ok, proof.failures
    sizes = [w.size for w in space.code_words()]
    assert proof.words == len(sizes) and proof.singles == sum(sizes) == space.sites.n_sites + space.n_check
    assert proof.pairs == sum(comb(n, 2) for n in sizes)


def _without_the_flag_of_word_0(design):
    """``design`` with word 0's checker left out of each register file's
    ``err_parity`` (one term of the OR of its words' flags)."""
    import dataclasses
    import re

    files = dict(design.files)
    hits = 0
    for name in [n for n in files if re.fullmatch(r"fkhw_regfile_parity_.*\.v", n)]:
        files[name], n = re.subn(r"assign err_parity = \|word_err_parity;",
                                 "assign err_parity = |(word_err_parity >> 1);", files[name])
        hits += n
    assert hits >= 1
    return dataclasses.replace(design, files=files)


def _flip_flops_of_word_0(space) -> int:
    return sum(len(space.word_sites(tn, 0)) + len(space.words_of(tn).stored_checks(0))
               for tn in range(len(space.sites.tensors)))


def test_the_proof_fails_when_one_word_is_left_out_of_the_flag(model, x):
    """Each register file's flag without its word 0: every upset of that
    word passes unflagged; the proof counts and names them."""
    from fkhw.levels.rtl import RtlLevel
    from fkhw.protect.proof import prove_words

    level = RtlLevel(model, jobs=1, design=_without_the_flag_of_word_0(generate(model, DesignVariant.code_words(
        "parity:7"))))
    proof = prove_words(level, x, pairs=False)
    assert not proof.ok
    assert proof.singles_unflagged == _flip_flops_of_word_0(level.space) > 0
    assert proof.singles_misflagged == proof.singles_changed == 0
    assert any("single unflagged" in f for f in proof.failures)


@pytest.mark.yosys
@pytest.mark.parametrize("ecc", ("parity", "parity:5i"))
def test_the_proof_passes_on_the_register_files_netlist(model, x, tmp_path, ecc):
    """After synthesis: every parity flip-flop found in the register files'
    Yosys + ABC netlist, the same proof on its flip-flops."""
    from fkhw.protect.proof import prove_words, regfiles_netlist_level

    level = regfiles_netlist_level(model, generate(model, DesignVariant.code_words(ecc)), tmp_path / "synth",
                                   cache=tmp_path / "cache")
    info = level.meta["netlist"]
    assert info["check_flip_flops_found"] == info["check_flip_flops_expected"] == level.space.n_check > 0
    proof = prove_words(level, x)
    assert proof.ok, proof.failures
    assert proof.singles == level.space.sites.n_sites + level.space.n_check


@pytest.mark.yosys
def test_the_netlist_proof_fails_when_one_word_is_left_out_of_the_flag(model, x, tmp_path):
    """The same broken flag, synthesised: the decoders are kept as modules
    (fkhw.tmr.area), so word 0's parity bit is still read and still there,
    and the netlist proof finds the same unflagged upsets the RTL proof does."""
    from fkhw.protect.proof import prove_words, regfiles_netlist_level

    broken = _without_the_flag_of_word_0(generate(model, DesignVariant.code_words("parity:5i")))
    level = regfiles_netlist_level(model, broken, tmp_path / "synth", cache=tmp_path / "cache")
    assert level.meta["netlist"]["check_flip_flops_found"] == level.space.n_check
    proof = prove_words(level, x, pairs=False)
    assert not proof.ok and proof.singles_unflagged == _flip_flops_of_word_0(level.space) > 0
