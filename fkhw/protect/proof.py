"""Proof by fault injection that a design of SEC-DED words (fkhw.rtlgen.variant.DesignVariant.secded) works.

:func:`prove_words` upsets, on a level that runs the design (the RTL: its
real decoders), every flip-flop of every code word alone (data and check
bits) and every pair of flip-flops of one word in the same clock. It
requires, as a Hsiao code promises:

* **singles**: no output changes, ``ecc_err_single`` rises and
  ``ecc_err_double`` does not;
* **pairs**: ``ecc_err_double`` rises and ``ecc_err_single`` does not (the
  outputs may change: a double error is detected, not corrected);
* **every frame** starts with both flags low (the previous frame's upsets
  were restored).

    level = RtlLevel(ir, design=generate(ir, DesignVariant.secded("secded:8")))
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

__all__ = ["WordProof", "prove_words", "regfiles_netlist_level", "word_faults"]

FAILURES_SHOWN = 10


@dataclass(frozen=True)
class WordProof:
    """What :func:`prove_words` counted: faults run, and how many broke each requirement."""

    ecc: str  # the design: secded or secded:N
    words: int
    singles: int
    pairs: int
    singles_changed: int  # changed an output
    singles_unflagged: int  # ecc_err_single stayed low
    singles_double: int  # ecc_err_double rose
    pairs_undetected: int  # ecc_err_double stayed low
    pairs_single: int  # ecc_err_single rose (a double error taken for a single one)
    dirty_frames: int  # a flag already up at the frame's first edge
    failures: tuple  # of str: the first few faults that broke a requirement, named

    @property
    def ok(self) -> bool:
        return not (self.singles_changed or self.singles_unflagged or self.singles_double or self.pairs_undetected
                    or self.pairs_single or self.dirty_frames)

    def to_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "failures"},
                "failures": list(self.failures), "ok": self.ok}


def word_faults(space: FlipFlopSpace, pairs: bool = True) -> tuple:
    """(singles, pairs, words): FaultSets at cycle 0 of every flip-flop of
    every code word alone and (``pairs``; else None) of every two flip-flops
    of one word together, and the number of words."""
    if not space.secded:
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


def _named(space: FlipFlopSpace, fs: FaultSet, i: int, what: str) -> str:
    regs = ", ".join(f"{d.register} bit {d.bit}" for d in (space.describe(u.ff) for u in fs.fault(i).upsets))
    return f"{fs.kind} fault {i} ({regs}): {what}"


def prove_words(level, inputs: np.ndarray, pairs: bool = True, progress=None) -> WordProof:
    """Run the proof on ``level`` (an RtlLevel of a design of SEC-DED words:
    ``run_faults_with_flags`` gives its ecc flags) with the window inputs."""
    space = level.space
    singles, doubles, n_words = word_faults(space, pairs)
    gold = level.golden(inputs)
    failures = []
    obs, flags = level.run_faults_with_flags(singles, inputs, progress)
    if flags is None or flags.shape[1] != 4:
        raise ValueError("prove_words: the level records no ecc_err flags (not a design of SEC-DED words)")
    changed = (obs.latent != gold[None]).any(axis=(1, 2)) | obs.lost.any(axis=1) | (obs.extra != 0)
    dirty = flags[:, 0] | flags[:, 1]
    counts = {"singles_changed": changed, "singles_unflagged": ~flags[:, 2], "singles_double": flags[:, 3]}
    for what, bad in counts.items():
        failures += [_named(space, singles, int(i), what.replace("_", " "))
                     for i in np.flatnonzero(bad)[:FAILURES_SHOWN]]
    n_pairs, pair_counts = 0, {"pairs_undetected": np.zeros(0, bool), "pairs_single": np.zeros(0, bool)}
    if doubles is not None:
        _, pflags = level.run_faults_with_flags(doubles, inputs, progress)
        n_pairs = len(doubles)
        dirty = np.concatenate([dirty, pflags[:, 0] | pflags[:, 1]])
        pair_counts = {"pairs_undetected": ~pflags[:, 3], "pairs_single": pflags[:, 2]}
        for what, bad in pair_counts.items():
            failures += [_named(space, doubles, int(i), what.replace("_", " "))
                         for i in np.flatnonzero(bad)[:FAILURES_SHOWN]]
    return WordProof(space.ecc, n_words, len(singles), n_pairs, **{k: int(v.sum()) for k, v in counts.items()},
                     **{k: int(v.sum()) for k, v in pair_counts.items()}, dirty_frames=int(dirty.sum()),
                     failures=tuple(failures))


def regfiles_netlist_level(model, design: RtlDesign, work_dir: Path, jobs: int = 1, cache: Path | None = None,
                           log=None) -> RtlLevel:
    """The RTL level of ``design`` (a design of SEC-DED words of ``model``)
    with its register files replaced by their Yosys + ABC netlist: the area
    table's register-file run (``work_dir``; from the synthesis cache when
    the area table has run). Raises fkhw.rtlgen.netlist.NetlistError when
    synthesis lost a parameter or check flip-flop."""
    path, res = regfile_netlist(design, generate(model), Path(work_dir), cache=cache, log=log)
    netlist = regfile_netlist_design(design, path, {k: res[k] for k in ("cells", "flip_flops", "transistors")})
    level = RtlLevel(model, jobs=jobs, design=netlist, log=log)
    level.name = "regfiles netlist"
    return level
