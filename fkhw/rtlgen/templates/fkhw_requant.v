// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_requant: requantize one code: drop SHIFT fractional bits with
// round-half-to-even (tf.round, the QKeras rounding), then saturate to
// [LO, HI] and keep YW bits. SHIFT <= 0 shifts left (no rounding needed).
// Bit-exact with fkhw.model.fixed.requantize.
//
//   x : XW-bit code, two's complement if XSIGNED, else unsigned
//   y : YW-bit code, two's complement or unsigned as the format says
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_requant #(
    parameter integer XW      = 16,  // bits of the input code
    parameter integer XSIGNED = 1,   // 1: input code is two's complement, 0: unsigned
    parameter integer SHIFT   = 1,   // fractional bits dropped (rounded half to even); < 0: bits added
    parameter integer YW      = 8,   // bits of the output code
    parameter integer LO      = 0,   // smallest output code (saturation)
    parameter integer HI      = 255  // largest output code (saturation)
) (
    input  wire [XW-1:0] x,
    output wire [YW-1:0] y
);

    // sign-extend the input by at least one bit, and far enough that the
    // kept part has two bits even when SHIFT >= XW
    localparam integer EW = (XW + 1 > SHIFT + 2) ? XW + 1 : SHIFT + 2;
    localparam integer RS = (SHIFT > 0) ? SHIFT : 0;   // bits dropped
    localparam integer LS = (SHIFT < 0) ? -SHIFT : 0;  // bits added
    localparam integer QW = EW - RS + LS + 1;           // rounded value width
    localparam integer CW = (QW > 33) ? QW : 33;        // compare width

    wire xs = (XSIGNED != 0) ? x[XW-1] : 1'b0;
    wire signed [EW-1:0] xe = {{(EW-XW){xs}}, x};
    wire signed [QW-1:0] q;

    generate
        if (SHIFT > 1) begin : g_round
            // floor(x / 2**SHIFT), then +1 if the remainder is above one half,
            // or exactly one half and the floor is odd
            wire signed [EW-RS-1:0] fl     = xe[EW-1:RS];
            wire                    half   = xe[RS-1];
            wire                    sticky = |xe[RS-2:0];
            wire                    up     = half & (sticky | fl[0]);
            assign q = {fl[EW-RS-1], fl} + {{(QW-1){1'b0}}, up};
        end else if (SHIFT == 1) begin : g_round1
            wire signed [EW-2:0] fl   = xe[EW-1:1];
            wire                 half = xe[0];
            wire                 up   = half & fl[0];
            assign q = {fl[EW-2], fl} + {{(QW-1){1'b0}}, up};
        end else if (SHIFT == 0) begin : g_same
            assign q = {xe[EW-1], xe};
        end else begin : g_left
            assign q = {xe[EW-1], xe, {LS{1'b0}}};
        end
    endgenerate

    // the bounds, sign-extended from 32-bit integers
    /* verilator lint_off WIDTHEXPAND */
    localparam signed [CW-1:0] LO_C = LO;
    localparam signed [CW-1:0] HI_C = HI;
    /* verilator lint_on WIDTHEXPAND */
    wire signed [CW-1:0] qc = {{(CW-QW){q[QW-1]}}, q};

    /* verilator lint_off UNUSEDSIGNAL */
    // only the low YW bits of the saturated value are kept
    wire signed [CW-1:0] sat = (qc < LO_C) ? LO_C : ((qc > HI_C) ? HI_C : qc);
    /* verilator lint_on UNUSEDSIGNAL */
    assign y = sat[YW-1:0];

endmodule
`default_nettype wire
