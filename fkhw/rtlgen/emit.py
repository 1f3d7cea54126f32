"""Integer IR -> synthesizable Verilog-2005, its register map and metadata.

The hand-written blocks live in ``templates/*.v`` (register file, pipeline
stage, round-half-even saturating requantizer, dot product, conv2d, dense,
max and average pooling); the generator only emits the wiring between them:
``fkhw_encoder.v``. A 1-D layer (conv1d, 1-D pooling) is the height-1 case
of the 2-D block: same register order, same windows.

Architecture (fully parallel, II = 1):

* every parameter (weight or bias code) is one register of ``fmt.bits``
  flip-flops in a per-tensor ``fkhw_regfile``; register address = parameter
  number in site order (layers in model order, kernel before bias, C-order
  index), so ``site = tensor.offset + index*bits + bit`` lives in register
  ``tensor.base + index`` at Verilog bit ``bits-1-bit`` (site bit 0 = MSB);
* the configuration port (``cfg_we``, ``cfg_addr``, ``cfg_data``) writes one
  register per clock; ``cfg_data[bits-1:0]`` is the code's bit pattern;
* pipeline registers: one in front of every MAC or pooling layer (the
  first one registers the input) and one on the output; quantizers,
  flattens and reshapes are combinational between them. LATENCY = number of
  stages. A stage register counts only the elements some output depends on
  (synthesis removes the others). The layout is fkhw.model.stages'.

The parts: the layout (fkhw.model.stages), one emitter per layer kind
(fkhw.rtlgen.layers), the pipeline registers (fkhw.rtlgen.pipeline), the
register files (fkhw.rtlgen.regfiles), the text around them
(fkhw.rtlgen.header); which design is written is a
:class:`~fkhw.rtlgen.variant.DesignVariant` value.

Everything here is pure: :func:`generate` validates the whole IR first and
raises :class:`RtlUnsupported` naming the layer before anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fkhw import __version__
from fkhw.outpaths import make_dir, write_text
from fkhw.faults.sites import SiteSpace
from fkhw.model.ir import IR_VERSION, IntegerModel
from fkhw.model.stages import Layout, RtlUnsupported
from fkhw.rtlgen.header import defs, ecc_err, header, ports, tmr_err
from fkhw.rtlgen.layers import KINDS, Bus, LayerIn
from fkhw.rtlgen.pipeline import stage_code, stage_protection
from fkhw.rtlgen.regfiles import RegisterMap, ecc_meta, protection_masks, regfile_code, tmr_meta, tmrg_meta
from fkhw.rtlgen.variant import DesignVariant
from fkhw.rtlgen.verilog import DEFS_FILE, META_FILE, REGMAP_FILE, REPLICA_MEMS, SPDX, TOP, TOP_FILE, ident

__all__ = ["generate", "write_rtl", "RtlDesign", "RtlUnsupported", "DesignVariant", "PLAIN", "TOP", "TOP_FILE",
           "DEFS_FILE", "META_FILE", "REGMAP_FILE", "REPLICA_MEMS", "REGFILE_TEMPLATES", "TEMPLATES"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
TMR_TEMPLATES = ("fkhw_regfile_tmr.v", "fkhw_tmr_voter.v")  # only in hardened designs (the plain file set stays as it was)
PIPE_TMR_TEMPLATES = ("fkhw_pipe_tmr.v",)  # only in designs that triplicate pipeline or valid flip-flops
# the register files (parameter flip-flops, replicas, voters); every other template is the datapath
REGFILE_TEMPLATES = ("fkhw_regfile.v",) + TMR_TEMPLATES
PLAIN = DesignVariant.plain()


@dataclass
class RtlDesign:
    """Generated files (name -> text) plus what the tools need to know."""

    model: str
    files: dict
    meta: dict
    regmap: np.ndarray  # (n_sites, 3) site, reg, bit
    templates: list = field(default_factory=list)
    # a synthesised netlist (fkhw.rtlgen.netlist): (instance, memory, index, bit) -> (net, net bit, whole register)
    flip_flops: dict | None = None

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + self.files[name].encode() + b"\0")
        return h.hexdigest()[:16]

    def verilog_files(self, directory: Path) -> list:
        return [Path(directory) / n for n in sorted(self.files) if n.endswith(".v")]

    def write(self, out: Path) -> list:
        out = Path(out)
        make_dir(out)  # a link planted as the folder (e.g. OUT/hardened_rtl) is refused
        written = []
        for name, text in sorted(self.files.items()):
            p = out / name
            write_text(p, text)
            written.append(p)
        return written


@dataclass(frozen=True)
class _Datapath:
    """The layers and pipeline stages wired in order."""

    decl: list  # wire declarations (the stage voters' error nets last)
    body: list  # instances and assignments
    err_nets: list  # the triplicated stages' voter mismatches
    layers: list  # meta["layers"]
    stages: list  # meta["stages"]
    x: Bus  # in_data
    y: Bus  # the last stage's register: out_data
    valid: str  # its valid flag: out_valid


def generate(ir: IntegerModel, variant: DesignVariant = PLAIN) -> RtlDesign:
    """Verilog, regmap and metadata of ``variant`` (plain, hardened,
    self-correcting or TMRG, see fkhw.rtlgen.variant) for ``ir``; nothing is
    written. Raises RtlUnsupported for an IR the generator cannot build,
    SiteError / FaultError / ValueError for protected ids that do not fit."""
    layout = Layout.of(ir)  # validates the whole IR first
    space = SiteSpace.of(ir)
    sites, extra = variant.split(space.n_sites)
    masks = None if variant.kind == "plain" or variant.ecc else protection_masks(ir, sites)
    stage_prot = stage_protection(space.n_sites, layout.stages, extra)
    if stage_prot and not variant.hardened:
        raise ValueError("pipeline and valid flip-flops are protected only in the hardened encoder (not tmrg)")
    regs = RegisterMap.of(space)
    path = _datapath(ir, layout, stage_prot)
    rfs = [regfile_code(t, None if masks is None else masks[k], variant, regs.addr_bits)
           for k, t in enumerate(regs.tensors)]
    modules = dict(rf.module for rf in rfs if rf.module)
    ecc_files = dict(f for rf in rfs for f in rf.ecc_modules)  # a width's modules once, however many files use them
    meta = _meta(ir, regs, path, variant, masks, extra, sorted(n[:-2] for n in modules))
    top = "".join([
        f"{SPDX}\n`default_nettype none\n", header(ir.name, meta), ports(meta, variant),
        "    // ---- signals -------------------------------------------------------\n",
        "\n".join(path.decl + [line for rf in rfs for line in rf.decl]) + "\n\n",
        "    // ---- parameter register files (configuration port) -------------------\n",
        "\n".join(rf.body for rf in rfs) + "\n",
        "    // ---- datapath ---------------------------------------------------------\n",
        "\n".join(path.body) + "\n",
        f"    assign out_valid = {path.valid};\n",
        f"    assign out_data  = {path.y.name};\n"
        + (tmr_err([rf.err for rf in rfs if rf.err] + path.err_nets, variant.refresh) if variant.hardened else "")
        + (ecc_err([rf.ecc_err for rf in rfs if rf.ecc_err], meta["ecc"]["flags"]) if variant.ecc else "")
        + "\n",
        "endmodule\n", "`default_nettype wire\n"])
    files = {TOP_FILE: top, DEFS_FILE: defs(meta, variant.hardened), **modules, **ecc_files}
    if ecc_files:  # the files of its register files, for the area table's partition (fkhw.tmr.area)
        meta["ecc"]["files"] = sorted(ecc_files)
    templates = _templates(ir, variant.hardened, bool(stage_prot))
    for name in templates:
        files[name] = (TEMPLATES / name).read_text()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["site", "reg", "bit"])
    w.writerows(regs.regmap.tolist())
    files[REGMAP_FILE] = buf.getvalue()
    design = RtlDesign(ir.name, files, meta, regs.regmap, templates)
    meta["rtl_digest"] = _rtl_digest(files)
    files[META_FILE] = json.dumps(meta, indent=1) + "\n"
    return design


def _datapath(ir: IntegerModel, layout: Layout, stage_prot: dict) -> _Datapath:
    """Each layer through its kind's emitter, a pipeline register in front
    of every staged layer (a MAC's products and a pool's compare tree start
    at a register) and one on the output."""
    x = Bus("in_data", layout.specs[0], *layout.widths[0])
    cur, valid = x, "in_valid"
    decl, err_decl, body, err_nets, layers, stages = [], [], [], [], [], []
    staged = {st.layer_pos: st for st in layout.stages}
    for pos in range(len(ir.layers) + 1):
        if pos in staged:
            sc = stage_code(staged[pos], cur, valid, stage_prot.get(staged[pos].stage))
            decl += sc.decl
            body.append(sc.body)
            stages.append(sc.meta)
            if sc.err:
                err_nets.append(sc.err)
                err_decl.append(sc.err_decl)
            cur, valid = sc.q, sc.valid
        if pos == len(ir.layers):
            break
        layer = ir.layers[pos]
        code = KINDS[layer.kind].emit(LayerIn(layer, ident(layer.name), cur, layout.specs[pos + 1],
                                              *layout.widths[pos + 1]))
        decl.append(code.decl)
        body.append(code.body)
        layers.append(code.meta)
        cur = code.out
    return _Datapath(decl + err_decl, body, err_nets, layers, stages, x, cur, valid)


def _meta(ir: IntegerModel, regs: RegisterMap, path: _Datapath, variant: DesignVariant, masks, extra: tuple,
          modules: list) -> dict:
    """fkhw_encoder.json: ports, register files, stages, layers, the
    flip-flop count Yosys must find, and what is triplicated."""
    n_param_bits = ir.n_param_bits()
    latency = len(path.stages)
    pipe_bits = sum(s["ff_used"] for s in path.stages)
    hard, refresh = variant.hardened, variant.refresh
    n_prot = (int(sum(m.sum() for m in masks)) + len(extra)) if hard else 0
    ecc = ecc_meta(regs.tensors, variant.ecc) if variant.ecc else None
    n_check = ecc["check_flip_flops"] if ecc else 0
    x, y = path.x, path.y
    meta = {
        "generator": f"fkhw {__version__} (fkhw.rtlgen)",
        "fkhw_version": __version__,
        "model": ir.name,
        "source": dict(ir.source or {}),
        "ir_version": IR_VERSION,
        "top": TOP,
        "latency": latency,
        "ii": 1,
        "ports": {
            "in_data": {"bits": x.bits, "elements": x.n, "element_bits": x.width, "signed": x.signed,
                        "frac": x.spec.frac, "shape": list(x.spec.shape), "format": ir.input.fmt.describe()},
            "out_data": {"bits": y.bits, "elements": y.n, "element_bits": y.width,
                         "signed": y.signed, "frac": y.spec.frac, "shape": list(y.spec.shape)},
            "cfg_addr": {"bits": regs.addr_bits},
            "cfg_data": {"bits": regs.data_bits},
        },
        "n_registers": regs.n_regs,
        "n_param_bits": n_param_bits,
        "register_files": regs.tensors,
        "stages": path.stages,
        "layers": path.layers,
        # refresh: the sticky tmr_err flag is one more flip-flop
        "flip_flops_expected": n_param_bits + pipe_bits + latency + 2 * n_prot + int(refresh) + n_check,
        "flip_flops_breakdown": {"parameter_bits": n_param_bits, "pipeline_data_bits": pipe_bits,
                                 "valid_bits": latency, **({"tmr_replica_bits": 2 * n_prot} if hard else {}),
                                 **({"tmr_err_flag": 1} if refresh else {}),
                                 **({"ecc_check_bits": n_check} if variant.ecc else {})},
        "bit_order": "regmap.csv bit = Verilog bit index in the register and in cfg_data (LSB = 0); "
                     "fkhw site bit b (0 = MSB) of a register of W bits is Verilog bit W-1-b",
    }
    if hard:
        meta["tmr"] = tmr_meta(regs.tensors, masks, refresh)
        meta["tmr"]["flip_flops"] = list(extra)  # protected pipeline data bits and valid flags (flip-flop ids)
        meta["tmr"]["protected_flip_flops"] = meta["tmr"]["protected_bits"] + len(extra)
    if variant.kind == "tmrg":
        meta["tmrg"] = tmrg_meta(regs.tensors, masks, modules)
    if ecc:
        meta["ecc"] = ecc
    return meta


def _templates(ir: IntegerModel, hardened: bool, pipe_tmr: bool) -> list:
    """The hand-written blocks a design ships: the voters only in hardened
    designs, a layer kind's own blocks only when the model holds one."""
    optional = {n for kind in KINDS.values() for n in kind.templates}
    wanted = {n for kind in {layer.kind for layer in ir.layers} for n in KINDS[kind].templates}
    return sorted(p.name for p in TEMPLATES.glob("*.v")
                  if (hardened or p.name not in TMR_TEMPLATES) and (pipe_tmr or p.name not in PIPE_TMR_TEMPLATES)
                  and (p.name not in optional or p.name in wanted))


def _rtl_digest(files: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        if name.endswith((".v", ".vh")):
            h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()[:16]


def write_rtl(ir: IntegerModel, out: Path) -> RtlDesign:
    """Generate (validating everything first) and write into ``out``."""
    design = generate(ir)
    design.write(out)
    return design
