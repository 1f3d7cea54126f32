"""Campaign executors (issue 8): a local Dask cluster on loopback gives the
same results as an in-process run, even when a worker dies part way."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from fkhw.campaign import CampaignSpec, run_campaign
from fkhw.executors import DaskExecutor, ExecutorError
from fkhw.model.bundle import load_model

SITES = tuple(range(0, 10720, 37))  # 290 sites over both layers


class KillOneWorker:
    """Wraps an executor; after the first chunk lands, hard-kills a worker
    that is busy with another chunk (SIGKILL: no clean shutdown)."""

    def __init__(self, inner: DaskExecutor):
        self.inner, self.killed = inner, None
        self.level_name = inner.level_name

    def golden(self, task):
        return self.inner.golden(task)

    def map(self, task, chunks):
        for k, result in enumerate(self.inner.map(task, chunks)):
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
def test_a_worker_killed_mid_campaign_costs_nothing(level, chunk, tmp_path):
    bundle = load_model("econt-bol")
    spec = CampaignSpec("econt-bol", level=level, sites=SITES, chunk=chunk)
    reference = run_campaign(spec, bundle, tmp_path / "inproc", quiet=True,
                             executor=_in_process(level, bundle))
    killer = KillOneWorker(DaskExecutor.local(2))
    t0 = time.monotonic()
    result = run_campaign(spec, bundle, tmp_path / "dask", quiet=True, executor=killer)
    assert killer.killed is not None, "the test must really kill a worker mid-run"
    assert time.monotonic() - t0 < 300
    assert (tmp_path / "dask" / "campaign.csv").read_bytes() == (tmp_path / "inproc" / "campaign.csv").read_bytes()
    assert (tmp_path / "dask" / "outputs.npz").read_bytes() == (tmp_path / "inproc" / "outputs.npz").read_bytes()
    assert result.summary["n_sites"] == reference.summary["n_sites"] == len(SITES)


def _in_process(level, bundle):
    from fkhw.levels import make_level
    from fkhw.executors import InProcess

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
