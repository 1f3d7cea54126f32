"""A model's architecture read as data, before Keras sees it.

Keras rebuilds a model from its JSON config by looking up each object's
class; some of those lookups run code the file brings along: a ``Lambda``
layer's marshalled Python (legacy HDF5 loading has no safe mode), a
``module`` that Keras imports to find a class, a custom registered object.
So every object of the config, at any depth (sub-models, wrappers,
quantizers, initializers), is checked against the classes fkhw builds
before anything is deserialised, and the config Keras then receives is the
one checked. No TensorFlow here.
"""

from __future__ import annotations

import re
from pathlib import Path

from fkhw.model import decoder, extract
from fkhw.model.files import ModelFileError

MODELS = ("Functional", "Sequential", "Model")
# FKeras layers: QKeras layers plus fault-injection settings (bit error rate, bit
# location) that FKeras applies at inference; with no injection (ber = 0) they
# compute exactly what the QKeras layer does
FKERAS_LAYERS = {"FQConv2D": "QConv2D", "FQDense": "QDense"}
FKERAS_SETTINGS = ("ber", "bit_loc")
# the layers the integer IR (extract.HANDLERS) and the decoder read, the
# input layer, and FKeras' layers (read as their QKeras equivalents)
LAYERS = frozenset(MODELS + ("InputLayer",) + tuple(extract.HANDLERS) + decoder.LAYERS + tuple(FKERAS_LAYERS))
# what those layers hold: their quantizers, initializers, constraints and
# regularizers (plain data: Keras builds them from numbers)
QUANTIZERS = extract.QUANTIZERS
PARTS = frozenset(QUANTIZERS + (
    "QInitializer", "Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Identity", "LecunNormal",
    "LecunUniform", "Ones", "Orthogonal", "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling", "Zeros",
    "Clip", "MaxNorm", "MinMaxNorm", "NonNeg", "RadialConstraint", "UnitNorm",
    "L1", "L2", "L1L2", "OrthogonalRegularizer",
    "__tuple__", "TensorShape",  # Keras' JSON encoding of tuples and shapes
))
# Keras' built-in activations: names a layer's ``activation`` may give
ACTIVATIONS = frozenset(("linear", "relu", "sigmoid", "tanh", "softmax", "softplus", "softsign", "elu", "selu", "gelu",
                         "swish", "silu", "exponential", "hard_sigmoid", "relu6", "mish", "log_softmax"))
# keys whose objects Keras never builds for fkhw (it does not compile or train)
IGNORED = ("compile_config",)
# keys that only Lambda-like layers have: Python functions, marshalled or named
CODE_KEYS = ("function", "function_type", "output_shape_type", "mask_type")
_CALL = re.compile(r"\s*([A-Za-z_]\w*)\s*(\(.*\))?\s*", re.S)


def checked_config(config: object, path: Path) -> dict:
    """``config`` (a parsed model JSON) without what fkhw never builds,
    after refusing, with one line naming ``path`` and the layer, anything
    that is not a class fkhw builds or could make Keras run code."""
    if not isinstance(config, dict) or config.get("class_name") not in MODELS:
        top = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise ModelFileError(f"{path}: not a Keras model config (its top object is {top!r}, not one of "
                             f"{', '.join(MODELS)})")
    config = _without_ignored(config)
    for obj, where, is_layer in _dicts(config):
        if "class_name" in obj:
            _check_object(obj, where, is_layer, path)
        _check_values(obj, where, path)
    return config


def _dicts(config: dict):
    """Every dict in ``config``, depth first in file order, with how an
    error names it and whether it stands where a layer does. Iterative:
    a deeply nested file must not exhaust Python's stack."""
    stack = [(config, "the model", True)]
    while stack:
        obj, where, is_layer = stack.pop()
        if isinstance(obj, list):
            stack.extend((item, where, is_layer) for item in reversed(obj))
            continue
        if not isinstance(obj, dict):
            continue
        if "class_name" in obj:
            where = _label(obj, where, is_layer)
        yield obj, where, is_layer
        stack.extend(reversed([_child(obj, key, value, where) for key, value in obj.items()]))


def _child(obj: dict, key: str, value: object, where: str) -> tuple:
    """A value of ``obj`` with its label: a layer list (Functional,
    Sequential) or wrapped layer holds layers; an object's config keeps
    the object's name; any other key is named after the object."""
    if key == "config":
        return value, where, False
    if key in ("layers", "layer"):
        return value, where, True
    return value, where if "class_name" in obj else f"{where} {key}", False


def _check_values(obj: dict, where: str, path: Path) -> None:
    for key, value in obj.items():
        if key in CODE_KEYS:
            raise ModelFileError(f"{path}: {where} is refused before loading: it holds a Python function ({key})")
        if isinstance(value, str) and (key == "activation" or key.endswith("quantizer")):
            _check_callable_name(value, f"{where} {key}", path)


def _without_ignored(config: dict) -> dict:
    """A copy of ``config`` without the IGNORED keys, at any depth (a nested
    model carries its own compile settings)."""
    out: dict = {}
    stack = [(config, out)]
    while stack:
        src, dst = stack.pop()
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for key, value in items:
            if isinstance(src, dict) and key in IGNORED:
                continue
            if isinstance(value, (dict, list)):
                copy = {} if isinstance(value, dict) else [None] * len(value)
                stack.append((value, copy))
                value = copy
            dst[key] = value
    return out


def _label(obj: dict, where: str, is_layer: bool) -> str:
    """How an error names an object: ``layer 'name' (Class)`` for a layer
    or model, else the key it sits under in its layer."""
    cls = obj.get("class_name")
    if not is_layer:
        return f"{where} ({cls})"
    cfg = obj.get("config")
    name = cfg.get("name") if isinstance(cfg, dict) else None
    name = obj.get("name", name) if name is None else name
    kind = "model" if cls in MODELS else "layer"
    return f"{kind} {name!r} ({cls})"


def _check_object(obj: dict, where: str, is_layer: bool, path: Path) -> None:
    cls = obj["class_name"]
    allowed = LAYERS if is_layer else PARTS
    if not isinstance(cls, str) or cls not in allowed:
        what = (f"fkhw builds only the layers {', '.join(sorted(LAYERS))}" if is_layer else
                f"not a quantizer ({', '.join(QUANTIZERS)}), initializer, constraint or regularizer fkhw knows")
        raise ModelFileError(f"{path}: {where} is refused before loading: {what} (a Lambda or custom class could "
                             "run code from the file)")
    module = obj.get("module")
    if module is not None and not (isinstance(module, str) and _keras_module(module)):
        raise ModelFileError(f"{path}: {where} is refused before loading: its module {module!r} is not Keras or "
                             "QKeras (Keras would import it, running its code)")
    registered = obj.get("registered_name")
    if registered is not None and registered != cls:
        raise ModelFileError(f"{path}: {where} is refused before loading: registered name {registered!r} names a "
                             f"custom object, not the class {cls}")


def _keras_module(module: str) -> bool:
    return any(module == pkg or module.startswith(pkg + ".") for pkg in ("keras", "qkeras"))


def _check_callable_name(text: str, where: str, path: Path) -> None:
    """A quantizer or activation given by name (``'relu'``,
    ``'quantized_bits(6,1,alpha=1)'``): QKeras looks the name up among its
    module's globals and calls it, so only known names pass."""
    m = _CALL.fullmatch(text)
    if m is None or m.group(1) not in ACTIVATIONS.union(QUANTIZERS):
        raise ModelFileError(f"{path}: {where} {text!r} is refused before loading: not a quantizer "
                             f"({', '.join(QUANTIZERS)}) or Keras activation fkhw knows")
