"""The hls level: faults run through hls4ml's C-simulation.

A fault is injected the way hls4ml itself gets weights into its C-sim: the
faulty value is written into the weight's txt file and hls4ml's
``load_weights_from_txt`` reads it. hls4ml's own library reads the files
once per process, so the project carries a second build of the same C++
(``fkhw_faults/``) whose weight directory is chosen at run time: per fault
one txt file is written and reloaded, no process or library is restarted.

Each :class:`_CSim` loads a private copy of that library (its weights are
C globals), so several can run side by side in threads; ctypes releases
the GIL during the simulation.
"""

from __future__ import annotations

import ctypes
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fkhw.faults.space import FaultError, FaultSet, FlipFlopSpace, Observed
from fkhw.hls.project import HlsProject, HlsProjectError, WeightFile, to_codes, to_values
from fkhw.model.ir import IntegerModel
from fkhw.faults.sites import SiteSpace, tensor_codes


def format_values(codes: np.ndarray, frac: int) -> list:
    """Codes as hls4ml writes them to txt: ``{:.<frac>f}`` of the real
    value, which is exact (2**-frac has exactly frac decimals)."""
    fmt = f"{{:.{max(frac, 0)}f}}"
    return [fmt.format(v) for v in (np.asarray(codes, dtype=np.int64).reshape(-1) * 2.0 ** -frac).tolist()]


def faulty_weight_text(golden_values: list, index, faulty_code, frac: int) -> str:
    """A weight txt file's content with values replaced: ``index`` and
    ``faulty_code`` are one C-order position and its code, or arrays of them."""
    values = list(golden_values)
    for i, v in zip(np.atleast_1d(index).tolist(), format_values(np.atleast_1d(faulty_code), frac)):
        values[i] = v
    return ", ".join(values)


class _CSim:
    """One loaded copy of the fault-injection C-sim library."""

    def __init__(self, library: Path, golden_dir: Path, workdir: Path):
        workdir.mkdir(parents=True)
        self.workdir = workdir
        # dlopen returns the same handle for the same path: a private copy
        # gives this instance its own weight arrays
        copy = workdir / library.name
        shutil.copyfile(library, copy)
        self._lib = ctypes.CDLL(str(copy))
        self._lib.fkhw_load.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self._lib.fkhw_load.restype = ctypes.c_int
        self._lib.fkhw_predict.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long]
        self._lib.fkhw_predict.restype = None
        self._lib.fkhw_open.argtypes = [ctypes.c_char_p]
        self._lib.fkhw_open.restype = None
        self.n_in, self.n_out = self._lib.fkhw_n_in(), self._lib.fkhw_n_out()
        self.n_tensors = self._lib.fkhw_n_tensors()
        self._lib.fkhw_open(str(golden_dir).encode())

    def load(self, directory: Path, which: int, filename: str) -> None:
        # hls4ml's loader calls exit() on a missing file: never let it
        if not (directory / filename).is_file():
            raise HlsProjectError(f"{directory / filename}: weight file missing")
        if self._lib.fkhw_load(str(directory).encode(), which) != 0:
            raise HlsProjectError(f"weight tensor {which} unknown to the fault library")

    def predict(self, values: np.ndarray) -> np.ndarray:
        values = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty((values.shape[0], self.n_out), dtype=np.float64)
        self._lib.fkhw_predict(values.ctypes.data, out.ctypes.data, values.shape[0])
        return out

    def close(self) -> None:
        import _ctypes

        if self._lib is not None:
            _ctypes.dlclose(self._lib._handle)
            self._lib = None


class HlsLevel:
    """hls4ml C-simulation of an :class:`IntegerModel`'s project.

    ``project`` is a directory written by ``fkhw hls`` for this model (or an
    :class:`HlsProject`). ``workers`` C-sims run faults in parallel threads
    (each costs one more library copy; it pays only on idle cores). Use as a
    context manager, or call :meth:`close`.
    """

    name = "hls"

    def __init__(self, model: IntegerModel, project, workers: int = 1):
        self.model = model
        self.project = project if isinstance(project, HlsProject) else HlsProject.open(project)
        self.space = SiteSpace.of(model)
        self.files = check_project(model, self.space, self.project)
        self._golden_values = [format_values(tensor_codes(model, t), t.fmt.frac) for t in self.space.tensors]
        if not self.project.fault_library.is_file():
            raise HlsProjectError(f"{self.project.fault_library}: missing; regenerate the project with `fkhw hls`")
        self._tmp = Path(tempfile.mkdtemp(prefix="fkhw-hls-"))
        self._sims = []
        try:
            for i in range(max(1, int(workers))):
                self._sims.append(_CSim(self.project.fault_library, self.project.weights_dir, self._tmp / f"w{i}"))
        except BaseException:
            self.close()
            raise

    @classmethod
    def for_bundle(cls, bundle, jobs=None) -> "HlsLevel":
        """The level on the model's current project (generated if needed).
        Parallelism comes from the campaign's executor, so one C-sim here."""
        from fkhw.hls.project import project_for

        return cls(bundle.ir, project_for(bundle), workers=1)

    # --- Level protocol ---------------------------------------------------

    def golden(self, inputs: np.ndarray) -> np.ndarray:
        values, inverse = self._input_values(inputs)
        return self._outputs(self._sims[0].predict(values))[inverse]

    def run(self, sites, inputs) -> np.ndarray:
        sites = self.space.check(sites)
        return self._run_changes([self._changes(np.array([s])) for s in sites.tolist()], inputs)

    def run_faults(self, fs: FaultSet, inputs, progress=None) -> Observed:
        """Parameter faults at cycle 0 with no scrub (seu, mbu:K, accumulate:K,
        such faults files): every weight a fault changes is written into its
        tensor's txt file (several files when it spans tensors), the C-sim
        runs, all of them are restored. The C-sim has no registers and no
        clock, so any other fault is refused with a FaultError naming why."""
        self.refuse_unrepresentable(fs)
        changes = [self._changes(fs.ff[fs.indptr[i]:fs.indptr[i + 1]]) for i in range(len(fs))]
        out = np.empty((len(fs), np.asarray(inputs).shape[0], self.model.output_spec.size), dtype=np.int64)
        step = 256
        for s0 in range(0, len(fs), step):
            out[s0:s0 + step] = self._run_changes(changes[s0:s0 + step], inputs)
            if progress is not None:
                progress(min(step, len(fs) - s0))
        return Observed.clean(out)

    def refuse_unrepresentable(self, fs: FaultSet) -> None:
        """Raise FaultError for the first fault the C-sim cannot represent."""
        bad = np.flatnonzero(fs.ff >= self.space.n_sites)
        if bad.size:
            u, ff = int(bad[0]), int(fs.ff[bad[0]])
            fault = int(fs.ids[np.searchsorted(fs.indptr, u, side="right") - 1])
            space = FlipFlopSpace.of(self.model)
            if ff < space.n_ff:
                d = space.describe(ff)
                what = f"a {d.cls} upset ({d.register} bit {d.bit})"
            else:
                what = f"an upset of flip-flop {ff}, which the plain design does not have (a TMR replica?)"
            raise FaultError(f"--level hls: fault {fault} has {what}: pipeline and control upsets (and TMR replicas) "
                             "do not exist in the C-sim, which has no registers; use --level software or rtl")
        late = np.flatnonzero(fs.cycle != 0)
        if late.size:
            u = int(late[0])
            fault = int(fs.ids[np.searchsorted(fs.indptr, u, side="right") - 1])
            raise FaultError(f"--level hls: fault {fault} has an upset at cycle {int(fs.cycle[u])}: the C-sim has no "
                             "clock, so it runs weight upsets present from cycle 0 only (use --level software or rtl)")
        scrubbed = np.flatnonzero(fs.scrub >= 0)
        if scrubbed.size:
            i = int(scrubbed[0])
            raise FaultError(f"--level hls: fault {int(fs.ids[i])} is scrubbed at cycle {int(fs.scrub[i])}: the C-sim "
                             "has no clock, so a scrub within the frame cannot be represented (use --level software "
                             "or rtl)")

    def _changes(self, sites: np.ndarray) -> dict:
        """tensor number -> (C-order positions, faulty codes) of a fault's parameter upsets."""
        tn, idx, bit = self.space.locate(sites)
        out = {}
        for k in np.unique(tn).tolist():
            t = self.space.tensors[k]
            codes = tensor_codes(self.model, t).reshape(-1).copy()
            for i, b in zip(idx[tn == k].tolist(), bit[tn == k].tolist()):
                codes[i] = t.fmt.flip(codes[i], b)
            where = np.unique(idx[tn == k])
            out[k] = (where, codes[where])
        return out

    def _run_changes(self, changes: list, inputs) -> np.ndarray:
        values, inverse = self._input_values(inputs)
        out = np.empty((len(changes), values.shape[0], self.model.output_spec.size), dtype=np.int64)
        chunks = [c for c in np.array_split(np.arange(len(changes)), len(self._sims)) if c.size]
        if len(chunks) <= 1:
            self._run_chunk(self._sims[0], changes, np.arange(len(changes)), values, out)
        else:
            with ThreadPoolExecutor(len(chunks)) as pool:
                jobs = [pool.submit(self._run_chunk, sim, changes, c, values, out) for sim, c in zip(self._sims, chunks)]
                for job in jobs:
                    job.result()
        return out[:, inverse]

    def weight_positions(self, sites) -> list:
        """(hls4ml weight file, C-order position in it, bit) of each site:
        where the hls level puts the fault."""
        tn, idx, bit = self.space.locate(sites)
        return [(self.files[k].filename, i, b) for k, i, b in zip(tn.tolist(), idx.tolist(), bit.tolist())]

    # --- internals ----------------------------------------------------------

    def _run_chunk(self, sim: _CSim, changes: list, positions: np.ndarray, values: np.ndarray, out) -> None:
        dirty = set()  # tensors whose faulty file is loaded
        try:
            for pos in positions.tolist():
                change = changes[pos]
                for k in sorted(dirty - set(change)):
                    self._restore(sim, k)
                for k, (where, codes) in change.items():
                    t, f = self.space.tensors[k], self.files[k]
                    (sim.workdir / f.filename).write_text(faulty_weight_text(self._golden_values[k], where, codes,
                                                                             t.fmt.frac))
                    sim.load(sim.workdir, k, f.filename)
                dirty = set(change)
                out[pos] = self._outputs(sim.predict(values))
        finally:
            for k in sorted(dirty):
                self._restore(sim, k)

    def _restore(self, sim: "_CSim", k: int) -> None:
        """Reload tensor k from the golden file hls4ml wrote."""
        sim.load(self.project.weights_dir, k, self.files[k].filename)

    def _input_values(self, inputs) -> tuple:
        """(distinct input rows as C-sim values, row -> distinct row).

        The C-sim is a pure function of one input row and costs ~60 us a
        row; real detector data repeats rows (5000 vendored rows hold 3273
        distinct ones), so each distinct row is simulated once."""
        fmt = self.model.input.fmt
        x = np.asarray(inputs)
        if x.shape[1:] != tuple(self.model.input.shape):
            raise ValueError(f"input shape {x.shape[1:]} does not match model input {tuple(self.model.input.shape)}")
        if not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"inputs must be integer codes of {fmt.describe()}, got dtype {x.dtype}")
        if x.size and (x.min() < fmt.lo or x.max() > fmt.hi):
            raise ValueError(f"input codes outside [{fmt.lo}, {fmt.hi}] of {fmt.describe()}")
        rows, inverse = np.unique(x.reshape(x.shape[0], -1), axis=0, return_inverse=True)
        return to_values(rows, fmt.frac), inverse.reshape(-1)

    def _outputs(self, values: np.ndarray) -> np.ndarray:
        return to_codes(values, self.model.output_spec.frac, "hls C-sim output")

    def close(self) -> None:
        for sim in self._sims:
            sim.close()
        self._sims = []
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_project(model: IntegerModel, space: SiteSpace, project: HlsProject) -> list:
    """The project's weight files in site-space order, checked against the
    model: same tensors, and the golden txt files hold exactly its codes."""
    digest = model.source.get("digest")
    if digest and project.manifest.get("digest") != digest:
        raise HlsProjectError(
            f"{project.directory}: generated for model {project.manifest.get('model')!r} "
            f"(digest {project.manifest.get('digest')}), not for {model.name!r} (digest {digest})")
    files = project.weight_files
    if len(files) != len(space.tensors):
        raise HlsProjectError(f"{project.directory}: {len(files)} weight files for {len(space.tensors)} parameter tensors")
    # position k of the manifest is tensor k of the site space and case k of
    # the fault library's fkhw_load
    for t, f in zip(space.tensors, files):
        if (f.layer, f.tensor, f.size, f.frac) != (t.layer, t.tensor, t.size, t.fmt.frac):
            raise HlsProjectError(f"{project.directory}: weight file {f.filename} is {f.layer}.{f.tensor}, "
                                  f"expected {t.layer}.{t.tensor} ({t.size} codes, frac {t.fmt.frac})")
        path = project.weights_dir / f.filename
        if not path.is_file():
            raise HlsProjectError(f"{path}: weight file missing")
        got = to_codes(np.array([float(v) for v in path.read_text().split(",")]), f.frac, str(path))
        if not np.array_equal(got, tensor_codes(model, t).reshape(-1)):
            raise HlsProjectError(f"{path}: does not hold the codes of {t.layer}.{t.tensor} of model {model.name!r}")
    return list(files)


__all__ = ["HlsLevel", "WeightFile", "check_project", "faulty_weight_text", "format_values"]
