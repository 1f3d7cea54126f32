`default_nettype none
// fkhw_requant_array: N independent fkhw_requant units, element k of each
// bus at [k*XW +: XW] / [k*YW +: YW] (a quantizer applied to every element of a tensor).
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_requant_array #(
    parameter integer N       = 1,
    parameter integer XW      = 16,
    parameter integer XSIGNED = 1,
    parameter integer SHIFT   = 1,
    parameter integer YW      = 8,
    parameter integer LO      = 0,
    parameter integer HI      = 255
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
