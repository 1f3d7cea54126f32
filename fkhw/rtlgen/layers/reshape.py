"""flatten and reshape: C order, which the packed bus already is, so a
renaming assignment and no logic."""

from __future__ import annotations

from fkhw.rtlgen.layers.base import LayerCode, LayerIn, LayerKind


def emit(x: LayerIn) -> LayerCode:
    flat = x.layer.kind == "flatten"
    out = x.out("flat" if flat else "shaped")
    what = "flatten" if flat else f"reshape to {tuple(x.spec_out.shape)}"
    meta = {"layer": x.layer.name, "kind": x.layer.kind, "out": list(x.spec_out.shape)}
    return LayerCode(out, x.decl(out, f"{what} (C order: no logic)"), f"    assign {out.name} = {x.x.name};\n", meta)


def describe(lm: dict) -> str:
    if lm["kind"] == "reshape":
        return f"//   {lm['layer']}: reshape -> {tuple(lm['out'])} (C order)"
    return f"//   {lm['layer']}: flatten"


KIND = LayerKind(emit, describe)
