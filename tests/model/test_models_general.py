"""Networks beyond the ECON-T autoencoder (issue 17), as specifications:

- every layer kind the integer IR takes from QKeras (QConv1D, the folded
  batch-norm QConv2DBatchnorm, max pooling 1-D/2-D, QAveragePooling2D,
  Reshape) runs bit-exactly: the engine's integer output codes equal
  QKeras' own float output times 2**frac on every row, for small random
  models with widths other than ECON-T's;
- layers whose QKeras semantics are not exact on codes, and anything else,
  are refused with one line naming the layer;
- the hls4ml level refuses the kinds it does not translate exactly in one
  line (the RTL generator builds them all: tests/rtlgen/test_rtl_layers.py).

Model files: tests/model/test_model_files.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from qkeras_models import conv1d_model, conv_bn_model, ir_signature, plain_average_model, pooling_model

N_ROWS = 512


pytestmark = pytest.mark.usefixtures("uncached")


def bit_exact(model, seed: int = 0):
    """(mismatching values, total values, distinct output codes) of the
    engine against QKeras on N_ROWS random inputs in the input's range."""
    from fkhw.model.engine import forward
    from fkhw.model.fixed import quantize_float
    from fkhw.model.extract import extract

    ir = extract(model, "m")
    rng = np.random.default_rng(seed)
    span = 2.0 ** (ir.input.fmt.integer_bits - 1)
    x = rng.uniform(-span, span, size=(N_ROWS,) + tuple(ir.input.shape)).astype(np.float32)
    ours = forward(ir, quantize_float(x, ir.input.fmt))
    theirs = model(x, training=False).numpy().astype(np.float64) * 2.0 ** ir.output_spec.frac
    assert ours.shape == theirs.shape
    return int(np.sum(ours != theirs)), ours.size, np.unique(ours).size, ir


@pytest.mark.parametrize("build, kinds", [
    (conv1d_model, {"conv1d", "maxpool"}),
    (conv_bn_model, {"conv2d"}),
    (pooling_model, {"maxpool", "avgpool", "reshape", "conv1d"}),
    (plain_average_model, {"avgpool"}),
], ids=["conv1d-maxpool1d", "qconv2dbatchnorm", "maxpool2d-qavgpool-reshape", "avgpool-no-quantizer"])
def test_new_layers_are_bit_exact_with_qkeras(tf, build, kinds):
    model = build(tf)
    bad, total, distinct, ir = bit_exact(model)
    assert kinds <= {layer.kind for layer in ir.layers}
    assert bad == 0, f"{bad} of {total} output codes differ from QKeras"
    # a check that can fail: the outputs must spread over many codes
    assert distinct >= 8, f"only {distinct} distinct output codes: the model does not exercise its layers"


def test_conv_bn_without_bias_is_bit_exact(tf):
    bad, total, _, ir = bit_exact(conv_bn_model(tf, use_bias=False), seed=1)
    assert ir.layer("cbn").bias is not None  # the folded bias is the batch norm's beta - mean * scale
    assert ir.source["folded_batchnorm"] == ["cbn"]  # levels that write Keras weights must know
    assert bad == 0, f"{bad} of {total} output codes differ from QKeras"


def test_folded_codes_are_qkeras_quantized_fold(tf):
    """The IR's codes of a QConv2DBatchnorm are QKeras' quantizers applied to
    the fold QKeras computes in ``call`` (written out here in numpy float32)."""
    from fkhw.model.extract import extract

    model = conv_bn_model(tf)
    layer = model.get_layer("cbn")
    bn = layer.batchnorm
    inv = (1.0 / np.sqrt(bn.moving_variance.numpy() + np.float32(bn.epsilon))).astype(np.float32) * bn.gamma.numpy()
    kernel = inv * layer.kernel.numpy()
    bias = inv * (layer.bias.numpy() - bn.moving_mean.numpy()) + bn.beta.numpy()
    ir_layer = extract(model, "m").layer("cbn")
    for codes, fmt, values, q in ((ir_layer.kernel, ir_layer.kernel_fmt, kernel, layer.kernel_quantizer_internal),
                                  (ir_layer.bias, ir_layer.bias_fmt, bias, layer.bias_quantizer_internal)):
        want = np.asarray(q(tf.constant(values))) * 2.0 ** fmt.frac
        assert np.sum(codes != want) == 0, f"{np.sum(codes != want)} of {codes.size} folded codes differ"
        assert np.unique(codes).size >= min(codes.size, 5), "the fold must spread over several codes"


def _refusal(tf, layer, shape=(8, 8, 2)):
    from qkeras import QActivation, quantized_bits

    inp = tf.keras.Input(shape)
    x = QActivation(quantized_bits(6, 2, alpha=1), name="in_q")(inp)
    return tf.keras.Model(inp, layer(x))


@pytest.mark.parametrize("make, words", [
    (lambda: __import__("qkeras").QAveragePooling2D((3, 3), name="avg3"), ("'avg3'", "QAveragePooling2D", "area 9")),
    (lambda: __import__("qkeras").QAveragePooling2D((2, 2), strides=(1, 1), padding="same", name="avg_pad"),
     ("'avg_pad'", "padding")),
    (lambda: __import__("qkeras").QAveragePooling2D((2, 2), average_quantizer="quantized_relu(4,0)", name="avg_relu"),
     ("'avg_relu'", "average_quantizer")),
    (lambda: __import__("tensorflow").keras.layers.BatchNormalization(name="bn"), ("'bn'", "BatchNormalization")),
    (lambda: __import__("tensorflow").keras.layers.AveragePooling2D(name="plain_avg"), ("'plain_avg'", "AveragePooling2D")),
    (lambda: __import__("qkeras").QConv1D(2, 3, padding="causal", kernel_quantizer="quantized_bits(4,0,alpha=1)",
                                          bias_quantizer="quantized_bits(4,0,alpha=1)", name="causal"),
     ("'causal'", "padding 'causal'")),
    (lambda: __import__("qkeras").QDense(2, kernel_quantizer="quantized_bits(4,0,alpha=1)",
                                         bias_quantizer="quantized_bits(4,0,alpha=1)", name="dense_3d"),
     ("'dense_3d'", "(8, 8, 2) input", "Flatten")),
], ids=["avgpool-area-9", "avgpool-padded", "avgpool-relu-quantizer", "batchnorm", "keras-avgpool", "conv1d-causal",
        "dense-per-position"])
def test_inexact_or_unknown_layers_are_refused_in_one_line(tf, make, words):
    from fkhw.model.extract import UnsupportedLayerError, extract

    shape = (8, 3) if "causal" in words[0] else (8, 8, 2)
    with pytest.raises(UnsupportedLayerError) as info:
        extract(_refusal(tf, make(), shape), "m")
    msg = str(info.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_network_without_input_quantizer_is_refused_in_one_line(tf):
    from qkeras import QDense, quantized_bits

    from fkhw.model.extract import UnsupportedLayerError, extract

    inp = tf.keras.Input((4,))
    model = tf.keras.Model(inp, QDense(2, kernel_quantizer=quantized_bits(4, 0, alpha=1),
                                       bias_quantizer=quantized_bits(4, 0, alpha=1), name="d")(inp))
    with pytest.raises(UnsupportedLayerError, match=r"'d' \(QDense\).*add QActivation") as info:
        extract(model, "m")
    assert "\n" not in str(info.value)


def test_ir_with_new_kinds_round_trips_through_its_file(tf, tmp_path):
    from fkhw.model.engine import forward
    from fkhw.model.extract import extract
    from fkhw.model.ir import IntegerModel

    ir = extract(pooling_model(tf), "m")
    ir.save(tmp_path / "ir.npz")
    back = IntegerModel.load(tmp_path / "ir.npz")
    assert ir_signature(back) == ir_signature(ir)
    x = np.random.default_rng(0).integers(ir.input.fmt.lo, ir.input.fmt.hi + 1, size=(64,) + tuple(ir.input.shape))
    assert np.array_equal(forward(back, x), forward(ir, x))


def test_hls_refuses_qaveragepooling2d_in_one_line(tf):
    """hls4ml 1.3 has no QAveragePooling2D. (The RTL generator builds every
    new kind: tests/rtlgen/test_rtl_layers.py; the hls level the others:
    tests/hls/test_hls_layers.py.)"""
    from fkhw.hls.project import HlsUnsupportedError, check_ir
    from fkhw.model.extract import extract

    ir = extract(pooling_model(tf), "m")
    with pytest.raises(HlsUnsupportedError, match="'avg'.*QAveragePooling2D") as hls:
        check_ir(ir)
    assert "\n" not in str(hls.value)


@pytest.mark.parametrize("build", [conv1d_model, pooling_model, conv_bn_model], ids=["conv1d", "pooling", "conv-bn"])
def test_software_level_upsets_match_the_flipped_model(tf, build):
    """The software level's fast single-upset paths, on the new kinds, give
    what the engine gives on a model with that one bit flipped."""
    from fkhw.model.engine import forward
    from fkhw.levels.software import SoftwareLevel
    from fkhw.model.extract import extract
    from fkhw.faults.sites import SiteSpace, flip

    ir = extract(build(tf), "m")
    space = SiteSpace.of(ir)
    rng = np.random.default_rng(0)
    x = rng.integers(ir.input.fmt.lo, ir.input.fmt.hi + 1, size=(16,) + tuple(ir.input.shape))
    sites = np.sort(rng.choice(space.n_sites, size=min(60, space.n_sites), replace=False))
    got = SoftwareLevel(ir).run(sites, x)
    want = np.stack([forward(flip(ir, space, int(s)), x) for s in sites])
    assert {t.layer for t in space.tensors} == {layer.name for layer in ir.param_layers()}
    assert np.sum(got != want) == 0, f"{np.sum(got != want)} of {want.size} faulty outputs differ"
    assert np.sum(np.any(want != forward(ir, x)[None], axis=(1, 2))) > len(sites) // 4, "few upsets change anything"


def test_levels_that_write_keras_weights_refuse_a_folded_batchnorm_conv(tf, tmp_path):
    """The qkeras level writes faulty codes into Keras kernels and the Hessian
    differentiates them; for a QConv2DBatchnorm those are not the folded
    parameters the sites name, so both refuse in one line naming the layer."""
    from fkhw.analysis.hessian import AutoencoderLoss
    from fkhw.levels.qkeras import QKerasLevel
    from fkhw.model.bundle import load_model
    from fkhw.model.extract import UnsupportedLayerError

    path = tmp_path / "cbn.h5"
    conv_bn_model(tf).save(path)
    bundle = load_model(str(path))
    with pytest.raises(UnsupportedLayerError, match="'cbn'.*QConv2DBatchnorm"):
        QKerasLevel(bundle)
    with pytest.raises(UnsupportedLayerError, match="'cbn'.*QConv2DBatchnorm"):
        AutoencoderLoss(bundle, np.zeros((4, 8, 8, 1), dtype=np.float32))
