// SPDX-License-Identifier: Apache-2.0
`default_nettype none
// fkhw_regfile_tmr: the parameter register file of fkhw_regfile with
// selective triple modular redundancy. Same registers, addresses and
// configuration port; PMASK chooses, bit by bit, which flip-flops are
// triplicated: PMASK[i*WIDTH + j] = 1 holds Verilog bit j of register i in
// three flip-flops (replicas A, B, C) behind a bitwise majority voter;
// PMASK = 0 there keeps the single flip-flop of the plain register file.
//
//   mem   [i][j]  replica A of a protected bit, and the only copy of an unprotected one
//   mem_b [i][j]  replica B (protected bits only; other bits are constant 0 and never read)
//   mem_c [i][j]  replica C (protected bits only)
//
// A configuration-port write loads all three replicas. q is the voted value
// (2 of 3, fkhw_tmr_voter), so one upset replica changes no output. err is combinational:
// 1 while any protected bit has replicas that disagree (A != B or A != C);
// it clears when the register is rewritten (scrubbed) through the port.
//
// REFRESH = 1 (self-correcting TMR, the refresh TMRG's voters provide): on
// every clock without a write, each replica of a protected bit loads the
// voted value, so an upset replica is repaired at the next edge instead of
// waiting for the scrub; only two replicas upset within one clock defeat it
// (and then the wrong majority is written back into all three).
//
// Each replica is written by its own always block marked (* keep *): Yosys
// would otherwise merge the three identical flip-flops into one (same D,
// same enable) and the voter with them. (* mem2reg *) turns the arrays into
// plain registers in Yosys so the attribute reaches every flip-flop.
// Every replica of a register with any protected bit is one always block for
// the whole register: A's unprotected bits are plain enabled flip-flops (the
// voter passes them through); B and C load 0 into their unprotected bits, so
// that synthesis keeps flip-flops for protected bits only. One voter per
// register (MASK = its protected bits): Yosys' elaboration time grows with
// the number of processes and instances, and per-bit voters and per-bit
// replicas made it the slowest step of a cold `make sim` (bench/bench_area.py).
//
// Part of fkhw (templates are copied verbatim next to the generated top).
module fkhw_regfile_tmr #(
    parameter integer WIDTH = 5,                              // bits per register (the parameter's format)
    parameter integer DEPTH = 1,                              // number of registers
    parameter integer BASE  = 0,                              // configuration address of register 0
    parameter integer ADDRW = 12,                             // bits of cfg_addr
    parameter [DEPTH*WIDTH-1:0] PMASK = {DEPTH*WIDTH{1'b0}},  // bit i*WIDTH+j = 1: bit j of register i triplicated
    parameter integer REFRESH = 0                             // 1: replicas reload the voted value between writes
) (
    input  wire                   clk,
    input  wire                   cfg_we,
    input  wire [ADDRW-1:0]       cfg_addr,
    input  wire [WIDTH-1:0]       cfg_data,
    output wire [DEPTH*WIDTH-1:0] q,
    output wire                   err
);

    (* mem2reg *) reg [WIDTH-1:0] mem   [0:DEPTH-1];
    // replicas B and C exist only where PMASK is set (0 elsewhere, and never read there)
    /* verilator lint_off UNDRIVEN */
    /* verilator lint_off UNUSEDSIGNAL */
    (* mem2reg *) reg [WIDTH-1:0] mem_b [0:DEPTH-1];
    (* mem2reg *) reg [WIDTH-1:0] mem_c [0:DEPTH-1];
    /* verilator lint_on UNUSEDSIGNAL */
    /* verilator lint_on UNDRIVEN */
    // public: Verilator then stores the mismatch bits and ORs them in a loop; inlined, err became
    // expressions hundreds of parentheses deep that took g++ 10 GB per file on econt-bol
    wire [DEPTH*WIDTH-1:0] disagree /* verilator public_flat_rd */;

    genvar i;
    generate
        for (i = 0; i < DEPTH; i = i + 1) begin : g_reg
            localparam integer ADDR = BASE + i;
            localparam [WIDTH-1:0] MASK = PMASK[i*WIDTH +: WIDTH];
            wire we = cfg_we && (cfg_addr == ADDR[ADDRW-1:0]);
            if (MASK == {WIDTH{1'b0}}) begin : g_one
                always @(posedge clk) begin
                    if (we) mem[i] <= cfg_data;
                end
                assign q[i*WIDTH +: WIDTH] = mem[i];
                assign disagree[i*WIDTH +: WIDTH] = {WIDTH{1'b0}};
            end else begin : g_tmr
                // the voter's ports are plain wires: an expression on a port of this parameterised
                // module made Yosys elaborate the whole file twice (again once the voter was derived)
                wire [WIDTH-1:0] rep_a = mem[i];
                wire [WIDTH-1:0] rep_b = mem_b[i] & MASK;
                wire [WIDTH-1:0] rep_c = mem_c[i] & MASK;
                wire [WIDTH-1:0] voted, d, mismatch;
                fkhw_tmr_voter #(.WIDTH(WIDTH), .MASK(MASK), .REFRESH(REFRESH)) u_vote (
                    .we(we), .cfg_data(cfg_data), .a(rep_a), .b(rep_b), .c(rep_c),
                    .q(voted), .d(d), .disagree(mismatch)
                );
                assign q[i*WIDTH +: WIDTH] = voted;
                // B and C are masked (their unprotected bits have no flip-flop), and so is the
                // mismatch: the OR of err then sees the unprotected bits' constant 0, which
                // inside the kept voter is hidden from synthesis
                assign disagree[i*WIDTH +: WIDTH] = mismatch & MASK;
                // unprotected bits of A load on a write only; their hold is decided here, not
                // inside the kept voter, where synthesis could not see it
                (* keep *) always @(posedge clk)
                    if (we) mem[i] <= (d & MASK) | (cfg_data & ~MASK);
                    else if (REFRESH != 0) mem[i] <= (d & MASK) | (mem[i] & ~MASK);
                // B and C load whole registers; their unprotected bits load a constant 0 and
                // synthesis removes those flip-flops (a bit per always block instead made Yosys'
                // elaboration of a large file the slowest step of a cold `make sim`)
                (* keep *) always @(posedge clk) if (we || REFRESH != 0) mem_b[i] <= d & MASK;
                (* keep *) always @(posedge clk) if (we || REFRESH != 0) mem_c[i] <= d & MASK;
            end
        end
    endgenerate

    assign err = |disagree;

endmodule
`default_nettype wire
