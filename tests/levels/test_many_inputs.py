"""Campaigns at thousands of modules: every level takes them, and agrees."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fkhw.campaign.agreement import Campaign, compare
from fkhw.campaign.outputs import CampaignOutputs

pytestmark = [pytest.mark.verilator, pytest.mark.hls]

SITES = "0,7,400,1203,5000,10641"  # conv and dense, kernel and bias, sign and low bits


def fkhw(*args):
    return subprocess.run([sys.executable, "-m", "fkhw", *args], capture_output=True, text=True, timeout=1200)


@pytest.mark.parametrize("level", ["rtl", "hls"])
def test_simulator_campaign_on_4096_modules_agrees_with_software(level, tmp_path):
    sites = tmp_path / "sites.txt"
    sites.write_text(SITES.replace(",", "\n") + "\n")
    common = ["campaign", "--inputs", "4096", "--sites", str(sites), "--no-plot"]
    sw = fkhw(*common, "--out", str(tmp_path / "sw"))
    assert sw.returncode == 0, sw.stderr[-2000:]
    rtl = fkhw(*common, "--level", level, "--jobs", "1", "--out", str(tmp_path / "rtl"))
    assert rtl.returncode == 0, rtl.stderr[-2000:]
    out = CampaignOutputs.load(tmp_path / "rtl")
    assert out.n_modules == 4096 and out.sites.size == 6
    ag = compare(Campaign.load(tmp_path / "sw"), Campaign.load(tmp_path / "rtl"))
    assert ag.common_sites == 6 and ag.disagreeing_sites == [] and ag.mismatching_values == 0
    assert ag.baseline_identical
    assert (tmp_path / "sw" / "campaign.csv").read_text().splitlines()[1:] == \
        (tmp_path / "rtl" / "campaign.csv").read_text().splitlines()[1:]
