"""Hessian of the autoencoder's training loss w.r.t. the encoder parameters.

Two halves:

* Pure estimators over an *HVP closure* ``hvp(V) -> H V`` that maps a
  ``(k, n)`` float64 array of row vectors to their Hessian-vector products:
  Hutchinson trace (per parameter group, with a tolerance and a sample cap),
  Hutchinson and exact diagonals, the full matrix, and the top-k eigenpairs
  by power iteration with deflation. They know nothing about TensorFlow, so
  tests check them on matrices whose answers are known.
* :class:`AutoencoderLoss`: the closure for a real model. The loss is the
  MSE between the 8x8 input image and the decoder's reconstruction of the
  encoder's latent, averaged over a data batch (the original ECON-T
  training used a "telescope" loss whose 2x2/4x4 grouping matrices are not
  shipped with the model; MSE on the image is the plain autoencoder loss).
  The loss follows the damage metric (:data:`LOSSES`): the autoencoder's
  image MSE for ``emd``; the softmax cross-entropy of the outputs (logits)
  against the labels for ``accuracy``; the MSE of the outputs against the
  targets for ``mse`` with labels, or against the model's own fault-free
  outputs without them (zero loss and gradient at the trained weights, but
  a curvature: the Gauss-Newton ``J^T J`` / N). A user metric has no
  differentiable loss and is refused.
  Gradients go through the QKeras quantizers' straight-through estimators
  (``x + stop_gradient(q(x) - x)``), as FKeras does: the forward pass is the
  quantized model, the derivatives those of its float shadow.

Parameters are the encoder's kernels and biases in *site order* (parameter
layers in model order, kernel before bias, C order), the order of
:class:`fkhw.faults.sites.SiteSpace`, so parameter ``p`` and the sites of its bits
line up without any second bookkeeping.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from fkhw.model.data import DataError
from fkhw.model.files import ModelFileError
from fkhw.faults.sites import SiteSpace

log = logging.getLogger(__name__)

HvpFn = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------
# pure estimators over an HVP closure
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceResult:
    """Hutchinson estimate of the trace of each diagonal block (group).

    ``stderr`` is the standard error of each group's estimate, ``samples``
    the probes it took; ``converged`` says every group reached
    ``stderr <= tol * |trace|`` before the cap. Groups are probed
    independently, so the total's standard error is the root sum of squares.
    """

    trace: dict
    stderr: dict
    samples: dict
    converged: dict
    tol: float
    max_samples: int

    @property
    def total(self) -> float:
        return float(sum(self.trace.values()))

    @property
    def total_stderr(self) -> float:
        return float(np.sqrt(sum(v ** 2 for v in self.stderr.values())))

    @property
    def all_converged(self) -> bool:
        return all(self.converged.values())


def _check_groups(groups: dict, n: int) -> None:
    covered = np.zeros(n, dtype=int)
    for sl in groups.values():
        covered[sl] += 1
    if not np.all(covered == 1):
        raise ValueError("parameter groups must cover every parameter exactly once")


def hutchinson_trace(hvp: HvpFn, n: int, groups: dict | None = None, tol: float = 0.02,
                     max_samples: int = 2000, block: int = 32, min_samples: int = 32,
                     rng: np.random.Generator | None = None,
                     progress: Callable[[int], None] | None = None) -> TraceResult:
    """Trace of each group's diagonal block of H: the mean of ``v . H v``
    over Rademacher vectors ``v`` supported on that group only.

    Probing one group at a time costs one HVP per group and sample, but
    removes the cross-group terms ``v_g H_gh v_h`` from each estimate's
    variance; on the ECON-T encoder that cuts the conv layer's variance
    about fivefold, a net saving.

    Each group stops as soon as its standard error is within ``tol`` of its
    estimate (relative; after at least ``min_samples``, because a standard
    error from a handful of samples is itself unreliable) or at
    ``max_samples`` probes, whichever comes first. Both are honoured exactly:
    the last block is shortened so the cap is never exceeded. ``progress(n)``:
    called with the probes of each block, and with the cap's remainder when a
    group stops early (its total: groups x ``max_samples``).
    """
    if tol <= 0:
        raise ValueError(f"trace tolerance must be > 0, got {tol}")
    if max_samples < 2:
        raise ValueError(f"trace needs at least 2 samples (a standard error needs two), got cap {max_samples}")
    rng = rng or np.random.default_rng(0)
    groups = groups or {"all": slice(0, n)}
    _check_groups(groups, n)
    min_samples = min(max(min_samples, 2), max_samples)
    trace, stderr, used, conv = {}, {}, {}, {}
    for name, sl in groups.items():
        width = np.arange(n)[sl].size
        vals = np.empty(0)
        ok = False
        while vals.size < max_samples:
            k = min(block, max_samples - vals.size)
            V = np.zeros((k, n))
            V[:, sl] = rng.integers(0, 2, size=(k, width)) * 2.0 - 1.0
            vals = np.concatenate([vals, (V[:, sl] * hvp(V)[:, sl]).sum(axis=1)])
            if progress:
                progress(k)
            if vals.size >= min_samples:
                se = vals.std(ddof=1) / np.sqrt(vals.size)
                if se <= tol * abs(vals.mean()):
                    ok = True
                    break
        if progress and vals.size < max_samples:
            progress(max_samples - vals.size)
        trace[name] = float(vals.mean())
        stderr[name] = float(vals.std(ddof=1) / np.sqrt(vals.size))
        used[name] = int(vals.size)
        conv[name] = ok
    return TraceResult(trace, stderr, used, conv, tol, max_samples)


def hessian_matrix(hvp: HvpFn, n: int, block: int = 32, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The full Hessian from ``n`` HVPs with unit vectors, symmetrised
    (float32 round-off makes H e_i and H e_j differ in the last digits)."""
    rows = np.empty((n, n))
    for s in range(0, n, block):
        e = min(n, s + block)
        E = np.zeros((e - s, n))
        E[np.arange(e - s), np.arange(s, e)] = 1.0
        rows[s:e] = hvp(E)
        if progress:
            progress(e - s)
    return 0.5 * (rows + rows.T)


def hutchinson_diagonal(hvp: HvpFn, n: int, samples: int = 512, block: int = 32,
                        rng: np.random.Generator | None = None,
                        progress: Callable[[int], None] | None = None) -> tuple:
    """(estimate, standard error) of diag(H) as the mean of ``v * H v``.

    Unbiased, but each entry's error is ``sqrt(sum_{j!=i} H_ij^2 / samples)``:
    when off-diagonal mass dominates (it does for the ECON-T encoder) it
    needs far more samples than the exact diagonal's ``n`` HVPs.
    """
    rng = rng or np.random.default_rng(0)
    acc = np.zeros(n)
    acc2 = np.zeros(n)
    done = 0
    while done < samples:
        k = min(block, samples - done)
        V = rng.integers(0, 2, size=(k, n)).astype(np.float64) * 2.0 - 1.0
        p = V * hvp(V)
        acc += p.sum(axis=0)
        acc2 += (p ** 2).sum(axis=0)
        done += k
        if progress:
            progress(k)
    mean = acc / done
    var = np.maximum(acc2 / done - mean ** 2, 0.0) * done / max(done - 1, 1)
    return mean, np.sqrt(var / done)


@dataclass(frozen=True)
class EigenResult:
    """Eigenpairs in the order found (decreasing |eigenvalue|).

    ``residuals[i] = ||P H v - lambda v|| / |lambda|`` with ``P`` projecting
    out the earlier eigenvectors (the deflated operator's residual).
    """

    values: np.ndarray
    vectors: np.ndarray  # (k, n), unit rows
    iterations: np.ndarray
    residuals: np.ndarray
    converged: np.ndarray
    tol: float
    max_iter: int


def top_eigenpairs(hvp: HvpFn, n: int, k: int = 5, tol: float = 1e-3, max_iter: int = 500,
                   rng: np.random.Generator | None = None,
                   progress: Callable[[int], None] | None = None) -> EigenResult:
    """Top-``k`` eigenpairs of H by magnitude: power iteration, deflating by
    projecting out the eigenvectors already found at every step (as FKeras
    does; re-projecting each step keeps round-off from letting an earlier
    direction grow back).

    Each pair stops when its relative residual is below ``tol`` or after
    ``max_iter`` HVPs. The residual bounds the error honestly: the
    eigenvalue's error is about ``residual**2 * |lambda|^2 / gap`` and the
    eigenvector's angle about ``residual * |lambda| / gap``, whereas a small
    change of the Rayleigh quotient between steps (FKeras' rule) can stall
    far from the answer when two eigenvalues are close. ``progress(n)``: called
    with each pair's HVPs, counted against the cap (total: ``k`` x ``max_iter``).
    """
    if not 1 <= k <= n:
        raise ValueError(f"number of eigenpairs must be in 1..{n}, got {k}")
    if tol <= 0 or max_iter < 1:
        raise ValueError(f"eigen tolerance must be > 0 and the iteration cap >= 1 (got {tol}, {max_iter})")
    rng = rng or np.random.default_rng(0)
    found: list = []
    values, iters, resid, conv = [], [], [], []

    def deflate(x):
        for u in found:
            x = x - (u @ x) * u
        return x

    for _ in range(k):
        v = deflate(rng.standard_normal(n))
        v /= np.linalg.norm(v)
        lam, r, ok, it = 0.0, np.inf, False, 0
        while it < max_iter:
            it += 1
            w = deflate(hvp(v[None, :])[0])
            lam = float(v @ w)
            norm_w = np.linalg.norm(w)
            if norm_w == 0.0:  # v is in the null space: every remaining eigenvalue is 0
                r, ok = 0.0, True
                break
            r = float(np.linalg.norm(w - lam * v) / max(abs(lam), 1e-300))
            if r < tol:
                ok = True
                break
            v = w / norm_w
            if progress and it % 16 == 0:
                progress(16)
        if progress:
            progress(max_iter - it + it % 16)
        found.append(v)
        values.append(lam)
        iters.append(it)
        resid.append(r)
        conv.append(ok)
    return EigenResult(np.array(values), np.array(found), np.array(iters), np.array(resid), np.array(conv),
                       tol, max_iter)


# --------------------------------------------------------------------------
# the closure for a real autoencoder
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSlice:
    """One encoder tensor inside the flat parameter vector."""

    layer: str
    tensor: str  # 'kernel' | 'bias'
    shape: tuple
    start: int
    size: int

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.size)


def param_slices(space: SiteSpace) -> list:
    """Flat-vector layout of the parameters, in site order."""
    out, start = [], 0
    for t in space.tensors:
        out.append(ParamSlice(t.layer, t.tensor, t.shape, start, t.size))
        start += t.size
    return out


def layer_groups(slices: list) -> dict:
    """Parameter layer -> slice of the flat vector (kernel and bias together)."""
    groups: dict = {}
    for s in slices:
        a, b = groups.get(s.layer, (s.start, s.start))
        groups[s.layer] = (a, s.start + s.size)
    return {k: slice(a, b) for k, (a, b) in groups.items()}


def data_batch(n_inputs: int, seed: int, data_path=None) -> np.ndarray:
    """``n_inputs`` seeded modules with non-zero charge as (N, 8, 8, 1) float32
    normalised images (the encoder's input and the loss target)."""
    from fkhw.model import data

    charges = data.load_charges(data_path)
    idx = data.select_modules(charges, n_inputs, seed)
    return data.to_image(data.normalise(charges[idx])).astype(np.float32)


# the loss behind `fkhw hessian --metric NAME`
LOSSES = {"emd": "mse_8x8_image", "accuracy": "cross_entropy", "mse": "mse"}


def loss_kind(metric: str) -> str:
    if metric not in LOSSES:
        from fkhw.damage.metrics import MetricError

        raise MetricError(f"--metric {metric}: fkhw hessian differentiates a loss; a user metric has none (use "
                          f"{', '.join(LOSSES)})")
    return LOSSES[metric]


def array_batch(n_inputs: int, seed: int, data_path, labels, input_shape, metric: str, n_out: int) -> tuple:
    """``n_inputs`` seeded rows of an array file (x float32, labels as the metric reads them or None)."""
    from fkhw.model import data
    from fkhw.damage.metrics import check_labels, get_metric

    x, y = data.load_arrays(data_path, labels, input_shape)
    idx = data.select_modules(np.ones((x.shape[0], 1)), n_inputs, seed)
    y = check_labels(get_metric(metric), None if y is None else y[idx], n_out, f"--labels {labels}")
    return x[idx].astype(np.float32), y


def check_batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim < 2 or images.shape[0] == 0:
        raise DataError(f"the Hessian needs a data batch of at least one module (got shape {images.shape})")
    if not np.any(images):
        raise DataError(f"the data batch ({images.shape[0]} modules) has no charge at all: "
                        "the loss is flat there, so its Hessian says nothing")
    if not np.all(np.isfinite(images)):
        raise DataError("the data batch holds non-finite values")
    return images


def _check_model(bundle, loss: str) -> None:
    """Refuse a model whose Hessian the loss cannot take."""
    folded = bundle.ir.source.get("folded_batchnorm") if bundle.ir.source else None
    if folded:
        from fkhw.model.extract import UnsupportedLayerError

        raise UnsupportedLayerError(
            f"layer {folded[0]!r} (QConv2DBatchnorm): the Hessian is taken over the Keras weights, and a folded "
            "batch-norm conv's Keras kernel is not the folded parameter the sites name")
    if loss == "mse_8x8_image" and not bundle.files.has_decoder:
        raise ModelFileError(
            f"model {bundle.name!r} ({bundle.files.directory}) has no decoder: the Hessian of the autoencoder "
            "loss needs one (decoder*.json + decoder*.hdf5 next to the encoder)")


def _loss_function(tf, enc, dec, x, kind: str, labels):
    """The scalar loss of the batch ``x`` as a function of the encoder's
    variables: cross-entropy against ``labels``, the mean squared distance
    of the outputs from ``labels`` (or from their own fault-free values), or
    the autoencoder's image reconstruction error through ``dec``."""
    target = None
    if kind == "cross_entropy":
        if labels is None:
            from fkhw.damage.metrics import MetricError

            raise MetricError("--metric accuracy needs --labels: the cross-entropy is taken against them")
        target = tf.constant(np.asarray(labels, dtype=np.int64))
    elif kind == "mse":
        # the targets, or the model's own outputs (the Hessian of how far outputs move)
        own = enc(x, training=False)
        target = tf.constant(np.asarray(labels, dtype=np.float32).reshape(own.shape) if labels is not None
                             else own.numpy())

    def loss_fn():
        if kind == "cross_entropy":
            logits = tf.reshape(tf.cast(enc(x, training=False), tf.float32), [tf.shape(x)[0], -1])
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits))
        if kind == "mse":
            return tf.reduce_mean(tf.square(tf.cast(enc(x, training=False), tf.float32) - target))
        y = dec(enc(x, training=False), training=False)
        return tf.reduce_mean(tf.square(tf.cast(y, tf.float32) - x))

    return loss_fn


def _tape_functions(tf, loss, params: list, sizes: list, shapes: list) -> tuple:
    """Compiled (loss, gradient), one Hessian-vector product and a block of
    them (a Jacobian of V @ gradient), all over the flat parameter vector in
    site order."""

    def flat(ts):
        return tf.concat([tf.reshape(t, [-1]) for t in ts], axis=0)

    @tf.function(reduce_retracing=True)
    def loss_and_grad():
        with tf.GradientTape() as tape:
            value = loss()
        return value, flat(tape.gradient(value, params))

    @tf.function(reduce_retracing=True)
    def hvp_one(v):
        parts = [tf.reshape(p, s) for p, s in zip(tf.split(v, sizes), shapes)]
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                value = loss()
            g = inner.gradient(value, params)
        return flat(outer.gradient(g, params, output_gradients=parts))

    @tf.function(reduce_retracing=True)
    def hvp_block(V):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                value = loss()
            g = flat(inner.gradient(value, params))
            y = tf.linalg.matvec(V, g)
        J = outer.jacobian(y, params, experimental_use_pfor=True)
        return tf.concat([tf.reshape(j, [tf.shape(V)[0], -1]) for j in J], axis=1)

    return loss_and_grad, hvp_one, hvp_block


class AutoencoderLoss:
    """The loss closure of one model on one data batch.

    ``hvp(V)`` works on blocks of ``block`` vectors at a time through one
    compiled function (padding the last block, so it is traced once): one
    reverse pass for the gradient, then a vectorised (pfor) Jacobian of
    ``V g`` gives ``V H`` for the whole block, ~2x cheaper per vector than
    single double-tape HVPs on the ECON-T encoder. A single vector goes
    through a plain double tape (no padding waste in power iteration).
    """

    def __init__(self, bundle, images: np.ndarray, block: int = 32, loss: str = "mse_8x8_image", labels=None):
        _check_model(bundle, loss)
        files = bundle.files
        self.kind = loss
        self.images = check_batch(images)
        from fkhw.model.keras_io import import_tf, load_decoder, load_encoder

        tf = import_tf()
        self._tf = tf
        self.space = SiteSpace.of(bundle.ir)
        self.slices = param_slices(self.space)
        self.groups = layer_groups(self.slices)
        self.n = sum(s.size for s in self.slices)
        self.block = int(block)
        self.encoder = load_encoder(files)
        self.decoder = load_decoder(files) if loss == "mse_8x8_image" else None
        self.params = self._variables_in_site_order()
        loss_fn = _loss_function(tf, self.encoder, self.decoder, tf.constant(self.images), loss, labels)
        self._loss_and_grad, self._hvp_one, self._hvp_block = _tape_functions(
            tf, loss_fn, self.params, [s.size for s in self.slices], [s.shape for s in self.slices])
        self.n_hvp = 0

    def _variables_in_site_order(self) -> list:
        """The Keras variables matched to the site space by layer name and
        tensor, never by Keras' own variable order."""
        out = []
        for s in self.slices:
            try:
                layer = self.encoder.get_layer(s.layer)
            except ValueError:
                raise ModelFileError(f"encoder has no layer {s.layer!r} although the integer IR lists it") from None
            var = getattr(layer, s.tensor, None)
            if var is None or tuple(var.shape) != tuple(s.shape):
                raise ModelFileError(f"encoder layer {s.layer!r}: {s.tensor} shape "
                                     f"{None if var is None else tuple(var.shape)} does not match the IR's {s.shape}")
            out.append(var)
        extra = {v.name for v in self.encoder.trainable_variables} - {v.name for v in out}
        if extra:
            raise ModelFileError(f"encoder has trainable variables outside the fault-site space: {sorted(extra)}")
        return out

    def loss_and_gradient(self) -> tuple:
        value, g = self._loss_and_grad()
        return float(value), g.numpy().astype(np.float64)

    def weights(self) -> np.ndarray:
        """The float (unquantized) Keras weights, flat in site order."""
        return np.concatenate([v.numpy().reshape(-1) for v in self.params]).astype(np.float64)

    def hvp(self, V: np.ndarray) -> np.ndarray:
        V = np.atleast_2d(np.asarray(V, dtype=np.float64))
        if V.shape[1] != self.n:
            raise ValueError(f"HVP vectors must have {self.n} entries, got {V.shape[1]}")
        self.n_hvp += V.shape[0]
        tf = self._tf
        if V.shape[0] == 1:
            return self._hvp_one(tf.constant(V[0], dtype=tf.float32)).numpy()[None, :].astype(np.float64)
        out = np.empty_like(V)
        for s in range(0, V.shape[0], self.block):
            chunk = V[s:s + self.block]
            k = chunk.shape[0]
            if k < self.block:  # pad: one traced shape for every call
                chunk = np.vstack([chunk, np.zeros((self.block - k, self.n))])
            out[s:s + k] = self._hvp_block(tf.constant(chunk, dtype=tf.float32)).numpy()[:k]
        return out


# --------------------------------------------------------------------------
# the whole analysis, as `fkhw hessian` runs it
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    n_inputs: int = 1024
    seed: int = 0
    data: str | None = None
    metric: str = "emd"  # the loss follows it (LOSSES)
    labels: str | None = None
    top_k: int = 5
    trace_tol: float = 0.02
    trace_max_samples: int = 2000
    eigen_tol: float = 1e-3
    eigen_max_iter: int = 500
    diagonal: str = "exact"  # 'exact' | 'hutchinson'
    diagonal_samples: int = 512
    block: int = 32


@dataclass(frozen=True, eq=False)
class Analysis:
    loss: float
    gradient: np.ndarray
    weights: np.ndarray
    trace: TraceResult
    eigen: EigenResult
    diagonal: np.ndarray
    diagonal_stderr: np.ndarray | None
    exact_eigenvalues: np.ndarray | None  # from the full matrix, when it was built
    slices: list
    groups: dict
    seconds: dict
    n_hvp: int


class _Timer:
    def __init__(self):
        self.seconds: dict = {}

    def step(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t = time.perf_counter()
                log.info("hessian: %s ...", name)

            def __exit__(self, *exc):
                dt = time.perf_counter() - self.t
                timer.seconds[name] = round(dt, 3)
                if exc[0] is None:
                    log.info("hessian: %s done in %.1f s", name, dt)

        return _Ctx()


def analyse(bundle, settings: Settings, images: np.ndarray | None = None) -> Analysis:
    """Gradient, trace, eigenpairs and diagonal of one model on one batch."""
    timer = _Timer()
    t0 = time.perf_counter()
    with timer.step("loading the data batch and the autoencoder"):
        kind, labels = loss_kind(settings.metric), None
        if images is None and settings.metric != "emd":
            images, labels = array_batch(settings.n_inputs, settings.seed, settings.data, settings.labels,
                                         bundle.ir.input.shape, settings.metric, bundle.ir.output_spec.size)
        elif images is None:
            images = data_batch(settings.n_inputs, settings.seed, settings.data)
        closure = AutoencoderLoss(bundle, images, block=settings.block, loss=kind, labels=labels)
    rng = np.random.default_rng(settings.seed)
    with timer.step("gradient"):
        loss, grad = closure.loss_and_gradient()
    from fkhw.progress import Progress

    def shown(total: int, label: str, unit: str):
        """Progress lines for a loop that turns out long (a cap of --trace-max, --eigen-max-iter or
        --diagonal-samples in the millions runs for hours)."""
        return Progress(total, f"hessian: {label}", unit=unit, every=5.0, after=5.0).advance

    with timer.step(f"Hutchinson trace (tol {settings.trace_tol}, cap {settings.trace_max_samples} samples)"):
        trace = hutchinson_trace(closure.hvp, closure.n, closure.groups, tol=settings.trace_tol,
                                 max_samples=settings.trace_max_samples, block=settings.block, rng=rng,
                                 progress=shown(len(closure.groups) * settings.trace_max_samples,
                                                "trace (up to the cap)", "probes"))
    with timer.step(f"top-{settings.top_k} eigenpairs (tol {settings.eigen_tol}, cap {settings.eigen_max_iter})"):
        eigen = top_eigenpairs(closure.hvp, closure.n, settings.top_k, tol=settings.eigen_tol,
                               max_iter=settings.eigen_max_iter, rng=rng,
                               progress=shown(settings.top_k * settings.eigen_max_iter, "eigenpairs (up to the cap)",
                                              "HVPs"))
    exact_eigs, diag_se = None, None
    if settings.diagonal == "exact":
        with timer.step(f"exact diagonal ({closure.n} HVPs)"):
            from fkhw.progress import Progress

            prog = Progress(closure.n, "hessian: diagonal", unit="HVPs", every=5.0)
            H = hessian_matrix(closure.hvp, closure.n, settings.block, progress=prog.advance)
            diag = np.diag(H).copy()
        with timer.step("exact eigenvalues of the full matrix (check)"):
            w = np.linalg.eigvalsh(H)
            exact_eigs = w[np.argsort(-np.abs(w))][:settings.top_k]
    elif settings.diagonal == "hutchinson":
        with timer.step(f"Hutchinson diagonal ({settings.diagonal_samples} samples)"):
            diag, diag_se = hutchinson_diagonal(closure.hvp, closure.n, settings.diagonal_samples,
                                                settings.block, rng=rng,
                                                progress=shown(settings.diagonal_samples, "diagonal", "probes"))
    else:
        raise ValueError(f"diagonal must be 'exact' or 'hutchinson', got {settings.diagonal!r}")
    timer.seconds["total"] = round(time.perf_counter() - t0, 3)
    return Analysis(loss, grad, closure.weights(), trace, eigen, diag, diag_se, exact_eigs,
                    closure.slices, closure.groups, timer.seconds, closure.n_hvp)
