"""Damage metrics, found by name: ``emd``, ``accuracy``, ``mse`` or a user
function ``module:function``.

A metric turns the outputs of one input vector into a per-vector damage
``d >= 0``; a campaign averages it over the vectors a fault touches
(fkhw.damage.meter) and reports the **normalised damage**, 1 = fault-free, higher
= worse, in the column :attr:`Metric.column`. Every reader (TMR rules,
held-out checks, rates, rankings, figures) reads that one column.

How the mean is normalised depends on whether the fault-free damage is a
meaningful positive scale:

* relative (``emd``, ``mse`` against targets, user functions):
  ``norm = mean faulty d / mean fault-free d`` over the same vectors;
  today's ``emd_norm``, bit for bit.
* additive (``accuracy``, ``mse`` against the fault-free outputs): the
  fault-free damage may be 0 (a classifier right on every sampled vector,
  outputs equal to themselves), so the meter measures
  ``d' = scale + d - d_fault_free`` per vector, whose fault-free mean is
  ``scale``; the same ratio then gives ``norm = 1 + (mean d - mean
  d_fault_free) / scale``. For ``accuracy`` ``d`` = 1 when the top-1 class
  is wrong and ``scale`` = 1, so ``accuracy_norm - 1`` is the loss of top-1
  accuracy (0.05 = five points lost); for ``mse`` without targets ``scale``
  is the fault-free outputs' mean square, so ``mse_norm - 1`` is the MSE
  relative to the outputs' size. The paired bootstrap of fkhw.damage.intervals is
  unchanged: it redraws vectors of ``d'``.

A user metric ``package.module:function`` is called as
``function(outputs, labels, baseline)`` with the real-valued outputs
(n, n_out) of the vectors, their labels (or None) and their fault-free
outputs, and returns (n,) finite non-negative damages (relative). What it
raises, and what is not finite, stops the campaign in one line.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from fkhw.errors import InputError

import numpy as np

EMD = "emd"


class MetricError(InputError):
    """A metric that cannot be found, or cannot measure these outputs."""


@dataclass(frozen=True)
class Metric:
    name: str  # as given: emd, accuracy, mse, or module:function
    column: str  # the normalised damage column: emd_norm, accuracy_norm, mse_norm, <function>_norm
    raw: str  # the mean-damage column: emd for emd (today's files), damage for the others
    needs_labels: bool  # required: refused without --labels
    uses_labels: bool  # takes labels when given (mse: targets)
    needs_decoder: bool
    describe: str

    @property
    def is_emd(self) -> bool:
        return self.name == EMD


def _builtin(name: str, column: str, raw: str, needs: bool, uses: bool, decoder: bool, text: str) -> Metric:
    return Metric(name, column, raw, needs, uses, decoder, text)


METRICS = {
    "emd": _builtin("emd", "emd_norm", "emd", False, False, True,
                    "HGCAL trigger-cell EMD of the decoded output against the input charges; emd_norm = mean EMD / "
                    "fault-free mean EMD"),
    "accuracy": _builtin("accuracy", "accuracy_norm", "damage", True, True, False,
                         "top-1 classification against --labels; accuracy_norm = 1 + the loss of top-1 accuracy "
                         "(pred_changed: fraction of predictions that differ from the fault-free ones)"),
    "mse": _builtin("mse", "mse_norm", "damage", False, True, False,
                    "mean squared error of the outputs: against --labels (targets) mse_norm = MSE / fault-free MSE; "
                    "without labels against the fault-free outputs, mse_norm = 1 + MSE / their mean square"),
}


def get_metric(name: str) -> Metric:
    """The metric called ``name`` (a registry name or ``module:function``)."""
    if name in METRICS:
        return METRICS[name]
    if ":" in name:
        user_function(name)  # found and callable, or a one-line error now
        func = name.split(":", 1)[1]
        return Metric(name, f"{func}_norm", "damage", False, True, False,
                      f"user function {name}(outputs, labels, baseline) -> per-vector damage; "
                      f"{func}_norm = mean / fault-free mean")
    raise MetricError(f"--metric {name!r}: unknown metric (use {', '.join(METRICS)}, or module:function)")


def user_function(name: str) -> Callable:
    mod, _, func = name.partition(":")
    if not mod or not func.isidentifier():
        raise MetricError(f"--metric {name!r}: a user metric is module:function, e.g. mypkg.metrics:damage")
    try:
        module = importlib.import_module(mod)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # ImportError, whatever the module raises, or its sys.exit(): never fkhw's exit
        raise MetricError(f"--metric {name}: cannot import {mod} ({type(e).__name__}: {_said(e)})") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise MetricError(f"--metric {name}: {mod} has no function {func!r}")
    return fn


def metric_of(summary: dict) -> Metric:
    """The metric a campaign summary was measured with (files without one: EMD)."""
    m = summary.get("metric")
    return get_metric(m["name"] if isinstance(m, dict) else EMD)


LABELS = {"emd_norm": "mean EMD / fault-free mean EMD",
          "accuracy_norm": "accuracy_norm = 1 + top-1 accuracy lost",
          "mse_norm": "mse_norm (1 = fault-free)"}


def axis_label(column: str) -> str:
    """How a figure names a normalised damage column."""
    return LABELS.get(column, f"{column} (1 = fault-free)")


# --- labels ---------------------------------------------------------------


def check_labels(metric: Metric, labels: np.ndarray | None, n_out: int, source: str = "--labels") -> np.ndarray | None:
    """Labels in the form the metric reads: class ids (N,) for accuracy
    (one-hot rows are turned into ids), targets (N, n_out) for mse."""
    if labels is None:
        if metric.needs_labels:
            raise MetricError(f"--metric {metric.name} needs --labels (one class per input)")
        return None
    y = np.asarray(labels)
    if metric.name == "accuracy":
        if y.ndim == 2 and y.shape[1] == n_out:
            y = y.argmax(axis=1)
        elif y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise MetricError(f"{source}: labels of shape {y.shape}; accuracy needs one class id (N,) or one-hot "
                              f"row (N, {n_out}) per input")
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise MetricError(f"{source}: accuracy needs integer class ids, got {y[np.mod(y, 1) != 0][0]!r}")
        y = y.astype(np.int64)
        bad = (y < 0) | (y >= n_out)
        if bad.any():
            raise MetricError(f"{source}: class {int(y[bad][0])} at row {int(np.flatnonzero(bad)[0])} is outside "
                              f"the model's {n_out} outputs (0..{n_out - 1})")
        return y
    if metric.name == "mse":
        y = y.astype(np.float64).reshape(y.shape[0], -1)
        if y.shape[1] != n_out:
            raise MetricError(f"{source}: targets of {y.shape[1]} values per input; the model has {n_out} outputs")
        return y
    return y


# --- per-vector damage ---------------------------------------------------


def top1_wrong(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1.0 where the top-1 class (first of equal maxima) is not the label."""
    return (np.asarray(outputs).argmax(axis=1) != labels).astype(np.float64)


def squared_error(outputs: np.ndarray, reference: np.ndarray) -> np.ndarray:
    d = np.asarray(outputs, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    return (d * d).mean(axis=1)


@dataclass(frozen=True, eq=False)
class Scorer:
    """Per-vector damage of output codes: ``(rows, codes) -> (n,)``, with
    the fault-free outputs and labels it compares against (see the module
    docstring for ``scale`` and the additive form)."""

    metric: Metric
    frac: int
    baseline: np.ndarray  # (N, n_out) fault-free codes
    labels: np.ndarray | None
    raw_baseline: np.ndarray  # (N,) the metric's d of the fault-free outputs
    scale: float | None  # None: relative; else additive with this scale
    fn: Callable | None = None

    def raw(self, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
        out = np.asarray(codes, dtype=np.float64) * 2.0 ** -self.frac
        name = self.metric.name
        y = None if self.labels is None else self.labels[rows]
        if name == "accuracy":
            return top1_wrong(out, y)
        if name == "mse":
            ref = y if y is not None else self.baseline[rows].astype(np.float64) * 2.0 ** -self.frac
            return squared_error(out, ref)
        return _user_call(self.metric.name, self.fn, out, y, self.baseline[rows].astype(np.float64) * 2.0 ** -self.frac)

    def __call__(self, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
        d = self.raw(rows, codes)
        if self.scale is None:
            return d
        return self.scale + d - self.raw_baseline[rows]


def _said(e: BaseException) -> str:
    """What user code's exception says, on one line (sys.exit(0) says 0)."""
    return " ".join(str(e).split())[:160]


def _user_call(name: str, fn: Callable, outputs, labels, baseline) -> np.ndarray:
    try:
        d = fn(outputs, labels, baseline)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # SystemExit too: a metric's sys.exit(0) must not end the campaign as a success
        raise MetricError(f"--metric {name} raised {type(e).__name__}: {_said(e)}") from None
    try:
        d = np.asarray(d, dtype=np.float64).reshape(-1)
    except KeyboardInterrupt:
        raise
    except BaseException:  # TypeError, ValueError, or the returned object's own code failing
        raise MetricError(f"--metric {name} returned {type(d).__name__}, not numbers") from None
    if d.size != outputs.shape[0]:
        raise MetricError(f"--metric {name} returned {d.size} values for {outputs.shape[0]} vectors (one per vector)")
    bad = ~np.isfinite(d) | (d < 0)
    if bad.any():
        raise MetricError(f"--metric {name} returned {d[bad][0]!r} for vector {int(np.flatnonzero(bad)[0])}: a damage "
                          "must be a finite non-negative number")
    return d


def scorer(metric: Metric, baseline: np.ndarray, frac: int, labels: np.ndarray | None) -> Scorer:
    """The per-vector damage of ``metric`` against fault-free codes ``baseline``."""
    if metric.is_emd:
        raise MetricError("the EMD metric is measured by fkhw.damage.meter.DamageMeter with the decoder")
    fn = user_function(metric.name) if metric.name not in METRICS else None
    rows = np.arange(baseline.shape[0])
    probe = Scorer(metric, frac, baseline, labels, np.zeros(rows.size), None, fn)
    raw0 = probe.raw(rows, baseline)
    if metric.name == "accuracy":
        scale = 1.0
    elif metric.name == "mse" and labels is None:
        out = baseline.astype(np.float64) * 2.0 ** -frac
        scale = float((out * out).mean())
        if not scale > 0:
            raise MetricError("--metric mse without --labels compares with the fault-free outputs, which are all 0 "
                              "on these inputs: nothing to normalise by (give --labels targets)")
    else:
        scale = None
        if not float(raw0.mean()) > 0:
            raise MetricError(f"--metric {metric.name}: the fault-free mean damage on these inputs is "
                              f"{float(raw0.mean())!r}: damage cannot be normalised by it")
    return Scorer(metric, frac, baseline, labels, raw0, scale, fn)


def pred_changed(baseline: np.ndarray, indptr: np.ndarray, module: np.ndarray, changed: np.ndarray,
                 n_touched: np.ndarray) -> np.ndarray:
    """(F,) fraction of each fault's touched vectors whose top-1 prediction
    differs from the fault-free one, from its changed (module, codes) pairs."""
    f = indptr.size - 1
    owner = np.repeat(np.arange(f), np.diff(indptr))
    differs = np.asarray(changed).argmax(axis=1) != baseline[module].argmax(axis=1) if len(module) else \
        np.zeros(0, dtype=bool)
    counts = np.bincount(owner[differs], minlength=f)
    return counts / np.maximum(np.asarray(n_touched), 1)
