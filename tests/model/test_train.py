"""fkhw.model.train and `fkhw train`: a model built from scratch with other
bit widths loads, extracts and runs bit-exactly like QKeras."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fkhw.model.train import TrainConfig, TrainConfigError

REFERENCE_ENCODER = [  # (class, name) of the reference econt-bol encoder, in order
    ("InputLayer", "input_1"), ("QActivation", "input_qa"), ("QConv2D", "conv2d_0_m"),
    ("QActivation", "accum1_qa"), ("Flatten", "flatten"), ("QDense", "encoded_vector"),
    ("QActivation", "encod_qa"),
]


def _latent_codes_qkeras(model_dir, image, ir):
    from fkhw.model.files import resolve
    from fkhw.model.keras_io import load_encoder

    out = load_encoder(resolve(str(model_dir))).predict(image, batch_size=8192, verbose=0).astype(np.float64)
    scaled = out * 2.0 ** ir.layers[-1].fmt.frac
    assert np.array_equal(scaled, np.rint(scaled)), "QKeras output is not on the latent grid"
    return scaled.astype(np.int64)


def test_trained_model_loads_with_its_bit_widths(trained_model_dir):
    from fkhw.model.bundle import load_model

    bundle = load_model(str(trained_model_dir))
    ir = bundle.ir
    assert [layer.name for layer in ir.layers] == ["conv2d_0_m", "accum1_qa", "flatten", "encoded_vector", "encod_qa"]
    assert ir.input.name == "input_qa" and (ir.input.fmt.bits, ir.input.fmt.frac) == (10, 6)
    for layer in ir.param_layers():
        assert (layer.kernel_fmt.bits, layer.kernel_fmt.frac, layer.kernel_fmt.signed) == (6, 4, True), layer.name
        assert (layer.bias_fmt.bits, layer.bias_fmt.frac) == (6, 4), layer.name
    assert (ir.layer("accum1_qa").fmt.bits, ir.layer("accum1_qa").fmt.frac) == (11, 8)
    assert (ir.layer("encod_qa").fmt.bits, ir.layer("encod_qa").fmt.frac, ir.layer("encod_qa").fmt.signed) == (8, 7, False)
    assert ir.n_param_bits() == (72 + 8 + 2048 + 16) * 6
    assert bundle.decoder is not None and bundle.decoder.out_shape == (8, 8, 1)
    names = sorted(p.name for p in trained_model_dir.iterdir())
    assert [n.split("_")[0] for n in names] == ["decoder", "decoder", "encoder", "encoder", "train.json"]


def test_engine_equals_qkeras_on_every_vendored_row(trained_model_dir, vendored_inputs):
    from fkhw.model.engine import forward
    from fkhw.model.fixed import quantize_float
    from fkhw.model.bundle import load_model

    _, image = vendored_inputs
    ir = load_model(str(trained_model_dir)).ir
    ours = forward(ir, quantize_float(image, ir.input.fmt))
    theirs = _latent_codes_qkeras(trained_model_dir, image, ir)
    assert ours.shape == theirs.shape == (5000, 16)
    mismatches = int(np.count_nonzero(ours != theirs))
    assert mismatches == 0, f"{mismatches} of {ours.size} latent codes differ from QKeras"
    assert np.count_nonzero(ours) > 0.1 * ours.size  # not a dead encoder


def test_training_reduces_the_loss_and_records_provenance(trained_model_dir):
    prov = json.loads((trained_model_dir / "train.json").read_text())
    assert prov["config"]["weight_bits"] == 6 and prov["config"]["bias_bits"] == 6
    assert prov["config"]["latent_bits"] == 8 and prov["config"]["seed"] == 1
    assert prov["data"]["rows"] == 2000 and prov["data"]["file"].endswith("ttbar_0PU_5k.csv")
    assert len(prov["data"]["sha256"]) == 64
    assert len(prov["epoch_losses"]) == 2
    assert prov["final_loss"] < 0.5 * prov["initial_loss"]
    assert prov["loss"].startswith("mse")
    assert prov["engine_check"] == {"rows": 2000, "latent_codes": 32000, "mismatches": 0}
    assert prov["fkhw"] and prov["tensorflow"] and prov["qkeras"]


def test_default_build_matches_the_reference_architecture():
    from fkhw.model.bundle import load_model
    from fkhw.model.extract import extract
    from fkhw.model.train import build_autoencoder

    encoder, decoder, autoencoder = build_autoencoder(TrainConfig())
    assert [(type(layer).__name__, layer.name) for layer in encoder.layers] == REFERENCE_ENCODER
    assert [type(layer).__name__ for layer in decoder.layers] == [
        "InputLayer", "Dense", "Reshape", "Conv2DTranspose", "Conv2DTranspose", "Activation"]
    assert decoder.output_shape == (None, 8, 8, 1) and autoencoder.output_shape == (None, 8, 8, 1)
    ours, ref = extract(encoder, "fresh"), load_model("econt-bol").ir
    assert ours.input.fmt == ref.input.fmt
    for a, b in zip(ours.layers, ref.layers, strict=True):
        assert (a.name, a.kind) == (b.name, b.kind)
        for attr in ("fmt", "kernel_fmt", "bias_fmt"):
            assert getattr(a, attr, None) == getattr(b, attr, None), (a.name, attr)
        if a.kind in ("conv2d", "dense"):
            assert a.kernel.shape == b.kernel.shape and a.bias.shape == b.bias.shape


def test_training_is_deterministic_for_a_seed(tmp_path, vendored_inputs):
    from fkhw.model.bundle import load_model
    from fkhw.model.train import train

    cfg = TrainConfig(weight_bits=4, bias_bits=7, bias_int=2, epochs=1, max_rows=300, seed=7)
    runs = [train(cfg, vendored_inputs[0], tmp_path / name) for name in ("a", "b")]
    assert runs[0].losses == runs[1].losses
    assert runs[0].engine_mismatches == 0 and runs[0].rows == 300
    a, b = (load_model(str(r.out_dir)) for r in runs)
    for la, lb in zip(a.ir.param_layers(), b.ir.param_layers()):
        assert la.kernel_fmt.bits == 4 and la.bias_fmt.bits == 7 and la.bias_fmt.frac == 4
        assert np.array_equal(la.kernel, lb.kernel) and np.array_equal(la.bias, lb.bias)
    z = np.random.default_rng(0).random((64, 16), dtype=np.float32)
    assert np.array_equal(a.decoder(z), b.decoder(z))


@pytest.mark.parametrize("options, option", [
    (dict(weight_bits=1), "weight_bits"),
    (dict(weight_bits=17), "weight_bits"),
    (dict(weight_bits=5.5), "weight_bits"),
    (dict(weight_int=5), "weight_int"),
    (dict(weight_int=-1), "weight_int"),
    (dict(bias_bits=0), "bias_bits"),
    (dict(bias_bits=4, bias_int=4), "bias_int"),
    (dict(input_bits=3, input_int=3), "input_int"),
    (dict(conv_act_bits=0), "conv_act_bits"),
    (dict(latent_bits=8, latent_int=9), "latent_int"),
    (dict(filters=0), "filters"),
    (dict(epochs=0), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(learning_rate=float("nan")), "learning_rate"),
    (dict(seed=-1), "seed"),
    (dict(max_rows=0), "max_rows"),
    (dict(tag="../x"), "tag"),
])
def test_bad_options_raise_a_clear_error(options, option):
    with pytest.raises(ValueError, match=f"^{option} = ") as info:
        TrainConfig(**options)
    assert isinstance(info.value, TrainConfigError) and info.value.option == option


def test_bias_widths_default_to_weight_widths():
    cfg = TrainConfig(weight_bits=7, weight_int=2)
    assert (cfg.bias_bits, cfg.bias_int) == (7, 2)
    assert TrainConfig(weight_bits=7, bias_bits=4).bias_bits == 4


def test_train_rejects_bad_charges(tmp_path):
    from fkhw.model.train import train

    with pytest.raises(ValueError, match=r"\(N, 48\)"):
        train(TrainConfig(epochs=1), np.zeros((10, 47)), tmp_path)


def test_cli_train_help(capsys):
    from fkhw.cli import main

    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--out", "--data", "--weight-bits", "--weight-int", "--bias-bits", "--bias-int", "--input-bits",
                 "--conv-act-bits", "--latent-bits", "--epochs", "--seed", "MSE"):
        assert flag in out


def test_cli_train_unwritable_out(tmp_path, capsys):
    from fkhw.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["train", "--out", str(blocker / "model"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "fkhw train: error: --out" in err and "cannot write" in err and str(blocker) in err
    assert main(["train", "--out", str(blocker), "--epochs", "1"]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_cli_train_bad_options_name_the_flag(tmp_path, capsys):
    from fkhw.cli import main

    assert main(["train", "--out", str(tmp_path), "--weight-bits", "1"]) == 2
    assert "error: --weight-bits 1: must be 2..16 bits" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--weight-bits", "4", "--weight-int", "4"]) == 2
    assert "error: --weight-int 4: must be 0..3" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--data", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: no such data file" in capsys.readouterr().err


def test_cli_train_writes_a_loadable_model_with_progress(tmp_path, capsys, trained_model_dir):
    from fkhw.cli import main
    from fkhw.model.bundle import load_model

    out = tmp_path / "m"
    assert main(["train", "--out", str(out), "--epochs", "2", "--max-rows", "200", "--weight-bits", "3",
                 "--latent-bits", "6", "--tag", "tiny"]) == 0
    stdout = capsys.readouterr().out
    assert "epoch 1/2  loss " in stdout and "epoch 2/2  loss " in stdout and "model written to" in stdout
    assert "integer engine == QKeras on all 200 training rows" in stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "decoder_tiny.hdf5", "decoder_tiny.json", "encoder_tiny.hdf5", "encoder_tiny.json", "train.json"]
    ir = load_model(str(out)).ir
    assert ir.layer("conv2d_0_m").kernel_fmt.bits == 3 and ir.layer("encod_qa").fmt.bits == 6
    # a directory that already holds a model is not overwritten without --force
    assert main(["train", "--out", str(out), "--epochs", "1", "--max-rows", "50"]) == 2
    assert "already holds model files" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--epochs", "1", "--max-rows", "50", "--force"]) == 0
    assert len(list(out.glob("encoder*.json"))) == 1
