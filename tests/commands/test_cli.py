"""Every command the documentation lists (docs/cli.md, "The pieces, one
command each") runs to completion through the installed ``fkhw`` entry
point, with the options it shows, on a small model that is not ECON-T;
each artifact it promises exists and parses.

A command that crashes after doing its work (``fkhw hessian`` once died
writing params.csv with the suite green) fails here. Sizes come from the
model's IR, never from constants.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fkhw.model.data import DEFAULT_DATA
from fkhw.campaign.outputs import CampaignOutputs
from conftest import SMALL_SIM_INPUTS, SMALL_SIM_VALIDATE
from sim_verdict import sim_exit_status

pytestmark = [pytest.mark.verilator, pytest.mark.yosys, pytest.mark.hls]

ROOT = Path(__file__).resolve().parents[2]
FKHW = Path(sys.executable).parent / "fkhw"  # the console script pip installed, not `python -m`
INPUTS = 8
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fkhw(*args, timeout=900, env=None, ok=(0,)) -> subprocess.CompletedProcess:
    r = subprocess.run([str(FKHW), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **env} if env else None)
    assert r.returncode in ok, f"fkhw {' '.join(map(str, args))} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return r


def tmr(*args, out: Path, **kw) -> subprocess.CompletedProcess:
    """`fkhw tmr`: exit status 1 exactly when the held-out check finds the map NOT stable (every file written)."""
    r = fkhw("tmr", *args, "--out", out, ok=(0, 1), **kw)
    validation = json.loads((Path(out) / "tmr_report.json").read_text()).get("validation")
    assert r.returncode == (1 if validation and not validation["stable"] else 0), r.stdout[-2000:]
    return r


def read_csv(path: Path) -> tuple[list, list]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def assert_png(path: Path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000, path


@pytest.fixture(scope="module")
def ir(small_model_dir):
    from fkhw.model.bundle import load_model

    return load_model(str(small_model_dir)).ir


@pytest.fixture(scope="module")
def few_sites(ir, tmp_path_factory) -> Path:
    """Every 9th site: a sample that reaches every tensor and bit position
    of the small model, for the slow levels."""
    path = tmp_path_factory.mktemp("sites") / "few.txt"
    path.write_text("\n".join(str(s) for s in range(0, ir.n_param_bits(), 9)) + "\n")
    return path


def campaign(model_dir, level, out, sites=None):
    args = ["campaign", "--model", model_dir, "--level", level, "--inputs", INPUTS, "--seed", 0, "--out", out]
    if sites is not None:
        args += ["--sites", sites]
    if level != "software":
        args += ["--jobs", 1]
    return fkhw(*args)


@pytest.fixture(scope="module")
def software_campaign(small_model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "campaign_software"
    campaign(small_model_dir, "software", out)
    return out


@pytest.fixture(scope="module")
def rtl_campaign(small_model_dir, few_sites, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "campaign_rtl"
    campaign(small_model_dir, "rtl", out, few_sites)
    return out


@pytest.fixture(scope="module")
def netlist_campaign(small_model_dir, few_sites, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "campaign_netlist"
    campaign(small_model_dir, "netlist", out, few_sites)
    return out


@pytest.fixture(scope="module")
def kind_campaigns(small_model_dir, tmp_path_factory) -> dict:
    """The documented `--faults` campaigns at the software level: kind -> folder."""
    root = tmp_path_factory.mktemp("kinds")
    out = {}
    for kind, extra in (("mbu:2", ()), ("pipeline", ()), ("accumulate:4", ("--samples", 50))):
        out[kind] = root / kind.replace(":", "")
        fkhw("campaign", "--model", small_model_dir, "--inputs", INPUTS, "--faults", kind, *extra, "--out", out[kind])
    return out


@pytest.fixture(scope="module")
def hessian_out(small_model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "hessian"
    fkhw("hessian", "--model", small_model_dir, "--out", out, "--inputs", 64)
    return out


def assert_campaign_folder(out: Path, level: str, n_sites: int, ir):
    header, rows = read_csv(out / "campaign.csv")
    assert {"site", "emd", "emd_norm", "emd_norm_lo", "emd_norm_hi"} <= set(header)
    assert len(rows) == n_sites
    emd_norm = np.array([float(r[header.index("emd_norm")]) for r in rows])
    assert np.isfinite(emd_norm).all() and (emd_norm > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["level"] == level and summary["n_sites"] == n_sites
    assert summary["complete"] is (n_sites == ir.n_param_bits())  # exhaustive, or says it is not
    assert summary["n_param_bits"] == ir.n_param_bits() and summary["baseline_emd"] > 0
    outputs = CampaignOutputs.load(out)
    assert outputs.latent().shape == (n_sites, INPUTS, ir.output_spec.shape[-1])
    lo, hi = (np.array([float(r[header.index(k)]) for r in rows]) for k in ("emd_norm_lo", "emd_norm_hi"))
    assert np.isfinite(lo).all() and (lo <= hi).all()
    assert_png(out / "figure1.png")


# -- one test per command, in the documentation's order ------------------------------------------------

def test_sites_runs_to_completion(small_model_dir, ir, tmp_path):
    fkhw("sites", "--model", small_model_dir, "--out", tmp_path / "sites.csv")
    header, rows = read_csv(tmp_path / "sites.csv")
    assert header == ["site", "layer", "tensor", "index", "bit", "code"]
    assert [int(r[0]) for r in rows] == list(range(ir.n_param_bits()))


def test_sites_runs_to_completion_with_all_flip_flops(small_model_dir, ir, tmp_path):
    from fkhw.rtlgen.emit import generate

    r = fkhw("sites", "--all-flip-flops", "--model", small_model_dir, "--out", tmp_path / "ff.csv")
    header, rows = read_csv(tmp_path / "ff.csv")
    assert header == ["ff", "class", "register", "bit", "site", "stage"]
    # as many as the RTL generator promises Yosys will find (test_rtl_runs_to_completion checks that promise)
    assert len(rows) == generate(ir).meta["flip_flops_expected"]
    assert [int(x[0]) for x in rows] == list(range(len(rows)))
    classes = [x[1] for x in rows]
    assert classes[:ir.n_param_bits()] == ["param"] * ir.n_param_bits()
    assert [int(x[4]) for x in rows[:ir.n_param_bits()]] == list(range(ir.n_param_bits()))
    n_control = classes.count("control")
    assert n_control >= 1 and classes.count("pipeline") == len(rows) - ir.n_param_bits() - n_control
    assert f"{len(rows):,} flip-flops" in r.stdout
    assert f"{ir.n_param_bits():,} param + {classes.count('pipeline'):,} pipeline + {n_control:,} control" in r.stdout


def test_train_runs_to_completion(tmp_path):
    from fkhw.model.bundle import load_model

    out = tmp_path / "model"
    fkhw("train", "--out", out, "--weight-bits", 6, "--epochs", 1, "--max-rows", 300)
    prov = json.loads((out / "train.json").read_text())
    assert prov["config"]["weight_bits"] == 6 and prov["engine_check"]["mismatches"] == 0
    layers = load_model(str(out)).ir.param_layers()
    assert layers and all(layer.kernel_fmt.bits == 6 for layer in layers)


def test_campaign_runs_to_completion_at_each_level(small_model_dir, ir, few_sites, software_campaign,
                                                     rtl_campaign, netlist_campaign, tmp_path):
    assert_campaign_folder(software_campaign, "software", ir.n_param_bits(), ir)
    n_few = len(few_sites.read_text().split())
    assert_campaign_folder(rtl_campaign, "rtl", n_few, ir)
    assert_campaign_folder(netlist_campaign, "netlist", n_few, ir)
    campaign(small_model_dir, "hls", tmp_path / "hls", few_sites)
    assert_campaign_folder(tmp_path / "hls", "hls", n_few, ir)

    # the paper's rule: emd_norm against the fault-free mean over the whole data file
    paper = tmp_path / "paper_rule"
    fkhw("campaign", "--model", small_model_dir, "--inputs", INPUTS, "--out", paper, "--sites", few_sites,
         "--baseline", "data", "--confidence", 0.9)
    assert_campaign_folder(paper, "software", n_few, ir)
    s = json.loads((paper / "summary.json").read_text())
    assert s["baseline"] == "data" and s["confidence"] == 0.9
    assert s["emd_norm_denominator"] != s["baseline_emd"]  # a whole file is not these 8 modules


def assert_fault_campaign(out: Path, kind: str, n_faults: int):
    header, rows = read_csv(out / "campaign.csv")
    assert header[:3] == ["fault", "n_upsets", "classes"] and {"emd_norm", "lost", "extra", "n_touched"} <= set(header)
    assert len(rows) == n_faults
    fheader, frows = read_csv(out / "faults.csv")
    assert fheader[:3] == ["fault", "upsets", "scrub"] and [r[0] for r in frows] == [r[0] for r in rows]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["faults"]["kind"] == kind and summary["n_faults"] == n_faults and summary["complete"]
    assert summary["classes"]["all"]["faults"] == n_faults
    assert CampaignOutputs.load(out).latent().shape[:2] == (n_faults, INPUTS)
    assert_png(out / "damage_by_class.png")


def test_campaign_runs_to_completion_with_every_fault_kind(kind_campaigns, small_model_dir, ir, tmp_path):
    from fkhw.faults.space import FlipFlopSpace

    space = FlipFlopSpace.of(ir)
    tensors = space.sites.tensors
    assert_fault_campaign(kind_campaigns["mbu:2"], "mbu:2", sum(t.size * (t.fmt.bits - 1) for t in tensors))
    counts = space.counts()
    assert_fault_campaign(kind_campaigns["pipeline"], "pipeline", (counts["pipeline"] + counts["control"]) * INPUTS)
    assert_fault_campaign(kind_campaigns["accumulate:4"], "accumulate:4", 50)
    # an explicit list: two upsets of one pipeline element at neighbouring cycles, and a weight bit upset at
    # cycle 3 that the scrub at cycle 6 removes
    faults = tmp_path / "faults.csv"
    first = space.sites.n_sites
    faults.write_text(f"fault,upsets,scrub\n10,{first}@1;{first + 1}@2,\n11,0@3,6\n")
    fkhw("campaign", "--model", small_model_dir, "--inputs", INPUTS, "--faults-file", faults, "--out", tmp_path / "f")
    assert_fault_campaign(tmp_path / "f", "file", 2)
    header, rows = read_csv(tmp_path / "f" / "campaign.csv")
    assert [r[header.index("n_touched")] for r in rows] == ["2", "3"]
    # and a single pipeline cycle
    fkhw("campaign", "--model", small_model_dir, "--inputs", INPUTS, "--faults", "pipeline", "--cycle", 4,
         "--out", tmp_path / "c4")
    assert_fault_campaign(tmp_path / "c4", "pipeline", counts["pipeline"] + counts["control"])


def test_plot_runs_to_completion_on_other_fault_kinds(kind_campaigns, tmp_path):
    r = fkhw("plot", "--campaign", kind_campaigns["pipeline"], "--out", tmp_path / "d.png")
    assert_png(tmp_path / "d.png")
    assert "damage by flip-flop class" in r.stdout


def test_agree_runs_to_completion_on_other_fault_kinds(small_model_dir, kind_campaigns, tmp_path):
    for kind, first in kind_campaigns.items():
        again = tmp_path / kind.replace(":", "")
        extra = ("--samples", 50) if kind.startswith("accumulate") else ()
        fkhw("campaign", "--model", small_model_dir, "--inputs", INPUTS, "--faults", kind, *extra, "--chunk", 64,
             "--no-plot", "--out", again)
        r = fkhw("agree", "--a", first, "--b", again, "--out", tmp_path / "agreement.json")
        a = json.loads((tmp_path / "agreement.json").read_text())
        assert a["kind"] == kind and a["disagreeing"] == 0 and a["baseline_identical"]
        assert a["common_faults"] == json.loads((first / "summary.json").read_text())["n_faults"]
        assert "disagreeing faults: 0" in r.stdout


def test_plot_runs_to_completion(software_campaign, tmp_path):
    fkhw("plot", "--campaign", software_campaign, "--out", tmp_path / "f.png")
    assert_png(tmp_path / "f.png")


def test_hessian_runs_to_completion(hessian_out, ir):
    report = json.loads((hessian_out / "hessian.json").read_text())
    from fkhw.faults.sites import SiteSpace

    n_params = sum(t.size for t in SiteSpace.of(ir).tensors)
    assert report["n_params"] == n_params
    assert {"trace", "eigen", "scores", "settings"} <= set(report)
    header, rows = read_csv(hessian_out / "scores.csv")
    assert header[0] == "site" and set(report["scores"]) <= set(header)
    assert len(rows) == ir.n_param_bits()
    header, rows = read_csv(hessian_out / "params.csv")
    assert header[:2] == ["param", "layer"] and len(rows) == n_params
    assert all(np.isfinite(float(r[header.index("hessian_diag")])) for r in rows)
    assert_png(hessian_out / "figure2.png")


def test_rank_runs_to_completion(software_campaign, hessian_out, ir, tmp_path):
    fkhw("rank", "--campaign", software_campaign, "--scores", hessian_out, "--out", tmp_path / "rank")
    header, rows = read_csv(tmp_path / "rank" / "rank.csv")
    assert {"threshold", "score", "n_sites", "inj_90"} <= set(header)
    assert rows and all(int(r[header.index("n_sites")]) == ir.n_param_bits() for r in rows)
    assert_png(tmp_path / "rank" / "rank.png")
    # against the conservative map (upper end of each bit's interval): never fewer sensitive bits
    fkhw("rank", "--campaign", software_campaign, "--scores", hessian_out, "--out", tmp_path / "upper",
         "--rule", "upper")
    upper_header, upper_rows = read_csv(tmp_path / "upper" / "rank.csv")
    n_sens = header.index("n_sensitive")
    assert all(int(u[n_sens]) >= int(m[n_sens]) for u, m in zip(upper_rows, rows))


def test_hls_runs_to_completion(small_model_dir, tmp_path):
    out = tmp_path / "hls_project"
    r = fkhw("hls", "--model", small_model_dir, "--out", out, "--check")
    project = json.loads((out / "fkhw_project.json").read_text())
    assert project["backend"] == "Vitis" and project["io_type"] == "io_parallel"
    assert (out / "build_prj.tcl").is_file() and (out / "firmware" / "myproject.cpp").is_file()
    assert re.search(r"\b0 mismatched rows\b", r.stdout), r.stdout


def test_rtl_runs_to_completion(small_model_dir, ir, tmp_path):
    out = tmp_path / "rtl"
    fkhw("rtl", "--model", small_model_dir, "--out", out, "--lint", "--synth", "--no-abc")
    meta = json.loads((out / "fkhw_encoder.json").read_text())
    assert meta["n_param_bits"] == ir.n_param_bits()
    header, rows = read_csv(out / "regmap.csv")
    assert header == ["site", "reg", "bit"] and len(rows) == ir.n_param_bits()
    assert "%Warning" not in (out / "lint.log").read_text() and "%Error" not in (out / "lint.log").read_text()
    synth = json.loads((out / "synth_report.json").read_text())
    assert synth["flip_flops"] == meta["flip_flops_expected"] and synth["match"]


def test_agree_runs_to_completion(small_model_dir, few_sites, rtl_campaign, netlist_campaign, tmp_path):
    software = tmp_path / "software_few"
    campaign(small_model_dir, "software", software, few_sites)
    for other in (rtl_campaign, netlist_campaign):
        fkhw("agree", "--a", software, "--b", other, "--out", tmp_path / "agreement.json")
        a = json.loads((tmp_path / "agreement.json").read_text())
        assert a["common_sites"] == len(few_sites.read_text().split())
        assert a["disagreeing"] == 0 and a["baseline_identical"], other


def _assert_waveform_holds_registers_and_accumulators(probe, ir, meta) -> None:
    """What a replay's waveform traces (fkhw/rtlgen/tb/hdl/fkhw_tb_waves.vlt):
    every register of every register file and pipeline stage and each
    layer's dot-product accumulators, and nothing inside a dot product."""
    names = set(probe.vars)
    for rf in meta["register_files"]:
        regs = {n for n in names if n.startswith(f"fkhw_tb.u_enc.{rf['instance']}.mem.[")}
        assert len(regs) == rf["count"], rf["instance"]
    for st in meta["stages"]:
        assert f"fkhw_tb.u_enc.{st['instance']}.q" in names, st["instance"]
    for layer in ir.layers:
        if getattr(layer, "kernel", None) is not None:
            assert f"fkhw_tb.u_enc.u_{layer.name}.acc" in names, layer.name
    assert not [n for n in names if ".u_dot." in n]


@pytest.mark.timeout(2700)  # may make conftest.small_sim, a whole fkhw sim in a new user's caches
def test_replay_runs_to_completion(sim_run, ir, tmp_path):
    """Three rows of `fkhw sim`'s RTL campaign (its three most damaging
    sites) replayed with a waveform: each replay equals its row, and the
    waveform, read with pywellen, holds the upset at its recorded cycle
    (marker high, the site's register flipping its bit) and out_data
    differing from the fault-free output in exactly the modules the
    campaign recorded, with their codes."""
    from fkhw.campaign.files import read_summary, read_table
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.levels.rtl import rtl_register
    from fkhw.rtlgen.emit import generate
    from fkhw.rtlgen.sim import unpack_hex
    from wave_probe import Probe

    rtl_campaign = sim_run[0] / "campaign_rtl"
    table = read_table(rtl_campaign, read_summary(rtl_campaign))
    sites = table.site[np.argsort(-table.damage, kind="stable")[:3]].tolist()
    outs = CampaignOutputs.load(rtl_campaign)
    meta = generate(ir).meta
    space, port = FlipFlopSpace.from_meta(ir, meta), meta["ports"]["out_data"]
    for site in sites:
        out, waves = tmp_path / f"site{site}", tmp_path / f"site{site}.vcd"
        r = fkhw("replay", "--campaign", rtl_campaign, "--site", site, "--waves", waves, "--out", out)
        rep = json.loads((out / "replay.json").read_text())
        assert rep["matches"] and rep["waves_match"] and rep["mismatched_modules"] == [], r.stdout
        assert_png(out / "replay.png")
        row = int(np.flatnonzero(outs.sites == site)[0])
        recorded = outs.module[outs.indptr[row]:outs.indptr[row + 1]].tolist()
        assert rep["changed_modules"] == sorted(recorded)
        probe = Probe(waves)
        _assert_waveform_holds_registers_and_accumulators(probe, ir, meta)
        (t, frame, cycle), = probe.upsets()
        assert (frame, cycle) == (0, 0)  # a seu row: the upset right after edge 0 of its only frame
        reg = rtl_register(space, meta, site)
        assert probe.before("fkhw_tb." + reg.name, t) ^ probe.at("fkhw_tb." + reg.name, t) == 1 << reg.bit
        seen = probe.differing(0, SMALL_SIM_INPUTS)
        assert sorted(seen) == sorted(recorded)
        codes = unpack_hex([format(seen[m], f"0{(port['bits'] + 3) // 4}x") for m in sorted(seen)],
                           port["elements"], port["element_bits"], port["signed"])
        assert np.array_equal(codes, outs.latent([row])[0][sorted(seen)].reshape(len(seen), -1))


def test_tmr_runs_to_completion(small_model_dir, software_campaign, ir, tmp_path):
    out = tmp_path / "tmr"
    tmr("--campaign", software_campaign, "--threshold", 1.0, "--no-synth", "--jobs", 1, out=out)
    report = json.loads((out / "tmr_report.json").read_text())
    tmr_map = json.loads((out / "tmr_map.json").read_text())
    assert report["all_bits"] == ir.n_param_bits() and 0 < report["protected_bits"] < ir.n_param_bits()
    assert len(tmr_map["entries"]) == report["protected_bits"]
    header, rows = read_csv(out / "tmr_map.csv")
    assert "site" in header and len(rows) == report["protected_bits"]
    proof = json.loads((out / "proof.json").read_text())
    assert proof["ok"] and proof["replica_upsets"] == 3 * report["protected_bits"]
    for artifact in ("hardened_rtl/regmap.csv", "annotations/README.md", "tradeoff.png"):
        assert (out / artifact).is_file(), artifact

    # the conservative rule, checked on another sample; and the search for a stable map
    upper = tmp_path / "tmr_upper"
    other_sample = tmp_path / "other_sample.csv"
    lines = DEFAULT_DATA.read_text().splitlines()
    other_sample.write_text("\n".join([lines[0], *lines[-1000:]]) + "\n")
    tmr("--campaign", software_campaign, "--threshold", 1.0, "--rule", "upper",
        "--validate-data", other_sample, "--validate-inputs", 256, "--no-synth", "--no-prove", out=upper)
    upper_report = json.loads((upper / "tmr_report.json").read_text())
    assert upper_report["protected_bits"] >= report["protected_bits"]
    assert upper_report["validation"]["modules"] == 256 and 0 <= upper_report["validation"]["coverage"] <= 1
    auto = tmp_path / "tmr_auto"
    r = tmr("--inputs", "auto", "--model", small_model_dir, "--threshold", 1.05,
            "--rule", "upper", "--max-inputs", 64, "--validate-inputs", 256, "--no-synth", "--no-prove", out=auto)
    auto_report = json.loads((auto / "tmr_report.json").read_text())
    assert [st["inputs"] for st in auto_report["auto"]["steps"]][0] == 32 and "held-out" in r.stdout

    budget = tmp_path / "tmr_budget"
    tmr("--campaign", software_campaign, "--budget", "5%", "--no-synth", "--no-prove", out=budget)
    report = json.loads((budget / "tmr_report.json").read_text())
    assert report["protected_bits"] == round(0.05 * ir.n_param_bits())


def test_rate_runs_to_completion(software_campaign, kind_campaigns, ir, tmp_path):
    """`fkhw rate`: plain, selective and full TMR (with and without refresh)
    against the default flux and cross-section, transients from the pipeline
    campaign, and Monte Carlo scenarios replayed on the plain and hardened RTL."""
    tmr = tmp_path / "tmr"
    fkhw("tmr", "--campaign", software_campaign, "--out", tmr, "--threshold", 1.01, "--no-synth", "--no-prove",
         "--no-validate")
    out = tmp_path / "rate"
    r = fkhw("rate", "--campaign", software_campaign, "--tmr", tmr, "--transients", kind_campaigns["pipeline"],
             "--k-max", 3, "--samples", 60, "--check-rtl", 30, "--scrub", "1s,1h", "--protection", "secded:8i",
             "--out", out, timeout=1500)
    assert "cross-section must come from your technology" in r.stdout
    res = json.loads((out / "rate.json").read_text())
    assert set(res["designs"]) == {"plain", "selective", "selective + refresh", "full", "full + refresh", "secded:8i"}
    assert all(v["disagreeing"] == 0 and v["scenarios"] >= 10 for v in res["rtl_check"].values())
    # the design of SEC-DED words replays its wrong-word scenarios on its own RTL too, and they land
    assert set(res["rtl_check"]) == {"plain", "selective", "selective + refresh", "secded:8i"}
    assert res["rtl_check"]["secded:8i"]["changing_outputs"] > 0
    plain, sel = res["designs"]["plain"], res["designs"]["selective"]
    assert plain["unprotected_param_bits"] == ir.n_param_bits()
    for p, s in zip(plain["at_scrub_interval"], sel["at_scrub_interval"]):
        assert p["p_upper"] >= s["p_upper"] > 0  # protecting bits never raises the risk
    assert {c for c, _ in plain["upsets_per_hour"].items()} == {"param", "pipeline", "control"}
    assert_png(out / "rate.png")


def test_protect_runs_to_completion(software_campaign, ir, tmp_path):
    """`fkhw protect`: every candidate's failure probability at the scrub
    interval and its synthesised area; the choice is the cheapest design that
    meets the target, and a target nothing meets is one line naming the
    best design, with the table written."""
    import csv

    out = tmp_path / "protect"
    r = fkhw("protect", "--campaign", software_campaign, "--scrub", "10min", "--target", 0.5, "--protection",
             "secded", "--protection", "secded:8", "--protection", "parity:8", "--k-max", 2, "--samples", 30,
             "--out", out, timeout=1500)
    res = json.loads((out / "protect.json").read_text())
    rows = {row["design"]: row for row in res["designs"]}
    assert set(rows) == {"plain", "full", "full + refresh", "secded", "secded:8", "parity:8"}
    # parity corrects nothing: the plain design's P(degraded), more flip-flops, and a flag: P(undetected) below it
    parity, plain = rows["parity:8"], rows["plain"]
    assert parity["kind"] == "parity" and parity["p_upper"] == plain["p_upper"] == plain["p_undetected_upper"]
    assert parity["flip_flops"] > plain["flip_flops"] and parity["p_undetected_upper"] < parity["p_upper"]
    assert rows["secded"]["p_undetected_upper"] is None
    feasible = [row for row in rows.values() if row["meets_target"]]
    chosen = min(feasible, key=lambda row: row["transistors"])
    assert res["chosen"] == chosen["design"] and rows[res["chosen"]]["chosen"] and "<- chosen" in r.stdout
    assert rows["full"]["flip_flops"] == rows["plain"]["flip_flops"] + 2 * ir.n_param_bits()
    assert rows["secded"]["flip_flops"] > rows["plain"]["flip_flops"]
    assert all(row["p_upper"] <= rows["plain"]["p_upper"] for row in rows.values())
    with open(out / "protect.csv") as f:
        assert [row["design"] for row in csv.DictReader(f)] == [row["design"] for row in res["designs"]]
    assert_png(out / "protect.png")
    assert "proof" not in res  # only with --prove
    # --prove: a target between the plain design's P and the best one's, so a protected design is chosen; it is
    # proved on its RTL (the synthesis is cached now)
    best = min(row["p_upper"] for row in rows.values())
    assert 0 < best < plain["p_upper"]
    proved = tmp_path / "proved"
    r = fkhw("protect", "--campaign", software_campaign, "--scrub", "10min", "--target", (best * plain["p_upper"]) ** 0.5,
             "--protection", "secded", "--protection", "secded:8", "--protection", "parity:8", "--k-max", 2,
             "--samples", 30, "--prove", "--jobs", 2, "--out", proved, timeout=1500)
    res = json.loads((proved / "protect.json").read_text())
    assert res["chosen"] not in (None, "plain") and res["proof"]["design"] == res["chosen"]
    assert res["proof"]["ok"] is True and res["proof"]["broken"] == [] and res["proof"]["faults"] > 0
    assert f"proof of {res['chosen']} on its RTL: {res['proof']['faults']:,} faults" in r.stdout
    # a target no design meets: one line, exit 2, the table still written (the synthesis is cached now)
    strict = tmp_path / "strict"
    bad = fkhw("protect", "--campaign", software_campaign, "--scrub", "1min", "--target", 0.01, "--flux", 1e15,
               "--sigma", 1e-10, "--protection", "secded", "--k-max", 2, "--samples", 30, "--out", strict, ok=(2,),
               timeout=1500)
    assert "no design meets it" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert (strict / "protect.csv").is_file()


def test_protect_help_names_the_default_candidates():
    """The help's list of default SEC-DED designs is fkhw.protect.choice's, in
    both places it is given (the command's description and --protection)."""
    from fkhw.protect.choice import DEFAULT_PROTECTIONS

    text = " ".join(fkhw("protect", "--help").stdout.split())
    named = ", ".join(DEFAULT_PROTECTIONS)
    assert f"repeatable; default {named})" in text and f"repeatable; default: {named})" in text, text


def test_tmr_runs_to_completion_at_gate_level(software_campaign, ir, tmp_path):
    """`--gate-level`: the hardened RTL through Yosys + ABC, its netlist under
    the same testbench; every protected bit keeps three flip-flops after
    synthesis and the replica-upset proof holds on the netlist."""
    out = tmp_path / "tmr_gl"
    fkhw("tmr", "--campaign", software_campaign, "--out", out, "--threshold", 1.01, "--no-synth", "--no-validate",
         "--jobs", 1, "--gate-level", timeout=1500)
    report = json.loads((out / "tmr_report.json").read_text())
    pn = json.loads((out / "proof_netlist.json").read_text())
    assert pn["ok"] and pn["protected_output_changes"] == 0 and pn["protected_tmr_err_misses"] == 0
    assert pn["replica_upsets"] == 3 * report["protected_bits"] > 0
    assert pn["netlist"]["replica_flip_flops_found"] == 2 * report["protected_bits"]
    assert pn["unprotected_mismatches"] == 0


@pytest.fixture(scope="module")
def sim_run(small_sim) -> tuple:
    """`fkhw sim` on the small model (conftest.small_sim, shared with
    test_artifacts_agree): (its folder, the finished process)."""
    assert "Traceback" not in small_sim.stderr, small_sim.stderr[-3000:]
    assert small_sim.returncode in (0, 1), small_sim.stdout[-3000:] + small_sim.stderr[-3000:]
    return small_sim.out, small_sim


@pytest.mark.timeout(2700)  # may make conftest.small_sim, a whole fkhw sim in a new user's caches
def test_sim_runs_to_completion(sim_run, ir):
    """`fkhw sim`, what `make sim` runs: every stage for real (hls4ml, RTL +
    lint, Verilator, both campaigns, agreement, TMR with hardened RTL and
    proof, the area table; the area's exact figures are tested in test_tmr_hardware)."""
    out, r = sim_run
    assert r.returncode == sim_exit_status(out)
    steps = re.findall(r"\[(\d+)/(\d+)\]", r.stdout)
    assert steps and [int(k) for k, _ in steps] == list(range(1, int(steps[0][1]) + 1))
    s = json.loads((out / "sim_summary.json").read_text())
    assert s["hls"]["mismatching_rows"] == 0 and s["functional"]["mismatching_rows"] == 0
    assert s["rtl"]["lint"] == "clean"
    n_sites = ir.n_param_bits()
    assert s["agreement"] == {"common_sites": n_sites, "disagreeing_sites": 0}
    report = json.loads((out / "tmr" / "tmr_report.json").read_text())
    assert report["proof"]["ok"] and report["proof"]["protected_output_changes"] == 0
    h = report["hardened_campaign"]
    # the proof runs on the map campaign's first 32 modules; the threshold is checked when those are all of them
    assert h["within_threshold"] is (True if h["modules"] == h["campaign_modules"] else None)
    steps = report["auto"]["steps"]
    assert [st["inputs"] for st in steps][0] == 32 and report["campaign_modules"] == steps[-1]["inputs"]
    assert report["validation"]["modules"] == SMALL_SIM_VALIDATE
    assert s["tmr"]["evidence"]["modules"] == steps[-1]["inputs"]
    assert "TMR map evidence: chosen on" in r.stdout and "held-out" in r.stdout
    assert 0 < report["protected_bits"] < n_sites
    # the map-independent synthesis ran in the background, once: the TMR step found it in the cache
    # (datapath, plain, full, full + refresh register files) and never twice: the TMR step synthesised only
    # the selective register files and found the rest (or waited for it)
    area = {row["design"]: row for row in report["area"]}
    assert list(area) == ["plain", "selective", "selective + refresh", "full", "full + refresh"]
    assert area["full + refresh"]["ff_overhead"] == 2 * n_sites + 1
    background = (out / "tmr" / "area_background.log").read_text()
    runs = re.findall(r"yosys: synthesising the (.*?) \(with", background + r.stderr)
    assert sorted(runs) == sorted(["datapath", "register files (plain)", "register files (full)",
                                   "register files (full_refresh)", "register files (selective)",
                                   "register files (selective_refresh)"]), runs
    assert re.search(r"\(\d+\.\d s, CPU \d+\.\d s\)", r.stdout)
    for artifact in ("hls/fkhw_project.json", "rtl/fkhw_encoder.v", "rtl/regmap.csv", "campaign_rtl/campaign.csv",
                     "campaign_rtl/agreement.json", "campaign_software/figure1.png", "tmr/tmr_map.json",
                     "tmr/hardened_rtl/regmap.csv", "tmr/annotations/README.md", "tmr/proof.json"):
        assert (out / artifact).is_file(), artifact
    # the review of a run with every step: the rates' checks and table are in results.xml and the report
    names = {c["name"] for c in s["checks"]}
    assert {"rate_replay_plain", "rate_replay_selective", "proof_hardened_rtl", "synthesis_flip_flops",
            "replay_worst_site"} <= names
    # the RTL campaign's most damaging site, replayed with a waveform that shows it
    rep = json.loads((out / "replay" / "replay.json").read_text())
    assert rep["matches"] and rep["waves_match"] and (out / "replay" / "waves.vcd").stat().st_size > 0
    assert_png(out / "replay" / "replay.png")
    # the formal certificate of every TMR design of the area table, on the netlists the table counted
    cert = json.loads((out / "tmr" / "certificate.json").read_text())
    assert [c["design"] for c in cert["designs"]] == list(area)[1:] and cert["proven"]
    assert {f"certificate_{d.replace(' + ', '_')}" for d in list(area)[1:]} <= names
    assert all(c["protected_flip_flops"] == 3 * area[c["design"]]["protected_bits"] for c in cert["designs"])
    assert all(c["passed"] for c in s["checks"] if c["name"] != "tmr_map_stable")
    page = (out / "report.html").read_text()
    assert "Failure rates" in page and "Area (Yosys generic synthesis)" in page and "Where the risk sits" in page
    latent = CampaignOutputs.load(out / "campaign_rtl").latent()
    assert latent.shape == (n_sites, SMALL_SIM_INPUTS, ir.output_spec.shape[-1])


@pytest.mark.timeout(2700)  # may make conftest.small_sim
def test_the_review_ends_with_the_protection_choice(sim_run):
    """The last step of `fkhw sim`: fkhw protect on the run's campaign and
    TMR map; every TMR design of the area table and each code of
    fkhw.review.flow.REVIEW_PROTECTIONS, the cheapest design that meets the
    target chosen and proved on its RTL, its table in the report and the
    summary."""
    import csv

    from fkhw.review.flow import REVIEW_PROTECTIONS, REVIEW_TARGET

    out, r = sim_run
    res = json.loads((out / "protect" / "protect.json").read_text())
    rows = {row["design"]: row for row in res["designs"]}
    assert list(rows) == ["plain", "full", "full + refresh", "selective", "selective + refresh", *REVIEW_PROTECTIONS]
    assert res["target"] == REVIEW_TARGET
    feasible = [row for row in rows.values() if row["meets_target"]]
    assert res["chosen"] == (min(feasible, key=lambda row: row["transistors"])["design"] if feasible else None)
    assert rows["parity"]["p_upper"] == rows["plain"]["p_upper"]  # parity corrects nothing
    area = {row["design"]: row for row in json.loads((out / "tmr" / "tmr_report.json").read_text())["area"]}
    assert all(rows[d]["flip_flops"] == area[d]["flip_flops"] for d in area)  # the area table's synthesis, reused
    s = json.loads((out / "sim_summary.json").read_text())
    assert s["protect"]["chosen"] == res["chosen"] and s["steps"][-1]["name"] == "protect"
    # the chosen design proved on its RTL (the plain design promises nothing), a check of the review
    proof, checks = res["proof"], {c["name"]: c for c in s["checks"]}
    assert proof["design"] == res["chosen"] and s["protect"]["proof"]["ok"] == proof["ok"]
    if res["chosen"] == "plain":
        assert proof["ok"] is None and "protection_choice_proved" not in checks
    else:
        assert proof["ok"] is True and proof["faults"] > 0 and checks["protection_choice_proved"]["passed"]
        assert f"{proof['faults']:,} faults, every promise kept" in (out / "report.md").read_text()
    with open(out / "protect" / "protect.csv") as f:
        assert [row["design"] for row in csv.DictReader(f)] == list(rows)
    page = (out / "report.html").read_text()
    assert "Protection choice" in page and "protect/protect.png" in page
    assert_png(out / "protect" / "protect.png")


# -- the documentation's command list, the parser and this file name the same commands ------------

def _docs_commands() -> set:
    """The commands listed under "The pieces, one command each" on the CLI page (docs/cli.md)."""
    text = (ROOT / "docs" / "cli.md").read_text()
    block = text.split("## The pieces, one command each", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\s*fkhw (\w+)\b", block, flags=re.M))


def _parser_commands() -> set:
    from fkhw.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)


def test_docs_parser_and_cli_tests_name_the_same_commands():
    tested = {m.group(1) for name in globals() if (m := re.fullmatch(r"test_(\w+?)_runs_to_completion.*", name))}
    assert _parser_commands() == _docs_commands(), "docs/cli.md's command list and `fkhw --help` differ"
    assert _parser_commands() == tested, f"commands without a CLI test: {_parser_commands() - tested}"
