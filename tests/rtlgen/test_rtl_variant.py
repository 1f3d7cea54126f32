"""The RTL generator's parts (issue 24): the stage layout computed from the
IR alone (fkhw.model.stages) is the generated design's, the flip-flop space
gets it without running the generator, every layer kind the generator
accepts has an emitter, and a design variant is a value that cannot name
an impossible design. Pure Python: no Verilator, no Yosys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fkhw.faults.space import FlipFlopSpace
from fkhw.model.stages import SUPPORTED, Layout
from fkhw.rtlgen.emit import DesignVariant, generate
from fkhw.rtlgen.harden import harden
from fkhw.rtlgen.layers import KINDS
from fkhw.rtlgen.testing import pool_model, tiny_model, toy_model

ROOT = Path(__file__).resolve().parents[2]
MODELS = {"toy": toy_model, "tiny": tiny_model, "pools": pool_model}


@pytest.mark.parametrize("name", MODELS)
def test_the_layout_is_the_generated_designs(name):
    """Stage by stage, every field the flip-flop space reads; and the space
    built from the layout counts the flip-flops the design declares."""
    ir = MODELS[name]()
    meta = generate(ir).meta
    got = [{"stage": s.stage, "layer_pos": s.layer_pos, "elements": s.elements, "width": s.width,
            "signed": s.signed, "frac": s.frac, "used_elements": list(s.used), "bits": s.bits,
            "ff_used": s.ff_used} for s in Layout.of(ir).stages]
    assert got == [{k: st[k] for k in got[0]} for st in meta["stages"]]
    assert FlipFlopSpace.of(ir).n_ff == meta["flip_flops_expected"]
    space = FlipFlopSpace.of(ir)
    trans = np.arange(space.sites.n_sites, space.first_control + space.latency, 5)
    assert FlipFlopSpace.of(ir, trans, refresh=True).n_ff == harden(ir, trans, refresh=True).meta["flip_flops_expected"]


def test_the_flip_flop_space_does_not_run_the_generator():
    """fkhw.faults.space sits below fkhw.rtlgen: the space of a model is known
    without importing (let alone running) the RTL generator."""
    code = """
import sys
import numpy as np
from fkhw.faults.space import FlipFlopSpace
from fkhw.model.fixed import FixedFormat
from fkhw.model.ir import Dense, InputQuant, IntegerModel, Quant
k = FixedFormat.make(4, 2, True)
ir = IntegerModel("t", InputQuant("in", (3,), FixedFormat.make(5, 3, True)),
                  (Dense("d", np.ones((3, 2), dtype=np.int64), None, k, None),
                   Quant("q", FixedFormat.make(4, 2, True), "quantized_bits")))
space = FlipFlopSpace.of(ir)
print(space.n_ff, sorted(m for m in sys.modules if m.startswith("fkhw.rtlgen")))
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    # 24 parameter bits + input stage (3 x 5) + output stage (2 x 4) + 2 valid flags
    assert r.stdout.split(maxsplit=1) == ["49", "[]\n"]


def test_every_supported_kind_has_an_emitter():
    assert set(KINDS) == set(SUPPORTED)


def test_a_variant_is_a_value():
    assert DesignVariant.tmr([3, 1]) == DesignVariant.tmr(np.array([3, 1]))
    assert len({DesignVariant.plain(), DesignVariant(), DesignVariant.tmr([]), DesignVariant.tmrg([])}) == 3
    assert DesignVariant.tmr([2], refresh=True).hardened and not DesignVariant.tmrg([2]).hardened


@pytest.mark.parametrize("make, message", [
    (lambda: DesignVariant("tmrg", (1,), refresh=True), "refresh is an option of the hardened encoder"),
    (lambda: DesignVariant("plain", (1,)), "plain encoder protects nothing"),
    (lambda: DesignVariant("secded", (1,), ecc="secded"), "secded encoder protects nothing by id"),
    (lambda: DesignVariant("secded"), "the secded encoder takes a code spelling"),
    (lambda: DesignVariant("tmr", (), ecc="parity"), "the tmr encoder takes no code spelling"),
    (lambda: DesignVariant("parity", ecc="secded:8"), "the parity encoder takes a parity spelling, not 'secded:8'"),
    (lambda: DesignVariant.code_words("parity:0i"), "0 data bits"),
    (lambda: DesignVariant.secded("secded:0"), "0 data bits"),
    (lambda: DesignVariant("triple"), "design variant 'triple'"),
    (lambda: DesignVariant.tmr(None), "needs the protected flip-flop ids"),
    (lambda: DesignVariant.tmrg([0.5]), "integer site ids"),
], ids=["tmrg-refresh", "plain-protect", "secded-protect", "secded-without-code", "tmr-with-code",
        "parity-with-secded-code", "parity-word-zero", "secded-word-zero", "unknown-kind",
        "no-ids", "float-ids"])
def test_an_impossible_variant_is_refused_in_one_line(make, message):
    with pytest.raises(ValueError, match=message) as e:
        make()
    assert "\n" not in str(e.value)
