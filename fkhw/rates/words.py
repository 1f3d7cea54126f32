"""Designs of code words in the rate model (fkhw.rates.model): their words and what a wrong word does.

A word is wrong when two of its flip-flops are inverted: a SEC-DED decoder
flags them and passes the data bits among them on inverted (none when both
are check bits); a parity word passes them on the same way and flags
nothing (two upsets keep its parity: the outputs it cannot warn of). ``P(deg | kw wrong words)`` is estimated by a Monte Carlo: kw
distinct words drawn in proportion to their number of pairs (a word of n
flip-flops is wrong with probability ~ C(n, 2) r^2), a uniform pair of
flip-flops in each, the data bits the decoders pass on inverted
(fkhw.faults.software.decoded) evaluated together on the campaign's inputs.
"""

from __future__ import annotations

import math

import numpy as np

from fkhw.faults.software import decoded
from fkhw.faults.space import Fault, FlipFlopSpace, Upset
from fkhw.rates.model import Conditional, Design

__all__ = ["word_design", "word_conditionals", "wrong_word_scenarios", "passed_on"]


def word_design(space: FlipFlopSpace, transients: tuple, k_max: int) -> Design:
    """The rate model's Design of a design of code words (conditionals left empty:
    :func:`word_conditionals` fills them)."""
    sizes = tuple(int(w.size) for w in space.code_words())
    return Design(space.ecc, 0, len(sizes), False, transients, (), k_max, word_sizes=sizes)


def wrong_word_scenarios(words: list, kw: int, samples: int, seed: int) -> list:
    """The Monte Carlo's ``samples`` scenarios of ``kw`` wrong words, seeded
    by (seed, kw), each a list of ``kw`` pairs of flip-flop ids (data or
    check bits): ``kw`` distinct words of ``words`` (FlipFlopSpace.code_words)
    drawn in proportion to their pairs, a uniform pair in each."""
    pairs = np.array([math.comb(w.size, 2) for w in words], dtype=np.float64)
    rng = np.random.default_rng([seed, kw, 0xECC])
    out = []
    for _ in range(samples):
        chosen = rng.choice(len(words), kw, replace=False, p=pairs / pairs.sum())
        out.append([rng.choice(words[int(w)], 2, replace=False) for w in chosen])
    return out


def passed_on(space: FlipFlopSpace, scenario: list) -> np.ndarray:
    """The parameter bits (site ids, sorted) the decoders pass on inverted
    when each pair of ``scenario`` is upset (fkhw.faults.software.decoded)."""
    sites = []
    for pair in scenario:
        sites += [u.ff for u in decoded(space, Fault(tuple(sorted(Upset(int(f), 0) for f in pair)))).upsets]
    return np.sort(np.array(sites, dtype=np.int64))


def word_conditionals(space: FlipFlopSpace, threshold: float, k_max: int, evaluate, samples: int, seed: int,
                      progress=None) -> tuple:
    """P(deg | kw) and E[emd_norm | kw] for kw = 0 .. k_max wrong words
    (``evaluate``: emd_norm of scenarios, arrays of sites inverted together;
    ``samples`` scenarios per kw, seeded by (seed, kw))."""
    words = space.code_words()
    out = [Conditional(0, 0, 0.0, 0.0, 1.0, 0)]
    for kw in range(1, min(k_max, len(words)) + 1):
        scen = [passed_on(space, s) for s in wrong_word_scenarios(words, kw, samples, seed)]
        e = np.asarray(evaluate(scen), dtype=np.float64)
        if progress is not None:
            progress(len(scen))
        p = float((e > threshold).mean())
        out.append(Conditional(0, kw, p, math.sqrt(p * (1 - p) / samples), float(e.mean()), samples))
    return tuple(out)
