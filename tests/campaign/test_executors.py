"""Campaign executors (issue 8): a local Dask cluster on loopback gives the
same results as an in-process run, even when a worker dies part way."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from fkhw.campaign.run import CampaignSpec, run_campaign
from fkhw.campaign.executors import DaskExecutor, ExecutorError
from fkhw.model.bundle import load_model

pytestmark = [pytest.mark.dask, pytest.mark.verilator]


@pytest.fixture(scope="module")
def sampled_sites(bol_sites):
    """Every 37th site: 290 over both layers of econt-bol."""
    return tuple(range(0, bol_sites, 37))


class KillOneWorker:
    """Wraps an executor; after the first chunk lands, hard-kills a worker
    that is busy with another chunk (SIGKILL: no clean shutdown)."""

    def __init__(self, inner: DaskExecutor):
        self.inner, self.killed = inner, None
        self.level_name = inner.level_name

    def golden(self, task):
        return self.inner.golden(task)

    def map(self, task, chunks, progress=None):
        for k, result in enumerate(self.inner.map(task, chunks, progress=progress)):
            yield result
            if k == 0:
                busy = [w for w, keys in self.inner.client.processing().items() if keys]
                if busy:
                    self.killed = busy[0]
                    pid = self.inner.client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("level,chunk", [("software", 5), ("rtl", 20)])
def test_a_worker_killed_mid_campaign_costs_nothing(level, chunk, sampled_sites, tmp_path):
    bundle = load_model("econt-bol")
    spec = CampaignSpec("econt-bol", level=level, sites=sampled_sites, chunk=chunk)
    reference = run_campaign(spec, bundle, tmp_path / "inproc", quiet=True,
                             executor=_in_process(level, bundle))
    killer = KillOneWorker(DaskExecutor.local(2))
    t0 = time.monotonic()
    result = run_campaign(spec, bundle, tmp_path / "dask", quiet=True, executor=killer)
    assert killer.killed is not None, "the test must really kill a worker mid-run"
    assert time.monotonic() - t0 < 300
    assert (tmp_path / "dask" / "campaign.csv").read_bytes() == (tmp_path / "inproc" / "campaign.csv").read_bytes()
    assert (tmp_path / "dask" / "outputs.npz").read_bytes() == (tmp_path / "inproc" / "outputs.npz").read_bytes()
    assert result.summary["n_sites"] == reference.summary["n_sites"] == len(sampled_sites)


def _in_process(level, bundle):
    from fkhw.levels import make_level
    from fkhw.campaign.executors import InProcess

    return InProcess(make_level(level, bundle, jobs=1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_a_clear_error_not_a_hang():
    t0 = time.monotonic()
    with pytest.raises(ExecutorError, match="no Dask scheduler answered"):
        DaskExecutor.connect(f"tcp://127.0.0.1:{_free_port()}")
    assert time.monotonic() - t0 < 30


def test_a_worker_without_the_simulator_is_named_not_waited_for(tmp_path):
    bundle = load_model("econt-bol")
    # fresh build root, so the worker cannot fall back on a cached simulator
    env = {"FKHW_VERILATOR": str(tmp_path / "nowhere" / "verilator"), "FKHW_RTL_BUILD": str(tmp_path / "b")}
    executor = DaskExecutor.local(1, env=env)
    t0 = time.monotonic()
    with pytest.raises(ExecutorError, match="cannot run the rtl level: .*verilator not found"):
        run_campaign(CampaignSpec("econt-bol", level="rtl", sites=(0, 1)), bundle, tmp_path / "o",
                     quiet=True, executor=executor)
    assert time.monotonic() - t0 < 60


# --- the TMR proof through the executors (issue 16 item 5) ------------------------------------

@pytest.fixture(scope="module")
def hardened_bol():
    """econt-bol with a few protected bits in both weight tensors, the
    unprotected bits to check, inputs and the in-process level."""
    import numpy as np

    from fkhw.levels.rtl import encoder_inputs
    from fkhw.tmr.proof import HardenedRtlLevel

    bundle = load_model("econt-bol")
    n = bundle.ir.n_param_bits()
    prot = np.arange(3, n, n // 20)
    unprot = np.setdiff1d(np.arange(1, n, n // 40), prot)
    x = encoder_inputs(bundle.ir)[:16]
    return bundle, prot, unprot, x, HardenedRtlLevel(bundle.ir, prot, jobs=2)


class LastFirst:
    """Wraps an executor; hands its chunks back last first (executors promise
    no order, and two idle workers tend to finish them in order)."""

    def __init__(self, inner):
        self.inner, self.chunks = inner, 0
        self.name = inner.name

    def golden(self, task):
        return self.inner.golden(task)

    def map(self, task, chunks, fn, progress=None):
        done = list(self.inner.map(task, chunks, fn=fn, progress=progress))
        self.chunks = len(done)
        yield from reversed(done)

    def close(self):
        self.inner.close()


def test_proof_frames_on_dask_workers_come_back_in_fault_order(hardened_bol):
    """Chunks of the proof's fault set run on two Dask workers and come back
    in any order: outputs and tmr_err equal one in-process run, fault by fault."""
    import numpy as np

    from fkhw.tmr.proof import execute, proof_task, replica_faults

    bundle, prot, unprot, x, level = hardened_bol
    sites = np.concatenate([np.repeat(prot, 3), unprot])
    fs = replica_faults(level.space, sites, [0, 1, 2] * prot.size + [0] * unprot.size)
    want, want_err = level.run_faults_with_err(fs, x)
    executor = LastFirst(DaskExecutor.local(2))
    try:
        got, got_err = execute(executor, proof_task(level, x, bundle), fs, chunk=7)
    finally:
        executor.close()
    assert executor.chunks > 10
    assert not got.mismatches(want).any() and np.array_equal(got_err, want_err)
    # the check has teeth: the upsets did something, and tmr_err rose exactly for the replica upsets
    assert got_err[:3 * prot.size].all() and not got_err[3 * prot.size:].any()
    assert (got.latent[3 * prot.size:] != level.golden(x)[None]).any(axis=(1, 2)).sum() > 0


def test_the_replica_proof_runs_on_a_dask_cluster_with_the_in_process_verdict(hardened_bol):
    from fkhw.tmr.proof import prove

    bundle, prot, unprot, x, level = hardened_bol
    local = prove(bundle.ir, prot, x, unprotected=unprot, level=level)
    executor = DaskExecutor.local(2)
    try:
        dask = prove(bundle.ir, prot, x, unprotected=unprot, level=level, executor=executor, bundle=bundle)
    finally:
        executor.close()
    assert local["ok"] and dask["ok"], (local, dask)
    assert local["executor"] == "in-process" and dask["executor"].startswith("dask (2 workers")
    keys = ("replica_upsets", "protected_output_changes", "protected_tmr_err_misses", "unprotected_mismatches",
            "unprotected_output_changes", "unprotected_tmr_err_raised", "frames")
    assert {k: dask[k] for k in keys} == {k: local[k] for k in keys}
    assert dask["unprotected_output_changes"] > 0


def test_fkhw_tmr_runs_its_proof_and_hardened_campaign_on_the_scheduler_given(small_model_dir, tmp_path):
    """`fkhw tmr --scheduler ADDRESS`: the proof's frames and the hardened
    campaign's chunks are tasks of that cluster's workers (the scheduler
    counts them), and the proof holds. On the small model: the scheduler,
    not the model, is the point."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from distributed import Client, LocalCluster

    from fkhw.faults.sites import SiteSpace
    from fkhw.model.bundle import load_model

    exe = Path(sys.executable).parent / "fkhw"
    camp = tmp_path / "sw"
    subprocess.run([str(exe), "campaign", "--model", str(small_model_dir), "--inputs", "8", "--out", str(camp)],
                   check=True, capture_output=True, timeout=600)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0", silence_logs=50)
    client = Client(cluster)
    try:
        r = subprocess.run([str(exe), "tmr", "--campaign", str(camp), "--out", str(tmp_path / "tmr"), "--threshold",
                            "1.0", "--no-synth", "--no-validate", "--scheduler", cluster.scheduler_address],
                           capture_output=True, text=True, timeout=1500)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        # what ran where: the scheduler's own record of the tasks it handed out
        done = client.run_on_scheduler(lambda dask_scheduler: sorted(
            {k if isinstance(k, str) else k[0] for k in dask_scheduler.task_prefixes}))
    finally:
        client.close()
        cluster.close()
    proof = json.loads((tmp_path / "tmr" / "proof.json").read_text())
    assert proof["ok"] and proof["executor"].startswith("dask (2 workers")
    assert proof["replica_upsets"] > 0 and proof["protected_output_changes"] == 0
    assert "run_chunk" in done and "run_golden" in done, done
    summary = json.loads((tmp_path / "tmr" / "hardened_campaign" / "summary.json").read_text())
    assert summary["n_sites"] == SiteSpace.of(load_model(str(small_model_dir)).ir).n_sites


def test_a_local_simulator_chunk_reports_progress_while_it_runs(tmp_path):
    """A chunk on the local RTL level is thousands of faults on every core:
    the executor passes the simulators' running total on (nondecreasing,
    ending at the chunk's size), so a campaign of one chunk still shows progress."""
    import numpy as np

    from fkhw.campaign.run import take
    from fkhw.campaign.executors import ChunkTask, InProcess
    from fkhw.faults.space import FaultSet
    from fkhw.levels.rtl import RtlLevel
    from fkhw.rtlgen.testing import toy_inputs

    bundle = load_model("econt-bol")  # its plain build is shared with the other RTL tests
    level = RtlLevel(bundle.ir, jobs=2)
    x = toy_inputs(bundle.ir, 8, seed=0)
    n = 2048
    chunk = take(FaultSet.single("seu", np.arange(n), np.arange(n), 0), np.arange(n))
    totals = []
    [(fs, seen)] = list(InProcess(level).map(ChunkTask("rtl", bundle, x), [chunk], progress=totals.append))
    assert len(fs) == n and seen.latent.shape[0] == n
    assert totals and totals[-1] == n and all(a <= b for a, b in zip(totals, totals[1:])), totals
