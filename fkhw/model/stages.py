"""The hardware layout of an integer model: what the generated encoder can
hold, how wide each bus between layers is, and where its pipeline
registers sit.

Both the RTL generator (fkhw.rtlgen) and the flip-flop space
(fkhw.faults.space) need these facts; computing them here, from the IR
alone, lets the flip-flop space exist without running the generator and
keeps the two from ever disagreeing.

* Every MAC or pooling layer is fed by a pipeline register of its own (the
  first one registers the input), and one more holds the output; quantizers,
  flattens and reshapes are combinational between them.
* A stage register counts only the elements some output depends on
  (synthesis removes the others): weights are registers, not constants, so
  a MAC output depends on every input of its window (a dense output on all).
* A 1-D layer (conv1d, 1-D pooling) is the height-1 case of the 2-D one.

:meth:`Layout.of` validates the whole IR first and raises
:class:`RtlUnsupported` naming the layer the generator cannot build.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fkhw.errors import InputError
from fkhw.model.engine import windows
from fkhw.model.fixed import bits_for_range
from fkhw.model.ir import IntegerModel, TensorSpec, pool_window

SUPPORTED = ("conv2d", "conv1d", "dense", "quant", "flatten", "reshape", "maxpool", "avgpool")
MAC_KINDS = ("conv2d", "conv1d", "dense")
STAGED = MAC_KINDS + ("maxpool", "avgpool")  # layers fed by a pipeline stage of their own
MAX_PARAM_BITS = 32  # configuration word
MAX_QUANT_BITS = 31  # LO/HI travel as Verilog integer parameters


class RtlUnsupported(InputError):
    """An IR the RTL generator cannot turn into Verilog (refused up front)."""


@dataclass(frozen=True)
class PipelineStage:
    """One pipeline register: the activation entering IR layer ``layer_pos``
    (len(layers): the output) as ``elements`` codes of ``width`` bits."""

    stage: int
    layer_pos: int
    elements: int
    width: int
    signed: bool
    frac: int
    used: tuple  # element indices some output depends on (the flip-flops synthesis keeps)

    @property
    def bits(self) -> int:
        return self.elements * self.width

    @property
    def ff_used(self) -> int:
        return len(self.used) * self.width


@dataclass(frozen=True)
class Layout:
    """The encoder's buses and pipeline stages for one IR."""

    specs: tuple  # TensorSpec of the input and of every layer's output
    widths: tuple  # (bits per element, signed) of the same buses
    stages: tuple  # of PipelineStage, in order (the last one holds the output)

    @staticmethod
    def of(ir: IntegerModel) -> "Layout":
        specs = check_supported(ir)
        widths = [(ir.input.fmt.bits, ir.input.fmt.signed)]
        for layer, spec_in, spec_out in zip(ir.layers, specs, specs[1:]):
            widths.append(output_width(layer, spec_in, spec_out, *widths[-1]))
        positions = [i for i, layer in enumerate(ir.layers) if layer.kind in STAGED] + [len(ir.layers)]
        used = _used_elements(ir, specs, set(positions))
        stages = tuple(PipelineStage(k, pos, specs[pos].size, widths[pos][0], widths[pos][1], specs[pos].frac,
                                     used[pos]) for k, pos in enumerate(positions))
        return Layout(tuple(specs), tuple(widths), stages)


def output_width(layer, spec_in: TensorSpec, spec_out: TensorSpec, width: int, signed: bool) -> tuple:
    """(bits per element, signed) of a layer's output bus, given its input
    bus. A MAC accumulator holds the IR's worst-case range and at least one
    bit more than any operand; an average pool's window sum holds any code
    the stage before it can carry, not only the IR's range (a pipeline
    upset), and unsigned codes give an unsigned sum (a sign bit that is
    always 0 would be a constant flip-flop)."""
    if layer.kind in MAC_KINDS:
        bw = layer.bias_fmt.bits if layer.bias is not None else 1
        return max(bits_for_range(spec_out.lo, spec_out.hi), width + 1, layer.kernel_fmt.bits + 1, bw + 1), True
    if layer.kind == "quant":
        return layer.fmt.bits, layer.fmt.signed
    if layer.kind == "avgpool":
        _, (kh, kw), _, _ = window_view(layer, spec_in)
        xlo, xhi = code_range(width, signed)
        ends = (kh * kw * xlo * layer.mult, kh * kw * xhi * layer.mult)
        return (bits_for_range(min(ends), max(ends)) if signed else max(1, max(ends).bit_length())), signed
    return width, signed  # maxpool, flatten, reshape: the input's codes


def code_range(width: int, signed: bool) -> tuple:
    """Every code an element of a bus can carry (any bit pattern)."""
    if signed:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    return 0, (1 << width) - 1


def window_view(layer, spec: TensorSpec) -> tuple:
    """A windowed layer (conv or pool) seen as 2-D: ((h, w, c), (kh, kw),
    (sh, sw), padding). A 1-D layer is the height-1 case, which TensorFlow
    pads the same way; a conv1d kernel (k, cin, cout) is then (1, k, cin, cout)
    in the same C order, so its registers stay in site order."""
    if layer.kind in ("conv2d", "conv1d"):
        window, strides, padding = layer.kernel.shape[:-2], layer.strides, layer.padding
    else:
        window, strides, padding = pool_window(layer)
    shape, window, strides = tuple(spec.shape), tuple(window), tuple(strides)
    if len(window) == 1:
        shape, window, strides = (1,) + shape, (1,) + window, (1,) + strides
    return shape, window, strides, padding


def _used_elements(ir: IntegerModel, specs: list, positions: set) -> dict:
    """position -> the elements of the bus there that some output depends
    on, from the output backwards."""
    need = np.ones(specs[-1].size, dtype=bool)
    used = {}
    for pos in range(len(ir.layers), -1, -1):
        if pos in positions:
            used[pos] = tuple(np.flatnonzero(need).tolist())
        if pos:
            need = needed_inputs(ir.layers[pos - 1], specs[pos - 1], need)
    return used


def needed_inputs(layer, spec: TensorSpec, need_out: np.ndarray) -> np.ndarray:
    """Which elements of a layer's input (``spec``) some needed output
    element depends on. Weights are registers, not constants, so a MAC
    output depends on every input of its window (a dense output on all);
    an elementwise or reshaping layer keeps C order."""
    if layer.kind in ("quant", "flatten", "reshape"):
        return need_out
    if layer.kind == "dense" or not need_out.any():
        return np.full(spec.size, need_out.any())
    shape, window, strides, padding = window_view(layer, spec)
    cols = windows(np.arange(spec.size).reshape((1,) + shape), window, strides, padding, fill=-1)[0]
    oh, ow = cols.shape[:2]
    if layer.kind in ("conv2d", "conv1d"):  # an output reads every channel of its window
        need = need_out.reshape(oh, ow, -1).any(axis=-1)[:, :, None, None, None]
    else:  # a pool output reads its own channel
        need = need_out.reshape(oh, ow, 1, 1, shape[2])
    picked = cols[np.broadcast_to(need, cols.shape)]
    used = np.zeros(spec.size, dtype=bool)
    used[picked[picked >= 0]] = True
    return used


# --- what the generator can build ---------------------------------------------


def check_supported(ir: IntegerModel) -> list:
    """Validate the IR; return its tensor specs. Raises RtlUnsupported."""
    for layer in ir.layers:
        _check_layer(layer)
    _check_registered_averages(ir)
    if not ir.param_layers():
        raise RtlUnsupported(f"model {ir.name!r} has no conv2d/conv1d/dense layer: there is no register file to "
                             "generate")
    if ir.input.fmt.bits > MAX_QUANT_BITS:
        raise RtlUnsupported(f"input {ir.input.name!r}: format {ir.input.fmt.describe()} is wider than {MAX_QUANT_BITS} bits")
    try:
        return ir.tensor_specs()
    except ValueError as e:
        raise RtlUnsupported(str(e)) from None


def _check_layer(layer) -> None:
    if layer.kind not in SUPPORTED:
        raise RtlUnsupported(f"layer {layer.name!r}: kind {layer.kind!r} is not supported by the RTL generator "
                             f"(supported: {', '.join(SUPPORTED)})")
    if layer.kind in ("conv2d", "conv1d"):
        dims = 2 if layer.kind == "conv2d" else 1
        if layer.kernel.ndim != dims + 2:
            raise RtlUnsupported(f"layer {layer.name!r}: {layer.kind} kernel must be "
                                 f"{'(kh, kw, cin, cout)' if dims == 2 else '(k, cin, cout)'}")
        _check_window(layer, layer.kernel.shape[:dims], layer.strides, layer.padding)
    if layer.kind in ("maxpool", "avgpool"):
        _check_window(layer, *pool_window(layer))
    if layer.kind == "avgpool" and not 0 < layer.mult < 1 << MAX_QUANT_BITS:
        raise RtlUnsupported(f"layer {layer.name!r}: the code {layer.mult} of the reciprocal of the pool area "
                             f"is not in 1..2**{MAX_QUANT_BITS}-1 (0 would make the output constant)")
    if layer.kind == "dense" and layer.kernel.ndim != 2:
        raise RtlUnsupported(f"layer {layer.name!r}: dense kernel must be (n_in, n_out)")
    if layer.kind in MAC_KINDS:
        fmts = [("kernel", layer.kernel_fmt)] + ([("bias", layer.bias_fmt)] if layer.bias is not None else [])
        for tname, fmt in fmts:
            if fmt.bits > MAX_PARAM_BITS:
                raise RtlUnsupported(f"layer {layer.name!r}: {tname} format {fmt.describe()} is wider than the "
                                     f"{MAX_PARAM_BITS}-bit configuration word")
    if layer.kind == "quant" and layer.fmt.bits > MAX_QUANT_BITS:
        raise RtlUnsupported(f"layer {layer.name!r}: quantizer format {layer.fmt.describe()} is wider than "
                             f"{MAX_QUANT_BITS} bits")


def _check_window(layer, window, strides, padding) -> None:
    if padding not in ("same", "valid"):
        raise RtlUnsupported(f"layer {layer.name!r}: padding {padding!r} is not supported (same, valid)")
    if len(window) not in (1, 2) or len(strides) != len(window) or min(strides) < 1 or min(window) < 1:
        raise RtlUnsupported(f"layer {layer.name!r}: window {tuple(window)} with strides {tuple(strides)} is not "
                             "supported (1-D or 2-D, strides >= 1)")


def _check_registered_averages(ir: IntegerModel) -> None:
    """An average pool's output is its window sum times the reciprocal code:
    an even code leaves low bits that are always 0. Registered as they are
    (no quantizer before the next pipeline stage or the output), synthesis
    would remove those flip-flops, which the flip-flop space counts."""
    pending = None
    for layer in ir.layers + (None,):
        if layer is None or layer.kind in STAGED:
            if pending is not None:
                zeros = (pending.mult & -pending.mult).bit_length() - 1
                raise RtlUnsupported(f"layer {pending.name!r}: the average pool's output (window sum x reciprocal code "
                                     f"{pending.mult}, whose {zeros} low bit(s) are always 0) reaches a pipeline "
                                     "register without a quantizer: add a QActivation after it")
        if layer is not None and layer.kind == "avgpool":
            pending = layer if layer.mult > 0 and layer.mult % 2 == 0 else None
        elif layer is not None and layer.kind in ("quant",) + STAGED:
            pending = None
