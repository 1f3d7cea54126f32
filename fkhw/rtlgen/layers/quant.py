"""quant (a quantized activation) -> fkhw_requant_array: round half to
even, saturate, elementwise and combinational."""

from __future__ import annotations

from fkhw.rtlgen.layers.base import LayerCode, LayerIn, LayerKind, instance
from fkhw.rtlgen.verilog import sv


def emit(x: LayerIn) -> LayerCode:
    layer, f = x.layer, x.layer.fmt
    out = x.out("q")
    shift = x.spec_in.frac - f.frac
    body = instance(f"{layer.name}: {layer.quantizer} -> {f.describe()}: round half to even "
                    f"(drop {shift} fractional bits), saturate to [{f.lo}, {f.hi}]",
                    "fkhw_requant_array",
                    f".N({out.n}), .XW({x.x.width}), .XSIGNED({sv(x.x.signed)}), .SHIFT({shift}), "
                    f".YW({f.bits}), .LO({f.lo}), .HI({f.hi})",
                    f"u_{x.name}", f".x({x.x.name}), .y({out.name})")
    meta = {"layer": layer.name, "kind": "quant", "quantizer": layer.quantizer, "format": f.to_dict(), "shift": shift}
    return LayerCode(out, x.decl(out, f"{out.n} x {f.describe()} codes in [{f.lo}, {f.hi}]"), body, meta)


def describe(lm: dict) -> str:
    f = lm["format"]
    return (f"//   {lm['layer']}: {lm['quantizer']} -> {f['bits']} bits frac {f['frac']} "
            f"{'signed' if f['signed'] else 'unsigned'}, round half to even, saturate [{f['lo']}, {f['hi']}]")


KIND = LayerKind(emit, describe)
