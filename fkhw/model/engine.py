"""The vectorised integer engine: runs an :class:`IntegerModel` on codes.

Every value is an integer code; products and sums are exact. Matrix
products go through float64 BLAS, which is exact while every partial sum
stays below 2**53 (checked from the IR's worst-case bounds), and fall back
to int64 otherwise.
"""

from __future__ import annotations

import numpy as np

from fkhw.model.fixed import requantize
from fkhw.model.ir import IntegerModel, acc_frac, pool_window, window_geometry

_EXACT_F64 = 1 << 52


def int_matmul(a: np.ndarray, b: np.ndarray, bound: int) -> np.ndarray:
    """Exact integer ``a @ b``; ``bound`` is a bound on any |partial sum|."""
    if bound < _EXACT_F64:
        return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a.astype(np.int64) @ b.astype(np.int64)


def windows(x: np.ndarray, window: tuple, strides: tuple, padding: str, fill: int = 0) -> np.ndarray:
    """(N, H, W, C) -> (N, OH, OW, kh, kw, C): every window, padded as
    TensorFlow pads, with ``fill`` in the padding."""
    n, h, w, c = x.shape
    kh, kw = window
    sh, sw = strides
    (oh, ow), (pt, pl) = window_geometry((h, w), window, strides, padding)
    hp = max((oh - 1) * sh + kh, h + pt)
    wp = max((ow - 1) * sw + kw, w + pl)
    padded = np.full((n, hp, wp, c), fill, dtype=x.dtype)
    padded[:, pt:pt + h, pl:pl + w, :] = x
    cols = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = padded[:, i:i + sh * oh:sh, j:j + sw * ow:sw, :]
    return cols


def spatial_windows(x: np.ndarray, window: tuple, strides: tuple, padding: str, fill: int = 0) -> np.ndarray:
    """:func:`windows` for 1 or 2 spatial axes: (N, *S, C) -> (N, *OS, *window, C).
    A 1-D axis is a 2-D one of height 1 (TensorFlow pads it the same way)."""
    if len(window) == 2:
        return windows(x, window, strides, padding, fill)
    cols = windows(x[:, None], (1,) + tuple(window), (1,) + tuple(strides), padding, fill)
    return cols[:, 0, :, 0]


def conv_patches(x: np.ndarray, layer) -> np.ndarray:
    """im2col: (N, *S, C) -> (N, *OS, k*C), flat in the kernel's C order
    ((kh, kw, cin) or (k, cin)), zero padding as TensorFlow pads."""
    window = layer.kernel.shape[:-2]
    cols = spatial_windows(x, window, layer.strides, layer.padding)
    return cols.reshape(cols.shape[:-len(window) - 1] + (-1,))


def mac_layer_inputs(layer, x: np.ndarray) -> np.ndarray:
    """The operand rows a MAC layer multiplies with its flattened kernel."""
    return conv_patches(x, layer) if layer.kind in ("conv2d", "conv1d") else x


def pool(layer, x: np.ndarray) -> np.ndarray:
    """Max or average pooling on codes; exact (see MaxPool, AvgPool)."""
    window, strides, padding = pool_window(layer)
    axes = tuple(range(1 + len(window), 1 + 2 * len(window)))
    if layer.kind == "maxpool":
        # a padded position must never win the max: fill with the lowest int64
        return spatial_windows(x, window, strides, padding, np.iinfo(np.int64).min).max(axis=axes)
    return spatial_windows(x, window, strides, padding).sum(axis=axes) * np.int64(layer.mult)


def mac(layer, x: np.ndarray, in_frac: int, in_bound: int) -> tuple:
    """Accumulator codes of a conv/dense layer and their fractional bits."""
    frac = acc_frac(in_frac, layer)
    prod_shift = frac - (in_frac + layer.kernel_fmt.frac)
    rows = mac_layer_inputs(layer, x)
    k2 = layer.kernel.reshape(-1, layer.kernel.shape[-1])
    bound = int(in_bound) * (1 << (layer.kernel_fmt.bits - 1)) * k2.shape[0]
    acc = int_matmul(rows.reshape(-1, k2.shape[0]), k2, bound).reshape(rows.shape[:-1] + (k2.shape[1],))
    if prod_shift:
        acc = np.left_shift(acc, prod_shift)
    if layer.bias is not None:
        acc = acc + np.left_shift(layer.bias.astype(np.int64), frac - layer.bias_fmt.frac)
    return acc, frac


def apply_layer(layer, x: np.ndarray, frac: int, bound: int) -> tuple:
    """One layer on a batch of codes: returns (codes, frac)."""
    if layer.kind in ("conv2d", "conv1d", "dense"):
        return mac(layer, x, frac, bound)
    if layer.kind == "quant":
        return requantize(x, frac, layer.fmt), layer.fmt.frac
    if layer.kind == "flatten":
        return x.reshape(x.shape[0], -1), frac
    if layer.kind == "reshape":
        return x.reshape((x.shape[0],) + tuple(layer.shape)), frac
    if layer.kind == "maxpool":
        return pool(layer, x), frac
    if layer.kind == "avgpool":
        return pool(layer, x), frac + layer.frac_add
    raise ValueError(f"layer {layer.name!r}: unknown kind {layer.kind!r}")


def run_from(model: IntegerModel, start: int, x: np.ndarray, frac: int) -> np.ndarray:
    """Run layers ``start..`` on codes ``x`` (the input of layer ``start``)."""
    specs = model.tensor_specs()
    for i in range(start, len(model.layers)):
        bound = max(abs(specs[i].lo), abs(specs[i].hi))
        x, frac = apply_layer(model.layers[i], x, frac, bound)
    return x


def forward(model: IntegerModel, x_codes: np.ndarray) -> np.ndarray:
    """Encoder output codes for input codes (N, *input.shape)."""
    x = np.asarray(x_codes, dtype=np.int64)
    if x.shape[1:] != tuple(model.input.shape):
        raise ValueError(f"input shape {x.shape[1:]} does not match model input {tuple(model.input.shape)}")
    return run_from(model, 0, x, model.input.fmt.frac)


def activations(model: IntegerModel, x_codes: np.ndarray) -> list:
    """Codes entering each layer, plus the output: len(layers)+1 arrays."""
    specs = model.tensor_specs()
    x = np.asarray(x_codes, dtype=np.int64)
    frac = model.input.fmt.frac
    out = [x]
    for i, layer in enumerate(model.layers):
        bound = max(abs(specs[i].lo), abs(specs[i].hi))
        x, frac = apply_layer(layer, x, frac, bound)
        out.append(x)
    return out
