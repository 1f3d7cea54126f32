"""Error-detecting and error-correcting codes of register words: the
definition every level follows (the software fault model, the generated
Verilog of fkhw.rtlgen.codes, the proofs).

* :class:`SecDed`: a Hsiao single-error-correcting, double-error-detecting
  code over ``data_bits``. Each data bit has a column of the parity-check
  matrix: a distinct ``check_bits``-bit mask of odd weight >= 3 (the check
  bits themselves have the unit columns). Check bit j of a word is the XOR
  of the data bits whose column has bit j set. The syndrome, the stored
  check bits XOR those recomputed from the stored data, is 0 for a clean
  word, a data bit's column (or a unit vector: a check bit) for one upset,
  and of even weight for two: odd-weight columns make every double upset
  detectable. Hsiao's codes need no overall parity bit and fewer gates
  than an extended Hamming code of the same length (M. Y. Hsiao, "A class
  of optimal minimum odd-weight-column SEC-DED codes", IBM J. Res. Dev.
  14(4), 1970).
* :class:`Parity`: one even-parity bit over ``data_bits``: detects any odd
  number of upsets, corrects none. In the same terms, a code whose one
  check bit covers every data bit (every column is 1), so the words of a
  register file (:class:`Words`) and their check flip-flops are laid out
  alike for both codes.

Bits are numbered from the least significant (bit i of a word is
``(word >> i) & 1``), as in Verilog.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import combinations
from math import comb

import numpy as np

from fkhw.errors import InputError

MAX_DATA_BITS = 64  # words up to 64 bits: numpy uint64 holds them


class CodeError(InputError):
    """A word size no code of fkhw covers."""


def _check_width(data_bits, what: str) -> int:
    if isinstance(data_bits, bool) or not isinstance(data_bits, (int, np.integer)):
        raise CodeError(f"{what}: {data_bits!r} is not a whole number of bits")
    if not 1 <= int(data_bits) <= MAX_DATA_BITS:
        raise CodeError(f"{what}: {data_bits} data bits; fkhw's codes cover 1..{MAX_DATA_BITS}")
    return int(data_bits)


def hsiao_check_bits(data_bits: int) -> int:
    """The fewest check bits r whose odd-weight (>= 3) columns number at least ``data_bits``."""
    k = _check_width(data_bits, "SEC-DED word")
    r = 3
    while sum(comb(r, w) for w in range(3, r + 1, 2)) < k:
        r += 1
    return r


def hsiao_columns(data_bits: int, check_bits: int) -> tuple:
    """The parity-check columns of the data bits: the odd weights in turn,
    lightest first (fewest XOR inputs), and within a weight the masks whose
    rows are least used so far, so that the check bits' XOR trees stay
    balanced (Hsiao's second criterion); ties in lexicographic order."""
    cols, load = [], [0] * check_bits
    for w in range(3, check_bits + 1, 2):
        left = [sum(1 << b for b in c) for c in combinations(range(check_bits), w)]
        while left and len(cols) < data_bits:
            best = min(left, key=lambda m: (sum(load[b] for b in range(check_bits) if m >> b & 1), left.index(m)))
            left.remove(best)
            cols.append(best)
            for b in range(check_bits):
                load[b] += best >> b & 1
        if len(cols) == data_bits:
            break
    return tuple(cols)


def _popcount(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.uint64)
    n = np.zeros(x.shape, dtype=np.int64)
    while np.any(x):
        n += (x & np.uint64(1)).astype(np.int64)
        x = x >> np.uint64(1)
    return n


@dataclass(frozen=True)
class Decoded:
    """What a decoder gives for stored words (arrays of equal shape)."""

    data: np.ndarray  # the data it passes on: corrected where it could
    corrected: np.ndarray  # bool: one upset seen and corrected (in a data bit, or a check bit): err_single
    uncorrectable: np.ndarray  # bool: an error seen it cannot correct (SEC-DED: two upsets; parity: an odd
    #                            number): err_double, err_parity


@dataclass(frozen=True)
class SecDed:
    """A Hsiao SEC-DED code over ``data_bits`` (see the module docstring)."""

    data_bits: int
    check_bits: int
    columns: tuple  # per data bit, its parity-check column (a check_bits-bit mask)

    @staticmethod
    def of(data_bits: int) -> "SecDed":
        k = _check_width(data_bits, "SEC-DED word")
        r = hsiao_check_bits(k)
        return SecDed(k, r, hsiao_columns(k, r))

    @property
    def label(self) -> str:
        return f"secded:{self.data_bits}"

    def rows(self) -> tuple:
        """Per check bit j, the data bits it covers (the XOR inputs of its encoder)."""
        return tuple(tuple(i for i, c in enumerate(self.columns) if c >> j & 1) for j in range(self.check_bits))

    def encode(self, data) -> np.ndarray:
        """The check bits of data words (any integer array)."""
        d = np.asarray(data, dtype=np.uint64)
        out = np.zeros(d.shape, dtype=np.uint64)
        for i, c in enumerate(self.columns):
            bit = (d >> np.uint64(i)) & np.uint64(1)
            out ^= bit * np.uint64(c)
        return out

    def syndrome(self, data, check) -> np.ndarray:
        return self.encode(data) ^ np.asarray(check, dtype=np.uint64)

    def decode(self, data, check) -> Decoded:
        """Correct one upset of the data or check bits, flag two (see the module docstring)."""
        d = np.asarray(data, dtype=np.uint64)
        s = self.syndrome(d, check)
        weight = _popcount(s)
        fix = np.zeros(d.shape, dtype=np.uint64)
        in_data = np.zeros(d.shape, dtype=bool)
        for i, c in enumerate(self.columns):
            hit = s == np.uint64(c)
            fix |= hit.astype(np.uint64) << np.uint64(i)
            in_data |= hit
        corrected = in_data | (weight == 1)
        return Decoded(d ^ fix, corrected, (weight > 0) & ~corrected)


@dataclass(frozen=True)
class Parity:
    """One even-parity bit over ``data_bits``."""

    data_bits: int
    check_bits: int = 1

    @staticmethod
    def of(data_bits: int) -> "Parity":
        return Parity(_check_width(data_bits, "parity word"))

    @property
    def label(self) -> str:
        return f"parity:{self.data_bits}"

    @property
    def columns(self) -> tuple:
        """Every data bit's parity-check column: the one check bit."""
        return (1,) * self.data_bits

    def rows(self) -> tuple:
        """The data bits the check bit covers: all of them."""
        return (tuple(range(self.data_bits)),)

    def encode(self, data) -> np.ndarray:
        return (_popcount(data) & 1).astype(np.uint64)

    def decode(self, data, check) -> Decoded:
        """The data unchanged; ``uncorrectable`` where the parity does not hold (an odd number of upsets)."""
        d = np.asarray(data, dtype=np.uint64)
        bad = self.encode(d) != np.asarray(check, dtype=np.uint64)
        return Decoded(d, np.zeros(d.shape, dtype=bool), bad)


CODES = {"secded": SecDed, "parity": Parity}  # a protection's code by the name it is spelt with
PROTECTIONS = ("secded", "secded:N", "secded:Ni", "parity", "parity:N", "parity:Ni")  # the spellings of a
# design whose registers are code words


@dataclass(frozen=True)
class Spelling:
    """What a protection's spelling says: the code, the data bits per word
    (None: a word per register) and whether the words are bit-interleaved."""

    code: str  # a key of CODES
    word: int | None
    interleaved: bool


def code_word(text: str) -> Spelling:
    """The code and words of a protection's spelling: ``secded`` or
    ``parity`` (one word per register), ``secded:N`` / ``parity:N`` (N of the
    register file's parameter bits in a row per word, packed across
    registers) or ``secded:Ni`` / ``parity:Ni`` (N bits per word,
    bit-interleaved: the file's adjacent bits in different words); raises
    CodeError naming it."""
    name, sep, n = str(text).partition(":")
    if name not in CODES or (sep and not n):
        raise CodeError(f"protection {text!r}: use {', '.join(PROTECTIONS)}")
    if not sep:
        return Spelling(name, None, False)
    interleaved = n.endswith("i")
    n = n[:-1] if interleaved else n
    if not n.isascii() or not n.isdigit():
        raise CodeError(f"protection {text!r}: N is a whole number of data bits per word, e.g. {name}:8 "
                        f"({name}:8i bit-interleaved)")
    return Spelling(name, _check_width(int(n), f"protection {text!r}"), interleaved)


@dataclass(frozen=True)
class Words:
    """A register file of ``depth`` registers of ``width`` bits kept as words
    of ``word`` data bits. The file's bits form a row, register 0's in the
    least significant places (register i's Verilog bit v is row bit
    i*width + v), padded with constant-0 bits (no flip-flops) to a whole
    number of words. Bit b of word j is row bit j*word + b (words of bits in
    a row) or, ``interleaved``, row bit b*n_words + j: adjacent bits of the
    file are in different words, so an upset of a few adjacent cells is a
    single upset of each of a few words, which each corrects."""

    width: int
    depth: int
    word: int
    interleaved: bool = False
    kind: str = "secded"  # the code of the words: a key of CODES

    @staticmethod
    def of(ecc: str, width: int, depth: int) -> "Words":
        """The words of a file of ``depth`` registers of ``width`` bits under
        a protection's spelling (:func:`code_word`)."""
        sp = code_word(ecc)
        return Words(width, depth, sp.word or width, sp.interleaved, sp.code)

    @property
    def code(self) -> SecDed | Parity:
        """The code of these words."""
        return CODES[self.kind].of(self.word)

    @property
    def n_words(self) -> int:
        return -(-self.width * self.depth // self.word)

    @property
    def n_bits(self) -> int:
        """Bits of the file (the row without its padding)."""
        return self.width * self.depth

    def position(self, word, bit):
        """The row bit of bit ``bit`` of word ``word`` (vectorised)."""
        word, bit = np.asarray(word, dtype=np.int64), np.asarray(bit, dtype=np.int64)
        return bit * self.n_words + word if self.interleaved else word * self.word + bit

    def place(self, position) -> tuple:
        """(word, bit of the word) of row bits (vectorised): ``position``'s inverse."""
        position = np.asarray(position, dtype=np.int64)
        if self.interleaved:
            return position % self.n_words, position // self.n_words
        return position // self.word, position % self.word

    @cached_property
    def _stored_checks(self) -> tuple:
        code, real = self.code, self.position(np.arange(self.n_words)[:, None], np.arange(self.word)) < self.n_bits
        out = []
        for j in range(self.n_words):
            cover = 0
            for b in np.flatnonzero(real[j]).tolist():
                cover |= code.columns[b]
            out.append(tuple(c for c in range(code.check_bits) if cover >> (code.check_bits - 1 - c) & 1))
        return tuple(out)

    def stored_checks(self, word: int) -> tuple:
        """The check bits word ``word`` stores as flip-flops, as bit c (0 =
        most significant: Verilog bit check_bits-1-c): those that cover at
        least one of its data bits that exist. A check bit over the word's
        padding alone is constant 0: not a flip-flop (synthesis removes the
        register the RTL declares for it, and no upset can reach it)."""
        return self._stored_checks[word]

    @property
    def n_stored_checks(self) -> int:
        """Check flip-flops of the file (all words)."""
        return sum(len(c) for c in self._stored_checks)

    def registers(self, word: int) -> list:
        """The registers word ``word`` holds bits of, in order."""
        rows = self.position(word, np.arange(self.word))
        return sorted(set((rows[rows < self.n_bits] // self.width).tolist()))

    def data(self, values, word: int) -> int:
        """Word ``word``'s data bits from the registers' unsigned values."""
        out = 0
        for b, q in enumerate(self.position(word, np.arange(self.word)).tolist()):
            if q < self.n_bits:
                out |= ((int(values[q // self.width]) >> (q % self.width)) & 1) << b
        return out
