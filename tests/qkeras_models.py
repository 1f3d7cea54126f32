"""Small QKeras networks that are not ECON-T (issue 17): each exercises
layer kinds beyond QConv2D/QDense, with widths other than the reference's.
Weights are random but spread over many codes of each quantizer. Shared by
the model tests; each builder takes the TensorFlow module."""

from __future__ import annotations

import numpy as np


def randomize(model, seed: int):
    """Weights spread over several codes of each quantizer (Keras'
    initialisers leave many conv kernels within one or two codes)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for w in layer.weights:
            if "iteration" in w.name:
                continue
            v = rng.normal(0.0, 0.7, size=w.shape)
            if "moving_variance" in w.name:
                v = rng.uniform(0.3, 3.0, size=w.shape)
            elif "gamma" in w.name:
                v = rng.uniform(0.5, 2.0, size=w.shape)
            w.assign(v.astype(np.float32))
    return model


def conv1d_model(tf, seed: int = 1):
    """A time-series classifier: QConv1D (same with uneven padding, and
    valid strided), MaxPooling1D."""
    from qkeras import QActivation, QConv1D, QDense, quantized_bits, quantized_relu

    inp = tf.keras.Input((16, 3))
    x = QActivation(quantized_bits(7, 2, alpha=1), name="in_q")(inp)
    x = QConv1D(4, 4, padding="same", kernel_quantizer=quantized_bits(5, 0, alpha=1),
                bias_quantizer=quantized_bits(6, 2, alpha=1), name="c1")(x)
    x = QActivation(quantized_relu(6, 3), name="c1_act")(x)
    x = tf.keras.layers.MaxPooling1D(2, name="pool1")(x)
    x = QConv1D(3, 2, strides=2, kernel_quantizer=quantized_bits(4, 1, alpha=1),
                bias_quantizer=quantized_bits(5, 1, alpha=1), activation=quantized_bits(8, 3, alpha=1), name="c2")(x)
    x = tf.keras.layers.Flatten(name="flat")(x)
    x = QDense(5, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 2, alpha=1),
               name="out")(x)
    return randomize(tf.keras.Model(inp, x), seed)


def conv_bn_model(tf, use_bias: bool = True):
    """QConv2DBatchnorm (strided, same padding) with non-trivial batch-norm statistics."""
    from qkeras import QActivation, QConv2DBatchnorm, QDense, quantized_bits, quantized_relu

    inp = tf.keras.Input((10, 10, 2))  # strided 'same': one row/column of padding, after the input
    x = QActivation(quantized_bits(6, 1, alpha=1), name="in_q")(inp)
    x = QConv2DBatchnorm(4, (3, 3), strides=(2, 2), padding="same", use_bias=use_bias,
                         kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(10, 4, alpha=1),
                         name="cbn")(x)
    x = QActivation(quantized_relu(5, 2), name="cbn_act")(x)
    x = tf.keras.layers.Flatten(name="flat")(x)
    x = QDense(3, kernel_quantizer=quantized_bits(5, 0, alpha=1), bias_quantizer=quantized_bits(5, 1, alpha=1),
               name="out")(x)
    return randomize(tf.keras.Model(inp, x), 2)


def pooling_model(tf):
    """MaxPooling2D with padding, QAveragePooling2D with its quantizer and
    activation, Reshape into a QConv1D."""
    from qkeras import QActivation, QAveragePooling2D, QConv1D, QConv2D, QDense, quantized_bits

    inp = tf.keras.Input((7, 7, 1))
    x = QActivation(quantized_bits(8, 3, alpha=1), name="in_q")(inp)
    x = QConv2D(3, (3, 3), kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 1, alpha=1),
                name="c1")(x)
    # signed codes into the padded max pool: a padded position must never win
    x = QActivation(quantized_bits(7, 3, alpha=1), name="c1_act")(x)
    x = tf.keras.layers.MaxPooling2D((2, 2), padding="same", name="maxpool")(x)  # 5x5 -> 3x3, pads
    x = QAveragePooling2D((1, 2), strides=(1, 1), average_quantizer=quantized_bits(4, 0, alpha=1),
                          activation=quantized_bits(6, 2, alpha=1), name="avg")(x)  # 3x2x3
    x = tf.keras.layers.Reshape((3, 6), name="reshape")(x)
    x = QConv1D(2, 2, kernel_quantizer=quantized_bits(5, 1, alpha=1), bias_quantizer=quantized_bits(5, 1, alpha=1),
                name="c2")(x)
    x = tf.keras.layers.Flatten(name="flat")(x)
    x = QDense(4, kernel_quantizer=quantized_bits(6, 1, alpha=1), bias_quantizer=quantized_bits(6, 2, alpha=1),
               name="out")(x)
    return randomize(tf.keras.Model(inp, x), 3)


def plain_average_model(tf):
    """QAveragePooling2D without a quantizer over a power-of-two area: the
    float average is exact, so it is the code sum with 2 more fractional bits."""
    from qkeras import QActivation, QAveragePooling2D, QConv2D, quantized_bits

    inp = tf.keras.Input((6, 6, 2))
    x = QActivation(quantized_bits(5, 2, alpha=1), name="in_q")(inp)
    x = QConv2D(2, (1, 1), kernel_quantizer=quantized_bits(4, 1, alpha=1), use_bias=False, name="c")(x)
    x = QAveragePooling2D((2, 2), name="avg")(x)
    x = QActivation(quantized_bits(9, 3, alpha=1), name="avg_q")(x)
    return randomize(tf.keras.Model(inp, x), 4)


def strided_pool_model(tf):
    """A max pool whose stride (3) exceeds its window (2): some conv outputs
    are never read, nor, through them, the input's last column (the RTL's
    stage registers keep only what an output depends on); Reshape into a
    'same' QConv1D, a padded MaxPooling1D on unsigned codes."""
    from qkeras import QActivation, QConv1D, QConv2D, QDense, quantized_bits, quantized_relu

    inp = tf.keras.Input((6, 7, 2))
    x = QActivation(quantized_bits(6, 2, alpha=1), name="in_q")(inp)
    x = QConv2D(3, (2, 2), kernel_quantizer=quantized_bits(5, 0, alpha=1), bias_quantizer=quantized_bits(6, 2, alpha=1),
                name="c1")(x)
    x = QActivation(quantized_bits(6, 2, alpha=1), name="c1_act")(x)
    x = tf.keras.layers.MaxPooling2D((2, 2), strides=(3, 3), name="pool2d")(x)  # 5x6 -> 2x2
    x = tf.keras.layers.Reshape((4, 3), name="reshape")(x)
    x = QConv1D(4, 2, padding="same", kernel_quantizer=quantized_bits(4, 1, alpha=1),
                bias_quantizer=quantized_bits(5, 2, alpha=1), name="c2")(x)
    x = QActivation(quantized_relu(5, 2), name="c2_act")(x)
    x = tf.keras.layers.MaxPooling1D(3, strides=1, padding="same", name="pool1d")(x)
    x = tf.keras.layers.Flatten(name="flat")(x)
    x = QDense(3, kernel_quantizer=quantized_bits(4, 1, alpha=1), bias_quantizer=quantized_bits(6, 2, alpha=1),
               name="out")(x)
    return randomize(tf.keras.Model(inp, x), 5)


def hls_mix_model(tf):
    """The kinds hls4ml 1.3 translates, in one network (one C-sim build):
    QConv2DBatchnorm, then a signed QActivation(quantized_bits) (the pattern
    hls4ml drops unless its conv has an explicit result type), a padded
    MaxPooling2D on signed codes, Reshape into a 'same' QConv1D, another
    quantized_bits activation, MaxPooling1D, QDense."""
    from qkeras import QActivation, QConv1D, QConv2DBatchnorm, QDense, quantized_bits

    inp = tf.keras.Input((8, 9, 2))
    x = QActivation(quantized_bits(7, 2, alpha=1), name="in_q")(inp)
    x = QConv2DBatchnorm(3, (3, 3), padding="same", kernel_quantizer=quantized_bits(6, 0, alpha=1),
                         bias_quantizer=quantized_bits(10, 4, alpha=1), name="cbn")(x)
    x = QActivation(quantized_bits(6, 2, alpha=1), name="cbn_act")(x)
    x = tf.keras.layers.MaxPooling2D((2, 2), padding="same", name="pool2d")(x)  # 8x9 -> 4x5: pads a column
    x = tf.keras.layers.Reshape((10, 6), name="reshape")(x)
    x = QConv1D(4, 3, padding="same", kernel_quantizer=quantized_bits(5, 1, alpha=1),
                bias_quantizer=quantized_bits(6, 2, alpha=1), name="c1d")(x)
    x = QActivation(quantized_bits(7, 3, alpha=1), name="c1d_act")(x)
    x = tf.keras.layers.MaxPooling1D(2, name="pool1d")(x)
    x = tf.keras.layers.Flatten(name="flat")(x)
    x = QDense(3, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 2, alpha=1),
               name="out")(x)
    return randomize(tf.keras.Model(inp, x), 6)


def ir_signature(ir) -> list:
    """Everything an IR says, as comparable values (source excluded: it
    names the files)."""
    out = [("input", ir.input.name, tuple(ir.input.shape), ir.input.fmt)]
    for layer in ir.layers:
        fields = []
        for key, value in sorted(vars(layer).items()):
            fields.append((key, value.tolist() if isinstance(value, np.ndarray) else value))
        out.append(tuple(fields))
    return out
