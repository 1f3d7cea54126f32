// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_conv2d: a 2-D convolution, fully unrolled: one fkhw_dot per output
// element (OH x OW x COUT). Tensors are packed channels-last in C order,
// element k of a bus at [k*BITS +: BITS]:
//   x   : (H, W, CIN)          codes of XW bits
//   w   : (KH, KW, CIN, COUT)  codes of WW bits (from the register file)
//   b   : (COUT,)              codes of BW bits
//   acc : (OH, OW, COUT)       accumulators of ACCW bits
// Zero padding follows TensorFlow: PT rows on top, PL columns on the left
// (the rest, if any, at the bottom / right). A padded tap contributes 0, so
// it is left out: each output's fkhw_dot sums only the taps whose window
// position lies inside the image (NV of the KH*KW*CIN, in kernel order).
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_conv2d #(
    parameter integer H        = 8,  // input height (1 for a 1-D layer)
    parameter integer W        = 8,  // input width
    parameter integer CIN      = 1,  // input channels
    parameter integer COUT     = 1,  // output channels (filters)
    parameter integer KH       = 3,  // window height
    parameter integer KW       = 3,  // window width
    parameter integer SH       = 1,  // stride along the height
    parameter integer SW       = 1,  // stride along the width
    parameter integer PT       = 0,  // rows of padding on top ('same')
    parameter integer PL       = 0,  // columns of padding on the left ('same')
    parameter integer OH       = 6,  // output height
    parameter integer OW       = 6,  // output width
    parameter integer XW       = 8,  // bits per input code
    parameter integer XSIGNED  = 1,  // 1: input codes are two's complement, 0: unsigned
    parameter integer WW       = 8,  // bits per weight code
    parameter integer WSIGNED  = 1,  // 1: weight codes are two's complement, 0: unsigned
    parameter integer PSHIFT   = 0,  // left shift of the products onto the accumulator's fractional bits
    parameter integer HAS_BIAS = 1,  // 1: add the bias b, 0: no bias (b unused)
    parameter integer BW       = 8,  // bits per bias code
    parameter integer BSIGNED  = 1,  // 1: bias codes are two's complement, 0: unsigned
    parameter integer BSHIFT   = 0,  // left shift of the bias onto the accumulator's fractional bits
    parameter integer ACCW     = 24  // bits per accumulator (holds any result, see fkhw_dot)
) (
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [H*W*CIN*XW-1:0]        x,   // pixels no window covers are unused
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [KH*KW*CIN*COUT*WW-1:0] w,
    input  wire [COUT*BW-1:0]           b,
    output wire [OH*OW*COUT*ACCW-1:0]   acc
);

    genvar oy, ox, co, ky, kx, ci;
    generate
        for (oy = 0; oy < OH; oy = oy + 1) begin : g_oy
            for (ox = 0; ox < OW; ox = ox + 1) begin : g_ox
                // the kernel rows / columns whose window position is inside the image: a
                // contiguous range each, [KY_LO, KY_HI] x [KX_LO, KX_HI]
                localparam integer KY_LO = (PT - oy * SH > 0) ? PT - oy * SH : 0;
                localparam integer KY_HI = (H - 1 + PT - oy * SH < KH - 1) ? H - 1 + PT - oy * SH : KH - 1;
                localparam integer KX_LO = (PL - ox * SW > 0) ? PL - ox * SW : 0;
                localparam integer KX_HI = (W - 1 + PL - ox * SW < KW - 1) ? W - 1 + PL - ox * SW : KW - 1;
                localparam integer NCV   = KX_HI - KX_LO + 1;
                localparam integer NV    = (KY_HI - KY_LO + 1) * NCV * CIN;  // taps inside the image
                for (co = 0; co < COUT; co = co + 1) begin : g_co
                    wire [NV*XW-1:0] xcol;  // the window's pixels inside the image, kernel order
                    wire [NV*WW-1:0] wcol;  // the matching kernel entries for channel co
                    for (ky = 0; ky < KH; ky = ky + 1) begin : g_ky
                        for (kx = 0; kx < KW; kx = kx + 1) begin : g_kx
                            for (ci = 0; ci < CIN; ci = ci + 1) begin : g_ci
                                localparam integer T  = (ky * KW + kx) * CIN + ci;
                                localparam integer V  = ((ky - KY_LO) * NCV + (kx - KX_LO)) * CIN + ci;  // in xcol
                                localparam integer IY = oy * SH + ky - PT;
                                localparam integer IX = ox * SW + kx - PL;
                                if (IY >= 0 && IY < H && IX >= 0 && IX < W) begin : g_in
                                    assign xcol[V*XW +: XW] = x[((IY * W + IX) * CIN + ci)*XW +: XW];
                                    assign wcol[V*WW +: WW] = w[(T * COUT + co)*WW +: WW];
                                end
                            end
                        end
                    end
                    fkhw_dot #(
                        .N(NV), .XW(XW), .XSIGNED(XSIGNED), .WW(WW), .WSIGNED(WSIGNED),
                        .PSHIFT(PSHIFT), .HAS_BIAS(HAS_BIAS), .BW(BW), .BSIGNED(BSIGNED),
                        .BSHIFT(BSHIFT), .ACCW(ACCW)
                    ) u_dot (
                        .x(xcol),
                        .w(wcol),
                        .b(b[co*BW +: BW]),
                        .acc(acc[((oy * OW + ox) * COUT + co)*ACCW +: ACCW])
                    );
                end
            end
        end
    endgenerate

endmodule
`default_nettype wire
