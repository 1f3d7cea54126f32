// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_pipe: one pipeline stage: a DW-bit data register (no reset, loaded
// every cycle: the datapath accepts a vector per clock, II=1) and a valid
// flag with a synchronous reset.
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_pipe #(
    parameter integer DW = 8  // bits of the data register
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          d_valid,
    input  wire [DW-1:0] d,
    output reg           q_valid,
    output reg  [DW-1:0] q
);

    always @(posedge clk) begin
        q <= d;
        if (rst) begin
            q_valid <= 1'b0;
        end else begin
            q_valid <= d_valid;
        end
    end

endmodule
`default_nettype wire
