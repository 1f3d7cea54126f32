"""Where campaign chunks run: in this process, or on a Dask cluster.

A chunk is a :class:`fkhw.faults.space.FaultSet` (a slice of the campaign's
faults); running it gives what each fault did on the campaign's inputs
(:class:`fkhw.faults.space.Observed`). Executors yield ``(chunk, observed)`` as
chunks finish, in any order; the campaign's store makes that safe.

Dask workers build their level once and keep it on the worker (keyed by
level and model digest; the RTL level keys its Verilator build by the RTL's
hash), so a chunk costs only its own simulation. A worker that dies
mid-chunk makes Dask rerun that chunk elsewhere; the store counts a fault
once whichever copy lands.
"""

from __future__ import annotations

import re
import socket
import struct
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from fkhw.errors import ToolFailure
from fkhw.levels import make_level, run_faults
from fkhw.model.bundle import ModelBundle

SCHEDULER_TIMEOUT_S = 10
# a Dask handshake is a small message; a first frame length beyond this is another protocol
MAX_HANDSHAKE_BYTES = 1 << 20


class ExecutorError(ToolFailure):
    """A cluster that cannot be reached or a chunk that failed on it."""


@dataclass(frozen=True, eq=False)
class ChunkTask:
    """Everything a worker needs to evaluate chunks (picklable)."""

    level: str
    bundle: ModelBundle
    inputs: np.ndarray
    hardening: object = None  # fkhw.faults.space.Hardening of a hardened design, else the plain one

    @property
    def key(self) -> tuple:
        return (self.level, self.bundle.files.digest(), self.bundle.ir.name,
                None if self.hardening is None else self.hardening.digest())


class InProcess:
    """Runs chunks one after the other on a level built here."""

    name = "in-process"

    def __init__(self, level):
        self.level = level
        self.level_name = level.name

    def golden(self, task: ChunkTask) -> np.ndarray:
        return self.level.golden(task.inputs)

    def map(self, task: ChunkTask, chunks: list, fn=run_faults, progress=None) -> Iterator[tuple]:
        """``(chunk, fn(level, chunk, inputs))`` per chunk (``fn``: what a
        chunk gives, by default its Observed). ``progress``: called with the
        running total of the chunk in flight (a chunk of a local simulator
        level is thousands of faults on every core: seconds to minutes)."""
        for fs in chunks:
            yield fs, fn(self.level, fs, task.inputs, progress) if progress is not None else \
                fn(self.level, fs, task.inputs)

    def close(self) -> None:
        close = getattr(self.level, "close", None)
        if close is not None:
            close()


def _worker_level(task: ChunkTask):
    """The level for ``task`` on this Dask worker, built on first use."""
    from distributed import get_worker

    worker = get_worker()
    levels = worker.__dict__.setdefault("_fkhw_levels", {})
    if task.key not in levels:
        levels[task.key] = make_level(task.level, task.bundle, jobs=1, hardening=task.hardening)
    return levels[task.key]


def run_chunk(task: ChunkTask, fs, fn=run_faults) -> tuple:
    """Dask task: one chunk (a FaultSet) on this worker's level (``fn``: a
    module-level function ``(level, chunk, inputs)``, so it pickles)."""
    return fs, fn(_worker_level(task), fs, task.inputs)


def preflight(level: str) -> str | None:
    """Run on each worker before any chunk: what this worker lacks for
    ``level``, or None. A missing simulator is found here, once, by name."""
    try:
        if level in ("rtl", "netlist"):
            from fkhw.rtlgen.tools import require_verilator

            require_verilator()
        elif level == "hls":
            from fkhw.hls.project import compiler

            compiler()
    except Exception as exc:  # reported to the client, never raised on the worker
        return f"{type(exc).__name__}: {exc}"
    return None


def run_golden(task: ChunkTask) -> np.ndarray:
    """Dask task: the fault-free outputs on this worker's level."""
    return _worker_level(task).golden(task.inputs)


def scheduler_address(text: str) -> str:
    """``tcp://HOST:PORT`` (or ``HOST:PORT``) of a Dask scheduler, checked
    for form only; an address without a port or of another protocol is
    refused here rather than inside Dask."""
    m = re.fullmatch(r"(?:(tcp|tls)://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})/?", text.strip())
    if not m or not 1 <= int(m.group(3)) <= 65535:
        raise ExecutorError(f"--scheduler {text!r}: give a Dask scheduler address tcp://HOST:PORT "
                            "(e.g. tcp://10.0.0.5:8786)")
    return f"{m.group(1) or 'tcp'}://{m.group(2)}:{m.group(3)}"


def probe_scheduler(address: str, timeout: float = SCHEDULER_TIMEOUT_S) -> None:
    """A Dask scheduler speaks first: on accepting a connection it sends its
    handshake, an 8-byte frame length and a small message. A port that
    stays silent, or answers with something else (HTTP, SSH), is refused
    within ``timeout`` instead of hanging Dask's client or making it
    allocate a nonsense frame length."""
    scheme, rest = address.split("://", 1)
    if scheme != "tcp":
        return  # TLS wraps the handshake; Dask's own timeout applies
    host, port = rest.rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            head = b""
            while len(head) < 8:
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    raise ExecutorError(f"--scheduler {address}: the service closed the connection without a "
                                        "Dask handshake (not a Dask scheduler?)")
                head += chunk
    except socket.timeout:
        raise ExecutorError(f"--scheduler {address}: a service answers there but sent no Dask handshake within "
                            f"{timeout:g} s (not a Dask scheduler?)") from None
    except OSError as e:
        raise ExecutorError(f"--scheduler {address}: no Dask scheduler answered ({e.strerror or e})") from None
    (nbytes,) = struct.unpack("Q", head)  # native order, as distributed.comm.tcp writes it
    if not 0 < nbytes <= MAX_HANDSHAKE_BYTES:
        shown = head.decode("ascii", "replace").strip()
        raise ExecutorError(f"--scheduler {address}: the service there is not a Dask scheduler "
                            f"(it answered {shown!r})")


class DaskExecutor:
    """Chunks as Dask tasks, on a local cluster or an existing scheduler."""

    def __init__(self, client, cluster=None):
        self.client, self.cluster = client, cluster
        self.level_name = None  # the campaign's --level
        self.name = f"dask ({len(client.scheduler_info()['workers'])} workers at {client.scheduler.address})"

    @staticmethod
    def local(n_workers: int, env: dict | None = None) -> "DaskExecutor":
        """A cluster of ``n_workers`` processes on loopback (``env``: extra
        environment of the workers)."""
        from distributed import Client, LocalCluster

        # processes, one thread each: simulators and BLAS do not share a GIL well
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", silence_logs=50, env=dict(env or {}))
        return DaskExecutor(Client(cluster), cluster)

    @staticmethod
    def connect(address: str) -> "DaskExecutor":
        from distributed import Client

        address = scheduler_address(address)
        probe_scheduler(address)
        try:
            client = Client(address, timeout=SCHEDULER_TIMEOUT_S)
        except (OSError, TimeoutError) as e:
            raise ExecutorError(f"--scheduler {address}: no Dask scheduler answered within "
                                f"{SCHEDULER_TIMEOUT_S} s ({type(e).__name__}: {e})") from None
        if not client.scheduler_info()["workers"]:
            client.close()
            raise ExecutorError(f"--scheduler {address}: the scheduler has no workers")
        return DaskExecutor(client)

    def check_workers(self, level: str) -> None:
        problems = {w: p for w, p in self.client.run(preflight, level).items() if p}
        if problems:
            lines = "; ".join(f"{w}: {p}" for w, p in sorted(problems.items()))
            raise ExecutorError(f"{len(problems)} Dask worker(s) cannot run the {level} level: {lines}")

    def golden(self, task: ChunkTask) -> np.ndarray:
        self.check_workers(task.level)
        fut = self.client.submit(run_golden, task, pure=False)
        try:
            return fut.result()
        except Exception as exc:
            raise ExecutorError(f"the fault-free run failed on a Dask worker: {type(exc).__name__}: {exc}") from exc

    def map(self, task: ChunkTask, chunks: list, fn=run_faults, progress=None) -> Iterator[tuple]:
        """As InProcess.map; chunks report when they finish (``progress`` is
        not called: a chunk is one worker's 1,024 faults)."""
        from distributed import as_completed

        [shared] = self.client.scatter([task], broadcast=True)
        futures = [self.client.submit(run_chunk, shared, fs, fn, pure=False) for fs in chunks]
        try:
            for fut in as_completed(futures):
                if fut.status == "error":
                    exc = fut.exception()
                    raise ExecutorError(f"a chunk failed on a Dask worker: {type(exc).__name__}: {exc}")
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
