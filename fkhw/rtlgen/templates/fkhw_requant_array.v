// fkhw_requant_array: N independent fkhw_requant units, element k of each
// bus at [k*W +: W] (a quantizer applied to every element of a tensor).
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_requant_array #(
    parameter integer N       = 1,
    parameter integer IW      = 16,
    parameter integer ISIGNED = 1,
    parameter integer SHIFT   = 1,
    parameter integer OW      = 8,
    parameter integer LO      = 0,
    parameter integer HI      = 255
) (
    input  wire [N*IW-1:0] x,
    output wire [N*OW-1:0] y
);

    genvar k;
    generate
        for (k = 0; k < N; k = k + 1) begin : g_el
            fkhw_requant #(
                .IW(IW), .ISIGNED(ISIGNED), .SHIFT(SHIFT), .OW(OW), .LO(LO), .HI(HI)
            ) u_rq (
                .x(x[k*IW +: IW]),
                .y(y[k*OW +: OW])
            );
        end
    endgenerate

endmodule
