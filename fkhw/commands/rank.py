"""fkhw rank: how well each bit score finds a campaign's sensitive bits."""

from fkhw.commands.options import EMD_NORM, campaign_inputs, in_path, input_paths, out_path

HELP = "compare bit scores (fkhw hessian) with a campaign: Spearman, found-vs-injected curves, rank.csv"
DESCRIPTION = (
    "For each score column of --scores, the Spearman correlation with the campaign's emd_norm, and the number "
    "of sensitive bits (emd_norm > T) found against bits injected in score order, next to the oracle (true "
    "order) and a random order's expectation. Writes OUT/rank.csv (injections needed to find 50%%, 90%% and "
    "100%% of the sensitive bits for T = 1.0, 1.05, 1.1 and every --threshold) and OUT/rank.png.")


def add_arguments(p):
    p.add_argument("--campaign", type=in_path, required=True, help="campaign folder (holding campaign.csv) or the CSV")
    p.add_argument("--scores", type=in_path, required=True, help="hessian folder (holding scores.csv) or the CSV")
    p.add_argument("--out", type=out_path, required=True, help="output folder")
    p.add_argument("--rule", default="mean", choices=["mean", "upper"],
                   help="which bits count as sensitive: emd_norm > T (mean, default) or the upper end of its interval "
                        "> T (upper: the bits `fkhw tmr --rule upper` protects)")
    p.add_argument("--threshold", type=EMD_NORM, action="append", default=[], metavar="T",
                   help="extra emd_norm threshold (repeatable); 1.0, 1.05, 1.1 are always reported")


def run(args) -> int:
    from fkhw.outpaths import check_out_dir, make_dir
    from fkhw.analysis.hessian_figures import save_rank_curves
    from fkhw.analysis.ranking import DEFAULT_THRESHOLDS, compare, write_rank_csv
    from fkhw.faults.scores import RankingError, read_scores_csv

    thresholds = sorted(set(DEFAULT_THRESHOLDS) | set(args.threshold))
    check_out_dir(args.out, inputs=campaign_inputs("--campaign", args.campaign)
                  + input_paths("--scores", args.scores, ("scores.csv", "hessian.json")))
    camp_sites, emd, summary = _campaign(args.campaign, "emd_norm" if args.rule == "mean" else "emd_norm_hi")
    score_sites, scores = read_scores_csv(args.scores)
    if not scores:
        raise RankingError(f"--scores {args.scores}: no score column besides 'site'")
    check_same_model(args.campaign, summary, args.scores, score_sites)
    cmp = compare(camp_sites, emd, score_sites, scores, thresholds)
    make_dir(args.out)
    write_rank_csv(args.out / "rank.csv", cmp.rows)
    png = save_rank_curves(args.out / "rank.png", cmp.curves, cmp.n_sites,
                           f"sensitive bits found vs injected ({cmp.n_sites} campaign sites)")
    if cmp.missing:
        print(f"warning: {cmp.missing} campaign site(s) have no score and are left out")
    from fkhw.campaign.files import damage_column

    col = damage_column(summary)  # the campaign's normalised damage (emd_norm for EMD campaigns)
    _print(cmp, col if args.rule == "mean" else f"{col}_hi")
    print(f"  results -> {args.out}/rank.csv; curves -> {png}")
    return 0


def _campaign(path, column: str):
    """(sites, ``column`` (emd_norm or emd_norm_hi), summary or None) of a
    campaign folder or a bare campaign.csv (a table without its summary.json
    cannot be model-checked)."""
    from fkhw.campaign.files import SUMMARY, read_summary, read_table, require_seu

    summary = read_summary(path) if (path / SUMMARY).exists() else None
    if summary is not None:
        require_seu(summary, path, "rank")
    table = read_table(path, summary)
    return table.site, table.number(column), summary


def check_same_model(campaign, summary, scores_path, score_sites) -> None:
    """Campaign and scores must come from the same model: same digest where
    both record one, and a scores table over the model's whole site space."""
    import json

    from fkhw.faults.scores import RankingError

    report = (scores_path if scores_path.is_dir() else scores_path.parent) / "hessian.json"
    digest = None
    if report.is_file():
        try:
            digest = json.loads(report.read_text()).get("digest")
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            raise RankingError(f"{report}: damaged (not the JSON fkhw hessian writes)") from None
    if summary is None:
        return
    if digest is not None and digest != summary["model_digest"]:
        raise RankingError(f"--scores {scores_path} are of model digest {digest}, --campaign {campaign} ran model "
                           f"{summary['model']!r} (digest {summary['model_digest']}): different models")
    n = summary["n_sites_model"]
    if score_sites.size != n or int(score_sites.max()) != n - 1:
        raise RankingError(f"--scores {scores_path} cover {score_sites.size} sites (ids up to "
                           f"{int(score_sites.max())}), the campaign's model {summary['model']!r} has {n}: "
                           "scores of another model?")


def _print(cmp, column: str = "emd_norm"):
    def fmt(v):
        return "-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))

    current = None
    for r in cmp.rows:
        if r["threshold"] != current:
            current = r["threshold"]
            print(f"{column} > {current:g}: {r['n_sensitive']} sensitive of {r['n_sites']} sites")
            print(f"  {'score':<16} {'spearman':>8} {'50%':>8} {'90%':>8} {'100%':>8}")
        rho = "" if r["spearman"] != r["spearman"] else f"{r['spearman']:.3f}"
        print(f"  {r['score']:<16} {rho:>8} {fmt(r['inj_50']):>8} {fmt(r['inj_90']):>8} {fmt(r['inj_100']):>8}")
