"""The QKeras level: upsets injected the way FKeras does it.

Each fault sets the faulty quantized weight into the Keras model and calls
``predict``; the model is restored afterwards. Slow, but third-party truth:
tests check the other levels against it, and the benchmark uses it as the
baseline rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fkhw.model.bundle import ModelBundle
from fkhw.sites import SiteSpace


@dataclass(eq=False)
class QKerasLevel:
    bundle: ModelBundle
    name: str = "qkeras"
    encoder: object = field(init=False)
    space: SiteSpace = field(init=False)

    def __post_init__(self):
        from fkhw.model.keras_io import load_encoder

        self.encoder = load_encoder(self.bundle.files)
        self.space = SiteSpace.of(self.bundle.ir)

    def _predict(self, inputs: np.ndarray) -> np.ndarray:
        x = (inputs.astype(np.float64) * 2.0 ** -self.bundle.ir.input.fmt.frac).astype(np.float32)
        y = self.encoder(x, training=False).numpy().astype(np.float64)
        codes = y * 2.0 ** self.bundle.ir.output_spec.frac
        if not np.array_equal(codes, np.rint(codes)):
            raise ValueError("QKeras output is not on the output format's grid")
        return codes.astype(np.int64)

    def golden(self, inputs: np.ndarray) -> np.ndarray:
        return self._predict(inputs)

    def run(self, sites: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        sites = self.space.check(sites)
        tn, idx, bit = self.space.locate(sites)
        out = np.empty((sites.size, inputs.shape[0], self.bundle.ir.output_spec.shape[0]), dtype=np.int64)
        for k in range(sites.size):
            t = self.space.tensors[int(tn[k])]
            ir_layer = self.bundle.ir.layers[t.layer_pos]
            keras_layer = self.encoder.get_layer(ir_layer.name)
            original = keras_layer.get_weights()
            codes = (ir_layer.kernel if t.tensor == "kernel" else ir_layer.bias).reshape(-1)
            which = 0 if t.tensor == "kernel" else 1
            faulty = [w.copy() for w in original]
            flat = faulty[which].reshape(-1)
            # the quantized value of the flipped code; QKeras re-quantizes it to itself
            flat[idx[k]] = float(t.fmt.flip(codes[idx[k]], bit[k])) * 2.0 ** -t.fmt.frac
            keras_layer.set_weights(faulty)
            try:
                out[k] = self._predict(inputs)
            finally:
                keras_layer.set_weights(original)
        return out
