"""Where a command may write: checked before any work, creating nothing.

Every command checks its output folder (or file) here first, so a path it
cannot write is one line naming the option, not a traceback after minutes
of work, and a refused run leaves no new folder behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputError(ValueError):
    """An output path a command cannot write, naming the option."""


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_folder(folder: Path, path: Path, option: str) -> None:
    """``folder`` (where ``path`` goes) exists or can be made, and is writable."""
    anchor = _nearest_existing(folder)
    if not anchor.is_dir():
        raise OutputError(f"{option} {path}: cannot write there ({anchor} is a file, not a folder)")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: cannot write there ({anchor} is not writable)")
    try:  # permissions are not the whole story (root, read-only mounts, pseudo filesystems): try it
        with tempfile.TemporaryFile(dir=anchor):
            pass
    except OSError as e:
        raise OutputError(f"{option} {path}: cannot write there ({anchor}: {e.strerror or e})") from None


def check_out_dir(path, option: str = "--out") -> Path:
    """``path`` is a folder, or can be made one, and can be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path}: exists and is not a folder")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: cannot write there (folder is not writable)")
    _check_folder(path, path, option)
    return path


def check_out_file(path, option: str = "--out") -> Path:
    """``path`` is a file (or nothing yet) whose folder can be written."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a folder, give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{option} {path}: cannot write there (file is not writable)")
    _check_folder(path.parent, path, option)
    if not path.parent.is_dir():  # named here, not later as the temporary file a writer could not open in it
        raise OutputError(f"{option} {path}: no folder {path.parent} (create it first)")
    return path
