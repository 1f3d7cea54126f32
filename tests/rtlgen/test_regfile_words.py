"""A register file of code words that do not follow its registers
(fkhw.rtlgen.codes.regfile_verilog) is written out word by word: read back
from the Verilog text, every word holds, drives and rewrites exactly the
register bits fkhw.faults.codes.Words puts in it, the one definition every
level shares. (That the file behaves as the fault model says is
tests/rtlgen/test_rtl_ecc.py's and test_rtl_parity.py's job, on Verilator.)
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from fkhw.faults.codes import Words
from fkhw.rtlgen.codes import per_register, regfile_module, regfile_verilog

# (spelling, register bits, registers): words wider and narrower than a register, in a row and interleaved,
# with and without padding in the last word(s)
GEOMETRIES = [("secded:8", 5, 9), ("secded:8", 4, 6), ("secded:8i", 5, 9), ("secded:3", 5, 4), ("secded:3i", 5, 4),
              ("parity:5i", 4, 7), ("parity:16", 3, 11), ("secded:64i", 6, 13)]


def _expand(term: str, width: int) -> list:
    """The row bits of one term of a concatenation, most significant first
    (-1: a constant-0 padding bit); ``mem[r]...`` and ``q[...]`` name row
    bits, ``w<j>_fixed[...]`` bits of the word."""
    if m := re.fullmatch(r"(\d+)'b0", term):
        return [-1] * int(m.group(1))
    m = re.fullmatch(r"(mem\[(\d+)\]|q|cfg_data|w\d+_fixed)(?:\[(\d+)(?::(\d+))?\])?", term)
    assert m, term
    base = int(m.group(2)) * width if m.group(2) else 0
    if m.group(3) is None:
        hi, lo = width - 1, 0
    else:
        hi = int(m.group(3))
        lo = int(m.group(4)) if m.group(4) is not None else hi
    return [base + b for b in range(hi, lo - 1, -1)]


def _terms(text: str) -> list:
    """The terms of ``{a, b, ...}`` (or of a single term), in order."""
    text = text.strip()
    inner = text[1:-1] if text.startswith("{") else text
    return [t.strip() for t in re.split(r",\s*(?![^()]*\))", inner)]


def _word_lines(text: str, j: int) -> dict:
    """Word ``j``'s statements: data, q, next and write enable, by name."""
    flat = re.sub(r",\n\s+", ", ", text)
    grab = {"data": rf"wire \[K-1:0\] w{j}_data = (.+);", "q": rf"assign (.+) = w{j}_fixed(?:\[[\d:]+\])?;",
            "next": rf"wire \[K-1:0\] w{j}_next = (.+);", "we": rf"wire w{j}_we = (.+);"}
    return {k: re.search(rx, flat).group(1) for k, rx in grab.items()}


@pytest.mark.parametrize("ecc,width,depth", GEOMETRIES, ids=[f"{e}-w{w}-d{d}" for e, w, d in GEOMETRIES])
def test_each_word_reads_drives_and_rewrites_the_register_bits_its_words_hold(ecc, width, depth):
    words = Words.of(ecc, width, depth)
    assert not per_register(words)
    text = regfile_verilog(words)
    assert f"module {regfile_module(words)} #(" in text and f"_d{depth}" in regfile_module(words)
    k = words.code.data_bits
    for j in range(words.n_words):
        want = words.position(j, np.arange(k))
        want = np.where(want < words.n_bits, want, -1).tolist()  # least significant bit of the word first
        st = _word_lines(text, j)
        data = [p for t in _terms(st["data"]) for p in _expand(t, width)][::-1]
        assert data == want, f"word {j} reads {data}, Words puts {want} in it"
        driven = [p for t in _terms(st["q"]) for p in _expand(t, width)][::-1]
        assert driven == [p for p in want if p >= 0], f"word {j} drives q bits {driven}"
        nxt = []
        for t in reversed(_terms(st["next"])):  # least significant first
            if m := re.fullmatch(r"\(wr\[(\d+)\] \? (\S+) : (w\d+_fixed\S*)\)", t):
                reg, cfg, kept = int(m.group(1)), _expand(m.group(2), width), _expand(m.group(3), k)
                assert len(cfg) == len(kept), t
                nxt += [(reg * width + v, b) for v, b in zip(cfg[::-1], kept[::-1])]
            else:
                nxt += [(-1, -1)] * len(_expand(t, width))
        assert [p for p, _ in nxt] == want, f"word {j} rewrites {nxt}"
        assert [b for p, b in nxt if p >= 0] == [b for b, p in enumerate(want) if p >= 0]  # kept bits in place
        regs = sorted(int(r) for r in re.findall(r"wr\[(\d+)\]", st["we"]))
        assert regs == words.registers(j), f"word {j} re-encodes on writes to {regs}"


def test_a_word_per_register_keeps_one_file_for_every_depth():
    """Only words that follow the registers make a file that does not depend
    on the depth (its DEPTH parameter)."""
    one, other = Words.of("secded", 5, 9), Words.of("secded", 5, 300)
    assert per_register(one) and regfile_module(one) == regfile_module(other)
    assert regfile_verilog(one) == regfile_verilog(other) and "parameter integer DEPTH" in regfile_verilog(one)
