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

from fkhw.faults.codes import Parity, SecDed
from fkhw.rtlgen.verilog import SPDX


def module_names(code) -> tuple:
    """(encoder, decoder) module names of ``code``."""
    kind = "secded" if isinstance(code, SecDed) else "parity"
    return f"fkhw_{kind}_enc_k{code.data_bits}", f"fkhw_{kind}_dec_k{code.data_bits}"


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


def regfile_module(code: SecDed) -> str:
    """The name of the register file that keeps each register as one
    ``code`` word (data and check bits)."""
    return f"fkhw_regfile_secded_k{code.data_bits}"


def regfile_verilog(code: SecDed) -> str:
    """A register file of DEPTH registers, each one word of ``code``: the
    write path stores the data and its check bits, the read path passes each
    register through its decoder, so one upset in any of its flip-flops
    (data or check) never reaches the datapath; the flags OR over the
    registers. The same ports as fkhw_regfile plus the two flags; the data
    bits are in ``mem`` (as in fkhw_regfile: the testbench upsets them by
    that name), the check bits in ``mem_chk``."""
    k, r = code.data_bits, code.check_bits
    enc, dec = module_names(code)
    name = regfile_module(code)
    return "\n".join([
        SPDX,
        "`default_nettype none",
        f"// {name}: DEPTH parameter registers of {k} bits, each stored with its {r} check bits",
        f"// ({code.label}: {enc}, {dec}), written through the configuration port. Register i",
        "// answers at address BASE+i; no reset (weights are loaded after power-up).",
        "// q[i*WIDTH +: WIDTH] is register i as its decoder corrects it; err_single: some register",
        "// holds one upset (corrected on the way out, still stored until the next write); err_double:",
        "// some register holds an error its code cannot correct.",
        "// Generated by fkhw.rtlgen.codes. Do not edit.",
        f"module {name} #(",
        "    parameter integer DEPTH = 1,  // number of registers",
        "    parameter integer BASE  = 0,  // configuration address of register 0",
        "    parameter integer ADDRW = 12  // bits of cfg_addr",
        ") (",
        "    input  wire                   clk,",
        "    input  wire                   cfg_we,",
        "    input  wire [ADDRW-1:0]       cfg_addr,",
        f"    input  wire [{k - 1}:0]             cfg_data,",
        f"    output wire [DEPTH*{k}-1:0]     q,",
        "    output wire                   err_single,",
        "    output wire                   err_double",
        ");",
        "",
        "    // the write decode of fkhw_regfile: one indexed write, one range compare",
        "    localparam integer IW = (DEPTH > 1) ? $clog2(DEPTH) : 1;",
        "    localparam [ADDRW-1:0] FIRST = BASE[ADDRW-1:0];",
        "",
        f"    (* mem2reg *) reg [{k - 1}:0] mem [0:DEPTH-1];      // data bits",
        f"    (* mem2reg *) reg [{r - 1}:0] mem_chk [0:DEPTH-1];  // check bits",
        "",
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
        f"    wire [{r - 1}:0] cfg_check;",
        f"    {enc} u_enc (.data(cfg_data), .check(cfg_check));",
        "",
        "    always @(posedge clk) begin",
        "        if (hit) begin",
        "            mem[offset[IW-1:0]]     <= cfg_data;",
        "            mem_chk[offset[IW-1:0]] <= cfg_check;",
        "        end",
        "    end",
        "",
        "    wire [DEPTH-1:0] single, double;",
        "    genvar i;",
        "    generate",
        "        for (i = 0; i < DEPTH; i = i + 1) begin : g_reg",
        f"            {dec} u_dec (.data(mem[i]), .check(mem_chk[i]), .data_out(q[i*{k} +: {k}]),",
        "                .err_single(single[i]), .err_double(double[i]));",
        "        end",
        "    endgenerate",
        "    assign err_single = |single;",
        "    assign err_double = |double;",
        "",
        "endmodule",
        "`default_nettype wire",
        "",
    ])
