"""What a local run may take of this machine: workers by cores and memory,
and sizes refused up front when they cannot fit in memory.

``--jobs 1000`` on two cores once started a 1,000-worker Dask cluster (and
`fkhw tmr` 850 simulator processes) until the machine ran out of memory:
more workers than cores only queue, and each costs memory.
"""

from __future__ import annotations

import os
import sys

import psutil

# one local worker: a Dask worker holding a level and a chunk's results (up to 256 MiB of latent codes,
# fkhw.campaign.run._CHUNK_PAIRS), or a simulator process (cocotb + a Verilator model)
WORKER_BYTES = 512 << 20
# the share of the available memory a size may plan to use: the rest is for everything else that runs
MEMORY_SHARE = 0.5


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_memory() -> int:
    """Bytes of memory available to new processes now."""
    return int(psutil.virtual_memory().available)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def local_jobs(requested: int | None, option: str = "--jobs", per_worker: int = WORKER_BYTES,
               say=_stderr) -> int | None:
    """``requested`` local workers (or simulator processes) capped at the
    usable cores and at what the available memory holds at ``per_worker``
    bytes each; ``say`` gets one line when it caps. None (the command's
    default: one per core) stays None."""
    if requested is None:
        return None
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ValueError(f"{option} {requested!r}: give a whole number of workers, at least 1")
    cores = usable_cores()
    by_memory = max(1, available_memory() // per_worker)
    jobs = min(requested, cores, by_memory)
    if jobs < requested:
        why = f"{cores} cores" if jobs == cores else \
            f"{_size(available_memory())} of memory available, ~{_size(per_worker)} per worker"
        say(f"{option} {requested}: using {jobs} ({why})")
    return jobs


def too_big(option: str, count: int, per_item: int, what: str, share: float = MEMORY_SHARE) -> str | None:
    """Why ``count`` items of ``per_item`` bytes each cannot be held in
    memory (one line naming ``option`` and the most that fits), or None."""
    limit = int(share * available_memory()) // max(1, per_item)
    if count <= limit:
        return None
    return (f"{option} {count}: needs ~{_size(count * per_item)} of memory (~{_size(per_item)} per {what}), "
            f"{_size(available_memory())} available: at most {limit:,} on this machine now")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"
