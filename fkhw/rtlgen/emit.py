"""Integer IR -> synthesizable Verilog-2005, its register map and metadata.

The hand-written blocks live in ``templates/*.v`` (register file, pipeline
stage, round-half-even saturating requantizer, dot product, conv2d, dense,
max and average pooling); this module only emits the wiring between them:
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
  (synthesis removes the others).

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
from fkhw.model.fixed import bits_for_range
from fkhw.model.ir import IR_VERSION, IntegerModel, TensorSpec, acc_frac, window_geometry
from fkhw.model.stages import MAC_KINDS, STAGED, check_supported
from fkhw.model.stages import RtlUnsupported as RtlUnsupported  # the generator's error (callers import it from here)
from fkhw.model.stages import code_range, needed_inputs as _needed_inputs, window_view as _window_view
from fkhw.faults.sites import SiteSpace
from fkhw.faults.space import protectable

TEMPLATES = Path(__file__).resolve().parent / "templates"
TOP = "fkhw_encoder"
TOP_FILE = f"{TOP}.v"
DEFS_FILE = f"{TOP}_defs.vh"
META_FILE = f"{TOP}.json"
REGMAP_FILE = "regmap.csv"
LAYER_TEMPLATES = {"maxpool": ("fkhw_maxpool.v", "fkhw_maxtree.v"), "avgpool": ("fkhw_avgpool.v",)}  # only when used
TMR_TEMPLATES = ("fkhw_regfile_tmr.v", "fkhw_tmr_voter.v")  # only in hardened designs (the plain file set stays as it was)
PIPE_TMR_TEMPLATES = ("fkhw_pipe_tmr.v",)  # only in designs that triplicate pipeline or valid flip-flops
# the register files (parameter flip-flops, replicas, voters); every other template is the datapath
REGFILE_TEMPLATES = ("fkhw_regfile.v",) + TMR_TEMPLATES
REPLICA_MEMS = ("mem", "mem_b", "mem_c")  # replica A (= the single copy of unprotected bits), B, C


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


def protection_masks(ir: IntegerModel, protect) -> list:
    """Per parameter tensor (site order), a bool array of count*bits entries:
    entry i*bits + j is True when Verilog bit j of register i is protected.
    ``protect``: site ids (any order, no duplicates). Raises ValueError."""
    space = SiteSpace.of(ir)
    sites = np.asarray(list(protect) if not isinstance(protect, np.ndarray) else protect)
    if sites.size and not np.issubdtype(sites.dtype, np.integer):
        raise ValueError(f"protected sites must be integer site ids, got {sites.dtype}")
    sites = space.check(sites.astype(np.int64))  # SiteError (a ValueError) names the bad ids
    uniq, counts = np.unique(sites, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"protected site id(s) listed twice: {uniq[counts > 1][:5].tolist()}")
    tn, idx, bit = space.locate(uniq)
    masks = []
    for k, t in enumerate(space.tensors):
        m = np.zeros(t.size * t.fmt.bits, dtype=bool)
        sel = tn == k
        m[idx[sel] * t.fmt.bits + (t.fmt.bits - 1 - bit[sel])] = True
        masks.append(m)
    return masks


def _mask_literal(mask: np.ndarray) -> str:
    val = 0
    for k in np.flatnonzero(mask).tolist():
        val |= 1 << k
    return f"{mask.size}'h{val:x}"


def generate(ir: IntegerModel, protect=None, tmrg: bool = False, refresh: bool = False) -> RtlDesign:
    """Verilog, regmap and metadata for ``ir``; nothing is written.

    ``protect=None``: the plain encoder. Otherwise a collection of site ids:
    the selectively hardened encoder (same ports plus ``tmr_err``): each
    protected bit held in three flip-flops behind a majority voter
    (templates/fkhw_regfile_tmr.v), every other bit as in the plain design.
    An empty collection gives the hardened interface with nothing triplicated.

    ``tmrg=True`` (with ``protect``): the input for CERN's TMRG instead,
    functionally the plain design with the plain ports: each register file
    with protected bits becomes a generated module ``fkhw_rfs_<tensor>``
    holding them in ``<tensor>_prot`` and the others in ``<tensor>_unprot``,
    with ``// tmrg`` directives that triplicate only ``<tensor>_prot``.

    ``refresh=True`` (with ``protect``): self-correcting TMR: every clock the
    voted value is written back into the replicas, and ``tmr_err`` is a
    registered flag that stays set until the next configuration write.
    """
    if tmrg and protect is None:
        raise ValueError("tmrg=True needs the protected sites")
    if refresh and (protect is None or tmrg):
        raise ValueError("refresh=True is an option of the hardened encoder: give the protected sites (not tmrg)")
    specs = check_supported(ir)
    space = SiteSpace.of(ir)
    extra = ()  # protected pipeline data bits and valid flags (flip-flop ids)
    if protect is not None:
        arr = np.asarray(list(protect) if not isinstance(protect, np.ndarray) else protect)
        if arr.size and np.issubdtype(arr.dtype, np.integer):
            extra = tuple(int(p) for p in arr.reshape(-1) if p >= space.n_sites)
            protect = arr[arr < space.n_sites]
    masks = protection_masks(ir, protect) if protect is not None else None
    pipe_err_nets = []
    hard = masks is not None and not tmrg  # the hardened encoder (replicas, voters, tmr_err)
    split_files = {}
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

    def pipe(bus: Bus, valid_in: str, layer_pos: int) -> tuple:
        """A pipeline stage holding ``bus``: the activation entering IR layer
        ``layer_pos`` (len(layers): the output). Which of its elements some
        output depends on (the others are removed by synthesis) is known
        once every layer is placed; its instance is written once the
        protected flip-flops are known."""
        k = len(stages)
        q, v = f"s{k}_data", f"s{k}_valid"
        decl.append(f"    wire             {v};")
        decl.append(f"    wire [{bus.bits - 1}:0] {q};  // stage {k}: {bus.n} x {bus.width}-bit "
                    f"{'signed' if bus.signed else 'unsigned'} codes, frac {bus.spec.frac}")
        body.append(None)  # the stage's instance (below)
        stages.append({"stage": k, "signal": q, "instance": f"u_stage{k}", "bits": bus.bits,
                       "ff_used": None, "elements": bus.n, "width": bus.width,
                       "signed": bus.signed, "frac": bus.spec.frac, "layer_pos": layer_pos,
                       "used_elements": None, "_body": len(body) - 1, "_in": (bus.name, valid_in)})
        return Bus(q, bus.spec, bus.width, bus.signed), v

    layer_meta = []
    for i, layer in enumerate(ir.layers):
        spec_in, spec_out = specs[i], specs[i + 1]
        lname = _ident(layer.name)
        if layer.kind in STAGED:  # a MAC's products and a pool's compare tree start at a register
            cur, valid = pipe(cur, valid, i)
        if layer.kind in MAC_KINDS:
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
                      f".BSIGNED({_sv(bfmt.signed if has_bias else True)}), .BSHIFT({bshift}), .ACCW({aw})")
            if layer.kind in ("conv2d", "conv1d"):
                (h, w, cin), (kh, kw), (sh, sw), _ = _window_view(layer, spec_in)
                cout = layer.kernel.shape[-1]
                (oh, ow), (pt, pl) = window_geometry((h, w), (kh, kw), (sh, sw), layer.padding)
                what = (f"conv2d {kh}x{kw}, stride {sh}x{sw}" if layer.kind == "conv2d" else
                        f"conv1d {kw}, stride {sw} (as a height-1 conv2d)")
                body.append(f"    // {layer.name}: {what}, padding {layer.padding}, "
                            f"({','.join(map(str, spec_in.shape))}) -> ({','.join(map(str, spec_out.shape))})\n"
                            f"    fkhw_conv2d #(\n"
                            f"        .H({h}), .W({w}), .CIN({cin}), .COUT({cout}), .KH({kh}), .KW({kw}), "
                            f".SH({sh}), .SW({sw}), .PT({pt}), .PL({pl}), .OH({oh}), .OW({ow}),\n"
                            f"        {common}\n"
                            f"    ) u_{lname} (\n"
                            f"        .x({cur.name}), .w({kbus}), .b({bbus}), .acc({out.name})\n    );\n")
                geom = {"in": [h, w, cin], "out": [oh, ow, cout], "kernel": [kh, kw], "strides": [sh, sw],
                        "padding": layer.padding, "pad_top": pt, "pad_left": pl}
                if layer.kind == "conv1d":
                    geom = {"in": list(spec_in.shape), "out": list(spec_out.shape), "kernel": [kw], "strides": [sw],
                            "padding": layer.padding, "pad_left": pl}
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
                        f"        .N({out.n}), .XW({cur.width}), .XSIGNED({_sv(cur.signed)}), .SHIFT({shift}), "
                        f".YW({f.bits}), .LO({f.lo}), .HI({f.hi})\n"
                        f"    ) u_{lname} (\n"
                        f"        .x({cur.name}), .y({out.name})\n    );\n")
            layer_meta.append({"layer": layer.name, "kind": "quant", "quantizer": layer.quantizer,
                               "format": f.to_dict(), "shift": shift})
            cur = out
        elif layer.kind == "maxpool":
            (h, w, c), (kh, kw), (sh, sw), padding = _window_view(layer, spec_in)
            (oh, ow), (pt, pl) = window_geometry((h, w), (kh, kw), (sh, sw), padding)
            out = Bus(f"{lname}_max", spec_out, cur.width, cur.signed)
            decl.append(f"    wire [{out.bits - 1}:0] {out.name};  // {layer.name}: {out.n} x {cur.width}-bit "
                        f"{'signed' if cur.signed else 'unsigned'} codes, frac {spec_out.frac}")
            body.append(f"    // {layer.name}: max pool {'x'.join(map(str, layer.pool))}, stride "
                        f"{'x'.join(map(str, layer.strides))}, padding {padding} (padding never wins), "
                        f"{tuple(spec_in.shape)} -> {tuple(spec_out.shape)}\n"
                        f"    fkhw_maxpool #(\n"
                        f"        .H({h}), .W({w}), .C({c}), .KH({kh}), .KW({kw}), .SH({sh}), .SW({sw}), "
                        f".PT({pt}), .PL({pl}), .OH({oh}), .OW({ow}),\n"
                        f"        .XW({cur.width}), .XSIGNED({_sv(cur.signed)})\n"
                        f"    ) u_{lname} (\n"
                        f"        .x({cur.name}), .y({out.name})\n    );\n")
            layer_meta.append({"layer": layer.name, "kind": "maxpool", "in": list(spec_in.shape),
                               "out": list(spec_out.shape), "pool": list(layer.pool), "strides": list(layer.strides),
                               "padding": padding, "pad_top": pt, "pad_left": pl})
            cur = out
        elif layer.kind == "avgpool":
            (h, w, c), (kh, kw), (sh, sw), _ = _window_view(layer, spec_in)
            (oh, ow), _ = window_geometry((h, w), (kh, kw), (sh, sw), "valid")
            # wide enough for any code the stage can hold, not only the IR's range (a pipeline upset); unsigned
            # codes give an unsigned average (a sign bit that is always 0 would be a constant flip-flop)
            xlo, xhi = code_range(cur.width, cur.signed)
            ends = (kh * kw * xlo * layer.mult, kh * kw * xhi * layer.mult)
            yw = bits_for_range(min(ends), max(ends)) if cur.signed else max(1, max(ends).bit_length())
            mw = int(layer.mult).bit_length()
            out = Bus(f"{lname}_avg", spec_out, yw, cur.signed)
            decl.append(f"    wire [{out.bits - 1}:0] {out.name};  // {layer.name}: {out.n} x {yw}-bit window sums "
                        f"times {layer.mult}, frac {spec_out.frac}, range [{spec_out.lo}, {spec_out.hi}]")
            body.append(f"    // {layer.name}: average pool {'x'.join(map(str, layer.pool))}, stride "
                        f"{'x'.join(map(str, layer.strides))}: window sum times {layer.mult} (the code of 1/area, "
                        f"{layer.frac_add} more fractional bits), {tuple(spec_in.shape)} -> {tuple(spec_out.shape)}\n"
                        f"    fkhw_avgpool #(\n"
                        f"        .H({h}), .W({w}), .C({c}), .KH({kh}), .KW({kw}), .SH({sh}), .SW({sw}), "
                        f".OH({oh}), .OW({ow}),\n"
                        f"        .XW({cur.width}), .XSIGNED({_sv(cur.signed)}), .MW({mw}), .MULT({layer.mult}), "
                        f".YW({yw})\n"
                        f"    ) u_{lname} (\n"
                        f"        .x({cur.name}), .y({out.name})\n    );\n")
            layer_meta.append({"layer": layer.name, "kind": "avgpool", "in": list(spec_in.shape),
                               "out": list(spec_out.shape), "pool": list(layer.pool), "strides": list(layer.strides),
                               "mult": int(layer.mult), "frac_add": int(layer.frac_add), "out_bits": yw})
            cur = out
        else:  # flatten, reshape: C order, the packed bus already is
            suffix = "flat" if layer.kind == "flatten" else "shaped"
            out = Bus(f"{lname}_{suffix}", spec_out, cur.width, cur.signed)
            what = "flatten" if layer.kind == "flatten" else f"reshape to {tuple(spec_out.shape)}"
            decl.append(f"    wire [{out.bits - 1}:0] {out.name};  // {layer.name}: {what} (C order: no logic)")
            body.append(f"    assign {out.name} = {cur.name};\n")
            layer_meta.append({"layer": layer.name, "kind": layer.kind, "out": list(spec_out.shape)})
            cur = out
    out_bus, out_valid = pipe(cur, valid, len(ir.layers))
    # which stage elements some output depends on, from the output backwards
    need = np.ones(specs[-1].size, dtype=bool)
    by_pos = {st["layer_pos"]: st for st in stages}
    for pos in range(len(ir.layers), -1, -1):
        if pos in by_pos:
            by_pos[pos]["used_elements"] = np.flatnonzero(need).tolist()
            by_pos[pos]["ff_used"] = int(need.sum()) * by_pos[pos]["width"]
        if pos:
            need = _needed_inputs(ir.layers[pos - 1], specs[pos - 1], need)
    latency = len(stages)
    out_spec = specs[-1]
    stage_prot = _stage_protection(space.n_sites, stages, extra)
    if stage_prot and not hard:
        raise ValueError("pipeline and valid flip-flops are protected only in the hardened encoder (not tmrg)")
    for st in stages:
        d_name, v_in = st.pop("_in")
        k = st["stage"]
        at = st.pop("_body")
        pm, vt = stage_prot.get(k, (None, False))
        if pm is None and not vt:
            body[at] = (f"    // pipeline stage {k}\n"
                        f"    fkhw_pipe #(.DW({st['bits']})) u_stage{k} (\n"
                        f"        .clk(clk), .rst(rst), .d_valid({v_in}), .d({d_name}),\n"
                        f"        .q_valid(s{k}_valid), .q(s{k}_data)\n    );\n")
            continue
        pm = np.zeros(st["bits"], dtype=bool) if pm is None else pm
        err = f"s{k}_tmr_err"
        pipe_err_nets.append(err)
        decl.append(f"    wire             {err};  // replicas of a protected stage {k} flip-flop disagree")
        st.update({"module": "fkhw_pipe_tmr", "pmask": _mask_literal(pm), "protected_bits": int(pm.sum()),
                   "valid_protected": bool(vt), "err_net": err})
        body[at] = (f"    // pipeline stage {k}: {int(pm.sum())} of {st['bits']} data bits"
                    f"{' and the valid flag' if vt else ''} triplicated (PMASK bit j = Verilog bit j of q)\n"
                    f"    fkhw_pipe_tmr #(.DW({st['bits']}), .VTMR({int(vt)}),\n        .PMASK({_mask_literal(pm)})) "
                    f"u_stage{k} (\n"
                    f"        .clk(clk), .rst(rst), .d_valid({v_in}), .d({d_name}),\n"
                    f"        .q_valid(s{k}_valid), .q(s{k}_data), .err({err})\n    );\n")

    # --- register files -----------------------------------------------------
    rf = []
    err_nets = []
    for k, t in enumerate(tensors):
        decl.append(f"    wire [{t['count'] * t['bits'] - 1}:0] {t['bus']};  // {t['layer']}.{t['tensor']} "
                    f"{tuple(t['shape'])}: registers {t['base']}..{t['base'] + t['count'] - 1}")
        if tmrg and masks[k].any():
            mod = f"fkhw_rfs_{t['bus']}"
            split_files[f"{mod}.v"] = _split_regfile(mod, t, masks[k], cfg_aw)
            rf.append(f"    // {int(masks[k].sum())} of {masks[k].size} bits in {t['bus']}_prot (TMRG triplicates "
                      f"them), the rest in {t['bus']}_unprot\n"
                      f"    {mod} {t['instance']} (\n"
                      f"        .clk(clk), .cfg_we(cfg_we), .cfg_addr(cfg_addr), "
                      f".cfg_data(cfg_data[{t['bits'] - 1}:0]), .q({t['bus']})\n    );\n")
        elif hard and masks[k].any():
            err = f"{t['bus']}_tmr_err"
            err_nets.append(err)
            decl.append(f"    wire             {err};  // replicas of a protected {t['layer']}.{t['tensor']} "
                        f"bit disagree")
            rf.append(f"    // {int(masks[k].sum())} of {masks[k].size} bits triplicated (PMASK bit i*{t['bits']}+j = "
                      f"Verilog bit j of register i)\n"
                      f"    fkhw_regfile_tmr #(.WIDTH({t['bits']}), .DEPTH({t['count']}), .BASE({t['base']}), "
                      f".ADDRW({cfg_aw}), .REFRESH({int(refresh)}),\n        .PMASK({_mask_literal(masks[k])})) "
                      f"{t['instance']} (\n"
                      f"        .clk(clk), .cfg_we(cfg_we), .cfg_addr(cfg_addr), "
                      f".cfg_data(cfg_data[{t['bits'] - 1}:0]), .q({t['bus']}), .err({err})\n    );\n")
        else:
            rf.append(f"    fkhw_regfile #(.WIDTH({t['bits']}), .DEPTH({t['count']}), .BASE({t['base']}), .ADDRW({cfg_aw})) "
                      f"{t['instance']} (\n"
                      f"        .clk(clk), .cfg_we(cfg_we), .cfg_addr(cfg_addr), "
                      f".cfg_data(cfg_data[{t['bits'] - 1}:0]), .q({t['bus']})\n    );\n")

    n_param_bits = ir.n_param_bits()
    pipe_bits = sum(s["ff_used"] for s in stages)
    n_prot = (int(sum(m.sum() for m in masks)) + len(extra)) if hard else 0
    ff_expected = n_param_bits + pipe_bits + latency + 2 * n_prot + int(refresh)  # refresh: the sticky tmr_err
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
                                 "valid_bits": latency, **({"tmr_replica_bits": 2 * n_prot} if hard else {}),
                                 **({"tmr_err_flag": 1} if refresh else {})},
        "bit_order": "regmap.csv bit = Verilog bit index in the register and in cfg_data (LSB = 0); "
                     "fkhw site bit b (0 = MSB) of a register of W bits is Verilog bit W-1-b",
    }

    if hard:
        meta["tmr"] = _tmr_meta(space, tensors, masks, regmap, refresh)
        meta["tmr"]["flip_flops"] = list(extra)  # protected pipeline data bits and valid flags (flip-flop ids)
        meta["tmr"]["protected_flip_flops"] = meta["tmr"]["protected_bits"] + len(extra)
    if tmrg:
        meta["tmrg"] = {"protected_bits": int(sum(m.sum() for m in masks)),
                        "modules": sorted(n[:-2] for n in split_files),
                        "nets": [{"instance": t["instance"], "module": f"fkhw_rfs_{t['bus']}",
                                  "prot": f"{t['bus']}_prot", "unprot": f"{t['bus']}_unprot",
                                  "protected_bits": int(m.sum()), "bits": int(m.size)}
                                 for t, m in zip(tensors, masks) if m.any()]}
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
    if hard:
        ports = ports.replace("    out_data   //", "    out_data,  //").replace(
            "output codes\n);\n",
            "output codes\n"
            + ("    output wire              tmr_err    // registered, sticky: replicas disagreed since the last "
               "configuration write\n" if refresh else
               "    output wire              tmr_err    // combinational: 1 while the replicas of any protected bit "
               "disagree\n")
            + ");\n")
    tmr_assign = ""
    if hard:
        any_err = " | ".join(err_nets + pipe_err_nets) if err_nets or pipe_err_nets else "1'b0"
        if refresh:
            # the refresh repairs a single upset at the next edge: a combinational flag would pulse for one
            # clock, so it is held until software has seen it and rewrites a register (or reset)
            tmr_assign = (f"    reg              tmr_err_q;\n"
                          f"    always @(posedge clk) begin\n"
                          f"        if (rst) tmr_err_q <= 1'b0;\n"
                          f"        else     tmr_err_q <= (tmr_err_q & ~cfg_we) | ({any_err});\n"
                          f"    end\n"
                          f"    assign tmr_err   = tmr_err_q;\n")
        else:
            tmr_assign = f"    assign tmr_err   = {any_err};\n"
    if tmrg:
        ports += ("    // TMRG (CERN): nothing in this module is triplicated; the register files with\n"
                  "    // protected bits (fkhw_rfs_*) triplicate their <tensor>_prot nets and vote them.\n"
                  "    // tmrg default do_not_triplicate\n\n")
    lines = ["`default_nettype none\n", header, ports,
             "    // ---- signals -------------------------------------------------------\n",
             "\n".join(decl) + "\n\n",
             "    // ---- parameter register files (configuration port) -------------------\n",
             "\n".join(rf) + "\n",
             "    // ---- datapath ---------------------------------------------------------\n",
             "\n".join(body) + "\n",
             f"    assign out_valid = {out_valid};\n",
             f"    assign out_data  = {out_bus.name};\n" + tmr_assign + "\n",
             "endmodule\n", "`default_nettype wire\n"]
    top = "".join(lines)

    defs = (f"// {TOP} interface constants for testbenches. Generated by fkhw {__version__} from "
            f"model {model_name} (digest {digest}).\n"
            f"`define FKHW_IN_W {in_w}\n`define FKHW_OUT_W {out_w}\n`define FKHW_CFG_AW {cfg_aw}\n"
            f"`define FKHW_CFG_DW {cfg_dw}\n`define FKHW_NREG {n_regs}\n`define FKHW_LATENCY {latency}\n")
    if hard:
        defs += "`define FKHW_TMR 1\n"

    files = {TOP_FILE: top, DEFS_FILE: defs, **split_files}
    optional = {n for names in LAYER_TEMPLATES.values() for n in names}
    used_kinds = {layer.kind for layer in ir.layers}
    wanted = {n for kind, names in LAYER_TEMPLATES.items() if kind in used_kinds for n in names}
    templates = sorted(p.name for p in TEMPLATES.glob("*.v")
                       if (hard or p.name not in TMR_TEMPLATES) and (stage_prot or p.name not in PIPE_TMR_TEMPLATES)
                       and (p.name not in optional or p.name in wanted))
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


def _stage_protection(n_sites: int, stages: list, extra: tuple) -> dict:
    """stage -> (PMASK bool array over the stage's DW bits or None, valid
    protected) for the protected flip-flop ids ``extra`` (pipeline data
    bits, then valid flags, numbered as in fkhw.faults.space); raises FaultError
    for ids that are no pipeline or valid flip-flop."""
    if not extra:
        return {}
    first, spans = n_sites, []
    for st in stages:
        spans.append(first)
        first += st["ff_used"]
    first_control = first
    ids = protectable(n_sites, first_control + len(stages), extra)
    out = {}
    for ff in ids:
        if ff >= first_control:
            k = ff - first_control
            pm, _ = out.get(k, (None, False))
            out[k] = (pm, True)
            continue
        k = int(np.searchsorted(spans, ff, side="right") - 1)
        st = stages[k]
        rel = ff - spans[k]
        e, b = st["used_elements"][rel // st["width"]], rel % st["width"]
        pm, vt = out.get(k, (None, False))
        pm = np.zeros(st["bits"], dtype=bool) if pm is None else pm
        pm[e * st["width"] + st["width"] - 1 - b] = True  # bit 0 = MSB of the element's code
        out[k] = (pm, vt)
    return out


def _split_regfile(mod: str, t: dict, mask: np.ndarray, cfg_aw: int) -> str:
    """A register file for TMRG: protected bits in ``<bus>_prot`` (one net,
    triplicated and voted by TMRG), the others in ``<bus>_unprot``; separate
    always blocks (TMRG: no mixing of triplicated and plain signals on the
    left-hand side of one block, no concatenation on the left)."""
    w, bus = t["bits"], t["bus"]
    pos = np.arange(mask.size)
    prot_pos, unprot_pos = pos[mask].tolist(), pos[~mask].tolist()
    rank = {}
    for r, k in enumerate(prot_pos):
        rank[k] = ("p", r)
    for r, k in enumerate(unprot_pos):
        rank[k] = ("u", r)
    np_, nu = len(prot_pos), len(unprot_pos)
    pn, un, vn = f"{bus}_prot", f"{bus}_unprot", f"{bus}_protVoted"
    out = ["`default_nettype none", f"// {mod}: the {t['layer']}.{t['tensor']} register file ({t['count']} registers of {w} bits at",
           f"// addresses {t['base']}..{t['base'] + t['count'] - 1}) for CERN's TMRG, generated by fkhw {__version__}.",
           f"// Functionally fkhw_regfile: {np_} protected bits live in {pn} (TMRG triplicates",
           f"// it; the assignment {vn} = {pn} from triplicated to non-triplicated is where",
           "// TMRG puts the majority voter), " + (f"the {nu} others in {un}." if nu else "no others."),
           "// Bit k of q is Verilog bit k % WIDTH of register k / WIDTH.",
           f"module {mod} (",
           "    input  wire clk,",
           "    input  wire cfg_we,",
           f"    input  wire [{cfg_aw - 1}:0] cfg_addr,",
           f"    input  wire [{w - 1}:0] cfg_data,",
           f"    output wire [{mask.size - 1}:0] q",
           ");",
           "    // tmrg default do_not_triplicate",
           f"    // tmrg triplicate {pn}",
           f"    // tmrg do_not_triplicate {vn}"]
    if nu:
        out.append(f"    // tmrg do_not_triplicate {un}")
    out.append(f"    reg  [{np_ - 1}:0] {pn};")
    if nu:
        out.append(f"    reg  [{nu - 1}:0] {un};")
    out += [f"    wire [{np_ - 1}:0] {vn} = {pn};", ""]
    for kind, name, keep in (("p", pn, prot_pos), ("u", un, unprot_pos)):
        if not keep:
            continue
        out += [f"    // {'protected (triplicated by TMRG)' if kind == 'p' else 'unprotected (single flip-flops)'}",
                "    always @(posedge clk) begin",
                "        if (cfg_we) begin",
                "            case (cfg_addr)"]
        by_reg = {}
        for k in keep:
            by_reg.setdefault(k // w, []).append(k)
        for i, ks in sorted(by_reg.items()):
            stmts = " ".join(f"{name}[{rank[k][1]}] <= cfg_data[{k % w}];" for k in ks)
            out.append(f"                {cfg_aw}'d{t['base'] + i}: begin {stmts} end")
        out += ["                default: ;", "            endcase", "        end", "    end", ""]
    terms = []
    for k in range(mask.size - 1, -1, -1):
        kind, r = rank[k]
        terms.append(f"{vn}[{r}]" if kind == "p" else f"{un}[{r}]")
    body = []
    for c in range(0, len(terms), 8):
        body.append("        " + ", ".join(terms[c:c + 8]))
    out += ["    assign q = {", ",\n".join(body), "    };", "", "endmodule", "`default_nettype wire", ""]
    return "\n".join(out)


def _tmr_meta(space: SiteSpace, tensors: list, masks: list, regmap: np.ndarray, refresh: bool = False) -> dict:
    """What the tools need to know about the triplicated bits: per tensor the
    mask (hex of PMASK, bit i*bits+j = Verilog bit j of register i) and per
    protected site the three replica flip-flops (hierarchical names below
    the encoder: <instance>.<mem>[index][Verilog bit])."""
    per_tensor, sites = [], []
    for t, m in zip(tensors, masks):
        prot = np.flatnonzero(m)
        per_tensor.append({"instance": t["instance"], "layer": t["layer"], "tensor": t["tensor"],
                           "module": "fkhw_regfile_tmr" if prot.size else "fkhw_regfile",
                           "protected_bits": int(prot.size), "bits": int(m.size),
                           "pmask": _mask_literal(m) if prot.size else None,
                           "err_net": f"{t['bus']}_tmr_err" if prot.size else None})
        for k in prot.tolist():
            idx, vbit = divmod(k, t["bits"])
            site = t["site_offset"] + idx * t["bits"] + (t["bits"] - 1 - vbit)
            sites.append({"site": int(site), "instance": t["instance"], "index": int(idx), "reg": t["base"] + idx,
                          "bit": int(vbit),
                          "replicas": [f"{t['instance']}.{mem}[{idx}][{vbit}]" for mem in REPLICA_MEMS]})
    sites.sort(key=lambda e: e["site"])
    return {
        "protected_bits": len(sites),
        "replica_mems": list(REPLICA_MEMS),
        "voter": "bitwise 2-of-3 majority, combinational, between the replica flip-flops and the datapath",
        "refresh": bool(refresh),
        "tmr_err": ("registered and sticky: set when any protected bit's replicas disagree at a clock edge, cleared "
                    "by a configuration write (or reset)" if refresh else
                    "combinational OR over protected bits of (A != B) | (A != C); not registered, no sticky state"),
        "config_port": "a write loads all three replicas of every bit of the addressed register (scrubbing)"
                       + ("; between writes every replica reloads the voted value each clock (refresh)"
                          if refresh else ""),
        "register_files": per_tensor,
        "sites": sites,
    }


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
        "//   in_data/in_valid sampled at rising edge n appear on out_data/out_valid",
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
        if lm["kind"] in MAC_KINDS:
            out.append(f"//   {lm['layer']}: {lm['kind']} -> {lm['acc_bits']}-bit accumulators (frac {lm['acc_frac']})")
        elif lm["kind"] == "quant":
            f = lm["format"]
            out.append(f"//   {lm['layer']}: {lm['quantizer']} -> {f['bits']} bits frac {f['frac']} "
                       f"{'signed' if f['signed'] else 'unsigned'}, round half to even, saturate [{f['lo']}, {f['hi']}]")
        elif lm["kind"] == "maxpool":
            out.append(f"//   {lm['layer']}: max pool {lm['pool']}, strides {lm['strides']}, padding {lm['padding']} "
                       f"-> {tuple(lm['out'])}")
        elif lm["kind"] == "avgpool":
            out.append(f"//   {lm['layer']}: average pool {lm['pool']}, strides {lm['strides']}: window sum x "
                       f"{lm['mult']} -> {lm['out_bits']} bits (frac +{lm['frac_add']})")
        elif lm["kind"] == "reshape":
            out.append(f"//   {lm['layer']}: reshape -> {tuple(lm['out'])} (C order)")
        else:
            out.append(f"//   {lm['layer']}: flatten")
    b = meta["flip_flops_breakdown"]
    if "tmr" in meta:
        tm = meta["tmr"]
        out += ["//",
                f"// Selective TMR: {tm['protected_bits']} protected parameter bits, each held in three flip-flops",
                *([f"// and {len(tm['flip_flops'])} pipeline data / valid flip-flops (fkhw_pipe_tmr, replicas data_a/b/c,",
                   "// valid_a/b/c, voted; their voters' mismatch is ORed into tmr_err)"] if tm["flip_flops"] else []),
                "// (replicas mem, mem_b, mem_c of fkhw_regfile_tmr, kept apart in synthesis) behind a 2-of-3",
                "// majority voter; config-port writes load all replicas. tmr_err (combinational) is 1 while",
                "// the replicas of any protected bit disagree. regmap.csv is the plain design's."]
    out += ["//",
            f"// Flip-flops: {b['parameter_bits']} parameter bits + {b['pipeline_data_bits']} pipeline data bits "
            f"+ {b['valid_bits']} valid bits"
            + (f" + {b['tmr_replica_bits']} TMR replica bits" if "tmr_replica_bits" in b else "")
            + f" = {meta['flip_flops_expected']}.",
            "// " + "=" * 74, "", ""]
    return "\n".join(out)


def write_rtl(ir: IntegerModel, out: Path) -> RtlDesign:
    """Generate (validating everything first) and write into ``out``."""
    design = generate(ir)
    design.write(out)
    return design
