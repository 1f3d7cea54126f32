"""The QKeras level: upsets injected the way FKeras does it.

Each fault sets the faulty quantized weight into the Keras model and calls
``predict``; the model is restored afterwards. Slow, but third-party truth:
tests check the other levels against it, and the benchmark uses it as the
baseline rate.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from fkhw.model.bundle import ModelBundle
from fkhw.faults.sites import SiteSpace, tensor_codes


@dataclass(eq=False)
class QKerasLevel:
    bundle: ModelBundle
    name: str = "qkeras"
    encoder: object = field(init=False)
    space: SiteSpace = field(init=False)

    def __post_init__(self):
        from fkhw.model.extract import UnsupportedLayerError
        from fkhw.model.keras_io import load_encoder

        folded = self.bundle.ir.source.get("folded_batchnorm") if self.bundle.ir.source else None
        if folded:
            raise UnsupportedLayerError(
                f"layer {folded[0]!r} (QConv2DBatchnorm): its Keras kernel is not the folded parameter the upsets "
                "hit, so the qkeras level cannot inject into it; use the software, hls or rtl level")

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

    @contextmanager
    def upset(self, site: int):
        """The Keras encoder with one bit flipped, restored on exit."""
        tn, idx, bit = self.space.locate([site])
        t = self.space.tensors[int(tn[0])]
        keras_layer = self.encoder.get_layer(self.bundle.ir.layers[t.layer_pos].name)
        original = keras_layer.get_weights()
        faulty = [w.copy() for w in original]
        flat = faulty[0 if t.tensor == "kernel" else 1].reshape(-1)
        code = tensor_codes(self.bundle.ir, t).reshape(-1)[idx[0]]
        # the quantized value of the flipped code; QKeras re-quantizes it to itself
        flat[idx[0]] = float(t.fmt.flip(code, bit[0])) * 2.0 ** -t.fmt.frac
        keras_layer.set_weights(faulty)
        try:
            yield self.encoder
        finally:
            keras_layer.set_weights(original)

    def run(self, sites: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        sites = self.space.check(sites)
        out = np.empty((sites.size, inputs.shape[0], self.bundle.ir.output_spec.shape[0]), dtype=np.int64)
        for k, site in enumerate(sites.tolist()):
            with self.upset(site):
                out[k] = self._predict(inputs)
        return out
