"""fkhw campaign: flip every (or a chosen list of) parameter bit, one at a
time, on a level, and measure the damage as EMD."""

from fkhw.commands.options import EMD_NORM, POSITIVE, SEED, fraction_open, in_path, out_path

HELP = "single-bit-upset campaign on a level (software, hls, rtl, netlist): campaign.csv, outputs.npz, summary.json, Figure 1"
DESCRIPTION = (
    "Pick --inputs modules with non-zero charge (seeded), measure the fault-free EMD, then flip each site's bit "
    "in turn and record the mean EMD over the inputs. Writes OUT/campaign.csv "
    "(site,layer,tensor,index,bit,emd,emd_norm,n_changed,emd_norm_lo,emd_norm_hi: the last two the --confidence "
    "interval of emd_norm over the modules, paired bootstrap), OUT/outputs.npz (charges, inputs, baseline, and the "
    "latent codes where they differ from the fault-free ones), "
    "OUT/summary.json (sensitive-bit fractions and TMR overhead per threshold) and OUT/figure1.png. "
    "Killed half way and started again with the same arguments, it resumes.")


def add_arguments(p):
    p.add_argument("--model", default="econt-bol", help="econt-bol, econt-eol, or a model directory")
    p.add_argument("--level", default="software", choices=["software", "hls", "rtl", "netlist"],
                   help="where faults run (netlist: the Yosys gate-level netlist of the RTL, same testbench)")
    p.add_argument("--inputs", type=POSITIVE, default=32, help="number of modules (non-zero charge) to run (default 32)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the module choice and of random orders")
    p.add_argument("--data", default=None, help="HGCAL CSV with CALQ_0..CALQ_47 (default: the vendored sample)")
    p.add_argument("--out", type=out_path, required=True, help="output folder")
    p.add_argument("--sites", type=in_path, default=None, help="file of site ids to run (one per line, or CSV with a site column)")
    p.add_argument("--order", default="site",
                   help="injection order: site (default), random, msb, reverse, or SCORES.csv:COLUMN (highest first)")
    p.add_argument("--stop-after", type=POSITIVE, default=None, metavar="N", help="stop after N injections")
    p.add_argument("--stop-sensitive", type=POSITIVE, default=None, metavar="N",
                   help="stop once N sensitive bits (emd_norm > --sensitive-threshold) are found")
    p.add_argument("--sensitive-threshold", type=EMD_NORM, default=1.0, metavar="T",
                   help="what --stop-sensitive counts as sensitive (default 1.0)")
    p.add_argument("--threshold", type=EMD_NORM, action="append", default=[], metavar="T",
                   help="extra emd_norm threshold for the summary (repeatable); 1.0, 1.01, 1.05, 1.1 are always reported")
    p.add_argument("--jobs", type=POSITIVE, default=None,
                   help="workers of a local Dask cluster (default: 1 = in process for software, all cores for hls/rtl)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing Dask cluster (e.g. tcp://10.0.0.5:8786; see README for Slurm/HTCondor)")
    p.add_argument("--chunk", type=POSITIVE, default=None, help="sites per work chunk (resume granularity)")
    p.add_argument("--fresh", action="store_true",
                   help="discard the campaign in --out (unfinished or finished, with every file it wrote) and start anew")
    p.add_argument("--baseline", default="modules", choices=["modules", "data"],
                   help="emd_norm's denominator: the fault-free mean EMD over the campaign's modules (default), or "
                        "over every module of the data file (the FKeras paper's rule)")
    p.add_argument("--confidence", type=fraction_open, default=0.95, metavar="C",
                   help="confidence level of the per-site emd_norm interval (emd_norm_lo/hi; default 0.95)")
    p.add_argument("--no-plot", action="store_true", help="skip figure1.png")


def run(args) -> int:
    from fkhw.campaign import DEFAULT_THRESHOLDS, CampaignSpec, run_campaign
    from fkhw.executors import probe_scheduler, scheduler_address
    from fkhw.model.bundle import load_model
    from fkhw.outpaths import check_out_dir
    from fkhw.sites import SiteSpace, read_site_list

    check_out_dir(args.out)
    if args.scheduler is not None:
        args.scheduler = scheduler_address(args.scheduler)
        probe_scheduler(args.scheduler)  # a port that is not Dask is named now, not after the setup
    bundle = load_model(args.model)
    space = SiteSpace.of(bundle.ir)
    sites = tuple(read_site_list(args.sites, space).tolist()) if args.sites else None
    spec = CampaignSpec(
        model=args.model, level=args.level, n_inputs=args.inputs, seed=args.seed, data=args.data,
        order=args.order, sites=sites, stop_after=args.stop_after, stop_sensitive=args.stop_sensitive,
        sensitive_threshold=args.sensitive_threshold, thresholds=tuple(DEFAULT_THRESHOLDS) + tuple(args.threshold),
        jobs=args.jobs, chunk=args.chunk, scheduler=args.scheduler, baseline=args.baseline,
        confidence=args.confidence)
    result = run_campaign(spec, bundle, args.out, fresh=args.fresh)
    print_summary(result.summary, args.out)
    if not args.no_plot:
        from fkhw.plots import campaign_figure1

        png = campaign_figure1(space, bundle.name, args.out, args.level, args.inputs)
        print(f"  figure 1     -> {png}")
    return 0


def print_summary(s: dict, out) -> None:
    print(f"{s['model']} [{s['level']}]: {s['n_sites']} sites x {s['inputs']} inputs, "
          f"fault-free mean EMD {s['baseline_emd']:.4f}")
    if not s["complete"]:
        print(f"  note: {s['n_sites']} of the model's {s['n_sites_model']} sites ran (--sites, --order, --stop-*): "
              "the fractions below are of those sites")
    if s.get("baseline") == "data":
        print(f"  emd_norm relative to the fault-free mean over the whole data file: {s['emd_norm_denominator']:.4f}")
    print("  threshold  sensitive bits   fraction   TMR overhead")
    for row in s["thresholds"].values():
        print(f"  emd_norm > {row['threshold']:<5g} {row['sensitive_bits']:8d}      {100 * row['fraction']:6.2f}%   "
              f"{row['tmr_overhead_pct']:6.2f}%")
    print(f"  results      -> {out}/campaign.csv, outputs.npz, summary.json")
