// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_maxtree: the largest of N codes of XW bits (term k at x[k*XW +: XW]),
// two's complement if XSIGNED, else unsigned. A balanced tree of $clog2(N)
// comparator levels, split like fkhw_addtree (the first half takes the odd
// term). On a tie either term is the same code, so the order does not matter.
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_maxtree #(
    parameter integer N       = 2,  // number of codes
    parameter integer XW      = 8,  // bits per code
    parameter integer XSIGNED = 1   // 1: codes are two's complement, 0: unsigned
) (
    input  wire [N*XW-1:0] x,
    output wire [XW-1:0]   y
);

    generate
        if (N == 1) begin : g_leaf
            assign y = x;
        end else begin : g_split
            localparam integer NA = (N + 1) / 2;
            localparam integer NB = N - NA;
            wire [XW-1:0] ya;
            wire [XW-1:0] yb;
            wire          b_wins;
            fkhw_maxtree #(.N(NA), .XW(XW), .XSIGNED(XSIGNED)) u_a (.x(x[NA*XW-1:0]),    .y(ya));
            fkhw_maxtree #(.N(NB), .XW(XW), .XSIGNED(XSIGNED)) u_b (.x(x[N*XW-1:NA*XW]), .y(yb));
            if (XSIGNED != 0) begin : g_signed
                assign b_wins = $signed(yb) > $signed(ya);
            end else begin : g_unsigned
                assign b_wins = yb > ya;
            end
            assign y = b_wins ? yb : ya;
        end
    endgenerate

endmodule
`default_nettype wire
