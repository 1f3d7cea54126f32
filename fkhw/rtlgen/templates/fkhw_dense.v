// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_dense: a fully connected layer, fully unrolled: one fkhw_dot per
// output, each over all NIN inputs. Packed buses, element k at [k*BITS +: BITS]:
//   x   : (NIN,)        codes of XW bits
//   w   : (NIN, NOUT)   codes of WW bits, C order (from the register file)
//   b   : (NOUT,)       codes of BW bits
//   acc : (NOUT,)       accumulators of ACCW bits
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_dense #(
    parameter integer NIN      = 4,  // number of inputs
    parameter integer NOUT     = 4,  // number of outputs
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
    input  wire [NIN*XW-1:0]       x,
    input  wire [NIN*NOUT*WW-1:0]  w,
    input  wire [NOUT*BW-1:0]      b,
    output wire [NOUT*ACCW-1:0]    acc
);

    genvar j, i;
    generate
        for (j = 0; j < NOUT; j = j + 1) begin : g_out
            wire [NIN*WW-1:0] wcol;  // column j of the kernel
            for (i = 0; i < NIN; i = i + 1) begin : g_in
                assign wcol[i*WW +: WW] = w[(i * NOUT + j)*WW +: WW];
            end
            fkhw_dot #(
                .N(NIN), .XW(XW), .XSIGNED(XSIGNED), .WW(WW), .WSIGNED(WSIGNED),
                .PSHIFT(PSHIFT), .HAS_BIAS(HAS_BIAS), .BW(BW), .BSIGNED(BSIGNED),
                .BSHIFT(BSHIFT), .ACCW(ACCW)
            ) u_dot (
                .x(x),
                .w(wcol),
                .b(b[j*BW +: BW]),
                .acc(acc[j*ACCW +: ACCW])
            );
        end
    endgenerate

endmodule
`default_nettype wire
