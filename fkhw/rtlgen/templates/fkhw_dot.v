// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_dot: one output of a MAC layer: acc = (sum_i x_i * w_i) << PSHIFT
//                                          + (b << BSHIFT)      (if HAS_BIAS)
// Operands are codes; XSIGNED/WSIGNED/BSIGNED say whether a code is two's
// complement or unsigned. Widths follow the operands:
//   product  x_i * w_i   PW = XW + WW bits (one more if both are unsigned),
//                        exact for any codes;
//   sum      fkhw_addtree, a balanced tree of $clog2(N) adder levels,
//                        PW + $clog2(N) bits;
//   acc      ACCW bits, from the IR's worst-case bounds over any register
//                        contents (an upset weight bit cannot overflow it).
// The sum is brought to ACCW bits before the shift and the bias: two's-
// complement arithmetic is exact modulo 2**ACCW and the result fits in ACCW
// bits, so dropping sum bits above ACCW loses nothing.
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_dot #(
    parameter integer N        = 1,  // number of products x_i * w_i
    parameter integer XW       = 8,  // bits per input code
    parameter integer XSIGNED  = 1,  // 1: input codes are two's complement, 0: unsigned
    parameter integer WW       = 8,  // bits per weight code
    parameter integer WSIGNED  = 1,  // 1: weight codes are two's complement, 0: unsigned
    parameter integer PSHIFT   = 0,  // left shift of the products onto the accumulator's fractional bits
    parameter integer HAS_BIAS = 1,  // 1: add the bias b, 0: no bias (b unused)
    parameter integer BW       = 8,  // bits per bias code
    parameter integer BSIGNED  = 1,  // 1: bias codes are two's complement, 0: unsigned
    parameter integer BSHIFT   = 0,  // left shift of the bias onto the accumulator's fractional bits
    parameter integer ACCW     = 24  // bits per accumulator (holds any result, see above)
) (
    input  wire [N*XW-1:0] x,
    input  wire [N*WW-1:0] w,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [BW-1:0]   b,   // unused when HAS_BIAS == 0
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [ACCW-1:0] acc
);

    localparam integer XEW  = XW + ((XSIGNED != 0) ? 0 : 1);  // x as a signed operand
    localparam integer WEW  = WW + ((WSIGNED != 0) ? 0 : 1);  // w as a signed operand
    localparam integer MULW = XEW + WEW;                      // width of the signed multiply
    localparam integer PW   = XW + WW + ((XSIGNED == 0 && WSIGNED == 0) ? 1 : 0);  // product width
    localparam integer SUMW = PW + $clog2(N);                 // the adder tree's sum width

    wire [N*PW-1:0] prods;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [SUMW-1:0] sum;       // bits above ACCW (if any) are not needed
    /* verilator lint_on UNUSEDSIGNAL */

    genvar i;
    generate
        for (i = 0; i < N; i = i + 1) begin : g_term
            wire [XEW-1:0] xs;
            wire [WEW-1:0] ws;
            if (XSIGNED != 0) begin : g_xs
                assign xs = x[i*XW +: XW];
            end else begin : g_xu
                assign xs = {1'b0, x[i*XW +: XW]};
            end
            if (WSIGNED != 0) begin : g_ws
                assign ws = w[i*WW +: WW];
            end else begin : g_wu
                assign ws = {1'b0, w[i*WW +: WW]};
            end
            // signed XEW x WEW multiply; the product of any codes fits in PW bits
            wire signed [MULW-1:0] xm = {{WEW{xs[XEW-1]}}, xs};
            wire signed [MULW-1:0] wm = {{XEW{ws[WEW-1]}}, ws};
            /* verilator lint_off UNUSEDSIGNAL */
            wire signed [MULW-1:0] prod = xm * wm;   // bits above PW only repeat the sign
            /* verilator lint_on UNUSEDSIGNAL */
            assign prods[i*PW +: PW] = prod[PW-1:0];
        end
    endgenerate

    fkhw_addtree #(.N(N), .XW(PW)) u_tree (.x(prods), .y(sum));

    wire [ACCW-1:0] sum_acc;  // the sum at accumulator width (exact, see above)
    generate
        if (SUMW >= ACCW) begin : g_narrow
            assign sum_acc = sum[ACCW-1:0];
        end else begin : g_wide
            assign sum_acc = {{(ACCW-SUMW){sum[SUMW-1]}}, sum};
        end
        if (HAS_BIAS != 0) begin : g_bias
            wire            bsgn = (BSIGNED != 0) ? b[BW-1] : 1'b0;
            wire [ACCW-1:0] be   = {{(ACCW-BW){bsgn}}, b};
            assign acc = (sum_acc << PSHIFT) + (be << BSHIFT);
        end else begin : g_nobias
            assign acc = sum_acc << PSHIFT;
        end
    endgenerate

endmodule
`default_nettype wire
