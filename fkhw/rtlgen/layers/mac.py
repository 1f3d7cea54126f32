"""What every multiply-accumulate layer shares (fkhw_conv2d, fkhw_dense):
the operand formats and shifts that line products and bias up on the
accumulator's fractional bits, and the wiring of kernel and bias buses."""

from __future__ import annotations

from fkhw.model.ir import acc_frac
from fkhw.rtlgen.layers.base import LayerCode, LayerIn, instance
from fkhw.rtlgen.verilog import sv


def mac_code(x: LayerIn, comment: str, module: str, shape_params: str, geom: dict) -> LayerCode:
    """A MAC layer's instance: ``shape_params`` (its geometry) then the
    operand parameters; ``geom`` ends its meta entry."""
    layer, spec_in, spec_out = x.layer, x.spec_in, x.spec_out
    frac = acc_frac(spec_in.frac, layer)
    pshift = frac - (spec_in.frac + layer.kernel_fmt.frac)  # a finer bias shifts the products up to meet it
    has_bias = layer.bias is not None
    bfmt = layer.bias_fmt if has_bias else None
    bshift = frac - bfmt.frac if has_bias else 0
    bw = bfmt.bits if has_bias else 1
    out = x.out("acc")
    operands = (f".XW({x.x.width}), .XSIGNED({sv(x.x.signed)}), .WW({layer.kernel_fmt.bits}), "
                f".WSIGNED({sv(layer.kernel_fmt.signed)}),\n"
                f"        .PSHIFT({pshift}), .HAS_BIAS({sv(has_bias)}), .BW({bw}), "
                f".BSIGNED({sv(bfmt.signed if has_bias else True)}), .BSHIFT({bshift}), .ACCW({out.width})")
    bias = f"{x.name}_bias" if has_bias else f"{{{spec_out.shape[-1]}{{1'b0}}}}"
    body = instance(f"{layer.name}: {comment}", module, f"{shape_params},\n        {operands}", f"u_{x.name}",
                    f".x({x.x.name}), .w({x.name}_kernel), .b({bias}), .acc({out.name})")
    decl = x.decl(out, f"{out.n} x {out.width}-bit accumulators, frac {frac}, range [{spec_out.lo}, {spec_out.hi}]")
    meta = {"layer": layer.name, "kind": layer.kind, "acc_bits": out.width, "acc_frac": frac,
            "acc_range": [spec_out.lo, spec_out.hi], "product_shift": pshift, "bias_shift": bshift, **geom}
    return LayerCode(out, decl, body, meta)


def describe_mac(lm: dict) -> str:
    return f"//   {lm['layer']}: {lm['kind']} -> {lm['acc_bits']}-bit accumulators (frac {lm['acc_frac']})"
