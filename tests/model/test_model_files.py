"""Model files as users save them (issue 17), as specifications: a
full-model file (``model.save`` to ``.h5`` or ``.keras``), given as a file
or as a directory holding it, loads to the same IR as the JSON + weights
pair of the same model; a single network has no decoder; the cache keys on
the files' content; damaged or foreign model files are refused with one
line naming the file.
"""

from __future__ import annotations

import pytest

from qkeras_models import conv1d_model, ir_signature


pytestmark = pytest.mark.usefixtures("uncached")


@pytest.fixture(scope="module")
def saved(tf, tmp_path_factory):
    """One classifier saved three ways: JSON + weights, .h5, .keras; and
    ``other/h5/clf.h5``: the same network with other weights, same names."""
    from fkhw.model.train import legacy_json

    model = conv1d_model(tf)
    root = tmp_path_factory.mktemp("saved")
    pair = root / "pair"
    pair.mkdir()
    (pair / "encoder_clf.json").write_text(legacy_json(model))
    model.save_weights(str(pair / "encoder_clf.hdf5"))
    for suffix in ("h5", "keras"):
        (root / suffix).mkdir()
        model.save(str(root / suffix / f"clf.{suffix}"))
    (root / "other" / "h5").mkdir(parents=True)
    conv1d_model(tf, seed=5).save(str(root / "other" / "h5" / "clf.h5"))
    return root


@pytest.mark.parametrize("where", ["h5/clf.h5", "h5", "keras/clf.keras", "keras"])
def test_full_model_files_load_to_the_json_pair_ir(saved, where):
    from fkhw.model.bundle import load_model

    pair = load_model(str(saved / "pair"))
    full = load_model(str(saved / where))
    assert full.files.is_full_model and not pair.files.is_full_model
    assert ir_signature(full.ir) == ir_signature(pair.ir)
    assert full.decoder is None and pair.decoder is None
    assert full.files.digest() != pair.files.digest()


def test_single_network_has_no_decoder(saved):
    from fkhw.model.bundle import load_model
    from fkhw.model.files import ModelFileError

    bundle = load_model(str(saved / "keras"))
    with pytest.raises(ModelFileError, match="has no decoder"):
        bundle.require_decoder()


def test_full_model_is_cached_by_content(saved, tmp_path, monkeypatch):
    from fkhw.model.bundle import load_model

    monkeypatch.setenv("FKHW_CACHE", str(tmp_path / "cache"))
    first = load_model(str(saved / "h5"))
    assert len(list((tmp_path / "cache").glob(f"h5-{first.files.digest()}-*.npz"))) == 1
    again = load_model(str(saved / "h5"))
    assert ir_signature(again.ir) == ir_signature(first.ir)
    # another model under the same names: another entry, never the first's IR
    other = load_model(str(saved / "other" / "h5"))
    assert len(list((tmp_path / "cache").glob("h5-*.npz"))) == 2
    assert ir_signature(other.ir) != ir_signature(first.ir)


def _truncated(src, dst):
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def _weights_only(saved, dst):
    import shutil

    shutil.copy(saved / "pair" / "encoder_clf.hdf5", dst)
    return dst


def _garbage(dst):
    dst.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    return dst


@pytest.mark.parametrize("case, make, words", [
    ("h5-truncated", lambda s, d: _truncated(s / "h5" / "clf.h5", d / "clf.h5"), ("clf.h5",)),
    ("keras-truncated", lambda s, d: _truncated(s / "keras" / "clf.keras", d / "clf.keras"), ("clf.keras",)),
    ("keras-garbage", lambda s, d: _garbage(d / "clf.keras"), ("clf.keras",)),
    ("h5-empty", lambda s, d: (d / "clf.h5").write_bytes(b"") and None or d / "clf.h5", ("clf.h5", "not an HDF5")),
    ("keras-is-text", lambda s, d: (d / "m.keras").write_text("hello") and None or d / "m.keras", ("m.keras", "zip")),
    ("h5-weights-only", lambda s, d: _weights_only(s, d / "w.h5"), ("w.h5", "weights only")),
    ("not-a-model-suffix", lambda s, d: (d / "m.txt").write_text("x") and None or d / "m.txt", ("m.txt", "not a model file")),
    ("dir-two-models", lambda s, d: [(d / n).write_bytes(b"") for n in ("a.h5", "b.keras")] and d, ("a.h5", "b.keras")),
    ("dir-empty", lambda s, d: d, ("no model here",)),
])
def test_damaged_model_files_are_refused_in_one_line(saved, tmp_path, case, make, words):
    from fkhw.model.bundle import load_model
    from fkhw.model.files import ModelFileError

    d = tmp_path / case
    d.mkdir()
    path = make(saved, d)
    with pytest.raises(ModelFileError) as info:
        load_model(str(path))
    msg = str(info.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
