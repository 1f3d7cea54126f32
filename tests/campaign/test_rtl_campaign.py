"""`fkhw campaign --level rtl` (issue 6): same outputs as the software level,
and a run killed with SIGKILL resumes without losing a finished chunk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fkhw.campaign.agreement import Campaign, compare
from fkhw.campaign.outputs import CampaignOutputs

pytestmark = [pytest.mark.verilator]

# every 53rd site of econt-bol (203): conv and dense, every bit position

def fkhw(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "fkhw", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kw)


def test_rtl_campaign_killed_half_way_resumes_and_agrees_with_software(bol_sites, tmp_path):
    SITES = list(range(0, bol_sites, 53))
    sites = tmp_path / "sites.txt"
    sites.write_text("\n".join(map(str, SITES)) + "\n")
    common = ["campaign", "--sites", str(sites), "--no-plot", "--inputs", "16"]
    sw = fkhw(*common, "--out", str(tmp_path / "sw"))
    assert sw.wait(timeout=300) == 0, sw.stderr.read()

    out = tmp_path / "rtl"
    args = [*common, "--level", "rtl", "--jobs", "1", "--chunk", "40", "--out", str(out)]
    first = fkhw(*args)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(list((out / ".partial").glob("chunk_*.npz"))) < 2:
        assert first.poll() is None, "the run ended before it could be killed: " + first.stderr.read()
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the CLI and its simulator, no clean-up
    first.wait()
    kept = len(list((out / ".partial").glob("chunk_*.npz")))
    assert 2 <= kept < -(-len(SITES) // 40)

    second = fkhw(*args)
    _, err = second.communicate(timeout=900)
    assert second.returncode == 0, err
    # progress starts from the finished chunks, not from zero
    first_line = next(ln for ln in err.splitlines() if ln.startswith("campaign[rtl]"))
    assert first_line.split(": ")[1].split("/")[0] == str(kept * 40)

    ag = compare(Campaign.load(tmp_path / "sw"), Campaign.load(out))
    assert ag.common_sites == len(SITES) and ag.only_a == ag.only_b == 0
    assert ag.disagreeing_sites == [] and ag.mismatching_values == 0 and ag.baseline_identical
    rtl = CampaignOutputs.load(out)
    assert np.any(rtl.latent() != rtl.baseline[None]), "some upsets must change outputs"
    assert (out / "campaign.csv").read_text().splitlines()[1:] == \
        (tmp_path / "sw" / "campaign.csv").read_text().splitlines()[1:]
