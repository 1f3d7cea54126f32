"""Shared fixtures.

``trained_model_dir``: a model trained from scratch by ``fkhw.model.train``
with bit widths *other* than the reference (6-bit weights and biases, 8-bit
latent), so tests can check that nothing is hard-wired to the ECON-T 5-bit
model. Trained once per session (2 epochs on 2000 vendored rows, seed 1,
a few seconds) into a temporary directory; pass ``str(trained_model_dir)``
to ``fkhw.model.bundle.load_model`` or to ``--model``. Treat it as read-only.

``vendored_inputs``: ``(charges, image)`` of the vendored HGCAL sample:
(N, 48) float64 charges and the (N, 8, 8, 1) float32 normalised image the
encoder reads.
"""

from __future__ import annotations

import pytest

TRAINED_CONFIG = dict(weight_bits=6, latent_bits=8, epochs=2, max_rows=2000, seed=1)


@pytest.fixture(scope="session")
def vendored_inputs():
    from fkhw.data import load_charges
    from fkhw.model.train import images

    charges = load_charges()
    return charges, images(charges)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, vendored_inputs):
    from fkhw.data import DEFAULT_DATA
    from fkhw.model.train import TrainConfig, train

    out = tmp_path_factory.mktemp("trained_model")
    train(TrainConfig(**TRAINED_CONFIG), vendored_inputs[0], out, data_file=DEFAULT_DATA)
    return out
