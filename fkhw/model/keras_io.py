"""Loading QKeras models from disk (TensorFlow imported lazily)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fkhw.model.files import ModelFileError, ModelFiles


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


def load_keras(json_path: Path, weights_path: Path):
    """A Keras model from an architecture JSON and an HDF5 weight file."""
    tf = import_tf()
    try:
        text = Path(json_path).read_text()
        json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{json_path}: not a readable Keras model JSON ({e})") from e
    try:
        model = tf.keras.models.model_from_json(text, custom_objects=custom_objects())
    except Exception as e:  # Keras raises many types for bad configs
        raise ModelFileError(f"{json_path}: cannot build the model from this JSON ({type(e).__name__}: {e})") from e
    try:
        model.load_weights(str(weights_path))
    except Exception as e:
        raise ModelFileError(f"{weights_path}: cannot load weights ({type(e).__name__}: {e})") from e
    return model


def load_encoder(files: ModelFiles):
    return load_keras(files.encoder_json, files.encoder_weights)


def load_decoder(files: ModelFiles):
    if not files.has_decoder:
        raise ModelFileError(f"{files.directory}: model has no decoder (decoder*.json + decoder*.hdf5)")
    return load_keras(files.decoder_json, files.decoder_weights)
