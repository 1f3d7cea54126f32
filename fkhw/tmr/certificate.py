"""A formal certificate that the hardened register files mask every single
upset, for all register contents and all configuration-port inputs.

The simulation proof (:mod:`fkhw.tmr.proof`) upsets every replica of the
synthesised register files on the campaign's inputs, with the model's one set
of weights. This module proves the same for ALL weights and inputs, on the
very netlist the area table counts (:func:`fkhw.tmr.area.regfile_netlist`):

1. **Evert** (:func:`evert`): the netlist's top becomes combinational. Every
   flip-flop's output ``N`` becomes an input port (its state, free) and its
   next-state function an output port ``N__d``; each register file's output
   bus becomes an output port; the datapath instances are removed (the
   certificate is about what the register files hand the datapath: when it
   is the fault-free value for all register contents, the datapath computes
   the fault-free result for all of its inputs).
2. **Gates**: Yosys reads the everted netlist and maps it to its
   fine-grained gates (``techmap``); :class:`Circuit` holds them.
3. **Prove** (:func:`certify`): every output bit becomes a binary decision
   diagram (BDD, CUDD through the ``dd`` package): its exact function of the
   register contents (one variable per parameter bit: replicas A, B, C of a
   bit read the same variable, as in the fault-free design) and the
   configuration port (``cfg_we``, ``cfg_addr``, ``cfg_data``). A BDD is
   canonical, so "equal for all inputs" is "the same BDD". Then, for each
   protected flip-flop in turn (every replica A, B, C of every protected
   bit), its state becomes the complement of its bit and only its fan-out is
   evaluated again (:func:`propagate`). The design is certified when
     * ``outputs``: no register-file output changes, and the fault-free
       outputs are the register contents;
     * ``flag``: the error flag is the constant 1 under the upset and the
       constant 0 without one (combinational ``tmr_err``; with refresh, the
       sticky flag's next value, from a low flag);
     * ``next state``: with refresh, no flip-flop's next value changes (the
       upset is corrected at the next edge, whether the port writes or not);
       without refresh, none but the upset flip-flop's own (an upset never
       spreads).
   A failing property gives a satisfying assignment of the difference, read
   back as a counterexample a person can read (:class:`Counterexample`): the
   flip-flop, the register, the weight and bit, the value the register held
   and the output that changed.

This is exhaustive over every input, not sampled: the BDD of an output bit
IS its truth table. It needs no solver run per property because the
register files are many small functions (a voter reads three flip-flops);
a design whose outputs depended on thousands of bits at once would make the
diagrams large, and the certificate slow, not wrong.

The certificate (:class:`Certificate`) names the netlist by its SHA-256, the
Yosys version and the method, and how long the proof took.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fkhw.errors import ToolFailure
from fkhw.outpaths import make_dir, write_text
from fkhw.rtlgen.emit import REGFILE_TEMPLATES, TOP, TOP_FILE, RtlDesign
from fkhw.rtlgen.netlist import _rename, _rename_pipeline, flip_flop_map, flip_flops
from fkhw.rtlgen.synth import prepare_yosys, yosys_command, yosys_version
from fkhw.rtlgen.verilog import REPLICA_MEMS

__all__ = ["Certificate", "CertificateError", "Circuit", "Counterexample", "certify", "evert", "propagate"]

EVERTED_FILE = "regfiles_everted.v"
SOLVER = "BDDs (CUDD, through the dd package): every output bit as an exact function of its inputs"
CERTIFICATE_VERSION = 1
# a flip-flop of the Yosys netlist: "always @(posedge clk)" and one statement on the lines after it
_ALWAYS = re.compile(r"^\s*always @\(posedge clk\)\s*$")
_LHS = re.compile(r"([A-Za-z_][A-Za-z0-9_$]*)(\s*\[\d+\])?\s*<=")
_HEADER = re.compile(rf"^module {TOP}\((.*)\);\s*$")
_INSTANCE = re.compile(r"^  ([A-Za-z_][A-Za-z0-9_]*)\s+(?:#\(|\S+\s*\()")


class CertificateError(ToolFailure):
    """The netlist cannot be certified as given (a flip-flop written in a
    form the eversion does not know, a net without a plain name)."""


@dataclass(frozen=True)
class Counterexample:
    """The solver's assignment where a property fails, in the design's terms."""

    flip_flop: str        # the upset flip-flop's net and bit in the netlist ("" when none was upset)
    replica: str          # "A", "B" or "C"
    register_file: str    # e.g. rf_dense_kernel
    register: int         # register index in its file (= weight index in the tensor, flattened)
    verilog_bit: int      # bit of the register (0 = least significant)
    site: int             # the fkhw site id of that bit (-1: none)
    register_value: int   # what the register held (the fault-free value, as the two's-complement bits)
    failed: tuple         # the properties that failed, e.g. ("outputs", "flag")
    outputs_changed: tuple  # (bus, register index, its contents, the value output) of the first registers that differ

    def line(self) -> str:
        """One readable line: what was upset and what went wrong."""
        what = (f"upset of {self.flip_flop} (replica {self.replica} of bit {self.verilog_bit} of register "
                f"{self.register} of {self.register_file}, site {self.site}; the register held "
                f"{self.register_value:#x})") if self.flip_flop else "no upset"
        outs = "; ".join(f"{b}[{i}] {g:#x} -> {f:#x}" for b, i, g, f in self.outputs_changed[:3])
        return f"{what}: {', '.join(self.failed)} failed" + (f" ({outs})" if outs else "")


@dataclass(frozen=True)
class Certificate:
    """What was proven, on which netlist, with which tools, and the verdict."""

    design: str
    proven: bool
    netlist: str
    netlist_sha256: str
    refresh: bool
    protected_flip_flops: int   # replicas A, B, C of every protected bit: the upsets the proof covers
    protected_bits: int
    registers: int
    register_bits: int
    properties: tuple
    scope: str
    yosys: str
    solver: str
    seconds: float
    counterexample: Counterexample | None = None
    version: int = field(default=CERTIFICATE_VERSION)

    def to_json(self) -> dict:
        d = asdict(self)
        d["properties"] = list(self.properties)
        if self.counterexample is not None:
            d["counterexample"]["line"] = self.counterexample.line()
        return d


# --- the everted netlist --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Everted:
    text: str
    state: dict   # flip-flop net -> width (an input port; its next value is the output port <net>__d)
    buses: dict   # register file bus -> width (an output port)


def _module_span(lines: list) -> tuple:
    start = next((i for i, ln in enumerate(lines) if _HEADER.match(ln)), None)
    if start is None:
        raise CertificateError(f"the netlist has no module {TOP}")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("endmodule"))
    return start, end


def evert(text: str, meta: dict, datapath_modules) -> Everted:
    """The register-file netlist's top (``text``: as Yosys wrote it, register
    nets renamed) made combinational, see the module docstring. ``meta``:
    the hardened design's meta (register files and their buses);
    ``datapath_modules``: the module names of the datapath, whose instances
    are removed. Raises CertificateError for a flip-flop it cannot read."""
    lines = text.splitlines()
    start, end = _module_span(lines)
    widths = {}
    decl = re.compile(r"^  (reg|wire)\s+(?:\[(\d+):(\d+)\]\s+)?([A-Za-z_][A-Za-z0-9_$]*)\s*;\s*$")
    for ln in lines[start:end]:
        m = decl.match(ln)
        if m:
            widths[m.group(4)] = int(m.group(2)) - int(m.group(3)) + 1 if m.group(2) is not None else 1
    body, state, i = [], {}, start + 1
    skip_instance = False
    datapath = set(datapath_modules)
    while i < end:
        ln = lines[i]
        m = _INSTANCE.match(ln)
        if m and m.group(1) in datapath:
            skip_instance = True
        if skip_instance:
            if ln.strip() == ");":
                skip_instance = False
            i += 1
            continue
        if not _ALWAYS.match(ln):
            body.append(ln)
            i += 1
            continue
        stmt = []
        i += 1
        while i < end:  # one statement: lines up to a ';' not followed by 'else'
            stmt.append(lines[i])
            i += 1
            if stmt[-1].rstrip().endswith(";") and not (i < end and lines[i].lstrip().startswith("else")):
                break
        targets = {(m.group(1), (m.group(2) or "").strip()) for m in _LHS.finditer(" ".join(stmt))}
        if len({t for t, _ in targets}) != 1 or not all(t in widths for t, _ in targets):
            raise CertificateError(f"a flip-flop the certificate cannot read (not one plainly named register): "
                                   f"{' '.join(s.strip() for s in stmt)[:200]}")
        if len(targets) != 1:
            raise CertificateError(f"a flip-flop written in parts by one statement: {' '.join(stmt)[:200]}")
        net, sel = targets.pop()
        state[net] = widths[net]
        # the next value: the statement, assigning <net>__d, which holds <net> where it does not assign (Yosys
        # writes a register's bits in blocks of their own, so the hold is of the bits this block writes)
        body.append("  always @* begin")
        body.append(f"    {net}__d{sel} = {net}{sel};")
        body += [_LHS.sub(lambda m: f"{m.group(1)}__d{m.group(2) or ''} =", s) for s in stmt]
        body.append("  end")
    buses = {rf["bus"]: rf["count"] * rf["bits"] for rf in meta["register_files"]}
    missing = [b for b in buses if b not in widths]
    if missing:
        raise CertificateError(f"the netlist has no register-file bus {missing[0]}")
    out, ports = [], []
    for ln in body:
        m = decl.match(ln)
        if m and m.group(4) in state:  # the flip-flop's state: an input now
            net, w = m.group(4), state[m.group(4)]
            rng = f"[{w - 1}:0] " if w > 1 or m.group(2) is not None else ""
            out.append(f"  input {rng}{net};")
            out.append(f"  output reg {rng}{net}__d;")
            ports += [net, f"{net}__d"]
            continue
        if m and m.group(4) in buses:
            out.append(f"  output [{buses[m.group(4)] - 1}:0] {m.group(4)};")
            ports.append(m.group(4))
            continue
        out.append(ln)
    header = _HEADER.match(lines[start]).group(1)
    head = f"module {TOP}({header}, {', '.join(ports)});"
    everted = "\n".join(lines[:start] + [head] + out + lines[end:]) + "\n"
    return Everted(everted, state, buses)


# --- the upsets ----------------------------------------------------------------------------------------


def upsets(meta: dict, ffmap: dict) -> tuple:
    """Every replica flip-flop of every protected parameter bit (meta["tmr"]),
    in the order the proof upsets them: (net, bit of the net, register file,
    register, Verilog bit, replica 0/1/2, site) each."""
    rows = []
    for e in meta.get("tmr", {}).get("sites", []):
        for r, mem in enumerate(REPLICA_MEMS):
            hit = ffmap.get((e["instance"], mem, e["index"], e["bit"]))
            if hit is None:
                raise CertificateError(f"replica {'ABC'[r]} of site {e['site']} ({e['instance']} register "
                                       f"{e['index']} bit {e['bit']}) has no flip-flop in the netlist")
            rows.append((hit[0], int(hit[1]), e["instance"], int(e["index"]), int(e["bit"]), r, int(e["site"])))
    return tuple(rows)


# --- the proof: symbolic evaluation of the everted netlist ------------------------------------------------

# Yosys' fine-grained gates (after techmap): output Y as a function of the inputs
_GATES = {
    "$_BUF_": lambda b, A: A, "$_NOT_": lambda b, A: ~A,
    "$_AND_": lambda b, A, B: A & B, "$_OR_": lambda b, A, B: A | B, "$_XOR_": lambda b, A, B: b.apply("xor", A, B),
    "$_NAND_": lambda b, A, B: ~(A & B), "$_NOR_": lambda b, A, B: ~(A | B), "$_XNOR_": lambda b, A, B: b.apply("equiv", A, B),
    "$_ANDNOT_": lambda b, A, B: A & ~B, "$_ORNOT_": lambda b, A, B: A | ~B,
    "$_MUX_": lambda b, A, B, S: b.ite(S, B, A), "$_NMUX_": lambda b, A, B, S: ~b.ite(S, B, A),
    "$_AOI3_": lambda b, A, B, C: ~((A & B) | C), "$_OAI3_": lambda b, A, B, C: ~((A | B) & C),
    "$_AOI4_": lambda b, A, B, C, D: ~((A & B) | (C & D)), "$_OAI4_": lambda b, A, B, C, D: ~((A | B) & (C | D)),
}
_PINS = {t: f.__code__.co_varnames[1:f.__code__.co_argcount] for t, f in _GATES.items()}
GATE_SCRIPT = ("read_verilog {src}", f"hierarchy -check -top {TOP}", "proc", "flatten", "setundef -undriven -zero",
               "techmap", "opt_clean", "write_json {dst}")


class Circuit:
    """The everted netlist as fine-grained gates (Yosys JSON after
    ``techmap``): every output bit as a BDD over the input variables."""

    def __init__(self, module: dict):
        self.ports = {n: (p["direction"], p["bits"]) for n, p in module["ports"].items()}
        self.cells = []  # (type, input bits in pin order, output bit)
        self.driver = {}
        for name, c in module["cells"].items():
            t = c["type"]
            if t == "$scopeinfo":
                continue
            if t not in _GATES:
                raise CertificateError(f"cell {name} of type {t}: not a gate the certificate evaluates")
            out = c["connections"]["Y"][0]
            self.driver[out] = len(self.cells)
            self.cells.append((t, tuple(c["connections"][p][0] for p in _PINS[t]), out))
        self.readers = {}
        for k, (_, ins, _) in enumerate(self.cells):
            for b in ins:
                self.readers.setdefault(b, []).append(k)

    def order(self, outputs) -> list:
        """The cells that ``outputs`` depend on, each after its inputs."""
        seen, order = set(), []
        for root in outputs:
            if root not in self.driver or self.driver[root] in seen:
                continue
            stack = [(self.driver[root], False)]
            while stack:
                k, done = stack.pop()
                if done:
                    order.append(k)
                    continue
                if k in seen:
                    continue
                seen.add(k)
                stack.append((k, True))
                stack += [(self.driver[b], False) for b in self.cells[k][1]
                          if b in self.driver and self.driver[b] not in seen]
        return order


def _value(bdd, values: dict, bit):
    if bit == "1":
        return bdd.true
    if bit in ("0", "x", "z"):  # undriven nets were tied to 0 before (setundef); x reads as 0 too
        return bdd.false
    return values[bit]


def evaluate(bdd, circuit: Circuit, inputs: dict, order: list) -> dict:
    """BDD of every bit: ``inputs`` (bit -> BDD), then the cells of ``order``."""
    values = dict(inputs)
    for k in order:
        t, ins, out = circuit.cells[k]
        values[out] = _GATES[t](bdd, *(_value(bdd, values, b) for b in ins))
    return values


def propagate(bdd, circuit: Circuit, golden: dict, rank: dict, changed: dict) -> dict:
    """The bits whose function differs from ``golden`` (``changed`` among
    them) when the input bits of ``changed`` (bit -> BDD) take other
    functions: only their fan-out is evaluated again, in topological order
    (``rank``: cell -> position)."""
    values = dict(changed)
    heap = sorted({(rank[k], k) for b in changed for k in circuit.readers.get(b, ()) if k in rank})
    queued = {k for _, k in heap}
    while heap:
        _, k = heapq.heappop(heap)
        t, ins, out = circuit.cells[k]
        v = _GATES[t](bdd, *(values[b] if b in values else _value(bdd, golden, b) for b in ins))
        if v == golden[out]:
            values.pop(out, None)
            continue
        values[out] = v
        for r in circuit.readers.get(out, ()):
            if r in rank and r not in queued:
                queued.add(r)
                heapq.heappush(heap, (rank[r], r))
    # the changed inputs too: a port wired straight to one (an output that IS a flip-flop) changes with it
    return values


def _datapath_modules(design: RtlDesign) -> set:
    names = set()
    for name, text in design.files.items():
        if name.endswith(".v") and name != TOP_FILE and name not in REGFILE_TEMPLATES:
            names.update(re.findall(r"^module\s+([A-Za-z_][A-Za-z0-9_]*)", text, flags=re.M))
    return names


def _yosys(work: Path, script: list, what: str, timeout: float) -> None:
    # no log file: Yosys logs every wire of the netlist (18 MB for econt-bol's full TMR); its error is enough
    write_text(work / "gates.ys", "\n".join(script) + "\n")
    prepare_yosys(timeout)
    r = subprocess.run(yosys_command() + ["-q", "-s", "gates.ys"], cwd=work, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise CertificateError(f"{what}: Yosys failed reading the everted netlist ({work / 'gates.ys'}): "
                               f"{(r.stderr or r.stdout).strip()[-300:]}")


def _gate_circuit(design: RtlDesign, text: str, work: Path, name: str, timeout: float, progress=None) -> tuple:
    """The register files of the renamed netlist ``text``, everted (see
    :func:`evert`) and read back from Yosys as gates. Returns (the eversion,
    the Circuit)."""
    ev = evert(text, design.meta, _datapath_modules(design))
    make_dir(work)
    write_text(work / EVERTED_FILE, ev.text)
    if progress:
        progress(f"{name}: Yosys reads the everted register files as gates ...")
    _yosys(work, [c.format(src=EVERTED_FILE, dst="everted.json") for c in GATE_SCRIPT], name, timeout)
    circuit = Circuit(json.loads((work / "everted.json").read_text())["modules"][TOP])
    (work / "everted.json").unlink()  # tens of MB; the everted Verilog beside it is what was proven
    return ev, circuit


@dataclass(frozen=True)
class _Symbolic:
    """The fault-free register files as BDDs over the port inputs and the
    register contents, and where to look in them."""

    bdd: object         # the dd.cudd.BDD manager
    circuit: Circuit
    golden: dict        # gate output bit -> its BDD, fault-free
    rank: dict          # gate output bit -> its place in evaluation order
    flag: int           # the error flag's bit (the sticky flag's next value with refresh)
    bus_bits: dict      # output bit -> (register bus, bit): what the datapath reads
    next_bits: dict     # bit of a state flip-flop's next value -> (net, bit)
    state_bits: dict    # (net, bit) -> the state flip-flop's output bit


def _symbolic(circuit: Circuit, ev, meta: dict, ffmap: dict, refresh: bool, name: str, progress=None) -> _Symbolic:
    """Declare a variable per configuration-port bit and per register bit
    (every replica of a bit reads its register's variable) and evaluate the
    fault-free circuit."""
    # dd's compiled CUDD extension loads only when a certificate is built
    from dd.cudd import BDD

    bdd = BDD()
    # the declared order (port, then the registers in address order) suits these circuits; CUDD's dynamic
    # reordering, on by default, spent most of the time moving variables (econt-bol selective: 63 of 88 s)
    bdd.configure(reordering=False)
    rfs = {rf["instance"]: rf for rf in meta["register_files"]}
    source = {}
    for (inst, _mem, idx, *rest), (net, nbit, _whole) in ffmap.items():
        if inst in rfs:
            source[net, nbit] = f"r:{rfs[inst]['bus']}:{idx * rfs[inst]['bits'] + rest[0]}"
    cfg = ("cfg_we", "cfg_addr", "cfg_data")
    names = [f"{p}[{i}]" for p in cfg for i in reversed(range(len(circuit.ports[p][1])))]
    names += [f"r:{bus}:{i}" for bus, w in ev.buses.items() for i in range(w)]
    bdd.declare(*names)
    inputs = {}
    for port, (direction, bits) in circuit.ports.items():
        if direction != "input":
            continue
        for i, b in enumerate(bits):
            var = f"{port}[{i}]" if port in cfg else source.get((port, i)) if port in ev.state else None
            inputs[b] = bdd.var(var) if var else bdd.false  # rst, clk, the datapath's inputs, the sticky flag: 0
    flag_port = "tmr_err_q__d" if refresh else "tmr_err"
    if flag_port not in circuit.ports:
        raise CertificateError(f"{name}: the everted netlist has no {flag_port}")
    flag = circuit.ports[flag_port][1][0]
    bus_bits = {b: (bus, i) for bus in ev.buses for i, b in enumerate(circuit.ports[bus][1])}
    next_bits = {b: (net, i) for net in ev.state if net != "tmr_err_q"
                 for i, b in enumerate(circuit.ports[f"{net}__d"][1])}
    if progress:
        progress(f"{name}: the fault-free register files, symbolically ({len(circuit.cells):,} gates) ...")
    order = circuit.order(list(bus_bits) + list(next_bits) + [flag])
    return _Symbolic(bdd=bdd, circuit=circuit, golden=evaluate(bdd, circuit, inputs, order),
                     rank={k: i for i, k in enumerate(order)}, flag=flag, bus_bits=bus_bits, next_bits=next_bits,
                     state_bits={(net, i): b for net in ev.state for i, b in enumerate(circuit.ports[net][1])})


def _golden_failure(sym: _Symbolic, meta: dict, ups: tuple):
    """The counterexample of the fault-free register files, or None: each
    output equals its register's contents and the flag is low."""
    bdd, golden = sym.bdd, sym.golden
    for b, (bus, i) in sym.bus_bits.items():
        if golden[b] != bdd.var(f"r:{bus}:{i}"):
            return _counterexample(bdd, meta, ups, None, ("outputs",), golden, {b: golden[b]}, sym.bus_bits,
                                   bdd.apply("xor", bdd.var(f"r:{bus}:{i}"), golden[b]))
    if golden[sym.flag] != bdd.false:
        return _counterexample(bdd, meta, ups, None, ("flag",), golden, {}, sym.bus_bits, golden[sym.flag])
    return None


def _upset_failure(sym: _Symbolic, meta: dict, ups: tuple, k: int, refresh: bool):
    """The counterexample of upset ``k``, or None: no output changes, the
    flag rises, and the upset spreads to no other flip-flop (with refresh:
    to none, itself included: the voted value is reloaded)."""
    bdd, golden = sym.bdd, sym.golden
    net, nbit = ups[k][:2]
    b = sym.state_bits[net, nbit]
    diff = propagate(bdd, sym.circuit, golden, sym.rank, {b: ~golden[b]})
    failed, witness = [], bdd.false
    outs = {o: v for o, v in diff.items() if o in sym.bus_bits}
    if outs:
        failed.append("outputs")
        witness = bdd.apply("xor", next(iter(outs.values())), golden[next(iter(outs))])
    f_flag = diff.get(sym.flag, golden[sym.flag])
    if f_flag != bdd.true:
        if not failed:
            witness = ~f_flag
        failed.append("flag")
    spread = [o for o in diff if o in sym.next_bits and (refresh or sym.next_bits[o] != (net, nbit))]
    if spread:
        failed.append("next state")
        if len(failed) == 1:
            witness = bdd.apply("xor", diff[spread[0]], golden[spread[0]])
    return _counterexample(bdd, meta, ups, k, tuple(failed), golden, diff, sym.bus_bits, witness) if failed else None


def certify(design: RtlDesign, netlist: Path, work_dir: Path, name: str, timeout: float = 1800,
            progress=None) -> Certificate:
    """Prove the module docstring's properties on ``netlist`` (the register-
    file run of the area table for the hardened ``design``), writing the
    everted netlist and the Yosys script to ``work_dir``. Returns the
    certificate, proven or with its counterexample; raises CertificateError when the
    netlist cannot be read or Yosys fails."""
    t0 = time.monotonic()
    netlist = Path(netlist)
    raw = netlist.read_bytes()
    text = _rename_pipeline(_rename(raw.decode()))
    meta = design.meta
    ffmap = flip_flop_map(flip_flops(text), meta)
    ups = upsets(meta, ffmap)
    if not ups:
        raise CertificateError(f"{name}: no protected bit: nothing to certify")
    ev, circuit = _gate_circuit(design, text, Path(work_dir), name, timeout, progress)
    refresh = bool(meta.get("tmr", {}).get("refresh", False))
    sym = _symbolic(circuit, ev, meta, ffmap, refresh, name, progress)
    cex = _golden_failure(sym, meta, ups)
    for k in range(len(ups)):
        if cex is not None:
            break
        if progress and k and k % 10000 == 0:
            progress(f"{name}: upsets proven {k:,}/{len(ups):,}")
        cex = _upset_failure(sym, meta, ups, k, refresh)
    return Certificate(
        design=name, proven=cex is None, netlist=str(netlist), netlist_sha256=hashlib.sha256(raw).hexdigest(),
        refresh=refresh, protected_flip_flops=len(ups), protected_bits=len(ups) // 3,
        registers=sum(rf["count"] for rf in meta["register_files"]), register_bits=sum(ev.buses.values()),
        properties=_properties(refresh),
        scope=("the register files (every parameter flip-flop, replica, voter, address decoder and the error "
               "flag), reset low; for all register contents and all configuration-port inputs; the datapath "
               "reads the register outputs, so its inputs are free"),
        yosys=yosys_version(), solver=SOLVER, seconds=round(time.monotonic() - t0, 1), counterexample=cex)


def _properties(refresh: bool) -> tuple:
    return ("outputs: with any one protected flip-flop upset (replica A, B or C), every register-file output "
            "equals the fault-free design's, which equals the register contents",
            "flag: " + ("the sticky tmr_err flag is set at the next clock edge after any such upset (from a low "
                        "flag), and stays low without one" if refresh else "tmr_err is 1 while any such upset "
                        "is present, 0 without one"),
            "next state: " + ("after one clock every flip-flop holds the fault-free design's value (the upset "
                              "is corrected), with or without a configuration write" if refresh else
                              "no flip-flop but the upset one differs at the next clock (an upset never "
                              "spreads)"))


def _assignment(bdd, witness) -> dict:
    """A full assignment (variable -> bool) that satisfies ``witness``."""
    pick = bdd.pick(witness) if witness != bdd.false else {}
    return {v: bool(pick.get(v, False)) for v in bdd.vars}


def _at(bdd, u, assignment: dict) -> int:
    return int(bdd.let({v: assignment[v] for v in bdd.support(u)}, u) == bdd.true)


def _counterexample(bdd, meta: dict, ups: tuple, k, failed: tuple, golden: dict, diff: dict, bus_bits: dict,
                    witness) -> Counterexample:
    a = _assignment(bdd, witness)
    changed = []
    for rf in meta["register_files"]:
        regs = sorted({bus_bits[o][1] // rf["bits"] for o in diff if o in bus_bits and bus_bits[o][0] == rf["bus"]})
        for i in regs[:5]:
            f = r = 0
            for o, (bus, pos) in bus_bits.items():
                if bus == rf["bus"] and pos // rf["bits"] == i:
                    j = pos % rf["bits"]
                    f |= _at(bdd, diff.get(o, golden[o]), a) << j
                    r |= int(a[f"r:{bus}:{pos}"]) << j
            changed.append((rf["bus"], i, r, f))
    if k is None:
        return Counterexample("", "", "", -1, -1, -1, 0, failed, tuple(changed[:5]))
    net, nbit, inst, idx, vbit, rep, site = ups[k]
    rf = next(t for t in meta["register_files"] if t["instance"] == inst)
    value = sum(int(a[f"r:{rf['bus']}:{idx * rf['bits'] + j}"]) << j for j in range(rf["bits"]))
    return Counterexample(f"{net}[{nbit}]", "ABC"[rep], inst, idx, vbit, site, value, failed, tuple(changed[:5]))
