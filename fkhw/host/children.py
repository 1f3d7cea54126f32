"""Every process a run of fkhw starts ends with it.

fkhw starts its tools in process groups of their own (the Verilator build,
the simulator processes, the background Yosys runs of ``fkhw sim``: a
timeout then kills a whole group), so a Ctrl-C at the terminal, which
signals the foreground group only, does not reach them, and a SIGTERM
reaches fkhw alone. :class:`ChildProcesses`, entered by the CLI around one
command, ends them:

* on SIGINT or SIGTERM it ends every process started since it was entered
  (and everything those started), then raises :class:`Interrupted` in the
  main thread so that the command unwinds (its ``finally`` blocks find their
  processes gone instead of waiting for them);
* on leaving, it ends the process groups started since it was entered that
  are still running (after an interrupt: every process started since).

Which processes: the descendants of this process that were not yet its
children when the run began (a caller's own, e.g. a test's Dask cluster, are
left alone), read from the process table when they are to be ended rather
than registered by each caller: tools are started in six modules and in
worker threads (the Yosys runs of the area table), and the processes those
start (make, cc1plus, Dask workers) are never seen by fkhw's code. Each
process group found is signalled as a whole as well, so that a process
forked between the look and the signal (make starting the next compiler)
goes with its group.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil

GRACE_S = 0.5  # from SIGTERM to SIGKILL: a tool that cleans up on SIGTERM has this long
ROUNDS = 5  # looks at the process table: a process may start another while the one before it ends


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: the command stops (exit status 128 + signum)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class ChildProcesses:
    """Context manager: the processes started while it is entered end with it
    (see the module docstring). ``signum``: the signal that interrupted the
    run, or None."""

    def __init__(self, grace: float = GRACE_S):
        self.grace = grace
        self.signum: int | None = None
        self._me = psutil.Process()
        self._group = os.getpgrp()
        self._callers: set = set()
        self._saved: dict = {}
        self._ending = False

    def __enter__(self) -> "ChildProcesses":
        self._callers = {k for k in map(_identity, self._me.children()) if k is not None}
        # signal handlers can only be set from the main thread; from another one, leaving still ends the groups
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._saved[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc) -> bool:
        try:
            self.end(everything=self.signum is not None)
        finally:
            for signum, handler in self._saved.items():
                signal.signal(signum, handler)
            self._saved = {}
        return False

    def _on_signal(self, signum: int, frame) -> None:
        if self._ending:
            return  # a second signal while they are being ended: that goes on, then the first one's exception
        self.signum = self.signum or signum
        self.end(everything=True)
        raise Interrupted(signum)

    def started(self) -> list:
        """The running processes started since entry, and their descendants."""
        found = []
        for child in self._me.children():
            if _identity(child) in self._callers:
                continue
            try:
                found += [child] + child.children(recursive=True)
            except psutil.NoSuchProcess:
                continue
        return found

    def end(self, everything: bool = True) -> None:
        """SIGTERM, then after ``grace`` seconds SIGKILL, to the processes started
        since entry (``everything``) or to those of them in process groups of
        their own, and to those groups."""
        if self._ending:
            return
        self._ending = True
        try:
            for _ in range(ROUNDS):
                procs, groups = [], set()
                for p in self.started():
                    try:
                        group = os.getpgid(p.pid)
                    except ProcessLookupError:
                        continue
                    if group != self._group:
                        groups.add(group)
                        procs.append(p)
                    elif everything:
                        procs.append(p)
                procs = [p for p in procs if _alive(p)]
                if not procs:
                    return
                _send(procs, groups, signal.SIGTERM)
                left = _wait_gone(procs, self.grace)
                _send(left, groups, signal.SIGKILL)
                _wait_gone(left, self.grace)
        finally:
            self._ending = False


def _identity(p: psutil.Process):
    """(pid, start time): a pid alone may be reused by a later process."""
    try:
        return p.pid, p.create_time()
    except psutil.NoSuchProcess:
        return None


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _send(procs: list, groups: set, signum: int) -> None:
    for group in groups:
        try:
            os.killpg(group, signum)
        except (ProcessLookupError, PermissionError):
            pass
    for p in procs:
        try:
            p.send_signal(signum)
        except psutil.NoSuchProcess:
            pass


def _wait_gone(procs: list, timeout: float) -> list:
    """The processes still alive after at most ``timeout`` seconds. Polled,
    never waited for: reaping a child here would leave its Popen object an
    exit status of 0 instead of the signal."""
    deadline = time.monotonic() + timeout
    left = [p for p in procs if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if _alive(p)]
    return left
