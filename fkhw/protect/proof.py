"""Proof by fault injection that a design of code words (SEC-DED or parity:
fkhw.rtlgen.variant.DesignVariant.code_words) works.

:func:`prove_words` upsets, on a level that runs the design (the RTL: its
real decoders), every flip-flop of every code word alone (data and check
bits) and every pair of flip-flops of one word in the same clock. For each
fault the code's own definition (fkhw.faults.codes: the decoding of the
fault's error pattern) says which flag its decoder raises and whether the
data reaches the datapath intact, and the proof requires exactly that:

* **SEC-DED singles**: no output changes, ``ecc_err_single`` rises and
  ``ecc_err_double`` does not; **pairs**: ``ecc_err_double`` rises and
  ``ecc_err_single`` does not (the outputs may change: a double error is
  detected, not corrected; a pair of check bits changes none);
* **parity singles**: ``ecc_err_parity`` rises (a check bit's changes no
  output); **pairs**: nothing is flagged (an even number of upsets keeps
  the parity: the code's blind spot, measured, not assumed);
* **every frame** starts with every flag low (the previous frame's upsets
  were restored).

    level = RtlLevel(ir, design=generate(ir, DesignVariant.code_words("secded:8")))
    proof = prove_words(level, inputs)
    assert proof.ok, proof.failures

:func:`regfiles_netlist_level` runs the same proof after synthesis: on the
register files' Yosys + ABC netlist (the very one the area table counts),
with the datapath as RTL. Synthesis is where a check bit could be merged
away or a decoder simplified wrongly; the netlist's check flip-flops must
all be there (fkhw.rtlgen.netlist.classify) and the proof must pass on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from fkhw.faults.space import FaultSet, FlipFlopSpace
from fkhw.levels.rtl import RtlLevel
from fkhw.rtlgen.emit import RtlDesign, generate
from fkhw.rtlgen.netlist import regfile_netlist_design
from fkhw.tmr.area import regfile_netlist

__all__ = ["WordProof", "expected_decoding", "prove_words", "regfiles_netlist_level", "word_faults"]

FAILURES_SHOWN = 10


@dataclass(frozen=True)
class WordProof:
    """What :func:`prove_words` counted: faults run, and how many broke each requirement."""

    ecc: str  # the design: secded[:N[i]] or parity[:N[i]]
    words: int
    singles: int
    pairs: int
    singles_changed: int  # changed an output although the code passes the data on intact
    singles_unflagged: int  # a flag the code raises stayed low
    singles_misflagged: int  # a flag the code does not raise rose (SEC-DED: ecc_err_double)
    pairs_changed: int
    pairs_unflagged: int  # SEC-DED: ecc_err_double stayed low
    pairs_misflagged: int  # SEC-DED: ecc_err_single rose (a double error taken for a single one); parity: flagged
    dirty_frames: int  # a flag already up at the frame's first edge
    failures: tuple  # of str: the first few faults that broke a requirement, named

    @property
    def ok(self) -> bool:
        return not any(getattr(self, k) for k in ("singles_changed", "singles_unflagged", "singles_misflagged",
                                                  "pairs_changed", "pairs_unflagged", "pairs_misflagged",
                                                  "dirty_frames"))

    def to_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "failures"},
                "failures": list(self.failures), "ok": self.ok}


def word_faults(space: FlipFlopSpace, pairs: bool = True) -> tuple:
    """(singles, pairs, words): FaultSets at cycle 0 of every flip-flop of
    every code word alone and (``pairs``; else None) of every two flip-flops
    of one word together, and the number of words."""
    if not space.coded:
        raise ValueError("word_faults: the design has no code words")
    words = [w.tolist() for w in space.code_words()]
    ones = np.array([f for w in words for f in w], dtype=np.int64)
    singles = FaultSet.single("word-singles", np.arange(ones.size), ones)
    if not pairs:
        return singles, None, len(words)
    two = np.array([p for w in words for p in combinations(w, 2)], dtype=np.int64).reshape(-1, 2)
    f = two.shape[0]
    doubles = FaultSet("word-pairs", np.arange(f, dtype=np.int64), np.arange(0, 2 * f + 1, 2, dtype=np.int64),
                       two.reshape(-1), np.zeros(2 * f, dtype=np.int64), np.full(f, -1, dtype=np.int64))
    return singles, doubles, len(words)


def expected_decoding(space: FlipFlopSpace, fs: FaultSet) -> tuple:
    """(corrected, uncorrectable, intact), bool arrays over the faults of
    ``fs`` (each upsets flip-flops of one code word in one clock): what the
    word's decoder gives by its code's definition (fkhw.faults.codes:
    ``decode`` of the fault's error pattern): the single-error flag, the
    flag of an error passed on, and whether its data bits pass on intact."""
    if (fs.n_upsets() == 0).any():
        raise ValueError("expected_decoding: a fault without upsets")
    tn, word, d_err, c_err = space.word_errors(fs.ff)
    starts = fs.indptr[:-1]
    f_tn = tn[starts]
    spread = [np.maximum.reduceat(a, starts) != np.minimum.reduceat(a, starts) for a in (tn, word)]
    if (spread[0] | spread[1]).any():
        raise ValueError("expected_decoding: a fault upsets two code words")
    err_d, err_c = np.bitwise_xor.reduceat(d_err, starts), np.bitwise_xor.reduceat(c_err, starts)
    corrected, uncorrectable = np.zeros(len(fs), dtype=bool), np.zeros(len(fs), dtype=bool)
    intact = np.zeros(len(fs), dtype=bool)
    for t in np.unique(f_tn).tolist():
        at = f_tn == t
        dec = space.code_of(t).decode(err_d[at], err_c[at])
        corrected[at], uncorrectable[at], intact[at] = dec.corrected, dec.uncorrectable, dec.data == 0
    return corrected, uncorrectable, intact


def _named(space: FlipFlopSpace, fs: FaultSet, i: int, what: str) -> str:
    regs = ", ".join(f"{d.register} bit {d.bit}" for d in (space.describe(u.ff) for u in fs.fault(i).upsets))
    return f"{fs.kind} fault {i} ({regs}): {what}"


def _check(level, space: FlipFlopSpace, fs: FaultSet, inputs: np.ndarray, gold: np.ndarray, progress) -> tuple:
    """({requirement: bool array of the faults that broke it}, dirty frames) of one FaultSet."""
    obs, flags = level.run_faults_with_flags(fs, inputs, progress)
    if flags is None or flags.shape[1] != 4:
        raise ValueError("prove_words: the level records no ecc_err flags (not a design of code words)")
    corrected, uncorrectable, intact = expected_decoding(space, fs)
    changed = (obs.latent != gold[None]).any(axis=(1, 2)) | obs.lost.any(axis=1) | (obs.extra != 0)
    bad = {"changed": changed & intact,
           "unflagged": (corrected & ~flags[:, 2]) | (uncorrectable & ~flags[:, 3]),
           "misflagged": (~corrected & flags[:, 2]) | (~uncorrectable & flags[:, 3])}
    return bad, int((flags[:, 0] | flags[:, 1]).sum())


def prove_words(level, inputs: np.ndarray, pairs: bool = True, progress=None) -> WordProof:
    """Run the proof on ``level`` (an RtlLevel of a design of code words:
    ``run_faults_with_flags`` gives its ecc flags) with the window inputs."""
    space = level.space
    singles, doubles, n_words = word_faults(space, pairs)
    gold = level.golden(inputs)
    counts, failures, dirty = {}, [], 0
    for name, fs in (("singles", singles), ("pairs", doubles)):
        if fs is None:
            counts.update({f"{name}_{k}": 0 for k in ("changed", "unflagged", "misflagged")})
            continue
        bad, d = _check(level, space, fs, inputs, gold, progress)
        dirty += d
        for what, hit in bad.items():
            counts[f"{name}_{what}"] = int(hit.sum())
            failures += [_named(space, fs, int(i), f"{name[:-1]} {what}") for i in np.flatnonzero(hit)[:FAILURES_SHOWN]]
    return WordProof(space.ecc, n_words, len(singles), 0 if doubles is None else len(doubles), **counts,
                     dirty_frames=dirty, failures=tuple(failures))


def regfiles_netlist_level(model, design: RtlDesign, work_dir: Path, jobs: int = 1, cache: Path | None = None,
                           log=None) -> RtlLevel:
    """The RTL level of ``design`` (a design of code words of ``model``)
    with its register files replaced by their Yosys + ABC netlist: the area
    table's register-file run (``work_dir``; from the synthesis cache when
    the area table has run). Raises fkhw.rtlgen.netlist.NetlistError when
    synthesis lost a parameter or check flip-flop."""
    path, res = regfile_netlist(design, generate(model), Path(work_dir), cache=cache, log=log)
    netlist = regfile_netlist_design(design, path, {k: res[k] for k in ("cells", "flip_flops", "transistors")})
    level = RtlLevel(model, jobs=jobs, design=netlist, log=log)
    level.name = "regfiles netlist"
    return level
