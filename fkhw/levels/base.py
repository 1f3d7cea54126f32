"""What every evaluation level offers: run a fault list on inputs.

A level is built around one :class:`~fkhw.model.ir.IntegerModel`. ``run``
takes site ids (see :mod:`fkhw.faults.sites`) and input codes and returns the
encoder's output codes with each single site flipped in turn; ``golden``
is the fault-free output. Output codes are int64 arrays.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Level(Protocol):
    name: str

    def golden(self, inputs: np.ndarray) -> np.ndarray:
        """(N, n_out) fault-free output codes for input codes (N, *input.shape)."""

    def run(self, sites: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """(len(sites), N, n_out) output codes, one single-bit upset per site."""
