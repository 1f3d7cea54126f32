// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_avgpool: QKeras' QAveragePooling2D on codes (1-D pooling is the
// height-1 case), fully unrolled: for each output element (OH x OW x C)
//   y = (sum of the KH*KW window codes) * MULT
// where MULT is the code of the quantized reciprocal of the pool area. The
// IR accepts this layer only where it is exact (a power-of-two area and no
// padding), so there is no rounding here: y carries the input's fractional
// bits plus those of MULT. Widths follow the operands:
//   term  x as a signed operand, XEW = XW (+1 if unsigned);
//   sum   fkhw_addtree, XEW + $clog2(KH*KW) bits, exact;
//   y     YW bits, from the range of any input code times the area times
//         MULT, so the product always fits; two's complement if XSIGNED,
//         else unsigned (the product is never negative).
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_avgpool #(
    parameter integer H       = 8,  // input height (1 for a 1-D layer)
    parameter integer W       = 8,  // input width
    parameter integer C       = 1,  // channels
    parameter integer KH      = 2,  // window height
    parameter integer KW      = 2,  // window width
    parameter integer SH      = 2,  // stride along the height
    parameter integer SW      = 2,  // stride along the width
    parameter integer OH      = 4,  // output height
    parameter integer OW      = 4,  // output width
    parameter integer XW      = 8,  // bits per input code
    parameter integer XSIGNED = 1,  // 1: input codes are two's complement, 0: unsigned
    parameter integer MW      = 2,  // bits of MULT (unsigned)
    parameter integer MULT    = 1,  // the code of 1/area (unsigned, > 0)
    parameter integer YW      = 12  // bits per output code (the product always fits)
) (
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [H*W*C*XW-1:0]   x,   // pixels no window covers are unused
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [OH*OW*C*YW-1:0] y
);

    localparam integer N    = KH * KW;
    localparam integer XEW  = XW + ((XSIGNED != 0) ? 0 : 1);
    localparam integer SUMW = XEW + $clog2(N);
    localparam integer PW   = SUMW + MW + 1;  // signed sum times the unsigned MULT
    localparam [MW-1:0] M   = MULT[MW-1:0];

    genvar oy, ox, c, ky, kx;
    generate
        for (oy = 0; oy < OH; oy = oy + 1) begin : g_oy
            for (ox = 0; ox < OW; ox = ox + 1) begin : g_ox
                for (c = 0; c < C; c = c + 1) begin : g_c
                    wire [N*XEW-1:0] terms;  // channel c of the window, window order, as signed operands
                    for (ky = 0; ky < KH; ky = ky + 1) begin : g_ky
                        for (kx = 0; kx < KW; kx = kx + 1) begin : g_kx
                            wire [XW-1:0] xi = x[(((oy * SH + ky) * W + ox * SW + kx) * C + c)*XW +: XW];
                            if (XSIGNED != 0) begin : g_signed
                                assign terms[(ky * KW + kx)*XEW +: XEW] = xi;
                            end else begin : g_unsigned
                                assign terms[(ky * KW + kx)*XEW +: XEW] = {1'b0, xi};
                            end
                        end
                    end
                    wire [SUMW-1:0] sum;
                    fkhw_addtree #(.N(N), .XW(XEW)) u_sum (.x(terms), .y(sum));
                    /* verilator lint_off UNUSEDSIGNAL */
                    wire signed [PW-1:0] prod = $signed({{(PW-SUMW){sum[SUMW-1]}}, sum})
                                              * $signed({{(PW-MW){1'b0}}, M});
                    /* verilator lint_on UNUSEDSIGNAL */
                    assign y[((oy * OW + ox) * C + c)*YW +: YW] = prod[YW-1:0];
                end
            end
        end
    endgenerate

endmodule
`default_nettype wire
