// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_regfile: DEPTH parameter registers of WIDTH bits each, one register
// per parameter (weight or bias code), written through the configuration
// port. Register i answers at address BASE+i. Every bit is a flip-flop; the
// registers have no reset: weights are loaded after power-up through the
// configuration port, as the ECON-T ASIC loads its weights.
//
// q[i*WIDTH +: WIDTH] is the two's-complement (or unsigned) code of register i.
// Verilog bit WIDTH-1 of a register is fkhw site bit 0 (the MSB / sign bit).
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_regfile #(
    parameter integer WIDTH = 5,  // bits per register (the parameter's format)
    parameter integer DEPTH = 1,  // number of registers
    parameter integer BASE  = 0,  // configuration address of register 0
    parameter integer ADDRW = 12  // bits of cfg_addr
) (
    input  wire                   clk,
    input  wire                   cfg_we,
    input  wire [ADDRW-1:0]       cfg_addr,
    input  wire [WIDTH-1:0]       cfg_data,
    output wire [DEPTH*WIDTH-1:0] q
);

    // One indexed write instead of one address compare per register (DEPTH
    // compares per clock cost a simulator about as much as the datapath).
    // offset wraps below BASE to at least 2**ADDRW - BASE >= DEPTH, so one
    // compare checks both ends of the range.
    localparam integer IW = (DEPTH > 1) ? $clog2(DEPTH) : 1;  // register index bits (<= ADDRW)
    localparam [ADDRW-1:0] FIRST = BASE[ADDRW-1:0];

    (* mem2reg *) reg [WIDTH-1:0] mem [0:DEPTH-1];

    wire [ADDRW-1:0] offset = cfg_addr - FIRST;
    wire             hit;
    generate
        if (DEPTH < (1 << ADDRW)) begin : g_range
            localparam [ADDRW-1:0] COUNT = DEPTH[ADDRW-1:0];
            assign hit = cfg_we && (offset < COUNT);
        end else begin : g_all  // one register file holds the whole address space
            assign hit = cfg_we;
        end
    endgenerate

    always @(posedge clk) begin
        if (hit) begin
            mem[offset[IW-1:0]] <= cfg_data;
        end
    end

    genvar i;
    generate
        for (i = 0; i < DEPTH; i = i + 1) begin : g_reg
            assign q[i*WIDTH +: WIDTH] = mem[i];
        end
    endgenerate

endmodule
`default_nettype wire
