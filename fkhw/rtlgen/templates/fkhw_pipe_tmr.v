// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_pipe_tmr: the pipeline stage of fkhw_pipe with selective triple
// modular redundancy. PMASK chooses, bit by bit, which data flip-flops are
// triplicated (PMASK[j] = 1: bit j held in data_a, data_b, data_c behind a
// bitwise 2-of-3 majority voter; 0: data_a alone, as in fkhw_pipe); VTMR = 1
// triplicates the valid flag (valid_a, valid_b, valid_c, voted).
//
//   data_a[j], valid_a   replica A (the only copy of an unprotected bit)
//   data_b[j], data_c[j] replicas B, C (protected bits only; others neither driven nor read)
//   valid_b, valid_c     replicas B, C of the valid flag (VTMR = 1)
//
// Every replica loads its input every clock, so an upset replica is wrong
// for one clock; the voter masks it, and only two replicas of one bit upset
// in the same clock change q. err is combinational: 1 while any protected
// bit's replicas disagree (A != B or A != C); the top ORs it into tmr_err.
//
// Each replica is its own always block marked (* keep *) (Yosys would merge
// identical flip-flops: same D, same clock); unprotected bits are plain
// flip-flops, removed by synthesis when nobody reads them, as in fkhw_pipe.
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_pipe_tmr #(
    parameter integer DW = 8,               // bits of the data register
    parameter [DW-1:0] PMASK = {DW{1'b0}},  // bit j = 1: data bit j is triplicated
    parameter integer VTMR = 0              // 1: the valid flag is triplicated
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          d_valid,
    input  wire [DW-1:0] d,
    output wire          q_valid,
    output wire [DW-1:0] q,
    output wire          err
);

    reg [DW-1:0] data_a;
    /* verilator lint_off UNDRIVEN */
    /* verilator lint_off UNUSEDSIGNAL */
    reg [DW-1:0] data_b, data_c;
    reg          valid_b, valid_c;
    /* verilator lint_on UNUSEDSIGNAL */
    /* verilator lint_on UNDRIVEN */
    reg          valid_a;
    wire [DW-1:0] disagree;
    wire          v_disagree;

    genvar j;
    generate
        for (j = 0; j < DW; j = j + 1) begin : g_bit
            if (PMASK[j]) begin : g_tmr
                (* keep *) always @(posedge clk) data_a[j] <= d[j];
                (* keep *) always @(posedge clk) data_b[j] <= d[j];
                (* keep *) always @(posedge clk) data_c[j] <= d[j];
                assign q[j] = (data_a[j] & data_b[j]) | (data_a[j] & data_c[j]) | (data_b[j] & data_c[j]);
                assign disagree[j] = (data_a[j] ^ data_b[j]) | (data_a[j] ^ data_c[j]);
            end else begin : g_one
                always @(posedge clk) data_a[j] <= d[j];
                assign q[j] = data_a[j];
                assign disagree[j] = 1'b0;
            end
        end
        if (VTMR != 0) begin : g_vtmr
            (* keep *) always @(posedge clk) valid_a <= rst ? 1'b0 : d_valid;
            (* keep *) always @(posedge clk) valid_b <= rst ? 1'b0 : d_valid;
            (* keep *) always @(posedge clk) valid_c <= rst ? 1'b0 : d_valid;
            assign q_valid = (valid_a & valid_b) | (valid_a & valid_c) | (valid_b & valid_c);
            assign v_disagree = (valid_a ^ valid_b) | (valid_a ^ valid_c);
        end else begin : g_vone
            always @(posedge clk) valid_a <= rst ? 1'b0 : d_valid;
            assign q_valid = valid_a;
            assign v_disagree = 1'b0;
        end
    endgenerate

    assign err = (|disagree) | v_disagree;

endmodule
`default_nettype wire
