"""Where a model lives on disk, as users save it. No TensorFlow here:
resolving files must be cheap.

A model is one of:

- a name (``econt-bol``, ...) of a model shipped with fkhw;
- a directory in the Keras 2 / QKeras layout: ``encoder*.json`` +
  ``encoder*.hdf5`` (architecture + weights), optionally the decoder pair;
- a full-model file written by ``model.save`` (``.h5`` / ``.hdf5`` with its
  architecture inside, or ``.keras``), or a directory holding exactly one.

Without a decoder the "encoder" is the whole network (a classifier or a
regressor): every level runs it, only the EMD metric needs a decoder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fkhw.errors import InputError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MODELS_DIR = ASSETS / "models"
NAMED_MODELS = {
    "econt-bol": MODELS_DIR / "econt-bol",
    "econt-eol": MODELS_DIR / "econt-eol",
    "fkeras-eol": MODELS_DIR / "fkeras-eol",  # the FKeras paper's own model (FQConv2D / FQDense layers)
    "digits": MODELS_DIR / "digits",  # the newcomer's example: a QKeras classifier (examples/digits/train.py)
}
FULL_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"


class ModelFileError(InputError):
    """A model name, directory or file that cannot be used, with the reason."""


@dataclass(frozen=True)
class ModelFiles:
    """The files a model is made of. ``encoder_json`` is None for a
    full-model file, which is then ``encoder_weights``."""

    name: str
    directory: Path
    encoder_json: Path | None
    encoder_weights: Path
    decoder_json: Path | None
    decoder_weights: Path | None

    def digest(self) -> str:
        """Content hash of every file the model is made of."""
        h = hashlib.sha256()
        for p in (self.encoder_json, self.encoder_weights, self.decoder_json, self.decoder_weights):
            h.update(b"\0" if p is None else _read(p))
        return h.hexdigest()[:16]

    @property
    def has_decoder(self) -> bool:
        return self.decoder_json is not None

    @property
    def is_full_model(self) -> bool:
        return self.encoder_json is None

    @property
    def encoder_file(self) -> Path:
        """The file that names the network: its JSON, or the full-model file."""
        return self.encoder_weights if self.encoder_json is None else self.encoder_json


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read the model file ({e.strerror or e})") from None


def _one(directory: Path, pattern: str, required: bool) -> Path | None:
    found = sorted(directory.glob(pattern))
    if len(found) > 1:
        raise ModelFileError(f"{directory}: several files match {pattern}: {[p.name for p in found]}")
    if not found:
        if required:
            raise ModelFileError(f"{directory}: no file matches {pattern} (a model directory holds encoder*.json and encoder*.hdf5)")
        return None
    return found[0]


def full_model_file(path: Path) -> ModelFiles:
    """A ``model.save`` file; its kind is checked from its first bytes, so a
    weights-only or foreign file is refused here, before TensorFlow."""
    if path.suffix not in FULL_MODEL_SUFFIXES:
        raise ModelFileError(f"{path}: not a model file (a full model saved by model.save ends in "
                             f"{', '.join(FULL_MODEL_SUFFIXES)}; or give a directory with encoder*.json + encoder*.hdf5)")
    head = _read(path)[:8]
    want = ZIP_SIGNATURE if path.suffix == ".keras" else HDF5_SIGNATURE
    if not head.startswith(want):
        kind = "a .keras zip archive" if path.suffix == ".keras" else "an HDF5 file"
        raise ModelFileError(f"{path}: not {kind} (empty, truncated or another format)")
    return ModelFiles(path.stem, path.parent, None, path, None, None)


def _directory(directory: Path, name: str) -> ModelFiles:
    if not any(directory.glob("encoder*.json")):
        full = sorted(p for p in directory.iterdir() if p.suffix in FULL_MODEL_SUFFIXES and p.is_file())
        if len(full) == 1:
            return ModelFiles(name, directory, None, full_model_file(full[0]).encoder_weights, None, None)
        if len(full) > 1:
            raise ModelFileError(f"{directory}: several model files {[p.name for p in full]}; give the one to use")
        raise ModelFileError(f"{directory}: no model here (expected encoder*.json + encoder*.hdf5, or one file "
                             f"saved by model.save: {', '.join('*' + s for s in FULL_MODEL_SUFFIXES)})")
    ej = _one(directory, "encoder*.json", True)
    ew = _one(directory, "encoder*.hdf5", True)
    dj = _one(directory, "decoder*.json", False)
    dw = _one(directory, "decoder*.hdf5", False)
    if (dj is None) != (dw is None):
        raise ModelFileError(f"{directory}: decoder needs both decoder*.json and decoder*.hdf5")
    return ModelFiles(name, directory, ej, ew, dj, dw)


def resolve(model: str) -> ModelFiles:
    """Resolve a named model, a model directory or a full-model file."""
    if model in NAMED_MODELS:
        return _directory(NAMED_MODELS[model], model)
    path = Path(model)
    if not path.exists():
        raise ModelFileError(f"model {model!r}: no such directory or model file, and not a known name ({', '.join(NAMED_MODELS)})")
    if path.is_dir():
        return _directory(path, path.name)
    return full_model_file(path)
