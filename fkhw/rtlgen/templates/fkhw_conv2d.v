// fkhw_conv2d: a 2-D convolution, fully unrolled: one fkhw_dot per output
// element (OH x OW x COUT), each over KH*KW*CIN taps. Tensors are packed
// channels-last in C order, element k of a bus at [k*W +: W]:
//   x   : (H, W, CIN)          codes of XW bits
//   w   : (KH, KW, CIN, COUT)  codes of WW bits (from the register file)
//   b   : (COUT,)              codes of BW bits
//   acc : (OH, OW, COUT)       accumulators of AW bits
// Zero padding follows TensorFlow: PT rows on top, PL columns on the left
// (the rest, if any, at the bottom / right); a padded tap contributes 0.
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_conv2d #(
    parameter integer H        = 8,
    parameter integer W        = 8,
    parameter integer CIN      = 1,
    parameter integer COUT     = 1,
    parameter integer KH       = 3,
    parameter integer KW       = 3,
    parameter integer SH       = 1,
    parameter integer SW       = 1,
    parameter integer PT       = 0,
    parameter integer PL       = 0,
    parameter integer OH       = 6,
    parameter integer OW       = 6,
    parameter integer XW       = 8,
    parameter integer XSIGNED  = 1,
    parameter integer WW       = 8,
    parameter integer WSIGNED  = 1,
    parameter integer PSHIFT   = 0,
    parameter integer HAS_BIAS = 1,
    parameter integer BW       = 8,
    parameter integer BSIGNED  = 1,
    parameter integer BSHIFT   = 0,
    parameter integer AW       = 24
) (
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [H*W*CIN*XW-1:0]      x,   // pixels no window covers are unused
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [KH*KW*CIN*COUT*WW-1:0] w,
    input  wire [COUT*BW-1:0]           b,
    output wire [OH*OW*COUT*AW-1:0]     acc
);

    localparam integer NT = KH * KW * CIN;  // taps per output

    genvar oy, ox, co, ky, kx, ci;
    generate
        for (oy = 0; oy < OH; oy = oy + 1) begin : g_oy
            for (ox = 0; ox < OW; ox = ox + 1) begin : g_ox
                for (co = 0; co < COUT; co = co + 1) begin : g_co
                    wire [NT*XW-1:0] xcol;  // the window, in kernel order
                    wire [NT*WW-1:0] wcol;  // kernel column for channel co
                    for (ky = 0; ky < KH; ky = ky + 1) begin : g_ky
                        for (kx = 0; kx < KW; kx = kx + 1) begin : g_kx
                            for (ci = 0; ci < CIN; ci = ci + 1) begin : g_ci
                                localparam integer T  = (ky * KW + kx) * CIN + ci;
                                localparam integer IY = oy * SH + ky - PT;
                                localparam integer IX = ox * SW + kx - PL;
                                if (IY >= 0 && IY < H && IX >= 0 && IX < W) begin : g_in
                                    assign xcol[T*XW +: XW] = x[((IY * W + IX) * CIN + ci)*XW +: XW];
                                end else begin : g_pad
                                    assign xcol[T*XW +: XW] = {XW{1'b0}};
                                end
                                assign wcol[T*WW +: WW] = w[(T * COUT + co)*WW +: WW];
                            end
                        end
                    end
                    fkhw_dot #(
                        .N(NT), .XW(XW), .XSIGNED(XSIGNED), .WW(WW), .WSIGNED(WSIGNED),
                        .PSHIFT(PSHIFT), .HAS_BIAS(HAS_BIAS), .BW(BW), .BSIGNED(BSIGNED),
                        .BSHIFT(BSHIFT), .AW(AW)
                    ) u_dot (
                        .x(xcol),
                        .w(wcol),
                        .b(b[co*BW +: BW]),
                        .acc(acc[((oy * OW + ox) * COUT + co)*AW +: AW])
                    );
                end
            end
        end
    endgenerate

endmodule
