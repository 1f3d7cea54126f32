"""Fixed-point formats, integer codes and bit flips.

A value is held as an integer *code*; its real value is ``code * 2**-frac``.
This module is the single place that knows how a QKeras quantizer maps onto
a code range, how an accumulator is requantized, and how a bit is flipped.
Bit numbering follows the FKeras paper: bit 0 is the MSB (the sign bit of a
signed format), bit ``bits-1`` the LSB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FixedFormat:
    """A two's-complement (or unsigned) fixed-point format.

    ``bits`` total bits, ``frac`` fractional bits (may be negative or exceed
    ``bits``), ``signed``. ``lo``/``hi`` bound the codes a quantizer can emit;
    they may be tighter than the raw bit range (symmetric quantizers).
    Requantization into this format rounds half to even (``tf.round``, the
    QKeras rounding) and saturates.
    """

    bits: int
    frac: int
    signed: bool
    lo: int
    hi: int

    @staticmethod
    def make(bits: int, frac: int, signed: bool, symmetric: bool = False) -> "FixedFormat":
        if bits < 1:
            raise ValueError(f"fixed-point format needs at least 1 bit, got {bits}")
        if signed:
            hi = (1 << (bits - 1)) - 1
            lo = -(1 << (bits - 1)) + (1 if symmetric else 0)
        else:
            hi = (1 << bits) - 1
            lo = 0
        return FixedFormat(bits=bits, frac=frac, signed=signed, lo=lo, hi=hi)

    @property
    def integer_bits(self) -> int:
        """Integer bits including the sign bit (ap_fixed's I)."""
        return self.bits - self.frac

    def describe(self) -> str:
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{kind}<{self.bits},{self.integer_bits}>"

    def to_dict(self) -> dict:
        return {"bits": self.bits, "frac": self.frac, "signed": self.signed, "lo": self.lo, "hi": self.hi}

    @staticmethod
    def from_dict(d: dict) -> "FixedFormat":
        return FixedFormat(int(d["bits"]), int(d["frac"]), bool(d["signed"]), int(d["lo"]), int(d["hi"]))

    # --- codes <-> raw register bits -------------------------------------

    def to_unsigned(self, codes):
        """Two's-complement bit pattern of each code as a non-negative int."""
        codes = np.asarray(codes, dtype=np.int64)
        return codes & ((1 << self.bits) - 1)

    def from_unsigned(self, raw):
        """Inverse of :meth:`to_unsigned`."""
        raw = np.asarray(raw, dtype=np.int64) & ((1 << self.bits) - 1)
        if self.signed:
            return np.where(raw >= (1 << (self.bits - 1)), raw - (1 << self.bits), raw)
        return raw

    def flip(self, codes, bit):
        """Flip bit ``bit`` (0 = MSB) of each code, two's complement.

        The result stays a valid register content; it may fall outside
        ``[lo, hi]`` only for symmetric formats (the most negative pattern).
        """
        bit = np.asarray(bit, dtype=np.int64)
        if np.any((bit < 0) | (bit >= self.bits)):
            raise ValueError(f"bit index out of range for {self.bits}-bit format: {bit}")
        mask = np.left_shift(np.int64(1), self.bits - 1 - bit)
        return self.from_unsigned(self.to_unsigned(codes) ^ mask)


def shift_round_half_even(x: np.ndarray, shift: int) -> np.ndarray:
    """``round_half_even(x / 2**shift)`` for integer arrays; shift may be <= 0."""
    x = np.asarray(x, dtype=np.int64)
    if shift <= 0:
        return np.left_shift(x, -shift)
    q = np.right_shift(x, shift)  # floor division
    r = x - np.left_shift(q, shift)
    half = np.int64(1) << (shift - 1)
    up = (r > half) | ((r == half) & ((q & 1) == 1))
    return q + up.astype(np.int64)


def requantize(acc: np.ndarray, acc_frac: int, fmt: FixedFormat) -> np.ndarray:
    """Round (half to even) and saturate integer codes with ``acc_frac``
    fractional bits into ``fmt``: what QKeras' quantizers do to a float."""
    q = shift_round_half_even(acc, acc_frac - fmt.frac)
    return np.clip(q, fmt.lo, fmt.hi)


def quantize_float(x: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    """Quantize real values into codes of ``fmt`` (round half to even,
    saturate). Exact for inputs whose scaled value is representable in
    float64, which holds for normalised detector data."""
    scaled = np.asarray(x, dtype=np.float64) * (2.0 ** fmt.frac)
    return np.clip(np.round(scaled), fmt.lo, fmt.hi).astype(np.int64)


def bits_for_range(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits
