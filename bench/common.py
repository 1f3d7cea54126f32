"""Shared bits of the benchmarks: what machine the figures come from."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB, Python {platform.python_version()}"


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and every child it waited for, so far."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_timed(cmd: list, env: dict | None = None) -> tuple:
    """(wall seconds, peak RSS MiB of the child, completed process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}")
    # ru_maxrss of children is the max over all children so far
    return wall, max(peak, before) / 1024.0, proc


def fkhw_cmd(*args) -> list:
    return [sys.executable, "-m", "fkhw", *args]
