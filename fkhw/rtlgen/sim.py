"""Build and run the cocotb/Verilator simulation of a generated encoder.

* :func:`build` compiles ``rtl_tb/hdl/fkhw_tb.v`` + the generated Verilog
  once per content hash into ``<root>/<key>/sim`` (cocotb's Python runner,
  Verilator ``--timing``), under a file lock, in a subprocess with a timeout.
* :func:`run_frames` runs one or more simulator processes in parallel, each
  in its own work directory, each on a slice of the injection list; the
  cocotb test ``rtl_tb/test_encoder.py`` reads ``job.json`` and the hex
  files, and the HDL testbench writes the recorded outputs. A process that
  runs past its timeout is killed (its whole process group).

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
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import fkhw
from fkhw.rtlgen.emit import META_FILE, TOP
from fkhw.rtlgen.tools import ToolError, require_verilator, tool_env, verilator_version

REPO = Path(fkhw.__file__).resolve().parents[1]
TB_DIR = REPO / "rtl_tb"
TB_HDL = TB_DIR / "hdl" / "fkhw_tb.v"
TB_VLT = TB_DIR / "hdl" / "fkhw_tb.vlt"
TB_TOP = "fkhw_tb"
TB_MODULE = "test_encoder"
CLOCK_NS = 10
MAX_VECTORS = 8192  # stimulus memory depth of the testbench (FKHW_MAXV)
# --no-public-flat-rw undoes the runner's --public-flat-rw: only the signals
# named in fkhw_tb.vlt are visible to cocotb (the datapath is optimised)
BUILD_ARGS = ["--no-public-flat-rw", "--timing", "-CFLAGS", "-std=c++20", "-Wno-fatal", "-O3",
              "--x-assign", "fast", "--x-initial", "fast"]
# the wheel's verilated.mk leaves the precompiled-header include flag empty
MAKE_VARS = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-Og OPT_SLOW=-O0 OPT_GLOBAL=-O1"
BUILD_VERSION = 1  # bump when the build recipe changes


class RtlSimError(RuntimeError):
    """The RTL simulation could not run or gave an inconsistent result."""


class RtlBuildError(RtlSimError):
    """The design (or testbench) failed to build with Verilator."""


class RtlTimeout(RtlSimError):
    """A simulator process ran past its timeout and was killed."""


def default_root() -> Path:
    env = os.environ.get("FKHW_RTL_BUILD")
    return Path(env) if env else REPO / "build" / "rtl_sim"


@dataclass(frozen=True)
class SimBuild:
    key: str
    rtl_dir: Path
    sim_dir: Path
    meta: dict
    seconds: float  # build time (0 when reused from the cache)

    @property
    def latency(self) -> int:
        return int(self.meta["latency"])


def _tb_files() -> list:
    if not TB_HDL.is_file() or not TB_VLT.is_file() or not (TB_DIR / f"{TB_MODULE}.py").is_file():
        raise RtlSimError(f"the cocotb testbench is missing: expected {TB_HDL}, {TB_VLT} and "
                          f"{TB_DIR / (TB_MODULE + '.py')} (fkhw must run from its source tree for RTL simulation)")
    return [TB_HDL, TB_VLT]


def _key(rtl_dir: Path) -> str:
    """Content hash of the build. Line comments of the generated RTL are left
    out, so models that differ only in their weights (econt-bol, econt-eol:
    the header names the model) share one build: weights are loaded at run
    time through the configuration port."""
    h = hashlib.sha256()
    for p in sorted(rtl_dir.glob("*.v")) + sorted(rtl_dir.glob("*.vh")) + sorted(rtl_dir.glob("*.vlt")):
        h.update(p.name.encode() + b"\0" + re.sub(rb"//[^\n]*", b"", p.read_bytes()) + b"\0")
    for p in _tb_files():
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(json.dumps([BUILD_ARGS, MAKE_VARS, BUILD_VERSION, MAX_VECTORS, verilator_version()]).encode())
    return h.hexdigest()[:16]


def build(rtl_dir: Path, root: Path | None = None, timeout: float = 900, log=None) -> SimBuild:
    """Compile the testbench around the Verilog in ``rtl_dir`` (reused when
    an identical build exists). Raises RtlBuildError with the log tail."""
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
    key = _key(rtl_dir)
    base = root / key
    sim_dir = base / "sim"
    stamp = base / "built.json"
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if stamp.is_file() and (sim_dir / TB_TOP).is_file():
            return SimBuild(key, base / "rtl", sim_dir, meta, 0.0)
        t0 = time.time()
        if log:
            log(f"building the Verilator model (cached in {base}) ...")
        shutil.rmtree(base / "rtl", ignore_errors=True)
        shutil.copytree(rtl_dir, base / "rtl")
        shutil.rmtree(sim_dir, ignore_errors=True)
        logfile = base / "build.log"
        cmd = [sys.executable, "-m", "fkhw.rtlgen.sim", "build", str(base / "rtl"), str(sim_dir)]
        runtime = root / "_runtime" / hashlib.sha256(
            json.dumps([BUILD_ARGS, MAKE_VARS, verilator_version()]).encode()).hexdigest()[:16]
        _reuse_runtime(runtime, sim_dir)
        env = tool_env({"MAKEFLAGS": MAKE_VARS})
        if shutil.which("ccache") and "OBJCACHE" not in os.environ:
            env["OBJCACHE"] = "ccache"
        rc = _run_killable(cmd, cwd=base, logfile=logfile, timeout=timeout, env=env)
        if rc is None:
            raise RtlTimeout(f"the Verilator build ran longer than {timeout:.0f} s and was killed (log: {logfile})")
        if rc != 0 or not (sim_dir / TB_TOP).is_file():
            raise RtlBuildError(f"the design failed to build with Verilator (log: {logfile}):\n{_tail(logfile)}")
        secs = time.time() - t0
        _save_runtime(sim_dir, runtime)
        stamp.write_text(json.dumps({"key": key, "seconds": secs, "verilator": verilator_version()}))
        return SimBuild(key, base / "rtl", sim_dir, meta, secs)


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


def _run_killable(cmd, cwd, logfile, timeout, env=None):
    """Run in its own process group; returns rc, or None after a timeout kill."""
    with open(logfile, "w") as lf:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=lf, stderr=subprocess.STDOUT, env=env or tool_env(),
                             start_new_session=True)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(p)
            return None


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

@dataclass
class Job:
    directory: Path
    injections: list  # [instance, index, deposit value, register address]
    proc: subprocess.Popen | None = None
    started: float = 0.0


def _write_common(work: Path, meta: dict, stim: np.ndarray, gold: np.ndarray, weights: np.ndarray) -> None:
    pin, pout = meta["ports"]["in_data"], meta["ports"]["out_data"]
    (work / "fkhw_stim.hex").write_text("\n".join(pack_hex(stim.reshape(stim.shape[0], -1), pin["element_bits"])) + "\n")
    (work / "fkhw_gold.hex").write_text("\n".join(pack_hex(gold.reshape(gold.shape[0], -1), pout["element_bits"])) + "\n")
    dw = meta["ports"]["cfg_data"]["bits"]
    (work / "fkhw_weights.hex").write_text("\n".join(pack_hex(weights.reshape(-1, 1), dw)) + "\n")


def run_frames(sb: SimBuild, work: Path, stim: np.ndarray, gold: np.ndarray, weights: np.ndarray,
               injections: list, n_pre: int, jobs: int = 1, timeout: float | None = None,
               progress=None, hang: bool = False, flags_out: dict | None = None) -> tuple:
    """Run ``len(injections)`` frames (one frame with no upset if the list is
    empty) split over ``jobs`` simulator processes.

    Returns (recorded, pre_err): recorded is (frames, n_vec + LATENCY - 2,
    n_out) output codes from the upset cycle on; pre_err counts pre-upset
    outputs that differed from ``gold``.

    An injection is [instance, index, value, address] (deposit into
    ``<instance>.mem[index]``) or, for a hardened design, [instance, index,
    value, address, [replica memories]]. For a hardened design (one with a
    ``tmr`` section in its metadata) ``flags_out``, if given, receives
    ``tmr_err_pre`` and ``tmr_err_post``: (frames,) bool arrays, whether
    tmr_err was 1 before the upset cycle / from it until the scrub.
    """
    meta = sb.meta
    n_vec = int(stim.shape[0])
    if n_vec > MAX_VECTORS:
        raise RtlSimError(f"{n_vec} input vectors per frame: the testbench holds at most {MAX_VECTORS}")
    lat = sb.latency
    if n_pre < lat - 1:
        raise RtlSimError(f"n_pre={n_pre} must be at least LATENCY-1={lat - 1} to check pre-upset outputs")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    _write_common(work, meta, stim, gold, weights)
    frames = injections if injections else [None]
    jobs = max(1, min(int(jobs), len(frames)))
    bounds = np.linspace(0, len(frames), jobs + 1).astype(int)
    per_frame_cycles = n_pre + n_vec + lat + 3
    if timeout is None:
        # generous: 60 s start-up + 20 us per simulated clock per process
        timeout = 60 + 2e-5 * per_frame_cycles * (bounds[1] - bounds[0]) + 1e-3 * sb.meta.get("n_registers", 0)
    job_list = []
    for j in range(jobs):
        d = work / f"job{j}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        for name in ("fkhw_stim.hex", "fkhw_gold.hex", "fkhw_weights.hex"):
            os.symlink(work / name, d / name)
        inj = frames[bounds[j]:bounds[j + 1]]
        (d / "job.json").write_text(json.dumps({
            "n_vec": n_vec, "n_pre": int(n_pre), "n_frames": len(inj),
            "injections": [x for x in inj if x is not None], "progress": str(d / "progress"),
            "result": str(d / "result.json"), "hang": bool(hang)}))
        job_list.append(Job(d, inj))
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
    try:
        while True:
            running = [jb for jb in job_list if jb.proc.poll() is None]
            if progress is not None:
                done = sum(_progress(jb) for jb in job_list)
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
    recorded, pre_err, flags = [], 0, []
    n_out = meta["ports"]["out_data"]["elements"]
    ew = meta["ports"]["out_data"]["element_bits"]
    signed = meta["ports"]["out_data"]["signed"]
    n_rec = n_pre + n_vec - max(0, n_pre + 2 - lat)
    for jb in job_list:
        res_path = jb.directory / "result.json"
        if jb.proc.returncode != 0 or not res_path.is_file():
            raise RtlSimError(f"the RTL simulation failed (exit code {jb.proc.returncode}; log "
                              f"{jb.directory / 'sim.log'}):\n{_tail(jb.directory / 'sim.log')}")
        res = json.loads(res_path.read_text())
        pre_err += int(res["pre_err"])
        lines = (jb.directory / "fkhw_out.hex").read_text().split()
        if len(lines) != len(jb.injections) * n_rec:
            raise RtlSimError(f"{jb.directory}: {len(lines)} recorded outputs, expected "
                              f"{len(jb.injections)} frames x {n_rec}")
        recorded.append(unpack_hex(lines, n_out, ew, signed).reshape(len(jb.injections), n_rec, n_out))
        if "tmr" in meta:
            err_file = jb.directory / "fkhw_tmr_err.txt"
            vals = np.array(err_file.read_text().split() if err_file.is_file() else [], dtype=np.int64)
            if vals.size != 2 * len(jb.injections):
                raise RtlSimError(f"{err_file}: {vals.size // 2} tmr_err records, expected {len(jb.injections)} "
                                  "(was the testbench built with FKHW_TMR?)")
            flags.append(vals.reshape(-1, 2).astype(bool))
    if progress is not None:
        progress(len(injections))
    if flags_out is not None and flags:
        both = np.concatenate(flags, axis=0)
        flags_out["tmr_err_pre"], flags_out["tmr_err_post"] = both[:, 0], both[:, 1]
    return np.concatenate(recorded, axis=0), pre_err


def _progress(job: Job) -> int:
    try:
        return int((job.directory / "progress").read_text() or 0)
    except (OSError, ValueError):
        return 0


# --- subprocess entry points ----------------------------------------------------

def _runner():
    from cocotb_tools.runner import get_runner

    return get_runner("verilator")


def _build_runner():
    """cocotb's Verilator runner, with one step between `verilator` and
    `make`: runtime objects seeded from the cache are touched so that make
    does not rebuild them just because Vtop.mk is new."""
    from cocotb_tools.runner import Verilator

    class _Runner(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            touch = [sys.executable, "-m", "fkhw.rtlgen.sim", "touch", str(self.build_dir)]
            return [cmds[0], touch] + cmds[1:]

    return _Runner()


def _main_touch(sim_dir: str) -> int:
    now = time.time()
    for f in list(Path(sim_dir).glob("verilated*.o")) + list(Path(sim_dir).glob("verilated*.d")):
        os.utime(f, (now, now))
    return 0


def _main_build(rtl_dir: str, sim_dir: str) -> int:
    rtl = Path(rtl_dir)
    from cocotb_tools.runner import VerilatorControlFile

    # a design may bring its own Verilator control file (a netlist: which nets are public)
    sources = (sorted(str(p) for p in rtl.glob("*.v")) + [str(TB_HDL), VerilatorControlFile(str(TB_VLT))]
               + [VerilatorControlFile(str(p)) for p in sorted(rtl.glob("*.vlt"))])
    runner = _build_runner()
    runner.build(sources=sources, includes=[str(rtl)], hdl_toplevel=TB_TOP, build_dir=sim_dir,
                 build_args=BUILD_ARGS, timescale=("1ns", "1ps"), defines={"FKHW_MAXV": MAX_VECTORS},
                 always=True)
    return 0


def _main_run(sim_dir: str, job_dir: str) -> int:
    from cocotb_tools.runner import get_results

    sys.path.insert(0, str(TB_DIR))
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
    if len(sys.argv) == 4 and sys.argv[1] == "build":
        sys.exit(_main_build(sys.argv[2], sys.argv[3]))
    if len(sys.argv) == 3 and sys.argv[1] == "touch":
        sys.exit(_main_touch(sys.argv[2]))
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        sys.exit(_main_run(sys.argv[2], sys.argv[3]))
    print("usage: python -m fkhw.rtlgen.sim build RTL_DIR SIM_DIR | run SIM_DIR JOB_DIR", file=sys.stderr)
    sys.exit(2)
