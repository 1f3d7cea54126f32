"""The integer IR: the encoder as an ordered list of integer layers.

Extraction (``fkhw.model.extract``) translates each QKeras quantizer into an
explicit :class:`~fkhw.model.fixed.FixedFormat` once; the software engine, the RTL
generator, the hls4ml checks, the fault-site space and the TMR map all read
this IR and never look at Keras again.

Tensors flow between layers as int64 codes with a known number of fractional
bits; shapes are channels-last without the batch axis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Union

import numpy as np

from fkhw.model.fixed import FixedFormat

IR_VERSION = 1


@dataclass(frozen=True)
class TensorSpec:
    """Shape, fractional bits and code bounds of a tensor between layers."""

    shape: tuple
    frac: int
    lo: int
    hi: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class InputQuant:
    """The input quantizer (a QActivation(quantized_bits) on the input)."""

    name: str
    shape: tuple
    fmt: FixedFormat
    kind: str = "input"


@dataclass(frozen=True, eq=False)
class Conv2D:
    name: str
    kernel: np.ndarray  # (kh, kw, cin, cout) codes
    bias: np.ndarray | None  # (cout,) codes
    kernel_fmt: FixedFormat
    bias_fmt: FixedFormat | None
    strides: tuple
    padding: str  # 'same' | 'valid'
    kind: str = "conv2d"


@dataclass(frozen=True, eq=False)
class Dense:
    name: str
    kernel: np.ndarray  # (n_in, n_out) codes
    bias: np.ndarray | None
    kernel_fmt: FixedFormat
    bias_fmt: FixedFormat | None
    kind: str = "dense"


@dataclass(frozen=True)
class Quant:
    """Requantization (round half even, saturate) into ``fmt``.

    ``quantizer`` names the QKeras quantizer it came from
    (``quantized_relu`` or ``quantized_bits``); both reduce to this.
    """

    name: str
    fmt: FixedFormat
    quantizer: str
    kind: str = "quant"


@dataclass(frozen=True)
class Flatten:
    name: str
    kind: str = "flatten"


@dataclass(frozen=True, eq=False)
class Conv1D:
    """A 1-D convolution over (length, channels) inputs."""

    name: str
    kernel: np.ndarray  # (k, cin, cout) codes
    bias: np.ndarray | None  # (cout,) codes
    kernel_fmt: FixedFormat
    bias_fmt: FixedFormat | None
    strides: tuple  # (s,)
    padding: str  # 'same' | 'valid'
    kind: str = "conv1d"


@dataclass(frozen=True)
class MaxPool:
    """Max pooling over 1 or 2 spatial axes (``len(pool)``): a max of codes,
    exact; 'same' padding never wins the max, as in TensorFlow."""

    name: str
    pool: tuple
    strides: tuple
    padding: str
    kind: str = "maxpool"


@dataclass(frozen=True)
class AvgPool:
    """QAveragePooling2D in integer form: the window's code sum times the
    code ``mult`` of the (quantized) reciprocal of the pool area, with
    ``frac_add`` more fractional bits than the input. No padding, no rounding."""

    name: str
    pool: tuple
    strides: tuple
    mult: int
    frac_add: int
    kind: str = "avgpool"


@dataclass(frozen=True)
class Reshape:
    """C-order reshape (Keras Reshape); ``shape`` excludes the batch axis."""

    name: str
    shape: tuple
    kind: str = "reshape"


Layer = Union[Conv2D, Conv1D, Dense, Quant, Flatten, MaxPool, AvgPool, Reshape]
PARAM_KINDS = ("conv2d", "conv1d", "dense")


@dataclass(frozen=True, eq=False)
class IntegerModel:
    """An encoder in integer form. ``source`` records where it came from."""

    name: str
    input: InputQuant
    layers: tuple
    source: dict = field(default_factory=dict)

    # --- structure ------------------------------------------------------

    def param_layers(self) -> list:
        return [layer for layer in self.layers if layer.kind in PARAM_KINDS]

    def layer(self, name: str):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r} in model {self.name!r}")

    def tensor_specs(self) -> list:
        """Spec of the input and of every layer's output, in order.

        Bounds are worst-case over *any* register contents of the weight
        formats (so they hold under bit flips): they size RTL accumulators.
        """
        spec = TensorSpec(tuple(self.input.shape), self.input.fmt.frac, self.input.fmt.lo, self.input.fmt.hi)
        specs = [spec]
        for layer in self.layers:
            spec = _propagate(layer, spec)
            specs.append(spec)
        return specs

    @property
    def output_spec(self) -> TensorSpec:
        return self.tensor_specs()[-1]

    def n_param_bits(self) -> int:
        total = 0
        for layer in self.param_layers():
            total += layer.kernel.size * layer.kernel_fmt.bits
            if layer.bias is not None:
                total += layer.bias.size * layer.bias_fmt.bits
        return total

    def with_layer(self, index: int, layer) -> "IntegerModel":
        layers = list(self.layers)
        layers[index] = layer
        return replace(self, layers=tuple(layers))

    # --- persistence ----------------------------------------------------

    def save(self, path: Path) -> None:
        path = Path(path)
        arrays = {}
        meta_layers = []
        for i, layer in enumerate(self.layers):
            d = {"kind": layer.kind, "name": layer.name}
            if layer.kind in PARAM_KINDS:
                arrays[f"{i}_kernel"] = layer.kernel
                d["kernel_fmt"] = layer.kernel_fmt.to_dict()
                if layer.bias is not None:
                    arrays[f"{i}_bias"] = layer.bias
                    d["bias_fmt"] = layer.bias_fmt.to_dict()
                if layer.kind in ("conv2d", "conv1d"):
                    d["strides"] = list(layer.strides)
                    d["padding"] = layer.padding
            elif layer.kind == "quant":
                d["fmt"] = layer.fmt.to_dict()
                d["quantizer"] = layer.quantizer
            elif layer.kind == "maxpool":
                d.update(pool=list(layer.pool), strides=list(layer.strides), padding=layer.padding)
            elif layer.kind == "avgpool":
                d.update(pool=list(layer.pool), strides=list(layer.strides), mult=layer.mult, frac_add=layer.frac_add)
            elif layer.kind == "reshape":
                d["shape"] = list(layer.shape)
            meta_layers.append(d)
        meta = {
            "ir_version": IR_VERSION,
            "name": self.name,
            "source": self.source,
            "input": {"name": self.input.name, "shape": list(self.input.shape), "fmt": self.input.fmt.to_dict()},
            "layers": meta_layers,
        }
        np.savez(path, meta=np.array(json.dumps(meta)), **arrays)

    @staticmethod
    def load(path: Path) -> "IntegerModel":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("ir_version") != IR_VERSION:
                raise ValueError(f"{path}: IR version {meta.get('ir_version')} is not {IR_VERSION}")
            layers = []
            for i, d in enumerate(meta["layers"]):
                kind = d["kind"]
                if kind in PARAM_KINDS:
                    bias = z[f"{i}_bias"].astype(np.int64) if f"{i}_bias" in z else None
                    common = dict(
                        name=d["name"],
                        kernel=z[f"{i}_kernel"].astype(np.int64),
                        bias=bias,
                        kernel_fmt=FixedFormat.from_dict(d["kernel_fmt"]),
                        bias_fmt=FixedFormat.from_dict(d["bias_fmt"]) if bias is not None else None,
                    )
                    if kind in ("conv2d", "conv1d"):
                        conv = Conv2D if kind == "conv2d" else Conv1D
                        layers.append(conv(strides=tuple(d["strides"]), padding=d["padding"], **common))
                    else:
                        layers.append(Dense(**common))
                elif kind == "quant":
                    layers.append(Quant(d["name"], FixedFormat.from_dict(d["fmt"]), d["quantizer"]))
                elif kind == "flatten":
                    layers.append(Flatten(d["name"]))
                elif kind == "maxpool":
                    layers.append(MaxPool(d["name"], tuple(d["pool"]), tuple(d["strides"]), d["padding"]))
                elif kind == "avgpool":
                    layers.append(AvgPool(d["name"], tuple(d["pool"]), tuple(d["strides"]), int(d["mult"]),
                                          int(d["frac_add"])))
                elif kind == "reshape":
                    layers.append(Reshape(d["name"], tuple(d["shape"])))
                else:
                    raise ValueError(f"{path}: unknown layer kind {kind!r}")
            inp = meta["input"]
            return IntegerModel(
                name=meta["name"],
                input=InputQuant(inp["name"], tuple(inp["shape"]), FixedFormat.from_dict(inp["fmt"])),
                layers=tuple(layers),
                source=meta["source"],
            )


def window_geometry(sizes: tuple, window: tuple, strides: tuple, padding: str) -> tuple:
    """(output sizes, padding before) per spatial axis, TensorFlow's rule
    for convolutions and pooling alike."""
    out, before = [], []
    for n, k, s in zip(sizes, window, strides):
        if padding == "same":
            o = -(-n // s)
            before.append(max((o - 1) * s + k - n, 0) // 2)
        else:
            o = (n - k) // s + 1
            before.append(0)
        out.append(o)
    return tuple(out), tuple(before)


def conv_geometry(in_shape: tuple, layer: Conv2D) -> tuple:
    """(out_h, out_w, pad_top, pad_left) with TensorFlow's padding rule."""
    (oh, ow), (pt, pl) = window_geometry(in_shape[:2], layer.kernel.shape[:2], layer.strides, layer.padding)
    return oh, ow, pt, pl


def pool_window(layer) -> tuple:
    """(window, strides, padding) of a pooling layer (average pools never pad)."""
    return layer.pool, layer.strides, layer.padding if layer.kind == "maxpool" else "valid"


def raw_range(fmt: FixedFormat) -> tuple:
    """Every code a register of this format can hold (any bit pattern)."""
    if fmt.signed:
        return -(1 << (fmt.bits - 1)), (1 << (fmt.bits - 1)) - 1
    return 0, (1 << fmt.bits) - 1


def _mac_bounds(spec: TensorSpec, fan_in: int, layer, prod_shift: int, bias_shift: int) -> tuple:
    wlo, whi = raw_range(layer.kernel_fmt)
    products = [spec.lo * wlo, spec.lo * whi, spec.hi * wlo, spec.hi * whi]
    lo = fan_in * min(min(products), 0) * (1 << prod_shift)
    hi = fan_in * max(max(products), 0) * (1 << prod_shift)
    if layer.bias is not None:
        blo, bhi = raw_range(layer.bias_fmt)
        lo += blo * (1 << bias_shift)
        hi += bhi * (1 << bias_shift)
    return lo, hi


def acc_frac(in_frac: int, layer) -> int:
    """Fractional bits of a MAC layer's accumulator (no rounding inside)."""
    frac = in_frac + layer.kernel_fmt.frac
    if layer.bias is not None:
        frac = max(frac, layer.bias_fmt.frac)
    return frac


def _pooled_shape(layer, spec: TensorSpec) -> tuple:
    window, strides, padding = pool_window(layer)
    if len(spec.shape) != len(window) + 1:
        raise ValueError(f"layer {layer.name!r}: input shape {spec.shape} does not fit a {len(window)}-D pool")
    out, _ = window_geometry(spec.shape[:-1], window, strides, padding)
    if min(out) < 1:
        raise ValueError(f"layer {layer.name!r}: pool {window} does not fit input shape {spec.shape}")
    return out + (spec.shape[-1],)


def _propagate(layer, spec: TensorSpec) -> TensorSpec:
    if layer.kind == "quant":
        return TensorSpec(spec.shape, layer.fmt.frac, layer.fmt.lo, layer.fmt.hi)
    if layer.kind == "flatten":
        return TensorSpec((spec.size,), spec.frac, spec.lo, spec.hi)
    if layer.kind == "reshape":
        if int(np.prod(layer.shape)) != spec.size:
            raise ValueError(f"layer {layer.name!r}: cannot reshape {spec.shape} into {layer.shape}")
        return TensorSpec(tuple(layer.shape), spec.frac, spec.lo, spec.hi)
    if layer.kind == "maxpool":
        return TensorSpec(_pooled_shape(layer, spec), spec.frac, spec.lo, spec.hi)
    if layer.kind == "avgpool":
        area = int(np.prod(layer.pool))
        ends = (area * spec.lo * layer.mult, area * spec.hi * layer.mult)
        return TensorSpec(_pooled_shape(layer, spec), spec.frac + layer.frac_add, min(ends), max(ends))
    frac = acc_frac(spec.frac, layer)
    # the product of input and weight codes carries in_frac + w_frac bits;
    # if the bias is finer, products are shifted up to meet it
    prod_shift = frac - (spec.frac + layer.kernel_fmt.frac)
    bias_shift = frac - layer.bias_fmt.frac if layer.bias is not None else 0
    if layer.kind == "conv2d":
        kh, kw, cin, cout = layer.kernel.shape
        if len(spec.shape) != 3 or spec.shape[2] != cin:
            raise ValueError(f"layer {layer.name!r}: input shape {spec.shape} does not fit kernel {layer.kernel.shape}")
        oh, ow, _, _ = conv_geometry(spec.shape, layer)
        lo, hi = _mac_bounds(spec, kh * kw * cin, layer, prod_shift, bias_shift)
        return TensorSpec((oh, ow, cout), frac, lo, hi)
    if layer.kind == "conv1d":
        k, cin, cout = layer.kernel.shape
        if len(spec.shape) != 2 or spec.shape[1] != cin:
            raise ValueError(f"layer {layer.name!r}: input shape {spec.shape} does not fit kernel {layer.kernel.shape}")
        (ol,), _ = window_geometry(spec.shape[:1], (k,), layer.strides, layer.padding)
        lo, hi = _mac_bounds(spec, k * cin, layer, prod_shift, bias_shift)
        return TensorSpec((ol, cout), frac, lo, hi)
    n_in, n_out = layer.kernel.shape
    if spec.shape != (n_in,):
        raise ValueError(f"layer {layer.name!r}: input shape {spec.shape} does not fit kernel {layer.kernel.shape}")
    lo, hi = _mac_bounds(spec, n_in, layer, prod_shift, bias_shift)
    return TensorSpec((n_out,), frac, lo, hi)
