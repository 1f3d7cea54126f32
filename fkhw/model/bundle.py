"""A model ready for fkhw: its files, integer IR and decoder (None for a
single network: a classifier or a regressor).

Extraction needs TensorFlow (seconds); its result is cached on disk keyed by
the content hash of the model files, so later commands run without it.
Set ``FKHW_CACHE`` to move the cache, or ``FKHW_CACHE=off`` to disable it.
A cache folder that cannot be written (read-only home, ``FKHW_CACHE``
naming a file) is skipped: the model is extracted as if the cache were off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw import __version__
from fkhw.model.decoder import DecoderIR
from fkhw.model.files import ModelFiles, ModelFileError, resolve
from fkhw.model.ir import IR_VERSION, IntegerModel

log = logging.getLogger(__name__)


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
    """The model cache: the root of fkhw's user cache (fkhw.host.cachedirs), None when FKHW_CACHE=off."""
    from fkhw.host.cachedirs import OFF, cache_root

    return None if os.environ.get("FKHW_CACHE") == OFF else cache_root()


def _extract(files: ModelFiles) -> ModelBundle:
    from fkhw.model.decoder import extract_decoder
    from fkhw.model.extract import extract
    from fkhw.model.keras_io import load_decoder, load_encoder

    source = {"model": files.name, "directory": str(files.directory), "digest": files.digest(),
              "encoder": files.encoder_file.name, "fkhw": __version__}
    ir = extract(load_encoder(files), files.name, source)
    decoder = extract_decoder(load_decoder(files)) if files.has_decoder else None
    return ModelBundle(files, ir, decoder)


def check_latent(bundle: ModelBundle) -> ModelBundle:
    """The decoder must read what the encoder writes."""
    n_latent = int(np.prod(bundle.ir.output_spec.shape))
    if bundle.decoder is not None and bundle.decoder.in_size != n_latent:
        f = bundle.files
        raise ModelFileError(f"model {bundle.name!r}: the encoder ({f.encoder_file.name}) writes {n_latent} latent "
                             f"values, the decoder ({f.decoder_json.name}) reads {bundle.decoder.in_size}")
    return bundle


def load_model(model: str) -> ModelBundle:
    """Resolve a model name or directory and return its bundle."""
    return load_files(resolve(model))


def load_files(files: ModelFiles) -> ModelBundle:
    """The bundle of resolved model files: from the cache, or extracted."""
    cdir = cache_dir()
    if cdir is None:
        return check_latent(_extract(files))
    path = cdir / f"{files.name}-{files.digest()}-ir{IR_VERSION}-{__version__}.npz"
    if path.is_file():
        try:
            ir = IntegerModel.load(path)
            with np.load(path, allow_pickle=False) as z:
                decoder = DecoderIR.from_arrays(z) if "dec_in_size" in z else None
            return check_latent(ModelBundle(files, ir, decoder))
        except ModelFileError:
            raise
        except Exception:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt, never trusted
    bundle = _extract(files)
    try:
        _store(bundle, cdir, path)
    except OSError as e:
        log.debug("model cache %s not written (%s): extraction will run again next time", cdir, e)
    return check_latent(bundle)


def _store(bundle: ModelBundle, cdir: Path, path: Path) -> None:
    cdir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cdir, suffix=".npz")
    os.close(fd)
    try:
        bundle.ir.save(Path(tmp))
        if bundle.decoder is not None:
            with np.load(tmp, allow_pickle=False) as z:
                arrays = dict(z)
            np.savez(tmp, **arrays, **bundle.decoder.save_arrays())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
