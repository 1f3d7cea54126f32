"""A campaign folder has one owner at a time and one truth: a resumed, a
concurrent and a --fresh campaign all end with the files of an
uninterrupted run, byte for byte, with nothing stale beside them. Runs go
through the installed ``fkhw`` entry point, as a user starts them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FKHW = Path(sys.executable).parent / "fkhw"
TIMING = "timing.json"  # wall time: the one file allowed to differ between runs


def args(model, out, *extra):
    # enough inputs and small chunks that a run lasts long enough to be caught half way
    return [str(FKHW), "campaign", "--model", str(model), "--inputs", "64", "--chunk", "8", "--out", str(out),
            *map(str, extra)]


def fkhw_ok(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    return r


def files(folder: Path) -> dict:
    """Every file and folder under ``folder`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*")) if p.name != TIMING}


@pytest.fixture(scope="module")
def reference(small_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "camp"
    fkhw_ok(args(small_model_dir, out))
    return files(out)


def start_and_stop_half_way(cmd, out: Path) -> subprocess.Popen:
    """Start a campaign and freeze it (SIGSTOP) once it holds the folder
    and has finished a first chunk, before it is done."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((out / ".partial").glob("chunk_*.npz")):
        assert proc.poll() is None, f"the campaign ended before its first chunk: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "no chunk within 120 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGSTOP)
    assert not (out / "summary.json").exists(), "caught too late: the campaign had finished"
    return proc


def test_a_killed_campaign_resumes_to_the_files_of_an_uninterrupted_run(small_model_dir, reference, tmp_path):
    out = tmp_path / "camp"
    proc = start_and_stop_half_way(args(small_model_dir, out), out)
    proc.kill()
    proc.wait()
    # the killed run's lock file stays, naming a dead process: the next run takes it over
    assert (out / ".lock").read_text().strip() == str(proc.pid)
    fkhw_ok(args(small_model_dir, out))
    assert files(out) == reference


def test_a_second_run_on_a_busy_folder_is_refused_naming_the_first(small_model_dir, reference, tmp_path):
    out = tmp_path / "camp"
    first = start_and_stop_half_way(args(small_model_dir, out), out)
    try:
        for extra in ((), ("--fresh",)):
            r = subprocess.run(args(small_model_dir, out, *extra), capture_output=True, text=True, timeout=300)
            assert r.returncode == 2, r.stderr
            assert r.stderr.strip().splitlines() == [
                f"fkhw campaign: error: --out {out}: another campaign (pid {first.pid}) is running in this folder; "
                "wait for it or choose another --out"]
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=600) == 0, first.stderr.read()[-2000:]
    assert files(out) == reference


def test_fresh_replaces_a_finished_campaign_and_everything_derived_from_it(small_model_dir, reference, tmp_path):
    out = tmp_path / "camp"
    fkhw_ok(args(small_model_dir, out, "--seed", "1"))
    fkhw_ok([str(FKHW), "agree", "--a", str(out), "--b", str(out)])  # leaves out/agreement.json
    assert (out / "agreement.json").is_file()
    r = subprocess.run(args(small_model_dir, out), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "holds a finished campaign with other arguments" in r.stderr
    fkhw_ok(args(small_model_dir, out, "--fresh"))
    assert files(out) == reference  # no agreement.json of the old run, no .lock, no .partial


def test_the_same_run_again_in_a_finished_folder_gives_the_same_files(small_model_dir, reference, tmp_path):
    out = tmp_path / "camp"
    fkhw_ok(args(small_model_dir, out))
    fkhw_ok(args(small_model_dir, out))
    assert files(out) == reference


@pytest.mark.parametrize("where", ["FKHW_CACHE", "HOME"])
def test_an_unwritable_model_cache_falls_back_to_no_cache(small_model_dir, tmp_path, where):
    """FKHW_CACHE naming a file, or a HOME where no .cache folder can be
    made (/sys refuses new entries even to root): the model is extracted
    without the cache, same result."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    fkhw_ok([str(FKHW), "sites", "--model", str(small_model_dir), "--out", str(tmp_path / "cached.csv")])
    env = {**os.environ, where: str(blocker) if where == "FKHW_CACHE" else "/sys"}
    if where == "HOME":
        env.pop("FKHW_CACHE", None)
    r = subprocess.run([str(FKHW), "sites", "--model", str(small_model_dir), "--out", str(tmp_path / "nocache.csv")],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert (tmp_path / "nocache.csv").read_bytes() == (tmp_path / "cached.csv").read_bytes()
    assert blocker.read_text() == "a file, not a folder\n"


def test_tmr_on_a_sampled_campaign_says_what_the_campaign_covered(small_model_dir, tmp_path):
    from fkhw.model.bundle import load_model

    n_sites = load_model(str(small_model_dir)).ir.n_param_bits()
    sites = tmp_path / "sites.txt"
    sites.write_text("\n".join(str(s) for s in range(0, n_sites, 5)) + "\n")
    camp = tmp_path / "camp"
    fkhw_ok([str(FKHW), "campaign", "--model", str(small_model_dir), "--inputs", "8", "--sites", str(sites),
             "--out", str(camp), "--no-plot"])
    r = fkhw_ok([str(FKHW), "tmr", "--campaign", str(camp), "--out", str(tmp_path / "tmr"), "--no-synth",
                 "--no-prove", "--no-validate"])  # validated, 8 modules are NOT stable: exit status 1
    n_run = len(range(0, n_sites, 5))
    assert f"the campaign covered only {n_run} of the {n_sites} sites" in r.stdout, r.stdout


@pytest.mark.dask
def test_a_real_dask_scheduler_passes_the_probe():
    """The probe that refuses silent and foreign services lets Dask through."""
    from distributed import LocalCluster

    from fkhw.campaign.executors import probe_scheduler, scheduler_address

    with LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        probe_scheduler(scheduler_address(cluster.scheduler_address), timeout=10)


@pytest.mark.hls
def test_an_hls_campaign_whose_project_generation_was_killed_runs_again(small_model_dir, tmp_path):
    """A kill during the first hls campaign leaves hls_projects/<model> half
    written (no manifest yet); the next run regenerates it instead of
    refusing it as someone else's folder."""
    from fkhw.hls.project import GENERATING, MANIFEST
    from fkhw.model.bundle import load_model

    name = load_model(str(small_model_dir)).name
    project = tmp_path / "hls_projects" / name
    project.mkdir(parents=True)
    (project / GENERATING).write_text("")
    (project / "myproject.cpp").write_text("// cut short\n")
    sites = tmp_path / "sites.txt"
    sites.write_text("0\n1\n2\n")
    r = subprocess.run([str(FKHW), "campaign", "--model", str(small_model_dir), "--level", "hls", "--jobs", "1",
                        "--inputs", "4", "--sites", str(sites), "--out", str(tmp_path / "camp"), "--no-plot"],
                       capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert (project / MANIFEST).is_file() and not (project / GENERATING).exists()
    assert (tmp_path / "camp" / "summary.json").is_file()
