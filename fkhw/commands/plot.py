"""fkhw plot: draw a campaign's Figure 1 heat map."""

from fkhw.commands.options import campaign_inputs, in_path, model_help, model_inputs, out_path

HELP = ("draw a campaign's figure: the Figure 1 heat map (normalised mean EMD per parameter bit) of a seu campaign, "
        "damage by flip-flop class of any other --faults kind")


def add_arguments(p):
    p.add_argument("--campaign", type=in_path, required=True, help="campaign folder (holds campaign.csv, summary.json)")
    p.add_argument("--out", type=out_path, default=None,
                   help="PNG to write (default: CAMPAIGN/figure1.png, or CAMPAIGN/damage_by_class.png)")
    p.add_argument("--model", default=None, help=model_help(" (default: the one named in the campaign's summary.json)"))


def run(args) -> int:
    from fkhw.campaign.run import campaign_model
    from fkhw.campaign.files import DAMAGE_FIGURE, FIGURE1, kind_of, read_fault_table, read_summary, read_table
    from fkhw.analysis.figures import campaign_figure1, damage_figure
    from fkhw.faults.sites import SiteSpace

    summary = read_summary(args.campaign)
    if kind_of(summary) != "seu":
        read_fault_table(args.campaign, summary)
        _check_out(args.out, args.campaign / DAMAGE_FIGURE, _inputs(args))
        campaign_model(summary, args.model)  # a campaign of another model is refused
        print(f"damage by flip-flop class -> {damage_figure(args.campaign, args.out)}")
        return 0
    read_table(args.campaign, summary)  # a damaged table is named before the model loads
    _check_out(args.out, args.campaign / FIGURE1, _inputs(args))
    bundle = campaign_model(summary, args.model)
    out = campaign_figure1(SiteSpace.of(bundle.ir), bundle.name, args.campaign, summary["level"], summary["inputs"],
                           args.out)
    print(f"figure 1 -> {out}")
    return 0


def _inputs(args) -> list:
    return campaign_inputs("--campaign", args.campaign) + model_inputs(args.model)


def _check_out(out, default, inputs: list) -> None:
    """The figure's path can be written and --out names a format matplotlib
    writes (else savefig fails after the work, in its own words)."""
    from matplotlib.backend_bases import FigureCanvasBase

    from fkhw.errors import UserError
    from fkhw.outpaths import check_out_file

    check_out_file(out if out is not None else default, "--out" if out is not None else "--campaign", inputs=inputs)
    kinds = FigureCanvasBase.get_supported_filetypes()
    if out is not None and out.suffix.lower().lstrip(".") not in kinds:
        raise UserError(f"--out {out}: not a figure file name; end it in .png (or .{', .'.join(sorted(kinds))})")
