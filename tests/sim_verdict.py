"""What a test expects ``fkhw sim`` to exit with, read from the run's own verdicts."""

from __future__ import annotations

import json
from pathlib import Path


def sim_exit_status(out) -> int:
    """1 exactly when a check in ``out/sim_summary.json`` failed (a map NOT stable
    on its held-out modules, say), else 0: the run wrote its summary either way."""
    checks = json.loads((Path(out) / "sim_summary.json").read_text())["checks"]
    assert checks, "the run recorded no checks"
    return 0 if all(c["passed"] for c in checks) else 1
