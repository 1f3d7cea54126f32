"""A small integer model that exercises every path of the RTL generator.

Not ECON-T: other widths and geometry on purpose. A quantizer straight on
the input (shift 0, saturating 7 -> 6 bits), a strided 'valid' conv with a
finer bias (bias shift) whose windows skip a column, a signed intermediate
quantizer (shift 1), a 'same' conv without bias and a symmetric kernel
format, a quantizer that shifts left (shift -1), a dense layer whose bias
is finer than its products (product shift), a quantizer with shift 13, and a
final dense layer with no quantizer (the accumulator is the output).
Used by the tests and handy to try the generator on something small;
:func:`pool_model` does the same for pooling, reshape and conv1d.
"""

from __future__ import annotations

import numpy as np

from fkhw.model.fixed import FixedFormat
from fkhw.model.ir import (AvgPool, Conv1D, Conv2D, Dense, Flatten, InputQuant, IntegerModel, MaxPool, Quant,
                          Reshape)


def _codes(rng, fmt: FixedFormat, shape) -> np.ndarray:
    return rng.integers(fmt.lo, fmt.hi + 1, size=shape).astype(np.int64)


def toy_model(seed: int = 0) -> IntegerModel:
    rng = np.random.default_rng(seed)
    k1, b1 = FixedFormat.make(6, 4, True), FixedFormat.make(8, 6, True)
    k2 = FixedFormat.make(4, 2, True, symmetric=True)
    kd, bd = FixedFormat.make(6, 3, True), FixedFormat.make(7, 16, True)
    ke = FixedFormat.make(3, 1, True)
    layers = (
        Quant("in_sat", FixedFormat.make(6, 4, True), "quantized_bits"),
        Conv2D("conv_a", _codes(rng, k1, (2, 3, 2, 3)), _codes(rng, b1, (3,)), k1, b1, (1, 2), "valid"),
        Quant("act_a", FixedFormat.make(8, 7, True), "quantized_bits"),
        Conv2D("conv_b", _codes(rng, k2, (2, 2, 3, 2)), None, k2, None, (1, 1), "same"),
        Quant("act_b", FixedFormat.make(12, 10, False), "quantized_relu"),
        Flatten("flat"),
        Dense("dense_c", _codes(rng, kd, (16, 4)), _codes(rng, bd, (4,)), kd, bd),
        Quant("act_c", FixedFormat.make(7, 3, False), "quantized_relu"),
        Dense("dense_out", _codes(rng, ke, (4, 3)), None, ke, None),
    )
    return IntegerModel(name="toy", input=InputQuant("in", (5, 6, 2), FixedFormat.make(7, 4, True)),
                        layers=layers, source={"model": "toy", "digest": f"toy-seed{seed}", "fkhw": "test"})


def toy_inputs(model: IntegerModel, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = model.input.fmt
    return rng.integers(f.lo, f.hi + 1, size=(n,) + tuple(model.input.shape)).astype(np.int64)


def tiny_model(seed: int = 0) -> IntegerModel:
    """A smaller cousin of :func:`toy_model` for tests that synthesise the
    whole design flat with Yosys (seconds, not a minute): a strided 'valid'
    conv whose windows skip an input column (unused pipeline bits), a signed
    requantizer, a dense layer with bias and a dense layer without."""
    rng = np.random.default_rng(seed)
    k1, b1 = FixedFormat.make(4, 2, True), FixedFormat.make(6, 4, True)
    kd, bd = FixedFormat.make(5, 2, True), FixedFormat.make(6, 5, True)
    ke = FixedFormat.make(3, 1, True)
    layers = (
        Conv2D("conv_a", _codes(rng, k1, (2, 2, 1, 2)), _codes(rng, b1, (2,)), k1, b1, (1, 2), "valid"),
        Quant("act_a", FixedFormat.make(5, 3, True), "quantized_bits"),
        Flatten("flat"),
        Dense("dense_c", _codes(rng, kd, (8, 3)), _codes(rng, bd, (3,)), kd, bd),
        Quant("act_c", FixedFormat.make(5, 2, False), "quantized_relu"),
        Dense("dense_out", _codes(rng, ke, (3, 2)), None, ke, None),
    )
    return IntegerModel(name="tiny", input=InputQuant("in", (3, 5, 1), FixedFormat.make(5, 3, True)),
                        layers=layers, source={"model": "tiny", "digest": f"tiny-seed{seed}", "fkhw": "test"})


def pool_model(seed: int = 0) -> IntegerModel:
    """The layer kinds beyond conv2d/dense in one small model, shaped so that
    every path of their RTL is taken: a 2-D max pool whose stride (3) exceeds
    its window (2), so some conv outputs are never read and, through them, a
    column of the input is dead (the stage registers count only what some
    output depends on); a reshape into a 'same' conv1d; a padded 1-D max pool
    on unsigned codes (padding must never win); a 1-D average pool (window
    sum times the code 1 of 1/2 with one more fractional bit); a dense layer
    with no quantizer (the accumulator is the output)."""
    rng = np.random.default_rng(seed)
    k1, b1 = FixedFormat.make(5, 2, True), FixedFormat.make(6, 3, True)
    k2, b2 = FixedFormat.make(4, 1, True), FixedFormat.make(5, 2, True)
    kd = FixedFormat.make(4, 1, True)
    layers = (
        Conv2D("conv_a", _codes(rng, k1, (2, 2, 2, 3)), _codes(rng, b1, (3,)), k1, b1, (1, 1), "valid"),
        Quant("act_a", FixedFormat.make(6, 3, True), "quantized_bits"),
        MaxPool("pool_a", (2, 2), (3, 3), "valid"),
        Reshape("reshape", (4, 3)),
        Conv1D("conv_b", _codes(rng, k2, (2, 3, 4)), _codes(rng, b2, (4,)), k2, b2, (1,), "same"),
        Quant("act_b", FixedFormat.make(5, 3, False), "quantized_relu"),
        MaxPool("pool_b", (3,), (1,), "same"),
        AvgPool("avg_b", (2,), (2,), 1, 1),
        Flatten("flat"),
        Dense("dense_out", _codes(rng, kd, (8, 3)), None, kd, None),
    )
    return IntegerModel(name="pools", input=InputQuant("in", (6, 7, 2), FixedFormat.make(6, 3, True)),
                        layers=layers, source={"model": "pools", "digest": f"pools-seed{seed}", "fkhw": "test"})
