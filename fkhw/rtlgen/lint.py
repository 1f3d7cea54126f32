"""``verilator --lint-only -Wall`` on generated Verilog."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from fkhw.rtlgen.tools import require_verilator, tool_env


@dataclass(frozen=True)
class LintResult:
    ok: bool
    warnings: int
    output: str
    command: list


def lint(verilog_files, top: str, include_dirs=(), timeout: float = 300) -> LintResult:
    """Lint as Verilog-2005 with every warning on. ``ok`` is True only when
    Verilator prints no warning and no error."""
    exe = require_verilator()
    files = [str(Path(f)) for f in verilog_files]
    cmd = [exe, "--lint-only", "-Wall", "--default-language", "1364-2005", "--top-module", top]
    cmd += [f"-I{d}" for d in include_dirs] + files
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=tool_env())
    out = (r.stdout + r.stderr).strip()
    n_warn = sum(1 for ln in out.splitlines() if ln.startswith("%Warning"))
    n_err = sum(1 for ln in out.splitlines() if ln.startswith("%Error"))
    return LintResult(r.returncode == 0 and n_warn == 0 and n_err == 0, n_warn + n_err, out, cmd)
