"""fkhw agree: do two campaigns (any two levels) record identical outputs?"""

import json

from fkhw.commands.options import NON_NEGATIVE, campaign_inputs, in_path, out_path

HELP = ("join two campaigns on site (or fault id) and count those whose outputs differ (writes agreement.json)")
DESCRIPTION = (HELP + ". Works for any two levels (software, hls, rtl, ...) and any fault kind: a fault disagrees "
               "when a latent code, a dropped valid flag or its count of extra outputs differs. Both campaigns must "
               "have run the same model on the same inputs and the same faults. Exit status 1 if any disagrees.")


def add_arguments(p):
    p.add_argument("--a", type=in_path, required=True, help="first campaign folder")
    p.add_argument("--b", type=in_path, required=True, help="second campaign folder")
    p.add_argument("--out", type=out_path, default=None, help="agreement.json path (default: B/agreement.json)")
    p.add_argument("--list", type=NON_NEGATIVE, default=50, metavar="N", help="list at most N disagreeing sites (default 50)")


def run(args) -> int:
    from fkhw.campaign.agreement import Campaign, compare
    from fkhw.campaign.files import AGREEMENT
    from fkhw.outpaths import check_out_file, write_text

    a, b = Campaign.load(args.a, "--a"), Campaign.load(args.b, "--b")
    out = check_out_file(args.out or args.b / AGREEMENT, "--out" if args.out else "--b",
                         inputs=campaign_inputs("--a", args.a) + campaign_inputs("--b", args.b))
    ag = compare(a, b)
    write_text(out, json.dumps({"a": str(args.a), "b": str(args.b), **ag.to_dict()}, indent=2) + "\n")
    u = ag.unit
    kind = "" if ag.kind == "seu" else f" [{ag.kind}]"
    print(f"{ag.level_a} ({args.a}) vs {ag.level_b} ({args.b}){kind}: {ag.common_sites} common {u}, "
          f"fault-free outputs {'identical' if ag.baseline_identical else 'DIFFER'}")
    if ag.only_a or ag.only_b:
        print(f"  {u} only in a: {ag.only_a}, only in b: {ag.only_b}")
    extra = "" if ag.kind == "seu" else (f", lost slots: {ag.mismatching_lost}, extra outputs: "
                                         f"{ag.mismatching_extra}")
    print(f"  disagreeing {u}: {len(ag.disagreeing_sites)}  (mismatching latent values: {ag.mismatching_values}"
          f"{extra})")
    if ag.disagreeing_sites:
        shown = ag.disagreeing_sites[: args.list]
        print("  " + " ".join(map(str, shown)) + (" ..." if len(ag.disagreeing_sites) > len(shown) else ""))
    print(f"  -> {out}")
    return 0 if not ag.disagreeing_sites and ag.baseline_identical else 1
