`default_nettype none
// fkhw_tmr_voter: the logic of WIDTH triplicated bits of fkhw_regfile_tmr
// (one fully protected register, or one protected bit of a partly protected
// one): the bitwise 2-of-3 majority q of replicas a, b, c, disagree (1 where
// the replicas of a bit do not all agree) and d, the value the replicas
// load: cfg_data on a write, and with REFRESH the voted value otherwise. The replica flip-flops
// stay in fkhw_regfile_tmr (mem, mem_b, mem_c: the testbench deposits into
// them by name); only their combinational logic is here.
//
// Why a module of its own: it is the same few gates for every protected
// register of one width, so area synthesis keeps it as hierarchy, maps each
// width once and counts it per instance (fkhw/tmr/area.py), instead of
// handing ABC one network of ~10,000 voters.
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_tmr_voter #(
    parameter integer WIDTH = 1,
    parameter integer REFRESH = 0
) (
    input  wire             we,
    input  wire [WIDTH-1:0] cfg_data,
    input  wire [WIDTH-1:0] a,
    input  wire [WIDTH-1:0] b,
    input  wire [WIDTH-1:0] c,
    output wire [WIDTH-1:0] q,
    output wire [WIDTH-1:0] d,        // what the replicas load on a write or (REFRESH) every clock
    output wire [WIDTH-1:0] disagree
);

    assign q = (a & b) | (a & c) | (b & c);
    assign d = (REFRESH != 0 && !we) ? q : cfg_data;
    assign disagree = (a ^ b) | (a ^ c);

endmodule
`default_nettype wire
