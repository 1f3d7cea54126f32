"""The parameter register files behind the configuration port: the
register map (one register per parameter, in site order), the protection
masks of a hardened design, and each file's instance: plain
(fkhw_regfile), triplicated bits (fkhw_regfile_tmr), or, for CERN's TMRG, a
generated module with the protected bits in a net of their own."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fkhw import __version__
from fkhw.faults.codes import Words, code_word
from fkhw.faults.sites import SiteSpace
from fkhw.model.ir import IntegerModel
from fkhw.rtlgen.codes import (FLAG_PORTS, flag_ports, module_names, regfile_module, regfile_parameters,
                               regfile_verilog, verilog_files)
from fkhw.rtlgen.variant import DesignVariant
from fkhw.rtlgen.verilog import REPLICA_MEMS, SPDX, ident, mask_literal


@dataclass(frozen=True)
class RegisterMap:
    tensors: list  # per parameter tensor: meta["register_files"] entry
    regmap: np.ndarray  # (n_sites, 3) site, reg, bit

    @property
    def n_regs(self) -> int:
        return sum(t["count"] for t in self.tensors)

    @property
    def addr_bits(self) -> int:
        return max(1, int(self.n_regs - 1).bit_length())

    @property
    def data_bits(self) -> int:
        return max(t["bits"] for t in self.tensors)

    @staticmethod
    def of(space: SiteSpace) -> "RegisterMap":
        """Register address = parameter number in site order; site
        ``offset + index*bits + bit`` is Verilog bit ``bits-1-bit`` of
        register ``base + index``."""
        tensors, rows, addr = [], [], 0
        for t in space.tensors:
            tensors.append({"layer": t.layer, "tensor": t.tensor, "instance": f"rf_{ident(t.layer)}_{t.tensor}",
                            "base": addr, "count": t.size, "bits": t.fmt.bits, "signed": t.fmt.signed,
                            "frac": t.fmt.frac, "shape": list(t.shape), "site_offset": t.offset,
                            "bus": f"{ident(t.layer)}_{t.tensor}"})
            idx = np.repeat(np.arange(t.size), t.fmt.bits)
            bit = np.tile(np.arange(t.fmt.bits), t.size)
            rows.append(np.stack([t.offset + idx * t.fmt.bits + bit, addr + idx, t.fmt.bits - 1 - bit], axis=1))
            addr += t.size
        return RegisterMap(tensors, np.concatenate(rows).astype(np.int64))


def protection_masks(ir: IntegerModel, protect) -> list:
    """Per parameter tensor (site order), a bool array of count*bits entries:
    entry i*bits + j is True when Verilog bit j of register i is protected.
    ``protect``: site ids (any order, no duplicates). Raises ValueError."""
    space = SiteSpace.of(ir)
    sites = np.asarray(list(protect) if not isinstance(protect, np.ndarray) else protect)
    if sites.size and not np.issubdtype(sites.dtype, np.integer):
        raise ValueError(f"protected sites must be integer site ids, got {sites.dtype}")
    sites = space.check(sites.astype(np.int64))  # SiteError (a ValueError) names the bad ids
    uniq, counts = np.unique(sites, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"protected site id(s) listed twice: {uniq[counts > 1][:5].tolist()}")
    tn, idx, bit = space.locate(uniq)
    masks = []
    for k, t in enumerate(space.tensors):
        m = np.zeros(t.size * t.fmt.bits, dtype=bool)
        sel = tn == k
        m[idx[sel] * t.fmt.bits + (t.fmt.bits - 1 - bit[sel])] = True
        masks.append(m)
    return masks


@dataclass(frozen=True)
class RegfileCode:
    """A register file's wires, its instance, the error net of its voters
    (hardened, with protected bits) and its generated module (TMRG)."""

    decl: list
    body: str
    err: str | None = None
    module: tuple | None = None  # (file name, text)
    ecc_err: tuple = ()  # the error nets of a file of code words, one per flag (fkhw.rtlgen.codes.flag_ports)
    ecc_modules: tuple = ()  # ((file name, text), ...) its register file and codec modules


def regfile_code(t: dict, mask: np.ndarray | None, variant: DesignVariant, cfg_aw: int) -> RegfileCode:
    """The instance of register file ``t`` (a meta["register_files"] entry)
    with the protected bits ``mask`` (None: the plain design)."""
    decl = [f"    wire [{t['count'] * t['bits'] - 1}:0] {t['bus']};  // {t['layer']}.{t['tensor']} "
            f"{tuple(t['shape'])}: registers {t['base']}..{t['base'] + t['count'] - 1}"]
    cfg = f".clk(clk), .cfg_we(cfg_we), .cfg_addr(cfg_addr), .cfg_data(cfg_data[{t['bits'] - 1}:0]), .q({t['bus']})"
    geom = f".WIDTH({t['bits']}), .DEPTH({t['count']}), .BASE({t['base']}), .ADDRW({cfg_aw})"
    if variant.ecc:
        return _coded_regfile(t, decl, cfg, cfg_aw, variant.ecc)
    if mask is None or not mask.any():
        return RegfileCode(decl, f"    fkhw_regfile #({geom}) {t['instance']} (\n        {cfg}\n    );\n")
    counts = f"{int(mask.sum())} of {mask.size} bits"
    if variant.kind == "tmrg":
        mod = f"fkhw_rfs_{t['bus']}"
        body = (f"    // {counts} in {t['bus']}_prot (TMRG triplicates them), the rest in {t['bus']}_unprot\n"
                f"    {mod} {t['instance']} (\n        {cfg}\n    );\n")
        return RegfileCode(decl, body, module=(f"{mod}.v", split_regfile(mod, t, mask, cfg_aw)))
    err = f"{t['bus']}_tmr_err"
    decl.append(f"    wire             {err};  // replicas of a protected {t['layer']}.{t['tensor']} bit disagree")
    body = (f"    // {counts} triplicated (PMASK bit i*{t['bits']}+j = Verilog bit j of register i)\n"
            f"    fkhw_regfile_tmr #({geom}, .REFRESH({int(variant.refresh)}),\n"
            f"        .PMASK({mask_literal(mask)})) {t['instance']} (\n        {cfg}, .err({err})\n    );\n")
    return RegfileCode(decl, body, err)


FLAG_MEANING = {"err_single": "a word holds one upset (corrected)",
                "err_double": "a word holds an error its code cannot correct",
                "err_parity": "a word holds an odd number of upsets (passed on)"}


def _coded_regfile(t: dict, decl: list, cfg: str, cfg_aw: int, ecc: str) -> RegfileCode:
    """Register file ``t`` kept as code words (fkhw.rtlgen.codes.regfile_verilog)."""
    words = Words.of(ecc, t["bits"], t["count"])
    code = words.code
    nets = tuple(f"{t['bus']}_ecc_{f.removeprefix('err_')}" for f in flag_ports(code))
    decl = decl + [f"    wire             {n};  // {t['layer']}.{t['tensor']}: {FLAG_MEANING[f]}"
                   for n, f in zip(nets, flag_ports(code))]
    mod = regfile_module(words)
    conn = ", ".join(f".{f}({n})" for f, n in zip(flag_ports(code), nets))
    plural = "s" if code.check_bits > 1 else ""
    body = (f"    // {words.n_words} words of {code.data_bits} data bits, each with its {code.check_bits} check "
            f"bit{plural} ({code.label})\n"
            f"    {mod} {regfile_parameters(words, t['base'], cfg_aw)} {t['instance']} (\n"
            f"        {cfg},\n        {conn}\n    );\n")
    files = ((f"{mod}.v", regfile_verilog(words)),) + tuple(verilog_files(code).items())
    return RegfileCode(decl, body, ecc_err=nets, ecc_modules=files)


def ecc_meta(tensors: list, ecc: str) -> dict:
    """What the tools need to know of a design whose register files are code words."""
    files = []
    for t in tensors:
        words = Words.of(ecc, t["bits"], t["count"])
        code = words.code
        files.append({"instance": t["instance"], "module": regfile_module(words), "code": code.label,
                      "codec": list(module_names(code)), "register_bits": t["bits"], "registers": t["count"],
                      "word_bits": code.data_bits, "interleaved": words.interleaved, "words": words.n_words,
                      "check_bits": code.check_bits, "check_memory": "mem_chk",
                      "check_flip_flops": words.n_stored_checks,
                      # check bits over a word's padding alone: constant 0, not flip-flops (Words.stored_checks)
                      "constant_checks": [[j, code.check_bits - 1 - c] for j in range(words.n_words)
                                          for c in range(code.check_bits) if c not in words.stored_checks(j)]})
    kind = code_word(ecc).code
    return {"protection": ecc, "code": kind,
            "check_flip_flops": int(sum(f["check_flip_flops"] for f in files)),
            "flags": [f"ecc_{f}" for f in FLAG_PORTS[kind]],
            "decoder": ("per word, combinational, between its flip-flops and the datapath: one upset of its "
                        "data or check bits corrected (ecc_err_single), two flagged (ecc_err_double) and passed "
                        "uncorrected" if kind == "secded" else
                        "per word, combinational: the data passed on as stored, an odd number of upsets of its "
                        "data or check bits flagged (ecc_err_parity)"),
            "register_files": files}


def split_regfile(mod: str, t: dict, mask: np.ndarray, cfg_aw: int) -> str:
    """A register file for TMRG: protected bits in ``<bus>_prot`` (one net,
    triplicated and voted by TMRG), the others in ``<bus>_unprot``; separate
    always blocks (TMRG: no mixing of triplicated and plain signals on the
    left-hand side of one block, no concatenation on the left)."""
    w, bus = t["bits"], t["bus"]
    pos = np.arange(mask.size)
    prot_pos, unprot_pos = pos[mask].tolist(), pos[~mask].tolist()
    rank = {}
    for r, k in enumerate(prot_pos):
        rank[k] = ("p", r)
    for r, k in enumerate(unprot_pos):
        rank[k] = ("u", r)
    np_, nu = len(prot_pos), len(unprot_pos)
    pn, un, vn = f"{bus}_prot", f"{bus}_unprot", f"{bus}_protVoted"
    out = [SPDX, "`default_nettype none", f"// {mod}: the {t['layer']}.{t['tensor']} register file ({t['count']} registers of {w} bits at",
           f"// addresses {t['base']}..{t['base'] + t['count'] - 1}) for CERN's TMRG, generated by fkhw {__version__}.",
           f"// Functionally fkhw_regfile: {np_} protected bits live in {pn} (TMRG triplicates",
           f"// it; the assignment {vn} = {pn} from triplicated to non-triplicated is where",
           "// TMRG puts the majority voter), " + (f"the {nu} others in {un}." if nu else "no others."),
           "// Bit k of q is Verilog bit k % WIDTH of register k / WIDTH.",
           f"module {mod} (",
           "    input  wire clk,",
           "    input  wire cfg_we,",
           f"    input  wire [{cfg_aw - 1}:0] cfg_addr,",
           f"    input  wire [{w - 1}:0] cfg_data,",
           f"    output wire [{mask.size - 1}:0] q",
           ");",
           "    // tmrg default do_not_triplicate",
           f"    // tmrg triplicate {pn}",
           f"    // tmrg do_not_triplicate {vn}"]
    if nu:
        out.append(f"    // tmrg do_not_triplicate {un}")
    out.append(f"    reg  [{np_ - 1}:0] {pn};")
    if nu:
        out.append(f"    reg  [{nu - 1}:0] {un};")
    out += [f"    wire [{np_ - 1}:0] {vn} = {pn};", ""]
    for kind, name, keep in (("p", pn, prot_pos), ("u", un, unprot_pos)):
        if not keep:
            continue
        out += [f"    // {'protected (triplicated by TMRG)' if kind == 'p' else 'unprotected (single flip-flops)'}",
                "    always @(posedge clk) begin",
                "        if (cfg_we) begin",
                "            case (cfg_addr)"]
        by_reg = {}
        for k in keep:
            by_reg.setdefault(k // w, []).append(k)
        for i, ks in sorted(by_reg.items()):
            stmts = " ".join(f"{name}[{rank[k][1]}] <= cfg_data[{k % w}];" for k in ks)
            out.append(f"                {cfg_aw}'d{t['base'] + i}: begin {stmts} end")
        out += ["                default: ;", "            endcase", "        end", "    end", ""]
    terms = []
    for k in range(mask.size - 1, -1, -1):
        kind, r = rank[k]
        terms.append(f"{vn}[{r}]" if kind == "p" else f"{un}[{r}]")
    body = []
    for c in range(0, len(terms), 8):
        body.append("        " + ", ".join(terms[c:c + 8]))
    out += ["    assign q = {", ",\n".join(body), "    };", "", "endmodule", "`default_nettype wire", ""]
    return "\n".join(out)


def tmr_meta(tensors: list, masks: list, refresh: bool) -> dict:
    """What the tools need to know about the triplicated bits: per tensor the
    mask (hex of PMASK, bit i*bits+j = Verilog bit j of register i) and per
    protected site the three replica flip-flops (hierarchical names below
    the encoder: <instance>.<mem>[index][Verilog bit])."""
    per_tensor, sites = [], []
    for t, m in zip(tensors, masks):
        prot = np.flatnonzero(m)
        per_tensor.append({"instance": t["instance"], "layer": t["layer"], "tensor": t["tensor"],
                           "module": "fkhw_regfile_tmr" if prot.size else "fkhw_regfile",
                           "protected_bits": int(prot.size), "bits": int(m.size),
                           "pmask": mask_literal(m) if prot.size else None,
                           "err_net": f"{t['bus']}_tmr_err" if prot.size else None})
        for k in prot.tolist():
            idx, vbit = divmod(k, t["bits"])
            site = t["site_offset"] + idx * t["bits"] + (t["bits"] - 1 - vbit)
            sites.append({"site": int(site), "instance": t["instance"], "index": int(idx), "reg": t["base"] + idx,
                          "bit": int(vbit),
                          "replicas": [f"{t['instance']}.{mem}[{idx}][{vbit}]" for mem in REPLICA_MEMS]})
    sites.sort(key=lambda e: e["site"])
    return {
        "protected_bits": len(sites),
        "replica_mems": list(REPLICA_MEMS),
        "voter": "bitwise 2-of-3 majority, combinational, between the replica flip-flops and the datapath",
        "refresh": bool(refresh),
        "tmr_err": ("registered and sticky: set when any protected bit's replicas disagree at a clock edge, cleared "
                    "by a configuration write (or reset)" if refresh else
                    "combinational OR over protected bits of (A != B) | (A != C); not registered, no sticky state"),
        "config_port": "a write loads all three replicas of every bit of the addressed register (scrubbing)"
                       + ("; between writes every replica reloads the voted value each clock (refresh)"
                          if refresh else ""),
        "register_files": per_tensor,
        "sites": sites,
    }


def tmrg_meta(tensors: list, masks: list, modules: list) -> dict:
    """The TMRG variant's nets: per register file with protected bits, its
    generated module and the nets TMRG triplicates or leaves alone."""
    return {"protected_bits": int(sum(m.sum() for m in masks)),
            "modules": sorted(modules),
            "nets": [{"instance": t["instance"], "module": f"fkhw_rfs_{t['bus']}",
                      "prot": f"{t['bus']}_prot", "unprot": f"{t['bus']}_unprot",
                      "protected_bits": int(m.sum()), "bits": int(m.size)}
                     for t, m in zip(tensors, masks) if m.any()]}
