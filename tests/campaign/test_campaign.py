"""The software fault-injection campaign (issue 3), as a specification."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fkhw.campaign.run import CSV_COLUMNS, CampaignError, CampaignSpec, make_workload, run_campaign
from fkhw.levels.software import SoftwareLevel
from fkhw.model.bundle import load_model
from fkhw.campaign.outputs import CampaignOutputs
from fkhw.faults.sites import SiteSpace


@pytest.fixture(scope="module")
def exhaustive(bol, tmp_path_factory):
    out = tmp_path_factory.mktemp("campaign")
    return run_campaign(CampaignSpec(model="econt-bol"), bol, out, quiet=True)


def read_csv(path: Path) -> list:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_exhaustive_campaign_covers_every_site_once(bol, bol_sites, exhaustive):
    rows = read_csv(exhaustive.out / "campaign.csv")
    assert list(rows[0].keys()) == CSV_COLUMNS
    assert [int(r["site"]) for r in rows] == list(range(bol_sites))
    z = CampaignOutputs.load(exhaustive.out)
    n_sites = bol.ir.n_param_bits()
    assert z.latent().shape == (n_sites, 32, bol.ir.output_spec.shape[-1])
    assert z.baseline.shape == (32, bol.ir.output_spec.shape[-1])
    assert z.charges.shape == (32, 48) and np.all(z.charges.sum(axis=1) > 0)
    assert z.inputs.shape == (32,) + tuple(bol.ir.input.shape)


def test_summary_counts_sensitive_bits_and_tmr_overhead(exhaustive, bol_sites):
    s = json.loads((exhaustive.out / "summary.json").read_text())
    emd_norm = np.array([float(r["emd_norm"]) for r in read_csv(exhaustive.out / "campaign.csv")])
    assert set(s["thresholds"]) == {"1", "1.01", "1.05", "1.1"}
    for row in s["thresholds"].values():
        n = int((emd_norm > row["threshold"]).sum())
        assert row["sensitive_bits"] == n
        assert row["fraction"] == pytest.approx(n / bol_sites)
        assert row["tmr_overhead_pct"] == pytest.approx(200.0 * n / bol_sites)
    assert s["n_sites"] == bol_sites and s["complete"]
    assert s["baseline_emd"] > 0


def test_emd_norm_and_n_changed_follow_from_the_recorded_outputs(exhaustive):
    rows = read_csv(exhaustive.out / "campaign.csv")
    z = CampaignOutputs.load(exhaustive.out)
    changed = (z.latent() != z.baseline[None]).any(axis=2).sum(axis=1)
    assert [int(r["n_changed"]) for r in rows] == changed.tolist()
    # a site that changes no output has exactly the baseline EMD
    unchanged = changed == 0
    emd_norm = np.array([float(r["emd_norm"]) for r in rows])
    assert unchanged.any() and np.all(emd_norm[unchanged] == 1.0)
    assert np.any(emd_norm[~unchanged] != 1.0)


def test_recorded_latents_equal_qkeras_predict_on_sampled_faults(bol, exhaustive):
    from fkhw.levels.qkeras import QKerasLevel

    space = SiteSpace.of(bol.ir)
    rng = np.random.default_rng(7)
    tn, _, bit = space.locate(np.arange(space.n_sites))
    sample = set(rng.choice(space.n_sites, 24, replace=False).tolist())
    for k, t in enumerate(space.tensors):  # every tensor's sign bits and some LSBs
        ids = np.flatnonzero(tn == k)
        sample |= set(rng.choice(ids[bit[ids] == 0], 3, replace=False).tolist())
        sample |= set(rng.choice(ids[bit[ids] == t.fmt.bits - 1], 2, replace=False).tolist())
    sample = np.array(sorted(sample))
    z = CampaignOutputs.load(exhaustive.out)
    keras = QKerasLevel(bol)
    np.testing.assert_array_equal(keras.golden(z.inputs), z.baseline)
    got = keras.run(sample, z.inputs)
    mismatches = int((got != z.latent(sample)).sum())
    assert mismatches == 0, f"{mismatches} latent values differ from QKeras over {sample.size} faults"
    assert np.any(got != z.baseline[None]), "the sample should contain faults that change outputs"


class InterruptAfter:
    """A level that dies (like a kill) after ``n`` chunks."""

    def __init__(self, level, n):
        self.level, self.n, self.name, self.space = level, n, level.name, level.space

    def golden(self, inputs):
        return self.level.golden(inputs)

    def run(self, sites, inputs):
        if self.n == 0:
            raise KeyboardInterrupt
        self.n -= 1
        return self.level.run(sites, inputs)


def test_interrupted_campaign_resumes_to_the_same_files(bol, bol_sites, exhaustive, tmp_path):
    spec = CampaignSpec(model="econt-bol", chunk=1000)
    with pytest.raises(KeyboardInterrupt):
        run_campaign(spec, bol, tmp_path, level=InterruptAfter(SoftwareLevel(bol.ir), 3), quiet=True)
    partial = sorted((tmp_path / ".partial").glob("chunk_*.npz"))
    assert len(partial) == 3
    calls = []

    class Counting(SoftwareLevel):
        def run(self, sites, inputs):
            calls.append(np.asarray(sites).copy())
            return super().run(sites, inputs)

    run_campaign(spec, bol, tmp_path, level=Counting(bol.ir), quiet=True)
    redone = np.concatenate(calls)
    assert redone.size == bol_sites - 3000 and np.intersect1d(redone, np.arange(3000)).size == 0
    assert (tmp_path / "campaign.csv").read_bytes() == (exhaustive.out / "campaign.csv").read_bytes()
    assert (tmp_path / "summary.json").read_bytes() == (exhaustive.out / "summary.json").read_bytes()
    assert (tmp_path / "outputs.npz").read_bytes() == (exhaustive.out / "outputs.npz").read_bytes()
    assert not (tmp_path / ".partial").exists()


def test_a_chunk_cut_short_by_a_kill_is_redone(bol, exhaustive, tmp_path):
    spec = CampaignSpec(model="econt-bol", chunk=4000)
    with pytest.raises(KeyboardInterrupt):
        run_campaign(spec, bol, tmp_path, level=InterruptAfter(SoftwareLevel(bol.ir), 2), quiet=True)
    chunk = sorted((tmp_path / ".partial").glob("chunk_*.npz"))[-1]
    chunk.write_bytes(chunk.read_bytes()[:100])
    run_campaign(spec, bol, tmp_path, quiet=True)
    assert (tmp_path / "campaign.csv").read_bytes() == (exhaustive.out / "campaign.csv").read_bytes()


def test_an_unfinished_campaign_with_other_arguments_is_not_mixed_in(bol, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_campaign(CampaignSpec(model="econt-bol", chunk=1000), bol, tmp_path,
                     level=InterruptAfter(SoftwareLevel(bol.ir), 1), quiet=True)
    with pytest.raises(CampaignError, match="other arguments"):
        run_campaign(CampaignSpec(model="econt-bol", seed=1), bol, tmp_path, quiet=True)
    run_campaign(CampaignSpec(model="econt-bol", seed=1, stop_after=50), bol, tmp_path, fresh=True, quiet=True)
    assert len(read_csv(tmp_path / "campaign.csv")) == 50


def test_ordered_campaign_stops_after_n_sensitive_bits(bol, exhaustive, tmp_path):
    rows = read_csv(exhaustive.out / "campaign.csv")
    scores = tmp_path / "scores.csv"
    with scores.open("w") as f:
        f.write("site,truth\n")
        for r in rows:
            f.write(f"{r['site']},{r['emd_norm']}\n")
    res = run_campaign(CampaignSpec(model="econt-bol", order=f"{scores}:truth", stop_sensitive=10,
                                    sensitive_threshold=1.05, chunk=7), bol, tmp_path / "c", quiet=True)
    got = read_csv(tmp_path / "c" / "campaign.csv")
    # the oracle order finds 10 sensitive bits in exactly 10 injections
    assert len(got) == 10 and all(float(r["emd_norm"]) > 1.05 for r in got)
    emd = [float(r["emd_norm"]) for r in got]
    assert emd == sorted(emd, reverse=True)
    assert res.summary["complete"] is False


def fkhw(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fkhw", *args], capture_output=True, text=True, cwd=cwd)


def test_bad_site_ids_are_refused_with_the_file_named(bol_sites, tmp_path):
    sites = tmp_path / "sites.txt"
    sites.write_text("1\n2\n99999\n")
    r = fkhw("campaign", "--sites", str(sites), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "sites.txt" in r.stderr and "99999" in r.stderr and f"0 .. {bol_sites - 1}" in r.stderr


def test_more_inputs_than_the_data_holds_is_refused(tmp_path):
    r = fkhw("campaign", "--inputs", "100000", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--inputs 100000" in r.stderr


def test_an_unwritable_out_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = fkhw("campaign", "--out", str(blocker / "sub"))
    assert r.returncode == 2 and "--out" in r.stderr and "cannot write" in r.stderr


def test_cli_campaign_on_a_site_list_writes_all_outputs_and_figure(tmp_path):
    sites = tmp_path / "sites.csv"
    sites.write_text("site\n0\n5\n10715\n")
    r = fkhw("campaign", "--sites", str(sites), "--inputs", "8", "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert [int(x["site"]) for x in read_csv(tmp_path / "o" / "campaign.csv")] == [0, 5, 10715]
    assert (tmp_path / "o" / "figure1.png").stat().st_size > 10000
    assert "TMR overhead" in r.stdout and "campaign[software]" in r.stderr


def test_upsets_on_a_model_with_other_widths_equal_qkeras(trained_model_dir):
    """The software level's shortcuts (rank-one accumulator updates, one moved
    conv channel carried into the dense layer) on 6-bit weights and an 8-bit latent."""
    from fkhw.levels.qkeras import QKerasLevel

    bundle = load_model(str(trained_model_dir))
    work = make_workload(bundle, None, 48, 2)
    space = SiteSpace.of(bundle.ir)
    tn, _, bit = space.locate(np.arange(space.n_sites))
    rng = np.random.default_rng(4)
    sample = np.array(sorted({int(rng.choice(np.flatnonzero((tn == k) & (bit == b))))
                              for k in range(len(space.tensors)) for b in range(3)}))
    got = SoftwareLevel(bundle.ir).run(sample, work.inputs)
    want = QKerasLevel(bundle).run(sample, work.inputs)
    assert int((got != want).sum()) == 0
    assert np.any(want != QKerasLevel(bundle).golden(work.inputs)[None])
