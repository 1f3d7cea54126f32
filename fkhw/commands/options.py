"""Option types shared by the subcommands: a malformed or out-of-range value
is refused by the parser, naming the option, before any work starts."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from fkhw.validate import INT64_MAX, INTEGER_TEXT


def model_help(note: str = "") -> str:
    """--model's help: every model fkhw ships (fkhw.model.files.NAMED_MODELS, the one list), then ``note``."""
    from fkhw.model.files import NAMED_MODELS

    return f"{', '.join(NAMED_MODELS)}, a model directory or a full-model file (.h5, .keras){note}"


def out_path(text: str) -> Path:
    """A path to write; an empty one would silently mean the working folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("'': an empty path (give a folder or file name)")
    return Path(text)


def in_path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("'': an empty path")
    return Path(text)


def _int(text: str) -> int:
    # digits only: int() would also take '1_000' and other scripts' digits
    if not INTEGER_TEXT.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: not an integer")
    return int(text)


def int_at_least(lo: int, hi: int = INT64_MAX):
    """An integer in [lo, hi] (seeds: 0 .. 2**63 - 1, what numpy accepts)."""

    def parse(text: str) -> int:
        value = _int(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value}: out of range (give {lo} .. {hi})")
        return value

    parse.__name__ = "integer"  # argparse names the type in its message
    return parse


def finite_at_least(lo: float):
    """A finite number >= lo (thresholds, tolerances)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None
        if not math.isfinite(value) or value < lo:
            raise argparse.ArgumentTypeError(f"{text}: out of range (give a finite number >= {lo:g})")
        return value

    parse.__name__ = "number"
    return parse


def finite_above(lo: float):
    """A finite number > lo (tolerances)."""

    def parse(text: str) -> float:
        value = finite_at_least(lo)(text)
        if value <= lo:
            raise argparse.ArgumentTypeError(f"{text}: out of range (give a finite number > {lo:g})")
        return value

    parse.__name__ = "number"
    return parse


def fraction_open(text: str) -> float:
    """A number strictly between 0 and 1 (a confidence level, a probability target)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text}: out of range (give a number strictly between 0 and 1, e.g. 0.95)")
    return value


fraction_open.__name__ = "number"


def protection(text: str) -> str:
    """A design of code words: ``secded`` or ``parity``, with ``:N`` or
    ``:Ni`` (fkhw.faults.codes.code_word, the one reader)."""
    from fkhw.errors import InputError
    from fkhw.faults.codes import code_word  # numpy: imported only when the option is given

    try:
        code_word(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("protection ")) from None
    return text


protection.__name__ = "protection"
PROTECTION_METAVAR = "secded|secded:N|secded:Ni|parity|parity:N|parity:Ni"  # fkhw.faults.codes.PROTECTIONS, without importing numpy


def distinct_protections(values) -> tuple:
    """Repeated --protection values, each once: a design named twice is an error."""
    from fkhw.errors import InputError

    if len(set(values)) != len(values):
        raise InputError(f"--protection: a design given twice ({', '.join(values)})")
    return tuple(values)

SEED = int_at_least(0, 2**32 - 1)  # what numpy and TensorFlow seeds both take
POSITIVE = int_at_least(1)
NON_NEGATIVE = int_at_least(0)
EMD_NORM = finite_at_least(0.0)
TOLERANCE = finite_above(0.0)


def auto_or_positive(text: str):
    """``auto``, or a positive integer (a module count)."""
    if text == "auto":
        return text
    value = _int(text)
    if not 1 <= value <= INT64_MAX:
        raise argparse.ArgumentTypeError(f"{value}: out of range (give auto or a number 1 .. {INT64_MAX})")
    return value


auto_or_positive.__name__ = "auto|N"


def metric_name(text: str) -> str:
    """--metric: a registry name or module:function, checked when parsed."""
    import argparse

    from fkhw.damage.metrics import MetricError, get_metric

    try:
        return get_metric(text).name
    except MetricError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--metric ")) from None


def add_metric_arguments(p, what: str = "damage") -> None:
    """--metric and --labels (fkhw.damage.metrics), shared by campaign, hessian and sim."""
    p.add_argument("--metric", type=metric_name, default="emd", metavar="NAME",
                   help=f"the {what} metric: emd (HGCAL trigger cells, default), accuracy (top-1 against --labels), "
                        "mse (against --labels targets, or the fault-free outputs), or module:function")
    p.add_argument("--labels", type=in_path, default=None, metavar="FILE",
                   help="labels (class ids) or targets, one row per row of an array --data (.npy/.npz/.h5; an .npz "
                        "or HDF5 may hold both as x and y)")


# --- what a command reads: its outputs must not land there (fkhw.outpaths) ----------

def input_paths(option: str, path, names=()) -> list:
    """(option, path) of an input file or folder and, for a folder, of the
    files ``names`` in it the command reads; nothing for an option not given."""
    if path is None:
        return []
    path = Path(path)
    return [(option, path)] + [(option, path / n) for n in names]


def campaign_inputs(option: str, path) -> list:
    """A campaign folder (or its bare campaign.csv) and the files of it a command reads."""
    from fkhw.campaign.files import FAULTS, OUTPUTS, SUMMARY, TABLE

    return input_paths(option, path, (TABLE, SUMMARY, OUTPUTS, FAULTS))


def model_inputs(model, option: str = "--model") -> list:
    """A model's folder and files; nothing for a model that does not resolve
    (the command refuses it, naming it, when it loads it)."""
    from fkhw.model.files import ModelFileError, resolve

    if model is None:
        return []
    try:
        files = resolve(str(model))
    except (ModelFileError, OSError):
        return []
    folder = None if Path(str(model)).is_file() else files.directory  # a model file's folder is not the model
    paths = (folder, files.encoder_json, files.encoder_weights, files.decoder_json, files.decoder_weights)
    return [(option, p) for p in paths if p is not None]


def order_inputs(order: str) -> list:
    """The scores file of an --order SCORES.csv:COLUMN."""
    return input_paths("--order", order.rsplit(":", 1)[0]) if ":" in order else []
