"""Inputs from arrays (issue 17), as specifications: ``.npy``, ``.npz`` and
HDF5 files give the inputs in the model's input shape, with labels or
targets from a second array; the model's own input quantizer turns them
into the codes QKeras computes; every malformed file is refused with one
line naming it."""

from __future__ import annotations

import numpy as np
import pytest

from fkhw.model.data import DataError, array_input_codes, load_arrays

SHAPE = (6, 3)
N = 40


def _x(seed=0, n=N, shape=SHAPE):
    return np.random.default_rng(seed).normal(0, 2, size=(n,) + shape)


def _write(path, arrays: dict):
    """Write ``arrays`` in the format the suffix names (one array for .npy)."""
    if path.suffix == ".npy":
        (value,) = arrays.values()
        np.save(path, value)
    elif path.suffix == ".npz":
        np.savez(path, **arrays)
    else:
        import h5py

        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                f.create_dataset(k, data=v)
    return path


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".h5", ".hdf5"])
def test_inputs_and_labels_read_back_exactly(tmp_path, suffix):
    x, y = _x(), np.arange(N) % 3
    xp = _write(tmp_path / f"x{suffix}", {"inputs": x})
    yp = _write(tmp_path / f"y{suffix}", {"labels": y})
    gx, gy = load_arrays(xp, yp, input_shape=SHAPE)
    assert np.array_equal(gx, x) and np.array_equal(gy, y)
    assert load_arrays(xp)[1] is None


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_one_file_with_x_and_y(tmp_path, suffix):
    x, targets = _x(1), _x(2, shape=(2,))
    p = _write(tmp_path / f"d{suffix}", {"x": x, "y": targets, "meta": np.zeros(3)})
    gx, gy = load_arrays(p, p, input_shape=SHAPE)
    assert np.array_equal(gx, x) and np.array_equal(gy, targets)


def test_codes_are_the_models_input_quantizer():
    """The codes of float inputs equal what the model's QActivation computes,
    times 2**frac, including values exactly halfway between codes and far
    beyond the format's range (up to where QKeras stops saturating)."""
    from fkhw.model.keras_io import import_tf

    tf = import_tf()
    from qkeras import QActivation, quantized_bits

    from fkhw.model.extract import quantizer_format

    q = quantized_bits(6, 2, alpha=1)
    fmt, _ = quantizer_format(q, "test")
    rng = np.random.default_rng(3)
    halfway = (rng.integers(-40, 40, size=200) + 0.5) * 2.0 ** -fmt.frac
    # float64 values just above halfway that Keras' float32 cast puts exactly halfway (then half to even)
    near_halfway = halfway + 1e-12
    limit = 2.0 ** (24 - fmt.frac)
    far = rng.uniform(limit / 2, limit, size=200) * rng.choice([-1, 1], size=200)
    x = np.concatenate([rng.normal(0, 3, size=800), halfway, near_halfway, far, [np.nextafter(np.float32(limit), np.float32(0))]]).reshape(-1, 1)
    layer = QActivation(q)
    theirs = np.asarray(layer(tf.constant(x, dtype=tf.float32)), dtype=np.float64) * 2.0 ** fmt.frac
    ours = array_input_codes(x, fmt)
    assert np.sum(ours != theirs) == 0, f"{np.sum(ours != theirs)} of {x.size} codes differ from QKeras"
    assert np.unique(ours).size > 40
    with pytest.raises(DataError, match=r"^d.npy: input\[1, 0\] = 2.09715e\+06 is beyond \+-2\*\*21"):
        array_input_codes(np.array([[0.0], [limit]]), fmt, "d.npy")


def _bad(tmp_path, name):
    """(data path, labels path or None, words the error must contain)."""
    x = _x()
    good = _write(tmp_path / "good.npy", {"x": x})
    cases = {
        "missing": (tmp_path / "nope.npy", None, ("nope.npy", "no such file")),
        "csv-suffix": (_write_text(tmp_path / "d.csv", "a,b\n1,2\n"), None, ("d.csv", "not an array file")),
        "wrong-shape": (_write(tmp_path / "s.npy", {"x": x.reshape(N, 3, 6)}), None, ("s.npy", "(3, 6)", "(6, 3)")),
        "flat-rows": (_write(tmp_path / "f.npz", {"x": x.reshape(N, -1)}), None, ("f.npz", "(18,)")),
        "nan": (_write(tmp_path / "n.h5", {"x": np.where(np.arange(x.size).reshape(x.shape) == 50, np.nan, x)}),
                None, ("n.h5", "nan", "[2, 4, 2]")),
        "inf-label": (good, _write(tmp_path / "l.npy", {"y": np.r_[np.inf, np.zeros(N - 1)]}), ("l.npy", "inf")),
        "strings": (_write(tmp_path / "t.npy", {"x": np.array([["a"] * 3] * 6).reshape(1, 6, 3).repeat(N, 0)}),
                    None, ("t.npy", "<U1", "not real numbers")),
        "complex": (_write(tmp_path / "c.npy", {"x": x + 1j}), None, ("c.npy", "complex")),
        "empty-file": (_write_text(tmp_path / "o.npy", ""), None, ("o.npy", "cannot read")),
        "pickled": (_pickled(tmp_path / "p.npy"), None, ("p.npy", "pickle")),
        "truncated-npz": (_truncate(_write(tmp_path / "tr.npz", {"x": x})), None, ("tr.npz", "cannot read")),
        "truncated-h5": (_truncate(_write(tmp_path / "tr.h5", {"x": x})), None, ("tr.h5", "cannot read")),
        "empty": (_write(tmp_path / "e.npy", {"x": np.zeros((0,) + SHAPE)}), None, ("e.npy", "no inputs")),
        "scalar": (_write(tmp_path / "sc.npy", {"x": np.float64(3)}), None, ("sc.npy", "no inputs")),
        "several-unnamed": (_write(tmp_path / "m.npz", {"a": x, "b": x}), None, ("m.npz", "a, b", "'x'")),
        "labels-short": (good, _write(tmp_path / "ls.npy", {"y": np.zeros(N - 1)}), ("ls.npy", f"{N - 1} labels", f"{N}")),
        "labels-3d": (good, _write(tmp_path / "l3.npy", {"y": np.zeros((N, 2, 2))}), ("l3.npy", "(40, 2, 2)")),
        "labels-unnamed": (good, _write(tmp_path / "lu.h5", {"p": np.zeros(N), "q": np.zeros(N)}), ("lu.h5", "'y'")),
    }
    return cases[name]


def _write_text(path, text):
    path.write_text(text)
    return path


def _pickled(path):
    np.save(path, np.array([{"a": 1}] * N, dtype=object), allow_pickle=True)
    return path


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("name", ["missing", "csv-suffix", "wrong-shape", "flat-rows", "nan", "inf-label", "strings",
                                  "complex", "empty-file", "pickled", "truncated-npz", "truncated-h5", "empty", "scalar",
                                  "several-unnamed", "labels-short", "labels-3d", "labels-unnamed"])
def test_bad_arrays_are_refused_in_one_line(tmp_path, name):
    data, labels, words = _bad(tmp_path, name)
    with pytest.raises(DataError) as info:
        load_arrays(data, labels, input_shape=SHAPE)
    msg = str(info.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
