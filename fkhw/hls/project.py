"""QKeras encoder -> hls4ml project (io_parallel, Vitis or Vivado backend).

The integer IR is the one source of truth for formats: the hls4ml graph is
built with hls4ml's own defaults (which are bit-exact with QKeras) and then
checked against the IR, layer by layer and weight by weight, *before* any
file is written. A model hls4ml would translate differently is refused with
an error naming the layer.

Next to hls4ml's files the project holds ``fkhw_project.json`` (provenance
and the site -> weight-file map) and ``fkhw_faults/``, a second build of the
same C-simulation whose weight directory is chosen at run time, which is
what :class:`fkhw.levels.hls.HlsLevel` injects faults through. The vendor
build (``build_prj.tcl``) never reads ``fkhw_faults/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import os
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.errors import InputError
from fkhw import __version__
from fkhw.model.fixed import bits_for_range
from fkhw.model.extract import UnsupportedLayerError
from fkhw.model.ir import IntegerModel, raw_range
from fkhw.outpaths import check_no_links, make_dir, open_lock, write_text

log = logging.getLogger(__name__)

BACKENDS = ("Vitis", "Vivado")
IO_TYPE = "io_parallel"
PROJECT_NAME = "myproject"
MANIFEST = "fkhw_project.json"
# present from the first file written until the manifest: a generation cut short by a kill is fkhw's own
# unfinished project, regenerated on the next run rather than refused as a stranger's folder
GENERATING = ".fkhw_generating"
FAULTS_DIR = "fkhw_faults"
FAULT_LIBRARY = "libfkhw_csim.so"
TESTBENCH_ROWS = 100


class HlsUnsupportedError(UnsupportedLayerError):
    """The model is valid for fkhw but hls4ml would not reproduce it exactly."""


class HlsProjectError(InputError):
    """A directory that is not (or no longer) a usable fkhw hls project."""


@dataclass(frozen=True)
class WeightFile:
    """One IR parameter tensor as the hls4ml C-simulation stores it."""

    layer: str
    tensor: str  # 'kernel' | 'bias'
    var: str  # hls4ml variable, e.g. 'w3'; its file is firmware/weights/<var>.txt
    ctype: str  # e.g. 'weight3_t'
    size: int
    frac: int  # fractional bits of the IR format: value = code * 2**-frac

    @property
    def filename(self) -> str:
        return f"{self.var}.txt"


@dataclass(frozen=True, eq=False)
class HlsProject:
    """A generated project directory and its manifest."""

    directory: Path
    manifest: dict

    @staticmethod
    def open(directory) -> "HlsProject":
        directory = Path(directory)
        path = directory / MANIFEST
        if not path.is_file():
            raise HlsProjectError(f"{directory}: not an fkhw hls project (no {MANIFEST}; create one with `fkhw hls`)")
        manifest = json.loads(path.read_text())
        return HlsProject(directory, manifest)

    @property
    def weights_dir(self) -> Path:
        return self.directory / "firmware" / "weights"

    @property
    def fault_library(self) -> Path:
        return self.directory / FAULTS_DIR / FAULT_LIBRARY

    @property
    def weight_files(self) -> tuple:
        return tuple(WeightFile(**w) for w in self.manifest["weights"])


# --- checks on the IR alone (no hls4ml needed) --------------------------------

def check_ir(ir: IntegerModel) -> None:
    """Refuse IR features the hls4ml translation does not reproduce exactly."""
    for layer in ir.layers:
        if layer.kind == "avgpool":
            raise HlsUnsupportedError(f"layer {layer.name!r}: QAveragePooling2D is not supported by the hls4ml level "
                                      "(hls4ml 1.3 has no such layer: 'Unsupported layer type: QAveragePooling2D')")
        if layer.kind not in _HLS_CLASS and layer.kind not in _HLS_WIRING:
            # its translation is not checked against hls4ml's graph
            raise HlsUnsupportedError(f"layer {layer.name!r}: kind {layer.kind!r} is not supported by the hls4ml "
                                      f"level (supported: {', '.join(sorted(set(_HLS_CLASS) - {'input'}))}, "
                                      f"{', '.join(_HLS_WIRING)})")
    quants = [(ir.input.name, ir.input.fmt)] + [(l.name, l.fmt) for l in ir.layers if l.kind == "quant"]
    for name, fmt in quants:
        if fmt.signed and fmt.lo != raw_range(fmt)[0]:
            # hls4ml maps quantized_bits to AP_SAT, never AP_SAT_SYM, so the
            # most negative code would differ from QKeras
            raise HlsUnsupportedError(
                f"layer {name!r}: symmetric quantized_bits activation ({fmt.describe()}) is not supported by hls4ml "
                "(it saturates to -2**(bits-1)); use symmetric=0")


# --- conversion (in memory) and its check against the IR ---------------------

@contextlib.contextmanager
def _quiet_hls4ml():
    """hls4ml prints its progress, and serialising a QKeras model warns
    harmlessly about quantizers as constraints: keep both off the user's
    terminal (the printout goes to the debug log)."""
    chatter = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
        warnings.filterwarnings("ignore", message=".*constraints.serialize.*")
        yield
    if chatter.getvalue().strip():
        log.debug("%s", chatter.getvalue())


def _precision(var) -> object:
    return var.type.precision


def _fixed_of(precision) -> tuple:
    """(bits, frac, signed) of an hls4ml fixed or integer precision."""
    return int(precision.width), int(precision.width - precision.integer), bool(precision.signed)


def _same_format(precision, fmt) -> bool:
    return _fixed_of(precision) == (fmt.bits, fmt.frac, fmt.signed)


def _is_rounding_quantizer(precision) -> bool:
    """The hls4ml cast equals QKeras' round-half-even + saturate."""
    from hls4ml.model.types import FixedPrecisionType

    return (isinstance(precision, FixedPrecisionType)
            and precision.rounding_mode.name == "RND_CONV" and precision.saturation_mode.name == "SAT")


def _hls_layers(hls_model) -> list:
    """hls4ml layers that compute something (no input, no flatten or reshape)."""
    return [l for l in hls_model.get_layers() if l.class_name not in ("Input", "InputLayer", "Reshape")]


def _ir_steps(ir: IntegerModel) -> list:
    """(IR layer, its output spec) for each layer hls4ml materialises, the
    input quantizer first."""
    specs = ir.tensor_specs()
    steps = [(ir.input, specs[0])]
    steps += [(layer, specs[i + 1]) for i, layer in enumerate(ir.layers) if layer.kind not in _HLS_WIRING]
    return steps


def _holds(precision, spec) -> bool:
    """Every code of ``spec`` (worst case over any weight bits, so under
    faults too) is exactly representable in ``precision``."""
    bits, frac, signed = _fixed_of(precision)
    if frac < spec.frac:
        return False
    lo = -(1 << (bits - 1)) if signed else 0
    hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    scale = 1 << (frac - spec.frac)
    return lo <= spec.lo * scale and spec.hi * scale <= hi


# a folded QConv2DBatchnorm is a conv2d in the IR; hls4ml folds it the same way (C-sim exact)
_HLS_CLASS = {"input": ("Activation",), "quant": ("Activation",), "conv2d": ("Conv2D", "Conv2DBatchnorm"),
              "conv1d": ("Conv1D",), "dense": ("Dense",), "maxpool": ("Pooling1D", "Pooling2D")}
_HLS_WIRING = ("flatten", "reshape")  # C order: hls4ml's Reshape, no computation
_MAC_KINDS = ("conv2d", "conv1d", "dense")


def _describe(precision) -> str:
    return str(precision.definition_cpp()) if hasattr(precision, "definition_cpp") else str(precision)


def weight_files(ir: IntegerModel, hls_model) -> list:
    """The site space's tensors mapped to hls4ml weight variables, checked:
    same format, same values, C-order of the Keras tensor."""
    hls_by_name = {l.name: l for l in hls_model.get_layers()}
    files = []
    for layer in ir.param_layers():
        hl = hls_by_name.get(layer.name)
        if hl is None:
            raise HlsUnsupportedError(f"layer {layer.name!r}: hls4ml has no layer of that name")
        parts = [("kernel", "weight", layer.kernel, layer.kernel_fmt)]
        if layer.bias is not None:
            parts.append(("bias", "bias", layer.bias, layer.bias_fmt))
        for tensor, key, codes, fmt in parts:
            var = hl.weights.get(key)
            if var is None:
                raise HlsUnsupportedError(f"layer {layer.name!r}: hls4ml has no {key} for the {tensor}")
            if not _same_format(_precision(var), fmt):
                raise HlsUnsupportedError(
                    f"layer {layer.name!r} {tensor}: hls4ml stores it as {_describe(_precision(var))}, "
                    f"the QKeras quantizer gives {fmt.describe()}")
            data = np.asarray(var.data, dtype=np.float64)
            if data.shape != codes.shape or not np.array_equal(data.reshape(-1) * 2.0 ** fmt.frac, codes.reshape(-1)):
                # the fault map writes code k of the C-order flat tensor at
                # position k of the txt file: that must be hls4ml's layout too
                raise HlsUnsupportedError(
                    f"layer {layer.name!r} {tensor}: hls4ml holds it as shape {data.shape} with different values "
                    f"than the IR {codes.shape} (transposed or re-quantized weights are not supported)")
            files.append(WeightFile(layer.name, tensor, var.name, var.type.name, int(codes.size), fmt.frac))
    return files


def check_conversion(ir: IntegerModel, hls_model) -> list:
    """Compare the hls4ml graph with the IR step by step; return the weight map."""
    steps, hls = _ir_steps(ir), _hls_layers(hls_model)
    for i, (step, spec) in enumerate(steps):
        if i >= len(hls):
            raise HlsUnsupportedError(f"layer {step.name!r}: hls4ml dropped it from the graph")
        hl = hls[i]
        if hl.class_name not in _HLS_CLASS[step.kind]:
            raise HlsUnsupportedError(
                f"layer {step.name!r}: hls4ml translates it as {hl.class_name} {hl.name!r}, "
                f"expected {' or '.join(_HLS_CLASS[step.kind])}")
        prec = _precision(hl.get_output_variable())
        if step.kind == "maxpool" and hl.get_attr("pool_op") != "Max":
            raise HlsUnsupportedError(f"layer {step.name!r}: hls4ml pools with {hl.get_attr('pool_op')}, not Max")
        accum = hl.get_attr("accum_t") if step.kind in _MAC_KINDS else None
        if accum is not None and not _holds(accum.precision, spec):
            raise HlsUnsupportedError(
                f"layer {step.name!r}: hls4ml accumulates in {_describe(accum.precision)}, too narrow for codes "
                f"{spec.lo}..{spec.hi} with {spec.frac} fractional bits")
        if step.kind in ("input", "quant"):
            if not (_is_rounding_quantizer(prec) and _same_format(prec, step.fmt)):
                raise HlsUnsupportedError(
                    f"layer {step.name!r}: hls4ml quantizes to {_describe(prec)}, QKeras to {step.fmt.describe()} "
                    "with round-half-even and saturation")
        elif not _holds(prec, spec):
            # the engine's accumulator never wraps; hls4ml's must not either
            raise HlsUnsupportedError(
                f"layer {step.name!r}: hls4ml accumulates in {_describe(prec)}, too narrow for codes "
                f"{spec.lo}..{spec.hi} with {spec.frac} fractional bits")
    if len(hls) > len(steps):
        extra = hls[len(steps)]
        raise HlsUnsupportedError(f"hls4ml added layer {extra.name!r} ({extra.class_name}) that the IR does not have")
    return weight_files(ir, hls_model)


def hls_config(keras_model, ir: IntegerModel, backend: str) -> dict:
    import hls4ml

    with _quiet_hls4ml():
        config = hls4ml.utils.config_from_keras_model(keras_model, granularity="name", backend=backend)
    # The input port carries the input quantizer's codes (that is what the
    # detector sends, and what makes C-sim inputs exactly representable).
    # Setting an *input* type is safe: it has no hidden <layer>_linear step.
    input_name = keras_model.input_names[0]
    if input_name not in config.get("LayerName", {}):
        raise HlsUnsupportedError(f"input {input_name!r}: hls4ml's configuration has no layer of that name")
    config["LayerName"][input_name]["Precision"]["result"] = ir.input.fmt.describe().replace("ap_", "")
    # hls4ml parses QActivation(quantized_bits) as a *linear* activation, and its MergeLinearActivation pass
    # removes a linear activation whose parent's result type is "auto", without keeping the quantizer: the
    # accumulator would feed the next layer unrounded. A MAC layer followed by one gets its exact accumulator
    # format as an explicit result type (and its own hidden <layer>_linear step the same, so that no cast is
    # added there), so the pass leaves the quantizer in place: an Activation rounding to its format.
    specs = ir.tensor_specs()
    for i, layer in enumerate(ir.layers[:-1]):
        nxt = ir.layers[i + 1]
        if layer.kind in _MAC_KINDS and nxt.kind == "quant" and nxt.quantizer == "quantized_bits":
            spec = specs[i + 1]
            bits = bits_for_range(spec.lo, spec.hi)
            exact = f"fixed<{bits},{bits - spec.frac}>"
            for name in (layer.name, f"{layer.name}_linear"):
                if name in config["LayerName"]:
                    config["LayerName"][name]["Precision"]["result"] = exact
    return config


def check_backend(backend: str) -> str:
    for b in BACKENDS:
        if backend.lower() == b.lower():
            return b
    raise UnsupportedLayerError(f"backend {backend!r} is not supported (choose one of {', '.join(BACKENDS)})")


def convert(keras_model, ir: IntegerModel, out: Path, backend: str = "Vitis"):
    """The hls4ml model, checked against the IR; nothing is written yet.

    Returns (hls_model, weight files)."""
    import hls4ml

    backend = check_backend(backend)
    check_ir(ir)
    config = hls_config(keras_model, ir, backend)
    with _quiet_hls4ml():
        hls_model = hls4ml.converters.convert_from_keras_model(
            keras_model, hls_config=config, io_type=IO_TYPE, backend=backend,
            output_dir=str(out), project_name=PROJECT_NAME)
    return hls_model, check_conversion(ir, hls_model)


# --- writing ------------------------------------------------------------------

def check_out_dir(out: Path) -> None:
    """Refuse to write into a non-empty directory fkhw did not create."""
    ours = (out / MANIFEST).is_file() or (out / GENERATING).is_file()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not ours)):
        raise HlsProjectError(f"{out}: exists and is not an fkhw hls project; choose another folder or remove it")


def to_values(codes: np.ndarray, frac: int) -> np.ndarray:
    """Real values of codes as float64; exact while |code| < 2**53."""
    return np.ascontiguousarray(np.asarray(codes, dtype=np.int64) * 2.0 ** -frac, dtype=np.float64)


def to_codes(values: np.ndarray, frac: int, what: str) -> np.ndarray:
    """Integer codes of real values that must be exact multiples of 2**-frac."""
    scaled = np.asarray(values, dtype=np.float64) * 2.0 ** frac
    codes = np.rint(scaled)
    if not np.array_equal(codes, scaled):
        bad = np.flatnonzero(codes.reshape(-1) != scaled.reshape(-1))[0]
        raise HlsProjectError(f"{what}: value {np.asarray(values).reshape(-1)[bad]!r} is not a multiple of 2**-{frac}")
    return codes.astype(np.int64)


def mismatched_rows(got: np.ndarray, want: np.ndarray) -> int:
    """Rows (last axis = one output vector) where two code arrays differ."""
    if got.shape != want.shape:
        raise ValueError(f"shapes differ: {got.shape} vs {want.shape}")
    return int(np.count_nonzero(np.any(got != want, axis=-1)))


def csim_predict(hls_model, ir: IntegerModel, codes: np.ndarray) -> np.ndarray:
    """hls4ml's own compiled C-simulation (``hls_model.predict``) on codes."""
    values = to_values(codes, ir.input.fmt.frac).reshape(codes.shape[0], -1)
    out = np.asarray(hls_model.predict(values), dtype=np.float64).reshape(codes.shape[0], -1)
    return to_codes(out, ir.output_spec.frac, "hls4ml C-sim output")


def _write_dat(path: Path, values: np.ndarray) -> None:
    rows = values.reshape(values.shape[0], -1)
    write_text(path, "".join(" ".join(repr(float(v)) for v in row) + " \n" for row in rows))


def write_testbench(out: Path, ir: IntegerModel, n: int = TESTBENCH_ROWS) -> None:
    """Input rows and expected outputs for the vendor C-sim / co-sim test
    bench (``<project>_test.cpp`` reads tb_data/*.dat when they exist)."""
    from fkhw.model import data
    from fkhw.model import engine

    if tuple(ir.input.shape) == data.IMAGE_SHAPE:
        codes = data.encoder_input_codes(data.load_charges(), ir.input.fmt)[:n]
    else:  # not an HGCAL encoder: codes spread over the input quantizer's range (seeded)
        fmt = ir.input.fmt
        codes = np.random.default_rng(0).integers(fmt.lo, fmt.hi + 1, size=(n,) + tuple(ir.input.shape))
    tb = out / "tb_data"
    make_dir(tb)
    _write_dat(tb / "tb_input_features.dat", to_values(codes, ir.input.fmt.frac))
    _write_dat(tb / "tb_output_predictions.dat", to_values(engine.forward(ir, codes), ir.output_spec.frac))


# --- the fault-injection build of the C-simulation ----------------------------

_WEIGHTS_DIR_H = """\
// fkhw: forced into every translation unit of the fault library (g++ -include).
// hls4ml's load_weights_from_txt expands WEIGHTS_DIR; this build defines it as
// a call to fkhw_weights_dir(), so the weight directory is chosen at run time.
#pragma once
const char *fkhw_weights_dir();
"""

_BRIDGE_CPP = """\
// fkhw: fault-injection entry points for the hls4ml C-simulation of {project}.
// Generated by fkhw {version}; not part of the HLS design (the vendor build
// never reads this folder). Built together with firmware/{project}.cpp,
// both with -D WEIGHTS_DIR=fkhw_weights_dir(), so hls4ml's own txt loader
// re-reads one weight file from any directory without rebuilding or
// reopening the library: that is how a faulty weight gets in.
#include <string>

#include "firmware/{project}.h"
#include "firmware/nnet_utils/nnet_helpers.h"

// defined in firmware/weights/*.h, included by firmware/{project}.cpp
{externs}

static std::string weights_dir = ".";
const char *fkhw_weights_dir() {{ return weights_dir.c_str(); }}

#define FKHW_API extern "C" __attribute__((visibility("default")))

FKHW_API int fkhw_n_tensors() {{ return {n_tensors}; }}
FKHW_API int fkhw_n_in() {{ return {n_in}; }}
FKHW_API int fkhw_n_out() {{ return {n_out}; }}

// Reloads weight tensor `which` (manifest order) from `dir`/<var>.txt.
FKHW_API int fkhw_load(const char *dir, int which) {{
    weights_dir = dir;
    switch (which) {{
{cases}
    }}
    return -1;
}}

// Runs n samples; in/out are row-major doubles (code * 2**-frac).
FKHW_API void fkhw_predict(const double *in, double *out, long n) {{
    for (long i = 0; i < n; i++) {{
        {input_t} x[{n_in}];
        {result_t} y[{n_out}];
        nnet::convert_data<double, {input_t}, {n_in}>(const_cast<double *>(in + i * {n_in}), x);
        {project}(x, y);
        nnet::convert_data<{result_t}, double, {n_out}>(y, out + i * {n_out});
    }}
}}

// {project}() loads every weight file once per process, on its first call,
// from fkhw_weights_dir(): make that first call here, from `dir`.
FKHW_API void fkhw_open(const char *dir) {{
    weights_dir = dir;
    double in[{n_in}] = {{0}};
    double out[{n_out}];
    fkhw_predict(in, out, 1);
}}
"""


def bridge_source(files: list, input_t: str, result_t: str, n_in: int, n_out: int) -> str:
    externs = "\n".join(f"extern {f.ctype} {f.var}[{f.size}];" for f in files)
    cases = "\n".join(
        f"    case {k}: nnet::load_weights_from_txt<{f.ctype}, {f.size}>({f.var}, \"{f.filename}\"); return 0;"
        for k, f in enumerate(files))
    return _BRIDGE_CPP.format(project=PROJECT_NAME, version=__version__, externs=externs, n_tensors=len(files),
                              n_in=n_in, n_out=n_out, cases=cases, input_t=input_t, result_t=result_t)


def fault_build_command(cxx: str = "g++") -> list:
    """Compiler call, run inside the project directory."""
    # -O2: same simulation speed as hls4ml's -O3 here, and builds in 2/3 of the time
    return [cxx, "-O2", "-fPIC", "-shared", "-std=c++14",
            # private symbols: several copies of the library can be loaded
            # side by side, each with its own weights
            "-fvisibility=hidden", "-fno-gnu-unique",
            "-Ifirmware/ap_types/", "-I.", "-include", f"{FAULTS_DIR}/weights_dir.h",
            "-DWEIGHTS_DIR=fkhw_weights_dir()",
            f"firmware/{PROJECT_NAME}.cpp", f"{FAULTS_DIR}/fkhw_csim.cpp", "-o", f"{FAULTS_DIR}/{FAULT_LIBRARY}"]


def write_fault_sources(out: Path, files: list, hls_model, ir: IntegerModel) -> None:
    d = out / FAULTS_DIR
    make_dir(d)
    write_text(d / "weights_dir.h", _WEIGHTS_DIR_H)
    inp, outp = hls_model.get_input_variables()[0], hls_model.get_output_variables()[0]
    write_text(d / "fkhw_csim.cpp",
               bridge_source(files, inp.type.name, outp.type.name, int(np.prod(ir.input.shape)), ir.output_spec.size))
    write_text(d / "build.sh", "#!/bin/sh\n# rebuilds the fault-injection library (run from the project folder)\n"
               "cd \"$(dirname \"$0\")/..\" && " + " ".join(
                   a if "(" not in a else f"'{a}'" for a in fault_build_command()) + "\n")
    (d / "build.sh").chmod(0o755)


def compiler() -> str:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise HlsProjectError(f"C++ compiler {cxx!r} not found (set CXX): the C-simulation needs one")
    return cxx


def start_fault_build(out: Path) -> subprocess.Popen:
    return subprocess.Popen(fault_build_command(compiler()), cwd=out, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish_fault_build(proc: subprocess.Popen) -> None:
    output, _ = proc.communicate()
    if proc.returncode != 0:
        raise HlsProjectError(f"building the fault-injection C-simulation failed:\n{output[-4000:]}")


def manifest(bundle, backend: str, hls_model, files: list) -> dict:
    import hls4ml

    ir = bundle.ir
    inp, outp = hls_model.get_input_variables()[0], hls_model.get_output_variables()[0]
    return {
        "model": bundle.name,
        "digest": bundle.files.digest(),
        "fkhw": __version__,
        "hls4ml": hls4ml.__version__,
        "backend": backend,
        "io_type": IO_TYPE,
        "project_name": PROJECT_NAME,
        "input": {"ctype": inp.type.name, "size": int(np.prod(ir.input.shape)), "frac": ir.input.fmt.frac,
                  "shape": list(ir.input.shape)},
        "output": {"ctype": outp.type.name, "size": int(ir.output_spec.size), "frac": ir.output_spec.frac},
        "weights": [vars(f) for f in files],
    }


def write_manifest(out: Path, content: dict) -> None:
    write_text(out / MANIFEST, json.dumps(content, indent=1) + "\n")


def generate(bundle, out, backend: str = "Vitis"):
    """Convert, check, write and compile the project for ``bundle``.

    Returns ``(HlsProject, hls_model)``; the hls4ml model has its C-sim
    library loaded (``hls_model.predict`` works). Every refusal happens
    before the first file is written. The manifest is written last: its
    presence marks a complete project.
    """
    from fkhw.model.keras_io import load_encoder

    out = Path(out)
    backend = check_backend(backend)
    check_ir(bundle.ir)
    check_out_dir(out)
    check_no_links(out)  # hls4ml writes the project with plain open(): it would follow one
    compiler()  # hls4ml's build_lib.sh needs g++ too: fail before writing
    t0 = time.perf_counter()
    log.info("converting %s with hls4ml (%s backend, %s)", bundle.name, backend, IO_TYPE)
    hls_model, files = convert(load_encoder(bundle.files), bundle.ir, out, backend)

    log.info("writing the project to %s", out)
    make_dir(out)
    write_text(out / GENERATING, "fkhw hls: generation in progress (a kill leaves this mark)\n")
    (out / MANIFEST).unlink(missing_ok=True)
    with _quiet_hls4ml():
        hls_model.write()
    write_testbench(out, bundle.ir)
    write_fault_sources(out, files, hls_model, bundle.ir)

    log.info("compiling the C-simulation (hls4ml library and fault-injection library, in parallel)")
    t1 = time.perf_counter()
    build = start_fault_build(out)
    try:
        # hls_model.compile() would write() the project again while the
        # fault build reads it; _compile() is the same minus that rewrite
        with _quiet_hls4ml():
            hls_model._compile()
    except BaseException:
        # the project is incomplete anyway (no manifest): an interrupt or a failed compile does not wait for
        # the other build, nor is its outcome reported in place of the first failure
        build.kill()
        build.communicate()
        raise
    finish_fault_build(build)
    log.info("compiled in %.1f s", time.perf_counter() - t1)

    write_manifest(out, manifest(bundle, backend, hls_model, files))
    (out / GENERATING).unlink()
    log.info("project ready in %.1f s: %s", time.perf_counter() - t0, out)
    return HlsProject.open(out), hls_model


def is_current(project: HlsProject, bundle, backend: str) -> bool:
    """The project was generated from these model files by this fkhw and
    backend, and its fault library is built."""
    m = project.manifest
    return (m.get("digest") == bundle.files.digest() and m.get("fkhw") == __version__
            and m.get("backend") == check_backend(backend) and project.fault_library.is_file())


def project_for(bundle, out=None, backend: str = "Vitis") -> HlsProject:
    """The project of ``bundle`` in ``out`` (default ``hls_projects/<model>``):
    reused when current, generated otherwise. For callers that only need
    the C-sim (campaigns), not the in-memory hls4ml model."""
    out = Path(out) if out is not None else Path("hls_projects") / bundle.name
    make_dir(out.parent)
    # two processes asking for the same project (two test workers, two campaigns in one folder) take turns:
    # the second finds the first one's project current instead of generating into the same files at once
    with open(open_lock(out.parent / f".{out.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / MANIFEST).is_file():
            project = HlsProject.open(out)
            if is_current(project, bundle, backend):
                return project
        return generate(bundle, out, backend)[0]
