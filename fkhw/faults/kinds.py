"""Fault kinds: how ``fkhw campaign --faults KIND`` enumerates its faults.

Each kind is a function (space, options) -> FaultSet, found by name in
:data:`KINDS`. Fault ids are stable: the same model and options give the
same ids, so levels, resumed campaigns and readers agree on them.

* ``seu``           one upset of one parameter bit (today's campaign); id = site id.
* ``mbu:K``         K adjacent bits of one parameter register word upset together:
                    bits b .. b+K-1 (0 = MSB) of one register, every b that fits.
                    A register word is one parameter's flip-flops side by side in
                    the register bank, the neighbourhood the multi-bit-upset
                    literature finds most often (adjacent cells of one word); the
                    placed layout is not known before place-and-route, so other
                    neighbourhoods go through a faults file. id = position.
* ``pipeline``      every pipeline data and valid flip-flop, at every cycle at which
                    it holds a window vector (or at ``--cycle`` only); id = position
                    (flip-flop-major, cycle-minor).
* ``accumulate:K``  K distinct parameter bits upset together (accumulated between
                    scrubs), ``--samples`` draws, uniform without replacement, seeded.
* ``replicas``      (hardened designs) every replica flip-flop (B, C) upset alone: a
                    parameter bit's at cycle 0 (it stays), a protected pipeline or
                    valid flip-flop's at every cycle at which it holds a window
                    vector, as ``pipeline`` (or at ``--cycle``).
* ``replica-pairs`` (hardened designs) every pair of replicas of each protected flip-flop
                    upset in the same clock (at the cycles ``replicas`` uses): a
                    multi-bit upset of two replica cells, what defeats the voter
                    (replicas placed next to each other).
* ``checkbits``     (SEC-DED designs) every check flip-flop upset alone, at cycle 0 (or
                    ``--cycle``): with ``seu`` on the data bits, every single upset of
                    every code word. id = position.
* ``file``          ``--faults-file F`` (fkhw.faults.space.read_faults_file).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fkhw.faults.space import FaultError, FaultSet, FlipFlopSpace, cycle_bounds
from fkhw.progress import Progress
from fkhw.errors import InputError
from fkhw.validate import integer_text

DEFAULT_SAMPLES = 2000
DRAW_BLOCK = 16384  # accumulate draws between progress reports


@dataclass(frozen=True)
class KindOptions:
    n_vectors: int  # window vectors per frame
    cycle: int | None = None  # --cycle
    samples: int = DEFAULT_SAMPLES  # --samples (accumulate)
    seed: int = 0


@dataclass(frozen=True)
class KindSpec:
    """A parsed ``--faults`` value: the kind's name and its K (if any)."""

    name: str
    k: int | None = None

    @property
    def label(self) -> str:
        return self.name if self.k is None else f"{self.name}:{self.k}"


def _seu(space: FlipFlopSpace, spec: KindSpec, opt: KindOptions) -> FaultSet:
    sites = np.arange(space.sites.n_sites, dtype=np.int64)
    return FaultSet.single(spec.label, sites, sites, opt.cycle or 0)


def _mbu(space: FlipFlopSpace, spec: KindSpec, opt: KindOptions) -> FaultSet:
    k = spec.k
    widest = max(t.fmt.bits for t in space.sites.tensors)
    if not 2 <= k <= widest:
        raise FaultError(f"--faults mbu:{k}: K must be between 2 and {widest} (the widest parameter register)")
    groups = []
    for t in space.sites.tensors:
        bits = t.fmt.bits
        if bits < k:
            continue
        reg = t.offset + np.arange(t.size, dtype=np.int64)[:, None] * bits  # site of bit 0 of each register
        starts = (reg + np.arange(bits - k + 1)[None, :]).reshape(-1)
        groups.append(starts[:, None] + np.arange(k)[None, :])
    ffs = np.concatenate(groups)
    f = ffs.shape[0]
    return FaultSet(spec.label, np.arange(f, dtype=np.int64), np.arange(0, f * k + 1, k, dtype=np.int64),
                    ffs.reshape(-1), np.full(f * k, opt.cycle or 0, dtype=np.int64), np.full(f, -1, dtype=np.int64))


def _pipeline(space: FlipFlopSpace, spec: KindSpec, opt: KindOptions) -> FaultSet:
    ffs = np.arange(space.sites.n_sites, space.first_replica, dtype=np.int64)
    lo, _ = cycle_bounds(space, ffs, opt.n_vectors)
    if opt.cycle is not None:
        ff, cyc = ffs, np.full(ffs.size, opt.cycle, dtype=np.int64)
    else:  # the cycles at which the flip-flop holds window slot 0 .. N-1
        ff = np.repeat(ffs, opt.n_vectors)
        cyc = (lo[:, None] + np.arange(opt.n_vectors)[None, :]).reshape(-1)
    n = ff.size
    return FaultSet(spec.label, np.arange(n, dtype=np.int64), np.arange(n + 1, dtype=np.int64), ff, cyc,
                    np.full(n, -1, dtype=np.int64))


def _accumulate(space: FlipFlopSpace, spec: KindSpec, opt: KindOptions) -> FaultSet:
    k, n_sites = spec.k, space.sites.n_sites
    if not 2 <= k <= min(n_sites, 4096):
        raise FaultError(f"--faults accumulate:{k}: K must be between 2 and {min(n_sites, 4096)}")
    if opt.samples < 1:
        raise FaultError(f"--samples must be at least 1, got {opt.samples}")
    rng = np.random.default_rng([opt.seed, k, 0xACC])
    # K distinct sites per sample: the first K of a random permutation; ~15 us a draw (a million
    # samples: ~15 s), so progress is shown once drawing takes a while
    progress = Progress(opt.samples, f"drawing accumulate:{k} faults", unit="samples", after=2.0)
    draws = []
    for lo in range(0, opt.samples, DRAW_BLOCK):
        n = min(DRAW_BLOCK, opt.samples - lo)
        draws += [np.sort(rng.choice(n_sites, size=k, replace=False)) for _ in range(n)]
        progress.advance(n)
    ffs = np.stack(draws)
    del draws
    f = opt.samples
    return FaultSet(spec.label, np.arange(f, dtype=np.int64), np.arange(0, f * k + 1, k, dtype=np.int64),
                    ffs.reshape(-1).astype(np.int64), np.full(f * k, opt.cycle or 0, dtype=np.int64),
                    np.full(f, -1, dtype=np.int64))


def _checkbits(space: FlipFlopSpace, spec: KindSpec, opt: KindOptions) -> FaultSet:
    if not space.coded:
        raise FaultError(f"--faults {spec.label}: this design has no check bits; give one of code words "
                         "(--protection secded or parity)")
    ffs = np.arange(space.first_check, space.n_ff, dtype=np.int64)
    return FaultSet.single(spec.label, np.arange(ffs.size), ffs, opt.cycle or 0)


def _need_replicas(space: FlipFlopSpace, spec: KindSpec) -> None:
    if not space.protected:
        raise FaultError(f"--faults {spec.label}: the plain design has no replicas; give the hardened one (--tmr DIR)")


def _at_cycles(space: FlipFlopSpace, groups: np.ndarray, opt: KindOptions) -> tuple:
    """(flip-flops (F, G), cycles (F,)) of faults upsetting each row of
    ``groups`` (replicas of one protected flip-flop) together: a parameter
    bit's at cycle 0 (or --cycle), a pipeline or valid flip-flop's at every
    cycle at which it holds a window vector (or --cycle)."""
    n_sites = space.sites.n_sites
    param = space.base(groups[:, 0]) < n_sites
    ff = [groups[param]]
    cyc = [np.full(int(param.sum()), opt.cycle or 0, dtype=np.int64)]
    tr = groups[~param]
    if tr.size:
        if opt.cycle is not None:
            ff.append(tr)
            cyc.append(np.full(tr.shape[0], opt.cycle, dtype=np.int64))
        else:
            lo, _ = cycle_bounds(space, tr[:, 0], opt.n_vectors)
            ff.append(np.repeat(tr, opt.n_vectors, axis=0))
            cyc.append((lo[:, None] + np.arange(opt.n_vectors)[None, :]).reshape(-1))
    return np.concatenate(ff), np.concatenate(cyc)


def _grouped(label: str, ff: np.ndarray, cyc: np.ndarray) -> FaultSet:
    f, g = ff.shape
    return FaultSet(label, np.arange(f, dtype=np.int64), np.arange(0, f * g + 1, g, dtype=np.int64), ff.reshape(-1),
                    np.repeat(cyc, g), np.full(f, -1, dtype=np.int64))


def _replicas(space: FlipFlopSpace, spec: KindSpec, opt: KindOptions) -> FaultSet:
    _need_replicas(space, spec)
    ffs = np.arange(space.first_replica, space.first_check, dtype=np.int64)
    return _grouped(spec.label, *_at_cycles(space, ffs[:, None], opt))


def _replica_pairs(space: FlipFlopSpace, spec: KindSpec, opt: KindOptions) -> FaultSet:
    _need_replicas(space, spec)
    prot = np.asarray(space.protected, dtype=np.int64)
    b = space.first_replica + 2 * np.arange(prot.size, dtype=np.int64)
    trio = np.stack([prot, b, b + 1], axis=1)  # replicas A, B, C of each protected flip-flop
    pairs = np.concatenate([trio[:, [0, 1]], trio[:, [0, 2]], trio[:, [1, 2]]]).reshape(3, -1, 2)
    pairs = pairs.transpose(1, 0, 2).reshape(-1, 2)  # flip-flop-major: AB, AC, BC of each
    return _grouped(spec.label, *_at_cycles(space, pairs, opt))


# name -> (enumerator, needs K)
KINDS = {
    "seu": (_seu, False),
    "mbu": (_mbu, True),
    "pipeline": (_pipeline, False),
    "accumulate": (_accumulate, True),
    "replicas": (_replicas, False),
    "replica-pairs": (_replica_pairs, False),
    "checkbits": (_checkbits, False),
}


def parse_kind(text: str) -> KindSpec:
    """``seu``, ``mbu:K``, ``pipeline``, ``accumulate:K``; raises FaultError."""
    name, _, k = str(text).partition(":")
    if name not in KINDS:
        raise FaultError(f"--faults {text!r}: unknown kind; use one of seu, mbu:K, pipeline, accumulate:K, "
                         "replicas, replica-pairs, checkbits (or --faults-file)")
    needs_k = KINDS[name][1]
    if needs_k:
        try:  # digits only: int() would also take ' 2', '2_0' and other scripts' digits
            kval = integer_text(k, f"--faults {text!r}")
        except InputError:
            raise FaultError(f"--faults {text!r}: {name} needs a count K, e.g. {name}:2") from None
        return KindSpec(name, kval)
    if k:
        raise FaultError(f"--faults {text!r}: {name} takes no count")
    return KindSpec(name)


def enumerate_faults(space: FlipFlopSpace, spec: KindSpec, opt: KindOptions) -> FaultSet:
    """The kind's faults, checked against the frame (cycle range)."""
    from fkhw.faults.space import check_fault_set

    if opt.cycle is not None and opt.cycle < 0:
        raise FaultError(f"--cycle {opt.cycle}: a cycle is at least 0")
    fs = KINDS[spec.name][0](space, spec, opt)
    check_fault_set(fs, space, opt.n_vectors)
    return fs
