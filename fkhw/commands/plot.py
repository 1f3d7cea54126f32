"""fkhw plot: draw a campaign's Figure 1 heat map."""

from fkhw.commands.options import in_path, model_help, out_path

HELP = ("draw a campaign's figure: the Figure 1 heat map (normalised mean EMD per parameter bit) of a seu campaign, "
        "damage by flip-flop class of any other --faults kind")


def add_arguments(p):
    p.add_argument("--campaign", type=in_path, required=True, help="campaign folder (holds campaign.csv, summary.json)")
    p.add_argument("--out", type=out_path, default=None,
                   help="PNG to write (default: CAMPAIGN/figure1.png, or CAMPAIGN/damage_by_class.png)")
    p.add_argument("--model", default=None, help=model_help(" (default: the one named in the campaign's summary.json)"))


def run(args) -> int:
    from fkhw.campaign import campaign_model
    from fkhw.campaign_files import DAMAGE_FIGURE, FIGURE1, kind_of, read_fault_table, read_summary, read_table
    from fkhw.outpaths import check_out_file
    from fkhw.plots import campaign_figure1, damage_figure
    from fkhw.sites import SiteSpace

    summary = read_summary(args.campaign)
    if kind_of(summary) != "seu":
        read_fault_table(args.campaign, summary)
        check_out_file(args.out if args.out is not None else args.campaign / DAMAGE_FIGURE,
                       "--out" if args.out is not None else "--campaign")
        campaign_model(summary, args.model)  # a campaign of another model is refused
        print(f"damage by flip-flop class -> {damage_figure(args.campaign, args.out)}")
        return 0
    read_table(args.campaign, summary)  # a damaged table is named before the model loads
    check_out_file(args.out if args.out is not None else args.campaign / FIGURE1,
                   "--out" if args.out is not None else "--campaign")
    bundle = campaign_model(summary, args.model)
    out = campaign_figure1(SiteSpace.of(bundle.ir), bundle.name, args.campaign, summary["level"], summary["inputs"],
                           args.out)
    print(f"figure 1 -> {out}")
    return 0
