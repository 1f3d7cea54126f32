"""Integer IR -> synthesizable Verilog-2005, its register map and metadata.

The hand-written blocks live in ``templates/*.v`` (register file, pipeline
stage, round-half-even saturating requantizer, dot product, conv2d, dense);
this module only emits the wiring between them: ``fkhw_encoder.v``.

Architecture (fully parallel, II = 1):

* every parameter (weight or bias code) is one register of ``fmt.bits``
  flip-flops in a per-tensor ``fkhw_regfile``; register address = parameter
  number in site order (layers in model order, kernel before bias, C-order
  index), so ``site = tensor.offset + index*bits + bit`` lives in register
  ``tensor.base + index`` at Verilog bit ``bits-1-bit`` (site bit 0 = MSB);
* the configuration port (``cfg_we``, ``cfg_addr``, ``cfg_data``) writes one
  register per clock; ``cfg_data[bits-1:0]`` is the code's bit pattern;
* pipeline registers: one on the input, one after each MAC layer with the
  quantizers/flattens that follow it. LATENCY = number of stages.

Everything here is pure: :func:`generate` validates the whole IR first and
raises :class:`RtlUnsupported` naming the layer before anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fkhw import __version__
from fkhw.fixed import bits_for_range
from fkhw.model.ir import IR_VERSION, IntegerModel, TensorSpec, acc_frac, conv_geometry
from fkhw.sites import SiteSpace

TEMPLATES = Path(__file__).resolve().parent / "templates"
TOP = "fkhw_encoder"
TOP_FILE = f"{TOP}.v"
DEFS_FILE = f"{TOP}_defs.vh"
META_FILE = f"{TOP}.json"
REGMAP_FILE = "regmap.csv"
SUPPORTED = ("conv2d", "dense", "quant", "flatten")
MAX_PARAM_BITS = 32  # configuration word
MAX_QUANT_BITS = 31  # LO/HI travel as Verilog integer parameters


class RtlUnsupported(ValueError):
    """An IR the RTL generator cannot turn into Verilog (refused up front)."""


@dataclass
class Bus:
    """A tensor on a packed bus: element k at [k*width +: width]."""

    name: str
    spec: TensorSpec
    width: int
    signed: bool

    @property
    def n(self) -> int:
        return self.spec.size

    @property
    def bits(self) -> int:
        return self.n * self.width


@dataclass
class RtlDesign:
    """Generated files (name -> text) plus what the tools need to know."""

    model: str
    files: dict
    meta: dict
    regmap: np.ndarray  # (n_sites, 3) site, reg, bit
    templates: list = field(default_factory=list)

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
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in sorted(self.files.items()):
            p = out / name
            p.write_text(text)
            written.append(p)
        return written


def _ident(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not s or not (s[0].isalpha() or s[0] == "_"):
        s = "l_" + s
    return s


def _sv(flag: bool) -> int:
    return 1 if flag else 0


def check_supported(ir: IntegerModel) -> list:
    """Validate the IR; return its tensor specs. Raises RtlUnsupported."""
    for layer in ir.layers:
        if layer.kind not in SUPPORTED:
            raise RtlUnsupported(f"layer {layer.name!r}: kind {layer.kind!r} is not supported by the RTL generator "
                                 f"(supported: {', '.join(SUPPORTED)})")
        if layer.kind == "conv2d":
            if layer.padding not in ("same", "valid"):
                raise RtlUnsupported(f"layer {layer.name!r}: padding {layer.padding!r} is not supported (same, valid)")
            if len(layer.strides) != 2 or min(layer.strides) < 1:
                raise RtlUnsupported(f"layer {layer.name!r}: strides {layer.strides} are not supported")
            if layer.kernel.ndim != 4:
                raise RtlUnsupported(f"layer {layer.name!r}: conv2d kernel must be (kh, kw, cin, cout)")
        if layer.kind == "dense" and layer.kernel.ndim != 2:
            raise RtlUnsupported(f"layer {layer.name!r}: dense kernel must be (n_in, n_out)")
        if layer.kind in ("conv2d", "dense"):
            fmts = [("kernel", layer.kernel_fmt)] + ([("bias", layer.bias_fmt)] if layer.bias is not None else [])
            for tname, fmt in fmts:
                if fmt.bits > MAX_PARAM_BITS:
                    raise RtlUnsupported(f"layer {layer.name!r}: {tname} format {fmt.describe()} is wider than the "
                                         f"{MAX_PARAM_BITS}-bit configuration word")
        if layer.kind == "quant" and layer.fmt.bits > MAX_QUANT_BITS:
            raise RtlUnsupported(f"layer {layer.name!r}: quantizer format {layer.fmt.describe()} is wider than "
                                 f"{MAX_QUANT_BITS} bits")
    if not ir.param_layers():
        raise RtlUnsupported(f"model {ir.name!r} has no conv2d/dense layer: there is no register file to generate")
    if ir.input.fmt.bits > MAX_QUANT_BITS:
        raise RtlUnsupported(f"input {ir.input.name!r}: format {ir.input.fmt.describe()} is wider than {MAX_QUANT_BITS} bits")
    try:
        return ir.tensor_specs()
    except ValueError as e:
        raise RtlUnsupported(str(e)) from None


def _used_mask(layer, spec: TensorSpec) -> np.ndarray:
    """Which elements of a layer's input the layer reads (conv windows may
    skip pixels); register bits nobody reads are removed by synthesis."""
    if layer.kind != "conv2d":
        return np.ones(spec.size, dtype=bool)
    h, w, c = spec.shape
    kh, kw = layer.kernel.shape[:2]
    sh, sw = layer.strides
    oh, ow, pt, pl = conv_geometry(spec.shape, layer)
    used = np.zeros((h, w), dtype=bool)
    for oy in range(oh):
        for ky in range(kh):
            iy = oy * sh + ky - pt
            if not 0 <= iy < h:
                continue
            for ox in range(ow):
                for kx in range(kw):
                    ix = ox * sw + kx - pl
                    if 0 <= ix < w:
                        used[iy, ix] = True
    return np.repeat(used.reshape(-1), c)


def generate(ir: IntegerModel) -> RtlDesign:
    """Verilog, regmap and metadata for ``ir``; nothing is written."""
    specs = check_supported(ir)
    space = SiteSpace.of(ir)
    src = dict(ir.source or {})
    model_name = ir.name
    digest = src.get("digest", "unknown")

    # --- register map: one register per parameter, in site order ---------
    tensors = []
    addr = 0
    for t in space.tensors:
        inst = f"rf_{_ident(t.layer)}_{t.tensor}"
        tensors.append({"layer": t.layer, "tensor": t.tensor, "instance": inst, "base": addr, "count": t.size,
                        "bits": t.fmt.bits, "signed": t.fmt.signed, "frac": t.fmt.frac, "shape": list(t.shape),
                        "site_offset": t.offset, "bus": f"{_ident(t.layer)}_{t.tensor}"})
        addr += t.size
    n_regs = addr
    cfg_aw = max(1, int(n_regs - 1).bit_length())
    cfg_dw = max(t["bits"] for t in tensors)
    rows = []
    for t in tensors:
        idx = np.repeat(np.arange(t["count"]), t["bits"])
        bit = np.tile(np.arange(t["bits"]), t["count"])
        site = t["site_offset"] + idx * t["bits"] + bit
        rows.append(np.stack([site, t["base"] + idx, t["bits"] - 1 - bit], axis=1))
    regmap = np.concatenate(rows).astype(np.int64)

    # --- datapath ---------------------------------------------------------
    body = []
    decl = []
    stages = []  # (name, bus bits, used bits)
    inp = ir.input
    cur = Bus("in_data", specs[0], inp.fmt.bits, inp.fmt.signed)
    in_bus = cur
    valid = "in_valid"
    mac_pending = True  # the input itself is registered before the first layer

    def pipe(bus: Bus, valid_in: str, used_bits: int) -> tuple:
        k = len(stages)
        q, v = f"s{k}_data", f"s{k}_valid"
        decl.append(f"    wire             {v};")
        decl.append(f"    wire [{bus.bits - 1}:0] {q};  // stage {k}: {bus.n} x {bus.width}-bit "
                    f"{'signed' if bus.signed else 'unsigned'} codes, frac {bus.spec.frac}")
        body.append(f"    // pipeline stage {k}\n"
                    f"    fkhw_pipe #(.W({bus.bits})) u_stage{k} (\n"
                    f"        .clk(clk), .rst(rst), .d_valid({valid_in}), .d({bus.name}),\n"
                    f"        .q_valid({v}), .q({q})\n    );\n")
        stages.append({"stage": k, "signal": q, "bits": bus.bits, "ff_used": used_bits,
                       "elements": bus.n, "width": bus.width, "signed": bus.signed})
        return Bus(q, bus.spec, bus.width, bus.signed), v

    layer_meta = []
    for i, layer in enumerate(ir.layers):
        spec_in, spec_out = specs[i], specs[i + 1]
        lname = _ident(layer.name)
        if layer.kind in ("conv2d", "dense"):
            if mac_pending:
                used = _used_mask(layer, spec_in)
                cur, valid = pipe(cur, valid, int(used.sum()) * cur.width)
            mac_pending = True
            frac = acc_frac(spec_in.frac, layer)
            pshift = frac - (spec_in.frac + layer.kernel_fmt.frac)
            has_bias = layer.bias is not None
            bfmt = layer.bias_fmt if has_bias else None
            bshift = frac - bfmt.frac if has_bias else 0
            bw = bfmt.bits if has_bias else 1
            aw = max(bits_for_range(spec_out.lo, spec_out.hi), cur.width + 1, layer.kernel_fmt.bits + 1, bw + 1)
            out = Bus(f"{lname}_acc", spec_out, aw, True)
            decl.append(f"    wire [{out.bits - 1}:0] {out.name};  // {layer.name}: {out.n} x {aw}-bit accumulators, "
                        f"frac {frac}, range [{spec_out.lo}, {spec_out.hi}]")
            kbus = f"{lname}_kernel"
            bbus = f"{lname}_bias" if has_bias else f"{{{spec_out.shape[-1]}{{1'b0}}}}"
            common = (f".XW({cur.width}), .XSIGNED({_sv(cur.signed)}), .WW({layer.kernel_fmt.bits}), "
                      f".WSIGNED({_sv(layer.kernel_fmt.signed)}),\n"
                      f"        .PSHIFT({pshift}), .HAS_BIAS({_sv(has_bias)}), .BW({bw}), "
                      f".BSIGNED({_sv(bfmt.signed if has_bias else True)}), .BSHIFT({bshift}), .AW({aw})")
            if layer.kind == "conv2d":
                h, w, cin = spec_in.shape
                kh, kw, _, cout = layer.kernel.shape
                oh, ow, pt, pl = conv_geometry(spec_in.shape, layer)
                sh, sw = layer.strides
                body.append(f"    // {layer.name}: conv2d {kh}x{kw}, stride {sh}x{sw}, padding {layer.padding}, "
                            f"({h},{w},{cin}) -> ({oh},{ow},{cout})\n"
                            f"    fkhw_conv2d #(\n"
                            f"        .H({h}), .W({w}), .CIN({cin}), .COUT({cout}), .KH({kh}), .KW({kw}), "
                            f".SH({sh}), .SW({sw}), .PT({pt}), .PL({pl}), .OH({oh}), .OW({ow}),\n"
                            f"        {common}\n"
                            f"    ) u_{lname} (\n"
                            f"        .x({cur.name}), .w({kbus}), .b({bbus}), .acc({out.name})\n    );\n")
                geom = {"in": [h, w, cin], "out": [oh, ow, cout], "kernel": [kh, kw], "strides": [sh, sw],
                        "padding": layer.padding, "pad_top": pt, "pad_left": pl}
            else:
                nin, nout = layer.kernel.shape
                body.append(f"    // {layer.name}: dense {nin} -> {nout}\n"
                            f"    fkhw_dense #(\n"
                            f"        .NIN({nin}), .NOUT({nout}),\n"
                            f"        {common}\n"
                            f"    ) u_{lname} (\n"
                            f"        .x({cur.name}), .w({kbus}), .b({bbus}), .acc({out.name})\n    );\n")
                geom = {"in": [nin], "out": [nout]}
            layer_meta.append({"layer": layer.name, "kind": layer.kind, "acc_bits": aw, "acc_frac": frac,
                               "acc_range": [spec_out.lo, spec_out.hi], "product_shift": pshift,
                               "bias_shift": bshift, **geom})
            cur = out
        elif layer.kind == "quant":
            f = layer.fmt
            out = Bus(f"{lname}_q", spec_out, f.bits, f.signed)
            shift = spec_in.frac - f.frac
            decl.append(f"    wire [{out.bits - 1}:0] {out.name};  // {layer.name}: {out.n} x {f.describe()} "
                        f"codes in [{f.lo}, {f.hi}]")
            body.append(f"    // {layer.name}: {layer.quantizer} -> {f.describe()}: round half to even "
                        f"(drop {shift} fractional bits), saturate to [{f.lo}, {f.hi}]\n"
                        f"    fkhw_requant_array #(\n"
                        f"        .N({out.n}), .IW({cur.width}), .ISIGNED({_sv(cur.signed)}), .SHIFT({shift}), "
                        f".OW({f.bits}), .LO({f.lo}), .HI({f.hi})\n"
                        f"    ) u_{lname} (\n"
                        f"        .x({cur.name}), .y({out.name})\n    );\n")
            layer_meta.append({"layer": layer.name, "kind": "quant", "quantizer": layer.quantizer,
                               "format": f.to_dict(), "shift": shift})
            cur = out
        else:  # flatten: C order, the packed bus is already flat
            out = Bus(f"{lname}_flat", spec_out, cur.width, cur.signed)
            decl.append(f"    wire [{out.bits - 1}:0] {out.name};  // {layer.name}: flatten (C order: no logic)")
            body.append(f"    assign {out.name} = {cur.name};\n")
            layer_meta.append({"layer": layer.name, "kind": "flatten"})
            cur = out
    out_bus, out_valid = pipe(cur, valid, cur.bits)
    latency = len(stages)
    out_spec = specs[-1]

    # --- register files -----------------------------------------------------
    rf = []
    for t in tensors:
        decl.append(f"    wire [{t['count'] * t['bits'] - 1}:0] {t['bus']};  // {t['layer']}.{t['tensor']} "
                    f"{tuple(t['shape'])}: registers {t['base']}..{t['base'] + t['count'] - 1}")
        rf.append(f"    fkhw_regfile #(.WIDTH({t['bits']}), .DEPTH({t['count']}), .BASE({t['base']}), .AW({cfg_aw})) "
                  f"{t['instance']} (\n"
                  f"        .clk(clk), .cfg_we(cfg_we), .cfg_addr(cfg_addr), "
                  f".cfg_data(cfg_data[{t['bits'] - 1}:0]), .q({t['bus']})\n    );\n")

    n_param_bits = ir.n_param_bits()
    pipe_bits = sum(s["ff_used"] for s in stages)
    ff_expected = n_param_bits + pipe_bits + latency
    in_w, out_w = in_bus.bits, out_bus.bits

    meta = {
        "generator": f"fkhw {__version__} (fkhw.rtlgen)",
        "fkhw_version": __version__,
        "model": model_name,
        "source": src,
        "ir_version": IR_VERSION,
        "top": TOP,
        "latency": latency,
        "ii": 1,
        "ports": {
            "in_data": {"bits": in_w, "elements": in_bus.n, "element_bits": in_bus.width, "signed": in_bus.signed,
                        "frac": specs[0].frac, "shape": list(specs[0].shape), "format": inp.fmt.describe()},
            "out_data": {"bits": out_w, "elements": out_bus.n, "element_bits": out_bus.width,
                         "signed": out_bus.signed, "frac": out_spec.frac, "shape": list(out_spec.shape)},
            "cfg_addr": {"bits": cfg_aw},
            "cfg_data": {"bits": cfg_dw},
        },
        "n_registers": n_regs,
        "n_param_bits": n_param_bits,
        "register_files": tensors,
        "stages": stages,
        "layers": layer_meta,
        "flip_flops_expected": ff_expected,
        "flip_flops_breakdown": {"parameter_bits": n_param_bits, "pipeline_data_bits": pipe_bits,
                                 "valid_bits": latency},
        "bit_order": "regmap.csv bit = Verilog bit index in the register and in cfg_data (LSB = 0); "
                     "fkhw site bit b (0 = MSB) of a register of W bits is Verilog bit W-1-b",
    }

    header = _header(ir, meta, tensors, stages, layer_meta)
    ports = (f"module {TOP} (\n"
             f"    input  wire              clk,\n"
             f"    input  wire              rst,       // synchronous; clears the valid pipeline only\n"
             f"    // configuration port: one parameter register per write\n"
             f"    input  wire              cfg_we,\n"
             f"    input  wire [{cfg_aw - 1}:0]        cfg_addr,  // parameter number (site order), 0..{n_regs - 1}\n"
             f"    input  wire [{cfg_dw - 1}:0]        cfg_data,  // code bit pattern, LSB-aligned\n"
             f"    // stream: one vector per clock\n"
             f"    input  wire              in_valid,\n"
             f"    input  wire [{in_w - 1}:0]    in_data,   // {in_bus.n} x {in_bus.width}-bit input codes\n"
             f"    output wire              out_valid,\n"
             f"    output wire [{out_w - 1}:0]    out_data   // {out_bus.n} x {out_bus.width}-bit output codes\n"
             f");\n\n")
    lines = [header, ports,
             "    // ---- signals -------------------------------------------------------\n",
             "\n".join(decl) + "\n\n",
             "    // ---- parameter register files (configuration port) -------------------\n",
             "\n".join(rf) + "\n",
             "    // ---- datapath ---------------------------------------------------------\n",
             "\n".join(body) + "\n",
             f"    assign out_valid = {out_valid};\n",
             f"    assign out_data  = {out_bus.name};\n\n",
             "endmodule\n"]
    top = "".join(lines)

    defs = (f"// {TOP} interface constants for testbenches. Generated by fkhw {__version__} from "
            f"model {model_name} (digest {digest}).\n"
            f"`define FKHW_IN_W {in_w}\n`define FKHW_OUT_W {out_w}\n`define FKHW_CFG_AW {cfg_aw}\n"
            f"`define FKHW_CFG_DW {cfg_dw}\n`define FKHW_NREG {n_regs}\n`define FKHW_LATENCY {latency}\n")

    files = {TOP_FILE: top, DEFS_FILE: defs}
    templates = sorted(p.name for p in TEMPLATES.glob("*.v"))
    for name in templates:
        files[name] = (TEMPLATES / name).read_text()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["site", "reg", "bit"])
    w.writerows(regmap.tolist())
    files[REGMAP_FILE] = buf.getvalue()
    design = RtlDesign(model_name, files, meta, regmap, templates)
    meta["rtl_digest"] = _rtl_digest(files)
    files[META_FILE] = json.dumps(meta, indent=1) + "\n"
    return design


def _rtl_digest(files: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        if name.endswith((".v", ".vh")):
            h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()[:16]


def _header(ir, meta, tensors, stages, layer_meta) -> str:
    src = meta["source"]
    p = meta["ports"]
    out = [
        "// " + "=" * 74,
        f"// {TOP}: the {ir.name} encoder as a fully parallel integer datapath.",
        f"// Generated by fkhw {meta['fkhw_version']} (fkhw rtl) from the integer IR of model {ir.name!r}",
        f"//   source digest {src.get('digest', 'unknown')}, encoder {src.get('encoder', '?')}, IR version {IR_VERSION}.",
        "// Do not edit: regenerate with `fkhw rtl --model <model> --out <dir>`.",
        "//",
        f"// Timing: one vector per clock (II = 1); LATENCY = {meta['latency']} register stages:",
        f"//   in_data/in_valid sampled at rising edge n appear on out_data/out_valid",
        f"//   right after rising edge n+{meta['latency'] - 1} (a downstream register samples them at n+{meta['latency']}).",
        f"// in_data : {p['in_data']['elements']} x {p['in_data']['element_bits']}-bit "
        f"{'signed' if p['in_data']['signed'] else 'unsigned'} codes ({p['in_data']['format']}, "
        f"frac {p['in_data']['frac']}), shape {tuple(p['in_data']['shape'])} C order, element k at [k*W +: W].",
        f"// out_data: {p['out_data']['elements']} x {p['out_data']['element_bits']}-bit "
        f"{'signed' if p['out_data']['signed'] else 'unsigned'} codes, frac {p['out_data']['frac']}.",
        "//",
        "// Configuration port: cfg_we=1 writes cfg_data[W-1:0] into register cfg_addr at the",
        "// rising edge. One register per parameter; every bit is a flip-flop (no reset).",
        "// Register address = parameter number in fkhw site order; site",
        "//   s = site_offset + index*W + b   (b = 0 is the MSB / sign bit)",
        "// is Verilog bit W-1-b of register base+index (see regmap.csv: site,reg,bit).",
        "//",
        "//   register file                      regs          W  sites",
    ]
    for t in tensors:
        out.append(f"//   {t['instance']:<34} {t['base']:>5}..{t['base'] + t['count'] - 1:<6} {t['bits']:>2}  "
                   f"{t['site_offset']}..{t['site_offset'] + t['count'] * t['bits'] - 1}")
    out += ["//", "// Layers:"]
    for lm in layer_meta:
        if lm["kind"] in ("conv2d", "dense"):
            out.append(f"//   {lm['layer']}: {lm['kind']} -> {lm['acc_bits']}-bit accumulators (frac {lm['acc_frac']})")
        elif lm["kind"] == "quant":
            f = lm["format"]
            out.append(f"//   {lm['layer']}: {lm['quantizer']} -> {f['bits']} bits frac {f['frac']} "
                       f"{'signed' if f['signed'] else 'unsigned'}, round half to even, saturate [{f['lo']}, {f['hi']}]")
        else:
            out.append(f"//   {lm['layer']}: flatten")
    b = meta["flip_flops_breakdown"]
    out += ["//",
            f"// Flip-flops: {b['parameter_bits']} parameter bits + {b['pipeline_data_bits']} pipeline data bits "
            f"+ {b['valid_bits']} valid bits = {meta['flip_flops_expected']}.",
            "// " + "=" * 74, "", ""]
    return "\n".join(out)


def write_rtl(ir: IntegerModel, out: Path) -> RtlDesign:
    """Generate (validating everything first) and write into ``out``."""
    design = generate(ir)
    design.write(out)
    return design
