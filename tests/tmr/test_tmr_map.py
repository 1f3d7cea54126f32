"""Selective-TMR selection and map (issue 7, the map side)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from fkhw.campaign.run import CampaignSpec, run_campaign
from fkhw.model.bundle import load_model
from fkhw.rtlgen.emit import generate
from fkhw.tmr.select import CampaignTable, TmrError, check_campaign_matches, parse_rule, residual_curve, select
from fkhw.faults.tmrmap import ENTRY_COLUMNS, TmrMap, build_map, write_map


@pytest.fixture(scope="module")
def campaign(bol, tmp_path_factory):
    out = tmp_path_factory.mktemp("tmrcamp")
    run_campaign(CampaignSpec("econt-bol"), bol, out, quiet=True)
    return out


def test_threshold_rule_protects_exactly_the_bits_above_it(campaign, bol, bol_sites):
    table = CampaignTable.load(campaign)
    for t in (1.0, 1.05, 1.1):
        sel = select(table, parse_rule(t, None), bol.ir.n_param_bits())
        assert set(table.site[sel.rows].tolist()) == set(table.site[table.emd_norm > t].tolist())
        assert sel.overhead_pct == pytest.approx(200.0 * sel.n_protected / bol_sites)
    # the default rule is the seed's: anything that raises the mean EMD at all
    assert parse_rule(None, None).value == 1.0


def test_budget_rule_protects_the_most_damaging_bits(campaign, bol_sites):
    table = CampaignTable.load(campaign)
    sel = select(table, parse_rule(None, "100"), bol_sites)
    assert sel.n_protected == 100
    chosen = table.emd_norm[sel.rows]
    rest = np.delete(table.emd_norm, sel.rows)
    assert chosen.min() >= rest.max()
    assert select(table, parse_rule(None, "3%"), bol_sites).n_protected == round(0.03 * bol_sites)


def test_map_names_each_protected_bit_where_the_rtl_holds_it(campaign, bol, bol_sites, tmp_path):
    table = CampaignTable.load(campaign)
    sel = select(table, parse_rule(1.05, None), bol.ir.n_param_bits())
    regmap = generate(bol.ir).regmap
    files = write_map(build_map(bol, table, sel, regmap), tmp_path)
    assert [p.name for p in files] == ["tmr_map.json", "tmr_map.csv"]
    m = json.loads((tmp_path / "tmr_map.json").read_text())
    assert m["model"] == "econt-bol" and m["rule"]["kind"] == "threshold" and m["rule"]["value"] == 1.05
    assert m["totals"]["protected_bits"] == sel.n_protected == len(m["entries"])
    assert m["totals"]["overhead_pct"] == pytest.approx(200.0 * sel.n_protected / bol_sites)
    reg_of = {int(s): (int(r), int(b)) for s, r, b in regmap}
    for e in m["entries"]:
        assert (e["reg"], e["reg_bit"]) == reg_of[e["site"]]
        assert e["emd_norm"] > 1.05
    with (tmp_path / "tmr_map.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ENTRY_COLUMNS and len(rows) == sel.n_protected
    assert TmrMap.load(tmp_path).sites.tolist() == sorted(e["site"] for e in m["entries"])


def test_protect_control_lists_the_valid_flags_and_the_hardened_rtl_and_campaign_use_them(campaign, bol, tmp_path):
    """``--protect-control``: the map lists every stage's valid flag (class
    control, its register), the hardened RTL triplicates them (fkhw_pipe_tmr
    with VTMR), a campaign of the map's design has their replicas, and the
    parameter-only map keeps today's files and ids."""
    from fkhw.campaign.run import hardening_from_map
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.tmr.flow import TmrOptions, run_tmr

    rule = parse_rule(1.05, None)
    plain_map, ctrl_map = tmp_path / "plain", tmp_path / "ctrl"
    run_tmr(campaign, plain_map, rule, bol, TmrOptions(synth=False, prove=False))
    rep = run_tmr(campaign, ctrl_map, rule, bol, TmrOptions(synth=False, prove=False, protect_control=True))
    space = FlipFlopSpace.of(bol.ir)
    valid = list(range(space.first_control, space.first_control + space.latency))
    m = json.loads((ctrl_map / "tmr_map.json").read_text())
    assert [f["ff"] for f in m["flip_flops"]] == valid and rep["protected_pipeline_and_valid_flip_flops"] == len(valid)
    assert [(f["class"], f["register"]) for f in m["flip_flops"]] == [("control", f"s{k}_valid")
                                                                        for k in range(space.latency)]
    assert m["entries"] == json.loads((plain_map / "tmr_map.json").read_text())["entries"]
    with (ctrl_map / "tmr_map.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows].count("control") == space.latency and len(rows) == len(m["entries"]) + 3
    with (plain_map / "tmr_map.csv").open() as f:
        assert list(next(csv.DictReader(f))) == ENTRY_COLUMNS
    meta = json.loads((ctrl_map / "hardened_rtl" / "fkhw_encoder.json").read_text())
    assert meta["tmr"]["flip_flops"] == valid
    assert all(st["module"] == "fkhw_pipe_tmr" and st["valid_protected"] and st["protected_bits"] == 0
               for st in meta["stages"])
    assert meta["flip_flops_expected"] == space.n_ff + 2 * (len(m["entries"]) + len(valid))
    hard, params = hardening_from_map(ctrl_map, bol), hardening_from_map(plain_map, bol)
    assert list(hard.protect) == sorted(e["site"] for e in m["entries"]) + valid
    assert hard.sites(space.sites.n_sites) == params.protect
    hs, ps = FlipFlopSpace.of(bol.ir, hard.protect), FlipFlopSpace.of(bol.ir, params.protect)
    assert hs.n_ff == ps.n_ff + 2 * len(valid) and hs.table()["register"][:ps.n_ff] == ps.table()["register"]


def test_residual_curve_trades_overhead_for_worst_case_damage(campaign, bol_sites):
    table = CampaignTable.load(campaign)
    overhead, worst = residual_curve(table, bol_sites)
    assert overhead[0] == 0 and worst[0] == table.emd_norm.max()
    assert np.all(np.diff(worst) <= 0) and np.all(np.diff(overhead) > 0)
    k = int((table.emd_norm > 1.05).sum())  # protecting the bits above 1.05 leaves at most 1.05
    assert worst[k] <= 1.05 < worst[k - 1] and overhead[k] == pytest.approx(200.0 * k / bol_sites)


@pytest.mark.parametrize("threshold,budget,message", [
    (-0.5, None, "non-negative"),
    (None, "20000", "more than the {n} sites"),
    (None, "150%", "more than the {n} sites"),
    (None, "lots", "number of bits"),
    (None, "2.5", "whole number"),
])
def test_bad_rules_are_refused(campaign, bol_sites, threshold, budget, message):
    table = CampaignTable.load(campaign)
    with pytest.raises(TmrError, match=message.format(n=bol_sites)):
        select(table, parse_rule(threshold, budget), bol_sites)


def test_a_campaign_from_another_model_is_refused(campaign):
    eol = load_model("econt-eol")
    with pytest.raises(TmrError, match="econt-bol.*not on 'econt-eol'"):
        check_campaign_matches(CampaignTable.load(campaign), eol.files.digest(), eol.name)


def test_cli_refuses_bad_options_before_any_work(campaign, tmp_path):
    def tmr(*args):
        return subprocess.run([sys.executable, "-m", "fkhw", "tmr", "--campaign", str(campaign),
                               "--out", str(tmp_path / "o"), *args], capture_output=True, text=True)

    r = tmr("--threshold", "-1")
    assert r.returncode == 2 and "--threshold -1" in r.stderr
    r = tmr("--budget", "99999")
    assert r.returncode == 2 and "--budget" in r.stderr
    r = tmr("--model", "econt-eol")
    assert r.returncode == 2 and "'econt-eol'" in r.stderr and "not the one the campaign ran on" in r.stderr
    assert not (tmp_path / "o").exists()


def test_pipeline_campaign_chooses_the_data_bits_whose_upsets_degrade_most_of_the_time(campaign, bol, tmp_path):
    """``--pipeline-campaign``: the map lists exactly the pipeline data bits
    whose upsets (one per window cycle, read from the campaign's own files)
    exceed the rule's threshold in more than the given fraction of cycles;
    the hardened RTL masks those bits of their stages; a campaign of another
    kind is refused in one line."""
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.tmr.flow import TmrOptions, run_tmr

    pipe = tmp_path / "pipe"
    run_campaign(CampaignSpec("econt-bol", faults="pipeline", n_inputs=8), bol, pipe, quiet=True)
    with (pipe / "campaign.csv").open() as f:
        emd = {int(r["fault"]): float(r["emd_norm"]) for r in csv.DictReader(f)}
    per_ff = {}
    with (pipe / "faults.csv").open() as f:
        for r in csv.DictReader(f):
            ff = int(r["upsets"].split("@")[0])
            per_ff.setdefault(ff, []).append(emd[int(r["fault"])] > 1.05)
    space = FlipFlopSpace.of(bol.ir)
    want = sorted(ff for ff, hits in per_ff.items() if ff < space.first_control and np.mean(hits) > 0.5)
    assert 0 < len(want) < space.n_pipeline
    rep = run_tmr(campaign, tmp_path / "map", parse_rule(1.05, None), bol,
                  TmrOptions(synth=False, prove=False, pipeline_campaign=pipe, pipeline_threshold=0.5))
    m = json.loads((tmp_path / "map" / "tmr_map.json").read_text())
    assert [f["ff"] for f in m["flip_flops"]] == want == [f["ff"] for f in m["flip_flops"] if f["class"] == "pipeline"]
    assert rep["protected_pipeline_and_valid_flip_flops"] == len(want)
    meta = json.loads((tmp_path / "map" / "hardened_rtl" / "fkhw_encoder.json").read_text())
    by_stage = {st.stage: sum(1 for ff in want if space.stage_of(ff).stage == st.stage) for st in space.stages}
    assert {st["stage"]: st.get("protected_bits", 0) for st in meta["stages"]} == by_stage
    r = subprocess.run([sys.executable, "-m", "fkhw", "tmr", "--campaign", str(campaign), "--pipeline-campaign",
                        str(campaign), "--out", str(tmp_path / "bad")], capture_output=True, text=True)
    assert r.returncode != 0 and "--pipeline-campaign" in r.stderr and "a seu campaign" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
