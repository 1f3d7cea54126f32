"""Held-out validation of TMR maps, the evidence rules and --inputs auto."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from fkhw.model import data
from fkhw.campaign.run import CampaignSpec, run_campaign
from fkhw.tmr.heldout import heldout_rows, validate
from fkhw.campaign.outputs import CampaignOutputs
from fkhw.tmr.select import CampaignTable, parse_rule, select
from fkhw.tmr.stable import plan_counts


@pytest.fixture(scope="module")
def campaign(bol, tmp_path_factory):
    out = tmp_path_factory.mktemp("heldout_campaign")
    run_campaign(CampaignSpec("econt-bol"), bol, out, quiet=True)
    return out


@pytest.mark.parametrize("n,seed", [(32, 0), (512, 1), (2048, 7)])
def test_heldout_modules_never_overlap_the_campaigns(n, seed):
    charges = data.load_charges()
    used = data.select_modules(charges, n, seed)
    held = heldout_rows(charges, used, 1024, seed, "data.csv", "--data")
    assert held.size == 1024 and np.unique(held).size == 1024
    assert np.intersect1d(held, used).size == 0
    assert np.all(charges[held].sum(axis=1) > 0)


def test_the_auto_search_keeps_its_heldout_set_apart_from_every_campaign_it_may_run():
    charges = data.load_charges()
    counts, used = plan_counts(charges, 0, 32, 4096, 1024, True, "data.csv")
    assert counts[0] == 32 and all(b == 2 * a for a, b in zip(counts, counts[1:]))
    for n in counts:
        assert np.isin(data.select_modules(charges, n, 0), used).all()
    held = heldout_rows(charges, used, 1024, 0, "data.csv", "--data")
    assert np.intersect1d(held, used).size == 0
    # the cap is what the file allows: one more doubling would eat into the held-out modules
    nxt = np.union1d(used, data.select_modules(charges, 2 * counts[-1], 0))
    assert 2 * counts[-1] > charges.shape[0] or charges.shape[0] - nxt.size < 1024


def test_a_campaign_on_explicit_modules_runs_exactly_those(bol, tmp_path):
    rows = (3, 10, 400, 4999)
    run_campaign(CampaignSpec("econt-bol", rows=rows, stop_after=20), bol, tmp_path, quiet=True)
    assert CampaignOutputs.load(tmp_path).rows.tolist() == list(rows)


@pytest.mark.parametrize("t", [1.0, 1.01, 1.05, 1.1])
def test_rule_upper_protects_a_superset_of_rule_mean(campaign, bol_sites, t):
    table = CampaignTable.load(campaign)
    mean = set(table.site[select(table, parse_rule(t, None, "mean"), bol_sites).rows].tolist())
    upper = set(table.site[select(table, parse_rule(t, None, "upper"), bol_sites).rows].tolist())
    assert mean <= upper
    assert len(upper) > len(mean), "on 32 modules some intervals reach above T while the value does not"


def test_coverage_and_worst_unprotected_value_of_a_map(campaign):
    held = CampaignTable.load(campaign)  # judged against itself: a map from its own values
    above = held.site[held.emd_norm > 1.05]
    v = validate(above, held, 1.05)
    assert v.coverage == 1.0 and v.sensitive_bits == above.size and v.n_missed == 0
    assert v.worst_unprotected_emd_norm <= 1.05
    worst_row = int(np.argmax(held.emd_norm))
    v = validate(np.setdiff1d(above, held.site[worst_row]), held, 1.05)
    assert v.n_missed == 1 and v.missed[0]["site"] == int(held.site[worst_row])
    assert v.coverage == pytest.approx((above.size - 1) / above.size)
    assert v.worst_unprotected_emd_norm == held.emd_norm.max() and not v.stable


def fkhw(*args):
    return subprocess.run([sys.executable, "-m", "fkhw", *args], capture_output=True, text=True)


def test_inputs_auto_on_a_file_too_small_for_the_heldout_set_is_refused(tmp_path):
    small = tmp_path / "small.csv"
    lines = data.DEFAULT_DATA.read_text().splitlines()
    small.write_text("\n".join(lines[:601]) + "\n")
    r = fkhw("tmr", "--inputs", "auto", "--data", str(small), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "--inputs auto" in r.stderr and "small.csv" in r.stderr and "1024 held-out" in r.stderr


def test_a_validation_file_without_the_48_columns_is_refused(campaign, tmp_path):
    bad = tmp_path / "other.csv"
    bad.write_text("CALQ_0,CALQ_1\n1,2\n")
    r = fkhw("tmr", "--campaign", str(campaign), "--validate-data", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "other.csv" in r.stderr and "CALQ_2" in r.stderr
    assert not (tmp_path / "o").exists()


def test_tmr_inputs_auto_reports_its_search_and_heldout_evidence(tmp_path):
    out = tmp_path / "t"
    r = fkhw("tmr", "--inputs", "auto", "--max-inputs", "64", "--validate-inputs", "128", "--threshold", "1.05",
             "--rule", "upper", "--no-synth", "--no-prove", "--out", str(out))
    rep = json.loads((out / "tmr_report.json").read_text())
    assert r.returncode == (0 if rep["validation"]["stable"] else 1), r.stderr  # NOT stable exits 1
    assert ("NOT stable" in r.stdout + r.stderr) == (not rep["validation"]["stable"])
    steps = rep["auto"]["steps"]
    assert [s["inputs"] for s in steps][0] == 32 and len(steps) <= 2
    assert rep["auto"]["stable"] == steps[-1]["stable"]
    assert ("stable at" in rep["auto"]["reason"]) == rep["auto"]["stable"]
    v = rep["validation"]
    assert v["modules"] == 128 and 0 <= v["coverage"] <= 1 and v["threshold"] == 1.05
    held = CampaignOutputs.load(out / "heldout").rows
    for s in steps:
        assert np.intersect1d(CampaignOutputs.load(s["campaign"]).rows, held).size == 0
    assert rep["campaign_modules"] == steps[-1]["inputs"]
    assert "held-out (128 modules" in r.stdout and "coverage" in r.stdout and "--inputs auto:" in r.stdout
