"""The package passes static checks: no undefined names, no unused imports,
and no ``from fkhw.x import name`` of a name that ``fkhw.x`` lacks (the bug
that once broke ``fkhw hessian`` with every other test green). Settings live
in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["fkhw", "bench", "tests"]  # the testbench is in fkhw/rtlgen/tb


@pytest.mark.parametrize("tool", [["ruff", "check"], ["pylint", "--score=n"]], ids=["ruff", "pylint"])
def test_static_check_is_clean(tool):
    exe = Path(sys.executable).parent / tool[0]
    r = subprocess.run([str(exe), *tool[1:], *CHECKED], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
