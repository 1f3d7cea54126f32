"""dense -> fkhw_dense (every output reads every input)."""

from __future__ import annotations

from fkhw.rtlgen.layers.base import LayerCode, LayerIn, LayerKind
from fkhw.rtlgen.layers.mac import describe_mac, mac_code


def emit(x: LayerIn) -> LayerCode:
    nin, nout = x.layer.kernel.shape
    return mac_code(x, f"dense {nin} -> {nout}", "fkhw_dense", f".NIN({nin}), .NOUT({nout})",
                    {"in": [nin], "out": [nout]})


KIND = LayerKind(emit, describe_mac)
