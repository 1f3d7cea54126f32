"""Watching the processes an fkhw command starts (tests of interrupts and of
resource limits): fkhw runs as from a terminal, in a session of its own, and
every process seen under it is remembered, with its process group, so that
one that outlives fkhw (reparented away from it) is still found."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def fkhw_env(tmp_path: Path, **extra) -> dict:
    """fkhw's environment with its caches (Verilator builds, Yosys results,
    netlists) in empty folders under ``tmp_path``: nothing is reused from
    another run, and this checkout's fkhw is the one imported."""
    env = dict(os.environ)
    cache = Path(tmp_path) / "caches"
    env.update(FKHW_RTL_BUILD=str(cache / "rtl_sim"), FKHW_SYNTH_CACHE=str(cache / "synth"),
               FKHW_NETLIST_CACHE=str(cache / "netlist"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_fkhw(args, env: dict, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fkhw", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


class Watched:
    """``python -m fkhw ARGS`` in a new session; its output goes to a file."""

    def __init__(self, args, env: dict, cwd: Path):
        self.log = Path(cwd) / f"fkhw-{os.getpid()}-{time.monotonic_ns()}.log"
        with open(self.log, "w") as f:
            self.proc = subprocess.Popen([sys.executable, "-m", "fkhw", *map(str, args)], cwd=cwd, env=env,
                                         stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        self.seen: dict = {}  # (pid, start time) -> psutil.Process
        self.groups: set = {self.proc.pid}

    def look(self) -> list:
        """fkhw's descendants now (each one remembered)."""
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        now = []
        for p in kids:
            try:
                self.seen.setdefault((p.pid, p.create_time()), p)
                self.groups.add(os.getpgid(p.pid))
                now.append(p)
            except (psutil.NoSuchProcess, ProcessLookupError):
                pass
        return now

    def wait_for(self, pattern: str, timeout: float) -> str:
        """The command line of the first descendant that matches ``pattern``
        (a regular expression); fails when fkhw ends first or after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.look():
                try:
                    line = " ".join(p.cmdline())
                except psutil.NoSuchProcess:
                    continue
                if re.search(pattern, line):
                    return line
            if self.proc.poll() is not None:
                raise AssertionError(f"fkhw ended (exit {self.proc.returncode}) before a process matching "
                                     f"{pattern!r} ran:\n{self.output()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"no process matching {pattern!r} within {timeout:.0f} s:\n{self.output()[-3000:]}")

    def alive(self) -> list:
        """'pid command' of every live process fkhw started: its descendants
        seen, the members of their process groups and of fkhw's session (fkhw
        itself and zombies aside)."""
        found = {}
        for p in list(self.seen.values()) + list(psutil.process_iter()):
            try:
                if p.pid == self.proc.pid or not p.is_running() or p.status() == psutil.STATUS_ZOMBIE:
                    continue
                ours = (p.pid, p.create_time()) in self.seen or os.getpgid(p.pid) in self.groups \
                    or os.getsid(p.pid) == self.proc.pid
                if ours:
                    found[p.pid] = f"{p.pid} {' '.join(p.cmdline())[:160]}"
            except (psutil.NoSuchProcess, ProcessLookupError, PermissionError):
                continue
        return sorted(found.values())

    def watch_until(self, t: float) -> None:
        """Keep remembering descendants until monotonic time ``t``."""
        while time.monotonic() < t:
            self.look()
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill_all(self) -> None:
        """SIGKILL to fkhw and everything it started (a failed test leaves nothing running)."""
        for pid in [self.proc.pid] + [int(a.split()[0]) for a in self.alive()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for group in self.groups - {os.getpgrp()}:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
