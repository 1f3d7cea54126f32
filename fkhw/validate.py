"""Strict checks of the values fkhw reads from user files: fault files, TMR
maps, campaign folders, site lists, data and scores tables.

Each check takes the value and ``where`` it came from (the file, the entry
or row, the field or column, e.g. ``faults.json entry 3 scrub`` or
``sites.csv row 4 column site``) and returns the value in the type the
reader wants, or raises :class:`InputError` whose one-line message starts
with ``where``. The rules, the same in every reader:

* an integer is an integer: not a boolean (JSON ``true`` is no site 1), not
  a float (a cycle ``1.5`` is no cycle 1), not a string; in CSV text, ASCII
  digits with an optional sign, nothing else (no ``1.0``, ``1e3``, ``1_000``);
* a number is finite (no NaN, no infinity) and not a boolean;
* every value is range-checked, and an integer always fits int64 (numpy's
  arrays hold them), so a huge one is named, not an ``OverflowError``;
* a JSON object holds the fields the reader needs, and, where the reader
  says so, no others (a misspelt optional field would be silently ignored);
  a key listed twice is refused (JSON keeps the last one silently).

Readers turn an InputError into their own error class if callers expect
one; the CLI shows either as one line.
"""

from __future__ import annotations

import json
import math
import re

from fkhw.errors import InputError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")  # ASCII digits: int() also takes "1_000" and other scripts' digits




def _shown(value) -> str:
    """A value as its file spells it: JSON for parsed JSON, quoted for text."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bound(x) -> str:
    return {INT64_MAX: "2**63 - 1", INT64_MIN: "-2**63"}.get(x, str(x)) if isinstance(x, int) else f"{x:g}"


def _span(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"give {_bound(lo)} .. {_bound(hi)}" if lo <= hi else "there is no valid value"
    return f"give a value >= {_bound(lo)}" if lo is not None else f"give a value <= {_bound(hi)}"


def _in_range(value, where: str, lo, hi, what: str = ""):
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InputError(f"{where}: {_bound(value)} is out of range ({_span(lo, hi)}{what})")
    return value


def integer(value, where: str, lo: int | None = None, hi: int | None = None, what: str = "") -> int:
    """A JSON integer in [lo, hi] (and in int64); ``what`` says what the
    range is (e.g. ": the model's sites")."""
    if isinstance(value, bool):
        raise InputError(f"{where}: {_shown(value)} is a boolean, not an integer")
    if not isinstance(value, int):
        raise InputError(f"{where}: {_shown(value)} is not an integer")
    lo = INT64_MIN if lo is None else max(lo, INT64_MIN)
    hi = INT64_MAX if hi is None else min(hi, INT64_MAX)
    return _in_range(value, where, lo, hi, what)


def number(value, where: str, lo: float | None = None, hi: float | None = None, above: float | None = None,
           what: str = "") -> float:
    """A finite JSON number in [lo, hi] (``above``: strictly greater)."""
    if isinstance(value, bool):
        raise InputError(f"{where}: {_shown(value)} is a boolean, not a number")
    if not isinstance(value, (int, float)):
        raise InputError(f"{where}: {_shown(value)} is not a number")
    try:
        x = float(value)
    except OverflowError:  # an integer beyond the float range
        x = math.inf
    if not math.isfinite(x):
        raise InputError(f"{where}: {_shown(value)} is not a finite number")
    if above is not None and not x > above:
        raise InputError(f"{where}: {x:g} is out of range (give a number > {above:g}{what})")
    return float(_in_range(x, where, lo, hi, what))


def boolean(value, where: str) -> bool:
    """A JSON true or false (not 0, 1 or a string)."""
    if not isinstance(value, bool):
        raise InputError(f"{where}: {_shown(value)} is not true or false")
    return value


def string_in(value, where: str, choices=None) -> str:
    """A JSON string, one of ``choices`` if given."""
    if not isinstance(value, str):
        raise InputError(f"{where}: {_shown(value)} is not a string")
    if choices is not None and value not in choices:
        raise InputError(f"{where}: {value!r} is not one of {', '.join(map(str, choices))}")
    return value


def array(value, where: str) -> list:
    """A JSON list."""
    if not isinstance(value, list):
        raise InputError(f"{where}: {_shown(value)} is not a list")
    return value


def fields(value, where: str, required=(), optional=None) -> dict:
    """A JSON object holding every ``required`` field; with ``optional``
    given, no field outside required + optional (a misspelt one would be
    ignored without a word)."""
    if not isinstance(value, dict):
        raise InputError(f"{where}: {_shown(value)} is not an object {{...}}")
    missing = [k for k in required if k not in value]
    if missing:
        raise InputError(f"{where}: no field {', '.join(repr(k) for k in missing)}")
    if optional is not None:
        unknown = [k for k in value if k not in required and k not in optional]
        if unknown:
            raise InputError(f"{where}: unknown field {', '.join(repr(k) for k in unknown[:3])} (the fields are "
                             f"{', '.join(list(required) + list(optional))})")
    return value


def unique_keys(where: str):
    """A ``json.loads`` object_pairs_hook refusing a key listed twice in one
    object (JSON itself keeps the last one, silently)."""

    def hook(pairs):
        seen = {}
        for k, v in pairs:
            if k in seen:
                raise InputError(f"{where}: the key {k!r} is listed twice in one object")
            seen[k] = v
        return seen

    return hook


def json_document(text: str, where: str):
    """Parsed JSON text, each key once per object."""
    try:
        return json.loads(text, object_pairs_hook=unique_keys(where))
    except json.JSONDecodeError as e:
        raise InputError(f"{where}: not valid JSON ({e})") from None
    except RecursionError:
        raise InputError(f"{where}: not valid JSON (nested too deeply)") from None


# --- text cells (CSV, lists) ------------------------------------------------------


def integer_text(text, where: str, lo: int | None = None, hi: int | None = None, what: str = "") -> int:
    """An integer written as ASCII digits with an optional sign, in [lo, hi]
    and in int64."""
    if not isinstance(text, str) or not INTEGER_TEXT.fullmatch(text):
        raise InputError(f"{where}: {text!r} is not an integer")
    return integer(int(text), where, lo, hi, what)


def number_text(text, where: str, lo: float | None = None, hi: float | None = None, what: str = "") -> float:
    """A finite number written as text, in [lo, hi]."""
    try:
        x = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(x):
        raise InputError(f"{where}: {text!r} is not a finite number")
    return float(_in_range(x, where, lo, hi, what))


def integer_column(cells, where_row, lo: int | None = None, hi: int | None = None, what: str = "") -> list:
    """``integer_text`` of every cell of a column; ``where_row(i)`` names
    the row and column of cell i."""
    return [integer_text(c, where_row(i), lo, hi, what) for i, c in enumerate(cells)]


def number_column(cells, where_row, lo: float | None = None, hi: float | None = None, what: str = ""):
    """``number_text`` of every cell of a column, as float64 (vectorised:
    the per-cell check runs only to name the first bad cell)."""
    import numpy as np  # here, not at the top: the option parsers import this module for --help too

    try:
        values = np.fromiter(map(float, cells), np.float64, count=len(cells))
    except (TypeError, ValueError):
        values = None
    if values is None or not np.isfinite(values).all() or (lo is not None and (values < lo).any()) \
            or (hi is not None and (values > hi).any()):
        values = np.array([number_text(c, where_row(i), lo, hi, what) for i, c in enumerate(cells)], dtype=np.float64)
    return values
