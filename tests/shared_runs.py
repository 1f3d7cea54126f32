"""Folders made once per test run and shared by every pytest-xdist worker.

``make test`` runs the suite on two workers, each with its own session
fixtures: a fixture that builds something slow (a model, a whole ``fkhw
sim``) built it once per worker. ``shared_folder`` makes it once for the
run: the first worker to ask makes it under a lock, in the folder the
workers' temporary folders share, and the others wait for it and reuse it.
A folder made this way is read-only for the tests that receive it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path


def shared_folder(tmp_path_factory, name: str, make) -> Path:
    """The folder ``name``, made by ``make(folder)`` once per test run."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # pytest-N/, shared by pytest-N/popen-gw0, popen-gw1, ...
    folder, done = base / name, base / f"{name}.done"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)  # a failure leaves no .done: the other worker, when it asks, tries again
            done.write_text("")
    return folder
