"""The Python API (fkhw.api): cheap to import, the same folders as the
commands, the package's errors (never SystemExit), results that read back."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fkhw
from fkhw.errors import InputError
from fkhw.campaign.agreement import AgreementError
from fkhw.campaign.files import CampaignFileError
from fkhw.campaign.run import CampaignError
from fkhw.levels import LevelError
from fkhw.model.files import ModelFileError
from fkhw.rates.model import RateError
from fkhw.tmr.select import TmrError

ROOT = Path(__file__).resolve().parents[1]
FKHW = Path(sys.executable).parent / "fkhw"


def test_import_fkhw_loads_neither_the_api_nor_tensorflow_until_asked():
    code = ("import sys, fkhw; assert 'fkhw.api' not in sys.modules and 'tensorflow' not in sys.modules "
            "and 'numpy' not in sys.modules, sorted(m for m in sys.modules if m.startswith(('fkhw', 'numpy')));"
            "fkhw.load_model; assert 'fkhw.api' in sys.modules and 'tensorflow' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]


def test_every_exported_name_resolves_and_unknown_names_are_attribute_errors():
    for name in fkhw.__all__:
        assert getattr(fkhw, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        fkhw.no_such_name  # noqa: B018


def test_the_api_thresholds_are_the_campaigns():
    from fkhw.api import DEFAULT_THRESHOLDS
    from fkhw.campaign.run import DEFAULT_THRESHOLDS as CAMPAIGN

    assert tuple(DEFAULT_THRESHOLDS) == tuple(CAMPAIGN)


@pytest.fixture(scope="module")
def model():
    return fkhw.load_model("econt-bol")


@pytest.fixture(scope="module")
def camp(model, tmp_path_factory):
    return fkhw.run_campaign(model, inputs=8, seed=3, out=tmp_path_factory.mktemp("api") / "c")


def test_a_campaign_from_python_is_the_folder_the_command_writes(camp, tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run([str(FKHW), "campaign", "--model", "econt-bol", "--inputs", "8", "--seed", "3", "--out",
                        str(out), "--no-plot"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "campaign.csv").read_bytes() == (camp.folder / "campaign.csv").read_bytes()
    assert json.loads((out / "summary.json").read_text()) == camp.summary
    # either run resumes the other's folder: the same identity
    again = fkhw.run_campaign("econt-bol", inputs=8, seed=3, out=out)
    assert again.summary == camp.summary


def test_the_table_is_campaign_csv_typed(camp, model):
    with (camp.folder / "campaign.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    t = camp.table
    assert list(t.dtype.names) == list(rows[0])
    assert t.shape == (model.n_sites,) and t["site"].dtype.kind == "i" and t["layer"].dtype.kind == "U"
    assert np.array_equal(t["emd_norm"], [float(r["emd_norm"]) for r in rows])
    assert np.array_equal(t["n_changed"], [int(r["n_changed"]) for r in rows])
    assert np.array_equal(camp.sensitive(1.05), np.sort(t["site"][t["emd_norm"] > 1.05]))
    assert fkhw.open_campaign(camp.folder).summary == camp.summary


def test_a_fault_kind_table_keeps_every_column(model, tmp_path):
    c = fkhw.run_campaign(model, inputs=4, faults="mbu:2", stop_after=50, out=tmp_path / "mbu")
    with (c.folder / "campaign.csv").open(newline="") as f:
        header = next(csv.reader(f))
    assert list(c.table.dtype.names) == header and c.table.shape == (50,) and c.kind == "mbu:2"


def test_the_map_is_the_one_the_command_writes(camp, tmp_path):
    tmr = fkhw.select_tmr(camp, threshold=1.05, rule="upper")
    written = tmr.write(tmp_path / "api_tmr")
    r = subprocess.run([str(FKHW), "tmr", "--campaign", str(camp.folder), "--out", str(tmp_path / "cli_tmr"),
                        "--threshold", "1.05", "--rule", "upper", "--no-synth", "--no-prove", "--no-validate"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("tmr_map.csv", "hardened_rtl/fkhw_encoder.v", "annotations/tmrg.cfg"):
        assert (tmp_path / "api_tmr" / name).read_bytes() == (tmp_path / "cli_tmr" / name).read_bytes(), name
    stored = json.loads((tmp_path / "api_tmr" / "tmr_map.json").read_text())
    assert sorted(e["site"] for e in stored["entries"]) == tmr.sites.tolist()
    assert written.report["protected_bits"] == tmr.protected_bits and written.folder == tmp_path / "api_tmr"
    assert tmr.overhead_pct == pytest.approx(stored["totals"]["overhead_pct"])


def test_a_budget_map_and_the_hardened_design(camp, model, tmp_path):
    tmr = fkhw.select_tmr(camp, budget=10)
    assert tmr.protected_bits == 10
    rtl = fkhw.harden(model, tmr.sites, tmp_path / "hardened")
    assert rtl.meta["tmr"] and all(Path(f).is_file() for f in rtl.files)
    hardened = fkhw.run_campaign(model, tmr=tmr, faults="replicas", inputs=4, out=tmp_path / "replicas")
    assert hardened.table.shape == (2 * 10,)  # replicas B and C of each protected bit (A is the register)
    assert (hardened.table["emd_norm"] == 1.0).all()  # a single replica upset is always masked


@pytest.mark.parametrize("call, error", [
    (lambda tmp: fkhw.load_model("no-such-model"), ModelFileError),
    (lambda tmp: fkhw.run_campaign("econt-bol", level="gates", out=tmp / "x"), LevelError),
    (lambda tmp: fkhw.run_campaign("econt-bol", refresh=True, out=tmp / "x"), CampaignError),
    (lambda tmp: fkhw.open_campaign(tmp / "nothing"), CampaignFileError),
    (lambda tmp: fkhw.select_tmr(tmp / "nothing"), CampaignFileError),
    (lambda tmp: fkhw.rate(tmp / "nothing", tmp / "r", check_full_tmr=True), RateError),
    (lambda tmp: fkhw.sim("digits", out=tmp / "s", tmr_threshold=True), InputError),
    (lambda tmp: fkhw.sim("digits", out=tmp / "s", inputs=1.5), InputError),
    (lambda tmp: fkhw.sim("digits", out=tmp / "s", thresold=1.1), InputError),
    (lambda tmp: fkhw.sim("digits", out=tmp / "s", force="tmr_map"), InputError),
])
def test_bad_input_raises_the_packages_errors(call, error, tmp_path):
    with pytest.raises(error) as e:
        call(tmp_path)
    assert isinstance(e.value, ValueError) and not isinstance(e.value, SystemExit)


def test_a_rule_the_campaign_cannot_satisfy_and_a_non_seu_campaign(camp, model, tmp_path):
    with pytest.raises(TmrError):
        fkhw.select_tmr(camp, budget=10 ** 6)
    with pytest.raises(TmrError):
        fkhw.select_tmr(camp, rule="median")
    kinds = fkhw.run_campaign(model, inputs=4, faults="mbu:2", stop_after=5, out=tmp_path / "mbu")
    with pytest.raises(CampaignFileError, match="seu"):
        fkhw.select_tmr(kinds)


def test_campaigns_of_other_inputs_do_not_agree(camp, model, tmp_path):
    other = fkhw.run_campaign(model, inputs=8, seed=4, out=tmp_path / "other")
    with pytest.raises(AgreementError):
        fkhw.agree(camp, other)
    same = fkhw.agree(camp, camp.folder, out=tmp_path / "agreement.json")
    assert same.disagreeing_sites == [] and json.loads((tmp_path / "agreement.json").read_text())["disagreeing"] == 0


def test_rates_from_python(camp, tmp_path):
    tmr = fkhw.select_tmr(camp, threshold=1.05).write(tmp_path / "t")
    r = fkhw.rate(camp, tmp_path / "rate", tmr=tmr, samples=20, scrubs=("1s", "1min"))
    assert set(r.designs) >= {"plain", "selective", "full", "full + refresh"}
    assert (tmp_path / "rate" / "rate.json").is_file()
    plain, full = r.longest_scrub_interval_s("plain"), r.longest_scrub_interval_s("full")
    assert plain is not None and full is not None and full > plain
