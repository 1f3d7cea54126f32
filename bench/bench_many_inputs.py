"""Benchmark: the exhaustive software campaign at many inputs (issue 13).

Figures printed, for econt-bol with 1,024 and 4,096 modules (floors: 20 s
and 90 s wall on 2 cores, peak RSS <= 4 GiB, outputs.npz at 4,096 modules
<= 200 MB): wall time of the whole `fkhw campaign` command, its peak
memory and the size of outputs.npz, for this checkout and, as the baseline
in the same run, for the code before issue 13 (BASELINE_REF, extracted with
`git archive` into a temporary folder and run from there).

    .venv/bin/python bench/bench_many_inputs.py [--counts 1024 4096] [--no-baseline]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

BASELINE_REF = "849fbdd"  # the last commit before issue 13 (dense int16 latents, no intervals)
REPO = Path(__file__).resolve().parent.parent
FLOORS = {1024: 20.0, 4096: 90.0}
# runs a command and reports its peak RSS (this wrapper's only child)
_WRAP = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
         "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
         "print('PEAK_KIB', u.ru_maxrss, 'CPU_S', u.ru_utime + u.ru_stime, file=sys.stderr); "
         "sys.exit(r.returncode)")


def run(code_dir: Path | None, n: int, out: Path) -> tuple:
    env = dict(os.environ)
    if code_dir is not None:
        env["PYTHONPATH"] = str(code_dir) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-c", _WRAP, sys.executable, "-m", "fkhw", "campaign", "--model", "econt-bol",
           "--inputs", str(n), "--seed", "0", "--out", str(out), "--no-plot"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=code_dir or REPO)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({'baseline' if code_dir else 'this checkout'}, {n} modules):\n"
                         + proc.stderr[-2000:])
    fields = proc.stderr.rsplit("PEAK_KIB", 1)[1].split()
    peak, cpu = int(fields[0]) / 1024.0, float(fields[2])
    return wall, cpu, peak, (out / "outputs.npz").stat().st_size / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--no-baseline", action="store_true", help="skip the pre-issue-13 code")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base_dir = None
        if not args.no_baseline:
            base_dir = tmp / "baseline"
            base_dir.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", BASELINE_REF, "fkhw"], capture_output=True,
                                     check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base_dir)], input=archive, check=True)
        print(f"exhaustive software campaign, econt-bol, {10720} sites, whole `fkhw campaign` command")
        # CPU seconds (user + sys) next to wall: the machine may be shared; on 2 idle cores
        # the wall time of this single-process command is about its CPU time
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        print(f"{'modules':>8} {'code':<16} {'wall s':>8} {'CPU s':>7} {'peak RSS MiB':>13} {'outputs.npz MB':>15}  floor")
        for n in args.counts:
            runs = [("this checkout", None)] + ([(f"before ({BASELINE_REF})", base_dir)] if base_dir else [])
            for label, code in runs:
                wall, cpu, peak, size = run(code, n, tmp / f"{label[:4]}_{n}")
                floor = ""
                if code is None and n in FLOORS:
                    ok = wall <= FLOORS[n] and peak <= 4096 and (n != 4096 or size <= 200)
                    floor = (f"<= {FLOORS[n]:g} s, <= 4096 MiB" + (", <= 200 MB" if n == 4096 else "")
                             + (": met" if ok else ": MISSED"))
                print(f"{n:>8} {label:<16} {wall:8.1f} {cpu:7.1f} {peak:13.0f} {size:15.1f}  {floor}", flush=True)


if __name__ == "__main__":
    main()
