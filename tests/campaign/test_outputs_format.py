"""outputs.npz and campaign.csv: the sparse format, and files of the first
format (dense latents, no interval columns) still read."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from fkhw.campaign.agreement import Campaign, compare
from fkhw.campaign.run import CampaignSpec, run_campaign
from fkhw.model.bundle import load_model
from fkhw.campaign.outputs import CampaignOutputs
from fkhw.tmr.select import CampaignTable, TmrError, parse_rule, select


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("fmt")
    run_campaign(CampaignSpec("econt-bol", stop_after=300, order="msb"), load_model("econt-bol"), out, quiet=True)
    return out


def first_format_copy(src, dst):
    """The same campaign as the code before issue 13 wrote it."""
    dst.mkdir()
    z = CampaignOutputs.load(src)
    np.savez_compressed(dst / "outputs.npz", charges=z.charges, inputs=z.inputs, baseline=z.baseline,
                        latent=z.latent(), sites=z.sites, rows=z.rows)
    with (src / "campaign.csv").open() as f:
        rows = list(csv.DictReader(f))
    with (dst / "campaign.csv").open("w", newline="") as f:
        w = csv.writer(f)
        cols = ["site", "layer", "tensor", "index", "bit", "emd", "emd_norm", "n_changed"]
        w.writerow(cols)
        for r in rows:
            w.writerow([r[c] for c in cols])
    (dst / "summary.json").write_text((src / "summary.json").read_text())


def test_only_changed_outputs_are_stored_and_the_dense_codes_come_back(small):
    z = CampaignOutputs.load(small)
    dense = z.latent()
    changed = (dense != z.baseline[None]).any(axis=2)
    assert z.indptr[-1] == changed.sum() < changed.size
    np.testing.assert_array_equal(z.latent(np.array([5, 2]), np.array([3, 0])), dense[[5, 2]][:, [3, 0]])


def test_first_format_files_are_still_read(small, bol_sites, tmp_path):
    old = tmp_path / "old"
    first_format_copy(small, old)
    ag = compare(Campaign.load(small), Campaign.load(old))
    assert ag.disagreeing_sites == [] and ag.mismatching_values == 0 and ag.common_sites == 300
    table = CampaignTable.load(old)
    assert table.emd_norm_hi is None
    assert select(table, parse_rule(1.05, None), bol_sites).n_protected == \
        select(CampaignTable.load(small), parse_rule(1.05, None), bol_sites).n_protected
    with pytest.raises(TmrError, match="no emd_norm_hi column"):
        select(table, parse_rule(1.05, None, "upper"), bol_sites)
