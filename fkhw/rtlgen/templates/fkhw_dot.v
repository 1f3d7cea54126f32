// fkhw_dot: one output of a MAC layer: acc = (sum_i x_i * w_i) << PSHIFT
//                                          + (b << BSHIFT)      (if HAS_BIAS)
// Exact integer arithmetic in AW bits (AW comes from the IR's worst-case
// bounds over any register contents, so it cannot overflow, even with a
// flipped weight bit). Operands are codes; XSIGNED/WSIGNED/BSIGNED say
// whether a code is two's complement or unsigned.
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_dot #(
    parameter integer N        = 1,
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
    input  wire [N*XW-1:0] x,
    input  wire [N*WW-1:0] w,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [BW-1:0]   b,   // unused when HAS_BIAS == 0
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [AW-1:0]   acc
);

    wire signed [AW-1:0] psum [0:N];
    assign psum[0] = {AW{1'b0}};

    genvar i;
    generate
        for (i = 0; i < N; i = i + 1) begin : g_term
            wire                 xsgn = (XSIGNED != 0) ? x[i*XW + XW-1] : 1'b0;
            wire                 wsgn = (WSIGNED != 0) ? w[i*WW + WW-1] : 1'b0;
            wire signed [AW-1:0] xe   = {{(AW-XW){xsgn}}, x[i*XW +: XW]};
            wire signed [AW-1:0] we   = {{(AW-WW){wsgn}}, w[i*WW +: WW]};
            wire signed [AW-1:0] prod = xe * we;
            assign psum[i+1] = psum[i] + prod;
        end

        if (HAS_BIAS != 0) begin : g_bias
            wire                 bsgn = (BSIGNED != 0) ? b[BW-1] : 1'b0;
            wire signed [AW-1:0] be   = {{(AW-BW){bsgn}}, b};
            assign acc = (psum[N] <<< PSHIFT) + (be <<< BSHIFT);
        end else begin : g_nobias
            assign acc = psum[N] <<< PSHIFT;
        end
    endgenerate

endmodule
