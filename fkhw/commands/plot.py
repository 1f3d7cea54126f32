"""fkhw plot: draw a campaign's Figure 1 heat map."""

from pathlib import Path

HELP = "draw the Figure 1 heat map (normalised mean EMD per parameter bit) of a campaign"


def add_arguments(p):
    p.add_argument("--campaign", type=Path, required=True, help="campaign folder (holds campaign.csv, summary.json)")
    p.add_argument("--out", type=Path, default=None, help="PNG to write (default: CAMPAIGN/figure1.png)")
    p.add_argument("--model", default=None, help="model (default: the one named in the campaign's summary.json)")


def run(args) -> int:
    import json

    from fkhw.cli import UserError
    from fkhw.campaign import campaign_model
    from fkhw.plots import campaign_figure1
    from fkhw.sites import SiteSpace

    summary_path = args.campaign / "summary.json"
    if not summary_path.is_file():
        raise UserError(f"{summary_path}: not a campaign folder (no summary.json)")
    summary = json.loads(summary_path.read_text())
    bundle = campaign_model(summary, args.model)
    out = campaign_figure1(SiteSpace.of(bundle.ir), bundle.name, args.campaign, summary["level"], summary["inputs"],
                           args.out)
    print(f"figure 1 -> {out}")
    return 0
