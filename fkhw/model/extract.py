"""QKeras encoder -> integer IR. Each quantizer becomes a FixedFormat once.

Supported: a chain of QActivation(quantized_bits) on the input, then
QConv2D / QDense / QActivation(quantized_bits | quantized_relu) / Flatten.
Anything else is refused with :class:`UnsupportedLayerError` naming the
layer and its type.
"""

from __future__ import annotations

import numpy as np

from fkhw.fixed import FixedFormat
from fkhw.model.ir import Conv2D, Dense, Flatten, InputQuant, IntegerModel, Quant


class UnsupportedLayerError(ValueError):
    """A layer or quantizer setting outside what the integer IR can express."""


def quantizer_format(q, where: str) -> tuple:
    """(FixedFormat, quantizer name) of a QKeras quantizer object."""
    kind = type(q).__name__
    if kind not in ("quantized_bits", "quantized_relu"):
        raise UnsupportedLayerError(f"{where}: quantizer {kind} is not supported (use quantized_bits or quantized_relu)")
    if getattr(q, "use_stochastic_rounding", False):
        raise UnsupportedLayerError(f"{where}: {kind} with stochastic rounding is not supported")
    if float(getattr(q, "qnoise_factor", 1.0)) != 1.0:
        raise UnsupportedLayerError(f"{where}: {kind} with qnoise_factor != 1 is not supported")
    bits, integer = int(q.bits), int(q.integer)
    if kind == "quantized_bits":
        alpha = q.alpha
        if alpha is not None and (isinstance(alpha, str) or float(alpha) != 1.0):
            raise UnsupportedLayerError(f"{where}: quantized_bits alpha={alpha!r} is not supported (use alpha=1)")
        keep_negative = int(bool(q.keep_negative))
        unsigned = bits - keep_negative
        if unsigned < 1:
            raise UnsupportedLayerError(f"{where}: quantized_bits with {bits} bit(s) (binary) is not supported")
        return FixedFormat.make(bits, unsigned - integer, bool(keep_negative), bool(q.symmetric)), kind
    if q.use_sigmoid:
        raise UnsupportedLayerError(f"{where}: quantized_relu with use_sigmoid is not supported")
    if q.negative_slope:
        raise UnsupportedLayerError(f"{where}: quantized_relu with negative_slope is not supported")
    if q.relu_upper_bound is not None:
        raise UnsupportedLayerError(f"{where}: quantized_relu with relu_upper_bound is not supported")
    return FixedFormat.make(bits, bits - integer, False), kind


def param_codes(values: np.ndarray, quantizer, fmt: FixedFormat, where: str) -> np.ndarray:
    """Integer codes of a weight tensor, as the QKeras quantizer sees it.

    QKeras itself quantizes (third-party truth); we then check that every
    value is an exact code of ``fmt`` and equals our own rounding rule.
    """
    import tensorflow as tf

    q = np.asarray(quantizer(tf.constant(values, dtype=tf.float32)), dtype=np.float64)
    scaled = q * (2.0 ** fmt.frac)
    codes = np.rint(scaled)
    if not np.array_equal(codes, scaled):
        raise UnsupportedLayerError(f"{where}: quantized values are not codes of {fmt.describe()}")
    codes = codes.astype(np.int64)
    ours = np.clip(np.round(values.astype(np.float64) * 2.0 ** fmt.frac), fmt.lo, fmt.hi).astype(np.int64)
    if not np.array_equal(codes, ours):
        raise UnsupportedLayerError(f"{where}: QKeras quantization disagrees with round-half-even into {fmt.describe()}")
    return codes


def _mac_layer(layer, kind: str):
    where = f"layer {layer.name!r} ({type(layer).__name__})"
    if layer.kernel_quantizer_internal is None:
        raise UnsupportedLayerError(f"{where}: kernel has no quantizer")
    kfmt, _ = quantizer_format(layer.kernel_quantizer_internal, f"{where} kernel")
    if not kfmt.signed:
        raise UnsupportedLayerError(f"{where}: unsigned kernel quantizer is not supported")
    weights = layer.get_weights()
    kernel = param_codes(weights[0], layer.kernel_quantizer_internal, kfmt, f"{where} kernel")
    bias, bfmt = None, None
    if layer.use_bias:
        if layer.bias_quantizer_internal is None:
            raise UnsupportedLayerError(f"{where}: bias has no quantizer")
        bfmt, _ = quantizer_format(layer.bias_quantizer_internal, f"{where} bias")
        bias = param_codes(weights[1], layer.bias_quantizer_internal, bfmt, f"{where} bias")
    if kind == "conv2d":
        if tuple(layer.dilation_rate) != (1, 1) or getattr(layer, "groups", 1) != 1:
            raise UnsupportedLayerError(f"{where}: dilation and groups are not supported")
        if layer.data_format != "channels_last":
            raise UnsupportedLayerError(f"{where}: data_format {layer.data_format} is not supported")
        if layer.padding not in ("same", "valid"):
            raise UnsupportedLayerError(f"{where}: padding {layer.padding!r} is not supported")
        return Conv2D(layer.name, kernel, bias, kfmt, bfmt, tuple(int(s) for s in layer.strides), layer.padding)
    return Dense(layer.name, kernel, bias, kfmt, bfmt)


def _fused_activation(layer) -> Quant | None:
    """A quantizer given as a QConv2D/QDense ``activation``, or None for linear."""
    act = layer.activation
    name = getattr(act, "__name__", type(act).__name__)
    if name == "linear":
        return None
    where = f"layer {layer.name!r} ({type(layer).__name__}) activation"
    fmt, kind = quantizer_format(act, where)
    return Quant(f"{layer.name}_activation", fmt, kind)


def _check_chain(keras_model) -> None:
    for layer in keras_model.layers:
        nodes = getattr(layer, "_inbound_nodes", [])
        if len(nodes) > 1:
            raise UnsupportedLayerError(f"layer {layer.name!r} ({type(layer).__name__}): shared layers are not supported")
        for node in nodes:
            if len(node.parent_nodes) > 1:
                raise UnsupportedLayerError(
                    f"layer {layer.name!r} ({type(layer).__name__}): several inputs; only a chain of layers is supported")


def extract(keras_model, name: str, source: dict | None = None) -> IntegerModel:
    """Translate a QKeras encoder into an :class:`IntegerModel`."""
    _check_chain(keras_model)
    layers = [layer for layer in keras_model.layers if type(layer).__name__ != "InputLayer"]
    in_shape = tuple(int(d) for d in keras_model.input_shape[1:])
    if not layers or type(layers[0]).__name__ != "QActivation":
        first = f"{layers[0].name!r} ({type(layers[0]).__name__})" if layers else "nothing"
        raise UnsupportedLayerError(
            f"the first layer must be a QActivation(quantized_bits) input quantizer, found {first}")
    in_fmt, kind = quantizer_format(layers[0].quantizer, f"layer {layers[0].name!r} (QActivation)")
    if kind != "quantized_bits":
        raise UnsupportedLayerError(f"layer {layers[0].name!r} (QActivation): input quantizer must be quantized_bits")
    ir_layers = []
    for layer in layers[1:]:
        cls = type(layer).__name__
        if cls == "QConv2D":
            ir_layers.append(_mac_layer(layer, "conv2d"))
            act = _fused_activation(layer)
        elif cls == "QDense":
            ir_layers.append(_mac_layer(layer, "dense"))
            act = _fused_activation(layer)
        elif cls == "QActivation":
            fmt, qkind = quantizer_format(layer.quantizer, f"layer {layer.name!r} (QActivation)")
            act = Quant(layer.name, fmt, qkind)
        elif cls == "Flatten":
            ir_layers.append(Flatten(layer.name))
            act = None
        else:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({cls}) is not supported: "
                "fkhw handles QConv2D, QDense, QActivation(quantized_bits|quantized_relu) and Flatten")
        if act is not None:
            ir_layers.append(act)
    model = IntegerModel(name, InputQuant(layers[0].name, in_shape, in_fmt), tuple(ir_layers), dict(source or {}))
    model.tensor_specs()  # validates shapes
    return model
