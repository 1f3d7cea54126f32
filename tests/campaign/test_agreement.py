"""`fkhw agree`: two campaigns joined on site, compared value by value."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fkhw.campaign.agreement import AgreementError, Campaign, compare
from fkhw.campaign.run import CampaignSpec, run_campaign
from fkhw.levels.qkeras import QKerasLevel
from fkhw.model.bundle import load_model

SITES = (0, 4, 76, 360, 361, 399, 400, 1203, 5000, 10640, 10641, 10719)


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory):
    bundle = load_model("econt-bol")
    root = tmp_path_factory.mktemp("agree")
    sw = run_campaign(CampaignSpec("econt-bol", sites=SITES), bundle, root / "sw", quiet=True)
    qk = run_campaign(CampaignSpec("econt-bol", sites=SITES), bundle, root / "qk", level=QKerasLevel(bundle), quiet=True)
    return sw.out, qk.out


def test_software_and_qkeras_campaigns_agree_on_every_site(campaigns):
    ag = compare(Campaign.load(campaigns[0]), Campaign.load(campaigns[1]))
    assert (ag.level_a, ag.level_b) == ("software", "qkeras")
    assert ag.common_sites == len(SITES) and ag.baseline_identical
    assert ag.disagreeing_sites == [] and ag.mismatching_values == 0


def test_a_single_changed_latent_value_is_found_and_named(campaigns, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(campaigns[1], bad)
    z = dict(np.load(bad / "outputs.npz"))
    first = z["changed_indptr"][3]  # row 3 is site 360; change one value it recorded
    assert z["changed_indptr"][4] > first, "site 360 must change some output"
    z["changed_latent"][first, 7] += 1
    np.savez(bad / "outputs.npz", **z)
    r = subprocess.run([sys.executable, "-m", "fkhw", "agree", "--a", str(campaigns[0]), "--b", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    report = json.loads((bad / "agreement.json").read_text())
    assert report["disagreeing"] == 1 and report["disagreeing_sites"] == [360]
    assert report["mismatching_latent_values"] == 1
    assert "disagreeing sites: 1" in r.stdout


def test_campaigns_on_different_inputs_are_not_compared(campaigns, tmp_path):
    bundle = load_model("econt-bol")
    other = run_campaign(CampaignSpec("econt-bol", seed=3, sites=SITES), bundle, tmp_path / "o", quiet=True)
    with pytest.raises(AgreementError, match="different inputs"):
        compare(Campaign.load(campaigns[0]), Campaign.load(other.out))


def test_a_folder_that_is_not_a_campaign_is_refused(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fkhw", "agree", "--a", str(tmp_path), "--b", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not a finished campaign folder" in r.stderr
