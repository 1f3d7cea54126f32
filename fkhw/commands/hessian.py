"""fkhw hessian: Hessian trace, eigenpairs, diagonal and bit-level scores of
the encoder under the autoencoder's training loss."""

from fkhw.commands.options import (POSITIVE, SEED, TOLERANCE, add_metric_arguments, input_paths, int_at_least,
                                  model_help, model_inputs, out_path)

HELP = "Hessian of the autoencoder loss w.r.t. the encoder: hessian.json, scores.csv, params.csv, figure2.png"
DESCRIPTION = (
    "Hessian-vector products of the autoencoder's loss (MSE between the normalised 8x8 input image and "
    "the decoder's reconstruction, through the QKeras straight-through quantizers) on a seeded batch of "
    "--inputs modules. Writes OUT/hessian.json (Hutchinson trace per layer, top-k eigenvalues by power "
    "iteration with deflation, exact checks, settings, time taken), OUT/scores.csv (site + one column per "
    "bit score, higher = more dangerous: taylor2, hessian_eigen, gradient, msb, random, taylor2_abs, "
    "curvature_abs, taylor1, curvature, hessian_diag; see fkhw/analysis/ranking.py), OUT/params.csv (per-parameter value, gradient, Hessian diagonal) and OUT/figure2.png "
    "(per-parameter Hessian diagonal, the seed paper's Figure 2).")


def add_arguments(p):
    p.add_argument("--model", default="econt-bol", help=model_help(" (needs a decoder; default: econt-bol)"))
    p.add_argument("--out", type=out_path, required=True, help="output folder")
    p.add_argument("--inputs", type=POSITIVE, default=1024, help="modules (non-zero charge) in the data batch (default 1024)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the module choice, random vectors and the random score")
    p.add_argument("--data", default=None, help="HGCAL CSV with CALQ_0..CALQ_47 (default: the vendored sample)")
    p.add_argument("--top-k", type=POSITIVE, default=5, help="eigenpairs to find (default 5)")
    p.add_argument("--trace-tol", type=TOLERANCE, default=0.02,
                   help="Hutchinson stops a layer once its standard error is below this fraction of its trace (default 0.02)")
    p.add_argument("--trace-max", type=int_at_least(2), default=2000, help="Hutchinson probe cap per layer (default 2000)")
    p.add_argument("--eigen-tol", type=TOLERANCE, default=1e-3,
                   help="power iteration stops at relative residual ||Hv - lv||/|l| below this (default 1e-3)")
    p.add_argument("--eigen-max-iter", type=POSITIVE, default=500, help="power iteration cap per eigenpair (default 500)")
    p.add_argument("--diagonal", choices=["exact", "hutchinson"], default="exact",
                   help="exact: one HVP per parameter (default); hutchinson: --diagonal-samples random probes")
    p.add_argument("--diagonal-samples", type=int_at_least(2), default=512, help="probes for --diagonal hutchinson (default 512)")
    add_metric_arguments(p, "loss follows the")


def _check(args):
    """What the option types cannot see alone (ranges are checked by the parser)."""
    from fkhw.outpaths import check_out_dir

    check_out_dir(args.out, inputs=model_inputs(args.model) + input_paths("--data", args.data)
                  + input_paths("--labels", args.labels))


def run(args) -> int:
    import time

    from fkhw.errors import UserError
    from fkhw.model.data import check_image_input, load_charges, select_modules
    from fkhw.analysis.hessian import loss_kind
    from fkhw.model.bundle import load_model
    from fkhw.model.files import ModelFileError, resolve

    _check(args)
    kind = loss_kind(args.metric)  # a user metric has no loss: refused before anything else
    if args.metric != "emd":
        return _run_arrays(args, kind)
    if args.labels is not None:
        raise UserError(f"--labels {args.labels}: the emd metric's autoencoder loss takes no labels")
    # data and model are checked before TensorFlow starts: a bad input costs milliseconds
    select_modules(load_charges(args.data), args.inputs, args.seed)
    t0 = time.perf_counter()
    files = resolve(args.model)
    if not files.has_decoder:  # before TensorFlow and extraction: fail in milliseconds
        raise ModelFileError(f"model {args.model!r} ({files.directory}) has no decoder: the Hessian of the "
                             "autoencoder loss needs one (decoder*.json + decoder*.hdf5 next to the encoder)")
    bundle = load_model(args.model)
    check_image_input(bundle.ir.input.shape, bundle.name)
    return _analyse_and_write(args, bundle, files, kind, t0, "modules")


def _run_arrays(args, kind):
    """--metric accuracy / mse: the model's own outputs on rows of an array --data."""
    import time

    from fkhw.errors import UserError
    from fkhw.model.data import load_arrays
    from fkhw.analysis.hessian import array_batch
    from fkhw.model.bundle import load_model
    from fkhw.model.files import resolve

    if args.data is None:
        raise UserError(f"--metric {args.metric}: give the inputs as an array file (--data x.npy, with --labels)")
    t0 = time.perf_counter()
    files = resolve(args.model)
    bundle = load_model(args.model)
    load_arrays(args.data, args.labels, bundle.ir.input.shape)  # shapes and lengths, before TensorFlow
    array_batch(args.inputs, args.seed, args.data, args.labels, bundle.ir.input.shape, args.metric,
                bundle.ir.output_spec.size)
    return _analyse_and_write(args, bundle, files, kind, t0, "rows")


LOSS_NOTES = {
    "mse_8x8_image": "MSE between the normalised 8x8 input image and the autoencoder's output",
    "cross_entropy": "softmax cross-entropy of the model's outputs (logits) against --labels",
    "mse": "MSE of the model's outputs against --labels (targets), or against its own outputs without labels",
}


def _analyse_and_write(args, bundle, files, kind, t0, what):
    import json
    import time

    from fkhw.errors import UserError
    from fkhw.analysis.hessian import Settings, analyse
    from fkhw.outpaths import make_dir, save_npy, write_text
    from fkhw.analysis.hessian_figures import save_figure2
    from fkhw.analysis.ranking import bit_scores
    from fkhw.faults.scores import write_scores_csv
    from fkhw.faults.sites import SiteSpace

    space = SiteSpace.of(bundle.ir)
    settings = Settings(n_inputs=args.inputs, seed=args.seed, data=args.data, top_k=args.top_k,
                        trace_tol=args.trace_tol, trace_max_samples=args.trace_max, eigen_tol=args.eigen_tol,
                        eigen_max_iter=args.eigen_max_iter, diagonal=args.diagonal,
                        diagonal_samples=args.diagonal_samples, metric=args.metric,
                        labels=None if args.labels is None else str(args.labels))
    if args.top_k > sum(t.size for t in space.tensors):
        raise UserError(f"--top-k {args.top_k} exceeds the number of parameters")
    a = analyse(bundle, settings)
    t = time.perf_counter()
    scores = bit_scores(bundle.ir, a.gradient, a.diagonal, a.eigen.values, a.eigen.vectors, seed=args.seed)
    a.seconds["scores"] = round(time.perf_counter() - t, 3)

    out = args.out
    make_dir(out)
    write_scores_csv(out / "scores.csv", scores)
    _write_params(out / "params.csv", a, bundle.ir, space)
    save_npy(out / "eigenvectors.npy", a.eigen.vectors)
    traces = {g: float(a.diagonal[s].sum()) for g, s in a.groups.items()}
    png = save_figure2(out / "figure2.png", a.slices, a.diagonal,
                       f"{bundle.name}: Hessian diagonal per parameter ({args.diagonal}), "
                       + (f"MSE autoencoder loss on {args.inputs} modules" if kind == "mse_8x8_image" else
                        f"{kind} loss ({args.metric}) on {args.inputs} {what}"), traces)
    a.seconds["command_total"] = round(time.perf_counter() - t0, 3)
    report = {
        "model": bundle.name,
        "digest": files.digest(),
        "loss": {"kind": kind, "value": a.loss,
                 "note": f"{LOSS_NOTES[kind]}; gradients through the QKeras straight-through quantizers",
                 **({} if kind == "mse_8x8_image" else {"metric": args.metric, "labels": args.labels and
                                                         str(args.labels)})},
        "n_params": int(a.gradient.size),
        "trace": {
            "per_layer": a.trace.trace, "stderr": a.trace.stderr, "total": a.trace.total,
            "total_stderr": a.trace.total_stderr, "samples": a.trace.samples, "converged": a.trace.converged,
            "method": "Rademacher probes on one layer at a time; a layer stops at stderr <= trace_tol * |trace|",
        },
        "eigen": {
            "values": a.eigen.values.tolist(), "iterations": a.eigen.iterations.tolist(),
            "residuals": a.eigen.residuals.tolist(), "converged": a.eigen.converged.tolist(),
            "order": "decreasing |eigenvalue| (power iteration finds the largest magnitude first)",
        },
        "exact_check": None if a.exact_eigenvalues is None else {
            "trace_per_layer_from_diagonal": traces,
            "top_eigenvalues": a.exact_eigenvalues.tolist(),
        },
        "settings": {
            "inputs": args.inputs, "seed": args.seed, "data": args.data, "top_k": args.top_k,
            "trace_tol": args.trace_tol, "trace_max_samples": args.trace_max, "eigen_tol": args.eigen_tol,
            "eigen_max_iter": args.eigen_max_iter, "diagonal": args.diagonal,
            "diagonal_samples": args.diagonal_samples if args.diagonal == "hutchinson" else None,
            "hvp_block": settings.block,
        },
        "n_hvp": a.n_hvp,
        "seconds": a.seconds,
        "scores": list(scores),
    }
    write_text(out / "hessian.json", json.dumps(report, indent=2) + "\n")
    _print(report, out, png)
    return 0


def _write_params(path, a, ir, space):
    import csv

    from fkhw.outpaths import atomic_open
    from fkhw.faults.sites import tensor_codes

    with atomic_open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["param", "layer", "tensor", "index", "code", "value", "gradient", "hessian_diag"])
        for s, t in zip(a.slices, space.tensors):
            codes = tensor_codes(ir, t).reshape(-1)
            for i in range(s.size):
                p = s.start + i
                w.writerow([p, s.layer, s.tensor, i, int(codes[i]), repr(float(codes[i] * 2.0 ** -t.fmt.frac)),
                            repr(float(a.gradient[p])), repr(float(a.diagonal[p]))])


def _print(r, out, png):
    tr = r["trace"]
    print(f"{r['model']}: {r['n_params']} parameters, loss {r['loss']['value']:.6g} "
          f"({r['settings']['inputs']} modules)")
    print(f"  Hutchinson trace {tr['total']:.5g} +- {tr['total_stderr']:.2g}")
    exact = (r["exact_check"] or {}).get("trace_per_layer_from_diagonal", {})
    for layer, v in tr["per_layer"].items():
        ex = f"   exact {exact[layer]:.5g}" if layer in exact else ""
        conv = "" if tr["converged"][layer] else ", NOT converged: cap reached"
        print(f"    {layer:<20} {v:.5g} +- {tr['stderr'][layer]:.2g} ({tr['samples'][layer]} probes{conv}){ex}")
    ev = r["eigen"]
    print("  top eigenvalues  " + "  ".join(f"{v:.5g}" for v in ev["values"])
          + f"   (iterations {ev['iterations']}, all converged: {all(ev['converged'])})")
    if r["exact_check"]:
        print("  exact (eigh)     " + "  ".join(f"{v:.5g}" for v in r["exact_check"]["top_eigenvalues"]))
    s = r["seconds"]
    print(f"  time: {s['total']:.1f} s analysis + {s['scores']:.2f} s scores ({r['n_hvp']} HVPs)")
    print(f"  results -> {out}/hessian.json, scores.csv, params.csv, eigenvectors.npy; figure 2 -> {png}")
