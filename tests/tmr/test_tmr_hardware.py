"""Selective TMR in hardware: the hardened RTL, its proof by fault injection
(cocotb + Verilator), the Yosys area table and the TMRG annotations.

Real tools, no mocks. Builds are shared through module fixtures and the
content-hash caches (build/rtl_sim, build/synth). Synthesis runs on the tiny
model of fkhw.rtlgen.testing (flat synthesis of econt-bol takes minutes).
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess

import numpy as np
import pytest

from fkhw.model import engine
from fkhw.model.bundle import load_model
from fkhw.rtlgen.emit import REGMAP_FILE, TOP, DesignVariant, generate
from fkhw.rtlgen.lint import lint
from fkhw.rtlgen.synth import synth, yosys_command
from fkhw.rtlgen.testing import tiny_model, toy_inputs, toy_model
from fkhw.faults.sites import SiteError, SiteSpace, flip
from fkhw.tmr.area import area_table, synth_hierarchical, write_area
from fkhw.rtlgen.harden import harden, write_hardened
from fkhw.tmr.tmrg import write_tmrg_variant
from fkhw.tmr.proof import HardenedRtlLevel, prove
from fkhw.tmr.tmrg import tmrg_design

pytestmark = [pytest.mark.verilator, pytest.mark.yosys]

JOBS = 2


def _toy_protected(model):
    """Every 7th site plus one whole tensor (conv_a.bias): protected and
    unprotected bits mixed inside registers, and a fully protected file."""
    space = SiteSpace.of(model)
    bias = next(t for t in space.tensors if (t.layer, t.tensor) == ("conv_a", "bias"))
    return np.union1d(np.arange(0, space.n_sites, 7), np.arange(bias.offset, bias.offset + bias.n_sites))


@pytest.fixture(scope="module")
def toy():
    return toy_model()


@pytest.fixture(scope="module")
def toy_prot(toy):
    return _toy_protected(toy)


@pytest.fixture(scope="module")
def toy_level(toy, toy_prot):
    lv = HardenedRtlLevel(toy, toy_prot, jobs=JOBS)
    lv.build()
    return lv


@pytest.fixture(scope="module")
def synth_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("synth_cache")


def _regmap_rows(design):
    return list(csv.reader(io.StringIO(design.files[REGMAP_FILE])))


# --- the hardened RTL ------------------------------------------------------------

def test_hardened_rtl_lints_clean_with_plain_regmap_and_replica_names(toy, toy_prot, tmp_path):
    d = write_hardened(toy, toy_prot, tmp_path)
    res = lint(d.verilog_files(tmp_path), TOP, include_dirs=[tmp_path])
    assert res.ok, res.output
    plain = generate(toy)
    assert _regmap_rows(d) == _regmap_rows(plain)  # same form and content: site,reg,bit
    top = d.files["fkhw_encoder.v"]
    assert re.search(r"output wire\s+tmr_err", top)
    tm = d.meta["tmr"]
    assert tm["protected_bits"] == toy_prot.size == len(tm["sites"])
    assert [e["site"] for e in tm["sites"]] == toy_prot.tolist()
    regmap = {int(s): (int(r), int(b)) for s, r, b in _regmap_rows(plain)[1:]}
    for e in tm["sites"]:
        assert (e["reg"], e["bit"]) == regmap[e["site"]]
        assert e["replicas"] == [f"{e['instance']}.{m}[{e['index']}][{e['bit']}]" for m in ("mem", "mem_b", "mem_c")]
    assert d.meta["flip_flops_expected"] == plain.meta["flip_flops_expected"] + 2 * toy_prot.size
    # the mask of each register file names exactly its protected bits
    for rf in tm["register_files"]:
        n = sum(1 for e in tm["sites"] if e["instance"] == rf["instance"])
        assert rf["protected_bits"] == n
        if n:
            assert bin(int(rf["pmask"].split("'h")[1], 16)).count("1") == n


def test_plain_design_is_unchanged(toy):
    """The default variant is the plain design byte for byte: no TMR template, no tmr_err."""
    a, b = generate(toy), generate(toy, DesignVariant.plain())
    assert a.files == b.files
    assert "fkhw_regfile_tmr.v" not in a.files and "tmr_err" not in a.files["fkhw_encoder.v"]
    assert "FKHW_TMR" not in a.files["fkhw_encoder_defs.vh"] and "tmr" not in a.meta


def test_bad_protected_sites_give_a_clear_error(toy):
    from fkhw.faults.space import FlipFlopSpace

    space = FlipFlopSpace.of(toy)
    n = space.first_control + space.latency  # the flip-flops a map can protect: parameter, pipeline, valid
    with pytest.raises(ValueError, match=rf"\[{n}\] cannot be triplicated: .* 0\.\.{n - 1}"):
        harden(toy, [0, n])
    with pytest.raises(ValueError, match="listed twice"):
        harden(toy, [0, n - 1, n - 1])
    with pytest.raises(SiteError, match=r"\[-1\] out of range"):
        harden(toy, [-1])
    with pytest.raises(ValueError, match="listed twice"):
        harden(toy, [3, 3])
    with pytest.raises(ValueError, match="integer site ids"):
        harden(toy, [1.5])
    with pytest.raises(ValueError, match="replica"):
        HardenedRtlLevel(toy, [0], replica=3)


# --- proof by fault injection ----------------------------------------------------

def test_exhaustive_proof_on_the_toy_model(toy, toy_prot, toy_level):
    """Every protected site upset in each of its three replicas: no output
    change, tmr_err raised; every unprotected site: the plain design's
    outputs (software level, bit-exact with the plain RTL), tmr_err low;
    fault-free hardened == integer engine."""
    x = toy_inputs(toy, 32)
    rep = prove(toy, toy_prot, x, level=toy_level)
    n = SiteSpace.of(toy).n_sites
    assert rep["replica_upsets"] == 3 * toy_prot.size and rep["unprotected_sites"] == n - toy_prot.size
    assert rep["fault_free_equals_engine"]
    assert rep["protected_output_changes"] == 0, rep["failures"]
    assert rep["protected_tmr_err_misses"] == 0, rep["failures"]
    assert rep["unprotected_mismatches"] == 0, rep["failures"]
    assert rep["unprotected_tmr_err_raised"] == 0
    assert rep["unprotected_output_changes"] > 0.5 * rep["unprotected_sites"]  # the upsets are real
    assert rep["ok"]


def test_two_replicas_upset_do_corrupt_the_output(toy, toy_prot, toy_level):
    """The voter is real: the same bit upset in two replicas gives the
    engine's output for the flipped weight (and tmr_err)."""
    x = toy_inputs(toy, 32)
    golden = engine.forward(toy, x)
    space = SiteSpace.of(toy)
    sites = toy_prot[::3]
    for pair in ((0, 1), (1, 2), (0, 2)):
        out, err = toy_level.run_with_err(sites, x, replica=pair)
        want = np.stack([engine.forward(flip(toy, space, int(s)), x) for s in sites])
        assert np.array_equal(out, want), pair
        assert err.all()
        assert (out != golden[None]).any(axis=(1, 2)).mean() > 0.5
    # and one replica alone, through the Level protocol: nothing changes
    lv_out = toy_level.run(sites, x)
    assert np.array_equal(lv_out, np.broadcast_to(golden, lv_out.shape))


def test_campaign_over_the_hardened_econt_bol(tmp_path):
    """econt-bol, T = 1.05 from a software campaign: the campaign over the
    hardened RTL (protected sites + the 150 most damaging unprotected ones)
    never exceeds T, and its protected sites are exactly at baseline."""
    from fkhw.campaign.run import CampaignSpec, run_campaign
    from fkhw.tmr.select import CampaignTable, parse_rule, select

    bundle = load_model("econt-bol")
    ir = bundle.ir
    run_campaign(CampaignSpec(model="econt-bol"), bundle, tmp_path / "sw", quiet=True)
    table = CampaignTable.load(tmp_path / "sw")
    sel = select(table, parse_rule(1.05, None), ir.n_param_bits())
    prot = np.sort(table.site[sel.rows])
    assert 300 < prot.size < 600
    order = np.lexsort((table.site, -table.emd_norm))
    unprot_top = [int(s) for s in table.site[order] if s not in set(prot.tolist())][:150]
    level = HardenedRtlLevel(ir, prot, jobs=JOBS)
    spec = CampaignSpec(model="econt-bol", sites=tuple(prot.tolist() + unprot_top))
    res = run_campaign(spec, bundle, tmp_path / "hard", quiet=True, level=level)
    assert res.summary["level"] == "rtl-tmr"
    worst = float(res.emd_norm.max())
    assert worst <= 1.05
    on_prot = np.isin(res.sites, prot)
    assert np.allclose(res.emd_norm[on_prot], 1.0)
    # the unprotected ones are the plain design's numbers
    sw = dict(zip(table.site.tolist(), table.emd_norm.tolist()))
    assert np.allclose(res.emd_norm[~on_prot], [sw[int(s)] for s in res.sites[~on_prot]])


# --- area ------------------------------------------------------------------------------

def _voters(design) -> int:
    """fkhw_tmr_voter instances of a hardened design: one per register
    with any protected bit."""
    return len({(s["instance"], s["index"]) for s in design.meta.get("tmr", {}).get("sites", [])})


def test_hierarchical_area_equals_flat_synthesis(synth_cache, tmp_path):
    """Datapath (register files black-boxed, each distinct fkhw_dot mapped
    once) + register files (datapath black-boxed, each distinct TMR voter
    mapped once) == one flat Yosys + ABC run: flip-flops exactly; cells and
    the CMOS transistor estimate within 1.5% (ABC maps the dot products and
    voters on their own instead of inside the whole network). With refresh
    ABC trades cells for area differently in the flat network (measured: 2.3%
    more cells flat for full TMR + refresh, transistors 0.2% apart), so there
    the cells are held to 3%."""
    ir = tiny_model()
    prot = np.arange(0, ir.n_param_bits(), 5)
    every = np.arange(ir.n_param_bits())
    plain = generate(ir)
    for name, design in (("plain", plain), ("selective", harden(ir, prot)),
                         ("selective_refresh", harden(ir, prot, refresh=True)),
                         ("full", harden(ir, every)),
                         ("full_refresh", harden(ir, every, refresh=True))):
        d = tmp_path / name
        design.write(d)
        flat = synth(design.verilog_files(d), TOP, work_dir=d / "flat")
        hier = synth_hierarchical(design, plain, d / "hier", cache=synth_cache)
        assert flat["abc"] and hier["datapath"]["abc"] and hier["datapath"]["kept_modules"]
        voters = _voters(design)
        assert (voters > 0) == (name != "plain")
        assert sum(hier["regfiles"]["kept_modules"].values()) == voters, name
        print(f"{name}: cells hierarchical {hier['cells']} flat {flat['cells']}, transistors hierarchical "
              f"{hier['transistors']} flat {flat['transistors']}")
        assert hier["flip_flops"] == flat["flip_flops"] == design.meta["flip_flops_expected"]
        cell_bound = 0.03 if name.endswith("refresh") else 0.015
        assert abs(hier["cells"] - flat["cells"]) <= cell_bound * flat["cells"], (name, hier["cells"], flat["cells"])
        assert abs(hier["transistors"] - flat["transistors"]) <= 0.015 * flat["transistors"], \
            (name, hier["transistors"], flat["transistors"])
    # the conv windows skip a column: those pipeline bits are gone in both
    assert plain.meta["stages"][0]["ff_used"] < plain.meta["stages"][0]["bits"]


def test_area_table_overheads_are_two_flip_flops_per_protected_bit(synth_cache, tmp_path):
    ir = tiny_model()
    prot = np.arange(0, ir.n_param_bits(), 5)
    rows = area_table(ir, prot, tmp_path / "area", cache=synth_cache)
    by = {r["design"]: r for r in rows}
    assert list(by) == ["plain", "selective", "selective + refresh", "full", "full + refresh"]
    assert by["selective"]["ff_overhead"] == 2 * prot.size
    assert by["full"]["ff_overhead"] == 2 * ir.n_param_bits()
    assert by["full"]["ff_overhead_pct_of_weight_bits"] == 200.0
    # self-correcting TMR: the same replicas and the sticky tmr_err flag; the write-back of the voted
    # value is logic in the register files only (the datapath part is the one shared run)
    for name in ("selective", "full"):
        ref = by[f"{name} + refresh"]
        assert ref["refresh"] and not by[name]["refresh"]
        assert ref["ff_overhead"] == by[name]["ff_overhead"] + 1
        assert ref["regfile_cells"] > by[name]["regfile_cells"]
        assert ref["datapath_cells"] == by[name]["datapath_cells"]
    assert 0 < by["selective"]["cell_overhead"] < by["full"]["cell_overhead"]
    assert 0 < by["selective"]["transistor_overhead"] < by["full"]["transistor_overhead"]
    assert all(r["abc"] for r in rows)
    # cells by type add up to the total, flip-flop types to the flip-flops
    for r in rows:
        assert sum(r["cell_types"].values()) == r["cells"]
        assert sum(v for k, v in r["cell_types"].items() if k.startswith("$_DFF") or k.startswith("$_SDFF")) \
            == r["flip_flops"]
    assert by["plain"]["datapath_cells"] == by["full"]["datapath_cells"]
    paths = write_area(rows, tmp_path / "out")
    assert [p.name for p in paths] == ["area.csv", "area.json", "area.md"]
    md = paths[2].read_text()
    assert "| selective | 40 |" in md and "+80" in md and "Cells by type" in md and "transistors" in md
    assert json.loads(paths[1].read_text())["rows"][3]["flip_flops"] == by["full"]["flip_flops"]
    assert "| full + refresh |" in md


def test_replicas_survive_only_because_of_keep(tmp_path):
    """check_replicas.ys passes on the hardened RTL and fails once the
    (* keep *) attributes are stripped (Yosys then merges the replicas)."""
    ir = tiny_model()
    prot = np.arange(0, ir.n_param_bits(), 5)
    write_hardened(ir, prot, tmp_path / "hardened_rtl")
    write_tmrg_variant(ir, prot, tmp_path / "annotations")
    cmd = yosys_command() + ["-q", "-s", "check_replicas.ys"]
    ok = subprocess.run(cmd, cwd=tmp_path / "annotations", capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    tmr = tmp_path / "hardened_rtl" / "fkhw_regfile_tmr.v"
    tmr.write_text(tmr.read_text().replace("(* keep *) ", ""))
    bad = subprocess.run(cmd, cwd=tmp_path / "annotations", capture_output=True, text=True)
    assert bad.returncode != 0 and "Assertion failed" in (bad.stdout + bad.stderr)


# --- TMRG annotations ----------------------------------------------------------------------

def test_tmrg_variant_lints_and_is_the_plain_design(toy, toy_prot, tmp_path):
    from fkhw.levels.rtl import RtlLevel

    paths = write_tmrg_variant(toy, toy_prot, tmp_path)
    names = {p.name for p in paths}
    assert {"tmrg.cfg", "keep_replicas.xdc", "keep_replicas.sdc", "check_replicas.ys", "README.md"} <= names
    rtl = tmp_path / "tmrg_rtl"
    d = tmrg_design(toy, toy_prot)
    res = lint(d.verilog_files(rtl), TOP, include_dirs=[rtl])
    assert res.ok, res.output
    # protected and unprotected bits in separate nets, with TMRG's directives
    space = SiteSpace.of(toy)
    tn, _, _ = space.locate(toy_prot)
    for n in d.meta["tmrg"]["nets"]:
        text = (rtl / f"{n['module']}.v").read_text()
        assert "// tmrg default do_not_triplicate" in text
        assert f"// tmrg triplicate {n['prot']}\n" in text
        assert re.search(rf"reg\s+\[{n['protected_bits'] - 1}:0\] {n['prot']};", text)
        if n["protected_bits"] < n["bits"]:
            assert f"// tmrg do_not_triplicate {n['unprot']}" in text
            assert re.search(rf"reg\s+\[{n['bits'] - n['protected_bits'] - 1}:0\] {n['unprot']};", text)
    assert sum(n["protected_bits"] for n in d.meta["tmrg"]["nets"]) == toy_prot.size
    assert "// tmrg default do_not_triplicate" in d.files["fkhw_encoder.v"]
    assert _regmap_rows(d) == _regmap_rows(generate(toy))
    # functionally the plain encoder: loaded through the config port, 2000 vectors == engine
    lv = RtlLevel(toy, jobs=1, design=d)
    x = toy_inputs(toy, 2000, seed=7)
    assert np.array_equal(lv.golden(x), engine.forward(toy, x))
    assert lv.stats["golden_valid_errors"] == 0
    xdc = (tmp_path / "keep_replicas.xdc").read_text()
    assert xdc.count("set_property DONT_TOUCH TRUE [get_cells {") == toy_prot.size


# --- triplicated pipeline data bits and valid flags; the self-correcting variant ----------------

def _toy_with_transients(model):
    """The toy map plus every 12th pipeline data bit and every valid flag."""
    from fkhw.faults.space import FlipFlopSpace

    space = FlipFlopSpace.of(model)
    return np.concatenate([_toy_protected(model), np.arange(space.sites.n_sites, space.first_control, 12),
                           np.arange(space.first_control, space.first_control + space.latency)])


@pytest.mark.parametrize("refresh", [False, True], ids=["plain-tmr", "refresh"])
def test_proof_covers_pipeline_and_valid_replicas_on_both_variants(toy, refresh):
    """Every replica of every protected flip-flop (parameter bits at cycle
    0; pipeline data bits and valid flags at every window cycle): 0 output
    changes and tmr_err raised every time, on the hardened design and on
    its self-correcting variant (whose sticky tmr_err the testbench clears
    with a configuration write at the end of every frame: a flag left set
    would make the next frame's `pre` 1 and the proof refuse it)."""
    x = toy_inputs(toy, 16)
    prot = _toy_with_transients(toy)
    level = HardenedRtlLevel(toy, prot, jobs=JOBS, refresh=refresh)
    n_sites = SiteSpace.of(toy).n_sites
    rep = prove(toy, prot, x, level=level, unprotected=np.zeros(0, dtype=np.int64) if refresh else None)
    n_t = int((prot >= n_sites).sum())
    assert rep["refresh"] is refresh and level.space.refresh is refresh
    assert rep["replica_upsets"] == 3 * int((prot < n_sites).sum())
    assert rep["protected_pipeline_and_valid_flip_flops"] == n_t
    assert rep["pipeline_and_valid_replica_upsets"] == 3 * n_t * x.shape[0]
    assert rep["protected_output_changes"] == 0 and rep["pipeline_and_valid_output_changes"] == 0, rep["failures"]
    assert rep["protected_tmr_err_misses"] == 0 and rep["pipeline_and_valid_tmr_err_misses"] == 0, rep["failures"]
    assert rep["ok"]


def test_sticky_tmr_err_stays_set_until_a_configuration_write(toy):
    """Self-correcting design: one replica upset in frame 0, then frames
    without upsets. Without configuration writes tmr_err is still 1 at the
    start of every later frame (sticky, though the refresh repaired the
    replica at once); with the testbench's end-of-frame write it is 0 there."""
    from fkhw.faults.space import Fault, FaultSet, Upset
    from fkhw.levels.rtl import fault_deposits, param_codes
    from fkhw.rtlgen.sim import run_frames

    x = toy_inputs(toy, 16)
    prot = _toy_protected(toy)
    level = HardenedRtlLevel(toy, prot, jobs=1, refresh=True)
    space = level.space
    b = space.first_replica  # replica B of the first protected bit
    fs = FaultSet.of("file", [0], [Fault((Upset(b, 0),))])
    period, frames = x.shape[0] + space.latency, 4
    dep = fault_deposits(fs, space, toy, level.meta, period)
    sb = level.build()
    gold = engine.forward(toy, x)
    flags = {}
    for clear in (False, True):
        out = run_frames(sb, level.root / "work" / f"sticky{int(clear)}", x, gold, param_codes(toy), frames,
                         period, dep, jobs=1, clear_err=clear)
        assert out.frame.size == 0  # the upset changes no output
        flags[clear] = out.tmr_err
    pre, post = flags[False][:, 0], flags[False][:, 1]
    assert not pre[0] and post.all() and pre[1:].all(), flags[False]
    pre, post = flags[True][:, 0], flags[True][:, 1]
    assert not pre.any() and post[0] and not post[1:].any(), flags[True]
