"""The (float, off-detector) decoder as a chain of affine maps + activations.

Every supported decoder layer is affine before its activation, so it is
captured once as a dense matrix by probing it with the unit basis; the
campaign then decodes hundreds of thousands of latent vectors with plain
BLAS and no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BLOCK = 1024  # rows per matrix product, always (see DecoderIR.__call__)
_AFFINE = ("Dense", "Conv2D", "Conv2DTranspose")
_RESHAPE = ("Reshape", "Flatten")
LAYERS = _AFFINE + _RESHAPE + ("Activation",)  # the layers a decoder may have
_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0, out=x),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
}


@dataclass(frozen=True, eq=False)
class DecoderIR:
    """``stages``: tuple of ("affine", W, b) or ("act", name)."""

    stages: tuple
    in_size: int
    out_shape: tuple

    def __call__(self, latent: np.ndarray) -> np.ndarray:
        """Decode in float64, BLAS matrix products on blocks of exactly
        ``_BLOCK`` rows (the last one zero-padded): every call takes the same
        kernel path, so a row decodes to the same bits whatever else is in
        the batch or where it sits in it (tests/model/test_foundation.py checks
        this), and EMDs do not depend on how a campaign was chunked or
        resumed. (A per-row einsum gave the same guarantee at ~4x the time.)"""
        latent = np.asarray(latent, dtype=np.float64)
        n = latent.shape[0]
        out = np.empty((n, int(np.prod(self.out_shape))), dtype=np.float64)
        weights = [(st[0], st[1].astype(np.float64), st[2]) if st[0] == "affine" else st for st in self.stages]
        x = np.zeros((_BLOCK, latent.shape[1]))
        for s in range(0, n, _BLOCK):
            k = min(_BLOCK, n - s)
            x[:k] = latent[s:s + k]
            x[k:] = 0.0
            y = x
            for stage in weights:
                y = y @ stage[1] + stage[2] if stage[0] == "affine" else _ACTIVATIONS[stage[1]](y)
            out[s:s + k] = y[:k]
        return out.reshape((-1,) + self.out_shape)

    def save_arrays(self) -> dict:
        arrays = {"dec_in_size": np.array(self.in_size), "dec_out_shape": np.array(self.out_shape)}
        for i, st in enumerate(self.stages):
            if st[0] == "affine":
                arrays[f"dec_{i}_W"], arrays[f"dec_{i}_b"] = st[1], st[2]
            else:
                arrays[f"dec_{i}_act"] = np.array(st[1])
        return arrays

    @staticmethod
    def from_arrays(z) -> "DecoderIR":
        stages, i = [], 0
        while f"dec_{i}_W" in z or f"dec_{i}_act" in z:
            if f"dec_{i}_W" in z:
                stages.append(("affine", z[f"dec_{i}_W"], z[f"dec_{i}_b"]))
            else:
                stages.append(("act", str(z[f"dec_{i}_act"])))
            i += 1
        return DecoderIR(tuple(stages), int(z["dec_in_size"]), tuple(int(v) for v in z["dec_out_shape"]))


def _activation_name(layer) -> str:
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", "linear") if act is not None else "linear"
    if name not in _ACTIVATIONS:
        raise ValueError(f"decoder layer {layer.name!r} ({type(layer).__name__}): activation {name!r} is not supported")
    return name


def _probe_affine(layer, in_shape: tuple):
    """Matrix and bias of a layer's pre-activation affine map."""
    import tensorflow as tf

    cfg = layer.get_config()
    cfg["activation"] = "linear"
    linear = type(layer).from_config(cfg)
    linear.build((None,) + in_shape)
    linear.set_weights(layer.get_weights())
    n = int(np.prod(in_shape))
    weights = layer.get_weights()
    # probe the matrix with the bias zeroed, so each column is exact
    if getattr(layer, "use_bias", False):
        linear.set_weights(weights[:-1] + [np.zeros_like(weights[-1])])
    matrix = linear(tf.constant(np.eye(n).reshape((n,) + in_shape), dtype=tf.float32)).numpy().reshape(n, -1)
    linear.set_weights(weights)
    bias = linear(tf.zeros((1,) + in_shape)).numpy().reshape(-1)
    return matrix.astype(np.float32), bias.astype(np.float32)


def extract_decoder(keras_model) -> DecoderIR:
    stages = []
    shape = tuple(int(d) for d in keras_model.input_shape[1:])
    in_size = int(np.prod(shape))
    for layer in keras_model.layers:
        cls = type(layer).__name__
        if cls == "InputLayer":
            continue
        if cls in _RESHAPE:
            shape = tuple(int(d) for d in layer.output_shape[1:])
            continue
        if cls == "Activation":
            stages.append(("act", _activation_name(layer)))
            continue
        if cls not in _AFFINE:
            raise ValueError(f"decoder layer {layer.name!r} ({cls}) is not supported: "
                             "fkhw decodes Dense, Conv2D, Conv2DTranspose, Reshape, Flatten, Activation")
        w, b = _probe_affine(layer, shape)
        stages.append(("affine", w, b))
        act = _activation_name(layer)
        if act != "linear":
            stages.append(("act", act))
        shape = tuple(int(d) for d in layer.output_shape[1:])
    return DecoderIR(tuple(stages), in_size, shape)
