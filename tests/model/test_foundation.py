"""Issue 2's foundation: integer engine, fault sites, bit flips, EMD, decoder,
and clear errors for bad models, unsupported layers, bad data and the CLI."""

from __future__ import annotations

import argparse
import csv
import shutil

import numpy as np
import pytest

from fkhw.model.data import DataError, load_charges
from fkhw.model.extract import UnsupportedLayerError
from fkhw.model.files import ModelFileError

# ---------------------------------------------------------------- engine


@pytest.mark.parametrize("model", ["econt-bol", "econt-eol"])
def test_engine_equals_qkeras_on_every_vendored_row(model, vendored_inputs):
    from fkhw.model.engine import forward
    from fkhw.model.fixed import quantize_float
    from fkhw.model.bundle import load_model
    from fkhw.model.files import resolve
    from fkhw.model.keras_io import load_encoder

    _, image = vendored_inputs
    ir = load_model(model).ir
    ours = forward(ir, quantize_float(image, ir.input.fmt))
    q = load_encoder(resolve(model)).predict(image, batch_size=8192, verbose=0).astype(np.float64)
    theirs = q * 2.0 ** ir.layers[-1].fmt.frac
    assert np.array_equal(theirs, np.rint(theirs))
    assert ours.shape == theirs.shape == (5000, 16)
    mismatches = int(np.count_nonzero(ours != theirs.astype(np.int64)))
    assert mismatches == 0, f"{model}: {mismatches} of {ours.size} latent codes differ from QKeras"


# ---------------------------------------------------------------- sites


def test_sites_cli_lists_every_parameter_bit(bol_ir, bol_sites, tmp_path, capsys):
    from fkhw.cli import main

    out = tmp_path / "sites.csv"
    assert main(["sites", "--model", "econt-bol", "--out", str(out)]) == 0
    assert f"{bol_sites} sites" in capsys.readouterr().out
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["site", "layer", "tensor", "index", "bit", "code"]
    rows = rows[1:]
    ir = bol_ir
    tensor_bits = [(t.size, fmt.bits) for layer in ir.param_layers()
                   for t, fmt in ((layer.kernel, layer.kernel_fmt), (layer.bias, layer.bias_fmt)) if t is not None]
    assert len(rows) == bol_sites == sum(size * bits for size, bits in tensor_bits)
    assert [int(r[0]) for r in rows] == list(range(bol_sites))
    expected_order = [("conv2d_0_m", "kernel", 72), ("conv2d_0_m", "bias", 8),
                      ("encoded_vector", "kernel", 2048), ("encoded_vector", "bias", 16)]
    start = 0
    for layer, tensor, size in expected_order:
        block = rows[start:start + size * 5]
        codes = getattr(ir.layer(layer), tensor).reshape(-1)
        assert {(r[1], r[2]) for r in block} == {(layer, tensor)}
        assert [int(r[3]) for r in block] == [i for i in range(size) for _ in range(5)]
        assert [int(r[4]) for r in block] == list(range(5)) * size
        assert [int(r[5]) for r in block] == [int(c) for c in codes for _ in range(5)]
        start += size * 5
    assert start == len(rows)


def test_flipping_a_site_twice_restores_the_model():
    from fkhw.model.bundle import load_model
    from fkhw.faults.sites import SiteSpace, flip

    ir = load_model("econt-bol").ir
    space = SiteSpace.of(ir)
    original = [(layer.kernel.copy(), layer.bias.copy()) for layer in ir.param_layers()]
    sites = np.r_[0, 359, 360, 399, 400, space.n_sites - 1, np.random.default_rng(3).integers(0, space.n_sites, 40)]
    for site in sites:
        once = flip(ir, space, int(site))
        changed = sum(int(np.count_nonzero(a.kernel != b.kernel)) + int(np.count_nonzero(a.bias != b.bias))
                      for a, b in zip(once.param_layers(), ir.param_layers()))
        assert changed == 1, site
        twice = flip(once, space, int(site))
        for layer, (k, b) in zip(twice.param_layers(), original):
            assert np.array_equal(layer.kernel, k) and np.array_equal(layer.bias, b)
    for layer, (k, b) in zip(ir.param_layers(), original):  # the golden model is never touched
        assert np.array_equal(layer.kernel, k) and np.array_equal(layer.bias, b)


def test_bit_zero_is_the_twos_complement_sign_bit():
    from fkhw.model.fixed import FixedFormat
    from fkhw.model.bundle import load_model
    from fkhw.faults.sites import SiteSpace, flip

    fmt = FixedFormat.make(5, 4, True)
    assert int(fmt.flip(3, 0)) == 3 - 16 == -13
    assert int(fmt.flip(-13, 0)) == 3
    assert int(fmt.flip(3, 4)) == 2 and int(fmt.flip(3, 1)) == 11 and int(fmt.flip(-16, 0)) == 0
    with pytest.raises(ValueError):
        fmt.flip(3, 5)
    ir = load_model("econt-bol").ir
    space = SiteSpace.of(ir)
    table = space.table(ir)
    site = int(table["site"][(table["code"] == 3) & (table["bit"] == 0)][0])
    desc = space.describe(site)
    flipped = flip(ir, space, site)
    assert getattr(flipped.layer(desc.layer), desc.tensor).reshape(-1)[desc.index] == -13


# ---------------------------------------------------------------- EMD and decoder


def test_emd_equals_pot_and_skips_empty_modules():
    from fkhw.model.data import geometry
    from fkhw.damage.emd import emd_pairs

    import ot

    rng = np.random.default_rng(0)
    a = rng.random((40, 48)) * (rng.random((40, 48)) < 0.3)
    b = rng.random((40, 48)) * (rng.random((40, 48)) < 0.6)
    a[:, 0] += 0.01  # every detector-side row has some charge
    b[7] = 0.0  # a module with zero charge on one side
    res = emd_pairs(a, b)
    assert res.kept.tolist() == [i for i in range(40) if i != 7]
    assert np.all(np.isfinite(res.values))
    M = geometry().ground_distance
    ref = np.array([ot.emd2(a[i] / a[i].sum(), b[i] / b[i].sum(), M) for i in res.kept])
    np.testing.assert_allclose(res.values, ref, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="undefined"):
        emd_pairs(np.zeros((2, 48)), b[:2]).mean()


def test_numpy_decoder_equals_keras(vendored_inputs):
    from fkhw.model.engine import forward
    from fkhw.model.fixed import quantize_float
    from fkhw.model.bundle import load_model
    from fkhw.model.files import resolve
    from fkhw.model.keras_io import load_decoder

    bundle = load_model("econt-bol")
    ir = bundle.ir
    latent = forward(ir, quantize_float(vendored_inputs[1][:1000], ir.input.fmt)) * 2.0 ** -ir.layers[-1].fmt.frac
    latent = np.vstack([latent, np.random.default_rng(1).random((200, 16)) * 2]).astype(np.float32)
    ours = bundle.decoder(latent)
    theirs = load_decoder(resolve("econt-bol")).predict(latent, batch_size=4096, verbose=0)
    assert ours.shape == theirs.shape == (1200, 8, 8, 1)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)



def test_a_row_decodes_to_the_same_bits_whatever_else_is_in_the_batch():
    from fkhw.model.bundle import load_model

    dec = load_model("econt-bol").decoder
    rows = np.random.default_rng(5).integers(0, 512, (3000, 16)) * 2.0 ** -8
    whole = dec(rows)
    perm = np.random.default_rng(6).permutation(rows.shape[0])
    assert np.array_equal(dec(rows[perm]), whole[perm])  # other neighbours, other positions
    assert np.array_equal(dec(rows[17:18]), whole[17:18])  # alone
    assert np.array_equal(dec(rows[:1500]), whole[:1500])  # a block cut short

# ---------------------------------------------------------------- bad models


@pytest.fixture
def no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FKHW_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def model_copy(tmp_path):
    from fkhw.model.files import NAMED_MODELS

    d = tmp_path / "copy"
    shutil.copytree(NAMED_MODELS["econt-bol"], d)
    return d


def test_missing_model_dir(tmp_path, no_cache):
    from fkhw.model.bundle import load_model

    with pytest.raises(ModelFileError, match="no such directory") as info:
        load_model(str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in str(info.value)


def test_model_dir_without_encoder_files(tmp_path, no_cache):
    from fkhw.model.bundle import load_model

    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match=r"encoder\*\.json") as info:
        load_model(str(tmp_path / "empty"))
    assert str(tmp_path / "empty") in str(info.value)


def test_corrupt_model_json(model_copy, no_cache):
    from fkhw.model.bundle import load_model

    js = next(model_copy.glob("encoder*.json"))
    js.write_text('{"class_name": "Functional", "config": ')
    with pytest.raises(ModelFileError) as info:
        load_model(str(model_copy))
    assert str(js) in str(info.value)


def test_corrupt_model_hdf5(model_copy, no_cache):
    from fkhw.model.bundle import load_model

    h5 = next(model_copy.glob("encoder*.hdf5"))
    h5.write_bytes(b"this is not an HDF5 file" * 10)
    with pytest.raises(ModelFileError) as info:
        load_model(str(model_copy))
    assert str(h5) in str(info.value)


def test_bad_model_is_a_user_error_in_the_cli(tmp_path, no_cache, capsys):
    from fkhw.cli import main

    assert main(["sites", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "s.csv")]) == 2
    assert "fkhw sites: error: model" in capsys.readouterr().err


# ---------------------------------------------------------------- unsupported layers


def _tiny(middle, kernel_quantizer=None):
    from fkhw.model.keras_io import import_tf

    tf = import_tf()
    from qkeras import QActivation, QDense, quantized_bits

    inp = tf.keras.Input((8, 8, 1))
    x = QActivation(quantized_bits(10, 3, alpha=1), name="input_qa")(inp)
    for layer in middle:
        x = layer(x)
    kq = kernel_quantizer or quantized_bits(5, 1, alpha=1)
    x = QDense(4, kernel_quantizer=kq, bias_quantizer=quantized_bits(5, 1, alpha=1), name="qdense")(x)
    return tf.keras.Model(inp, x)


def test_unsupported_layers_are_named():
    from fkhw.model.extract import extract
    from fkhw.model.keras_io import import_tf
    from qkeras import quantized_bits

    L = import_tf().keras.layers
    model = _tiny([L.AveragePooling2D(name="pool"), L.Flatten()])  # QAveragePooling2D is the supported one
    with pytest.raises(UnsupportedLayerError, match=r"'pool' \(AveragePooling2D\)"):
        extract(model, "tiny")
    model = _tiny([L.Flatten(), L.Dense(8, name="plain")])
    with pytest.raises(UnsupportedLayerError, match=r"'plain' \(Dense\)"):
        extract(model, "tiny")
    model = _tiny([L.Flatten()], kernel_quantizer=quantized_bits(5, 1, alpha="auto_po2"))
    with pytest.raises(UnsupportedLayerError, match=r"'qdense' \(QDense\).*alpha='auto_po2'"):
        extract(model, "tiny")


# ---------------------------------------------------------------- bad data


def _csv(tmp_path, name, header, rows):
    p = tmp_path / name
    p.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + ("\n" if rows or header else ""))
    return p


COLS = [f"CALQ_{i}" for i in range(48)]


def test_good_csv_loads(tmp_path):
    p = _csv(tmp_path, "ok.csv", ["event"] + COLS, [[0] + [1] * 48, [1] + list(range(48))])
    ch = load_charges(p)
    assert ch.shape == (2, 48) and ch[1, 47] == 47


@pytest.mark.parametrize("name, header, rows, pattern", [
    ("nocol.csv", COLS[:5] + COLS[6:], [[1] * 47], "missing column.*CALQ_5"),
    ("text.csv", COLS, [[1] * 48, [1] * 10 + ["abc"] + [1] * 37], " row 3 column CALQ_10: 'abc' is not a number"),
    ("short.csv", COLS, [[1] * 48, [1] * 48, [1] * 40], " row 4: cut short"),
    ("neg.csv", COLS, [[1] * 48, [1] * 3 + [-2] + [1] * 44], " row 3 column CALQ_3: -2 is out of range"),
    ("nan.csv", COLS, [["nan"] * 48], " row 2 column CALQ_0: 'nan' is not a finite number"),
    ("header_only.csv", COLS, [], "no data rows"),
    ("empty.csv", [], [], "empty file"),
])
def test_malformed_csv_names_file_and_line(tmp_path, name, header, rows, pattern):
    p = _csv(tmp_path, name, header, rows)
    with pytest.raises(DataError, match=pattern) as info:
        load_charges(p)
    assert str(info.value).startswith(str(p))


def test_missing_csv(tmp_path):
    with pytest.raises(DataError, match="no such data file"):
        load_charges(tmp_path / "none.csv")


# ---------------------------------------------------------------- CLI help


def _subcommands():
    from fkhw.cli import build_parser

    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(action.choices)


def test_every_help_exits_zero(capsys):
    from fkhw.cli import main

    names = _subcommands()
    assert {"sites", "train"} <= set(names)
    for argv in [["--help"]] + [[name, "--help"] for name in names]:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0, argv
        out = capsys.readouterr().out
        assert out.startswith("usage: fkhw"), argv


def test_a_command_loads_only_its_own_module():
    """`fkhw COMMAND` imports that command's module alone, not the other
    thirteen and what they import (a bad option is answered in a fraction
    of a second); `fkhw --help` and an unknown word still see every command."""
    import subprocess
    import sys

    probe = ("import sys\nfrom fkhw.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "from fkhw.cli import COMMANDS\nprint(sorted(m for m in sys.modules if m.startswith('fkhw.commands.') "
             "and m.rsplit('.', 1)[1] in COMMANDS))")

    def loaded(*argv):
        r = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines()[-1]

    assert loaded("-v", "rate", "--samples", "0") == "['fkhw.commands.rate']"
    for argv in (("--help",), ("no-such-command",), ("--help", "rate")):
        assert loaded(*argv) == str([f"fkhw.commands.{n}" for n in sorted(_subcommands())])
