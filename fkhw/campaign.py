"""Fault-injection campaigns: (fault list x level x inputs) -> a table keyed
by ``site``, with a resumable result store.

A campaign picks its inputs (seeded), measures the fault-free baseline,
then evaluates the planned sites chunk by chunk. Each finished chunk is
written atomically into ``OUT/.partial/``; a restarted campaign with the
same arguments skips what is there, so nothing is lost or counted twice.
The final files are assembled in plan order, so an interrupted-and-resumed
run ends with the same files as an uninterrupted one. A run holds the
folder's lock (``fkhw.campaign_files.FolderLock``) from start to end, and a
folder holding a campaign (finished or not) with other arguments is refused
unless ``--fresh`` replaces it.
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

from fkhw import __version__, campaign_files, data
from fkhw.damage import DamageMeter
from fkhw.evidence import N_BOOT, check_confidence, emd_norm_interval
from fkhw.executors import ChunkTask
from fkhw.model.bundle import ModelBundle
from fkhw.orders import site_order
from fkhw.outpaths import check_out_dir as check_out_path
from fkhw.outputs import write_outputs
from fkhw.progress import Progress
from fkhw.sites import SiteSpace

DEFAULT_THRESHOLDS = (1.0, 1.01, 1.05, 1.1)
# emd_norm_lo/hi: the confidence interval of emd_norm over the modules (fkhw.evidence); appended
# last so that readers of the first eight columns keep working
CSV_COLUMNS = ["site", "layer", "tensor", "index", "bit", "emd", "emd_norm", "n_changed", "emd_norm_lo", "emd_norm_hi"]
BASELINES = ("modules", "data")


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
    rows: tuple | None = None  # explicit modules (row numbers in the data file) instead of n_inputs + seed
    baseline: str = "modules"  # emd_norm's denominator: fault-free mean over the campaign's modules, or the data file's
    confidence: float = 0.95  # of the per-site emd_norm interval


@dataclass(frozen=True, eq=False)
class Workload:
    """The campaign's inputs: which modules, their charges and codes."""

    rows: np.ndarray  # indices into the data file
    charges: np.ndarray  # (N, 48) as read: the EMD reference side
    inputs: np.ndarray  # (N, *input.shape) encoder input codes
    data_path: Path
    data_digest: str


def make_workload(bundle: ModelBundle, data_path: str | None, n_inputs: int, seed: int,
                  rows: tuple | None = None) -> Workload:
    path = Path(data_path) if data_path else data.DEFAULT_DATA
    charges = data.load_charges(path)
    rows = data.select_modules(charges, n_inputs, seed) if rows is None else data.check_modules(charges, rows, path)
    chosen = charges[rows]
    data.check_image_input(bundle.ir.input.shape, bundle.name)
    inputs = data.encoder_input_codes(chosen, bundle.ir.input.fmt)
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
        uncovered = np.setdiff1d(wanted, order)
        if uncovered.size:
            # an order from a scores file that lacks some --sites would shrink the campaign silently
            raise CampaignError(f"--order {spec.order}: {uncovered.size} of the {wanted.size} --sites have no place "
                                f"in this order (e.g. site {int(uncovered[0])}); give scores for every site")
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
    done: dict = field(default_factory=dict)  # site -> (emd, n_changed, changed modules, their latents, their EMDs)

    @property
    def partial(self) -> Path:
        return self.out / ".partial"

    def open(self) -> None:
        manifest = self.partial / campaign_files.MANIFEST
        if manifest.exists():
            found = campaign_files.read_manifest(self.out)
            if found != self.identity:
                raise CampaignError(
                    f"{self.out} holds an unfinished campaign with other arguments; "
                    "rerun it with its own arguments, or use another --out, or --fresh to discard it")
            for chunk in sorted(self.partial.glob("chunk_*.npz")):
                try:
                    with np.load(chunk) as z:
                        self._keep(z["sites"], z["emd"], z["n_changed"], z["indptr"], z["module"], z["latent"],
                                   z["pair_emd"])
                except Exception:
                    chunk.unlink()  # a chunk cut short by a kill is redone, never half-read
        else:
            self.partial.mkdir(parents=True, exist_ok=True)
            manifest.write_text(json.dumps({"identity": self.identity}))

    def add(self, sites: np.ndarray, damage, latent: np.ndarray) -> None:
        """A finished chunk: ``damage`` from the meter, ``latent`` (S, N, n_out)."""
        order = np.lexsort((damage.pair_module, damage.pair_site))
        ps, pm = damage.pair_site[order], damage.pair_module[order]
        indptr = np.searchsorted(ps, np.arange(sites.size + 1))
        pairs = dict(indptr=indptr, module=pm.astype(np.int32), latent=latent[ps, pm],
                     pair_emd=damage.pair_emd[order])
        fd, tmp = tempfile.mkstemp(dir=self.partial, suffix=".tmp")
        os.close(fd)
        with open(tmp, "wb") as f:
            np.savez(f, sites=sites, emd=damage.emd, n_changed=damage.n_changed, **pairs)
        os.replace(tmp, self.partial / f"chunk_{int(sites[0]):08d}_{len(self.done):08d}.npz")
        self._keep(sites, damage.emd, damage.n_changed, indptr, pairs["module"], pairs["latent"], pairs["pair_emd"])

    def _keep(self, sites, emd, n_changed, indptr, module, latent, pair_emd) -> None:
        for k, (s, e, n) in enumerate(zip(sites.tolist(), emd.tolist(), n_changed.tolist())):
            sl = slice(indptr[k], indptr[k + 1])
            self.done[s] = (e, n, module[sl], latent[sl], pair_emd[sl])

    def discard(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)


def identity(spec: CampaignSpec, bundle: ModelBundle, work: Workload, planned: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(["chunks-v2", bundle.files.digest(), spec.level, spec.n_inputs, spec.seed,
                         work.data_digest]).encode())
    h.update(work.rows.astype(np.int64).tobytes())
    h.update(planned.astype(np.int64).tobytes())
    return h.hexdigest()[:20]


def check_out_dir(out: Path) -> None:
    check_out_path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CampaignError(f"--out {out}: cannot write there ({e.strerror})") from None


def check_finished(out: Path, ident: str, fresh: bool) -> None:
    """A finished campaign in ``out`` is replaced only by the same run, or
    after --fresh (which removes every file the old run left)."""
    if fresh:
        campaign_files.remove_artifacts(out)
        return
    found = campaign_files.finished_identity(out)
    if found is not None and found != ident:
        raise CampaignError(f"--out {out} holds a finished campaign with other arguments (or a damaged "
                            f"{campaign_files.SUMMARY}); use another --out, or --fresh to replace it")


# --- running -------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CampaignResult:
    out: Path
    summary: dict
    sites: np.ndarray
    emd_norm: np.ndarray


# (site, module) pairs per chunk: a chunk's latent codes arrive as int64, 16 outputs ->
# 256 MiB; bounds memory at thousands of modules
_CHUNK_PAIRS = 1 << 21


def _chunk_size(spec: CampaignSpec, level_name: str, n_modules: int) -> int:
    if spec.chunk:
        return spec.chunk
    # software evaluates big batches fast; simulators trade start-up cost
    # against what a kill loses
    # a simulator start costs ~0.7 s (cocotb + Verilator model), ~2.5 ms per injection after
    most = 2048 if level_name == "software" else 1024
    return max(64, min(most, _CHUNK_PAIRS // max(1, n_modules)))


def run_campaign(spec: CampaignSpec, bundle: ModelBundle, out: Path, fresh: bool = False,
                 level=None, quiet: bool = False, executor=None) -> CampaignResult:
    """Run (or resume) a campaign into ``out``. ``level`` or ``executor``
    override what ``spec`` would build (tests, embedding)."""
    t0 = time.monotonic()
    for t in spec.thresholds:
        if not np.isfinite(t) or t < 0:
            raise CampaignError(f"--threshold {t}: thresholds are non-negative numbers")
    if not np.isfinite(spec.sensitive_threshold) or spec.sensitive_threshold < 0:
        raise CampaignError(f"--sensitive-threshold {spec.sensitive_threshold}: a non-negative number")
    if spec.baseline not in BASELINES:
        raise CampaignError(f"--baseline {spec.baseline!r}: use {' or '.join(BASELINES)}")
    check_confidence(spec.confidence)
    out = Path(out)
    check_out_path(out)  # before any work; the folder is made only once the inputs are known good
    decoder = bundle.require_decoder()
    space = SiteSpace.of(bundle.ir)
    work = make_workload(bundle, spec.data, spec.n_inputs, spec.seed, spec.rows)
    planned = plan(spec, space)
    ident = identity(spec, bundle, work, planned)
    check_out_dir(out)
    with campaign_files.FolderLock(out):
        return _run_locked(spec, bundle, out, fresh, level, quiet, executor, t0, decoder, space, work, planned,
                           ident)


def _run_locked(spec, bundle, out, fresh, level, quiet, executor, t0, decoder, space, work, planned, ident):
    store = Store(out, ident)
    check_finished(out, ident, fresh)
    if fresh:
        store.discard()
    store.open()

    executor = executor or make_executor(spec, bundle, level)
    try:
        task = ChunkTask(spec.level, bundle, work.inputs)
        baseline = executor.golden(task)
        meter = DamageMeter(decoder, work.charges, baseline, bundle.ir.output_spec.frac)
        base_emd = float(meter.baseline_emd.mean())
        if not np.isfinite(base_emd) or base_emd <= 0:
            raise CampaignError(f"the fault-free mean EMD on {work.data_path} is {base_emd}: damage cannot be "
                                "normalised by it (check the data's charges)")
        denominator = base_emd if spec.baseline == "modules" else data_baseline_emd(bundle, work.data_path)
        if not np.isfinite(denominator) or denominator <= 0:
            raise CampaignError(f"the fault-free mean EMD over all of {work.data_path} is {denominator}: damage "
                                "cannot be normalised by it (check the data's charges)")

        todo = [s for s in planned.tolist() if s not in store.done]
        progress = Progress(len(planned), f"campaign[{spec.level}]",
                            stream=open(os.devnull, "w") if quiet else None)
        progress.advance(len(planned) - len(todo))
        size = _chunk_size(spec, spec.level, work.inputs.shape[0])
        chunks = [np.array(todo[i:i + size], dtype=np.int64) for i in range(0, len(todo), size)]
        if chunks and not _enough_sensitive(spec, store, planned, denominator):
            for sites, latent in executor.map(task, chunks):
                store.add(sites, meter.measure(latent), latent.astype(_latent_dtype(bundle)))
                progress.advance(sites.size)
                if _enough_sensitive(spec, store, planned, denominator):
                    break
    finally:
        executor.close()

    result = _assemble(spec, executor.level_name or spec.level, bundle, out, store, planned, work, baseline,
                       meter.baseline_emd, denominator, space, time.monotonic() - t0)
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


def data_baseline_emd(bundle: ModelBundle, data_path: Path) -> float:
    """The fault-free mean EMD over every module of the data file with
    non-zero charge (the FKeras paper's denominator). The software engine
    gives it: every level is bit-exact with it (fkhw agree)."""
    from fkhw import engine

    charges = data.load_charges(data_path)
    charges = charges[charges.sum(axis=1) > 0]
    codes = engine.forward(bundle.ir, data.encoder_input_codes(charges, bundle.ir.input.fmt))
    meter = DamageMeter(bundle.require_decoder(), charges, codes, bundle.ir.output_spec.frac)
    return float(meter.baseline_emd.mean())


def _assemble(spec, level_name, bundle, out, store, planned, work, baseline, baseline_emd, denominator, space,
              seconds) -> CampaignResult:
    base_emd = float(baseline_emd.mean())
    rows = _rows_in_plan_order(spec, store, planned, denominator)
    done = [store.done[s] for s in rows.tolist()]
    emd = np.array([d[0] for d in done])
    n_changed = np.array([d[1] for d in done], dtype=np.int64)
    n_out = baseline.shape[1]
    indptr = np.concatenate([[0], np.cumsum([d[2].size for d in done], dtype=np.int64)]).astype(np.int64)
    module = np.concatenate([d[2] for d in done] + [np.zeros(0, dtype=np.int32)]).astype(np.int32)
    changed_latent = (np.concatenate([d[3] for d in done]) if done
                      else np.zeros((0, n_out), dtype=_latent_dtype(bundle)))
    changed_emd = np.concatenate([d[4] for d in done] + [np.zeros(0)])
    emd_norm = emd / denominator
    lo, hi = emd_norm_interval(baseline_emd, indptr, module, changed_emd, spec.confidence, spec.seed,
                               denominator=None if spec.baseline == "modules" else denominator)
    if not np.isfinite(emd_norm).all():
        bad = rows[~np.isfinite(emd_norm)]
        raise CampaignError(f"emd_norm is not finite for {bad.size} site(s), e.g. site {int(bad[0])}: "
                            "nothing written (check the data's charges)")
    cols = space.table(bundle.ir, rows) if rows.size else {k: [] for k in ("site", "layer", "tensor", "index", "bit")}

    tmp_csv = out / "campaign.csv.tmp"
    with tmp_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for k in range(rows.size):
            w.writerow([int(cols["site"][k]), cols["layer"][k], cols["tensor"][k], int(cols["index"][k]),
                        int(cols["bit"][k]), repr(float(emd[k])), repr(float(emd_norm[k])), int(n_changed[k]),
                        repr(float(lo[k])), repr(float(hi[k]))])
    os.replace(tmp_csv, out / "campaign.csv")
    write_outputs(out / "outputs.npz", charges=work.charges, inputs=work.inputs, rows=work.rows, baseline=baseline,
                  baseline_emd=baseline_emd, sites=rows, indptr=indptr, module=module,
                  changed_latent=changed_latent, changed_emd=changed_emd)
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
        "baseline": spec.baseline,
        "emd_norm_denominator": denominator,
        "confidence": spec.confidence,
        "interval": f"paired bootstrap over the modules (BCa), {N_BOOT} replicates, seeded by --seed",
        "n_sites": int(rows.size),
        "n_sites_model": int(space.n_sites),
        "n_param_bits": int(bundle.ir.n_param_bits()),
        "complete": bool(rows.size == space.n_sites),
        "identity": store.identity,  # what a rerun in this folder must match
        "thresholds": threshold_table(emd_norm, spec.thresholds, bundle.ir.n_param_bits()),
        # how the work was split (jobs, chunk) does not change results, so it is not recorded here;
        # explicit modules are in outputs.npz (rows)
        "spec": {k: v for k, v in asdict(spec).items() if k not in ("sites", "jobs", "chunk", "scheduler", "rows")},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    # timing lives apart so that a resumed run ends with the same summary
    (out / "timing.json").write_text(json.dumps({"seconds": round(seconds, 3), "sites": int(rows.size)}) + "\n")
    return CampaignResult(out, summary, rows, emd_norm)


def campaign_model(summary: dict, override: str | None = None) -> ModelBundle:
    """The model a campaign ran on. A folder records both the model as given
    (``spec.model``: a name, or a directory that may be relative to where the
    campaign ran) and its name; whichever resolves is checked against the
    recorded digest, so a campaign is never read against another model."""
    from fkhw.model.bundle import load_model
    from fkhw.model.files import ModelFileError

    candidates = [override] if override else [summary.get("spec", {}).get("model"), summary.get("model")]
    errors = []
    for name in dict.fromkeys(c for c in candidates if c):
        try:
            bundle = load_model(name)
        except ModelFileError as e:
            errors.append(str(e))
            continue
        digest = summary.get("model_digest")
        if digest and bundle.files.digest() != digest:
            raise CampaignError(f"model {name!r} (digest {bundle.files.digest()}) is not the one the campaign ran on "
                                f"(digest {digest}); pass --model with that model")
        return bundle
    raise CampaignError("cannot find the campaign's model (" + "; ".join(errors) + "); pass --model")
