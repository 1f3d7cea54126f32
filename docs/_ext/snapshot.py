"""Copy the results of a ``fkhw sim`` run into ``docs/results/<model>/``.

``make docs-results MODEL=... OUT=...`` runs this after ``make sim``: the
pages show only numbers read from these files, so what the documentation
says is what a run produced. Besides the copies it writes
``provenance.json``: the command, the commit of the checkout, when the run
finished, and the machine.

    python docs/_ext/snapshot.py --out out/econt-bol --model econt-bol --command "make sim"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# what the pages read, relative to the run's folder (fkhw sim's layout)
FILES = (
    "sim_summary.json",
    "rtl/synth_report.json",
    "campaign_software/summary.json",
    "campaign_software/figure1.png",
    "campaign_rtl/summary.json",
    "campaign_rtl/agreement.json",
    "replay/replay.json",
    "replay/replay.png",
    "tmr/tmr_report.json",
    "tmr/figure1_tmr.png",
    "tmr/tradeoff.png",
    "faults/risk.json",
    "faults/risk.png",
    "rate/rate.json",
    "rate/rate.png",
    "protect/protect.json",
    "protect/protect.png",
    "report.html",
    "report.md",
    "results.xml",
)


def _git(*args) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def snapshot(run: Path, dest: Path, command: str, note: str | None = None) -> list:
    missing = [f for f in FILES if not (run / f).is_file()]
    if missing:
        raise SystemExit(f"snapshot: {run} lacks {', '.join(missing)} (a finished `fkhw sim` run without "
                         "--no-synth / --no-rates / --no-protect?)")
    # the checkout as the run left it: the snapshot's own copies below do not make it dirty
    commit = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs/results"))
    if dest.exists():
        shutil.rmtree(dest)
    for f in FILES:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / f, dest / f)
    finished = datetime.fromtimestamp((run / "sim_summary.json").stat().st_mtime, timezone.utc)
    provenance = {
        "command": command,
        "run_folder": str(run),
        "commit": commit,
        "dirty": dirty,
        "finished": finished.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{_cpu()}, {platform.system()} {platform.release()}, Python {platform.python_version()}",
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_gib(), 1),
        **({"note": note} if note else {}),
    }
    (dest / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return [dest / f for f in FILES] + [dest / "provenance.json"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="the fkhw sim output folder (out/<model>)")
    p.add_argument("--model", required=True, help="the snapshot's name: docs/results/<model>/")
    p.add_argument("--command", required=True, help="the command that produced the run, as typed")
    p.add_argument("--note", default=None, help="what else a reader should know of the run (e.g. a shared machine)")
    args = p.parse_args(argv)
    files = snapshot(args.out, ROOT / "docs" / "results" / args.model, args.command, args.note)
    print(f"{len(files)} files -> docs/results/{args.model}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
