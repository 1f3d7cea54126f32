// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_requant_array: N independent fkhw_requant units, element k of each
// bus at [k*XW +: XW] / [k*YW +: YW] (a quantizer applied to every element of a tensor).
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_requant_array #(
    parameter integer N       = 1,   // number of codes
    parameter integer XW      = 16,  // bits per input code
    parameter integer XSIGNED = 1,   // 1: input codes are two's complement, 0: unsigned
    parameter integer SHIFT   = 1,   // fractional bits dropped (rounded half to even); < 0: bits added
    parameter integer YW      = 8,   // bits per output code
    parameter integer LO      = 0,   // smallest output code (saturation)
    parameter integer HI      = 255  // largest output code (saturation)
) (
    input  wire [N*XW-1:0] x,
    output wire [N*YW-1:0] y
);

    genvar k;
    generate
        for (k = 0; k < N; k = k + 1) begin : g_el
            fkhw_requant #(
                .XW(XW), .XSIGNED(XSIGNED), .SHIFT(SHIFT), .YW(YW), .LO(LO), .HI(HI)
            ) u_rq (
                .x(x[k*XW +: XW]),
                .y(y[k*YW +: YW])
            );
        end
    endgenerate

endmodule
`default_nettype wire
