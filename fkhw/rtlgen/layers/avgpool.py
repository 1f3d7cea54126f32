"""avgpool (1-D or 2-D, never padded) -> fkhw_avgpool: the window sum
times the code of 1/area (the IR's ``mult``, ``frac_add`` more fractional
bits); its width is the layout's (fkhw.model.stages.output_width)."""

from __future__ import annotations

from fkhw.model.ir import window_geometry
from fkhw.model.stages import window_view
from fkhw.rtlgen.layers.base import LayerCode, LayerIn, LayerKind, instance
from fkhw.rtlgen.verilog import sv


def emit(x: LayerIn) -> LayerCode:
    layer, spec_in, spec_out = x.layer, x.spec_in, x.spec_out
    (h, w, c), (kh, kw), (sh, sw), _ = window_view(layer, spec_in)
    (oh, ow), _ = window_geometry((h, w), (kh, kw), (sh, sw), "valid")
    out = x.out("avg")
    mw = int(layer.mult).bit_length()
    body = instance(f"{layer.name}: average pool {'x'.join(map(str, layer.pool))}, stride "
                    f"{'x'.join(map(str, layer.strides))}: window sum times {layer.mult} (the code of 1/area, "
                    f"{layer.frac_add} more fractional bits), {tuple(spec_in.shape)} -> {tuple(spec_out.shape)}",
                    "fkhw_avgpool",
                    f".H({h}), .W({w}), .C({c}), .KH({kh}), .KW({kw}), .SH({sh}), .SW({sw}), "
                    f".OH({oh}), .OW({ow}),\n"
                    f"        .XW({x.x.width}), .XSIGNED({sv(x.x.signed)}), .MW({mw}), .MULT({layer.mult}), "
                    f".YW({out.width})",
                    f"u_{x.name}", f".x({x.x.name}), .y({out.name})")
    decl = x.decl(out, f"{out.n} x {out.width}-bit window sums times {layer.mult}, frac {spec_out.frac}, "
                       f"range [{spec_out.lo}, {spec_out.hi}]")
    meta = {"layer": layer.name, "kind": "avgpool", "in": list(spec_in.shape), "out": list(spec_out.shape),
            "pool": list(layer.pool), "strides": list(layer.strides), "mult": int(layer.mult),
            "frac_add": int(layer.frac_add), "out_bits": out.width}
    return LayerCode(out, decl, body, meta)


def describe(lm: dict) -> str:
    return (f"//   {lm['layer']}: average pool {lm['pool']}, strides {lm['strides']}: window sum x "
            f"{lm['mult']} -> {lm['out_bits']} bits (frac +{lm['frac_add']})")


KIND = LayerKind(emit, describe, ("fkhw_avgpool.v",))
