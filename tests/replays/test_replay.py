"""fkhw.replays: one campaign row run again equals the row (outputs and
damage), for seu sites and for faults of other kinds on the plain and the
hardened design; a replay that differs says so; the waveform evidence
reader finds only what is there; bad rows, modules, levels and waveform
files are one-line errors.

The software level keeps these fast; the RTL replays with waveforms are in
tests/commands/test_cli.py (three rows, the waveform read with pywellen) and
tests/rtlgen/test_rtl_makefile.py (the Makefile flow's waveform).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fkhw.replays import ReplayError, ReplayRequest, replay

INPUTS = 8
FKHW = Path(sys.executable).parent / "fkhw"


def fkhw(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(FKHW), *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def campaigns(small_model_dir, tmp_path_factory) -> dict:
    """A seu campaign and a pipeline campaign of the small model (software engine)."""
    root = tmp_path_factory.mktemp("replay")
    out = {"seu": root / "seu", "pipeline": root / "pipeline"}
    for kind, folder in out.items():
        r = fkhw("campaign", "--model", small_model_dir, "--inputs", INPUTS, "--faults", kind, "--out", folder)
        assert r.returncode == 0, r.stderr[-2000:]
    return out


def _most_damaging(folder: Path, key: str) -> int:
    import csv

    with (folder / "campaign.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return int(max(rows, key=lambda r: float(r["emd_norm"]))[key])


def test_a_seu_row_replays_to_its_outputs_and_damage(campaigns, tmp_path):
    folder = campaigns["seu"]
    site = _most_damaging(folder, "site")
    r = replay(ReplayRequest(folder, site=site), tmp_path)
    assert r.matches and r.mismatched == () and r.waves is None and r.waves_match is None
    assert r.damage_norm == pytest.approx(r.campaign_damage_norm, rel=1e-12)
    assert r.changed and r.module in r.changed  # the drawn module is one the upset changed
    assert [u.flip_flop for u in r.upsets] == [site] and r.upsets[0].cycle == 0
    assert r.upsets[0].rtl.startswith("fkhw_tb.u_enc.rf_") and "mem[" in r.upsets[0].rtl
    assert r.recon_free.shape == r.recon_faulty.shape == r.charges.shape
    # the module's own damage is the decoder reconstruction's EMD: larger with the upset, here
    assert r.module_damage_faulty != r.module_damage_free


def test_a_pipeline_fault_replays_to_its_outputs(campaigns, tmp_path):
    folder = campaigns["pipeline"]
    fault = _most_damaging(folder, "fault")
    r = replay(ReplayRequest(folder, fault=fault), tmp_path)
    assert r.matches and r.kind == "pipeline"
    assert len(r.upsets) == 1 and r.upsets[0].cls in ("pipeline", "control")
    assert r.upsets[0].rtl.startswith("fkhw_tb.u_enc.u_stage")
    assert len(r.changed) + len(r.lost) <= 1  # a pipeline upset reaches the one slot its stage holds


def test_a_replay_that_differs_from_the_record_says_which_modules(campaigns, tmp_path):
    """The recorded outputs of the row are altered: the replay finds the module
    and the command exits 1 (and writes its files)."""
    from fkhw.campaign.outputs import CampaignOutputs

    folder = tmp_path / "altered"
    shutil.copytree(campaigns["seu"], folder)
    site = _most_damaging(folder, "site")
    outs = CampaignOutputs.load(folder)
    row = int(np.flatnonzero(outs.sites == site)[0])
    first = int(outs.indptr[row])
    with np.load(folder / "outputs.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["changed_latent"][first, 0] += 1
    np.savez(folder / "outputs.npz", **arrays)
    r = replay(ReplayRequest(folder, site=site), tmp_path / "work")
    assert not r.matches and r.mismatched == (int(outs.module[first]),)
    run = fkhw("replay", "--campaign", folder, "--site", site, "--out", tmp_path / "out")
    assert run.returncode == 1 and "DIFFERS from the campaign" in run.stdout
    assert json.loads((tmp_path / "out" / "replay.json").read_text())["matches"] is False


def test_the_evidence_reader_finds_only_the_upset_that_is_there(tmp_path):
    """A small waveform written by hand: the reader sees the marker and the
    register flip of the upset it is told about, and no flip for an upset at
    another bit or another cycle."""
    from fkhw.replays.row import Upset
    from fkhw.replays.waves import read_evidence

    vcd = tmp_path / "w.vcd"
    vcd.write_text("\n".join([
        "$timescale 1ps $end", "$scope module fkhw_tb $end",
        "$var wire 1 ! clk $end", "$var wire 32 # run_cycle [31:0] $end", "$var wire 32 $ run_frame [31:0] $end",
        "$var wire 1 % wave_upset $end", "$var wire 1 & out_live $end", "$var wire 32 ' out_slot [31:0] $end",
        "$var wire 32 ( out_frame [31:0] $end", "$var wire 1 ) out_differs $end", "$var wire 8 * out_data [7:0] $end",
        "$scope module u_enc $end", "$scope module rf $end", "$var wire 4 + mem[3] [3:0] $end",
        "$upscope $end", "$upscope $end", "$upscope $end", "$enddefinitions $end",
        "#0", "0!", "b0 #", "b0 $", "0%", "0&", "b0 '", "b0 (", "0)", "b0 *", "b101 +",
        "#5", "1!", "1%", "b1 +",  # edge 0: bit 2 of mem[3] flips, marker high
        "#10", "0!", "#15", "1!", "0%", "b1 #", "1&", "1)", "b10100101 *",  # edge 1: slot 0 at the output, differs
        "#20", "0!", "#25", "1!", "b10 #", "b1 '", "0)", "#30", "0!", ""]))
    port = {"bits": 8, "elements": 2, "element_bits": 4, "signed": False}
    here = Upset(3, "param", "rf.w[3]", 1, 0, "fkhw_tb.u_enc.rf.mem[3]", 2)
    ev = read_evidence(vcd, (here,), 4, port)
    assert ev.upsets[0].flipped and ev.upsets[0].cycle == 0 and ev.upsets[0].time_ps == 5
    assert ev.differing_slots == (0,) and ev.differing_data.tolist() == [[5, 10]]
    for wrong in (Upset(3, "param", "rf.w[3]", 0, 0, "fkhw_tb.u_enc.rf.mem[3]", 3),  # another bit
                  Upset(3, "param", "rf.w[3]", 1, 1, "fkhw_tb.u_enc.rf.mem[3]", 2)):  # another cycle
        assert not read_evidence(vcd, (wrong,), 4, port).upsets[0].flipped


@pytest.mark.parametrize("args, says", [
    (["--site", "999999"], "--site 999999: not a row of --campaign"),
    (["--fault", "0"], "is a seu campaign: its rows are sites, name one with --site"),
    (["--site", "0", "--module", str(INPUTS)], f"--module {INPUTS}: the campaign ran {INPUTS} modules"),
    (["--site", "0", "--waves", "w.ghw"], "unknown waveform format '.ghw'"),
    (["--site", "0", "--waves", "w"], "unknown waveform format '(no extension)'"),
    (["--site", "0", "--waves", "w.vcd"], "waveforms come from the rtl level, not software (add --level rtl)"),
    (["--site", "0", "--level", "qkeras"], "--level invalid choice: 'qkeras'"),
    (["--site", "-1"], "--site -1"),
    (["--site", "1.5"], "--site '1.5': not an integer"),
])
def test_bad_replay_requests_are_one_line_errors(campaigns, tmp_path, args, says):
    r = fkhw("replay", "--campaign", campaigns["seu"], *args, "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_a_fault_row_of_a_seu_request_and_a_missing_campaign_are_one_line_errors(campaigns, tmp_path):
    r = fkhw("replay", "--campaign", campaigns["pipeline"], "--site", "0", "--out", tmp_path / "a")
    assert r.returncode == 2 and "is a --faults pipeline campaign: its rows are faults" in r.stderr
    r = fkhw("replay", "--campaign", tmp_path / "nothing", "--site", "0", "--out", tmp_path / "b")
    assert r.returncode == 2 and "no such campaign folder" in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.verilator  # where lz4.h is there, it builds and runs the RTL
def test_an_fst_waveform_needs_the_lz4_header_or_says_so(campaigns, tmp_path):
    """Verilator's FST writer compiles against lz4.h: where it is missing, the
    request is refused before anything is built; where it is there, the
    waveform is written (the FST reader then sees the upset)."""
    from fkhw.replays.row import _require_fst

    site = _most_damaging(campaigns["seu"], "site")
    try:
        _require_fst()
    except ReplayError as e:
        r = fkhw("replay", "--campaign", campaigns["seu"], "--site", site, "--level", "rtl", "--waves",
                 tmp_path / "w.fst", "--out", tmp_path / "out")
        assert r.returncode == 2 and "lz4" in r.stderr and str(e) in r.stderr
        assert not (tmp_path / "w.fst").exists()
        return
    r = replay(ReplayRequest(campaigns["seu"], site=site, level="rtl", waves=tmp_path / "w.fst"), tmp_path / "work")
    assert r.matches and r.waves_match and r.waves.format.upper() == "FST"
