"""Verilog of the register-word codes of fkhw.faults.codes: per code and word
size an encoder (what the configuration write path stores beside the data)
and a decoder (what the read path passes on, and its error flags), one
module per file, written out from the code's own parity-check columns, so
that the hardware and the software fault model are the same code by
construction.

Each check bit and each syndrome bit is one XOR line naming the data bits it
covers: a hardware engineer reads the code off the file.
"""

from __future__ import annotations

import numpy as np

from fkhw.faults.codes import Parity, SecDed, Words
from fkhw.rtlgen.verilog import SPDX


def _kind(code) -> str:
    return "secded" if isinstance(code, SecDed) else "parity"


def module_names(code) -> tuple:
    """(encoder, decoder) module names of ``code``."""
    kind = _kind(code)
    return f"fkhw_{kind}_enc_k{code.data_bits}", f"fkhw_{kind}_dec_k{code.data_bits}"


# the error flags of a code's decoder and register files, by the code's name (the encoder's ports add ``ecc_``):
# SEC-DED err_single (one upset, corrected) and err_double (an error it cannot correct); parity err_parity (an odd
# number of upsets, passed on)
FLAG_PORTS = {"secded": ("err_single", "err_double"), "parity": ("err_parity",)}


def flag_ports(code) -> tuple:
    """The error flags of ``code``'s decoder (FLAG_PORTS)."""
    return FLAG_PORTS[_kind(code)]


def verilog_files(code) -> dict:
    """{file name: Verilog} of the encoder and the decoder of ``code`` (a file per module)."""
    enc, dec = module_names(code)
    head, enc_text, dec_text = _secded(code) if isinstance(code, SecDed) else _parity(code)
    return {f"{enc}.v": "\n".join(head + enc_text), f"{dec}.v": "\n".join(head + dec_text)}


def _xor(terms: list) -> str:
    return " ^ ".join(terms) if terms else "1'b0"


def _secded(code: SecDed) -> tuple:
    """(header lines, encoder module lines, decoder module lines) of a SEC-DED code."""
    k, r = code.data_bits, code.check_bits
    enc, dec = module_names(code)
    rows = code.rows()
    lines = [
        SPDX,
        "`default_nettype none",
        f"// Hsiao SEC-DED code over {k} data bits with {r} check bits (fkhw.faults.codes),",
        "// written by fkhw.rtlgen.codes from the code's parity-check columns. Do not edit.",
        "//",
        "// Parity-check columns of the data bits (check bit j covers data bit i when bit j of",
        "// column i is set; the check bits' own columns are the unit vectors):",
    ]
    for i, c in enumerate(code.columns):
        lines.append(f"//   data[{i}]: {r}'b{c:0{r}b}")
    head, lines = lines + [""], []
    lines += [
        f"// {enc}: the check bits stored beside a data word (the write path).",
        f"module {enc} (",
        f"    input  wire [{k - 1}:0] data,",
        f"    output wire [{r - 1}:0] check",
        ");",
    ]
    for j, row in enumerate(rows):
        lines.append(f"    assign check[{j}] = {_xor([f'data[{i}]' for i in row])};")
    lines += ["endmodule", "`default_nettype wire", ""]
    enc_lines, lines = lines, []
    lines += [
        f"// {dec}: the stored word corrected (the read path). The syndrome is the stored",
        "// check bits XOR those of the stored data: 0 for a clean word; a data bit's column:",
        "// that bit is upset and is inverted back; a unit vector: a check bit is upset (the",
        "// data is right); any other value (even weight: two upsets) cannot be corrected.",
        "//   err_single: one upset, corrected; err_double: an error it cannot correct.",
        f"module {dec} (",
        f"    input  wire [{k - 1}:0] data,",
        f"    input  wire [{r - 1}:0] check,",
        f"    output wire [{k - 1}:0] data_out,",
        "    output wire err_single,",
        "    output wire err_double",
        ");",
        f"    wire [{r - 1}:0] syndrome;",
    ]
    for j, row in enumerate(rows):
        lines.append(f"    assign syndrome[{j}] = {_xor([f'check[{j}]'] + [f'data[{i}]' for i in row])};")
    lines.append(f"    wire [{k - 1}:0] flip;  // flip[i]: the syndrome is data bit i's column")
    for i, c in enumerate(code.columns):
        lines.append(f"    assign flip[{i}] = (syndrome == {r}'b{c:0{r}b});")
    lines += [
        "    assign data_out = data ^ flip;",
        "    // a check bit upset: a syndrome of weight one",
        f"    wire check_upset = (syndrome != {r}'d0) && ((syndrome & (syndrome - {r}'d1)) == {r}'d0);",
        "    assign err_single = (|flip) | check_upset;",
        f"    assign err_double = (syndrome != {r}'d0) & ~err_single;",
        "endmodule",
        "`default_nettype wire",
        "",
    ]
    return head, enc_lines, lines


def _parity(code: Parity) -> tuple:
    """(header lines, encoder module lines, checker module lines) of an even-parity bit."""
    k = code.data_bits
    enc, dec = module_names(code)
    head = [SPDX, "`default_nettype none",
            f"// One even-parity bit over {k} data bits (fkhw.faults.codes), written by fkhw.rtlgen.codes. Do not edit.",
            ""]
    enc_lines = [
        f"// {enc}: the parity bit stored beside a data word (the write path).",
        f"module {enc} (",
        f"    input  wire [{k - 1}:0] data,",
        "    output wire [0:0] check",
        ");",
        "    assign check[0] = ^data;",
        "endmodule",
        "`default_nettype wire",
        "",
    ]
    dec_lines = [
        f"// {dec}: the stored word passed on unchanged; err_parity: the parity does not hold",
        "// (an odd number of upsets): the word must be rewritten.",
        f"module {dec} (",
        f"    input  wire [{k - 1}:0] data,",
        "    input  wire [0:0] check,",
        f"    output wire [{k - 1}:0] data_out,",
        "    output wire err_parity",
        ");",
        "    assign data_out = data;",
        "    assign err_parity = (^data) ^ check[0];",
        "endmodule",
        "`default_nettype wire",
        "",
    ]
    return head, enc_lines, dec_lines


# why each check bit has its own (* keep *) always block: in a word whose data bits are partly the last
# word's constant padding, two check bits can cover the same data bits and always be equal, and synthesis
# may merge equal flip-flops into one, which a single upset would then flip in two syndrome bits. Apart and
# kept, they stay the flip-flops the fault model upsets (fkhw.rtlgen.netlist.classify finds each one or
# fails). Check bits over padding alone are constant 0 and go anyway: the fault model has none there
# (fkhw.faults.codes.Words.stored_checks).
KEEP_WHY = "// a kept flip-flop per check bit: synthesis must not merge two that are always equal"


def per_register(words: Words) -> bool:
    """A word per register (K = W, not interleaved): the one layout whose
    register file is the same for every depth (a DEPTH parameter)."""
    return words.word == words.width and not words.interleaved


def regfile_module(words: Words) -> str:
    """The name of the register file of ``words.width``-bit registers kept as
    ``words``'s words; a file of words across registers is written for its
    depth (``_d<DEPTH>``)."""
    depth = "" if per_register(words) else f"_d{words.depth}"
    return f"fkhw_regfile_{words.kind}_w{words.width}_k{words.word}" + ("_il" if words.interleaved else "") + depth


def regfile_parameters(words: Words, base: int, addr_bits: int) -> str:
    """The parameter list of an instance of ``words``'s register file."""
    depth = f".DEPTH({words.depth}), " if per_register(words) else ""
    return f"#({depth}.BASE({base}), .ADDRW({addr_bits}))"


def regfile_verilog(words: Words) -> str:
    """A register file of DEPTH registers of ``words.width`` bits kept as
    ``words``'s code words (fkhw.faults.codes.Words: the registers' bits in
    a row, register 0 least significant, cut into words of K data bits in a
    row or bit-interleaved, each with R check bits). The read path passes
    every word through its decoder: a SEC-DED word's one upset, of any of
    its flip-flops (data or check), never reaches the datapath; a parity
    word passes on as stored and raises ``err_parity``. The same ports as
    fkhw_regfile plus the flags; the data bits are in ``mem`` (as in
    fkhw_regfile: the testbench upsets them by that name), the check bits in
    ``mem_chk``.

    A word per register (K = W, not interleaved): one encoder on the
    configuration write path stores the check bits beside the data, and the
    file is the same for every DEPTH. Words that do not follow the
    registers: a write re-encodes each word holding bits of the register,
    from the word's bits as its decoder passes them on with the new register
    in place, an encoder per word: the price of words that do not follow the
    registers. (SEC-DED: an upset elsewhere in the word stays correctable.
    Parity: such an upset is taken into the new parity, so it is no longer
    flagged, and stays in the data until its own register is rewritten; a
    word per register has no such blind spot.) Such a file is written out
    word by word for its depth, each word's wiring spelt out: as generate
    loops over every bit of every word it took Verilator and Yosys minutes
    to elaborate on econt-bol."""
    width, code = words.width, words.code
    w, k, r = width, code.data_bits, code.check_bits
    enc, dec = module_names(code)
    flags = flag_ports(code)
    name = regfile_module(words)
    fixed = per_register(words)
    layout = ("word j is bits j*K .. j*K+K-1 of the row" if not words.interleaved else
              "bit b of word j is bit b*NWORD+j of the row (bit-interleaved: adjacent bits in different words)")
    what = (["// q[i*W +: W]: register i as its word's decoder corrects it. err_single: some word holds one",
             "// upset (corrected on the way out, still stored until the next write or scrub); err_double:",
             "// some word holds an error its code cannot correct (two upsets: passed on uncorrected)."]
            if isinstance(code, SecDed) else
            ["// q[i*W +: W]: register i as stored (parity corrects nothing). err_parity: some word holds an",
             "// odd number of upsets (passed on): the configuration must be rewritten."])
    depth = (["    parameter integer DEPTH = 1,  // number of registers"] if fixed else [])
    head = [
        SPDX,
        "`default_nettype none",
        f"// {name}: {'DEPTH' if fixed else words.depth} parameter registers of {w} bits kept as "
        f"{_kind(code).upper()} words of {k} data",
        f"// bits and {r} check bit{'s' if r > 1 else ''} ({code.label}: {enc}, {dec}), written through the "
        "configuration port.",
        "// Register i answers at address BASE+i and holds bits i*W .. i*W+W-1 of the file's row of bits;",
        f"// {layout}; bits past the last register are constant 0.",
        "// No reset (weights are loaded after power-up).",
        *what,
        "// Generated by fkhw.rtlgen.codes. Do not edit.",
        f"module {name} #(",
        *depth,
        "    parameter integer BASE  = 0,  // configuration address of register 0",
        "    parameter integer ADDRW = 12  // bits of cfg_addr",
        ") (",
        "    input  wire                   clk,",
        "    input  wire                   cfg_we,",
        "    input  wire [ADDRW-1:0]       cfg_addr,",
        f"    input  wire [{w - 1}:0]             cfg_data,",
        f"    output wire [{f'DEPTH*{w}-1' if fixed else w * words.depth - 1}:0]     q,",
        *[f"    output wire                   {f}{',' if i < len(flags) - 1 else ''}" for i, f in enumerate(flags)],
        ");",
        "",
        *([] if fixed else [f"    localparam integer DEPTH = {words.depth};  // number of registers"]),
        f"    localparam integer W     = {w};  // bits per register",
        f"    localparam integer K     = {k};  // data bits per word",
        f"    localparam integer R     = {r};  // check bits per word",
        "    localparam integer NWORD = (DEPTH * W + K - 1) / K;  // words",
        "    localparam integer IW    = (DEPTH > 1) ? $clog2(DEPTH) : 1;",
        "    localparam [ADDRW-1:0] FIRST = BASE[ADDRW-1:0];",
        "",
        "    (* mem2reg *) reg [W-1:0] mem     [0:DEPTH-1];  // data bits, a register each",
        "    (* mem2reg *) reg [R-1:0] mem_chk [0:NWORD-1];  // check bits, a word each",
        "",
        "    // the write decode of fkhw_regfile: one indexed write, one range compare",
        "    wire [ADDRW-1:0] offset = cfg_addr - FIRST;",
        "    wire             hit;",
        "    generate",
        "        if (DEPTH < (1 << ADDRW)) begin : g_range",
        "            localparam [ADDRW-1:0] COUNT = DEPTH[ADDRW-1:0];",
        "            assign hit = cfg_we && (offset < COUNT);",
        "        end else begin : g_all",
        "            assign hit = cfg_we;",
        "        end",
        "    endgenerate",
        "",
        f"    wire [NWORD-1:0] {', '.join(f'word_{f}' for f in flags)};  // per word, its decoder's flags",
    ]
    tail = [f"    assign {f} = |word_{f};" for f in flags] + ["", "endmodule", "`default_nettype wire", ""]
    body = _per_register(enc, dec, ", ".join(f".{f}(word_{f}[{{0}}])" for f in flags)) if fixed else \
        _packed(words, enc, dec, flags)
    return "\n".join(head + body + tail)


def _per_register(enc: str, dec: str, flags: str) -> list:
    """The body of a file with a word per register (K = W); ``flags``: the
    decoder's flag connections, ``{0}`` for the word's index."""
    return [
        "    // the write path: one encoder, the check bits stored with the data",
        "    wire [R-1:0] cfg_check;",
        f"    {enc} u_enc (.data(cfg_data), .check(cfg_check));",
        "    always @(posedge clk) begin",
        "        if (hit) mem[offset[IW-1:0]] <= cfg_data;",
        "    end",
        "    genvar i, c;",
        "    generate",
        f"        {KEEP_WHY}",
        "        for (c = 0; c < R; c = c + 1) begin : g_chk",
        "            (* keep *) always @(posedge clk) if (hit) mem_chk[offset[IW-1:0]][c] <= cfg_check[c];",
        "        end",
        "    endgenerate",
        "",
        "    // the read path: each register through its decoder",
        "    generate",
        "        for (i = 0; i < DEPTH; i = i + 1) begin : g_word",
        f"            {dec} u_dec (.data(mem[i]), .check(mem_chk[i]), .data_out(q[i*W +: W]),",
        f"                {flags.format('i')});",
        "        end",
        "    endgenerate",
    ]


def _runs(words: Words, j: int) -> list:
    """Word ``j``'s data bits as runs, least significant first: (first bit
    of the word, bits, register, its first Verilog bit), register -1 for
    the constant-0 padding. A run is bits at consecutive places of the word
    and of one register (or of the padding)."""
    out = []
    for b, p in enumerate(words.position(j, np.arange(words.word)).tolist()):
        reg, v = divmod(p, words.width) if p < words.n_bits else (-1, 0)
        last = out[-1] if out else None
        if last and last[2] == reg and (reg < 0 or last[3] + last[1] == v):
            out[-1] = (last[0], last[1] + 1, reg, last[3])
        else:
            out.append((b, 1, reg, v))
    return out


def _bits(name: str, lo: int, n: int, width: int | None = None) -> str:
    """``name[lo +: n]`` spelt as a hardware engineer writes it (the whole
    vector when it is ``width`` bits)."""
    if n == width:
        return name
    return f"{name}[{lo}]" if n == 1 else f"{name}[{lo + n - 1}:{lo}]"


def _cat(terms: list, indent: int = 0) -> str:
    """A concatenation of ``terms`` given least significant first; one term
    a line (below ``indent`` spaces) when they do not fit on one."""
    if len(terms) == 1:
        return terms[0]
    line = "{" + ", ".join(reversed(terms)) + "}"
    return line if len(line) + indent < 100 else "{" + (",\n" + " " * (indent + 1)).join(reversed(terms)) + "}"


def _merged(ranges: list) -> list:
    """(first bit, bits) ranges, least significant first, with adjacent ones joined."""
    out = []
    for lo, n in ranges:
        if out and out[-1][0] + out[-1][1] == lo:
            out[-1] = (out[-1][0], out[-1][1] + n)
        else:
            out.append((lo, n))
    return out


def _packed(words: Words, enc: str, dec: str, flags: tuple) -> list:
    """The body of a file whose words do not follow its registers, word by
    word: its data bits, its decoder, what it passes to ``q``, and its check
    bits re-encoded when a register it holds bits of is written."""
    w, r = words.width, words.code.check_bits
    out = [
        "    always @(posedge clk) begin",
        "        if (hit) mem[offset[IW-1:0]] <= cfg_data;",
        "    end",
        "    // wr[i]: this clock writes register i",
        "    localparam [DEPTH-1:0] ONE = 1;",
        "    wire [DEPTH-1:0] wr = hit ? (ONE << offset[IW-1:0]) : {DEPTH{1'b0}};",
    ]
    for j in range(words.n_words):
        runs = _runs(words, j)
        real = [x for x in runs if x[2] >= 0]
        used = sum(x[1] for x in real)
        where = ", ".join(f"register {reg} bit{'s' if n > 1 else ''} {v}{f'..{v + n - 1}' if n > 1 else ''}"
                          for _, n, reg, v in real)
        pad = words.word - used
        regs = sorted({x[2] for x in real})
        lint = used < words.word  # the decoder's output bits over the padding are not read
        out += [
            "",
            f"    // word {j}: {where}" + (f", {pad} bit{'s' if pad > 1 else ''} of padding" if pad else ""),
            f"    wire [K-1:0] w{j}_data = "
            + _cat([f"{n}'b0" if reg < 0 else _bits(f"mem[{reg}]", v, n, w) for _, n, reg, v in runs],
                   len(f"    wire [K-1:0] w{j}_data = ")) + ";",
            *(["    /* verilator lint_off UNUSEDSIGNAL */"] if lint else []),
            f"    wire [K-1:0] w{j}_fixed;  // as its decoder passes it on",
            *(["    /* verilator lint_on UNUSEDSIGNAL */"] if lint else []),
            f"    {dec} u_dec{j} (.data(w{j}_data), .check(mem_chk[{j}]), .data_out(w{j}_fixed),",
            "        " + ", ".join(f".{f}(word_{f}[{j}])" for f in flags) + ");",
            "    assign " + _cat([_bits("q", lo, n) for lo, n in _merged([(reg * w + v, n) for _, n, reg, v in real])], 11)
            + f" = {_bits(f'w{j}_fixed', 0, used, words.word)};",
            "    // write: the word as passed on, with the written register's bits in place, re-encoded",
            f"    wire [K-1:0] w{j}_next = "
            + _cat([f"{n}'b0" if reg < 0 else
                    f"(wr[{reg}] ? {_bits('cfg_data', v, n, w)} : {_bits(f'w{j}_fixed', b, n)})"
                    for b, n, reg, v in runs], len(f"    wire [K-1:0] w{j}_next = ")) + ";",
            f"    wire [R-1:0] w{j}_check;",
            f"    {enc} u_enc{j} (.data(w{j}_next), .check(w{j}_check));",
            f"    wire w{j}_we = " + " | ".join(f"wr[{reg}]" for reg in regs) + ";",
            f"    {KEEP_WHY}",
            *[f"    (* keep *) always @(posedge clk) if (w{j}_we) mem_chk[{j}][{c}] <= w{j}_check[{c}];"
              for c in range(r)],
        ]
    return out
