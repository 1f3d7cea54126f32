"""The synthesised netlist of an encoder as another device under test.

:func:`synthesize_netlist` runs Yosys (generic ``synth`` + ABC, each
distinct ``fkhw_dot`` once, see :mod:`fkhw.rtlgen.synth`) on a generated
design (plain or hardened) and writes the gate-level netlist as Verilog.
The result is an :class:`~fkhw.rtlgen.emit.RtlDesign` with the same top
name, the same ports and the same ``regmap.csv``: the HDL testbench
(``fkhw/rtlgen/tb/``) and the RTL levels run it exactly as they run the RTL.

What changes is where a parameter bit lives. Yosys turns register ``i`` of
register file ``rf_x`` (``rf_x.mem[i]`` in the RTL) into flip-flops on a
net it names ``\\rf_x.mem[i]``; this module renames those nets to plain
identifiers, ``rf_x__mem_i`` (replicas ``rf_x__mem_b_i``, ``rf_x__mem_c_i``),
so the testbench can deposit into them, and then reads the netlist back:
every flip-flop (an assignment ``<=`` in an ``always @(posedge clk)`` block
of the netlist) is classified as a parameter bit (through the register map:
site -> register -> net and bit), a TMR replica, or a pipeline / valid bit.
``meta["netlist"]`` holds the counts, ``unmapped`` must be 0 and every
parameter bit must be found (:class:`NetlistError` otherwise), and
``netlist_regmap.csv`` (``site,reg,bit,net``) names each site's flip-flop.

The RTL level (fkhw.levels.rtl.fault_deposits) deposits each upset into the
flip-flop :func:`flip_flop_map` names: the same bit, in the renamed net of
the same register. Pipeline registers are
renamed too (``u_stage<k>__q``, ``u_stage<k>__q_reg_<bit>``,
``u_stage<k>__q_valid``) and public, so they can be upset as well.

The netlist is cached on disk by the content hash of the RTL and the Yosys
script (``~/.cache/fkhw/netlist/<key>``, see fkhw.host.cachedirs; ``FKHW_NETLIST_CACHE`` moves it).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from fkhw.errors import ToolFailure
from fkhw.rtlgen.emit import (DEFS_FILE, META_FILE, REGFILE_TEMPLATES, REGMAP_FILE, REPLICA_MEMS, TOP, TOP_FILE,
                              RtlDesign, _rtl_digest)
from fkhw.rtlgen.verilog import SPDX
from fkhw.rtlgen.synth import synth, synth_script

NETLIST_FILE = f"{TOP}_netlist.v"
VLT_FILE = f"{TOP}_netlist.vlt"
NETLIST_REGMAP = "netlist_regmap.csv"
KEEP = ("fkhw_dot",)
# the memories of a register file whose flip-flops the netlist names: the replicas' and a SEC-DED file's check bits
MEMS = REPLICA_MEMS + ("mem_chk",)
NETLIST_VERSION = 3  # bump when the renaming or the script changes

_REG_NET = re.compile(r"\\(rf_[A-Za-z0-9_]+)\.(" + "|".join(MEMS) + r")\[(\d+)\] ")
# a register bit Yosys kept as a flip-flop of its own (per-bit always blocks: the TMR register file)
_BIT_NET = re.compile(r"\\(rf_[A-Za-z0-9_]+)\.(" + "|".join(MEMS) + r")_reg\[(\d+)\]\[(\d+)\] ")
# pipeline registers: the stage's whole data register, a bit Yosys kept on its own, the valid flag
_PIPE_NET = re.compile(r"\\u_stage(\d+)\.q(?:_reg\[(\d+)\]|(_valid))? ")
_PARAMOD = re.compile(r"\\\$paramod\$([0-9a-f]+)\\([A-Za-z_][A-Za-z0-9_]*) ")
_FF_LHS = re.compile(r"^\s*(?:if \(.*\) |else )?(\\\S+ |[A-Za-z_][A-Za-z0-9_$]*)\s*(?:\[(\d+)\])?\s*<=")
_DECL = re.compile(r"^\s*(?:reg|wire|output|input)\s+(?:\[(\d+):(\d+)\]\s+)?(\\\S+ |[A-Za-z_][A-Za-z0-9_$]*)\s*;")


class NetlistError(ToolFailure):
    """The netlist does not hold what the RTL promised (a parameter bit or a
    replica lost in synthesis, or a flip-flop nobody can name)."""


def reg_net(instance: str, mem: str, index: int) -> str:
    """The netlist name of register ``index`` (replica ``mem``) of a register file."""
    return f"{instance}__{mem}_{index}"


def default_cache() -> Path:
    """The netlists: the user cache (fkhw.host.cachedirs; FKHW_NETLIST_CACHE moves it)."""
    from fkhw.host.cachedirs import cache_dir

    return cache_dir("netlist")


def bit_net(instance: str, mem: str, index: int, bit: int) -> str:
    """The netlist name of a register bit that Yosys kept as its own flip-flop."""
    return f"{instance}__{mem}_{index}_{bit}"


def pipe_net(stage: int, bit: int | None = None, valid: bool = False) -> str:
    """The netlist name of stage ``stage``'s data register (``bit``: a bit
    Yosys kept as a flip-flop of its own) or valid flag."""
    base = f"u_stage{stage}__q"
    return base + "_valid" if valid else base if bit is None else f"{base}_reg_{bit}"


def _rename_pipeline(text: str) -> str:
    """Plain names for the pipeline flip-flops (applied when a cached
    netlist is read, so older caches need no new synthesis)."""
    return _PIPE_NET.sub(lambda m: pipe_net(int(m.group(1)), None if m.group(2) is None else int(m.group(2)),
                                            bool(m.group(3))) + " ", text)


def _rename(text: str) -> str:
    text = _REG_NET.sub(lambda m: reg_net(m.group(1), m.group(2), int(m.group(3))) + " ", text)
    text = _BIT_NET.sub(lambda m: bit_net(m.group(1), m.group(2), int(m.group(3)), int(m.group(4))) + " ", text)
    # distinct versions of a kept module: plain names (fkhw_dot_<hash>) instead of \$paramod$<hash>\fkhw_dot
    return _PARAMOD.sub(lambda m: f"{m.group(2)}_{m.group(1)[:12]} ", text)


def flip_flops(text: str, top: str = TOP) -> dict:
    """{net: set of bits} of every flip-flop in module ``top`` of a Yosys
    netlist (each ``<=`` target; a net written without a bit select is
    expanded to its declared width)."""
    widths, ffs = {}, {}
    in_top = False
    for ln in text.splitlines():
        if ln.startswith("module "):
            in_top = ln.split()[1].split("(")[0] == top
            continue
        if not in_top:
            continue
        m = _DECL.match(ln)
        if m:
            name = m.group(3).strip()
            widths[name] = (int(m.group(1)), int(m.group(2))) if m.group(1) is not None else (0, 0)
            continue
        m = _FF_LHS.match(ln)
        if m:
            name = m.group(1).strip()
            if m.group(2) is not None:
                ffs.setdefault(name, set()).add(int(m.group(2)))
            else:
                hi, lo = widths.get(name, (0, 0))
                ffs.setdefault(name, set()).update(range(min(hi, lo), max(hi, lo) + 1))
    return ffs


def flip_flop_map(ffs: dict, meta: dict) -> dict:
    """(instance, memory, index, Verilog bit) -> (net, bit of the net, whole)
    for every register-file flip-flop of the netlist; ("pipe", stage,
    Verilog bit) and ("valid", stage) for the pipeline's. ``whole``: the net
    is the whole register (deposit the register value), else a one-bit net
    of its own (deposit the bit)."""
    names = {}
    rows = [(rf["instance"], mem, rf["count"], rf["bits"]) for rf in meta["register_files"] for mem in REPLICA_MEMS]
    rows += [(e["instance"], "mem_chk", e["words"], e["check_bits"])  # a SEC-DED file: a check register per word
             for e in meta.get("ecc", {}).get("register_files", [])]
    for inst, mem, count, width in rows:
        for i in range(count):
            names[reg_net(inst, mem, i)] = (inst, mem, i, None)
            for j in range(width):
                names[bit_net(inst, mem, i, j)] = (inst, mem, i, j)
    out = {}
    for k in range(int(meta["latency"])):
        names[pipe_net(k, valid=True)] = ("valid", k)
        names[pipe_net(k)] = ("pipe", k, None)
    for net, bits in ffs.items():
        key = names.get(net)
        m = re.match(r"^u_stage(\d+)__q_reg_(\d+)$", net)
        if m:  # one bit of a stage's data register
            out["pipe", int(m.group(1)), int(m.group(2))] = (net, 0, False)
            continue
        if key is None:
            continue
        if key[0] == "valid":
            out[key] = (net, 0, False)
            continue
        if key[0] == "pipe":
            for b in bits:
                out["pipe", key[1], b] = (net, b, True)
            continue
        inst, mem, i, j = key
        for b in bits:
            if j is None:
                out[inst, mem, i, b] = (net, b, True)
            else:
                out[inst, mem, i, j] = (net, 0, False)
    return out


def classify(ffs: dict, meta: dict, regmap: np.ndarray) -> tuple:
    """Which netlist flip-flop holds what: per site its net and bit, the
    replica flip-flops of protected bits, the check bits of SEC-DED words,
    pipeline/valid bits, and the
    flip-flops nobody can name (must be none). Returns (counts, per-site
    net names, flip-flop map of :func:`flip_flop_map`)."""
    ffmap = flip_flop_map(ffs, meta)
    by_addr = {}
    for rf in meta["register_files"]:
        for i in range(rf["count"]):
            by_addr[rf["base"] + i] = (rf["instance"], i)
    found = np.zeros(regmap.shape[0], dtype=bool)
    nets = []
    claimed = set()
    for k, (site, reg, bit) in enumerate(regmap.tolist()):
        inst, idx = by_addr[reg]
        hit = ffmap.get((inst, "mem", idx, bit))
        nets.append(f"{hit[0]}[{hit[1]}]" if hit else "")
        if hit:
            found[k] = True
            claimed.add(hit[:2])
    replicas_expected, replicas_found = 0, 0
    missing_replicas = []
    for e in meta.get("tmr", {}).get("sites", []):
        for mem in REPLICA_MEMS[1:]:
            replicas_expected += 1
            hit = ffmap.get((e["instance"], mem, e["index"], e["bit"]))
            if hit:
                replicas_found += 1
                claimed.add(hit[:2])
            else:
                missing_replicas.append([e["site"], mem])
    checks_expected, checks_found, missing_checks = 0, 0, []
    for e in meta.get("ecc", {}).get("register_files", []):
        constant = {tuple(c) for c in e["constant_checks"]}  # no flip-flop to find (fkhw.faults.codes.Words)
        for w in range(e["words"]):
            for b in range(e["check_bits"]):
                if (w, b) in constant:
                    continue
                checks_expected += 1
                hit = ffmap.get((e["instance"], "mem_chk", w, b))
                if hit:
                    checks_found += 1
                    claimed.add(hit[:2])
                else:
                    missing_checks.append(f"{e['instance']}.mem_chk[{w}][{b}]")
    pipeline = 0
    for net, bits in ffs.items():
        if re.match(r"^u_stage\d+__q(_valid|_reg_\d+)?$", net):  # Yosys keeps some q bits as q_reg[k]
            pipeline += len(bits)
            claimed.update((net, b) for b in bits)
    total = sum(len(b) for b in ffs.values())
    unmapped = sorted(f"{n}[{b}]" for n, bits in ffs.items() for b in bits if (n, b) not in claimed)
    counts = {
        "flip_flops": total,
        "parameter_bits": int(regmap.shape[0]),
        "parameter_bits_found": int(found.sum()),
        "parameter_bits_missing": regmap[~found, 0][:20].tolist(),
        "replica_flip_flops_expected": replicas_expected,
        "replica_flip_flops_found": replicas_found,
        "replicas_missing": missing_replicas[:20],
        "check_flip_flops_expected": checks_expected,
        "check_flip_flops_found": checks_found,
        "checks_missing": missing_checks[:20],
        "pipeline_and_valid_flip_flops": pipeline,
        "unmapped": len(unmapped),
        "unmapped_first": unmapped[:20],
    }
    return counts, nets, ffmap


# what -Wall finds in any Yosys netlist, and why it is not a defect here
NETLIST_WAIVERS = {
    "UNUSEDSIGNAL": "RTL net names Yosys keeps on nets without loads (buses, accumulator bits above the kept ones)",
    "UNDRIVEN": "bits of RTL vectors whose flip-flops synthesis removed (pipeline bits no conv window reads)",
    "DECLFILENAME": "one file holds the top and the kept fkhw_dot versions",
}


def _vlt(hier_blocks: bool = True) -> str:
    lines = ["`verilator_config",
             "// fkhw netlist: the register nets the testbench deposits into are public.",
             "// -Wall on the Yosys netlist: only these rules are waived (every other warning stays on):"]
    for rule, why in NETLIST_WAIVERS.items():
        lines += [f"//   {rule}: {why}", f"lint_off -rule {rule} -file \"*{NETLIST_FILE}\""]
    # each distinct kept module (econt-bol: 4 dot-product versions, 144 instances) is verilated and
    # compiled once as a hierarchical block (verilator --hierarchical): inlined, the 1.16 M gates of
    # econt-bol did not convert in 900 s; as blocks the testbench build took 82 s (2 cores, quiet)
    lines += [f"hier_block -module \"{m}_*\"" for m in KEEP if hier_blocks]
    lines.append(f"public_flat_rw -module \"{TOP}\" -var \"rf_*__mem*\"")
    lines.append(f"public_flat_rw -module \"{TOP}\" -var \"u_stage*__q*\"")
    return "\n".join(lines) + "\n"


def _key(design: RtlDesign) -> str:
    h = hashlib.sha256(json.dumps([NETLIST_VERSION, synth_script([n for n in sorted(design.files) if n.endswith(".v")],
                                                                 TOP, keep=KEEP, netlist=NETLIST_FILE)]).encode())
    for name in sorted(design.files):
        if name.endswith((".v", ".vh")):
            h.update(name.encode() + b"\0" + re.sub(r"//[^\n]*", "", design.files[name]).encode() + b"\0")
    return h.hexdigest()[:20]


def synthesize_netlist(design: RtlDesign, cache: Path | None = None, progress=None, strict: bool = True) -> RtlDesign:
    """The gate-level netlist of ``design`` as a design the testbench runs
    (cached). ``strict``: raise NetlistError when a parameter bit or a
    replica has no flip-flop or a flip-flop has no name; with ``strict=False``
    the counts are only recorded in ``meta['netlist']``."""
    cache = Path(cache) if cache is not None else default_cache()
    key = _key(design)
    done = cache / key
    if not (done / NETLIST_FILE).is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix="work-"))
        try:
            design.write(tmp / "rtl")
            t0 = time.time()
            res = synth(design.verilog_files(tmp / "rtl"), TOP, work_dir=tmp / "synth", include_dirs=[tmp / "rtl"],
                        keep=KEEP, netlist=NETLIST_FILE, progress=progress)
            out = tmp / "out"
            out.mkdir()
            (out / NETLIST_FILE).write_text(
                f"{SPDX}\n// {TOP}: gate-level netlist written by Yosys ({res['cells']} cells, "
                f"{res['flip_flops']} flip-flops)\n"
                f"// from the fkhw RTL of model {design.model} (rtl digest {design.meta.get('rtl_digest')});\n"
                "// register nets renamed rf_<tensor>__mem_<index> by fkhw.rtlgen.netlist.\n"
                + _rename(Path(res["netlist"]).read_text()))
            (out / "synth.json").write_text(json.dumps({k: v for k, v in res.items() if k not in ("log", "netlist")}
                                                       | {"wall_seconds": round(time.time() - t0, 1)}, indent=1))
            try:
                os.replace(out, done)
            except OSError:  # another process finished first
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    text = _rename_pipeline((done / NETLIST_FILE).read_text())
    synth_info = json.loads((done / "synth.json").read_text())
    info, nets, ffmap = classify(flip_flops(text), design.meta, design.regmap)
    meta = json.loads(json.dumps(design.meta))
    meta["netlist"] = {**info, "synthesis": synth_info, "cache": str(done)}
    return _netlist_design(design, text, meta, info, nets, ffmap, done / NETLIST_FILE, strict)


def _netlist_design(design: RtlDesign, text: str, meta: dict, info: dict, nets: list, ffmap: dict, where: Path,
                    strict: bool, extra_files: dict | None = None, hier_blocks: bool = True) -> RtlDesign:
    if strict:
        problems = []
        if info["parameter_bits_found"] != info["parameter_bits"]:
            problems.append(f"{info['parameter_bits'] - info['parameter_bits_found']} parameter bit(s) have no "
                            f"flip-flop (first sites: {info['parameter_bits_missing'][:5]})")
        if info["replica_flip_flops_found"] != info["replica_flip_flops_expected"]:
            problems.append(f"{info['replica_flip_flops_expected'] - info['replica_flip_flops_found']} TMR replica "
                            f"flip-flop(s) were merged or removed by synthesis (first: {info['replicas_missing'][:3]})")
        if info.get("check_flip_flops_found") != info.get("check_flip_flops_expected"):
            problems.append(f"{info['check_flip_flops_expected'] - info['check_flip_flops_found']} check bit "
                            f"flip-flop(s) were merged or removed by synthesis (first: {info['checks_missing'][:3]})")
        if info["unmapped"]:
            problems.append(f"{info['unmapped']} flip-flop(s) are neither parameter bits, replicas nor pipeline "
                            f"(first: {info['unmapped_first'][:3]})")
        if problems:
            raise NetlistError(f"netlist of {design.model} ({where}): " + "; ".join(problems))
    files = {NETLIST_FILE: text, VLT_FILE: _vlt(hier_blocks), DEFS_FILE: design.files[DEFS_FILE],
             REGMAP_FILE: design.files[REGMAP_FILE], **(extra_files or {})}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["site", "reg", "bit", "net"])
    w.writerows([s, r, b, n] for (s, r, b), n in zip(design.regmap.tolist(), nets))
    files[NETLIST_REGMAP] = buf.getvalue()
    meta["rtl_digest"] = _rtl_digest({**files, "netlist.vlt.v": files[VLT_FILE]})
    files[META_FILE] = json.dumps(meta, indent=1) + "\n"
    return RtlDesign(design.model, files, meta, design.regmap, [], flip_flops=ffmap)


def regfile_netlist_design(design: RtlDesign, netlist: Path, synth_info: dict, strict: bool = True) -> RtlDesign:
    """``design`` with its register files replaced by their Yosys netlist
    (``netlist``: the register-file run of the area table,
    fkhw.tmr.area.regfile_netlist; the top and every register-file flip-flop,
    replica and voter as gates, the datapath modules as instances) and the
    datapath as RTL. This is where synthesis can merge or remove TMR
    replicas; the datapath is the same as in the plain design. Its
    flip-flops are named and checked as in :func:`synthesize_netlist`
    (every parameter bit, every replica, none unnamed); the pipeline
    registers stay in the RTL modules and are not counted."""
    text = _rename(Path(netlist).read_text())
    text = (f"// {TOP}: register files as a gate-level netlist written by Yosys ({synth_info['cells']} cells, "
            f"{synth_info['flip_flops']} flip-flops), datapath modules instantiated from the RTL\n"
            f"// from the fkhw RTL of model {design.model} (rtl digest {design.meta.get('rtl_digest')});\n"
            "// register nets renamed rf_<tensor>__mem_<index> by fkhw.rtlgen.netlist.\n" + text)
    info, nets, ffmap = classify(flip_flops(text), design.meta, design.regmap)
    meta = json.loads(json.dumps(design.meta))
    meta["netlist"] = {**info, "scope": "register files", "synthesis": synth_info, "cache": str(netlist)}
    datapath = {n: t for n, t in design.files.items()
                if n.endswith(".v") and n != TOP_FILE and n not in REGFILE_TEMPLATES}
    return _netlist_design(design, text, meta, info, nets, ffmap, Path(netlist), strict, extra_files=datapath,
                           hier_blocks=False)
