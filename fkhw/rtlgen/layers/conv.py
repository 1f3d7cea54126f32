"""conv2d and conv1d -> fkhw_conv2d (a conv1d is the height-1 case: same
register order, same windows)."""

from __future__ import annotations

from fkhw.model.ir import window_geometry
from fkhw.model.stages import window_view
from fkhw.rtlgen.layers.base import LayerCode, LayerIn, LayerKind
from fkhw.rtlgen.layers.mac import describe_mac, mac_code


def emit(x: LayerIn) -> LayerCode:
    layer, spec_in, spec_out = x.layer, x.spec_in, x.spec_out
    (h, w, cin), (kh, kw), (sh, sw), _ = window_view(layer, spec_in)
    cout = layer.kernel.shape[-1]
    (oh, ow), (pt, pl) = window_geometry((h, w), (kh, kw), (sh, sw), layer.padding)
    what = (f"conv2d {kh}x{kw}, stride {sh}x{sw}" if layer.kind == "conv2d" else
            f"conv1d {kw}, stride {sw} (as a height-1 conv2d)")
    comment = (f"{what}, padding {layer.padding}, "
               f"({','.join(map(str, spec_in.shape))}) -> ({','.join(map(str, spec_out.shape))})")
    shape_params = (f".H({h}), .W({w}), .CIN({cin}), .COUT({cout}), .KH({kh}), .KW({kw}), "
                    f".SH({sh}), .SW({sw}), .PT({pt}), .PL({pl}), .OH({oh}), .OW({ow})")
    if layer.kind == "conv2d":
        geom = {"in": [h, w, cin], "out": [oh, ow, cout], "kernel": [kh, kw], "strides": [sh, sw],
                "padding": layer.padding, "pad_top": pt, "pad_left": pl}
    else:
        geom = {"in": list(spec_in.shape), "out": list(spec_out.shape), "kernel": [kw], "strides": [sw],
                "padding": layer.padding, "pad_left": pl}
    return mac_code(x, comment, "fkhw_conv2d", shape_params, geom)


KIND = LayerKind(emit, describe_mac)
