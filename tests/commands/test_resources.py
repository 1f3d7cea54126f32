"""What a local run may take (issue 23): `fkhw campaign --jobs 1000` started
a 1,000-worker Dask cluster until the machine ran out of memory, and the RTL
level as many simulator processes; `--samples 1e12` grew for minutes with
nothing printed; `fkhw rate --samples 1000000` was silent for minutes. Now
--jobs is capped at the cores (and memory) with one line saying so, a size
that cannot fit in memory is refused at once naming the option and the
limit, and the long Monte Carlo loop shows progress.

A run that would start more workers than cores is killed as soon as it is
seen doing so (tests/watched_processes.py), so that the old behaviour fails
the test without taking the machine down.
"""

from __future__ import annotations

import os
import re
import time

import psutil
import pytest

from watched_processes import Watched, fkhw_env, run_fkhw

CORES = len(os.sched_getaffinity(0))


@pytest.fixture(autouse=True)
def cores_bind():
    """The cap's line names the cores when they, not the memory, are the limit
    (fkhw.host.resources: 512 MiB a worker)."""
    if psutil.virtual_memory().available < CORES * (512 << 20):
        pytest.skip(f"less memory available than {CORES} workers take: the memory is the limit here")


def count_workers(run: Watched, pattern: str, timeout: float) -> tuple:
    """(the most children of fkhw matching ``pattern`` seen at once until
    it ends, 'pid parent status age' of each at that moment); fkhw and
    everything it started are killed as soon as there are more than the
    cores. Children only: a worker that forks to run a program has a copy
    of its command line until the exec."""
    most, seen, deadline = 0, [], time.monotonic() + timeout
    while run.proc.poll() is None and time.monotonic() < deadline:
        now = []
        for p in run.look():
            try:
                if p.ppid() == run.proc.pid and re.search(pattern, " ".join(p.cmdline())):
                    now.append(f"{p.pid} {p.ppid()} {p.status()} {time.time() - p.create_time():.1f}s")
            except psutil.NoSuchProcess:
                pass
        if len(now) > most:
            most, seen = len(now), now
        if most > CORES:
            run.kill_all()
            break
        time.sleep(0.05)
    return most, seen


def test_local_jobs_is_capped_at_the_cores_with_one_line():
    from fkhw.host.resources import local_jobs

    lines = []
    assert local_jobs(1000, say=lines.append) == min(CORES, 1000)
    assert lines == [f"--jobs 1000: using {CORES} ({CORES} cores)"]
    lines.clear()
    assert local_jobs(1, say=lines.append) == 1 and not lines
    assert local_jobs(None, say=lines.append) is None and not lines


@pytest.mark.dask
def test_campaign_jobs_1000_starts_no_more_dask_workers_than_cores(small_model_dir, tmp_path):
    run = Watched(("campaign", "--model", small_model_dir, "--inputs", 32, "--jobs", 1000, "--chunk", 16,
                   "--out", tmp_path / "c", "--no-plot"), fkhw_env(tmp_path), tmp_path)
    try:
        most, seen = count_workers(run, r"multiprocessing\.spawn import spawn_main", timeout=600)
        assert most <= CORES, f"{most} Dask workers on {CORES} cores: {seen}"
        assert run.proc.wait(timeout=120) == 0, run.output()[-3000:]
    finally:
        run.kill_all()
    assert 1 <= most, "no Dask worker seen: the campaign did not run on a local cluster"
    assert f"--jobs 1000: using {CORES} ({CORES} cores)" in run.output().splitlines()


@pytest.mark.slow
@pytest.mark.verilator
def test_rtl_campaign_jobs_1000_starts_no_more_simulators_than_cores(small_model_dir, tmp_path):
    """The RTL level splits a chunk over its own simulator processes (`fkhw
    tmr --jobs 1000` ran 850 of them)."""
    run = Watched(("campaign", "--level", "rtl", "--model", small_model_dir, "--inputs", 4, "--jobs", 1000,
                   "--out", tmp_path / "c", "--no-plot"), fkhw_env(tmp_path), tmp_path)
    try:
        most, seen = count_workers(run, r"-m fkhw\.rtlgen\.sim run ", timeout=900)
        assert most <= CORES, f"{most} simulator processes on {CORES} cores: {seen}"
        assert run.proc.wait(timeout=120) == 0, run.output()[-3000:]
    finally:
        run.kill_all()
    assert 1 <= most, "no simulator process seen"
    assert f"--jobs 1000: using {CORES} ({CORES} cores)" in run.output().splitlines()


def test_samples_that_cannot_fit_in_memory_are_refused_at_once(small_model_dir, tmp_path):
    """It drew the samples one by one, silently, its memory growing."""
    run = Watched(("campaign", "--model", small_model_dir, "--faults", "accumulate:2", "--samples", 10**12,
                   "--out", tmp_path / "c"), fkhw_env(tmp_path), tmp_path)
    try:
        deadline = time.monotonic() + 120
        while run.proc.poll() is None and time.monotonic() < deadline:
            if psutil.Process(run.proc.pid).memory_info().rss > 2 << 30:
                break  # what it did: grow until the machine runs out
            time.sleep(0.2)
        rc = run.proc.poll()
    finally:
        run.kill_all()
    out = run.output().strip().splitlines()
    assert rc == 2, f"exit {rc} (still running after 120 s or past 2 GiB):\n" + "\n".join(out[-20:])
    assert len(out) == 1 and out[0].startswith("fkhw campaign: error: --samples 1000000000000: needs ~"), out
    assert re.search(r"available: at most [\d,]+ on this machine", out[0]), out
    assert not (tmp_path / "c").exists()


def test_rate_shows_progress_while_its_monte_carlo_runs(small_model_dir, tmp_path):
    env = fkhw_env(tmp_path)
    made = run_fkhw(("campaign", "--model", small_model_dir, "--inputs", 32, "--out", tmp_path / "c", "--no-plot"),
                    env, tmp_path, timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    r = run_fkhw(("rate", "--campaign", tmp_path / "c", "--samples", 10000, "--out", tmp_path / "rate"), env,
                 tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    for design in ("plain", "full"):
        lines = re.findall(rf"^  {design}: accumulated scenarios: (\d+)/(\d+) scenarios", r.stderr, flags=re.M)
        assert lines, r.stderr[-3000:]
        assert lines[-1][0] == lines[-1][1] == str(10000 * 5)  # k = 2 .. 6 upsets, --samples each
