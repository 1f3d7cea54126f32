"""maxpool (1-D or 2-D, same or valid) -> fkhw_maxpool: a compare tree per
window (fkhw_maxtree); padding never wins."""

from __future__ import annotations

from fkhw.model.ir import window_geometry
from fkhw.model.stages import window_view
from fkhw.rtlgen.layers.base import LayerCode, LayerIn, LayerKind, instance
from fkhw.rtlgen.verilog import signedness, sv


def emit(x: LayerIn) -> LayerCode:
    layer, spec_in, spec_out = x.layer, x.spec_in, x.spec_out
    (h, w, c), (kh, kw), (sh, sw), padding = window_view(layer, spec_in)
    (oh, ow), (pt, pl) = window_geometry((h, w), (kh, kw), (sh, sw), padding)
    out = x.out("max")
    body = instance(f"{layer.name}: max pool {'x'.join(map(str, layer.pool))}, stride "
                    f"{'x'.join(map(str, layer.strides))}, padding {padding} (padding never wins), "
                    f"{tuple(spec_in.shape)} -> {tuple(spec_out.shape)}",
                    "fkhw_maxpool",
                    f".H({h}), .W({w}), .C({c}), .KH({kh}), .KW({kw}), .SH({sh}), .SW({sw}), "
                    f".PT({pt}), .PL({pl}), .OH({oh}), .OW({ow}),\n"
                    f"        .XW({x.x.width}), .XSIGNED({sv(x.x.signed)})",
                    f"u_{x.name}", f".x({x.x.name}), .y({out.name})")
    decl = x.decl(out, f"{out.n} x {out.width}-bit {signedness(out.signed)} codes, frac {spec_out.frac}")
    meta = {"layer": layer.name, "kind": "maxpool", "in": list(spec_in.shape), "out": list(spec_out.shape),
            "pool": list(layer.pool), "strides": list(layer.strides), "padding": padding, "pad_top": pt,
            "pad_left": pl}
    return LayerCode(out, decl, body, meta)


def describe(lm: dict) -> str:
    return (f"//   {lm['layer']}: max pool {lm['pool']}, strides {lm['strides']}, padding {lm['padding']} "
            f"-> {tuple(lm['out'])}")


KIND = LayerKind(emit, describe, ("fkhw_maxpool.v", "fkhw_maxtree.v"))
