"""QKeras encoder -> integer IR. Each quantizer becomes a FixedFormat once.

Supported: a chain of QActivation(quantized_bits) on the input, then the
layers in :data:`HANDLERS` (QConv2D, QConv1D, QConv2DBatchnorm, QDense,
QActivation(quantized_bits | quantized_relu), Flatten, Reshape, max pooling,
QAveragePooling2D where it is exact). Anything else is refused with
:class:`UnsupportedLayerError` naming the layer and its type.
"""

from __future__ import annotations

import numpy as np

from fkhw.errors import InputError
from fkhw.model.fixed import FixedFormat
from fkhw.model.ir import (AvgPool, Conv1D, Conv2D, Dense, Flatten, InputQuant, IntegerModel, MaxPool, Quant, Reshape,
                           window_geometry)


class UnsupportedLayerError(InputError):
    """A layer or quantizer setting outside what the integer IR can express."""


QUANTIZERS = ("quantized_bits", "quantized_relu")


def quantizer_format(q, where: str) -> tuple:
    """(FixedFormat, quantizer name) of a QKeras quantizer object."""
    kind = type(q).__name__
    if kind not in QUANTIZERS:
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


def _where(layer) -> str:
    return f"layer {layer.name!r} ({type(layer).__name__})"


def _conv_settings(layer, rank: int) -> None:
    where = _where(layer)
    if tuple(layer.dilation_rate) != (1,) * rank or getattr(layer, "groups", 1) != 1:
        raise UnsupportedLayerError(f"{where}: dilation and groups are not supported")
    if layer.data_format != "channels_last":
        raise UnsupportedLayerError(f"{where}: data_format {layer.data_format} is not supported")
    if layer.padding not in ("same", "valid"):
        raise UnsupportedLayerError(f"{where}: padding {layer.padding!r} is not supported (same, valid)")


def _kernel_format(layer):
    where = _where(layer)
    if layer.kernel_quantizer_internal is None:
        raise UnsupportedLayerError(f"{where}: kernel has no quantizer")
    kfmt, _ = quantizer_format(layer.kernel_quantizer_internal, f"{where} kernel")
    if not kfmt.signed:
        raise UnsupportedLayerError(f"{where}: unsigned kernel quantizer is not supported")
    return kfmt


def _bias_codes(layer, values):
    where = _where(layer)
    if layer.bias_quantizer_internal is None:
        raise UnsupportedLayerError(f"{where}: bias has no quantizer")
    bfmt, _ = quantizer_format(layer.bias_quantizer_internal, f"{where} bias")
    return param_codes(values, layer.bias_quantizer_internal, bfmt, f"{where} bias"), bfmt


def _mac_params(layer, kernel_values, bias_values) -> dict:
    """Kernel and bias codes of a MAC layer, quantized by its own quantizers."""
    kfmt = _kernel_format(layer)
    kernel = param_codes(kernel_values, layer.kernel_quantizer_internal, kfmt, f"{_where(layer)} kernel")
    bias, bfmt = _bias_codes(layer, bias_values) if bias_values is not None else (None, None)
    return dict(name=layer.name, kernel=kernel, bias=bias, kernel_fmt=kfmt, bias_fmt=bfmt)


def _stored_params(layer) -> dict:
    weights = layer.get_weights()
    return _mac_params(layer, weights[0], weights[1] if layer.use_bias else None)


def _fused_activation(layer) -> list:
    """A quantizer given as a layer's ``activation``: [] for linear or none."""
    act = getattr(layer, "activation", None)
    if act is None or getattr(act, "__name__", type(act).__name__) == "linear":
        return []
    fmt, kind = quantizer_format(act, f"{_where(layer)} activation")
    return [Quant(f"{layer.name}_activation", fmt, kind)]


def _qconv2d(layer) -> list:
    _conv_settings(layer, 2)
    return [Conv2D(strides=tuple(int(s) for s in layer.strides), padding=layer.padding,
                   **_stored_params(layer))] + _fused_activation(layer)


def _qconv1d(layer) -> list:
    _conv_settings(layer, 1)
    return [Conv1D(strides=tuple(int(s) for s in layer.strides), padding=layer.padding,
                   **_stored_params(layer))] + _fused_activation(layer)


def _qconv2d_batchnorm(layer) -> list:
    """QKeras folds the batch norm into the kernel and bias *before* its
    quantizers, from the moving statistics at inference (both folding
    modes): kernel * gamma / sqrt(var + eps), (bias - mean) * that + beta.
    ``get_folded_weights`` is QKeras' own code for that fold (the same
    float32 ops as its ``call``); the quantizers then give the codes."""
    _conv_settings(layer, 2)
    if list(layer.batchnorm.axis) not in ([3], [-1]):
        raise UnsupportedLayerError(f"{_where(layer)}: batch norm over axis {layer.batchnorm.axis} is not supported "
                                    "(the channel axis only)")
    kernel, bias = (np.asarray(t, dtype=np.float32) for t in layer.get_folded_weights())
    # the folded bias always exists (the batch norm's beta), with or without use_bias
    return [Conv2D(strides=tuple(int(s) for s in layer.strides), padding=layer.padding,
                   **_mac_params(layer, kernel, bias))] + _fused_activation(layer)


def _qdense(layer) -> list:
    if len(layer.input_shape) != 2:
        # Keras then applies the kernel at every position of the leading axes
        raise UnsupportedLayerError(f"{_where(layer)}: a dense layer on a {tuple(layer.input_shape[1:])} input is not "
                                    "supported (put a Flatten before it)")
    return [Dense(**_stored_params(layer))] + _fused_activation(layer)


def _qactivation(layer) -> list:
    fmt, qkind = quantizer_format(layer.quantizer, f"layer {layer.name!r} (QActivation)")
    return [Quant(layer.name, fmt, qkind)]


def _flatten(layer) -> list:
    return [Flatten(layer.name)]


def _reshape(layer) -> list:
    return [Reshape(layer.name, tuple(int(d) for d in layer.output_shape[1:]))]


def _pool_settings(layer) -> tuple:
    if layer.data_format != "channels_last":
        raise UnsupportedLayerError(f"{_where(layer)}: data_format {layer.data_format} is not supported")
    if layer.padding not in ("same", "valid"):
        raise UnsupportedLayerError(f"{_where(layer)}: padding {layer.padding!r} is not supported (same, valid)")
    return tuple(int(p) for p in layer.pool_size), tuple(int(s) for s in layer.strides)


def _max_pooling(layer) -> list:
    pool, strides = _pool_settings(layer)
    return [MaxPool(layer.name, pool, strides, layer.padding)]


def _qaverage_pooling2d(layer) -> list:
    """QKeras averages in float (sum / area), multiplies back by the area,
    then by the quantized reciprocal ``q(1/area)``. On codes that is
    ``sum * code(q(1/area))`` exactly only when the division and the
    multiplication are exact: a power-of-two area and no padding (TensorFlow
    divides border windows by fewer elements, QKeras multiplies back by the
    full area)."""
    where = _where(layer)
    pool, strides = _pool_settings(layer)
    area = int(np.prod(pool))
    if area & (area - 1):
        raise UnsupportedLayerError(f"{where}: pool area {area} is not a power of two, so QKeras' float average "
                                    "is not exact on integer codes")
    if layer.padding == "same":
        sizes = tuple(int(d) for d in layer.input_shape[1:3])
        out, _ = window_geometry(sizes, pool, strides, "same")
        if any((o - 1) * s + p > n for o, s, p, n in zip(out, strides, pool, sizes)):
            raise UnsupportedLayerError(f"{where}: 'same' padding that pads the input is not supported (QKeras "
                                        "rescales padded windows by the full pool area)")
        # no window reaches past the input: 'same' computes what 'valid' does
    quantizer = layer.average_quantizer_internal
    if quantizer is None:
        mult, frac_add = 1, area.bit_length() - 1
    else:
        fmt, kind = quantizer_format(quantizer, f"{where} average_quantizer")
        if kind != "quantized_bits":
            raise UnsupportedLayerError(f"{where}: average_quantizer must be quantized_bits, not {kind}")
        mult = int(param_codes(np.array(1.0 / area, dtype=np.float32), quantizer, fmt,
                               f"{where} average_quantizer").reshape(()))
        frac_add = fmt.frac
    return [AvgPool(layer.name, pool, strides, mult, frac_add)] + _fused_activation(layer)


# layers whose IR kernel and bias are a fold of several Keras weights
FOLDED = ("QConv2DBatchnorm",)

# Keras class name -> IR layers it becomes. FKeras layers arrive here under
# their QKeras names (keras_io.from_fkeras).
HANDLERS = {
    "QConv2D": _qconv2d,
    "QConv1D": _qconv1d,
    "QConv2DBatchnorm": _qconv2d_batchnorm,
    "QDense": _qdense,
    "QActivation": _qactivation,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "MaxPooling2D": _max_pooling,
    "MaxPooling1D": _max_pooling,
    "QAveragePooling2D": _qaverage_pooling2d,
}


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
            f"the first layer must be a QActivation(quantized_bits) input quantizer, found {first}: fkhw (like "
            "hls4ml's input port) needs the input's fixed-point format; add QActivation('quantized_bits(b,i,alpha=1)')")
    in_fmt, kind = quantizer_format(layers[0].quantizer, f"layer {layers[0].name!r} (QActivation)")
    if kind != "quantized_bits":
        raise UnsupportedLayerError(f"layer {layers[0].name!r} (QActivation): input quantizer must be quantized_bits")
    ir_layers = []
    for layer in layers[1:]:
        handler = HANDLERS.get(type(layer).__name__)
        if handler is None:
            raise UnsupportedLayerError(f"layer {layer.name!r} ({type(layer).__name__}) is not supported: fkhw handles "
                                        f"{', '.join(HANDLERS)} (QActivation: quantized_bits|quantized_relu)")
        ir_layers.extend(handler(layer))
    source = dict(source or {})
    folded = [layer.name for layer in layers if type(layer).__name__ in FOLDED]
    if folded:
        # their Keras kernels are not the IR's: a level that writes faulty
        # codes back into Keras (qkeras) or differentiates Keras weights
        # (hessian) must refuse or fold them
        source["folded_batchnorm"] = folded
    model = IntegerModel(name, InputQuant(layers[0].name, in_shape, in_fmt), tuple(ir_layers), source)
    model.tensor_specs()  # validates shapes
    return model
