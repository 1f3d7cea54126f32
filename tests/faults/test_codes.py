"""Register-word codes (fkhw.faults.codes) and their Verilog (fkhw.rtlgen.codes).

The SEC-DED code corrects every single upset of a word's data or check bits
and flags every double upset, for every data value (exhaustively for words
up to 10 bits, sampled above); parity flags every odd number of upsets. The
generated encoder and decoder are lint-clean (verilator -Wall) and give,
simulated on Verilator, exactly the Python code's check bits, data and flags
on every clean word and every single and double upset of the word sizes
fkhw's models store (and more).
"""

from __future__ import annotations

import subprocess
from itertools import combinations
from math import comb

import numpy as np
import pytest

from fkhw.faults.codes import CodeError, Parity, SecDed, Spelling, Words, code_word, hsiao_check_bits


def _upsets(code, data: np.ndarray, positions: tuple) -> tuple:
    """(data, check) words of ``data`` with the bits at ``positions`` inverted
    (0 .. data_bits-1: data bits, then the check bits)."""
    d, c = data.astype(np.uint64), code.encode(data)
    for p in positions:
        if p < code.data_bits:
            d = d ^ np.uint64(1 << p)
        else:
            c = c ^ np.uint64(1 << (p - code.data_bits))
    return d, c


def _words(k: int, rng) -> np.ndarray:
    if k <= 10:
        return np.arange(1 << k, dtype=np.uint64)
    return rng.integers(0, 1 << min(k, 63), size=512, dtype=np.uint64) | (
        rng.integers(0, 2, size=512, dtype=np.uint64) << np.uint64(63) if k == 64 else np.uint64(0))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 8, 10, 16, 32, 40, 64])
def test_secded_corrects_every_single_upset_and_flags_every_double(k):
    code = SecDed.of(k)
    rng = np.random.default_rng(k)
    data = _words(k, rng)
    n = k + code.check_bits
    assert len(set(code.columns)) == k and all(bin(c).count("1") % 2 == 1 and bin(c).count("1") >= 3
                                               for c in code.columns)
    clean = code.decode(data, code.encode(data))
    assert (clean.data == data).all() and not clean.corrected.any() and not clean.uncorrectable.any()
    for p in range(n):
        got = code.decode(*_upsets(code, data, (p,)))
        assert (got.data == data).all() and got.corrected.all() and not got.uncorrectable.any(), p
    for pair in combinations(range(n), 2):
        got = code.decode(*_upsets(code, data, pair))
        assert got.uncorrectable.all() and not got.corrected.any(), pair


def test_secded_uses_the_fewest_check_bits_hsiao_needs():
    """(13, 8), (22, 16), (39, 32), (72, 64): the textbook sizes; and no fewer bits give enough columns."""
    assert [hsiao_check_bits(k) for k in (8, 16, 32, 64)] == [5, 6, 7, 8]
    for k in range(1, 65):
        r = hsiao_check_bits(k)
        assert sum(comb(r - 1, w) for w in range(3, r, 2)) < k <= sum(comb(r, w) for w in range(3, r + 1, 2))


def test_parity_flags_every_odd_number_of_upsets_and_no_even_one():
    code = Parity.of(5)
    data = np.arange(32, dtype=np.uint64)
    for m in range(1, 7):
        for pos in combinations(range(6), m):
            got = code.decode(*_upsets(code, data, pos))
            assert (got.data == _upsets(code, data, pos)[0]).all()
            assert (got.uncorrectable == (m % 2 == 1)).all() and not got.corrected.any()


@pytest.mark.parametrize("bad", [0, 65, True, 1.5, "8"])
def test_a_word_size_no_code_covers_is_an_error_naming_it(bad):
    with pytest.raises(CodeError, match="SEC-DED word"):
        SecDed.of(bad)


# --- words of a register file -----------------------------------------------------------------------

@pytest.mark.parametrize("text, parsed", [("secded", ("secded", None, False)), ("secded:8", ("secded", 8, False)),
                                          ("secded:8i", ("secded", 8, True)), ("secded:64i", ("secded", 64, True)),
                                          ("parity", ("parity", None, False)), ("parity:16i", ("parity", 16, True))])
def test_a_protection_spelling_reads_as_its_code_word_size_and_layout(text, parsed):
    assert code_word(text) == Spelling(*parsed)


@pytest.mark.parametrize("bad, says", [("secded:i", "N is a whole number"), ("secded:8ii", "N is a whole number"),
                                       ("secded:0i", "0 data bits"), ("secded:i8", "N is a whole number"),
                                       ("parity:65", "65 data bits"), ("parity:", "use secded"),
                                       ("tmr", "use secded, secded:N, secded:Ni, parity, parity:N, parity:Ni")])
def test_a_protection_spelling_it_does_not_know_is_an_error_naming_it(bad, says):
    with pytest.raises(CodeError, match=f"protection {bad!r}: {says}"):
        code_word(bad)


@pytest.mark.parametrize("ecc", ["secded", "secded:7", "secded:7i", "secded:3i", "secded:64i", "parity:7i"])
def test_every_bit_of_the_row_is_one_bit_of_one_word(ecc):
    w = Words.of(ecc, 5, 9)
    j, b = np.meshgrid(np.arange(w.n_words), np.arange(w.word), indexing="ij")
    pos = w.position(j, b)
    assert sorted(pos.ravel().tolist()) == list(range(w.n_words * w.word))  # the padded row, each bit once
    assert all((a == e).all() for a, e in zip(w.place(pos), (j, b)))  # place undoes position


def test_interleaved_words_put_adjacent_bits_of_the_file_in_different_words():
    """Adjacent cells, the upsets a SEC code cannot correct when they share
    a word: interleaved, no two adjacent bits share one; in a row, most do."""
    rows, inter = Words.of("secded:8", 5, 40), Words.of("secded:8i", 5, 40)
    p = np.arange(rows.n_bits - 1)
    assert (inter.place(p)[0] != inter.place(p + 1)[0]).all()
    assert (rows.place(p)[0] == rows.place(p + 1)[0]).sum() == rows.n_words * (rows.word - 1)


@pytest.mark.parametrize("ecc", ["secded", "secded:7", "secded:7i"])
def test_a_word_holds_the_register_bits_its_positions_name(ecc):
    w = Words.of(ecc, 5, 9)
    values = np.random.default_rng(0).integers(0, 32, size=9)
    row = sum(int(v) << (5 * i) for i, v in enumerate(values))
    for j in range(w.n_words):
        expect = sum(((row >> int(q)) & 1) << b for b, q in enumerate(w.position(j, np.arange(w.word))))
        assert w.data(values, j) == expect
        assert w.registers(j) == sorted({int(q) // 5 for q in w.position(j, np.arange(w.word)) if q < 45})


@pytest.mark.parametrize("ecc", ["secded:7", "secded:7i", "secded", "parity:7", "parity:4i"])
def test_a_word_stores_the_check_bits_that_cover_one_of_its_bits(ecc):
    """A check bit over the padding alone is constant 0: not a flip-flop."""
    w = Words.of(ecc, 5, 3)  # 15 bits: in a row, words of 7, 7 and 1 bits
    code = w.code
    for j in range(w.n_words):
        real = [b for b in range(w.word) if w.position(j, b) < w.n_bits]
        cover = [c for c in range(code.check_bits)
                 if any(code.columns[b] >> (code.check_bits - 1 - c) & 1 for b in real)]
        assert w.stored_checks(j) == tuple(cover)
    assert w.n_stored_checks == sum(len(w.stored_checks(j)) for j in range(w.n_words))
    if ecc == "secded:7":  # the last word's one bit: its column's weight, 3 of the 4 check bits
        assert len(w.stored_checks(2)) == bin(code.columns[0]).count("1") < code.check_bits
    if ecc.startswith("parity"):  # one parity bit per word, every word holding a bit of a register
        assert w.code.check_bits == 1 and w.n_stored_checks == w.n_words


def test_a_parity_design_passes_every_data_upset_on_as_the_plain_design_does():
    """Parity corrects nothing: on the software level every single upset of a
    parameter bit does what it does in the plain design, every two in one
    word too (unflagged: the parity holds), and a parity bit's upset
    changes no output. Sizes from the model's space."""
    from itertools import combinations

    from fkhw.faults.space import Fault, FaultSet, FlipFlopSpace, Upset
    from fkhw.levels.software import SoftwareLevel
    from fkhw.rtlgen.testing import tiny_model

    model = tiny_model()
    space = FlipFlopSpace.of(model, ecc="parity:7i")
    x = np.random.default_rng(0).integers(model.input.fmt.lo, model.input.fmt.hi + 1, size=(6, *model.input.shape))
    sites = [Fault((Upset(s, 0),)) for s in range(space.sites.n_sites)]
    pairs = [Fault((Upset(a, 0), Upset(b, 0))) for w in space.code_words()
             for a, b in combinations([f for f in w.tolist() if f < space.sites.n_sites], 2)]
    fs = FaultSet.of("file", np.arange(len(sites) + len(pairs)), sites + pairs)
    coded, plain = SoftwareLevel(model, ecc=space.ecc).run_faults(fs, x), SoftwareLevel(model).run_faults(fs, x)
    assert not coded.mismatches(plain).any()
    gold = SoftwareLevel(model).golden(x)
    assert (coded.latent[: len(sites)] != gold[None]).any(axis=(1, 2)).any()  # some upsets do degrade
    checks = FaultSet.single("checkbits", np.arange(space.n_check), np.arange(space.first_check, space.n_ff))
    assert space.n_check == len(space.code_words()) > 0
    assert not (SoftwareLevel(model, ecc=space.ecc).run_faults(checks, x).latent != gold[None]).any()


# --- the generated Verilog --------------------------------------------------------------------------

TB = """`default_nettype none
module tb;
    localparam integer K = {k}, R = {r}, N = {n};
    reg [K-1:0] data [0:N-1];
    reg [R-1:0] check [0:N-1];
    reg [K-1:0] d;
    reg [R-1:0] c;
    wire [R-1:0] enc;
    wire [K-1:0] out;
    wire s, e;
    integer i, f;
    {enc} u_enc (.data(d), .check(enc));
    {dec} u_dec (.data(d), .check(c), .data_out(out), {flags});
    initial begin
        $readmemh("data.hex", data);
        $readmemh("check.hex", check);
        f = $fopen("out.txt", "w");
        for (i = 0; i < N; i = i + 1) begin
            d = data[i];
            c = check[i];
            #1;
            $fwrite(f, "%h %h %h %b %b\\n", enc, out, c, s, e);
        end
        $fclose(f);
        $finish;
    end
endmodule
"""


def _simulate(code, data: np.ndarray, check: np.ndarray, tmp_path) -> list:
    from fkhw.rtlgen.codes import module_names, verilog_files
    from fkhw.rtlgen.lint import lint
    from fkhw.rtlgen.sim import MAKE_VARS, compiler_cache_env
    from fkhw.rtlgen.tools import require_verilator, tool_env

    files = verilog_files(code)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        res = lint([tmp_path / name], name[:-2])
        assert res.ok, res.output
    enc, dec = module_names(code)
    assert sorted(files) == sorted([f"{enc}.v", f"{dec}.v"])
    flags = ".err_single(s), .err_double(e)" if isinstance(code, SecDed) else ".err_parity(e)"
    tb = TB.format(k=code.data_bits, r=code.check_bits, n=data.size, enc=enc, dec=dec, flags=flags)
    if not isinstance(code, SecDed):
        tb = tb.replace("    wire s, e;", "    wire e;\n    wire s = 1'b0;")
    (tmp_path / "tb.v").write_text(tb)
    (tmp_path / "data.hex").write_text("\n".join(f"{int(v):x}" for v in data) + "\n")
    (tmp_path / "check.hex").write_text("\n".join(f"{int(v):x}" for v in check) + "\n")
    cmd = [require_verilator(), "--binary", "-Wno-fatal", "--top-module", "tb", "-CFLAGS", "-std=c++20",
           "-MAKEFLAGS", MAKE_VARS, "-o", "tb", "tb.v", *files]
    # through the suite's compiler cache, as fkhw's own builds: the Verilator runtime is the same every time
    env = tool_env()
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**env, **compiler_cache_env(env["PATH"])})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = subprocess.run([str(tmp_path / "obj_dir" / "tb")], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return (tmp_path / "out.txt").read_text().split("\n")[:-1]


@pytest.mark.verilator
@pytest.mark.parametrize("k", [5, 8, 13])
def test_the_generated_secded_verilog_is_the_python_code(k, tmp_path):
    """Every data value (k <= 8; 512 sampled at 13) clean, with every single and
    every double upset: check bits, corrected data and flags, bit for bit."""
    code = SecDed.of(k)
    rng = np.random.default_rng(k)
    base = np.arange(1 << k, dtype=np.uint64) if k <= 8 else rng.integers(0, 1 << k, 512, dtype=np.uint64)
    n = k + code.check_bits
    patterns = [()] + [(p,) for p in range(n)] + list(combinations(range(n), 2))
    words = [_upsets(code, base, pat) for pat in patterns]
    data = np.concatenate([w[0] for w in words])
    check = np.concatenate([w[1] for w in words])
    want = code.decode(data, check)
    got = _simulate(code, data, check, tmp_path)
    assert len(got) == data.size
    rows = np.array([line.split() for line in got])
    assert [int(v, 16) for v in rows[:, 0]] == code.encode(data).tolist()
    assert [int(v, 16) for v in rows[:, 1]] == want.data.tolist()
    assert (rows[:, 3] == "1").tolist() == want.corrected.tolist()
    assert (rows[:, 4] == "1").tolist() == want.uncorrectable.tolist()
    assert want.corrected.sum() == base.size * n and want.uncorrectable.sum() == base.size * comb(n, 2)


@pytest.mark.verilator
def test_the_generated_parity_verilog_is_the_python_code(tmp_path):
    code = Parity.of(8)
    data = np.arange(256, dtype=np.uint64)
    words = [_upsets(code, data, pat) for pat in [(), (0,), (3,), (8,), (1, 2), (0, 8), (1, 2, 3)]]
    d, c = np.concatenate([w[0] for w in words]), np.concatenate([w[1] for w in words])
    rows = np.array([line.split() for line in _simulate(code, d, c, tmp_path)])
    assert [int(v, 16) for v in rows[:, 0]] == code.encode(d).tolist()
    assert (rows[:, 4] == "1").tolist() == code.decode(d, c).uncorrectable.tolist()


def test_the_command_line_names_the_spellings_the_reader_knows():
    from fkhw.commands.options import PROTECTION_METAVAR
    from fkhw.faults.codes import PROTECTIONS

    assert PROTECTION_METAVAR == "|".join(PROTECTIONS)
