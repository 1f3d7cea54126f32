// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_tmr_voter: the logic of one register of fkhw_regfile_tmr whose bits
// MASK are triplicated: for those bits the bitwise 2-of-3 majority q of
// replicas a, b, c and disagree (1 where the replicas of a bit do not all
// agree); the other bits have only replica a (b and c are not read there),
// pass it through to q and never disagree. d is the value the replicas load:
// cfg_data on a write, and with REFRESH the voted value otherwise. Outside
// MASK, d is cfg_data and q is a: wires, no gates, so that the voter's area
// is that of its protected bits (the register file decides when an
// unprotected bit loads). The replica flip-flops
// stay in fkhw_regfile_tmr (mem, mem_b, mem_c: the testbench deposits into
// them by name); only their combinational logic is here.
//
// Why a module of its own: it is the same few gates for every protected
// register of one width and mask, so area synthesis keeps it as hierarchy, maps each
// version once and counts it per instance (fkhw/tmr/area.py), instead of
// handing ABC one network of ~10,000 voters.
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_tmr_voter #(
    parameter integer WIDTH = 1,                 // bits of the register
    parameter [WIDTH-1:0] MASK = {WIDTH{1'b1}},  // bit j = 1: bit j has three replicas and is voted
    parameter integer REFRESH = 0                // 1: between writes d is the voted value (self-correcting)
) (
    input  wire             we,
    input  wire [WIDTH-1:0] cfg_data,
    input  wire [WIDTH-1:0] a,
    /* verilator lint_off UNUSEDSIGNAL */  // bits outside MASK
    input  wire [WIDTH-1:0] b,
    input  wire [WIDTH-1:0] c,
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [WIDTH-1:0] q,
    output wire [WIDTH-1:0] d,        // what the replicas load on a write or (REFRESH) every clock
    output wire [WIDTH-1:0] disagree
);

    /* verilator lint_off UNUSEDSIGNAL */
    wire [WIDTH-1:0] vote = (a & b) | (a & c) | (b & c);
    /* verilator lint_on UNUSEDSIGNAL */
    assign q = (vote & MASK) | (a & ~MASK);
    assign d = (((REFRESH != 0 && !we) ? vote : cfg_data) & MASK) | (cfg_data & ~MASK);
    assign disagree = ((a ^ b) | (a ^ c)) & MASK;

endmodule
`default_nettype wire
