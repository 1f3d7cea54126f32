"""A model ready for fkhw: its files, integer IR and decoder.

Extraction needs TensorFlow (seconds); its result is cached on disk keyed by
the content hash of the model files, so later commands run without it.
Set ``FKHW_CACHE`` to move the cache, or ``FKHW_CACHE=off`` to disable it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw import __version__
from fkhw.model.decoder import DecoderIR
from fkhw.model.files import ModelFiles, ModelFileError, resolve
from fkhw.model.ir import IR_VERSION, IntegerModel


@dataclass(frozen=True, eq=False)
class ModelBundle:
    files: ModelFiles
    ir: IntegerModel
    decoder: DecoderIR | None

    @property
    def name(self) -> str:
        return self.files.name

    def require_decoder(self) -> DecoderIR:
        if self.decoder is None:
            raise ModelFileError(f"model {self.name!r} ({self.files.directory}) has no decoder: EMD needs one")
        return self.decoder


def cache_dir() -> Path | None:
    env = os.environ.get("FKHW_CACHE")
    if env == "off":
        return None
    return Path(env) if env else Path.home() / ".cache" / "fkhw"


def _extract(files: ModelFiles) -> ModelBundle:
    from fkhw.model.decoder import extract_decoder
    from fkhw.model.extract import extract
    from fkhw.model.keras_io import load_decoder, load_encoder

    source = {"model": files.name, "directory": str(files.directory), "digest": files.digest(),
              "encoder": files.encoder_json.name, "fkhw": __version__}
    ir = extract(load_encoder(files), files.name, source)
    decoder = extract_decoder(load_decoder(files)) if files.has_decoder else None
    return ModelBundle(files, ir, decoder)


def load_model(model: str) -> ModelBundle:
    """Resolve a model name or directory and return its bundle."""
    files = resolve(model)
    cdir = cache_dir()
    if cdir is None:
        return _extract(files)
    path = cdir / f"{files.name}-{files.digest()}-ir{IR_VERSION}-{__version__}.npz"
    if path.exists():
        try:
            ir = IntegerModel.load(path)
            with np.load(path) as z:
                decoder = DecoderIR.from_arrays(z) if "dec_in_size" in z else None
            return ModelBundle(files, ir, decoder)
        except Exception:
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt, never trusted
    bundle = _extract(files)
    cdir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cdir, suffix=".npz")
    os.close(fd)
    bundle.ir.save(Path(tmp))
    if bundle.decoder is not None:
        with np.load(tmp) as z:
            arrays = dict(z)
        np.savez(tmp, **arrays, **bundle.decoder.save_arrays())
    os.replace(tmp, path)
    return bundle
