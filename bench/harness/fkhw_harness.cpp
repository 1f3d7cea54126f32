// fkhw_harness: a pure C++ Verilator harness of the generated fkhw_encoder,
// the baseline bench/bench_rtl_harness.py compares `fkhw campaign --level rtl`
// with. No cocotb, no VPI: main() instantiates the verilated encoder, loads
// the weights once through the configuration port, then for every site in
// [lo, hi) deposits the flipped register value straight into the register
// file's `mem` member, streams the N input vectors at II = 1 (one per clock),
// records the N outputs and restores the register.
//
// The design-specific part (register files, port widths, latency) comes from
// fkhw_harness_design.h, written by bench_rtl_harness.py from the RTL
// metadata (fkhw_encoder.json).
//
// With FKHW_DEPOSIT_PORT defined the top is instead a wrapper (written by the
// bench) whose always block writes dep_val into register dep_addr's `mem`
// by hierarchical reference at a clock edge when dep_en is 1: the upset is
// still a write into the flip-flops at a chosen cycle, made from HDL, so the
// memories stay private; the restore then takes one more clock.
//
// Site numbering is fkhw's (fkhw.sites): site = site_offset + index*bits + bit
// with bit 0 = MSB, i.e. Verilog bit bits-1-bit of mem[index].
//
// usage: fkhw_harness DATA_DIR LO HI OUT_FILE
//   DATA_DIR/stim.bin     N vectors of in_data, IN_WORDS little-endian uint32 each
//   DATA_DIR/weights.bin  NREG register bit patterns, one uint32 each
//   OUT_FILE              written: (HI-LO) x N outputs, OUT_WORDS uint32 each
// Prints "load_s <s> run_s <s> clocks <n>" on stdout.

#include "Vfkhw_encoder.h"
#include "Vfkhw_encoder___024root.h"
#include "verilated.h"

#include "fkhw_harness_design.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <vector>

namespace {

constexpr int IN_WORDS = (FKHW_IN_BITS + 31) / 32;
constexpr int OUT_WORDS = (FKHW_OUT_BITS + 31) / 32;

// port <-> uint32 words, whatever C++ type Verilator gave the port
template <std::size_t N>
void put(VlWide<N>& p, const uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) p[i] = w[i];
}
void put(QData& p, const uint32_t* w) { p = w[0] | (IN_WORDS > 1 ? uint64_t(w[1]) << 32 : 0); }
void put(IData& p, const uint32_t* w) { p = w[0]; }
void put(SData& p, const uint32_t* w) { p = SData(w[0]); }
void put(CData& p, const uint32_t* w) { p = CData(w[0]); }

template <std::size_t N>
void get(const VlWide<N>& p, uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) w[i] = p[i];
}
void get(QData p, uint32_t* w) {
    w[0] = uint32_t(p);
    if (OUT_WORDS > 1) w[1] = uint32_t(p >> 32);
}
void get(IData p, uint32_t* w) { w[0] = p; }
void get(SData p, uint32_t* w) { w[0] = p; }
void get(CData p, uint32_t* w) { w[0] = p; }

// one parameter register file: its sites and its `mem` member
struct RegFile {
    long site_offset;
    int count;
    int bits;
    std::function<uint32_t(int)> read;
    std::function<void(int, uint32_t)> write;
};

template <class Mem>
RegFile regfile(long site_offset, int count, int bits, Mem& mem) {
    return {site_offset, count, bits, [&mem](int i) { return uint32_t(mem[i]); },
            [&mem](int i, uint32_t v) { mem[i] = v; }};
}

std::vector<uint32_t> read_words(const std::string& path, size_t n) {
    std::vector<uint32_t> v(n);
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f || std::fread(v.data(), 4, n, f) != n) {
        std::fprintf(stderr, "fkhw_harness: cannot read %zu words from %s\n", n, path.c_str());
        std::exit(2);
    }
    std::fclose(f);
    return v;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s DATA_DIR LO HI OUT_FILE\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    const long lo = std::atol(argv[2]), hi = std::atol(argv[3]);
    FILE* probe = std::fopen((dir + "/stim.bin").c_str(), "rb");
    if (!probe) {
        std::fprintf(stderr, "fkhw_harness: no %s/stim.bin\n", dir.c_str());
        return 2;
    }
    std::fseek(probe, 0, SEEK_END);
    const long n_vec = std::ftell(probe) / (4L * IN_WORDS);
    std::fclose(probe);
    const std::vector<uint32_t> stim = read_words(dir + "/stim.bin", size_t(n_vec) * IN_WORDS);
    const std::vector<uint32_t> weights = read_words(dir + "/weights.bin", FKHW_NREG);

    auto t0 = std::chrono::steady_clock::now();
    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vfkhw_encoder>(ctx.get());
    std::vector<RegFile> rfs;
#define FKHW_REGFILE(inst, site_offset, count, bits) \
    rfs.push_back(regfile(site_offset, count, bits, top->rootp->FKHW_MEM(inst)));
    FKHW_REGFILES(FKHW_REGFILE)
#undef FKHW_REGFILE
    const long n_sites = rfs.back().site_offset + long(rfs.back().count) * rfs.back().bits;
    if (lo < 0 || hi > n_sites || lo > hi) {
        std::fprintf(stderr, "fkhw_harness: sites [%ld, %ld) outside 0..%ld\n", lo, hi, n_sites);
        return 2;
    }

    long clocks = 0;
    auto tick = [&] {
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
        ++clocks;
    };
    top->clk = 0;
    top->rst = 1;
    top->cfg_we = 0;
    top->in_valid = 0;
#ifdef FKHW_DEPOSIT_PORT
    top->dep_en = 0;
#endif
    top->eval();
    tick();
    tick();
    top->rst = 0;
    // the weights, once, through the configuration port
    top->cfg_we = 1;
    for (int a = 0; a < FKHW_NREG; ++a) {
        top->cfg_addr = a;
        top->cfg_data = weights[a];
        tick();
    }
    top->cfg_we = 0;
    int reg = 0;
    for (const RegFile& rf : rfs)
        for (int i = 0; i < rf.count; ++i, ++reg)
            if (rf.read(i) != weights[reg]) {
                std::fprintf(stderr, "fkhw_harness: register %d reads %u after the load, wrote %u\n", reg,
                             rf.read(i), weights[reg]);
                return 1;
            }
    const double load_s = seconds_since(t0);

    // per site: deposit, N vectors at II = 1, LATENCY-1 more clocks to drain, restore
    std::vector<int> first_reg;  // register address of each register file's mem[0]
    for (size_t j = 0; j < rfs.size(); ++j) first_reg.push_back(j ? first_reg[j - 1] + rfs[j - 1].count : 0);
    std::vector<uint32_t> out(size_t(hi - lo) * n_vec * OUT_WORDS);
    uint32_t* o = out.data();
    const long lat = FKHW_LATENCY;
    auto t1 = std::chrono::steady_clock::now();
    top->in_valid = 1;
    size_t k = 0;
    for (long s = lo; s < hi; ++s) {
        while (!(s >= rfs[k].site_offset && s < rfs[k].site_offset + long(rfs[k].count) * rfs[k].bits)) k = (k + 1) % rfs.size();
        const RegFile& rf = rfs[k];
        const int index = int((s - rf.site_offset) / rf.bits);
        const int bit = int((s - rf.site_offset) % rf.bits);
        const uint32_t golden = rf.read(index);
        const uint32_t upset = golden ^ (1u << (rf.bits - 1 - bit));
#ifdef FKHW_DEPOSIT_PORT
        top->dep_en = 1;  // lands at the edge that samples vector 0
        top->dep_addr = first_reg[k] + index;
        top->dep_val = upset;
#else
        rf.write(index, upset);  // the upset
#endif
        for (long c = 0; c < n_vec + lat - 1; ++c) {
            if (c < n_vec) put(top->in_data, &stim[size_t(c) * IN_WORDS]);
            tick();
#ifdef FKHW_DEPOSIT_PORT
            top->dep_en = 0;
#endif
            if (c >= lat - 1) {  // the output of vector c-(LATENCY-1) left the last stage at this edge
                if (!top->out_valid) {
                    std::fprintf(stderr, "fkhw_harness: out_valid low at clock %ld of site %ld\n", c, s);
                    return 1;
                }
                get(top->out_data, o);
                o += OUT_WORDS;
            }
        }
#ifdef FKHW_DEPOSIT_PORT
        top->dep_en = 1;  // scrub
        top->dep_val = golden;
        tick();
        top->dep_en = 0;
#else
        rf.write(index, golden);  // scrub
#endif
    }
    const double run_s = seconds_since(t1);

    FILE* f = std::fopen(argv[4], "wb");
    if (!f || std::fwrite(out.data(), 4, out.size(), f) != out.size()) {
        std::fprintf(stderr, "fkhw_harness: cannot write %s\n", argv[4]);
        return 2;
    }
    std::fclose(f);
    top->final();
    std::printf("load_s %.6f run_s %.6f clocks %ld\n", load_s, run_s, clocks);
    return 0;
}
