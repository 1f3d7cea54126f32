"""A campaign's recorded outputs (``outputs.npz``): one reader, one writer.

Most upsets leave most outputs unchanged (on econt-bol 9% of (site, module)
pairs change at all), so the latent codes are stored only where they differ
from the fault-free ones, site by site (compressed sparse rows):

    charges (N, 48), inputs (N, ...), rows (N,)   the modules
    baseline (N, n_out), baseline_emd (N,)        fault-free latent codes and EMD (another metric: its damage)
    labels (N,) or (N, n_out)                     a metric's labels or targets, when it read any
    sites (S,)                                    in campaign-table order
    changed_indptr (S+1,)                         site k's entries: indptr[k]:indptr[k+1]
    changed_module (P,), changed_latent (P, n_out), changed_emd (P,)

A campaign of another fault kind (``fkhw campaign --faults``) is keyed by
fault id and keeps what agreement needs besides the codes:

    kind ()                                       the kind's label (mbu:2, pipeline, ...)
    faults (F,)                                   fault ids, in campaign-table order (instead of sites)
    changed_indptr, changed_module, ...           as above, per fault
    lost_indptr (F+1,), lost_module (L,)          window slots whose valid flag was dropped
    extra (F,)                                    valid outputs in the drain slots
    fault_indptr, fault_ff, fault_cycle, fault_scrub   the faults themselves (fkhw.faults.space.FaultSet)

``CampaignOutputs.latent()`` rebuilds the dense (S, N, n_out) codes for
readers that want them (on a subset of sites and modules, to bound memory).
Files of the first format (a dense ``latent`` array) are still read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.errors import InputError
from fkhw.outpaths import atomic_open

FORMAT = 2


class OutputsError(InputError):
    """An outputs.npz that cannot be read, naming the file."""


@dataclass(frozen=True, eq=False)
class CampaignOutputs:
    path: Path
    charges: np.ndarray
    inputs: np.ndarray
    rows: np.ndarray
    baseline: np.ndarray
    baseline_emd: np.ndarray | None  # None in first-format files
    sites: np.ndarray  # the row keys: site ids (seu), fault ids (other kinds)
    indptr: np.ndarray
    module: np.ndarray
    changed_latent: np.ndarray
    changed_emd: np.ndarray | None
    kind: str = "seu"
    lost_indptr: np.ndarray | None = None  # None: nothing can be lost (seu)
    lost_module: np.ndarray | None = None
    extra: np.ndarray | None = None
    fault_set: object = None  # fkhw.faults.space.FaultSet of a non-seu campaign
    labels: np.ndarray | None = None  # the metric's labels of the modules (fkhw.damage.metrics), if it read any

    @staticmethod
    def load(path: Path) -> "CampaignOutputs":
        path = Path(path)
        if path.is_dir():
            path = path / "outputs.npz"
        if not path.is_file():
            raise OutputsError(f"{path}: no campaign outputs (run `fkhw campaign --out DIR` first)")
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except Exception as e:
            raise OutputsError(f"{path}: damaged or cut short, not a readable outputs.npz ({type(e).__name__})") from None
        try:
            if "latent" in d:  # first format: dense codes
                return _from_dense(path, d)
            if "faults" in d:
                from fkhw.faults.space import FaultSet

                kind = str(d["kind"])
                fs = FaultSet(kind, d["faults"], d["fault_indptr"], d["fault_ff"], d["fault_cycle"], d["fault_scrub"])
                return CampaignOutputs(path, d["charges"], d["inputs"], d["rows"], d["baseline"], d["baseline_emd"],
                                       d["faults"], d["changed_indptr"], d["changed_module"], d["changed_latent"],
                                       d["changed_emd"], kind, d["lost_indptr"], d["lost_module"], d["extra"], fs,
                                       d.get("labels"))
            return CampaignOutputs(path, d["charges"], d["inputs"], d["rows"], d["baseline"], d["baseline_emd"],
                                   d["sites"], d["changed_indptr"], d["changed_module"], d["changed_latent"],
                                   d["changed_emd"], labels=d.get("labels"))
        except KeyError as e:
            raise OutputsError(f"{path}: damaged (outputs.npz lacks the array {e.args[0]!r})") from None

    @property
    def n_modules(self) -> int:
        return int(self.inputs.shape[0])

    def latent(self, site_rows=None, modules=None) -> np.ndarray:
        """Dense latent codes (S', N', n_out) of table rows ``site_rows`` on
        modules ``modules`` (positions in this campaign; default all)."""
        site_rows = np.arange(self.sites.size) if site_rows is None else np.asarray(site_rows, dtype=np.int64)
        modules = np.arange(self.n_modules) if modules is None else np.asarray(modules, dtype=np.int64)
        base = self.baseline[modules]
        out = np.broadcast_to(base, (site_rows.size,) + base.shape).astype(self.changed_latent.dtype)
        pos = np.full(self.n_modules, -1)
        pos[modules] = np.arange(modules.size)
        for j, r in enumerate(site_rows.tolist()):
            sl = slice(self.indptr[r], self.indptr[r + 1])
            p = pos[self.module[sl]]
            keep = p >= 0
            out[j, p[keep]] = self.changed_latent[sl][keep]
        return out

    def lost(self, rows=None) -> np.ndarray:
        """(R, N) bool: window slots of table rows ``rows`` left without their valid flag."""
        rows = np.arange(self.sites.size) if rows is None else np.asarray(rows, dtype=np.int64)
        out = np.zeros((rows.size, self.n_modules), dtype=bool)
        if self.lost_indptr is not None:
            for j, r in enumerate(rows.tolist()):
                out[j, self.lost_module[self.lost_indptr[r]:self.lost_indptr[r + 1]]] = True
        return out

    def extras(self, rows=None) -> np.ndarray:
        """(R,) valid outputs in the drain slots of table rows ``rows``."""
        rows = np.arange(self.sites.size) if rows is None else np.asarray(rows, dtype=np.int64)
        return np.zeros(rows.size, dtype=np.int64) if self.extra is None else self.extra[rows].astype(np.int64)


def damage_meter(outputs: CampaignOutputs, summary: dict, bundle):
    """The damage meter a campaign measured with (its metric, on its modules
    and fault-free codes): what a reader that reruns some of its faults
    measures them with, so that its numbers are the campaign's."""
    from fkhw.damage.meter import DamageMeter
    from fkhw.damage.metrics import metric_of, scorer

    metric, frac = metric_of(summary), bundle.ir.output_spec.frac
    if metric.needs_decoder:
        return DamageMeter(bundle.require_decoder(), outputs.charges, outputs.baseline, frac)
    return DamageMeter(None, outputs.charges, outputs.baseline, frac,
                       score=scorer(metric, outputs.baseline, frac, outputs.labels))


def _from_dense(path: Path, d: dict) -> CampaignOutputs:
    latent, baseline = d["latent"], d["baseline"]
    changed = (latent != baseline[None]).any(axis=2)
    s_idx, n_idx = np.nonzero(changed)
    indptr = np.concatenate([[0], np.cumsum(changed.sum(axis=1))]).astype(np.int64)
    return CampaignOutputs(path, d["charges"], d["inputs"], d.get("rows", np.arange(latent.shape[1])), baseline, None,
                           d["sites"], indptr, n_idx.astype(np.int32), latent[s_idx, n_idx], None)


def write_outputs(path: Path, *, charges, inputs, rows, baseline, baseline_emd, sites, indptr, module,
                  changed_latent, changed_emd, faults=None, lost_indptr=None, lost_module=None, extra=None,
                  labels=None) -> Path:
    """Write atomically (a kill leaves the previous file or none). ``faults``
    (a FaultSet in table order, with ``lost_*`` and ``extra``): a campaign of
    another kind than seu, keyed by fault id (``sites`` then holds its ids)."""
    path = Path(path)
    if faults is None:
        keyed = dict(sites=sites)
    else:
        keyed = dict(kind=np.array(faults.kind), faults=sites, lost_indptr=np.asarray(lost_indptr, dtype=np.int64),
                     lost_module=np.asarray(lost_module, dtype=np.int32), extra=np.asarray(extra, dtype=np.int64),
                     fault_indptr=faults.indptr, fault_ff=faults.ff, fault_cycle=faults.cycle,
                     fault_scrub=faults.scrub)
    if labels is not None:  # only a metric reading labels writes them: EMD files stay as they were
        keyed["labels"] = np.asarray(labels)
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, format=np.array(FORMAT), charges=charges, inputs=inputs, rows=rows, baseline=baseline,
                            baseline_emd=baseline_emd, **keyed, changed_indptr=indptr,
                            changed_module=np.asarray(module, dtype=np.int32), changed_latent=changed_latent,
                            changed_emd=changed_emd)
    return path
