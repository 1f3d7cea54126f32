"""Loading QKeras models from disk (TensorFlow imported lazily)."""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

from fkhw.model.files import ModelFileError, ModelFiles
from fkhw.model.safe_config import FKERAS_LAYERS, FKERAS_SETTINGS, checked_config


def import_tf():
    """Import TensorFlow quietly (its C++ banner is noise for our users)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def custom_objects() -> dict:
    import_tf()
    from qkeras.utils import _add_supported_quantized_objects

    co: dict = {}
    _add_supported_quantized_objects(co)
    return co




def from_fkeras(text: str, json_path: Path) -> str:
    """A model JSON with FKeras layers as its QKeras equivalent; the file
    itself is read as it is. FKeras is not needed (nor on PyPI for TF 2.15)."""
    d = json.loads(text)
    config = d.get("config") if isinstance(d, dict) else None
    layers = config.get("layers", []) if isinstance(config, dict) else []
    changed = False
    for layer in layers:
        qkeras_name = FKERAS_LAYERS.get(layer.get("class_name")) if isinstance(layer, dict) else None
        if qkeras_name is None:
            continue
        cfg = layer.get("config", {})
        if float(cfg.get("ber", 0) or 0) != 0:
            raise ModelFileError(f"{json_path}: layer {cfg.get('name')!r} ({layer['class_name']}) injects faults "
                                 f"itself (ber = {cfg['ber']}); fkhw reads FKeras models saved with ber = 0")
        for key in FKERAS_SETTINGS:
            cfg.pop(key, None)
        layer["class_name"] = qkeras_name
        changed = True
    return json.dumps(d) if changed else text


def one_line(e: Exception, limit: int = 300) -> str:
    """An exception as ``Type: first words``: Keras and h5py messages span
    many lines, an fkhw error is one."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:limit]}{' ...' if len(text) > limit else ''}"


def load_keras(json_path: Path, weights_path: Path):
    """A Keras model from an architecture JSON and an HDF5 weight file."""
    try:
        text = Path(json_path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{json_path}: not a readable Keras model JSON ({one_line(e)})") from e
    config = checked_json(text, json_path, "not a readable Keras model JSON")
    return _build_and_load(import_tf(), from_fkeras(json.dumps(config), json_path), json_path, weights_path)


def checked_json(text: str | bytes, path: Path, unreadable: str) -> dict:
    """A model's architecture JSON, parsed and checked class by class
    (:mod:`fkhw.model.safe_config`) before any of it is deserialised: a
    model file is data, and Keras would run a Lambda's marshalled code or
    import a module the file names while building it."""

    try:
        config = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelFileError(f"{path}: {unreadable} ({one_line(e)})") from e
    return checked_config(config, path)


def _build_and_load(tf, config_json: str, config_path: Path, weights_path: Path):
    """Build a model from its Keras JSON config, then load its weights; each
    failure names the file at fault (the config and weights may be one file)."""
    try:
        model = tf.keras.models.model_from_json(config_json, custom_objects=custom_objects())
    except Exception as e:  # Keras raises many types for bad configs
        raise ModelFileError(f"{config_path}: cannot build the model from its config ({one_line(e)})") from e
    try:
        model.load_weights(str(weights_path))
    except Exception as e:
        raise ModelFileError(f"{weights_path}: cannot load its weights ({one_line(e)})") from e
    return model


def _legacy_quantizers(config: dict) -> dict:
    """A ``.keras`` config with each QActivation's quantizer in the Keras 2
    form: QKeras 0.9 cannot rebuild the ``module``/``registered_name`` form
    that Keras 2.15 writes for it (the same defect as in ``model.to_json``);
    QKeras' weight quantizers rebuild fine either way."""
    layers = config.get("config", {}).get("layers", []) if isinstance(config, dict) else []
    for layer in layers:
        cfg = layer.get("config", {}) if isinstance(layer, dict) else {}
        act = cfg.get("activation")
        if layer.get("class_name") == "QActivation" and isinstance(act, dict) and "module" in act:
            cfg["activation"] = {"class_name": act["class_name"], "config": act["config"],
                                 "__passive_serialization__": True}
    return config


def load_full(path: Path):
    """A Keras model from a file written by ``model.save`` (.h5 or .keras)."""
    with warnings.catch_warnings():
        # rebuilding QKeras layers serialises their quantizers as constraints,
        # which Keras warns about harmlessly: not for the user's terminal
        warnings.filterwarnings("ignore", message=".*constraints.serialize.*")
        return _load_full(path)


def _load_full(path: Path):
    """Built from the file's config once checked, then its weights read
    (never ``load_model``: for HDF5 it has no safe mode)."""
    if path.suffix == ".keras":
        config = _legacy_quantizers(_keras_archive_config(path))
    else:
        config = checked_json(_hdf5_config(path), path, "its model_config is not readable JSON")
    return _build_and_load(import_tf(), json.dumps(config), path, path)


def _keras_archive_config(path: Path) -> dict:
    """The checked ``config.json`` of a ``.keras`` zip archive."""
    try:
        with zipfile.ZipFile(path) as z:
            text = z.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise ModelFileError(f"{path}: not a readable .keras model archive ({one_line(e)})") from e
    return checked_json(text, path, "not a readable .keras model archive")


def _hdf5_config(path: Path) -> str | bytes:
    """The architecture JSON a ``model.save`` HDF5 file keeps in its
    ``model_config`` attribute, read with h5py (which never unpickles)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            text = f.attrs.get("model_config")
    except Exception as e:  # h5py raises OSError and others for damaged files
        raise ModelFileError(f"{path}: not a readable HDF5 model file ({one_line(e)})") from e
    if text is None:
        raise ModelFileError(f"{path}: holds weights only (no model_config): save the whole model with "
                             "model.save, or put its JSON beside it as encoder*.json + encoder*.hdf5")
    if not isinstance(text, (str, bytes)):
        raise ModelFileError(f"{path}: its model_config is not JSON text (a {type(text).__name__})")
    return text


def load_encoder(files: ModelFiles):
    """The network fkhw analyses (the whole model when it has no decoder)."""
    if files.is_full_model:
        return load_full(files.encoder_weights)
    return load_keras(files.encoder_json, files.encoder_weights)


def load_decoder(files: ModelFiles):
    if not files.has_decoder:
        raise ModelFileError(f"{files.directory}: model has no decoder (decoder*.json + decoder*.hdf5)")
    return load_keras(files.decoder_json, files.decoder_weights)
