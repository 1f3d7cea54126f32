"""The hls4ml level on the layer kinds hls4ml 1.3 translates exactly
(issue 17): the folded QConv2DBatchnorm (hls4ml's Conv2DBatchnorm), max
pooling 1-D and 2-D (padding included), Reshape, QConv1D, and a
QActivation(quantized_bits) right after a conv (which hls4ml drops from its
graph unless fkhw gives the conv an explicit result type). As specifications:

- `fkhw hls`'s project for one small random-weight network holding all of
  them compiles, and hls4ml's own C-simulation equals QKeras (float output
  x 2**frac) and the integer engine on every row;
- single upsets injected through the project's weight files equal the
  engine on the flipped model (the site -> weight-file map holds for the
  new layers);
- QAveragePooling2D, which hls4ml 1.3 does not have, is refused in one line.

One C-sim build for the module (hls4ml's library and fkhw's fault library).
"""

from __future__ import annotations

import numpy as np
import pytest
from qkeras_models import hls_mix_model, pooling_model

from fkhw.model import engine
from fkhw.model.fixed import quantize_float
from fkhw.hls.project import HlsUnsupportedError, check_ir, csim_predict, generate
from fkhw.levels.hls import HlsLevel
from fkhw.faults.sites import SiteSpace, flip

pytestmark = [pytest.mark.hls]

N_ROWS = 2000
N_FAULT_ROWS = 64


@pytest.fixture(scope="module")
def mix(tf, tmp_path_factory):
    from fkhw.model.bundle import load_model

    root = tmp_path_factory.mktemp("hls_mix")
    keras_model = hls_mix_model(tf)
    keras_model.save(root / "mix.h5")
    bundle = load_model(str(root / "mix.h5"))
    project, hls_model = generate(bundle, root / "project")
    return keras_model, bundle, project, hls_model


def rows(ir, n: int, seed: int) -> tuple:
    """n random inputs over the input quantizer's range: (floats, codes)."""
    span = 2.0 ** (ir.input.fmt.integer_bits - 1)
    x = np.random.default_rng(seed).uniform(-span, span, size=(n,) + tuple(ir.input.shape)).astype(np.float32)
    return x, quantize_float(x, ir.input.fmt)


def test_the_model_holds_every_kind_hls4ml_translates(mix):
    _, bundle, _, hls_model = mix
    ir = bundle.ir
    assert {"conv2d", "conv1d", "maxpool", "reshape", "flatten", "dense"} <= {layer.kind for layer in ir.layers}
    assert ir.source["folded_batchnorm"] == ["cbn"]
    classes = {layer.class_name for layer in hls_model.get_layers()}
    assert {"Conv2DBatchnorm", "Conv1D", "Pooling1D", "Pooling2D"} <= classes
    # both quantized_bits activations after a conv are still in hls4ml's graph
    assert {"cbn_act", "c1d_act"} <= {layer.name for layer in hls_model.get_layers()}


def test_csim_equals_qkeras_and_engine_on_every_row(mix):
    keras_model, bundle, _, hls_model = mix
    ir = bundle.ir
    x, codes = rows(ir, N_ROWS, seed=11)
    csim = csim_predict(hls_model, ir, codes)
    theirs = keras_model(x, training=False).numpy().astype(np.float64).reshape(N_ROWS, -1) * 2.0 ** ir.output_spec.frac
    bad = int(np.sum(csim != theirs))
    assert bad == 0, f"{bad} of {csim.size} output codes differ between hls4ml C-sim and QKeras"
    assert np.array_equal(csim, engine.forward(ir, codes).reshape(N_ROWS, -1))
    assert np.unique(csim).size >= 8, "the outputs must spread over many codes"


def test_upsets_through_the_weight_files_equal_the_flipped_engine(mix):
    """Every tensor's sign bit and LSB of its first and last parameter, plus
    random sites."""
    _, bundle, project, _ = mix
    ir, space = bundle.ir, SiteSpace.of(bundle.ir)
    picks = []
    for t in space.tensors:
        for index in (0, t.size - 1):
            picks += [space.site_id(t.layer, t.tensor, index, 0), space.site_id(t.layer, t.tensor, index, t.fmt.bits - 1)]
    rng = np.random.default_rng(2)
    sites = np.unique(picks + rng.choice(space.n_sites, 24, replace=False).tolist())
    _, x = rows(ir, N_FAULT_ROWS, seed=12)
    with HlsLevel(ir, project) as level:
        got = level.run(sites, x)
    want = np.stack([engine.forward(flip(ir, space, int(s)), x).reshape(N_FAULT_ROWS, -1) for s in sites])
    bad = int(np.sum((got != want).any(axis=2).any(axis=1)))
    assert bad == 0, f"{bad} of {sites.size} sites differ between the hls level and the flipped engine"
    gold = engine.forward(ir, x).reshape(N_FAULT_ROWS, -1)
    assert int((want != gold[None]).any(axis=(1, 2)).sum()) >= sites.size // 3


def test_qaveragepooling2d_is_refused_in_one_line(tf):
    from fkhw.model.extract import extract

    ir = extract(pooling_model(tf), "m")
    with pytest.raises(HlsUnsupportedError, match="'avg'.*QAveragePooling2D.*hls4ml 1.3") as e:
        check_ir(ir)
    assert "\n" not in str(e.value)
