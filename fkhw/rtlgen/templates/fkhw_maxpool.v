// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_maxpool: 2-D max pooling of codes (1-D pooling is the height-1 case),
// fully unrolled: one fkhw_maxtree per output element (OH x OW x C).
// Tensors are packed channels-last in C order, element k at [k*XW +: XW]:
//   x : (H, W, C)    codes of XW bits
//   y : (OH, OW, C)  codes of XW bits (the max is one of the inputs: exact)
// 'same' padding follows TensorFlow: PT rows on top, PL columns on the left
// (the rest, if any, at the bottom / right). A padded position never wins the
// max, so it is left out: each output compares only the window positions
// inside the image (NV of the KH*KW, in window order; at least one).
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_maxpool #(
    parameter integer H       = 8,  // input height (1 for a 1-D layer)
    parameter integer W       = 8,  // input width
    parameter integer C       = 1,  // channels
    parameter integer KH      = 2,  // window height
    parameter integer KW      = 2,  // window width
    parameter integer SH      = 2,  // stride along the height
    parameter integer SW      = 2,  // stride along the width
    parameter integer PT      = 0,  // rows of padding on top ('same')
    parameter integer PL      = 0,  // columns of padding on the left ('same')
    parameter integer OH      = 4,  // output height
    parameter integer OW      = 4,  // output width
    parameter integer XW      = 8,  // bits per input code
    parameter integer XSIGNED = 1   // 1: input codes are two's complement, 0: unsigned
) (
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [H*W*C*XW-1:0]   x,   // pixels no window covers are unused
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [OH*OW*C*XW-1:0] y
);

    genvar oy, ox, c, ky, kx;
    generate
        for (oy = 0; oy < OH; oy = oy + 1) begin : g_oy
            for (ox = 0; ox < OW; ox = ox + 1) begin : g_ox
                // the window rows / columns inside the image: [KY_LO, KY_HI] x [KX_LO, KX_HI]
                localparam integer KY_LO = (PT - oy * SH > 0) ? PT - oy * SH : 0;
                localparam integer KY_HI = (H - 1 + PT - oy * SH < KH - 1) ? H - 1 + PT - oy * SH : KH - 1;
                localparam integer KX_LO = (PL - ox * SW > 0) ? PL - ox * SW : 0;
                localparam integer KX_HI = (W - 1 + PL - ox * SW < KW - 1) ? W - 1 + PL - ox * SW : KW - 1;
                localparam integer NCV   = KX_HI - KX_LO + 1;
                localparam integer NV    = (KY_HI - KY_LO + 1) * NCV;  // window positions inside the image
                for (c = 0; c < C; c = c + 1) begin : g_c
                    wire [NV*XW-1:0] xwin;  // channel c of the window positions inside the image
                    for (ky = KY_LO; ky <= KY_HI; ky = ky + 1) begin : g_ky
                        for (kx = KX_LO; kx <= KX_HI; kx = kx + 1) begin : g_kx
                            localparam integer V  = (ky - KY_LO) * NCV + (kx - KX_LO);
                            localparam integer IY = oy * SH + ky - PT;
                            localparam integer IX = ox * SW + kx - PL;
                            assign xwin[V*XW +: XW] = x[((IY * W + IX) * C + c)*XW +: XW];
                        end
                    end
                    fkhw_maxtree #(.N(NV), .XW(XW), .XSIGNED(XSIGNED)) u_max (
                        .x(xwin),
                        .y(y[((oy * OW + ox) * C + c)*XW +: XW])
                    );
                end
            end
        end
    endgenerate

endmodule
`default_nettype wire
