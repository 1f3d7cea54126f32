"""Where a model lives on disk: a name or a directory in the Keras 2 /
QKeras layout (``encoder*.json`` + ``encoder*.hdf5``, optionally the
decoder pair). No TensorFlow here: resolving files must be cheap."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MODELS_DIR = ASSETS / "models"
NAMED_MODELS = {
    "econt-bol": MODELS_DIR / "econt-bol",
    "econt-eol": MODELS_DIR / "econt-eol",
    "fkeras-eol": MODELS_DIR / "fkeras-eol",  # the FKeras paper's own model (FQConv2D / FQDense layers)
}


class ModelFileError(ValueError):
    """A model name or directory that cannot be used, with the reason."""


@dataclass(frozen=True)
class ModelFiles:
    name: str
    directory: Path
    encoder_json: Path
    encoder_weights: Path
    decoder_json: Path | None
    decoder_weights: Path | None

    def digest(self) -> str:
        """Content hash of every file the model is made of."""
        h = hashlib.sha256()
        for p in (self.encoder_json, self.encoder_weights, self.decoder_json, self.decoder_weights):
            h.update(b"\0" if p is None else p.read_bytes())
        return h.hexdigest()[:16]

    @property
    def has_decoder(self) -> bool:
        return self.decoder_json is not None


def _one(directory: Path, pattern: str, required: bool) -> Path | None:
    found = sorted(directory.glob(pattern))
    if len(found) > 1:
        raise ModelFileError(f"{directory}: several files match {pattern}: {[p.name for p in found]}")
    if not found:
        if required:
            raise ModelFileError(f"{directory}: no file matches {pattern} (a model directory holds encoder*.json and encoder*.hdf5)")
        return None
    return found[0]


def resolve(model: str) -> ModelFiles:
    """Resolve a named model (``econt-bol``, ``econt-eol``, ``fkeras-eol``) or a model directory."""
    if model in NAMED_MODELS:
        directory, name = NAMED_MODELS[model], model
    else:
        directory = Path(model)
        name = directory.name
        if not directory.exists():
            raise ModelFileError(
                f"model {model!r}: no such directory, and not a known name ({', '.join(NAMED_MODELS)})")
        if not directory.is_dir():
            raise ModelFileError(f"model {model!r}: not a directory (give the folder holding encoder*.json + encoder*.hdf5)")
    ej = _one(directory, "encoder*.json", True)
    ew = _one(directory, "encoder*.hdf5", True)
    dj = _one(directory, "decoder*.json", False)
    dw = _one(directory, "decoder*.hdf5", False)
    if (dj is None) != (dw is None):
        raise ModelFileError(f"{directory}: decoder needs both decoder*.json and decoder*.hdf5")
    return ModelFiles(name, directory, ej, ew, dj, dw)
