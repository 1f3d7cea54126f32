"""Train the digits example: a small QKeras classifier on scikit-learn's
bundled 8x8 handwritten digits (1,797 images, shipped inside the
scikit-learn wheel, no download).

    .venv/bin/python examples/digits/train.py [--out DIR] [--epochs N] [--seed S]

Writes DIR/model.h5 (``model.save``: architecture + weights, what fkhw
loads as ``--model digits`` or ``--model DIR``) and DIR/data.npz: the
held-out test split, ``x`` (N, 8, 8, 1) pixel values / 16 in [0, 1] and
``y`` (N,) the digit, which fkhw reads with ``--data DIR/data.npz --labels
DIR/data.npz --metric accuracy`` (and ``fkhw sim --model digits`` by
default). Every layer is one fkhw's RTL generator supports: QActivation
(quantized_bits) on the input, QConv2D, quantized_relu, Flatten, QDense.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "fkhw" / "assets" / "models" / "digits"


def build(tf):
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

    inp = tf.keras.Input((8, 8, 1), name="pixels")
    x = QActivation(quantized_bits(6, 1, alpha=1), name="in_q")(inp)
    x = QConv2D(6, (3, 3), strides=(2, 2), padding="valid", kernel_quantizer=quantized_bits(6, 1, alpha=1),
                bias_quantizer=quantized_bits(6, 1, alpha=1), name="conv")(x)
    x = QActivation(quantized_relu(6, 2), name="conv_act")(x)
    x = tf.keras.layers.Flatten(name="flat")(x)
    x = QDense(10, kernel_quantizer=quantized_bits(6, 1, alpha=1), bias_quantizer=quantized_bits(6, 1, alpha=1),
               name="logits")(x)  # the accumulator, unquantized: hls4ml folds a quantized_bits QActivation
    # after a QDense into the layer and drops it from the graph, which fkhw's layer-by-layer C-sim check refuses
    return tf.keras.Model(inp, x, name="digits")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    tf.keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float64)[..., None]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.5, random_state=args.seed, stratify=y)
    model = build(tf)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x_tr.astype(np.float32), y_tr, epochs=args.epochs, batch_size=64, verbose=0, shuffle=True)
    acc = float((model.predict(x_te.astype(np.float32), verbose=0).argmax(axis=1) == y_te).mean())
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "model.h5")
    np.savez(args.out / "data.npz", x=x_te, y=y_te)
    print(f"{args.out / 'model.h5'}: test accuracy {acc:.4f} on {y_te.size} held-out digits "
          f"(trained on {y_tr.size}, {args.epochs} epochs, seed {args.seed}); data: {args.out / 'data.npz'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
