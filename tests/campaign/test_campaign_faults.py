"""Campaigns of every fault kind (issue 14), as a specification: faults are
data (fkhw.faults.space), the table is keyed by fault id, the damage of a fault is
measured over the window slots it touches (fkhw/damage/meter.py), nothing is
skipped, and a folder resumes and refuses like a single-upset campaign.

Runs at the software level on the small non-ECON-T model; sizes come from
its flip-flop space, never from constants.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from fkhw.campaign.agreement import Campaign, compare
from fkhw.campaign.run import FAULT_CSV_COLUMNS, CampaignError, CampaignSpec, make_workload, run_campaign
from fkhw.damage.meter import DamageError, DamageMeter
from fkhw.faults.software import simulate
from fkhw.faults.space import FlipFlopSpace, Observed, read_faults_file
from fkhw.levels.software import SoftwareLevel
from fkhw.model.bundle import load_model
from fkhw.campaign.outputs import CampaignOutputs

N = 8  # window vectors


@pytest.fixture(scope="module")
def bundle(small_model_dir):
    return load_model(str(small_model_dir))


@pytest.fixture(scope="module")
def space(bundle):
    return FlipFlopSpace.of(bundle.ir)


def spec(bundle, faults="seu", **kw):
    return CampaignSpec(model=bundle.name, n_inputs=N, faults=faults, **kw)


@pytest.fixture(scope="module")
def pipeline(bundle, tmp_path_factory):
    return run_campaign(spec(bundle, "pipeline"), bundle, tmp_path_factory.mktemp("pipe"), quiet=True)


@pytest.fixture(scope="module")
def mbu2(bundle, tmp_path_factory):
    return run_campaign(spec(bundle, "mbu:2"), bundle, tmp_path_factory.mktemp("mbu"), quiet=True)


def table(folder) -> list:
    with (folder / "campaign.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_pipeline_campaign_has_one_row_per_flip_flop_and_window_cycle(pipeline, space):
    rows = table(pipeline.out)
    assert list(rows[0]) == FAULT_CSV_COLUMNS
    n_ff = space.counts()["pipeline"] + space.counts()["control"]
    assert len(rows) == n_ff * N and [int(r["fault"]) for r in rows] == list(range(n_ff * N))
    # the faults it ran are written beside it, as a faults file
    fs = read_faults_file(pipeline.out / "faults.csv")
    assert len(fs) == len(rows) and set(fs.ff.tolist()) == set(range(space.sites.n_sites, space.first_replica))
    assert {r["classes"] for r in rows} == {"pipeline", "control"}


def test_a_transient_is_measured_on_the_one_vector_it_touches(pipeline, bundle, space):
    """emd_norm of a pipeline upset = EMD of its slot's output over that
    slot's fault-free EMD: not diluted by the N - 1 vectors it cannot reach."""
    work = make_workload(bundle, None, N, 0)
    meter = DamageMeter(bundle.require_decoder(), work.charges, SoftwareLevel(bundle.ir).golden(work.inputs),
                        bundle.ir.output_spec.frac)
    rows = table(pipeline.out)
    fs = read_faults_file(pipeline.out / "faults.csv")
    assert all(int(r["n_touched"]) == 1 for r in rows)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(fs), 40, replace=False).tolist():
        latent, lost, extra = simulate(bundle.ir, space, fs.fault(i), work.inputs)
        slot = int(fs.cycle[i]) - space.stage_of(int(fs.ff[i])).stage
        emd = meter._emd(np.array([slot]), latent[slot:slot + 1])[0]
        r = rows[i]
        assert float(r["emd"]) == pytest.approx(emd, rel=1e-12)
        assert float(r["emd_norm"]) == pytest.approx(emd / meter.baseline_emd[slot], rel=1e-12)
        assert int(r["lost"]) == int(lost.sum()) and int(r["extra"]) == extra


def test_a_dropped_valid_flag_is_a_lost_output_and_counts_as_degraded(pipeline):
    rows = table(pipeline.out)
    control = [r for r in rows if r["classes"] == "control"]
    assert control and all(int(r["lost"]) == 1 for r in control)
    s = json.loads((pipeline.out / "summary.json").read_text())
    c = s["classes"]["control"]
    assert c["faults"] == len(control) and c["with_lost_outputs"] == len(control)
    for t in c["degraded"].values():  # whatever its EMD, a lost output is damage
        assert t["faults"] == len(control) and t["fraction"] == 1.0


def test_summary_counts_follow_from_the_table(pipeline, mbu2):
    for res in (pipeline, mbu2):
        rows = table(res.out)
        s = json.loads((res.out / "summary.json").read_text())
        assert s["faults"]["kind"] in ("pipeline", "mbu:2") and s["n_faults"] == len(rows) and s["complete"]
        for name, c in s["classes"].items():
            mine = [r for r in rows if name == "all" or r["classes"] == name]
            emd_norm = np.array([float(r["emd_norm"]) for r in mine])
            bad = np.array([int(r["lost"]) + int(r["extra"]) > 0 for r in mine])
            assert c["faults"] == len(mine)
            assert c["mean_emd_norm"] == pytest.approx(emd_norm.mean())
            lo, hi = c["mean_emd_norm_interval"]
            assert lo <= c["mean_emd_norm"] <= hi
            for t in c["degraded"].values():
                k = int(((emd_norm > t["threshold"]) | bad).sum())
                assert t["faults"] == k and t["interval"][0] <= k / len(mine) <= t["interval"][1]


def test_a_parameter_mbu_at_cycle_0_is_measured_on_every_vector(mbu2, bundle, space):
    rows = table(mbu2.out)
    widths = [t.fmt.bits for t in space.sites.tensors]
    assert len(rows) == sum(t.size * (t.fmt.bits - 1) for t in space.sites.tensors)
    assert all(int(r["n_touched"]) == N and int(r["lost"]) == 0 and int(r["n_upsets"]) == 2 for r in rows)
    assert max(widths) >= 2
    # the recorded outputs are the fault model's, fault by fault
    z = CampaignOutputs.load(mbu2.out)
    work = make_workload(bundle, None, N, 0)
    for i in np.random.default_rng(1).choice(len(rows), 25, replace=False).tolist():
        latent, _, _ = simulate(bundle.ir, space, z.fault_set.fault(i), work.inputs)
        assert np.array_equal(z.latent([i])[0], latent)


def test_faults_csv_given_back_as_a_faults_file_gives_the_same_damage(mbu2, bundle, tmp_path):
    again = run_campaign(CampaignSpec(model=bundle.name, n_inputs=N, faults_file=str(mbu2.out / "faults.csv")),
                         bundle, tmp_path, quiet=True)
    a, b = table(mbu2.out), table(again.out)
    assert [r["emd_norm"] for r in a] == [r["emd_norm"] for r in b]
    ag = compare(Campaign.load(mbu2.out), Campaign.load(again.out))
    assert ag.common_sites == len(a) and ag.disagreeing_sites == [] and ag.kind == "mbu:2 / file"


def test_agreement_sees_a_dropped_valid_flag(pipeline, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(pipeline.out, bad)
    z = dict(np.load(bad / "outputs.npz"))
    rows = table(pipeline.out)
    i = next(k for k, r in enumerate(rows) if r["classes"] == "pipeline")
    # fault i did not drop its slot's valid; pretend the other level did
    z["lost_module"] = np.insert(z["lost_module"], z["lost_indptr"][i], 0)
    z["lost_indptr"][i + 1:] += 1
    np.savez(bad / "outputs.npz", **z)
    ag = compare(Campaign.load(pipeline.out), Campaign.load(bad))
    assert ag.disagreeing_sites == [int(rows[i]["fault"])] and ag.mismatching_lost == 1
    assert ag.mismatching_values == 0


class InterruptAfter:
    """A level that stops the campaign (like a kill) after ``n`` chunks."""

    def __init__(self, level, n):
        self.level, self.n, self.name = level, n, level.name

    def golden(self, inputs):
        return self.level.golden(inputs)

    def run_faults(self, fs, inputs, progress=None):
        if self.n == 0:
            raise KeyboardInterrupt
        self.n -= 1
        return self.level.run_faults(fs, inputs)


def test_an_interrupted_campaign_of_another_kind_resumes_to_the_same_files(pipeline, bundle, tmp_path):
    s = spec(bundle, "pipeline", chunk=50)
    with pytest.raises(KeyboardInterrupt):
        run_campaign(s, bundle, tmp_path, level=InterruptAfter(SoftwareLevel(bundle.ir), 3), quiet=True)
    assert len(list((tmp_path / ".partial").glob("chunk_*.npz"))) == 3
    ran = []

    class Counting(SoftwareLevel):
        def run_faults(self, fs, inputs, progress=None):
            ran.append(fs.ids.copy())
            return super().run_faults(fs, inputs)

    run_campaign(s, bundle, tmp_path, level=Counting(bundle.ir), quiet=True)
    redone = np.concatenate(ran)
    assert redone.size == len(table(pipeline.out)) - 150 and np.intersect1d(redone, np.arange(150)).size == 0
    for name in ("campaign.csv", "faults.csv", "summary.json", "outputs.npz"):
        assert (tmp_path / name).read_bytes() == (pipeline.out / name).read_bytes(), name
    assert not (tmp_path / ".partial").exists()


def test_the_fault_set_is_part_of_the_campaign_identity(bundle, tmp_path):
    run_campaign(spec(bundle, "accumulate:2", samples=5), bundle, tmp_path, quiet=True)
    for other in (spec(bundle, "accumulate:2", samples=6), spec(bundle, "accumulate:3", samples=5),
                  spec(bundle, "pipeline", cycle=2), spec(bundle, "seu")):
        with pytest.raises(CampaignError, match="holds a finished campaign with other arguments"):
            run_campaign(other, bundle, tmp_path, quiet=True)
    again = run_campaign(spec(bundle, "accumulate:2", samples=5), bundle, tmp_path, quiet=True)
    assert again.summary["n_faults"] == 5


class OutsideTheTimingModel(SoftwareLevel):
    """A broken level: a pipeline upset that changes a slot it cannot reach."""

    def run_faults(self, fs, inputs, progress=None):
        seen = super().run_faults(fs, inputs)
        latent = seen.latent.copy()
        slot = (int(fs.cycle[0]) - FlipFlopSpace.of(self.model).stage_of(int(fs.ff[0])).stage + 1) % latent.shape[1]
        latent[0, slot] += 1
        return Observed(latent, seen.lost, seen.extra)


def test_an_output_changed_outside_the_touched_slots_is_an_error_not_averaged_in(bundle, tmp_path):
    with pytest.raises(DamageError, match="fault 0 changed window slot"):
        run_campaign(spec(bundle, "pipeline", cycle=3), bundle, tmp_path, level=OutsideTheTimingModel(bundle.ir),
                     quiet=True)
    assert not (tmp_path / "campaign.csv").exists()


def test_a_level_that_cannot_run_a_kind_is_refused_before_any_work(bundle, tmp_path):
    """The C-sim holds parameters only and has no clock: pipeline upsets and
    upsets at a later cycle are refused by name before anything is built."""
    for kind, cycle in (("pipeline", None), ("mbu:2", 3)):
        out = tmp_path / f"{kind}_{cycle}"
        with pytest.raises(CampaignError, match=f"--level hls .* cannot run --faults {kind}"):
            run_campaign(CampaignSpec(model=bundle.name, level="hls", n_inputs=N, faults=kind, cycle=cycle), bundle,
                         out, quiet=True)
        assert not out.exists()


def test_stop_after_keeps_the_first_faults(bundle, mbu2, tmp_path):
    res = run_campaign(spec(bundle, "mbu:2", stop_after=7), bundle, tmp_path, quiet=True)
    assert [int(r["fault"]) for r in table(tmp_path)] == list(range(7))
    assert res.summary["complete"] is False and res.summary["faults"]["n_kind"] == len(table(mbu2.out))
    assert [r["emd_norm"] for r in table(tmp_path)] == [r["emd_norm"] for r in table(mbu2.out)[:7]]


def test_a_single_fault_set_runs_like_a_seu_site(bundle, tmp_path):
    """A faults file of single parameter upsets at cycle 0 is today's seu,
    keyed by fault: the same emd_norm per site."""
    seu = run_campaign(spec(bundle, stop_after=30), bundle, tmp_path / "seu", quiet=True)
    path = tmp_path / "singles.json"
    path.write_text(json.dumps([{"fault": int(s), "upsets": [[int(s), 0]]} for s in seu.sites]))
    f = run_campaign(CampaignSpec(model=bundle.name, n_inputs=N, faults_file=str(path)), bundle, tmp_path / "f",
                     quiet=True)
    assert np.array_equal(f.sites, seu.sites)
    np.testing.assert_allclose(f.emd_norm, seu.emd_norm, rtol=1e-14, atol=0)


# --- the selectively hardened design (--tmr) -------------------------------------------------

def test_a_hardened_campaign_masks_single_replicas_and_two_replicas_act_as_the_bit_itself(bundle, space, tmp_path):
    """On the design that triplicates some bits: one upset replica changes
    nothing; two replicas of a bit in one clock give exactly what upsetting
    that bit gives in the plain design (the seu campaign on the same inputs)."""
    from fkhw.faults.space import Hardening

    protect = tuple(range(0, space.sites.n_sites, max(1, space.sites.n_sites // 12)))
    hard = Hardening(protect)
    single = run_campaign(spec(bundle, "replicas", hardening=hard), bundle, tmp_path / "r", quiet=True)
    assert len(single.sites) == 2 * len(protect)
    assert np.all(single.emd_norm == 1.0), "a single replica upset is masked by the voter"
    pairs = run_campaign(spec(bundle, "replica-pairs", hardening=hard), bundle, tmp_path / "p", quiet=True)
    seu = run_campaign(spec(bundle, sites=protect), bundle, tmp_path / "s", quiet=True)
    by_site = dict(zip(seu.sites.tolist(), seu.emd_norm.tolist()))
    fs = read_faults_file(pairs.out / "faults.csv")
    hspace = FlipFlopSpace.of(bundle.ir, protect)

    def protected_site(ff: int) -> int:  # replica A is the parameter bit itself
        return ff if ff < hspace.sites.n_sites else hspace.replica_site(ff)[0]

    site_of = [protected_site(int(fs.ff[fs.indptr[i]])) for i in range(len(fs))]
    assert len(fs) == 3 * len(protect)
    assert [by_site[s] for s in site_of] == pairs.emd_norm.tolist()
    assert max(by_site.values()) > 1.0, "some protected bit must matter, or the comparison shows nothing"
    # a plain campaign refuses replica kinds; the summary names the design
    assert pairs.summary["design"]["protected_bits"] == len(protect)
    with pytest.raises(CampaignError, match="no replicas"):
        run_campaign(spec(bundle, "replicas"), bundle, tmp_path / "plain", quiet=True)


def test_a_tmr_map_of_another_model_is_refused(bundle, tmp_path):
    from fkhw.campaign.run import hardening_from_map

    (tmp_path / "tmr_map.json").write_text(json.dumps({
        "model": "other", "model_digest": "0123456789abcdef", "rule": {}, "campaign": "", "campaign_level": "software",
        "entries": [], "totals": {"all_bits": 1}}))
    with pytest.raises(CampaignError, match="the map is for model other"):
        hardening_from_map(tmp_path, bundle)
