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


# FKeras layers: QKeras layers plus fault-injection settings (bit error rate, bit
# location) that FKeras applies at inference; with no injection (ber = 0) they
# compute exactly what the QKeras layer does
FKERAS_LAYERS = {"FQConv2D": "QConv2D", "FQDense": "QDense"}
FKERAS_SETTINGS = ("ber", "bit_loc")


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


def load_keras(json_path: Path, weights_path: Path):
    """A Keras model from an architecture JSON and an HDF5 weight file."""
    tf = import_tf()
    try:
        text = Path(json_path).read_text()
        json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{json_path}: not a readable Keras model JSON ({e})") from e
    text = from_fkeras(text, json_path)
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
