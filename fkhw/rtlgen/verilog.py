"""Names and literals the generator's parts share: the top module and its
files, the replica memories of a triplicated register file, and the small
helpers that turn Python values into Verilog text."""

from __future__ import annotations

import re

import numpy as np

TOP = "fkhw_encoder"
TOP_FILE = f"{TOP}.v"
DEFS_FILE = f"{TOP}_defs.vh"
META_FILE = f"{TOP}.json"
REGMAP_FILE = "regmap.csv"
REPLICA_MEMS = ("mem", "mem_b", "mem_c")  # replica A (= the single copy of unprotected bits), B, C
SPDX = "// SPDX-License-Identifier: Apache-2.0"  # first line of every template and generated Verilog file


def ident(name: str) -> str:
    """A Verilog identifier for a layer name."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not s or not (s[0].isalpha() or s[0] == "_"):
        s = "l_" + s
    return s


def sv(flag: bool) -> int:
    """A flag as a Verilog parameter value."""
    return 1 if flag else 0


def mask_literal(mask: np.ndarray) -> str:
    """A bool array as a sized hex literal: entry k = bit k."""
    val = 0
    for k in np.flatnonzero(mask).tolist():
        val |= 1 << k
    return f"{mask.size}'h{val:x}"


def signedness(signed: bool) -> str:
    return "signed" if signed else "unsigned"
