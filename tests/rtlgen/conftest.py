"""Fixtures of the code-word designs' tests (test_rtl_ecc.py, test_rtl_parity.py):
the tiny model and a window of its inputs."""

from __future__ import annotations

import numpy as np
import pytest

from fkhw.rtlgen.testing import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def x(model):
    """12 window inputs drawn over the model's whole input range."""
    rng = np.random.default_rng(0)
    fmt = model.input.fmt
    return rng.integers(fmt.lo, fmt.hi + 1, size=(12, *model.input.shape))
