"""The hls level: hls4ml's C-simulation of the encoder is bit-exact with the
integer engine, fault-free and under single-bit faults, and models hls4ml
would not reproduce are refused before any file is written.

Every check runs the real hls4ml C-simulation (compiled C++, no mocks) on
every row of the vendored HGCAL sample. Compiled projects are shared per
module: a project takes ~10 s to convert and compile.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fkhw.model import data

from fkhw.model import engine
from fkhw.model.fixed import quantize_float
from fkhw.hls.project import (MANIFEST, HlsProjectError, HlsUnsupportedError, csim_predict, generate,
                              mismatched_rows, project_for)
from fkhw.levels.hls import HlsLevel
from fkhw.model.bundle import load_model
from fkhw.model.extract import UnsupportedLayerError
from fkhw.faults.sites import SiteSpace, flip

pytestmark = [pytest.mark.hls]

VENDORED_ROWS = 5000


def vendored_codes(ir) -> np.ndarray:
    """Every vendored row as input codes, the way the encoder sees them."""
    return quantize_float(data.to_image(data.normalise(data.load_charges())), ir.input.fmt)


def make_project(tmp_path_factory, model: str, backend: str = "Vitis"):
    bundle = load_model(model)
    out = tmp_path_factory.mktemp("hls") / f"{bundle.name}-{backend}"
    project, hls_model = generate(bundle, out, backend)
    return bundle, project, hls_model


@pytest.fixture(scope="module")
def bol_project(tmp_path_factory):
    return make_project(tmp_path_factory, "econt-bol")


@pytest.fixture(scope="module")
def eol_project(tmp_path_factory):
    return make_project(tmp_path_factory, "econt-eol")


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory, trained_model_dir):
    return make_project(tmp_path_factory, str(trained_model_dir))


@pytest.fixture(scope="module")
def bol_level(bol_project):
    bundle, project, _ = bol_project
    with HlsLevel(bundle.ir, project) as level:
        yield level


# --- fault-free: C-sim == engine on every vendored row ------------------------

@pytest.mark.parametrize("which", ["bol", "eol", "trained"])
def test_csim_equals_engine_on_every_vendored_row(which, request):
    bundle, project, hls_model = request.getfixturevalue(f"{which}_project")
    x = vendored_codes(bundle.ir)
    want = engine.forward(bundle.ir, x)
    assert x.shape[0] == VENDORED_ROWS

    assert mismatched_rows(csim_predict(hls_model, bundle.ir, x), want) == 0  # hls4ml's own library
    with HlsLevel(bundle.ir, project) as level:
        assert mismatched_rows(level.golden(x), want) == 0  # the fault-injection build


def test_trained_model_has_other_bit_widths(trained_project):
    bundle, _, _ = trained_project
    weight_bits = {t.fmt.bits for t in SiteSpace.of(bundle.ir).tensors}
    assert weight_bits == {6}, "the trained model must differ from ECON-T's 5-bit weights"


def test_vivado_backend_is_bit_exact_too(tmp_path_factory):
    bundle, project, hls_model = make_project(tmp_path_factory, "econt-bol", "Vivado")
    x = vendored_codes(bundle.ir)
    assert project.manifest["backend"] == "Vivado"
    assert mismatched_rows(csim_predict(hls_model, bundle.ir, x), engine.forward(bundle.ir, x)) == 0


# --- faults: HlsLevel.run == engine on the flipped model ----------------------

def fault_sample(space: SiteSpace, n_random: int, seed: int) -> np.ndarray:
    """Sign bits and LSBs of every tensor (conv and dense, kernel and bias),
    plus random sites; shuffled so consecutive faults hit different tensors."""
    chosen = []
    for t in space.tensors:
        last = t.size - 1
        chosen += [space.site_id(t.layer, t.tensor, 0, 0), space.site_id(t.layer, t.tensor, last, 0),
                   space.site_id(t.layer, t.tensor, last, t.fmt.bits - 1)]
    rng = np.random.default_rng(seed)
    chosen += rng.choice(space.n_sites, n_random, replace=False).tolist()
    return rng.permutation(np.unique(chosen))


@pytest.mark.parametrize("which, n_random", [("bol", 18), ("trained", 6)])
def test_faults_equal_engine_on_every_vendored_row(which, n_random, request):
    bundle, project, _ = request.getfixturevalue(f"{which}_project")
    ir, space = bundle.ir, SiteSpace.of(bundle.ir)
    x = vendored_codes(ir)
    sites = fault_sample(space, n_random, seed=5)
    assert {space.describe(s).tensor for s in sites} == {"kernel", "bias"}
    assert {space.describe(s).bit for s in sites} >= {0}

    with HlsLevel(ir, project) as level:
        got = level.run(sites, x)

    assert got.shape == (sites.size, VENDORED_ROWS, ir.output_spec.size)
    mismatches = {int(s): mismatched_rows(got[i], engine.forward(flip(ir, space, s), x)) for i, s in enumerate(sites)}
    assert sum(mismatches.values()) == 0, {s: m for s, m in mismatches.items() if m}
    golden = engine.forward(ir, x)
    assert sum(mismatched_rows(got[i], golden) > 0 for i in range(sites.size)) >= sites.size // 3, \
        "most sampled faults should change some output: else the injection is not happening"


def test_each_fault_is_alone_and_golden_weights_come_back(bol_project, bol_level):
    bundle, _, _ = bol_project
    ir, space = bundle.ir, SiteSpace.of(bundle.ir)
    x = vendored_codes(ir)[:300]
    conv_sign = space.site_id("conv2d_0_m", "kernel", 2, 0)
    dense_lsb = space.site_id("encoded_vector", "kernel", 5, 4)

    both = bol_level.run([conv_sign, dense_lsb, conv_sign], x)

    assert np.array_equal(both[1], engine.forward(flip(ir, space, dense_lsb), x))  # conv fault undone first
    assert np.array_equal(both[0], both[2])
    assert np.array_equal(bol_level.golden(x), engine.forward(ir, x))


def test_parallel_workers_give_the_same_answers(bol_project, bol_level):
    bundle, project, _ = bol_project
    x = vendored_codes(bundle.ir)[:200]
    sites = np.arange(0, SiteSpace.of(bundle.ir).n_sites, 997)
    with HlsLevel(bundle.ir, project, workers=2) as two:
        assert np.array_equal(two.run(sites, x), bol_level.run(sites, x))


def test_level_checks_its_inputs_and_project(bol_project, eol_project, bol_level):
    bundle, project, _ = bol_project
    x = vendored_codes(bundle.ir)[:4]
    with pytest.raises(ValueError, match="integer codes"):
        bol_level.golden(x.astype(np.float64))
    with pytest.raises(ValueError, match="outside"):
        bol_level.golden(x + 10_000)
    with pytest.raises(HlsProjectError, match="econt-bol"):
        HlsLevel(eol_project[0].ir, project)


# --- the project on disk ------------------------------------------------------

def test_project_is_complete_and_weights_are_c_order_of_the_keras_tensor(bol_project):
    bundle, project, _ = bol_project
    d = project.directory
    for f in ["build_prj.tcl", "project.tcl", "hls4ml_config.yml", "myproject_test.cpp", "firmware/myproject.cpp",
              "firmware/parameters.h", "firmware/defines.h", "tb_data/tb_input_features.dat",
              "tb_data/tb_output_predictions.dat", "fkhw_faults/libfkhw_csim.so", "fkhw_faults/build.sh"]:
        assert (d / f).is_file(), f
    manifest = json.loads((d / MANIFEST).read_text())
    assert manifest["model"] == "econt-bol" and manifest["backend"] == "Vitis"
    assert manifest["digest"] == bundle.files.digest() and manifest["fkhw"]

    for w in project.weight_files:
        layer = bundle.ir.layer(w.layer)
        codes = layer.kernel if w.tensor == "kernel" else layer.bias
        txt = np.array([float(v) for v in (project.weights_dir / w.filename).read_text().split(",")])
        assert np.array_equal(txt * 2.0 ** w.frac, codes.reshape(-1)), w  # C-order flat
        # the synthesis header holds the same values (weights are constants in hardware)
        header = (project.weights_dir / f"{w.var}.h").read_text()
        assert header.split("#else")[1].count(",") == codes.size - 1


def test_site_maps_to_its_weight_file_position(bol_project, bol_level):
    bundle, _, _ = bol_project
    space = SiteSpace.of(bundle.ir)
    site = space.site_id("encoded_vector", "kernel", 129, 3)  # row 1, column 1 of the (128, 16) kernel
    [(filename, index, bit)] = bol_level.weight_positions([site])
    assert (filename, index, bit) == ([w.filename for w in bol_level.files if w.layer == "encoded_vector"][0], 129, 3)


def test_a_current_project_is_reused_not_rebuilt(bol_project):
    bundle, project, _ = bol_project
    stamp = (project.directory / MANIFEST).stat().st_mtime_ns
    again = project_for(bundle, project.directory)
    assert again.directory == project.directory
    assert (project.directory / MANIFEST).stat().st_mtime_ns == stamp


# --- refusals: before any file is written -------------------------------------

def save_encoder(keras_model, directory):
    from fkhw.model.train import legacy_json  # the JSON format QKeras can load back

    directory.mkdir(parents=True)
    (directory / "encoder_x.json").write_text(legacy_json(keras_model))
    keras_model.save_weights(str(directory / "encoder_x.hdf5"))
    return directory


def tiny_encoder(after_conv: str):
    """input quantizer -> QConv2D -> <after_conv> -> Flatten -> QDense."""
    from fkhw.model.keras_io import import_tf

    tf = import_tf()
    from qkeras import QActivation, QAveragePooling2D, QConv2D, QDense, quantized_bits, quantized_relu

    bits = quantized_bits(6, 1, alpha=1)
    inp = tf.keras.Input((8, 8, 1))
    x = QActivation(quantized_bits(10, 3, alpha=1), name="input_qa")(inp)
    x = QConv2D(4, 3, strides=2, padding="same", kernel_quantizer=bits, bias_quantizer=bits, name="conv")(x)
    if after_conv == "avgpool":  # hls4ml 1.3 has no QAveragePooling2D
        x = QAveragePooling2D(name="pool")(x)
        x = QActivation(quantized_relu(8, 3), name="act")(x)
    elif after_conv == "symmetric":
        x = QActivation(quantized_bits(8, 3, alpha=1, symmetric=True), name="sym_act")(x)
    else:
        x = QActivation(quantized_relu(8, 3), name="act")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    if after_conv == "float_dense":
        x = tf.keras.layers.Dense(4, name="plain_dense")(x)
    else:
        x = QDense(4, kernel_quantizer=bits, bias_quantizer=bits, name="dense")(x)
    return tf.keras.Model(inp, x)


@pytest.mark.parametrize("kind, layer", [("avgpool", "pool"), ("float_dense", "plain_dense"),
                                         ("symmetric", "sym_act")])
def test_unsupported_model_is_refused_before_any_file_is_written(kind, layer, tmp_path, capsys, monkeypatch):
    from fkhw.cli import main

    monkeypatch.setenv("FKHW_CACHE", str(tmp_path / "cache"))
    model_dir = save_encoder(tiny_encoder(kind), tmp_path / "model")
    out = tmp_path / "hls_out"

    assert main(["hls", "--model", str(model_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"'{layer}'" in err, err
    assert not out.exists()


def test_symmetric_refusal_names_hls4ml(tmp_path, monkeypatch):
    monkeypatch.setenv("FKHW_CACHE", "off")
    bundle = load_model(str(save_encoder(tiny_encoder("symmetric"), tmp_path / "model")))
    with pytest.raises(HlsUnsupportedError, match="sym_act.*symmetric"):
        generate(bundle, tmp_path / "out")


def test_unknown_backend_and_foreign_directory_are_refused(tmp_path):
    bundle = load_model("econt-bol")
    with pytest.raises(UnsupportedLayerError, match="Quartus"):
        generate(bundle, tmp_path / "a", "Quartus")
    assert not (tmp_path / "a").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(HlsProjectError, match="not an fkhw hls project"):
        generate(bundle, foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
