// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_addtree: a balanced adder tree over N two's-complement terms of XW
// bits each (term k at x[k*XW +: XW]). The tree splits its terms in two
// halves (the first one takes the odd term), sums each half in its own
// subtree and adds the two halves, so the depth is $clog2(N) adders and
// every sum is exactly as wide as its range needs: a subtree over n terms
// yields XW + $clog2(n) bits, one more per level. Never overflows.
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_addtree #(
    parameter integer N  = 2,  // number of terms
    parameter integer XW = 8   // bits per term (two's complement)
) (
    input  wire [N*XW-1:0]           x,
    output wire [XW+$clog2(N)-1:0]   y
);

    localparam integer YW = XW + $clog2(N);

    generate
        if (N == 1) begin : g_leaf
            assign y = x;
        end else begin : g_split
            localparam integer NA  = (N + 1) / 2;
            localparam integer NB  = N - NA;
            localparam integer YAW = XW + $clog2(NA);  // = YW - 1
            localparam integer YBW = XW + $clog2(NB);  // <= YW - 1
            wire [YAW-1:0] ya;
            wire [YBW-1:0] yb;
            fkhw_addtree #(.N(NA), .XW(XW)) u_a (.x(x[NA*XW-1:0]),    .y(ya));
            fkhw_addtree #(.N(NB), .XW(XW)) u_b (.x(x[N*XW-1:NA*XW]), .y(yb));
            wire [YW-1:0] sa = {{(YW-YAW){ya[YAW-1]}}, ya};
            wire [YW-1:0] sb = {{(YW-YBW){yb[YBW-1]}}, yb};
            assign y = sa + sb;
        end
    endgenerate

endmodule
`default_nettype wire
