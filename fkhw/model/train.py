"""Build and train the ECON-T autoencoder architecture from scratch.

The encoder is the reference ``8x8_c8_S2_tele_quantized`` QKeras encoder
(same layer names, types and order), with every bit width configurable:

    input_qa        QActivation quantized_bits(input_bits, input_int)
    conv2d_0_m      QConv2D filters 3x3 stride 2 'same',
                    kernel quantized_bits(weight_bits, weight_int, alpha=1),
                    bias   quantized_bits(bias_bits, bias_int, alpha=1)
    accum1_qa       QActivation quantized_relu(conv_act_bits, conv_act_int)
    flatten         Flatten
    encoded_vector  QDense latent, same kernel / bias quantizers
    encod_qa        QActivation quantized_relu(latent_bits, latent_int)

and the float decoder is the reference one (Dense(16*filters, relu) ->
Reshape(4,4,filters) -> Conv2DTranspose(filters, 3x3, stride 2, relu) ->
Conv2DTranspose(1, 3x3) -> sigmoid).

Loss: plain mean squared error between the normalised 8x8 input image and
the decoder output. This is *not* Ecoder's "telescope" loss (which compares
2x2 / 4x4 sums of the normalised charges); it is a simpler stand-in that
trains the same architecture well enough for fault-injection studies.
With the defaults (Adam 3e-3, batch 64, 30 epochs) on the vendored 5k
modules the MSE goes from ~0.25 to ~0.0035, against ~0.021 for the best
constant image; a few hundred steps are needed to leave that plateau.

The result is written in the Keras 2 / QKeras layout that
:func:`fkhw.model.bundle.load_model` reads: ``encoder_<tag>.json`` (the
model's ``to_json()``) + ``encoder_<tag>.hdf5`` (``save_weights``), the
decoder pair, and ``train.json`` (provenance: config, data, rows, losses).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np

from fkhw.errors import InputError
from fkhw import __version__
from fkhw.outpaths import atomic_path, make_dir, write_bytes, write_text

MODEL_FILE_PATTERNS = ("encoder*.json", "encoder*.hdf5", "decoder*.json", "decoder*.hdf5")


class TrainConfigError(InputError):
    """A training option outside its allowed range. ``option`` names the
    :class:`TrainConfig` field (the CLI flag is ``--`` + option with dashes)."""

    def __init__(self, option: str, value, requirement: str):
        self.option, self.value, self.requirement = option, value, requirement
        super().__init__(f"{option} = {value!r}: {requirement}")


# (low, high) inclusive bounds of the width options. Weights/biases need a
# sign bit plus at least one magnitude bit (QKeras' 1-bit quantized_bits is
# binary, which the integer IR refuses). 16 is a sanity cap: QKeras computes
# in float32, so very wide formats can make its sums inexact and the integer
# engine (exact by construction) then differs from QKeras; train() checks
# and records that in train.json ("engine_check").
_BIT_RANGES = {
    "weight_bits": (2, 16),
    "bias_bits": (2, 16),
    "input_bits": (2, 16),
    "conv_act_bits": (1, 16),
    "latent_bits": (1, 16),
}


@dataclass(frozen=True)
class TrainConfig:
    """Every choice that defines a trained model. Widths are QKeras'
    (bits, integer) pairs: ``quantized_bits(bits, integer)`` keeps a sign
    bit outside ``integer``; ``quantized_relu(bits, integer)`` has none.

    ``bias_bits``/``bias_int`` default to the weight values.
    ``max_rows`` caps the data rows used (first rows of the file); ``None``
    uses them all.
    """

    weight_bits: int = 5
    weight_int: int = 1
    bias_bits: int | None = None
    bias_int: int | None = None
    input_bits: int = 10
    input_int: int = 3
    conv_act_bits: int = 11
    conv_act_int: int = 3
    latent_bits: int = 9
    latent_int: int = 1
    filters: int = 8
    latent: int = 16
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    seed: int = 0
    max_rows: int | None = None
    tag: str = field(default="")

    def __post_init__(self):
        if self.bias_bits is None:
            object.__setattr__(self, "bias_bits", self.weight_bits)
        if self.bias_int is None:
            object.__setattr__(self, "bias_int", self.weight_int)
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "learning_rate":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < float(v) < 10) or not np.isfinite(v):
                    raise TrainConfigError(f.name, v, "must be a number in (0, 10)")
            elif f.name == "tag":
                if not isinstance(v, str) or not all(c.isalnum() or c in "_-." for c in v):
                    raise TrainConfigError(f.name, v, "may only hold letters, digits, '_', '-' and '.'")
            elif f.name == "max_rows" and v is None:
                pass
            elif isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TrainConfigError(f.name, v, "must be an integer")
        for name, (lo, hi) in _BIT_RANGES.items():
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise TrainConfigError(name, v, f"must be {lo}..{hi} bits")
        # quantized_bits: sign + (bits-1) bits, of which `integer` are integer bits
        for bits, integer in (("weight_bits", "weight_int"), ("bias_bits", "bias_int"), ("input_bits", "input_int")):
            b, i = getattr(self, bits), getattr(self, integer)
            if not 0 <= i <= b - 1:
                raise TrainConfigError(integer, i, f"must be 0..{b - 1}: one of the {b} {bits.split('_')[0]} bits is the sign")
        # quantized_relu: unsigned, `integer` of its bits are integer bits
        for bits, integer in (("conv_act_bits", "conv_act_int"), ("latent_bits", "latent_int")):
            b, i = getattr(self, bits), getattr(self, integer)
            if not 0 <= i <= b:
                raise TrainConfigError(integer, i, f"must be 0..{b}, the number of {bits.rsplit('_', 1)[0]} bits")
        for name, lo, hi in (("filters", 1, 64), ("latent", 1, 256), ("epochs", 1, 100000),
                             ("batch_size", 1, 1 << 20), ("seed", 0, 2**31 - 1)):
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise TrainConfigError(name, v, f"must be {lo}..{hi}")
        if self.max_rows is not None and self.max_rows < 1:
            raise TrainConfigError("max_rows", self.max_rows, "must be at least 1 (or None for all rows)")

    @property
    def model_tag(self) -> str:
        """File tag: ``encoder_<tag>.json``; derived from the widths unless set."""
        if self.tag:
            return self.tag
        return (f"8x8_c{self.filters}_S2_l{self.latent}_w{self.weight_bits}i{self.weight_int}"
                f"_b{self.bias_bits}i{self.bias_int}_a{self.conv_act_bits}i{self.conv_act_int}"
                f"_e{self.latent_bits}i{self.latent_int}_mse")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EpochReport:
    """What the progress callback receives after each epoch."""

    epoch: int  # 1-based
    epochs: int
    loss: float
    seconds: float  # since training started


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    files: tuple  # the four model files written
    initial_loss: float
    final_loss: float
    losses: tuple  # per epoch
    rows: int
    seconds: float
    engine_mismatches: int  # latent codes where the integer engine differs from QKeras (training rows)


def _quantizers(cfg: TrainConfig):
    from qkeras import quantized_bits, quantized_relu

    return {
        "input": quantized_bits(cfg.input_bits, cfg.input_int, alpha=1),
        "kernel": quantized_bits(cfg.weight_bits, cfg.weight_int, alpha=1),
        "bias": quantized_bits(cfg.bias_bits, cfg.bias_int, alpha=1),
        "conv_act": quantized_relu(cfg.conv_act_bits, cfg.conv_act_int),
        "latent": quantized_relu(cfg.latent_bits, cfg.latent_int),
    }


def build_autoencoder(cfg: TrainConfig):
    """(encoder, decoder, autoencoder) Keras models, untrained and uncompiled.

    Call :func:`tf.keras.utils.set_random_seed` first for reproducible
    initial weights (:func:`train` does).
    """
    from fkhw.model.keras_io import import_tf

    tf = import_tf()
    with warnings.catch_warnings():
        # QInitializer may call its (unseeded, globally seeded) HeNormal twice
        # to rescale it for few-bit quantizers; Keras warns about that.
        warnings.filterwarnings("ignore", message="The initializer .* is unseeded")
        return _build(cfg, tf)


def _build(cfg: TrainConfig, tf):
    from qkeras import QActivation, QConv2D, QDense
    from qkeras.qlayers import Clip

    q = _quantizers(cfg)
    # keep the float shadow weights inside the quantizer's range (as Ecoder does)
    kclip = Clip(-(2.0 ** cfg.weight_int), 2.0 ** cfg.weight_int)
    bclip = Clip(-(2.0 ** cfg.bias_int), 2.0 ** cfg.bias_int)
    L = tf.keras.layers

    inp = L.Input(shape=(8, 8, 1), name="input_1")
    x = QActivation(q["input"], name="input_qa")(inp)
    x = QConv2D(cfg.filters, (3, 3), strides=(2, 2), padding="same", name="conv2d_0_m",
                kernel_quantizer=q["kernel"], bias_quantizer=q["bias"],
                kernel_constraint=kclip, bias_constraint=bclip)(x)
    x = QActivation(q["conv_act"], name="accum1_qa")(x)
    x = L.Flatten(name="flatten")(x)
    x = QDense(cfg.latent, name="encoded_vector", kernel_quantizer=q["kernel"], bias_quantizer=q["bias"],
               kernel_constraint=kclip, bias_constraint=bclip)(x)
    out = QActivation(q["latent"], name="encod_qa")(x)
    encoder = tf.keras.Model(inp, out, name="encoder")

    dinp = L.Input(shape=(cfg.latent,), name="decoder_input")
    y = L.Dense(4 * 4 * cfg.filters, activation="relu", name="de_dense_final")(dinp)
    y = L.Reshape((4, 4, cfg.filters), name="de_reshape")(y)
    y = L.Conv2DTranspose(cfg.filters, (3, 3), strides=(2, 2), padding="same", activation="relu",
                          name="conv2D_t_0")(y)
    y = L.Conv2DTranspose(1, (3, 3), strides=(1, 1), padding="same", name="conv2d_t_final")(y)
    dout = L.Activation("sigmoid", name="decoder_output")(y)
    decoder = tf.keras.Model(dinp, dout, name="decoder")

    ainp = L.Input(shape=(8, 8, 1), name="ae_input")
    autoencoder = tf.keras.Model(ainp, decoder(encoder(ainp)), name="autoencoder")
    return encoder, decoder, autoencoder


def images(charges: np.ndarray) -> np.ndarray:
    """Normalised (N, 8, 8, 1) float32 images of (N, 48) charges."""
    from fkhw.model.data import normalise, to_image

    return to_image(normalise(np.asarray(charges, dtype=np.float64))).astype(np.float32)


def check_out_dir(out_dir: Path, overwrite: bool = False) -> Path:
    """Create ``out_dir`` if needed and make sure a model can be written
    there. Raises ``PermissionError``/``FileExistsError`` with the reason."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a directory")
    try:
        make_dir(out_dir)
        probe = out_dir / ".fkhw-write-test"
        write_bytes(probe, b"")
        probe.unlink()
    except OSError as e:
        raise PermissionError(f"{out_dir}: cannot write the model there ({e.strerror or e})") from None
    existing = sorted({p.name for pat in MODEL_FILE_PATTERNS for p in out_dir.glob(pat)})
    if existing and not overwrite:
        raise FileExistsError(f"{out_dir}: already holds model files ({', '.join(existing)}); "
                              "choose another directory")
    return out_dir


def legacy_json(model) -> str:
    """``model.to_json()`` in the Keras 2 (pre-2.13, ``__passive_serialization__``)
    config format, as the reference models and Keras' own HDF5 writer use.

    Keras 2.15's default format nests quantizers as ``module``/
    ``registered_name`` dicts that QKeras' ``QActivation.from_config`` cannot
    rebuild, so a model saved that way does not load again.
    """
    model.use_legacy_config = True
    try:
        with warnings.catch_warnings():
            # legacy serialisation of QInitializer's quantizer warns harmlessly
            warnings.filterwarnings("ignore", message=".*constraints.serialize.*")
            return model.to_json()
    finally:
        del model.use_legacy_config


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _write_models(out_dir: Path, tag: str, encoder, decoder) -> list:
    """Replace the model files in ``out_dir`` with the encoder's and the
    decoder's (legacy JSON + HDF5 weights). Returns the files written."""
    for pat in MODEL_FILE_PATTERNS:  # only reached with overwrite=True or an empty dir
        for p in out_dir.glob(pat):
            p.unlink()
    written = []
    for name, model in (("encoder", encoder), ("decoder", decoder)):
        js, h5 = out_dir / f"{name}_{tag}.json", out_dir / f"{name}_{tag}.hdf5"
        write_text(js, legacy_json(model))
        with atomic_path(h5) as tmp:  # h5py opens the name it is given: a new file, renamed into place
            model.save_weights(str(tmp), save_format="h5")
        written += [js, h5]
    return written


def _engine_mismatches(out_dir: Path, encoder, x: np.ndarray) -> tuple:
    """The saved files must load and extract, and the integer engine must
    agree with QKeras on the training rows. Returns (latent codes that
    differ, latent codes compared)."""
    from fkhw.model.engine import forward
    from fkhw.model.fixed import quantize_float
    from fkhw.model.bundle import load_model

    ir = load_model(str(out_dir)).ir
    ours = forward(ir, quantize_float(x, ir.input.fmt))
    theirs = encoder.predict(x, batch_size=8192, verbose=0).astype(np.float64) * 2.0 ** ir.layers[-1].fmt.frac
    return int(np.count_nonzero(ours.reshape(theirs.shape) != theirs)), int(theirs.size)


def train(cfg: TrainConfig, charges: np.ndarray, out_dir, progress: Callable[[EpochReport], None] | None = None,
          data_file: str | Path | None = None, overwrite: bool = False) -> TrainResult:
    """Train the autoencoder on (N, 48) charges and save it in ``out_dir``.

    Deterministic for a given config, data and machine: the seed fixes the
    initial weights and the batch order. ``progress`` is called after every
    epoch with an :class:`EpochReport`. ``data_file`` is only recorded in
    ``train.json``. Existing model files in ``out_dir`` are replaced only
    with ``overwrite=True``. The saved model is reloaded through
    :func:`fkhw.model.bundle.load_model` before returning.
    """
    charges = np.asarray(charges, dtype=np.float64)
    if charges.ndim != 2 or charges.shape[1] != 48 or charges.shape[0] == 0:
        raise ValueError(f"charges must be a non-empty (N, 48) array, got shape {charges.shape}")
    if cfg.max_rows is not None:
        charges = charges[: cfg.max_rows]
    out_dir = check_out_dir(Path(out_dir), overwrite)

    from fkhw.model.keras_io import import_tf

    tf = import_tf()
    t0 = time.perf_counter()
    tf.keras.utils.set_random_seed(cfg.seed)
    encoder, decoder, autoencoder = build_autoencoder(cfg)
    autoencoder.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=cfg.learning_rate), loss="mse")
    x = images(charges)
    initial = float(autoencoder.evaluate(x, x, batch_size=max(cfg.batch_size, 1024), verbose=0))

    losses: list = []

    class _Progress(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            loss = float((logs or {}).get("loss", float("nan")))
            losses.append(loss)
            if progress is not None:
                progress(EpochReport(epoch + 1, cfg.epochs, loss, time.perf_counter() - t0))

    autoencoder.fit(x, x, epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, verbose=0,
                    callbacks=[_Progress()])
    final = float(autoencoder.evaluate(x, x, batch_size=max(cfg.batch_size, 1024), verbose=0))
    if not np.isfinite(final):
        raise RuntimeError(f"training diverged (loss {final}); try a smaller learning_rate")

    written = _write_models(out_dir, cfg.model_tag, encoder, decoder)
    seconds = time.perf_counter() - t0
    mismatches, n_codes = _engine_mismatches(out_dir, encoder, x)

    import qkeras

    provenance = {
        "fkhw": __version__,
        "tensorflow": tf.__version__,
        "qkeras": getattr(qkeras, "__version__", "unknown"),
        "config": cfg.to_dict(),
        "loss": "mse(normalised 8x8 input image, decoder output)",
        "data": {"file": str(data_file) if data_file is not None else None,
                 "sha256": _file_digest(data_file) if data_file is not None and Path(data_file).is_file() else None,
                 "rows": int(charges.shape[0])},
        "initial_loss": initial,
        "final_loss": final,
        "epoch_losses": losses,
        "seconds": round(seconds, 3),
        "files": [p.name for p in written],
        "engine_check": {"rows": int(x.shape[0]), "latent_codes": n_codes, "mismatches": mismatches},
    }
    write_text(out_dir / "train.json", json.dumps(provenance, indent=2) + "\n")
    return TrainResult(out_dir, tuple(written), initial, final, tuple(losses), int(charges.shape[0]), seconds,
                       mismatches)
