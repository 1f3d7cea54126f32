"""Which encoder the generator writes for an IR: a value, not flags.

* ``DesignVariant.plain()``: the plain encoder;
* ``DesignVariant.tmr(ids)``: the selectively hardened encoder (same ports
  plus ``tmr_err``): each protected flip-flop (a parameter bit = site id, a
  pipeline data bit or a valid flag, numbered as in fkhw.faults.space) held
  in three flip-flops behind a majority voter, every other bit as in the
  plain design. No ids: the hardened interface with nothing triplicated;
* ``DesignVariant.tmr(ids, refresh=True)``: self-correcting TMR: every clock
  the voted value is written back into the replicas, and ``tmr_err`` is a
  registered flag that stays set until the next configuration write;
* ``DesignVariant.tmrg(ids)``: the input for CERN's TMRG instead,
  functionally the plain design with the plain ports: each register file
  with protected bits becomes a generated module ``fkhw_rfs_<tensor>``
  holding them in ``<tensor>_prot`` and the others in ``<tensor>_unprot``,
  with ``// tmrg`` directives that triplicate only ``<tensor>_prot``
  (parameter bits only);
* ``DesignVariant.code_words(ecc)``: every register file kept as code words
  with their check bits (fkhw.faults.codes; ``ecc``: ``secded`` or
  ``parity``, a word per register, ``secded:N`` / ``parity:N``, N-bit words
  packed across a file's registers, ``:Ni`` bit-interleaved). SEC-DED
  words are corrected by their decoders on the way to the datapath, with
  ``ecc_err_single`` and ``ecc_err_double`` outputs (kind ``secded``);
  parity words pass on as stored, with an ``ecc_err_parity`` output (kind
  ``parity``). ``DesignVariant.secded(ecc)``: the same, for SEC-DED
  spellings only.

The ids are checked against the model when the design is generated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fkhw.faults.codes import CODES, code_word

CODED = tuple(CODES)  # the kinds whose register files are code words: a code per kind, by its name
KINDS = ("plain", "tmr", "tmrg") + CODED


@dataclass(frozen=True)
class DesignVariant:
    kind: str = "plain"  # one of KINDS
    protect: tuple = ()  # protected flip-flop ids, as given (order kept: the metadata lists them so)
    refresh: bool = False  # tmr only
    ecc: str = ""  # secded and parity only: their spelling, e.g. "secded:8i" (fkhw.faults.codes.code_word)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"design variant {self.kind!r}: one of {', '.join(KINDS)}")
        if self.kind in CODED and not self.ecc:
            raise ValueError(f"the {self.kind} encoder takes a code spelling ({self.kind}, {self.kind}:N, "
                             f"{self.kind}:Ni)")
        if self.ecc and self.kind not in CODED:
            raise ValueError(f"the {self.kind} encoder takes no code spelling (only {' and '.join(CODED)} do)")
        if self.ecc and code_word(self.ecc).code != self.kind:
            raise ValueError(f"the {self.kind} encoder takes a {self.kind} spelling, not {self.ecc!r}")
        if self.kind in ("plain",) + CODED and self.protect:
            raise ValueError(f"the {self.kind} encoder protects nothing by id (a code: every register file, by its "
                             "words)")
        if self.refresh and self.kind != "tmr":
            raise ValueError("refresh is an option of the hardened encoder (DesignVariant.tmr), not of "
                             f"{self.kind!r}")

    @staticmethod
    def plain() -> "DesignVariant":
        return DesignVariant()

    @staticmethod
    def tmr(protect, refresh: bool = False) -> "DesignVariant":
        return DesignVariant("tmr", _ids(protect, "the hardened encoder"), bool(refresh))

    @staticmethod
    def secded(ecc: str = "secded") -> "DesignVariant":
        return DesignVariant("secded", ecc=ecc)

    @staticmethod
    def code_words(ecc: str) -> "DesignVariant":
        """The design of code words ``ecc`` spells (``secded:8``, ``parity:16i``, ...)."""
        return DesignVariant(code_word(ecc).code, ecc=ecc)

    @staticmethod
    def tmrg(protect) -> "DesignVariant":
        return DesignVariant("tmrg", _ids(protect, "the TMRG variant"))

    @property
    def hardened(self) -> bool:
        """Replicas, voters and a ``tmr_err`` output in the Verilog."""
        return self.kind == "tmr"

    def split(self, n_sites: int) -> tuple:
        """(protected parameter bits = site ids, protected pipeline data
        bits and valid flags = the other ids), each in the order given."""
        return (tuple(p for p in self.protect if p < n_sites), tuple(p for p in self.protect if p >= n_sites))


def _ids(protect, what: str) -> tuple:
    if protect is None:
        raise ValueError(f"{what} needs the protected flip-flop ids (an empty list protects nothing)")
    arr = np.asarray(list(protect) if not isinstance(protect, np.ndarray) else protect)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"protected sites must be integer site ids, got {arr.dtype}")
    return tuple(int(p) for p in arr.reshape(-1))
