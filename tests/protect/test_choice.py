"""fkhw.protect.choice.prove_choice: the design a review chose is proved by
injection on its RTL before anyone relies on it, whatever kind it is, and a
design that breaks its promise fails, naming what it broke. On the tiny
model of fkhw.rtlgen.testing; counts from its flip-flop space."""

from __future__ import annotations

import dataclasses
import re
from math import comb

import numpy as np
import pytest

from fkhw.faults.space import Hardening
from fkhw.levels import protected_design
from fkhw.protect.choice import prove_choice
from fkhw.rtlgen.testing import tiny_model, toy_inputs

pytestmark = pytest.mark.verilator


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def x(model):
    return toy_inputs(model, 8, seed=1)


def test_a_chosen_design_of_code_words_holds_for_every_flip_flop_of_every_word(model, x):
    design = protected_design(model, Hardening.code_words("secded:7"))
    proof = prove_choice(model, "secded:7", design, x, log=lambda _: None)
    assert proof["ok"] is True and proof["broken"] == [] and proof["level"] == "rtl"
    from fkhw.levels.rtl import RtlLevel

    space = RtlLevel(model, jobs=1, design=design).space
    sizes = [len(space.word_sites(tn, j)) + len(space.words_of(tn).stored_checks(j))
             for tn in range(len(space.sites.tensors)) for j in range(space.words_of(tn).n_words)]
    assert proof["faults"] == sum(sizes) + sum(comb(n, 2) for n in sizes)
    assert proof["counts"]["singles"] == space.sites.n_sites + space.n_check


def test_a_chosen_tmr_design_holds_for_every_replica_of_every_protected_bit(model, x):
    sites = np.arange(0, model.n_param_bits(), 3)  # every third weight bit
    name = "selective + refresh"
    design = protected_design(model, Hardening(tuple(int(s) for s in sites), True))
    proof = prove_choice(model, name, design, x, tmr_sites=sites, log=lambda _: None)
    assert proof["ok"] is True and proof["broken"] == [], proof["failures"]
    assert proof["counts"]["replica_upsets"] == 3 * sites.size
    assert proof["counts"]["unprotected_sites"] == model.n_param_bits() - sites.size


def test_the_plain_design_promises_nothing_and_is_not_run(model, x):
    proof = prove_choice(model, "plain", None, x, log=lambda _: None)
    assert proof["ok"] is None and proof["faults"] == 0 and "nothing" in proof["note"]


def test_a_chosen_design_that_breaks_its_promise_fails_naming_what_it_broke(model, x):
    """The SEC-DED decoder without data bit 3's correction term: its single
    upsets reach the output, unflagged as singles."""
    design = protected_design(model, Hardening.code_words("secded:7"))
    name = next(n for n in design.files if re.fullmatch(r"fkhw_secded_dec_k\d+\.v", n))
    text, hits = re.subn(r"assign flip\[3\] = \(syndrome == \d+'b[01]+\);", "assign flip[3] = 1'b0;",
                         design.files[name])
    assert hits == 1
    broken = dataclasses.replace(design, files={**design.files, name: text})
    proof = prove_choice(model, "secded:7", broken, x, log=lambda _: None)
    assert proof["ok"] is False
    assert any(b.startswith("singles_changed ") for b in proof["broken"]), proof["broken"]
    assert any(b.startswith("singles_unflagged ") for b in proof["broken"]), proof["broken"]
    assert proof["failures"]
