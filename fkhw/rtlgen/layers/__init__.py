"""One emitter per layer kind (hls4ml's template-per-layer idea): each
turns an IR layer into the instance of its hand-written block
(``fkhw/rtlgen/templates/*.v``) plus the wire it drives, its metadata and
its line in the file header. The generator (fkhw.rtlgen.emit) finds them
through :data:`KINDS`; a new layer kind is a new module here and one entry
below (and, if it is staged, in fkhw.model.stages)."""

from fkhw.rtlgen.layers import avgpool, conv, dense, maxpool, quant, reshape
from fkhw.rtlgen.layers.base import Bus, LayerCode, LayerIn, LayerKind

KINDS = {
    "conv2d": conv.KIND,
    "conv1d": conv.KIND,
    "dense": dense.KIND,
    "quant": quant.KIND,
    "maxpool": maxpool.KIND,
    "avgpool": avgpool.KIND,
    "flatten": reshape.KIND,
    "reshape": reshape.KIND,
}

__all__ = ["KINDS", "Bus", "LayerCode", "LayerIn", "LayerKind"]
