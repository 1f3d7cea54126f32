"""Faults as data: the flip-flop space of an encoder and the faults every level runs.

**Flip-flops.** Every flip-flop of the generated encoder has one stable id:

* ``param``    ids 0 .. n_sites-1: the parameter bits, id = fkhw site id
  (fkhw.faults.sites: tensor offset + index * bits + bit, bit 0 = MSB);
* ``pipeline`` then the data registers of the pipeline stages, stage by
  stage, element by element (only the elements the next layer reads: the
  others are removed by synthesis), bit 0 = MSB of the element's code;
* ``control``  then the valid flag of each stage, stage 0 first, and in a
  self-correcting (refresh) hardened design the sticky ``tmr_err`` flag;
* ``replica``  for a hardened design, replicas B and C of each protected
  flip-flop, in ascending id order (replica A is the flip-flop itself). A
  protected flip-flop is a parameter bit, a pipeline data bit or a valid
  flag; parameter ids come first, so a design protecting only parameters
  has the same ids as when "protected" meant parameter sites.
* ``check``    for a design whose parameter registers are kept as code
  words (``ecc``: ``secded`` or ``parity``, a word per register;
  ``secded:N`` / ``parity:N``, N-bit words packed across the registers of a
  file, ``:Ni`` bit-interleaved: fkhw.faults.codes.Words),
  the check bits of each word, tensor by tensor, word by word, bit 0 = the
  most significant check bit (Verilog bit r-1 of ``mem_chk[j]``). Its
  parameter, pipeline and control ids are the plain design's.

The count equals Yosys' flip-flop count of the same RTL
(``meta["flip_flops_expected"]``, checked against the netlist in the tests).

**Timing.** A frame streams the N campaign inputs ("window vectors") at one
per clock. Cycle ``c`` means: right after rising edge ``c``, where edge 0 is
the one that samples window vector 0 into stage 0. After edge ``c`` the
register of stage ``k`` holds *slot* ``c - k`` (slot v = window vector v;
slots N .. N+latency-1 are the empty drain after the window). So:

* an upset of a pipeline or control flip-flop of stage ``k`` at cycle ``c``
  hits slot ``c - k`` for one clock (the register reloads at the next edge);
* an upset of a parameter of a MAC layer fed by stage ``k`` at cycle ``c``
  is seen by every slot ``v`` with ``c - k <= v`` until the scrub: with
  ``scrub = s`` by the slots ``v < s - k`` only. ``scrub=None``: the upset
  stays for the whole frame (the scrub interval is far longer than a frame).

**Outcome of a fault** (:class:`Observed`): the output codes of the N window
slots, ``lost`` where a slot's valid flag was cleared (its data still leaves
the last register: it is recorded and compared, but a consumer drops it),
and ``extra``: valid outputs in the drain slots, where none is expected.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from fkhw.errors import InputError
from fkhw.faults.codes import Parity, SecDed, Words, code_word
from fkhw.model.fixed import FixedFormat
from fkhw.model.ir import IntegerModel
from fkhw.outpaths import atomic_open
from fkhw.model.stages import Layout
from fkhw.faults.sites import SiteSpace
from fkhw.validate import array, fields, integer, integer_text, json_document

CLASSES = ("param", "pipeline", "control", "replica", "check")
FAULTS_COLUMNS = ["fault", "upsets", "scrub"]  # the faults file (CSV); extra columns are kept but not read


class FaultError(InputError):
    """A fault, fault kind or faults file that does not fit the model or the frame."""


# --- the flip-flop space -----------------------------------------------------


@dataclass(frozen=True)
class Hardening:
    """Which design a campaign upsets: the flip-flops a selective-TMR map
    triplicates (flip-flop ids, ascending: parameter bits = site ids, then
    any pipeline data bits and valid flags) and whether the replicas refresh
    (self-correcting TMR); or, ``Hardening.code_words(ecc)``, every parameter register
    file kept as code words (``ecc``: SEC-DED or parity). No Hardening: the plain encoder."""

    protect: tuple
    refresh: bool = False
    source: str = ""  # where the sites came from (a tmr_map.json), for the summary
    ecc: str = ""  # "secded[:N[i]]" or "parity[:N[i]]" (fkhw.faults.codes.code_word): no triplicated bits

    def __post_init__(self):
        if self.ecc and (self.protect or self.refresh):
            raise FaultError("a design of code words triplicates nothing: no protected flip-flops, no refresh")
        if self.ecc:
            code_word(self.ecc)

    @staticmethod
    def code_words(ecc: str) -> "Hardening":
        """Every parameter register file kept as code words (DesignVariant.code_words)."""
        return Hardening((), False, ecc, ecc)

    def to_dict(self) -> dict:
        if self.ecc:
            return {"protection": self.ecc, "digest": self.digest()}
        return {"protected_bits": len(self.protect), "refresh": self.refresh, "tmr_map": self.source,
                "digest": self.digest()}

    def space(self, model: IntegerModel) -> "FlipFlopSpace":
        """The flip-flops of this design of ``model``."""
        if self.ecc:
            return FlipFlopSpace.of(model, ecc=self.ecc)
        return FlipFlopSpace.of(model, self.protect, self.refresh)

    def sites(self, n_sites: int) -> tuple:
        """The protected parameter bits (site ids)."""
        return tuple(p for p in self.protect if p < n_sites)

    def digest(self) -> str:
        import hashlib

        what = [list(self.protect), self.refresh] + ([self.ecc] if self.ecc else [])
        return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Stage:
    """One pipeline stage of the generated encoder (fkhw.model.stages) and its flip-flop ids."""

    stage: int
    layer_pos: int  # holds the activation entering IR layer layer_pos (len(layers): the output)
    width: int  # bits per element
    signed: bool
    used: tuple  # element indices held in flip-flops (read by the next layer)
    first_id: int  # flip-flop id of (used[0], bit 0)

    @property
    def n_ff(self) -> int:
        return len(self.used) * self.width

    def fmt(self) -> FixedFormat:
        return FixedFormat.make(self.width, 0, self.signed)


@dataclass(frozen=True)
class FlipFlop:
    """One flip-flop: its id, class and where it sits."""

    ff: int
    cls: str  # one of CLASSES
    register: str  # readable register name: conv.kernel[17], s1_data[5], s1_valid, conv.kernel[17].b
    bit: int  # 0 = MSB of the register word (params, pipeline elements); 0 for a valid flag
    site: int | None  # the parameter bit (param, replica)
    stage: int | None  # pipeline, control


@dataclass(frozen=True, eq=False)
class FlipFlopSpace:
    """All flip-flops of an encoder (plain, or hardened with ``protected`` sites)."""

    sites: SiteSpace
    stages: tuple  # of Stage
    protected: tuple  # protected flip-flop ids, ascending (hardened design), else ()
    n_pipeline: int
    latency: int
    refresh: bool = False  # self-correcting TMR: replicas reload the voted value every clock
    ecc: str = ""  # "secded[:N[i]]" or "parity[:N[i]]": the registers kept as code words (fkhw.faults.codes); "": plain

    @staticmethod
    def of(model: IntegerModel, protect=None, refresh: bool = False, ecc: str = "") -> "FlipFlopSpace":
        """The flip-flops of the encoder fkhw generates for ``model`` (its
        stage layout, fkhw.model.stages); ``protect``: the flip-flop ids a
        hardened design triplicates (parameter bits, pipeline data bits,
        valid flags); ``refresh``: the self-correcting variant of that design;
        ``ecc``: the design whose registers are code words (SEC-DED or parity).
        Raises RtlUnsupported for a model the generator cannot build."""
        stages = [(s.stage, s.layer_pos, s.width, s.signed, s.used) for s in Layout.of(model).stages]
        return FlipFlopSpace._build(model, stages, protect, refresh, ecc)

    @staticmethod
    def from_meta(model: IntegerModel, meta: dict, protect=None, refresh: bool = False) -> "FlipFlopSpace":
        """The flip-flops of a generated design, from its metadata (a
        synthesised netlist's design has no IR-only twin to ask)."""
        stages = [(s["stage"], s["layer_pos"], s["width"], s["signed"], s["used_elements"]) for s in meta["stages"]]
        return FlipFlopSpace._build(model, stages, protect, refresh, meta.get("ecc", {}).get("protection", ""))

    @staticmethod
    def _build(model: IntegerModel, stage_rows: list, protect, refresh: bool, ecc: str) -> "FlipFlopSpace":
        sites = SiteSpace.of(model)
        stages, next_id = [], sites.n_sites
        for stage, layer_pos, width, signed, used in stage_rows:
            st = Stage(int(stage), int(layer_pos), int(width), bool(signed), tuple(int(e) for e in used), next_id)
            stages.append(st)
            next_id += st.n_ff
        if refresh and protect is None:
            raise FaultError("refresh is an option of a hardened design: give the protected sites")
        if ecc and protect is not None:
            raise FaultError("a design is either code words or triplicated bits, not both (yet)")
        if ecc:
            code_word(ecc)  # a spelling it knows, or CodeError naming it
        prot = () if protect is None else protectable(sites.n_sites, next_id + len(stages), protect)
        return FlipFlopSpace(sites, tuple(stages), prot, next_id - sites.n_sites, len(stages), bool(refresh),
                             str(ecc))

    def plain(self) -> "FlipFlopSpace":
        """The same design without check bits (a design of code words: its datapath, the same ids)."""
        return FlipFlopSpace(self.sites, self.stages, self.protected, self.n_pipeline, self.latency, self.refresh)

    # --- check bits (a design of code words)
    @property
    def coded(self) -> bool:
        """The registers are code words with check bits (SEC-DED or parity)."""
        return bool(self.ecc)

    @cached_property
    def _check_layout(self) -> tuple:
        """(Words per tensor, code per tensor, the first check id of each
        (tensor, word), and per check flip-flop its tensor, word and check
        bit), empty without check bits. A word's check flip-flops are the
        check bits it stores (fkhw.faults.codes.Words.stored_checks), in
        order, most significant first."""
        if not self.ecc:
            return (), (), {}, np.zeros((3, 0), dtype=np.int64)
        words = tuple(Words.of(self.ecc, t.fmt.bits, t.size) for t in self.sites.tensors)
        firsts, rows, at = {}, [], self.first_check
        for tn, w in enumerate(words):
            for j in range(w.n_words):
                firsts[tn, j] = at
                rows += [(tn, j, c) for c in w.stored_checks(j)]
                at += len(w.stored_checks(j))
        return words, tuple(w.code for w in words), firsts, np.array(rows, dtype=np.int64).reshape(-1, 3).T

    def words_of(self, tensor: int) -> Words:
        """How tensor ``tensor``'s register file is cut into code words."""
        return self._check_layout[0][tensor]

    def code_of(self, tensor: int) -> SecDed | Parity:
        """The code of tensor ``tensor``'s words."""
        return self._check_layout[1][tensor]

    @property
    def first_check(self) -> int:
        return self.first_replica + 2 * len(self.protected)

    @property
    def n_check(self) -> int:
        return int(self._check_layout[3].shape[1])

    def check_location(self, ffs) -> tuple:
        """(tensor, word, check bit c: 0 = most significant) of check flip-flops (vectorised)."""
        ffs = np.asarray(ffs, dtype=np.int64)
        if not self.ecc:
            raise FaultError("this design has no check bits")
        tn, word, c = self._check_layout[3]
        rel = ffs - self.first_check
        return tn[rel], word[rel], c[rel]

    def check_ids(self, tensor: int, word: int) -> np.ndarray:
        """The check flip-flops of word ``word`` of a tensor, most significant check bit first."""
        return self._check_layout[2][tensor, word] + np.arange(len(self.words_of(tensor).stored_checks(word)))

    def word_place(self, sites) -> tuple:
        """(tensor, word, bit of the word: 0 = least significant) of parameter bits (vectorised)."""
        tn, idx, bit = self.sites.locate(np.asarray(sites, dtype=np.int64))
        word, place = np.zeros_like(tn), np.zeros_like(tn)
        for k in np.unique(tn).tolist():
            at, w = tn == k, self.words_of(k)
            word[at], place[at] = w.place(idx[at] * w.width + (w.width - 1 - bit[at]))
        return tn, word, place

    def word_sites(self, tensor: int, word: int) -> dict:
        """{bit of the word: site} of word ``word`` of a tensor (the bits that exist)."""
        t, w = self.sites.tensors[tensor], self.words_of(tensor)
        out = {}
        for p, q in enumerate(w.position(word, np.arange(w.word)).tolist()):
            if q < w.n_bits:
                out[p] = t.offset + (q // w.width) * w.width + (w.width - 1 - q % w.width)
        return out

    def code_words(self) -> list:
        """The flip-flops of every code word (its data sites, then its check
        bits), tensor by tensor, word by word, as arrays."""
        return [np.array(list(self.word_sites(tn, j).values()) + self.check_ids(tn, j).tolist(), dtype=np.int64)
                for tn in range(len(self.sites.tensors)) for j in range(self.words_of(tn).n_words)]

    def word_errors(self, ffs) -> tuple:
        """(tensor, word, data error, check error) of flip-flops of code
        words (vectorised): the word each belongs to and the bit its upset
        inverts in the word's error pattern, as its code's ``decode`` reads
        it: a data bit's in the data mask (bit 0 = the word's least
        significant), a check bit's in the check mask (check bit c, 0 = most
        significant, is bit check_bits-1-c), the other mask 0 (uint64)."""
        ffs = np.asarray(ffs, dtype=np.int64).reshape(-1)
        tn = self.register_tensor(ffs)
        if (tn < 0).any():
            raise FaultError(f"flip-flop(s) {ffs[tn < 0][:5].tolist()} are in no code word")
        data = ffs < self.sites.n_sites
        word, bit = np.zeros_like(ffs), np.zeros_like(ffs)
        if data.any():
            _, word[data], bit[data] = self.word_place(ffs[data])
        if (~data).any():
            _, word[~data], c = self.check_location(ffs[~data])
            r = np.array([self.code_of(t).check_bits for t in range(len(self.sites.tensors))], dtype=np.int64)
            bit[~data] = r[tn[~data]] - 1 - c
        mask = np.uint64(1) << bit.astype(np.uint64)
        zero = np.uint64(0)
        return tn, word, np.where(data, mask, zero), np.where(data, zero, mask)

    def register_tensor(self, ffs) -> np.ndarray:
        """The tensor whose register holds each flip-flop: a parameter bit's,
        its replicas', a check bit's; -1 for a pipeline or control flip-flop
        (or one of their replicas). Vectorised."""
        ffs = np.asarray(ffs, dtype=np.int64)
        base = self.base(ffs)
        out = np.full(ffs.shape, -1, dtype=np.int64)
        par = base < self.sites.n_sites
        if par.any():
            out[par] = self.sites.locate(base[par])[0]
        chk = ffs >= self.first_check
        if chk.any():
            out[chk] = self.check_location(ffs[chk])[0]
        return out


    # --- id ranges
    @property
    def protected_sites(self) -> tuple:
        """The protected parameter bits (site ids)."""
        return tuple(p for p in self.protected if p < self.sites.n_sites)

    @property
    def protected_transients(self) -> tuple:
        """The protected pipeline data bits and valid flags (flip-flop ids)."""
        return tuple(p for p in self.protected if p >= self.sites.n_sites)

    def base(self, ffs) -> np.ndarray:
        """The flip-flop each id stands for: a replica's protected flip-flop
        (replica A), any other id itself (vectorised)."""
        ffs = np.asarray(ffs, dtype=np.int64)
        rep = (ffs >= self.first_replica) & (ffs < self.first_check)
        if not rep.any():
            return ffs.copy()
        out = ffs.copy()
        out[rep] = np.asarray(self.protected, dtype=np.int64)[(ffs[rep] - self.first_replica) // 2]
        return out

    @property
    def first_control(self) -> int:
        return self.sites.n_sites + self.n_pipeline

    @property
    def n_control(self) -> int:
        return self.latency + int(self.refresh)

    @property
    def tmr_err_flag(self) -> int | None:
        """The id of the sticky tmr_err flip-flop (refresh designs), else None."""
        return self.first_control + self.latency if self.refresh else None

    @property
    def first_replica(self) -> int:
        return self.first_control + self.n_control

    @property
    def n_ff(self) -> int:
        return self.first_check + self.n_check

    def counts(self) -> dict:
        return {"param": self.sites.n_sites, "pipeline": self.n_pipeline, "control": self.n_control,
                "replica": 2 * len(self.protected), **({"check": self.n_check} if self.coded else {})}

    def check(self, ffs) -> np.ndarray:
        ffs = np.asarray(ffs, dtype=np.int64).reshape(-1)
        bad = ffs[(ffs < 0) | (ffs >= self.n_ff)]
        if bad.size:
            raise FaultError(f"flip-flop id(s) {bad[:5].tolist()} do not exist: this design has flip-flops "
                             f"0..{self.n_ff - 1}")
        return ffs

    def classes(self, ffs) -> np.ndarray:
        """Class name of each flip-flop id (vectorised)."""
        ffs = self.check(ffs)
        edges = [self.sites.n_sites, self.first_control, self.first_replica, self.first_check]
        return np.array(CLASSES, dtype=object)[np.searchsorted(edges, ffs, side="right")]

    def stage_of(self, ff: int) -> Stage:
        """The stage of a pipeline data or valid flip-flop."""
        if self.first_control <= ff < self.first_control + self.latency:
            return self.stages[ff - self.first_control]
        for st in self.stages:
            if st.first_id <= ff < st.first_id + st.n_ff:
                return st
        raise FaultError(f"flip-flop {ff} is not a pipeline or control flip-flop")

    def stage_numbers(self, ffs) -> np.ndarray:
        """The stage of each pipeline data or valid flip-flop (:meth:`stage_of`
        vectorised); 0 for any other flip-flop."""
        ffs = np.asarray(ffs, dtype=np.int64)
        out = np.zeros(ffs.shape, dtype=np.int64)
        for st in self.stages:
            out[(ffs >= st.first_id) & (ffs < st.first_id + st.n_ff)] = st.stage
            out[ffs == self.first_control + st.stage] = st.stage
        return out

    def mac_stage(self, layer_pos: int) -> int:
        """The stage whose register feeds MAC layer ``layer_pos``."""
        for st in self.stages:
            if st.layer_pos == layer_pos:
                return st.stage
        raise FaultError(f"layer {layer_pos} is not fed by a pipeline stage")

    @cached_property
    def tensor_stages(self) -> np.ndarray:
        """(n_tensors,) the stage whose register feeds the layer of each
        parameter tensor (an upset of it reaches the datapath that many
        clocks after the input it first changes entered)."""
        return np.array([self.mac_stage(t.layer_pos) for t in self.sites.tensors], dtype=np.int64)

    def describe(self, ff: int) -> FlipFlop:
        ff = int(self.check([ff])[0])
        if ff < self.sites.n_sites:
            s = self.sites.describe(ff)
            return FlipFlop(ff, "param", f"{s.layer}.{s.tensor}[{s.index}]", s.bit, ff, None)
        if ff < self.first_control:
            st = self.stage_of(ff)
            rel = ff - st.first_id
            return FlipFlop(ff, "pipeline", f"s{st.stage}_data[{st.used[rel // st.width]}]", rel % st.width,
                            None, st.stage)
        if ff == self.tmr_err_flag:
            return FlipFlop(ff, "control", "tmr_err", 0, None, None)
        if ff < self.first_replica:
            k = ff - self.first_control
            return FlipFlop(ff, "control", f"s{k}_valid", 0, None, k)
        if ff >= self.first_check:
            tn, idx, j = (int(v) for v in self.check_location(ff))
            t = self.sites.tensors[tn]
            return FlipFlop(ff, "check", f"{t.layer}.{t.tensor}.chk[{idx}]", j, None, None)
        rel = ff - self.first_replica
        of = self.describe(self.protected[rel // 2])
        return FlipFlop(ff, "replica", f"{of.register}.{'bc'[rel % 2]}", of.bit, of.site, of.stage)

    def pipeline_location(self, ff: int) -> tuple:
        """(stage, element, bit) of a pipeline data flip-flop (bit 0 = MSB)."""
        st = self.stage_of(ff)
        rel = ff - st.first_id
        return st, st.used[rel // st.width], rel % st.width

    def replica_site(self, ff: int) -> tuple:
        """(protected flip-flop, replica letter 'b' or 'c') of a replica
        flip-flop (the protected flip-flop is a site id for a parameter bit)."""
        rel = ff - self.first_replica
        return self.protected[rel // 2], "bc"[rel % 2]

    def table(self) -> dict:
        """Columns ff, class, register, bit, site, stage of every flip-flop."""
        rows = [self.describe(i) for i in range(self.n_ff)]
        return {"ff": [r.ff for r in rows], "class": [r.cls for r in rows], "register": [r.register for r in rows],
                "bit": [r.bit for r in rows], "site": ["" if r.site is None else r.site for r in rows],
                "stage": ["" if r.stage is None else r.stage for r in rows]}


# --- faults ------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Upset:
    """One flip-flop inverted right after rising edge ``cycle`` of the frame."""

    ff: int
    cycle: int = 0


@dataclass(frozen=True)
class Fault:
    """One or more upsets present in one frame, and the cycle of the scrub
    that restores the parameter flip-flops (None: not within the frame)."""

    upsets: tuple  # of Upset, sorted
    scrub: int | None = None

    def key(self) -> str:
        """The faults-file spelling: ``ff@cycle;ff@cycle``."""
        return ";".join(f"{u.ff}@{u.cycle}" for u in self.upsets)


@dataclass(frozen=True, eq=False)
class FaultSet:
    """Faults with stable ids, held as arrays (CSR over upsets) so that
    levels run them vectorised; ``fault(i)`` gives one as a value."""

    kind: str
    ids: np.ndarray  # (F,) stable fault ids (seu: the site id)
    indptr: np.ndarray  # (F+1,) upsets of fault i: [indptr[i], indptr[i+1])
    ff: np.ndarray  # (U,)
    cycle: np.ndarray  # (U,)
    scrub: np.ndarray  # (F,) cycle, -1: none

    def __len__(self) -> int:
        return int(self.ids.size)

    @staticmethod
    def of(kind: str, ids, faults) -> "FaultSet":
        faults = list(faults)
        lens = np.array([len(f.upsets) for f in faults], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        ff = np.array([u.ff for f in faults for u in f.upsets], dtype=np.int64)
        cyc = np.array([u.cycle for f in faults for u in f.upsets], dtype=np.int64)
        scrub = np.array([-1 if f.scrub is None else f.scrub for f in faults], dtype=np.int64)
        return FaultSet(kind, np.asarray(ids, dtype=np.int64).reshape(-1), indptr, ff, cyc, scrub)

    @staticmethod
    def single(kind: str, ids, ffs, cycle: int = 0) -> "FaultSet":
        """One upset per fault, all at ``cycle``."""
        ffs = np.asarray(ffs, dtype=np.int64).reshape(-1)
        return FaultSet(kind, np.asarray(ids, dtype=np.int64).reshape(-1), np.arange(ffs.size + 1, dtype=np.int64),
                        ffs, np.full(ffs.size, cycle, dtype=np.int64), np.full(ffs.size, -1, dtype=np.int64))

    def fault(self, i: int) -> Fault:
        sl = slice(self.indptr[i], self.indptr[i + 1])
        ups = tuple(sorted(Upset(int(f), int(c)) for f, c in zip(self.ff[sl], self.cycle[sl])))
        return Fault(ups, None if self.scrub[i] < 0 else int(self.scrub[i]))

    def faults(self):
        return (self.fault(i) for i in range(len(self)))

    def take(self, positions) -> "FaultSet":
        """The faults at ``positions`` (in that order)."""
        return FaultSet.of(self.kind, self.ids[np.asarray(positions, dtype=np.int64)],
                           [self.fault(int(i)) for i in np.asarray(positions).reshape(-1)])

    def n_upsets(self) -> np.ndarray:
        return np.diff(self.indptr)

    def owners(self) -> np.ndarray:
        """(U,) the position of the fault each upset belongs to."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.n_upsets())

    def single_param_sites(self, n_sites: int) -> np.ndarray | None:
        """The site of each fault when every fault is one upset of a parameter
        bit (id < ``n_sites``) at cycle 0 with no scrub (today's SEU
        campaign), else None."""
        if ((self.n_upsets() == 1).all() and (self.cycle == 0).all() and (self.scrub < 0).all()
                and (self.ff < n_sites).all()):
            return self.ff
        return None


def check_fault_set(fs: FaultSet, space: FlipFlopSpace, n_vectors: int) -> None:
    """Every upset names a flip-flop of the design at a cycle inside the frame
    (one whose effect the frame records), and every scrub inside the frame;
    raises FaultError naming the fault."""
    owner = fs.owners()
    ghost = np.flatnonzero((fs.ff < 0) | (fs.ff >= space.n_ff))
    if ghost.size:
        u = int(ghost[0])
        raise FaultError(f"flip-flop id(s) {fs.ff[ghost][:5].tolist()} of fault {int(fs.ids[owner[u]])} do not "
                         f"exist: this design has flip-flops 0..{space.n_ff - 1}")
    lo, hi = cycle_bounds(space, fs.ff, n_vectors)
    bad = np.flatnonzero((fs.cycle < lo) | (fs.cycle >= hi))
    if bad.size:
        u = int(bad[0])
        raise FaultError(f"fault {int(fs.ids[owner[u]])}: upset of flip-flop {int(fs.ff[u])} at cycle "
                         f"{int(fs.cycle[u])} is outside the frame (cycles {int(lo[u])}..{int(hi[u]) - 1} for this "
                         f"flip-flop with {n_vectors} inputs)")
    last = space.latency - 1 + n_vectors + space.latency - 1  # the last cycle of the frame (of the last stage)
    late_scrub = np.flatnonzero(fs.scrub > last)
    if late_scrub.size:
        i = int(late_scrub[0])
        raise FaultError(f"fault {int(fs.ids[i])}: scrub at cycle {int(fs.scrub[i])} is outside the frame (cycles "
                         f"0..{last} with {n_vectors} inputs; leave the scrub empty for none within the frame)")
    # a parameter upset after its fault's scrub would stay until the next scrub, beyond the frame
    late = np.flatnonzero((fs.scrub[owner] >= 0) & (fs.cycle > fs.scrub[owner])
                          & np.isin(space.classes(fs.ff), ("param", "replica", "check")))
    if late.size:
        u = int(late[0])
        raise FaultError(f"fault {int(fs.ids[owner[u]])}: upset of parameter flip-flop {int(fs.ff[u])} at cycle "
                         f"{int(fs.cycle[u])} comes after the scrub at cycle {int(fs.scrub[owner[u]])}")
    for i in range(len(fs)):
        sl = slice(fs.indptr[i], fs.indptr[i + 1])
        pairs = set(zip(fs.ff[sl].tolist(), fs.cycle[sl].tolist()))
        if len(pairs) != fs.indptr[i + 1] - fs.indptr[i]:
            raise FaultError(f"fault {int(fs.ids[i])}: the same upset is listed twice")
        if fs.indptr[i + 1] == fs.indptr[i]:
            raise FaultError(f"fault {int(fs.ids[i])}: no upsets")
    if len(np.unique(fs.ids)) != len(fs):
        raise FaultError("fault ids must be unique")


def protectable(n_sites: int, n_protectable: int, protect) -> tuple:
    """``protect`` as sorted flip-flop ids a hardened design can triplicate:
    parameter bits (site ids), pipeline data bits and valid flags, i.e. ids
    below ``n_protectable`` (not the sticky tmr_err flag, not replicas)."""
    arr = np.asarray(list(protect) if not isinstance(protect, np.ndarray) else protect)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise FaultError(f"protected flip-flops must be integer ids, got {arr.dtype}")
    arr = arr.astype(np.int64).reshape(-1)
    bad = arr[(arr < 0) | (arr >= n_protectable)]
    if bad.size:
        raise FaultError(f"protected flip-flop id(s) {bad[:5].tolist()} cannot be triplicated: this design's "
                         f"parameter, pipeline and valid flip-flops are 0..{n_protectable - 1}")
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise FaultError(f"protected flip-flop id(s) listed twice: {uniq[counts > 1][:5].tolist()}")
    return tuple(int(p) for p in uniq)


def cycle_bounds(space: FlipFlopSpace, ffs: np.ndarray, n_vectors: int) -> tuple:
    """[lo, hi) of the cycles at which an upset of each flip-flop is inside
    the frame: its effect lands on a recorded slot (window or drain)."""
    ffs = space.base(ffs)  # a replica of a pipeline or valid flip-flop: its stage's bounds
    n_slots = n_vectors + space.latency
    stage = space.stage_numbers(ffs)
    return stage, stage + n_slots


# --- what a fault did ----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Observed:
    """Outputs of a set of faults over the N window slots."""

    latent: np.ndarray  # (F, N, n_out) output codes of each window slot
    lost: np.ndarray  # (F, N) bool: the slot left without its valid flag
    extra: np.ndarray  # (F,) int: valid outputs in drain slots

    @staticmethod
    def clean(latent: np.ndarray) -> "Observed":
        """Outputs of parameter faults: nothing lost, nothing extra."""
        f, n = latent.shape[:2]
        return Observed(latent, np.zeros((f, n), dtype=bool), np.zeros(f, dtype=np.int64))

    def mismatches(self, other: "Observed") -> np.ndarray:
        """(F,) bool: faults whose outcome differs between two levels."""
        return ((self.latent != other.latent).any(axis=2).any(axis=1) | (self.lost != other.lost).any(axis=1)
                | (self.extra != other.extra))


TOUCHED_ROWS = 1 << 16  # parameter upsets whose touched slots are formed at once


def touched(fs: FaultSet, space: FlipFlopSpace, n_vectors: int) -> np.ndarray:
    """(F, N) bool: the window slots each fault can change (the vectors its
    damage is measured on): a parameter upset every slot from its cycle
    (minus its stage) to the scrub; a pipeline or control upset one slot."""
    out = np.zeros((len(fs), n_vectors), dtype=bool)
    ff, cycle = space.check(fs.ff), np.asarray(fs.cycle, dtype=np.int64)
    owner = fs.owners()
    if space.tmr_err_flag is not None:  # a false alarm: no output depends on it
        there = ff != space.tmr_err_flag
        ff, cycle, owner = ff[there], cycle[there], owner[there]
    tn = space.register_tensor(ff)
    # a register of parameters (its bits, their replicas, its check bits): from its stage's cycle to the scrub
    reg = tn >= 0
    v, rows = np.arange(n_vectors), np.flatnonzero(reg)
    for lo in range(0, rows.size, TOUCHED_ROWS):  # bounded memory: rows of N slots at a time
        sel = rows[lo:lo + TOUCHED_ROWS]
        k, scrub = space.tensor_stages[tn[sel]], fs.scrub[owner[sel]]
        end = np.where(scrub < 0, n_vectors, scrub - k)
        np.logical_or.at(out, owner[sel], (v[None, :] >= (cycle[sel] - k)[:, None]) & (v[None, :] < end[:, None]))
    # a pipeline data or valid flip-flop: the one slot passing its stage at that cycle
    other = np.flatnonzero(~reg)
    slot = cycle[other] - space.stage_numbers(space.base(ff[other]))
    hit = (slot >= 0) & (slot < n_vectors)
    out[owner[other][hit], slot[hit]] = True
    return out


# --- faults files -------------------------------------------------------------

_UPSET = re.compile(r"^\s*([0-9]+)\s*(?:@\s*([+-]?[0-9]+))?\s*$")
FAULT_FIELDS = ("fault", "scrub")  # a JSON fault's optional fields beside "upsets"


def parse_upsets(text: str, where: str) -> tuple:
    """``FLIPFLOP@CYCLE;...`` of a faults CSV cell (``where``: file, row and column)."""
    ups = []
    for j, part in enumerate(str(text).split(";")):
        m = _UPSET.match(part)
        if not m:
            raise FaultError(f"{where}: {part.strip()!r} is not an upset: write FLIPFLOP or FLIPFLOP@CYCLE, "
                             "several separated by ';'")
        try:
            ups.append(Upset(integer(int(m.group(1)), f"{where} upset {j} flip-flop", 0),
                             integer(int(m.group(2) or 0), f"{where} upset {j} cycle")))
        except InputError as e:
            raise FaultError(str(e)) from None
    return tuple(sorted(ups))


def _json_fault(it, where: str, position: int) -> tuple:
    """(id, Fault) of one entry of a JSON faults file."""
    fields(it, where, ("upsets",), FAULT_FIELDS)
    ups = []
    for j, u in enumerate(array(it["upsets"], f"{where} upsets")):
        at = f"{where} upsets[{j}]"
        if not isinstance(u, list) or not 1 <= len(u) <= 2:
            raise InputError(f"{at}: an upset is [flip-flop] or [flip-flop, cycle]")
        ups.append(Upset(integer(u[0], f"{at} flip-flop", 0),
                         integer(u[1], f"{at} cycle") if len(u) > 1 else 0))
    fid = integer(it["fault"], f"{where} fault", 0) if "fault" in it else position
    scrub = None if it.get("scrub") is None else integer(it["scrub"], f"{where} scrub", 0)
    return fid, Fault(tuple(sorted(ups)), scrub)


def _csv_fault(r: dict, where: str, position: int) -> tuple:
    """(id, Fault) of one row of a faults CSV (extra columns are not read)."""
    if None in r or r.get("upsets") in (None, ""):
        raise InputError(f"{where}: cut short, too many cells or no upsets")
    fid = position if r.get("fault") in (None, "") else integer_text(r["fault"], f"{where} column fault", 0)
    scrub = r.get("scrub")
    scrub = None if scrub in (None, "") else integer_text(scrub, f"{where} column scrub", 0)
    return fid, Fault(parse_upsets(r["upsets"], f"{where} column upsets"), scrub)


def read_faults_file(path: Path) -> FaultSet:
    """Faults from a CSV (columns ``fault``, ``upsets`` = ``ff@cycle;ff@cycle``,
    optional ``scrub``) or a JSON list of ``{"fault": id, "upsets": [[ff, cycle],
    ...], "scrub": cycle or null}`` (``fault`` optional: the position).
    Every value is an integer of int64 (fkhw.validate), ids, flip-flops and
    scrubs non-negative; flip-flops and cycles are checked against a design
    by check_fault_set."""
    path = Path(path)
    if not path.is_file():
        raise FaultError(f"{path}: no such faults file")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise FaultError(f"{path}: a binary file, not a CSV or JSON list of faults") from None
    try:
        if path.suffix.lower() == ".json":
            items = json_document(text, str(path))
            if not isinstance(items, list):
                raise FaultError(f"{path}: expected a JSON list of faults")
            parsed = [_json_fault(it, f"{path} entry {k}", k) for k, it in enumerate(items)]
        else:
            rows = list(csv.DictReader(text.splitlines()))
            if not rows or "upsets" not in rows[0]:
                raise FaultError(f"{path}: expected a CSV with columns {', '.join(FAULTS_COLUMNS)}")
            parsed = [_csv_fault(r, f"{path} row {k + 2}", k) for k, r in enumerate(rows)]
    except (InputError, csv.Error) as e:
        raise FaultError(str(e) if isinstance(e, InputError) else f"{path}: not a readable CSV ({e})") from None
    if not parsed:
        raise FaultError(f"{path}: no faults")
    return FaultSet.of("file", [fid for fid, _ in parsed], [fault for _, fault in parsed])


def write_faults_csv(fs: FaultSet, space: FlipFlopSpace, path: Path) -> None:
    """The campaign's faults.csv: the faults-file columns plus, for reading,
    the class and register of each upset."""
    with atomic_open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(FAULTS_COLUMNS + ["n_upsets", "classes", "registers"])
        cls = space.classes(fs.ff).tolist() if fs.ff.size else []
        # each fault's upsets in Fault order (by flip-flop, then cycle); each flip-flop described once
        order = np.lexsort((fs.cycle, fs.ff, fs.owners()))
        uniq, at = np.unique(fs.ff[order], return_inverse=True)
        names = [f"{d.register}/{d.bit}" for d in map(space.describe, uniq.tolist())]
        keys = [f"{f}@{c}" for f, c in zip(fs.ff[order].tolist(), fs.cycle[order].tolist())]
        regs = [names[j] for j in at.reshape(-1).tolist()]
        ptr, scrub = fs.indptr.tolist(), fs.scrub.tolist()
        for i, fid in enumerate(fs.ids.tolist()):
            lo, hi = ptr[i], ptr[i + 1]
            w.writerow([fid, ";".join(keys[lo:hi]), "" if scrub[i] < 0 else scrub[i], hi - lo,
                        ";".join(sorted(set(cls[lo:hi]))), ";".join(regs[lo:hi])])
