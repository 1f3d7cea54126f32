"""Damage metrics by name (fkhw.damage.metrics): each metric on cases with known
answers, then through a real campaign on the digits example, where every
site's accuracy_norm is checked against an independent recount with the
integer engine on the flipped model."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest

from fkhw.model import engine
from fkhw.campaign.run import CampaignError, CampaignSpec, run_campaign
from fkhw.campaign.files import damage_column, read_summary, read_table
from fkhw.damage.meter import DamageMeter
from fkhw.damage.metrics import METRICS, MetricError, get_metric, pred_changed, scorer
from fkhw.model.bundle import load_model
from fkhw.model.files import MODELS_DIR
from fkhw.faults.sites import SiteSpace, flip

DIGITS = MODELS_DIR / "digits"
DATA = DIGITS / "data.npz"

# four vectors, three classes, outputs as codes with 1 fractional bit
BASE = np.array([[6, 1, 0], [0, 5, 1], [1, 0, 4], [3, 2, 0]])  # top-1: 0, 1, 2, 0
LABELS = np.array([0, 1, 2, 1])  # the last vector is wrong fault-free: accuracy 3/4


def _meter(name, labels=None, baseline=BASE, frac=1):
    return DamageMeter(None, np.ones((baseline.shape[0], 1)), baseline, frac,
                       score=scorer(get_metric(name), baseline, frac, labels))


def test_the_registry_names_each_metric_and_its_column():
    assert {n: get_metric(n).column for n in METRICS} == {"emd": "emd_norm", "accuracy": "accuracy_norm",
                                                          "mse": "mse_norm"}
    assert get_metric("accuracy").needs_labels and not get_metric("mse").needs_labels
    with pytest.raises(MetricError, match="unknown metric"):
        get_metric("f1")


def test_accuracy_norm_is_one_plus_the_loss_of_top1_accuracy():
    m = _meter("accuracy", LABELS)
    np.testing.assert_array_equal(m.baseline_emd, np.ones(4))  # fault-free: 1 everywhere
    faulty = np.stack([BASE, BASE, BASE])
    faulty[0, 0] = [0, 6, 0]  # a right answer turned wrong: 3/4 -> 2/4 correct
    faulty[1, 3] = [0, 9, 0]  # the wrong one turned right: 3/4 -> 4/4
    faulty[2, 0] = [6, 5, 0]  # output changed, prediction did not
    d = m.measure(faulty)
    np.testing.assert_allclose(d.emd / m.baseline_emd.mean(), [1.25, 0.75, 1.0])
    np.testing.assert_array_equal(d.n_changed, [1, 1, 1])
    # the fraction of predictions that differ from the fault-free ones
    indptr = np.array([0, 1, 2, 3])
    changed = np.array([[0, 6, 0], [0, 9, 0], [6, 5, 0]])
    np.testing.assert_allclose(pred_changed(BASE, indptr, np.array([0, 3, 0]), changed, np.array([4, 4, 4])),
                               [0.25, 0.25, 0.0])


def test_mse_against_targets_is_relative_to_the_fault_free_mse():
    targets = np.array([[3.0, 0.0], [0.0, 2.0]])
    base = np.array([[8, 0], [0, 4]])  # frac 1: outputs [4, 0], [0, 2]: squared errors 1 and 0 -> mean 0.5
    m = _meter("mse", targets, base)
    np.testing.assert_allclose(m.baseline_emd, [0.5, 0.0])
    faulty = np.array([[[8, 0], [0, 8]]])  # second vector [0, 4]: error (0 + 4) / 2 = 2
    assert m.measure(faulty).emd[0] / m.baseline_emd.mean() == pytest.approx((0.5 + 2.0) / 2 / 0.25)


def test_mse_without_targets_is_one_plus_mse_over_the_outputs_mean_square():
    base = np.array([[2, 0], [0, 4]])  # frac 1: [1, 0], [0, 2]: mean square (0.5 + 2) / 2 = 1.25
    m = _meter("mse", None, base)
    np.testing.assert_allclose(m.baseline_emd, [1.25, 1.25])
    faulty = np.array([[[4, 0], [0, 4]]])  # first vector [2, 0]: squared error (1 + 0) / 2 = 0.5
    assert m.measure(faulty).emd[0] / m.baseline_emd.mean() == pytest.approx(1 + (0.5 / 2) / 1.25)


def test_a_metric_that_needs_labels_is_refused_without_them():
    from fkhw.damage.metrics import check_labels

    with pytest.raises(MetricError, match="needs --labels"):
        check_labels(get_metric("accuracy"), None, 10)
    with pytest.raises(MetricError, match="class 10 at row 1 is outside"):
        check_labels(get_metric("accuracy"), np.array([3, 10]), 10)
    np.testing.assert_array_equal(check_labels(get_metric("accuracy"), np.eye(3)[[2, 0]], 3), [2, 0])


@pytest.fixture
def user_metrics(tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(
        "import numpy as np\n"
        "def l1(outputs, labels, baseline):\n"
        "    return np.abs(outputs - baseline).sum(axis=1) + 1.0\n"
        "def boom(outputs, labels, baseline):\n"
        "    raise RuntimeError('no\\nway')\n"
        "def nan(outputs, labels, baseline):\n"
        "    return np.full(outputs.shape[0], np.nan)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("my_metrics", None)


def test_a_user_metric_is_called_with_outputs_labels_and_fault_free_outputs(user_metrics):
    m = _meter("my_metrics:l1", None, BASE)
    assert get_metric("my_metrics:l1").column == "l1_norm"
    np.testing.assert_allclose(m.baseline_emd, np.ones(4))
    faulty = BASE.copy()[None]
    faulty[0, 2] = [1, 0, 0]  # |1-1| + |0| + |0-4| = 4 halves = 2 -> 3
    assert m.measure(faulty).emd[0] == pytest.approx((1 + 1 + 3 + 1) / 4)


@pytest.mark.parametrize("name, match", [("my_metrics:boom", "raised RuntimeError: no way"),
                                         ("my_metrics:nan", "returned nan for vector 0"),
                                         ("my_metrics:absent", "has no function 'absent'"),
                                         ("no_such_module_xyz:f", "cannot import no_such_module_xyz")])
def test_a_user_metric_that_fails_is_one_line(user_metrics, name, match):
    with pytest.raises(MetricError, match=match) as e:
        _meter(name, None, BASE)
    assert "\n" not in str(e.value)


# --- through a campaign -------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_model(str(DIGITS))


@pytest.fixture(scope="module")
def accuracy_campaign(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("acc")
    spec = CampaignSpec(str(DIGITS), n_inputs=48, seed=3, data=str(DATA), labels=str(DATA), metric="accuracy",
                        stop_after=600, order="random")
    return run_campaign(spec, digits, out, quiet=True)


def test_every_accuracy_norm_is_the_accuracy_lost_on_the_flipped_model(digits, accuracy_campaign):
    out = accuracy_campaign.out
    summary = read_summary(out)
    table = read_table(out, summary)
    assert damage_column(summary) == "accuracy_norm" == table.column
    with np.load(out / "outputs.npz") as z:
        codes, labels = z["inputs"], z["labels"]
    space = SiteSpace.of(digits.ir)
    right_ff = engine.forward(digits.ir, codes).argmax(axis=1) == labels
    assert summary["fault_free_accuracy"] == pytest.approx(right_ff.mean())
    rows = list(csv.DictReader((out / "campaign.csv").open()))
    lost, differs = [], []
    for r in rows:
        pred = engine.forward(flip(digits.ir, space, int(r["site"])), codes).argmax(axis=1)
        lost.append(1 + right_ff.mean() - (pred == labels).mean())
        differs.append((pred != engine.forward(digits.ir, codes).argmax(axis=1)).mean())
    np.testing.assert_allclose(table.damage, lost, rtol=0, atol=1e-12)
    np.testing.assert_allclose([float(r["pred_changed"]) for r in rows], differs, rtol=0, atol=1e-12)
    assert (table.damage > 1).sum() >= 10 and (table.damage < 1).sum() >= 1  # faults that cost and that help


def test_readers_read_the_metrics_column_and_interval(accuracy_campaign):
    table = read_table(accuracy_campaign.out, read_summary(accuracy_campaign.out))
    hi = table.number("emd_norm_hi")  # EMD-era readers get the metric's own interval
    assert (hi >= table.damage).all() and (hi > table.damage).any()
    header = (accuracy_campaign.out / "campaign.csv").read_text().splitlines()[0].split(",")
    assert header == ["site", "layer", "tensor", "index", "bit", "damage", "accuracy_norm", "n_changed",
                      "accuracy_norm_lo", "accuracy_norm_hi", "pred_changed"]
    s = json.loads((accuracy_campaign.out / "summary.json").read_text())
    assert s["spec"]["metric"] == "accuracy" and "baseline_emd" not in s


def test_the_emd_metric_on_array_inputs_is_refused(digits, tmp_path):
    from fkhw.model.files import ModelFileError

    with pytest.raises(ModelFileError, match="has no decoder: EMD needs one"):
        run_campaign(CampaignSpec(str(DIGITS), data=str(DATA), metric="emd"), digits, tmp_path / "x")
    econt = load_model("econt-bol")
    with pytest.raises(CampaignError, match="compares HGCAL trigger cells, which an array file does not hold"):
        run_campaign(CampaignSpec("econt-bol", data=str(DATA), metric="emd"), econt, tmp_path / "x")
    with pytest.raises(CampaignError, match="needs --labels"):
        run_campaign(CampaignSpec(str(DIGITS), data=str(DATA), metric="accuracy"), digits, tmp_path / "x")
