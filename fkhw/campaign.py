"""Fault-injection campaigns: (fault list x level x inputs) -> a table keyed
by ``site``, with a resumable result store.

A campaign picks its inputs (seeded), measures the fault-free baseline,
then evaluates the planned sites chunk by chunk. Each finished chunk is
written atomically into ``OUT/.partial/``; a restarted campaign with the
same arguments skips what is there, so nothing is lost or counted twice.
The final files are assembled in plan order, so an interrupted-and-resumed
run ends with the same files as an uninterrupted one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fkhw import __version__, data
from fkhw.damage import DamageMeter
from fkhw.executors import ChunkTask
from fkhw.model.bundle import ModelBundle
from fkhw.orders import site_order
from fkhw.progress import Progress
from fkhw.sites import SiteSpace

DEFAULT_THRESHOLDS = (1.0, 1.01, 1.05, 1.1)
CSV_COLUMNS = ["site", "layer", "tensor", "index", "bit", "emd", "emd_norm", "n_changed"]


class CampaignError(ValueError):
    """Options or an output folder a campaign cannot work with."""


@dataclass(frozen=True)
class CampaignSpec:
    model: str
    level: str = "software"
    n_inputs: int = 32
    seed: int = 0
    data: str | None = None
    order: str = "site"
    sites: tuple | None = None  # explicit subset, kept in plan order
    stop_after: int | None = None
    stop_sensitive: int | None = None
    sensitive_threshold: float = 1.0
    thresholds: tuple = DEFAULT_THRESHOLDS
    jobs: int | None = None
    chunk: int | None = None
    scheduler: str | None = None  # address of an existing Dask scheduler


@dataclass(frozen=True, eq=False)
class Workload:
    """The campaign's inputs: which modules, their charges and codes."""

    rows: np.ndarray  # indices into the data file
    charges: np.ndarray  # (N, 48) as read: the EMD reference side
    inputs: np.ndarray  # (N, *input.shape) encoder input codes
    data_path: Path
    data_digest: str


def make_workload(bundle: ModelBundle, data_path: str | None, n_inputs: int, seed: int) -> Workload:
    path = Path(data_path) if data_path else data.DEFAULT_DATA
    charges = data.load_charges(path)
    rows = data.select_modules(charges, n_inputs, seed)
    chosen = charges[rows]
    inputs = data.encoder_input_codes(chosen, bundle.ir.input.fmt)
    if tuple(inputs.shape[1:]) != tuple(bundle.ir.input.shape):
        raise CampaignError(f"model {bundle.name!r} reads inputs of shape {bundle.ir.input.shape}, "
                            f"the HGCAL data gives {inputs.shape[1:]}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return Workload(rows, chosen, inputs, path, digest)


def make_level(name: str, bundle: ModelBundle, jobs: int | None = None):
    """The evaluation level for a campaign, by name."""
    if name == "software":
        from fkhw.levels.software import SoftwareLevel

        return SoftwareLevel(bundle.ir)
    if name == "hls":
        from fkhw.levels.hls import HlsLevel

        return HlsLevel.for_bundle(bundle, jobs=jobs)
    if name == "rtl":
        from fkhw.levels.rtl import RtlLevel

        return RtlLevel.for_bundle(bundle, jobs=jobs)
    if name == "netlist":
        from fkhw.levels.rtl import netlist_level

        return netlist_level(bundle.ir, jobs=jobs or 1)
    raise CampaignError(f"--level {name!r}: use software, hls, rtl or netlist")


def plan(spec: CampaignSpec, space: SiteSpace) -> np.ndarray:
    order = site_order(spec.order, space, spec.seed)
    if spec.sites is not None:
        wanted = space.check(np.asarray(spec.sites))
        order = order[np.isin(order, wanted)]
    if spec.stop_after is not None:
        if spec.stop_after < 1:
            raise CampaignError(f"--stop-after must be at least 1, got {spec.stop_after}")
        order = order[: spec.stop_after]
    return order


# --- the resumable store -------------------------------------------------


@dataclass(eq=False)
class Store:
    """Chunks of finished sites under ``out/.partial``, keyed by an identity
    hash of everything that determines their results."""

    out: Path
    identity: str
    done: dict = field(default_factory=dict)  # site -> (emd, n_changed, latent)

    @property
    def partial(self) -> Path:
        return self.out / ".partial"

    def open(self) -> None:
        manifest = self.partial / "manifest.json"
        if manifest.exists():
            found = json.loads(manifest.read_text()).get("identity")
            if found != self.identity:
                raise CampaignError(
                    f"{self.out} holds an unfinished campaign with other arguments; "
                    "rerun it with its own arguments, or use another --out, or --fresh to discard it")
            for chunk in sorted(self.partial.glob("chunk_*.npz")):
                try:
                    with np.load(chunk) as z:
                        for s, e, n, lat in zip(z["sites"], z["emd"], z["n_changed"], z["latent"]):
                            self.done[int(s)] = (float(e), int(n), lat)
                except Exception:
                    chunk.unlink()  # a chunk cut short by a kill is redone, never half-read
        else:
            self.partial.mkdir(parents=True, exist_ok=True)
            manifest.write_text(json.dumps({"identity": self.identity}))

    def add(self, sites: np.ndarray, emd: np.ndarray, n_changed: np.ndarray, latent: np.ndarray) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.partial, suffix=".tmp")
        os.close(fd)
        with open(tmp, "wb") as f:
            np.savez(f, sites=sites, emd=emd, n_changed=n_changed, latent=latent)
        os.replace(tmp, self.partial / f"chunk_{int(sites[0]):08d}_{len(self.done):08d}.npz")
        for s, e, n, lat in zip(sites, emd, n_changed, latent):
            self.done[int(s)] = (float(e), int(n), lat)

    def discard(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)


def identity(spec: CampaignSpec, bundle: ModelBundle, work: Workload, planned: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([bundle.files.digest(), spec.level, spec.n_inputs, spec.seed, work.data_digest]).encode())
    h.update(planned.astype(np.int64).tobytes())
    return h.hexdigest()[:20]


def check_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_probe"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise CampaignError(f"--out {out}: cannot write there ({e.strerror})") from None


# --- running -------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CampaignResult:
    out: Path
    summary: dict
    sites: np.ndarray
    emd_norm: np.ndarray


def _chunk_size(spec: CampaignSpec, level_name: str, n: int) -> int:
    if spec.chunk:
        return spec.chunk
    # software evaluates big batches fast; simulators trade start-up cost
    # against what a kill loses
    # a simulator start costs ~0.7 s (cocotb + Verilator model), ~2.5 ms per injection after
    return 2048 if level_name == "software" else 1024


def run_campaign(spec: CampaignSpec, bundle: ModelBundle, out: Path, fresh: bool = False,
                 level=None, quiet: bool = False, executor=None) -> CampaignResult:
    """Run (or resume) a campaign into ``out``. ``level`` or ``executor``
    override what ``spec`` would build (tests, embedding)."""
    t0 = time.monotonic()
    for t in spec.thresholds:
        if not np.isfinite(t) or t < 0:
            raise CampaignError(f"--threshold {t}: thresholds are non-negative numbers")
    out = Path(out)
    check_out_dir(out)
    decoder = bundle.require_decoder()
    space = SiteSpace.of(bundle.ir)
    work = make_workload(bundle, spec.data, spec.n_inputs, spec.seed)
    planned = plan(spec, space)
    store = Store(out, identity(spec, bundle, work, planned))
    if fresh:
        store.discard()
    store.open()

    executor = executor or make_executor(spec, bundle, level)
    try:
        task = ChunkTask(spec.level, bundle, work.inputs)
        baseline = executor.golden(task)
        meter = DamageMeter(decoder, work.charges, baseline, bundle.ir.output_spec.frac)
        base_emd = float(meter.baseline_emd.mean())

        todo = [s for s in planned.tolist() if s not in store.done]
        progress = Progress(len(planned), f"campaign[{spec.level}]",
                            stream=open(os.devnull, "w") if quiet else None)
        progress.advance(len(planned) - len(todo))
        size = _chunk_size(spec, spec.level, len(todo))
        chunks = [np.array(todo[i:i + size], dtype=np.int64) for i in range(0, len(todo), size)]
        if chunks and not _enough_sensitive(spec, store, planned, base_emd):
            for sites, latent in executor.map(task, chunks):
                emd, n_changed = meter.measure(latent)
                store.add(sites, emd, n_changed, latent.astype(_latent_dtype(bundle)))
                progress.advance(sites.size)
                if _enough_sensitive(spec, store, planned, base_emd):
                    break
    finally:
        executor.close()

    result = _assemble(spec, executor.level_name or spec.level, bundle, out, store, planned, work, baseline, base_emd, space,
                       time.monotonic() - t0)
    store.discard()
    return result


def _enough_sensitive(spec: CampaignSpec, store: Store, planned: np.ndarray, base: float) -> bool:
    """Whether the finished prefix of the plan holds --stop-sensitive sensitive bits.
    Only the contiguous prefix counts, so the result does not depend on the
    order in which parallel chunks happen to finish."""
    if spec.stop_sensitive is None:
        return False
    found = 0
    for s in planned.tolist():
        if s not in store.done:
            return False
        found += store.done[s][0] / base > spec.sensitive_threshold
        if found >= spec.stop_sensitive:
            return True
    return False


def make_executor(spec: CampaignSpec, bundle: ModelBundle, level=None):
    """In process for the software level (or a level object given by the
    caller); a Dask cluster for --scheduler, or for --jobs N > 1 (simulator
    levels default to one worker per core)."""
    from fkhw.executors import DaskExecutor, InProcess

    if level is not None:
        return InProcess(level)
    if spec.level == "hls":
        # generate (or reuse) the project once here, not racing on every worker
        from fkhw.hls.project import project_for

        project_for(bundle)
    if spec.level == "netlist":
        # synthesise (or reuse) the netlist once here, not racing on every worker
        from fkhw.levels.rtl import netlist_design

        netlist_design(bundle.ir, log=print)
    if spec.scheduler:
        return DaskExecutor.connect(spec.scheduler)
    jobs = spec.jobs if spec.jobs is not None else (1 if spec.level == "software" else os.cpu_count() or 1)
    if jobs > 1:
        return DaskExecutor.local(jobs)
    return InProcess(make_level(spec.level, bundle, jobs=1))


def _latent_dtype(bundle: ModelBundle):
    spec = bundle.ir.output_spec
    return np.int16 if -(1 << 15) <= spec.lo and spec.hi < (1 << 15) else np.int64


def _rows_in_plan_order(spec: CampaignSpec, store: Store, planned: np.ndarray, base: float) -> np.ndarray:
    rows = [s for s in planned.tolist() if s in store.done]
    if spec.stop_sensitive is not None:
        found, cut = 0, len(rows)
        for k, s in enumerate(rows):
            found += store.done[s][0] / base > spec.sensitive_threshold
            if found >= spec.stop_sensitive:
                cut = k + 1
                break
        rows = rows[:cut]
    return np.array(rows, dtype=np.int64)


def threshold_table(emd_norm: np.ndarray, thresholds, n_all_bits: int) -> dict:
    table = {}
    for t in sorted(set(float(x) for x in thresholds)):
        n = int((emd_norm > t).sum())
        table[f"{t:g}"] = {
            "threshold": t,
            "sensitive_bits": n,
            "fraction": n / emd_norm.size if emd_norm.size else 0.0,
            "tmr_overhead_pct": 100.0 * 2 * n / n_all_bits,
        }
    return table


def _assemble(spec, level_name, bundle, out, store, planned, work, baseline, base_emd, space, seconds) -> CampaignResult:
    rows = _rows_in_plan_order(spec, store, planned, base_emd)
    emd = np.array([store.done[s][0] for s in rows.tolist()])
    n_changed = np.array([store.done[s][1] for s in rows.tolist()], dtype=np.int64)
    n_out = baseline.shape[1]
    latent = (np.stack([store.done[s][2] for s in rows.tolist()]) if rows.size
              else np.zeros((0, work.inputs.shape[0], n_out), dtype=_latent_dtype(bundle)))
    emd_norm = emd / base_emd
    cols = space.table(bundle.ir, rows) if rows.size else {k: [] for k in ("site", "layer", "tensor", "index", "bit")}

    tmp_csv = out / "campaign.csv.tmp"
    with tmp_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for k in range(rows.size):
            w.writerow([int(cols["site"][k]), cols["layer"][k], cols["tensor"][k], int(cols["index"][k]),
                        int(cols["bit"][k]), repr(float(emd[k])), repr(float(emd_norm[k])), int(n_changed[k])])
    os.replace(tmp_csv, out / "campaign.csv")
    with (out / "outputs.npz.tmp").open("wb") as f:
        np.savez_compressed(f, charges=work.charges, inputs=work.inputs, baseline=baseline, latent=latent,
                            sites=rows, rows=work.rows)
    os.replace(out / "outputs.npz.tmp", out / "outputs.npz")
    summary = {
        "fkhw": __version__,
        "model": bundle.name,
        "model_digest": bundle.files.digest(),
        "level": level_name,
        "seed": spec.seed,
        "inputs": int(work.inputs.shape[0]),
        "data": str(work.data_path),
        "data_digest": work.data_digest,
        "order": spec.order,
        "baseline_emd": base_emd,
        "n_sites": int(rows.size),
        "n_sites_model": int(space.n_sites),
        "n_param_bits": int(bundle.ir.n_param_bits()),
        "complete": bool(rows.size == space.n_sites),
        "thresholds": threshold_table(emd_norm, spec.thresholds, bundle.ir.n_param_bits()),
        # how the work was split (jobs, chunk) does not change results, so it is not recorded here
        "spec": {k: v for k, v in asdict(spec).items() if k not in ("sites", "jobs", "chunk", "scheduler")},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    # timing lives apart so that a resumed run ends with the same summary
    (out / "timing.json").write_text(json.dumps({"seconds": round(seconds, 3), "sites": int(rows.size)}) + "\n")
    return CampaignResult(out, summary, rows, emd_norm)
