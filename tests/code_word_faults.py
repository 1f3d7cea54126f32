"""Faults within the code words of a design (SEC-DED or parity), for the
tests that compare the software level, the fault model and the RTL on them
(tests/rtlgen/test_rtl_ecc.py, test_rtl_parity.py)."""

from __future__ import annotations

from itertools import combinations

from fkhw.faults.space import Fault, Upset


def faults_within_words(space, rng, trios: int) -> list:
    """Per code word of ``space`` (data and check bits): each flip-flop
    alone, every pair at one cycle, ``trios`` random triples (which a
    SEC-DED decoder may miscorrect; none in a word of fewer than three
    flip-flops), a pair a few cycles apart and a pair cut short by a scrub."""
    faults = []
    for word in (w.tolist() for w in space.code_words()):
        faults += [Fault((Upset(f, 0),)) for f in word]
        faults += [Fault((Upset(a, 0), Upset(b, 0))) for a, b in combinations(word, 2)]
        for _ in range(trios if len(word) >= 3 else 0):
            trio = rng.choice(word, size=3, replace=False)
            faults.append(Fault(tuple(sorted(Upset(int(f), 0) for f in trio))))
        a, b = rng.choice(word, size=2, replace=False)
        faults.append(Fault(tuple(sorted((Upset(int(a), 1), Upset(int(b), 5))))))
        faults.append(Fault(tuple(sorted((Upset(int(a), 0), Upset(int(b), 2)))), scrub=6))
    return faults
