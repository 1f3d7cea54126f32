"""Fault-injection campaigns: (fault set x level x inputs) -> a table keyed
by ``site`` (``--faults seu``, today's single upsets) or by ``fault`` (every
other kind: fkhw.faults.kinds), with a resumable result store.

A campaign picks its inputs (seeded), measures the fault-free baseline,
enumerates its faults (a :class:`fkhw.faults.space.FaultSet`), then evaluates
them chunk by chunk; the damage of each fault is fkhw.damage.meter's. Each finished chunk is
written atomically into ``OUT/.partial/``; a restarted campaign with the
same arguments skips what is there, so nothing is lost or counted twice.
The final files are assembled in plan order, so an interrupted-and-resumed
run ends with the same files as an uninterrupted one. A run holds the
folder's lock (``fkhw.campaign.files.FolderLock``) from start to end, and a
folder holding a campaign (finished or not) with other arguments is refused
unless ``--fresh`` replaces it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fkhw.errors import InputError
from fkhw import __version__

from fkhw.model import data

from fkhw.campaign import files as campaign_files
from fkhw.damage.meter import DamageMeter, degraded, touched_mean
from fkhw.damage.intervals import N_BOOT, check_confidence, emd_norm_interval, wilson
from fkhw.campaign.executors import ChunkTask
from fkhw.faults.kinds import DEFAULT_SAMPLES, KindOptions, enumerate_faults, parse_kind
from fkhw.faults.space import FaultError, FaultSet, FlipFlopSpace, Hardening, check_fault_set, read_faults_file, touched, \
    write_faults_csv
from fkhw.levels import LEVELS, level_entry, protected_design
from fkhw.damage.metrics import EMD, MetricError, check_labels, get_metric, pred_changed, scorer
from fkhw.model.bundle import ModelBundle
from fkhw.campaign.orders import site_order
from fkhw.outpaths import atomic_open, make_dir, save_npz, write_text
from fkhw.outpaths import check_out_dir as check_out_path
from fkhw.campaign.outputs import write_outputs
from fkhw.progress import Progress
from fkhw.faults.sites import SiteSpace

DEFAULT_THRESHOLDS = (1.0, 1.01, 1.05, 1.1)
# emd_norm_lo/hi: the confidence interval of emd_norm over the modules (fkhw.damage.intervals); appended
# last so that readers of the first eight columns keep working
CSV_COLUMNS = ["site", "layer", "tensor", "index", "bit", "emd", "emd_norm", "n_changed", "emd_norm_lo", "emd_norm_hi"]
# the table of a campaign of another kind (keyed by fault id; faults.csv says what each fault is)
FAULT_CSV_COLUMNS = ["fault", "n_upsets", "classes", "emd", "emd_norm", "n_changed", "n_touched", "lost", "extra",
                     "emd_norm_lo", "emd_norm_hi"]
BASELINES = ("modules", "data")
SEU = "seu"


class CampaignError(InputError):
    """Options or an output folder a campaign cannot work with."""


@dataclass(frozen=True)
class CampaignSpec:
    """What a campaign runs: the model (as given: a name or a path), the
    level, the inputs (``n_inputs`` drawn with ``seed`` from ``data``, or
    explicit ``rows``), the faults (a kind, or a ``faults_file``; for
    ``seu`` optionally ``sites``, an ``order`` and early stops), the damage
    ``metric``, and how the work is split (``jobs``, ``chunk``,
    ``scheduler``: not part of the campaign's identity). The options of
    ``fkhw campaign`` under the same names."""

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
    faults: str = SEU  # the fault kind (fkhw.faults.kinds): seu, mbu:K, pipeline, accumulate:K
    faults_file: str | None = None  # an explicit list of faults instead of a kind
    cycle: int | None = None  # --cycle: the upsets' cycle (default: the kind's)
    samples: int | None = None  # --samples of accumulate:K (default fkhw.faults.kinds.DEFAULT_SAMPLES)
    hardening: Hardening | None = None  # --tmr: the selectively hardened design instead of the plain one
    metric: str = EMD  # the damage metric (fkhw.damage.metrics): emd, accuracy, mse, module:function
    labels: str | None = None  # --labels: class ids or targets, one row per input of --data

    @property
    def seu(self) -> bool:
        """Today's single-bit campaign: results keyed by site, its files and columns."""
        return self.faults_file is None and self.faults == SEU


@dataclass(frozen=True, eq=False)
class Workload:
    """The campaign's inputs: which modules, their charges and codes."""

    rows: np.ndarray  # indices into the data file
    charges: np.ndarray  # (N, 48) as read: the EMD reference side (arrays: the real-valued inputs)
    inputs: np.ndarray  # (N, *input.shape) encoder input codes
    data_path: Path
    data_digest: str
    labels: np.ndarray | None = None  # (N,) class ids or (N, n_out) targets of the chosen rows, as the metric reads them
    labels_digest: str | None = None


def metric_options(summary: dict) -> dict:
    """CampaignSpec fields that rerun a campaign's metric (``metric``,
    ``labels``) from its summary; none for an EMD campaign."""
    m = summary.get("metric")
    return {"metric": m["name"], "labels": m.get("labels")} if isinstance(m, dict) else {}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def is_array_file(path) -> bool:
    return path is not None and Path(path).suffix in data.ARRAY_SUFFIXES


def make_workload(bundle: ModelBundle, data_path: str | None, n_inputs: int, seed: int,
                  rows: tuple | None = None, metric: str = EMD, labels: str | None = None) -> Workload:
    """The campaign's inputs: modules of an HGCAL CSV (the default), or rows
    of an array file (.npy/.npz/HDF5) in the model's input shape; ``labels``
    for the metrics that read them."""
    m = get_metric(metric)
    path = Path(data_path) if data_path else data.DEFAULT_DATA
    if is_array_file(path):
        if m.needs_decoder:
            raise CampaignError(f"--data {path}: the {m.name} metric compares HGCAL trigger cells, which an array "
                                "file does not hold; choose --metric accuracy, mse or module:function")
        x, y = data.load_arrays(path, labels, bundle.ir.input.shape)
        if m.needs_labels and y is None:
            raise CampaignError(f"--metric {m.name} needs --labels (one class per row of {path})")
        pool = np.ones((x.shape[0], 1))  # every row may be drawn (fkhw.model.data.row_pool)
        if rows is None:
            if n_inputs > x.shape[0]:
                raise CampaignError(f"--inputs {n_inputs} is larger than the {x.shape[0]} rows of {path}")
            rows = data.select_modules(pool, n_inputs, seed)
        else:
            rows = data.check_modules(pool, rows, path)
        inputs = data.array_input_codes(x[rows], bundle.ir.input.fmt, str(path))
        try:
            lab = check_labels(m, None if y is None else y[rows], bundle.ir.output_spec.size, f"--labels {labels}")
        except MetricError as e:
            raise CampaignError(str(e)) from None
        return Workload(rows, x[rows], inputs, path, _digest(path), lab, _digest(Path(labels)) if labels else None)
    if labels is not None:
        raise CampaignError(f"--labels {labels}: labels go with array inputs (--data x.npy/.npz/.h5), not the "
                            f"HGCAL CSV {path}")
    if m.needs_labels:
        raise CampaignError(f"--metric {m.name} needs --labels, with array inputs (--data x.npy --labels y.npy)")
    charges = data.load_charges(path)
    rows = data.select_modules(charges, n_inputs, seed) if rows is None else data.check_modules(charges, rows, path)
    chosen = charges[rows]
    data.check_image_input(bundle.ir.input.shape, bundle.name)
    inputs = data.encoder_input_codes(chosen, bundle.ir.input.fmt)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return Workload(rows, chosen, inputs, path, digest)


def plan(spec: CampaignSpec, space: SiteSpace) -> np.ndarray:
    """The sites of a seu campaign, in injection order."""
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


def check_fault_options(spec: CampaignSpec) -> None:
    """Options that do not go with the chosen faults, refused before any work."""
    what = f"--faults-file {spec.faults_file}" if spec.faults_file is not None else f"--faults {spec.faults}"
    kind = None if spec.faults_file is not None else parse_kind(spec.faults)
    if not spec.seu:
        for opt, given in (("--order", spec.order != "site"), ("--sites", spec.sites is not None),
                           ("--stop-sensitive", spec.stop_sensitive is not None)):
            if given:
                raise CampaignError(f"{opt} chooses among the parameter bits of a --faults seu campaign; {what} "
                                    "runs its faults in fault-id order (--stop-after N keeps the first N)")
    if spec.samples is not None and (kind is None or kind.name != "accumulate"):
        raise CampaignError(f"--samples {spec.samples}: only --faults accumulate:K draws samples, not {what}")
    if spec.samples is not None and spec.samples < 1:
        raise CampaignError(f"--samples {spec.samples}: draw at least 1 sample")
    if spec.seu and spec.cycle is not None:
        # a seu table is the per-bit map tmr and rank read: one upset at cycle 0, every slot exposed
        raise CampaignError(f"--cycle {spec.cycle}: --faults seu upsets each parameter bit at cycle 0; for single "
                            "upsets at another cycle give them in a --faults-file (FLIPFLOP@CYCLE)")
    if spec.faults_file is not None and spec.cycle is not None:
        raise CampaignError(f"--cycle {spec.cycle}: the faults file {spec.faults_file} gives each upset's cycle")


@dataclass(frozen=True, eq=False)
class Plan:
    """The campaign's faults in run order, and what names them."""

    faults: FaultSet
    space: FlipFlopSpace
    label: str  # the kind as given (seu, mbu:2, ...) or "file"
    options: dict  # what else determined the set (cycle; samples and seed of accumulate)
    n_kind: int  # faults the kind (or file) gives, before --stop-after

    @property
    def ids(self) -> np.ndarray:
        return self.faults.ids

    def digest(self) -> str:
        h = hashlib.sha256()
        for a in (self.faults.ids, self.faults.indptr, self.faults.ff, self.faults.cycle, self.faults.scrub):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        return h.hexdigest()[:20]


def _check_samples_fit(samples: int, k: int, n_inputs: int, latent_bytes: int) -> None:
    """Refuse a --samples whose faults and results cannot fit in memory. One
    accumulate:K fault takes ~1 KiB of Python objects in the plan and the
    store, ~64 bytes per upset while drawn and copied, and its results where
    every module changes (a module id, an EMD and ``latent_bytes`` of latent
    codes each), kept twice while the outputs are assembled (econt-bol,
    accumulate:2 on 32 modules: 1.9 KiB measured per fault, 3.9 KiB estimated)."""
    from fkhw.host.resources import too_big

    why = too_big("--samples", samples, 1024 + 64 * k + 2 * n_inputs * (12 + latent_bytes),
                  f"accumulate:{k} fault on {n_inputs} modules")
    if why:
        raise FaultError(why)


def _check_inputs_fit(n_inputs: int, n_faults: int, latent_bytes: int) -> None:
    """Refuse an --inputs whose results cannot fit in memory: the store keeps,
    per fault and module whose outputs changed, a module id, an EMD and the
    latent codes (``latent_bytes``), counted here as if every one changed."""
    from fkhw.host.resources import too_big

    why = too_big("--inputs", n_inputs, n_faults * (12 + latent_bytes), f"module (its results for {n_faults:,} faults)")
    if why:
        raise CampaignError(why)


def plan_faults(spec: CampaignSpec, bundle: ModelBundle, n_vectors: int) -> Plan:
    """The fault set of a campaign (seu: the planned sites, one upset each).
    Any FaultError (unknown kind, K or cycle out of range, flip-flops that do
    not exist) is raised here, before the output folder is touched."""
    space = FlipFlopSpace.of(bundle.ir) if spec.hardening is None else spec.hardening.space(bundle.ir)
    cycle_note = f"--cycle {spec.cycle}: " if spec.cycle is not None else ""
    try:
        check_fault_options(spec)
        if spec.faults_file is not None:
            fs = read_faults_file(Path(spec.faults_file))
            try:
                check_fault_set(fs, space, n_vectors)
            except FaultError as e:
                raise FaultError(f"--faults-file {spec.faults_file}: {e}") from None
            label, options = "file", {}  # the file's path is in the summary; its faults are in the digest
        elif spec.seu:
            sites = plan(spec, space.sites)
            fs = FaultSet.single(SEU, sites, sites, 0)
            label, options = SEU, {}
        else:
            kind = parse_kind(spec.faults)
            opt = KindOptions(n_vectors, spec.cycle, spec.samples or DEFAULT_SAMPLES, spec.seed)
            if kind.name == "accumulate":  # the one size a user chooses freely: refused before it is drawn
                _check_samples_fit(opt.samples, kind.k or 0, n_vectors,
                                   bundle.ir.output_spec.size * np.dtype(_latent_dtype(bundle)).itemsize)
            fs = enumerate_faults(space, kind, opt)
            label = kind.label
            options = {"cycle": spec.cycle, **({"samples": opt.samples, "seed": spec.seed}
                                               if kind.name == "accumulate" else {})}
    except FaultError as e:
        raise CampaignError(f"{cycle_note}{e}" if cycle_note and not str(e).startswith("--cycle") else str(e)) from None
    n_kind = space.sites.n_sites if spec.seu else len(fs)
    if not spec.seu and spec.stop_after is not None:
        if spec.stop_after < 1:
            raise CampaignError(f"--stop-after must be at least 1, got {spec.stop_after}")
        fs = take(fs, np.arange(min(spec.stop_after, len(fs))))
    return Plan(fs, space, label, options, n_kind)


def take(fs: FaultSet, positions) -> FaultSet:
    """The faults at ``positions`` (vectorised over the CSR arrays; keeps each
    fault's upsets as they are)."""
    pos = np.asarray(positions, dtype=np.int64).reshape(-1)
    starts, lens = fs.indptr[pos], np.diff(fs.indptr)[pos]
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    upsets = np.repeat(starts - indptr[:-1], lens) + np.arange(int(indptr[-1]), dtype=np.int64)
    return FaultSet(fs.kind, fs.ids[pos], indptr, fs.ff[upsets], fs.cycle[upsets], fs.scrub[pos])


# --- the resumable store -------------------------------------------------


@dataclass(eq=False)
class Store:
    """Chunks of finished faults under ``out/.partial``, keyed by an identity
    hash of everything that determines their results."""

    out: Path
    identity: str
    # fault id -> (emd, n_changed, changed modules, their latents, their EMDs, lost modules, extra)
    done: dict = field(default_factory=dict)

    @property
    def partial(self) -> Path:
        return self.out / ".partial"

    def open(self) -> None:
        make_dir(self.partial)  # a link planted as .partial is refused, its chunks never read nor removed
        manifest = self.partial / campaign_files.MANIFEST
        if manifest.exists():
            found = campaign_files.read_manifest(self.out)
            if found != self.identity:
                raise CampaignError(
                    f"{self.out} holds an unfinished campaign with other arguments; "
                    "rerun it with its own arguments, or use another --out, or --fresh to discard it")
            for chunk in sorted(self.partial.glob("chunk_*.npz")):
                try:
                    with np.load(chunk, allow_pickle=False) as z:
                        self._keep(z["sites"], z["emd"], z["n_changed"], z["indptr"], z["module"], z["latent"],
                                   z["pair_emd"], z["lost_indptr"], z["lost_module"], z["extra"])
                except Exception:
                    chunk.unlink()  # a chunk cut short by a kill (or of an older format) is redone, never half-read
        else:
            write_text(manifest, json.dumps({"identity": self.identity}))

    def add(self, ids: np.ndarray, damage, latent: np.ndarray) -> None:
        """A finished chunk: fault ``ids``, ``damage`` from the meter, ``latent`` (F, N, n_out)."""
        order = np.lexsort((damage.pair_module, damage.pair_site))
        ps, pm = damage.pair_site[order], damage.pair_module[order]
        indptr = np.searchsorted(ps, np.arange(ids.size + 1))
        lorder = np.lexsort((damage.lost_module, damage.lost_fault))
        lost_indptr = np.searchsorted(damage.lost_fault[lorder], np.arange(ids.size + 1))
        pairs = dict(indptr=indptr, module=pm.astype(np.int32), latent=latent[ps, pm],
                     pair_emd=damage.pair_emd[order], lost_indptr=lost_indptr,
                     lost_module=damage.lost_module[lorder].astype(np.int32), extra=damage.extra)
        save_npz(self.partial / f"chunk_{int(ids[0]):08d}_{len(self.done):08d}.npz", sites=ids, emd=damage.emd,
                 n_changed=damage.n_changed, **pairs)
        self._keep(ids, damage.emd, damage.n_changed, **pairs)

    def _keep(self, ids, emd, n_changed, indptr, module, latent, pair_emd, lost_indptr, lost_module, extra) -> None:
        for k, (s, e, n, x) in enumerate(zip(ids.tolist(), emd.tolist(), n_changed.tolist(), extra.tolist())):
            sl = slice(indptr[k], indptr[k + 1])
            self.done[s] = (e, n, module[sl], latent[sl], pair_emd[sl], lost_module[lost_indptr[k]:lost_indptr[k + 1]],
                            x)

    def discard(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)


def identity(spec: CampaignSpec, bundle: ModelBundle, work: Workload, planned: Plan) -> str:
    """What a rerun in the same folder must match. A seu campaign at cycle 0
    is fully named by its planned sites (as before faults were data, so its
    finished folders stay valid); any other adds the fault set: kind,
    options and a digest of its arrays."""
    h = hashlib.sha256()
    h.update(json.dumps(["chunks-v2", bundle.files.digest(), spec.level, spec.n_inputs, spec.seed,
                         work.data_digest]).encode())
    h.update(work.rows.astype(np.int64).tobytes())
    h.update(planned.ids.astype(np.int64).tobytes())
    if spec.metric != EMD or work.labels_digest is not None:  # today's EMD campaigns keep their identity
        h.update(json.dumps(["metric", spec.metric, work.labels_digest]).encode())
    if not spec.seu:
        h.update(json.dumps(["faults", planned.label, planned.options, planned.digest()]).encode())
    if spec.hardening is not None:
        h.update(json.dumps(["hardened", spec.hardening.digest()]).encode())
    return h.hexdigest()[:20]


def check_out_dir(out: Path) -> None:
    check_out_path(out)
    try:
        make_dir(out)
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
    """A finished campaign: its folder, ``summary.json`` as a dict, and the
    row keys (sites or fault ids) with their normalised damage."""

    out: Path
    summary: dict
    sites: np.ndarray
    emd_norm: np.ndarray


# (site, module) pairs per chunk: a chunk's latent codes arrive as int64, 16 outputs ->
# 256 MiB; bounds memory at thousands of modules
_CHUNK_PAIRS = 1 << 21
# faults per local simulator process in one chunk: a simulator start costs ~0.6 s of CPU (econt-bol's exhaustive
# RTL campaign on 2 processes: one chunk, 6.0 s CPU against 7.1 s as two); a kill loses the chunk in flight
# (a few seconds of simulation); the simulators report progress within it
LOCAL_SIM_CHUNK = 8192


# simulator levels that split each chunk over their own processes (no Dask cluster needed on one machine)
SELF_PARALLEL = ("rtl", "netlist")


def _local_jobs(spec: CampaignSpec) -> int:
    return spec.jobs if spec.jobs is not None else (1 if spec.level == "software" else os.cpu_count() or 1)


def _chunk_size(spec: CampaignSpec, level_name: str, n_modules: int) -> int:
    if spec.chunk:
        return spec.chunk
    # software evaluates big batches fast; simulators trade start-up cost (~0.5 s per
    # simulator process) against what a kill loses (~0.2 ms per injection and process)
    if level_name == "software":
        most = 2048
    elif level_name in SELF_PARALLEL and not spec.scheduler:
        most = LOCAL_SIM_CHUNK * _local_jobs(spec)  # one chunk keeps every local simulator process busy
    else:
        most = 1024
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
    if level is None and executor is None:
        level_entry(spec.level)  # an unknown level is named before any work
    out = Path(out)
    check_out_path(out)  # before any work; the folder is made only once the inputs are known good
    try:
        metric = get_metric(spec.metric)
    except MetricError as e:
        raise CampaignError(str(e)) from None
    if metric.needs_decoder:
        bundle.require_decoder()  # refused before any work
    space = SiteSpace.of(bundle.ir)
    work = make_workload(bundle, spec.data, spec.n_inputs, spec.seed, spec.rows, spec.metric, spec.labels)
    planned = plan_faults(spec, bundle, work.inputs.shape[0])
    _check_inputs_fit(work.inputs.shape[0], len(planned.faults), np.dtype(_latent_dtype(bundle)).itemsize
                      * bundle.ir.output_spec.size)
    if not metric.is_emd:
        # the metric on the integer engine's fault-free outputs (every level's, bit for bit): a user metric
        # that raises or returns NaN, or nothing to normalise by, is refused before the folder is made
        from fkhw.model import engine

        scorer(metric, engine.forward(bundle.ir, work.inputs), bundle.ir.output_spec.frac, work.labels)
    if level is None and executor is None:
        why = LEVELS[spec.level].cannot_run(planned.faults, planned.space)
        if why:
            raise CampaignError(f"--level {spec.level} {why}: it cannot run --faults {planned.label} "
                                "(the software level runs every kind)")
    ident = identity(spec, bundle, work, planned)
    check_out_dir(out)
    with campaign_files.FolderLock(out):
        return _run_locked(spec, bundle, out, fresh, level, quiet, executor, t0, space, work, planned, ident)


def make_meter(spec: CampaignSpec, bundle: ModelBundle, work: Workload, baseline: np.ndarray) -> DamageMeter:
    """The damage meter of the campaign's metric on its inputs (fkhw.damage.metrics)."""
    metric = get_metric(spec.metric)
    frac = bundle.ir.output_spec.frac
    if metric.needs_decoder:
        return DamageMeter(bundle.require_decoder(), work.charges, baseline, frac)
    return DamageMeter(None, work.charges, baseline, frac, score=scorer(metric, baseline, frac, work.labels))


def _run_locked(spec, bundle, out, fresh, level, quiet, executor, t0, space, work, planned, ident):
    store = Store(out, ident)
    check_finished(out, ident, fresh)
    if fresh:
        store.discard()
    store.open()

    executor = executor or make_executor(spec, bundle, level)
    n = work.inputs.shape[0]
    try:
        task = ChunkTask(spec.level, bundle, work.inputs, spec.hardening)
        baseline = executor.golden(task)
        meter = make_meter(spec, bundle, work, baseline)
        base_emd = float(meter.baseline_emd.mean())
        if not np.isfinite(base_emd) or base_emd <= 0:
            raise CampaignError(f"the fault-free mean EMD on {work.data_path} is {base_emd}: damage cannot be "
                                "normalised by it (check the data's charges)")
        if spec.baseline != "modules" and spec.metric != EMD:
            raise CampaignError(f"--baseline {spec.baseline}: only the emd metric has a whole-file baseline")
        denominator = base_emd if spec.baseline == "modules" else data_baseline_emd(bundle, work.data_path)
        if not np.isfinite(denominator) or denominator <= 0:
            raise CampaignError(f"the fault-free mean EMD over all of {work.data_path} is {denominator}: damage "
                                "cannot be normalised by it (check the data's charges)")

        ids = planned.ids.tolist()
        todo = np.array([k for k, i in enumerate(ids) if i not in store.done], dtype=np.int64)
        progress = Progress(len(ids), f"campaign[{spec.level}]", unit="sites" if spec.seu else "faults",
                            stream=open(os.devnull, "w") if quiet else None)
        progress.advance(len(ids) - todo.size)
        size = _chunk_size(spec, spec.level, n)
        chunks = [take(planned.faults, todo[i:i + size]) for i in range(0, todo.size, size)]
        in_flight = {"done": 0}  # what the chunk being simulated has reported so far

        def within(total: int) -> None:
            progress.advance(total - in_flight["done"])
            in_flight["done"] = total

        if chunks and not _enough_sensitive(spec, store, planned.ids, denominator):
            for fs, seen in executor.map(task, chunks, progress=within):
                hit = touched(fs, planned.space, n)
                damage = meter.measure(seen.latent, hit, seen.lost, seen.extra, fs.ids)
                store.add(fs.ids, damage, seen.latent.astype(_latent_dtype(bundle)))
                progress.advance(len(fs) - in_flight["done"])
                in_flight["done"] = 0
                if _enough_sensitive(spec, store, planned.ids, denominator):
                    break
    except FaultError as e:  # a level that cannot represent a fault says so: one line, nothing assembled
        raise CampaignError(f"--level {spec.level}: {e}") from None
    finally:
        executor.close()

    if spec.seu:
        result = _assemble(spec, executor.level_name or spec.level, bundle, out, store, planned.ids, work, baseline,
                           meter.baseline_emd, denominator, space, time.monotonic() - t0)
    else:
        result = _assemble_faults(spec, executor.level_name or spec.level, bundle, out, store, planned, work,
                                  baseline, meter.baseline_emd, denominator, time.monotonic() - t0)
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
    levels default to one worker per core), except that the rtl and netlist
    levels split each chunk over N simulator processes themselves on one
    machine (a local cluster costs ~4 s to start and stop)."""
    from fkhw.campaign.executors import DaskExecutor, InProcess
    from fkhw.levels import make_level

    if level is not None:
        return InProcess(level)
    if spec.hardening is not None:
        make_level(spec.level, bundle, jobs=1, hardening=spec.hardening)  # a level that cannot says so here, once
    if spec.level == "hls":
        # generate (or reuse) the project once here, not racing on every worker
        from fkhw.hls.project import project_for

        project_for(bundle)
    if spec.level == "netlist":
        # synthesise (or reuse) the netlist once here, not racing on every worker
        from fkhw.levels.rtl import netlist_design

        h = spec.hardening
        netlist_design(bundle.ir, None if h is None else protected_design(bundle.ir, h), log=print)
    if spec.scheduler:
        return DaskExecutor.connect(spec.scheduler)
    jobs = _local_jobs(spec)
    if jobs > 1 and spec.level in SELF_PARALLEL:
        return InProcess(make_level(spec.level, bundle, jobs=jobs, hardening=spec.hardening))
    if jobs > 1:
        return DaskExecutor.local(jobs)
    return InProcess(make_level(spec.level, bundle, jobs=1, hardening=spec.hardening))


def _gather(done: list, n_out: int, bundle: ModelBundle) -> tuple:
    """The stored results of finished faults (in table order) as arrays:
    emd, n_changed, and the CSR of their changed (module, latent, EMD) pairs."""
    emd = np.array([d[0] for d in done], dtype=np.float64)
    n_changed = np.array([d[1] for d in done], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum([d[2].size for d in done], dtype=np.int64)]).astype(np.int64)
    module = np.concatenate([d[2] for d in done] + [np.zeros(0, dtype=np.int32)]).astype(np.int32)
    changed_latent = (np.concatenate([d[3] for d in done]) if done
                      else np.zeros((0, n_out), dtype=_latent_dtype(bundle)))
    changed_emd = np.concatenate([d[4] for d in done] + [np.zeros(0)])
    return emd, n_changed, indptr, module, changed_latent, changed_emd


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
    from fkhw.model import engine

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
    emd, n_changed, indptr, module, changed_latent, changed_emd = _gather(done, baseline.shape[1], bundle)
    emd_norm = emd / denominator
    lo, hi = emd_norm_interval(baseline_emd, indptr, module, changed_emd, spec.confidence, spec.seed,
                               denominator=None if spec.baseline == "modules" else denominator)
    metric = get_metric(spec.metric)
    if not np.isfinite(emd_norm).all():
        bad = rows[~np.isfinite(emd_norm)]
        raise CampaignError(f"{metric.column} is not finite for {bad.size} site(s), e.g. site {int(bad[0])}: "
                            "nothing written (check the data's charges)")
    cols = space.table(bundle.ir, rows) if rows.size else {k: [] for k in ("site", "layer", "tensor", "index", "bit")}
    extra = _metric_extra(metric, baseline, indptr, module, changed_latent, np.full(rows.size, baseline.shape[0]))

    with atomic_open(out / "campaign.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(metric_columns(metric, CSV_COLUMNS) + list(extra))
        for k in range(rows.size):
            w.writerow([int(cols["site"][k]), cols["layer"][k], cols["tensor"][k], int(cols["index"][k]),
                        int(cols["bit"][k]), repr(float(emd[k])), repr(float(emd_norm[k])), int(n_changed[k]),
                        repr(float(lo[k])), repr(float(hi[k]))] + [repr(float(v[k])) for v in extra.values()])
    write_outputs(out / "outputs.npz", charges=work.charges, inputs=work.inputs, rows=work.rows, baseline=baseline,
                  baseline_emd=baseline_emd, sites=rows, indptr=indptr, module=module,
                  changed_latent=changed_latent, changed_emd=changed_emd, labels=work.labels)
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
        **_baseline_keys(metric, base_emd, denominator, spec, work, baseline),
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
        # the fault options are those of seu (cycle 0, no file): the summary it always wrote
        "spec": {k: v for k, v in asdict(spec).items() if k not in ("sites", "jobs", "chunk", "scheduler", "rows")
                 and k not in ("faults", "faults_file", "cycle", "samples", "hardening") and _recorded(spec, k)},
        **_design(spec),
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    # timing lives apart so that a resumed run ends with the same summary
    write_text(out / "timing.json", json.dumps({"seconds": round(seconds, 3), "sites": int(rows.size)}) + "\n")
    return CampaignResult(out, summary, rows, emd_norm)


# --- campaigns of other kinds: keyed by fault -------------------------------


def fault_classes(fs: FaultSet, space: FlipFlopSpace) -> np.ndarray:
    """(F,) the flip-flop classes a fault's upsets hit, e.g. ``param``,
    ``pipeline``, ``param+replica`` (fkhw.faults.space.CLASSES order)."""
    from fkhw.faults.space import CLASSES

    hit = np.zeros((len(fs), len(CLASSES)), dtype=bool)
    owner = fs.owners()
    cls = space.classes(fs.ff) if fs.ff.size else np.array([], dtype=object)
    for j, name in enumerate(CLASSES):
        hit[owner[cls == name], j] = True
    labels, inverse = np.unique(hit, axis=0, return_inverse=True)
    names = np.array(["+".join(c for c, on in zip(CLASSES, row) if on) for row in labels], dtype=object)
    return names[inverse.reshape(-1)]


def intervals_over_touched(baseline_emd, hit, indptr, module, changed_emd, emd_norm, confidence, seed,
                           denominator=None) -> tuple:
    """(lo, hi) of each fault's emd_norm: the paired bootstrap of
    fkhw.damage.intervals over the modules of the slots the fault touches (faults
    grouped by their touched slots). A fault touching fewer than two slots
    has nothing to redraw: its interval is its value."""
    f = hit.shape[0]
    lo, hi = emd_norm.copy(), emd_norm.copy()
    if f == 0:
        return lo, hi
    masks, inverse = np.unique(hit, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.diff(indptr)
    for g, mask in enumerate(masks):
        mods = np.flatnonzero(mask)
        if mods.size < 2:
            continue
        members = np.flatnonzero(inverse == g)
        pos_of = np.full(mask.size, -1, dtype=np.int64)
        pos_of[mods] = np.arange(mods.size)
        sel = np.concatenate([np.arange(indptr[i], indptr[i + 1]) for i in members]) if counts[members].sum() \
            else np.zeros(0, dtype=np.int64)
        sub_indptr = np.concatenate([[0], np.cumsum(counts[members])]).astype(np.int64)
        lo[members], hi[members] = emd_norm_interval(baseline_emd[mods], sub_indptr, pos_of[module[sel]],
                                                     changed_emd[sel], confidence, seed, denominator=denominator)
    return lo, hi


def damage_by_class(classes, emd_norm, lost, extra, thresholds, confidence) -> dict:
    """Per class of flip-flop (and ``all``): faults, faults with lost or extra
    outputs, mean emd_norm with its interval (normal approximation over the
    faults: the uncertainty of the mean for a sampled kind, e.g.
    accumulate:K), and the fraction degraded at each threshold (emd_norm > T
    or any lost / extra output; Wilson interval)."""
    from scipy.special import ndtri

    z = float(ndtri((1.0 + confidence) / 2.0))
    out = {}
    for name in ["all", *sorted(set(classes.tolist()))]:
        sel = np.ones(classes.size, dtype=bool) if name == "all" else classes == name
        n = int(sel.sum())
        x = emd_norm[sel]
        mean = float(x.mean()) if n else float("nan")
        half = z * float(x.std(ddof=1)) / np.sqrt(n) if n > 1 else 0.0
        out[name] = {
            "faults": n,
            "with_lost_outputs": int((lost[sel] > 0).sum()),
            "with_extra_outputs": int((extra[sel] > 0).sum()),
            "mean_emd_norm": mean,
            "mean_emd_norm_interval": [mean - half, mean + half],
            "max_emd_norm": float(x.max()) if n else float("nan"),
            "degraded": {f"{t:g}": {"threshold": t, "faults": int(k), "fraction": k / n if n else 0.0,
                                    "interval": list(wilson(int(k), n, confidence))}
                         for t in sorted(set(float(v) for v in thresholds))
                         for k in [int(degraded(x, lost[sel], extra[sel], t).sum())]},
        }
    return out


def _normalised(spec, fs, emd: np.ndarray, hit: np.ndarray, baseline_emd: np.ndarray, denominator,
                metric) -> np.ndarray:
    """Each fault's damage over the fault-free damage of the slots it
    touches (``--baseline modules``) or over the data's ``denominator``;
    refuses a value that is not finite."""
    if spec.baseline == "modules":
        emd_norm = emd / touched_mean(np.broadcast_to(baseline_emd, hit.shape), hit, baseline_emd)
    else:
        emd_norm = emd / denominator
    if not np.isfinite(emd_norm).all():
        bad = fs.ids[~np.isfinite(emd_norm)]
        raise CampaignError(f"{metric.column} is not finite for {bad.size} fault(s), e.g. fault {int(bad[0])}: "
                            "nothing written (check the data's charges)")
    return emd_norm


def _damage_text(metric) -> str:
    """What summary.json's damage columns mean."""
    if metric.is_emd:
        return ("emd = mean EMD over the window slots a fault touches; emd_norm = emd / fault-free mean over the "
                "same slots; a fault with lost or extra outputs is degraded at every threshold (fkhw/damage/meter.py)")
    return (f"{metric.raw} = mean damage over the window slots a fault touches; {metric.column} = {metric.raw} / "
            "fault-free mean over the same slots; a fault with lost or extra outputs is degraded at every "
            "threshold (fkhw/damage/meter.py, fkhw/damage/metrics.py)")


def _assemble_faults(spec, level_name, bundle, out, store, planned: Plan, work, baseline, baseline_emd, denominator,
                     seconds) -> CampaignResult:
    space, n = planned.space, work.inputs.shape[0]
    pos = np.array([k for k, i in enumerate(planned.ids.tolist()) if i in store.done], dtype=np.int64)
    fs = take(planned.faults, pos)
    done = [store.done[i] for i in fs.ids.tolist()]
    emd, n_changed, indptr, module, changed_latent, changed_emd = _gather(done, baseline.shape[1], bundle)
    lost_indptr = np.concatenate([[0], np.cumsum([d[5].size for d in done], dtype=np.int64)]).astype(np.int64)
    lost_module = np.concatenate([d[5] for d in done] + [np.zeros(0, dtype=np.int32)]).astype(np.int32)
    lost = np.diff(lost_indptr)
    extra = np.array([d[6] for d in done], dtype=np.int64)
    hit = touched(fs, space, n)
    n_touched = hit.sum(axis=1)
    metric = get_metric(spec.metric)
    emd_norm = _normalised(spec, fs, emd, hit, baseline_emd, denominator, metric)
    lo, hi = intervals_over_touched(baseline_emd, hit, indptr, module, changed_emd, emd_norm, spec.confidence,
                                    spec.seed, denominator=None if spec.baseline == "modules" else denominator)
    classes = fault_classes(fs, space)
    extra_cols = _metric_extra(metric, baseline, indptr, module, changed_latent, n_touched)

    write_faults_csv(fs, space, out / campaign_files.FAULTS)
    with atomic_open(out / "campaign.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(metric_columns(metric, FAULT_CSV_COLUMNS) + list(extra_cols))
        n_up = fs.n_upsets()
        for k in range(len(fs)):
            w.writerow([int(fs.ids[k]), int(n_up[k]), classes[k], repr(float(emd[k])), repr(float(emd_norm[k])),
                        int(n_changed[k]), int(n_touched[k]), int(lost[k]), int(extra[k]), repr(float(lo[k])),
                        repr(float(hi[k]))] + [repr(float(v[k])) for v in extra_cols.values()])
    write_outputs(out / "outputs.npz", charges=work.charges, inputs=work.inputs, rows=work.rows, baseline=baseline,
                  baseline_emd=baseline_emd, sites=fs.ids, indptr=indptr, module=module,
                  changed_latent=changed_latent, changed_emd=changed_emd, faults=fs, lost_indptr=lost_indptr,
                  lost_module=lost_module, extra=extra, labels=work.labels)
    by_class = damage_by_class(classes, emd_norm, lost, extra, spec.thresholds, spec.confidence)
    summary = {
        "fkhw": __version__,
        "model": bundle.name,
        "model_digest": bundle.files.digest(),
        "level": level_name,
        "seed": spec.seed,
        "inputs": int(n),
        "data": str(work.data_path),
        "data_digest": work.data_digest,
        "faults": {"kind": planned.label, "options": planned.options, "digest": planned.digest(),
                   "n_kind": planned.n_kind},
        **_baseline_keys(metric, float(baseline_emd.mean()),
                         ("the fault-free mean EMD over each fault's touched slots" if metric.is_emd else
                          "the fault-free mean damage over each fault's touched slots")
                         if spec.baseline == "modules" else denominator, spec, work, baseline),
        "damage": _damage_text(metric),
        "confidence": spec.confidence,
        "interval": f"per fault: paired bootstrap over its touched modules (BCa), {N_BOOT} replicates, seeded by "
                    "--seed (a fault touching one slot: its value); per class: normal approximation over the faults",
        "n_faults": int(len(fs)),
        "n_sites_model": int(space.sites.n_sites),
        "n_param_bits": int(bundle.ir.n_param_bits()),
        "flip_flops": space.counts(),
        "complete": bool(len(fs) == planned.n_kind),
        "identity": store.identity,
        "thresholds": by_class["all"]["degraded"],
        "classes": by_class,
        "spec": {k: v for k, v in asdict(spec).items()
                 if k not in ("sites", "jobs", "chunk", "scheduler", "rows", "hardening") and _recorded(spec, k)},
        **_design(spec),
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text(out / "timing.json", json.dumps({"seconds": round(seconds, 3), "faults": int(len(fs))}) + "\n")
    return CampaignResult(out, summary, fs.ids, emd_norm)


def metric_columns(metric, columns: list) -> list:
    """A table's columns under ``metric``: today's for emd; for another metric
    emd -> its raw column, emd_norm(_lo/_hi) -> its normalised column."""
    if metric.is_emd:
        return list(columns)
    return [metric.raw if c == "emd" else c.replace("emd_norm", metric.column) for c in columns]


def _metric_extra(metric, baseline, indptr, module, changed_latent, n_touched) -> dict:
    """Columns a metric adds after today's: accuracy's pred_changed."""
    if metric.name != "accuracy":
        return {}
    return {"pred_changed": pred_changed(baseline, indptr, module, changed_latent, n_touched)}


def _baseline_keys(metric, base: float, denominator, spec: CampaignSpec, work: Workload, golden) -> dict:
    """The summary's fault-free figures: today's keys for the EMD; the metric
    (name, column, labels) and ``baseline_damage`` for any other."""
    if metric.is_emd:
        return {"baseline_emd": base, "baseline": spec.baseline, "emd_norm_denominator": denominator}
    extra = {}
    if metric.name == "accuracy":  # d' = 1 + wrong - wrong_fault_free: the fault-free accuracy is not in the mean
        extra["fault_free_accuracy"] = float((np.asarray(golden).argmax(axis=1) == work.labels).mean())
    return {"metric": {"name": metric.name, "column": metric.column, "raw": metric.raw, "describe": metric.describe,
                       "labels": spec.labels, "labels_digest": work.labels_digest},
            "baseline_damage": base, "baseline": spec.baseline, "damage_denominator": denominator, **extra}


def _recorded(spec: CampaignSpec, key: str) -> bool:
    """Spec fields a summary records: metric and labels only when not
    today's EMD defaults, so today's summaries stay byte-identical."""
    return key not in ("metric", "labels") or spec.metric != EMD or spec.labels is not None


def _design(spec: CampaignSpec) -> dict:
    """The summary's ``design`` entry: present only for a hardened design, so a
    plain campaign's summary is the one it always was."""
    return {} if spec.hardening is None else {"design": {"hardened": True, **spec.hardening.to_dict()}}


def hardening_from_map(path, bundle: ModelBundle, refresh: bool = False) -> Hardening:
    """The design a TMR map hardens (``fkhw tmr`` folder or tmr_map.json),
    refused for a map made for another model."""
    from fkhw.faults.tmrmap import MapError, read_map

    p = Path(path)
    p = p / "tmr_map.json" if p.is_dir() else p
    try:
        tmap = read_map(p, bundle.files.digest(), bundle.name, FlipFlopSpace.of(bundle.ir))
    except MapError as e:
        raise CampaignError(str(e)) from None
    return Hardening(tuple(int(s) for s in tmap.protect), bool(refresh), str(p))


def campaign_model(summary: dict, override: str | None = None) -> ModelBundle:
    """The model a campaign ran on. A folder records both the model as given
    (``spec.model``: a name, or a directory that may be relative to where the
    campaign ran) and its name; whichever resolves is checked against the
    recorded digest, so a campaign is never read against another model. The
    digest is checked on the files before any is loaded, and loading checks
    the architecture before building it: a folder someone hands over names
    a model, it does not get to run one."""
    from fkhw.model.bundle import load_files
    from fkhw.model.files import ModelFileError, resolve

    candidates = [override] if override else [summary.get("spec", {}).get("model"), summary.get("model")]
    digest = summary.get("model_digest")
    errors = []
    for name in dict.fromkeys(c for c in candidates if c):
        try:
            files = resolve(name)
        except ModelFileError as e:
            errors.append(str(e))
            continue
        if files.digest() != digest:
            raise CampaignError(f"model {name!r} (digest {files.digest()}) is not the one the campaign ran on "
                                f"(digest {digest}); pass --model with that model")
        return load_files(files)
    raise CampaignError("cannot find the campaign's model (" + "; ".join(errors) + "); pass --model")
