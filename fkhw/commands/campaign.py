"""fkhw campaign: flip every (or a chosen list of) parameter bit, one at a
time, on a level, and measure the damage as EMD; or run another kind of
fault (multi-bit, pipeline, accumulated upsets, a faults file)."""

from fkhw.commands.options import (PROTECTION_METAVAR, EMD_NORM, NON_NEGATIVE, POSITIVE, SEED, add_metric_arguments, fraction_open,
                                  in_path, input_paths, model_help, model_inputs, order_inputs, out_path, protection)
from fkhw.levels import LEVELS

HELP = ("fault-injection campaign on a level (software, hls, rtl, netlist): single-bit upsets (default) or "
        "--faults mbu:K | pipeline | accumulate:K | --faults-file F")
DESCRIPTION = (
    "Pick --inputs modules with non-zero charge (seeded), measure the fault-free EMD, then flip each site's bit "
    "in turn and record the mean EMD over the inputs. Writes OUT/campaign.csv "
    "(site,layer,tensor,index,bit,emd,emd_norm,n_changed,emd_norm_lo,emd_norm_hi: the last two the --confidence "
    "interval of emd_norm over the modules, paired bootstrap), OUT/outputs.npz (charges, inputs, baseline, and the "
    "latent codes where they differ from the fault-free ones), "
    "OUT/summary.json (sensitive-bit fractions and TMR overhead per threshold) and OUT/figure1.png. "
    "Another --faults kind is keyed by fault id: OUT/faults.csv (what each fault is: fault,upsets,scrub,... - "
    "a faults file itself), OUT/campaign.csv (fault,n_upsets,classes,emd,emd_norm,n_changed,n_touched,lost,extra,"
    "emd_norm_lo,emd_norm_hi: damage over the window slots each fault touches, see fkhw/damage/meter.py), "
    "OUT/outputs.npz and OUT/summary.json (damage by flip-flop class). "
    "Killed half way and started again with the same arguments, it resumes.")


def add_arguments(p):
    p.add_argument("--model", default="econt-bol", help=model_help(" (default: econt-bol)"))
    p.add_argument("--level", default="software", choices=list(LEVELS),
                   help="where faults run (netlist: the Yosys gate-level netlist of the RTL, same testbench)")
    p.add_argument("--inputs", type=POSITIVE, default=32, help="number of modules (non-zero charge) to run (default 32)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the module choice and of random orders")
    p.add_argument("--data", default=None,
                   help="HGCAL CSV with CALQ_0..CALQ_47 (default: the vendored sample), or an array file (.npy, .npz, "
                        ".h5) of inputs in the model's input shape (real values: the model's input quantizer applies)")
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
    kinds = p.add_mutually_exclusive_group()
    kinds.add_argument("--faults", default="seu", metavar="KIND",
                       help="seu (default: each parameter bit once, at cycle 0), mbu:K (K adjacent bits of one "
                            "parameter word), pipeline (every pipeline data and valid flip-flop at every cycle of "
                            "the window), accumulate:K (K weight upsets present together, --samples draws)")
    kinds.add_argument("--faults-file", type=in_path, default=None, metavar="F",
                       help="an explicit list of faults: CSV (fault,upsets=FF@CYCLE;FF@CYCLE,scrub) or JSON; "
                            "flip-flop ids as `fkhw sites --all-flip-flops` lists them")
    p.add_argument("--cycle", type=NON_NEGATIVE, default=None, metavar="N",
                   help="upset at cycle N of the frame only (pipeline: instead of every window cycle; mbu, accumulate)")
    p.add_argument("--samples", type=POSITIVE, default=None, metavar="N",
                   help="accumulate:K draws (seeded by --seed; default 2000)")
    p.add_argument("--tmr", type=in_path, default=None, metavar="DIR",
                   help="upset the selectively hardened design of this `fkhw tmr` folder (its tmr_map.json) instead "
                        "of the plain one: replicas are flip-flops too (software and rtl levels)")
    p.add_argument("--refresh", action="store_true",
                   help="with --tmr: the self-correcting variant (replicas reload the voted value every clock)")
    p.add_argument("--protection", type=protection, default=None, metavar=PROTECTION_METAVAR,
                   help="upset the design whose register files are kept as code words: SEC-DED (Hsiao code, a "
                        "decoder per word that corrects one upset) or parity (one bit per word, an odd number of "
                        "upsets flagged, none corrected). secded or parity: a word per register; secded:N, "
                        "parity:N: N-bit words packed across a file's registers; secded:Ni, parity:Ni: N-bit words "
                        "bit-interleaved (adjacent bits in different words). "
                        "Check bits are flip-flops too (--faults checkbits upsets each alone; software and rtl "
                        "levels)")
    add_metric_arguments(p)
    p.add_argument("--no-plot", action="store_true", help="skip the figure")


def run(args) -> int:
    import dataclasses

    from fkhw.campaign.run import DEFAULT_THRESHOLDS, CampaignError, CampaignSpec, check_fault_options, \
        hardening_from_map, run_campaign
    from fkhw.campaign.executors import probe_scheduler, scheduler_address
    from fkhw.model.bundle import load_model
    from fkhw.outpaths import check_out_dir
    from fkhw.host.resources import local_jobs
    from fkhw.faults.sites import SiteSpace, read_site_list
    from fkhw.faults.space import Hardening

    check_out_dir(args.out, inputs=model_inputs(args.model) + input_paths("--data", args.data)
                  + input_paths("--sites", args.sites) + order_inputs(args.order)
                  + input_paths("--faults-file", args.faults_file) + input_paths("--labels", args.labels)
                  + input_paths("--tmr", args.tmr, ("tmr_map.json",)))
    if args.scheduler is not None:
        args.scheduler = scheduler_address(args.scheduler)
        probe_scheduler(args.scheduler)  # a port that is not Dask is named now, not after the setup
    else:
        args.jobs = local_jobs(args.jobs)  # workers of this machine: no more than its cores and memory hold
    if args.refresh and args.tmr is None:
        raise CampaignError("--refresh is a variant of the hardened design: give --tmr DIR")
    if args.protection is not None and args.tmr is not None:
        raise CampaignError(f"--protection {args.protection} and --tmr DIR name two designs: give one")
    bundle = load_model(args.model)
    space = SiteSpace.of(bundle.ir)
    hardening = None if args.tmr is None else hardening_from_map(args.tmr, bundle, args.refresh)
    if args.protection is not None:
        hardening = Hardening.code_words(args.protection)
    spec = CampaignSpec(
        model=args.model, level=args.level, n_inputs=args.inputs, seed=args.seed, data=args.data,
        order=args.order, sites=() if args.sites else None, stop_after=args.stop_after, stop_sensitive=args.stop_sensitive,
        sensitive_threshold=args.sensitive_threshold, thresholds=tuple(DEFAULT_THRESHOLDS) + tuple(args.threshold),
        jobs=args.jobs, chunk=args.chunk, scheduler=args.scheduler, baseline=args.baseline,
        confidence=args.confidence, faults=args.faults,
        faults_file=None if args.faults_file is None else str(args.faults_file), cycle=args.cycle,
        samples=args.samples, hardening=hardening, metric=args.metric,
        labels=None if args.labels is None else str(args.labels))
    check_fault_options(spec)  # options that do not go with the faults, before the site list is read
    if args.sites:
        spec = dataclasses.replace(spec, sites=tuple(read_site_list(args.sites, space).tolist()))
    result = run_campaign(spec, bundle, args.out, fresh=args.fresh)
    if not spec.seu:
        print_fault_summary(result.summary, args.out)
        if not args.no_plot:
            from fkhw.analysis.figures import damage_figure

            print(f"  figure       -> {damage_figure(args.out)}")
        return 0
    print_summary(result.summary, args.out)
    if not args.no_plot:
        from fkhw.analysis.figures import campaign_figure1

        png = campaign_figure1(space, bundle.name, args.out, args.level, args.inputs)
        print(f"  figure 1     -> {png}")
    return 0


def _fault_free(s: dict) -> str:
    """What the fault-free outputs scored, in the campaign's metric."""
    m = s.get("metric")
    if not isinstance(m, dict):
        return f"fault-free mean EMD {s['baseline_emd']:.4f}"
    if m["name"] == "accuracy":
        return f"metric accuracy, fault-free top-1 accuracy {s['fault_free_accuracy']:.4f}"
    return f"metric {m['name']}, fault-free mean damage {s['baseline_damage']:.4g}"


def print_summary(s: dict, out) -> None:
    from fkhw.campaign.files import damage_column

    col = damage_column(s)
    print(f"{s['model']} [{s['level']}]: {s['n_sites']} sites x {s['inputs']} inputs, {_fault_free(s)}")
    if not s["complete"]:
        print(f"  note: {s['n_sites']} of the model's {s['n_sites_model']} sites ran (--sites, --order, --stop-*): "
              "the fractions below are of those sites")
    if s.get("baseline") == "data":
        print(f"  emd_norm relative to the fault-free mean over the whole data file: {s['emd_norm_denominator']:.4f}")
    print("  threshold  sensitive bits   fraction   TMR overhead")
    for row in s["thresholds"].values():
        print(f"  {col} > {row['threshold']:<5g} {row['sensitive_bits']:8d}      {100 * row['fraction']:6.2f}%   "
              f"{row['tmr_overhead_pct']:6.2f}%")
    print(f"  results      -> {out}/campaign.csv, outputs.npz, summary.json")


def print_fault_summary(s: dict, out) -> None:
    f = s["faults"]
    from fkhw.campaign.files import damage_column

    print(f"{s['model']} [{s['level']}]: {s['n_faults']} faults ({f['kind']}) x {s['inputs']} inputs, {_fault_free(s)}")
    if not s["complete"]:
        print(f"  note: {s['n_faults']} of the kind's {f['n_kind']} faults ran (--stop-after)")
    ts = list(next(iter(s["classes"].values()))["degraded"])
    print(f"  {'class':<16} {'faults':>7} {'mean ' + damage_column(s):>24} {'lost':>6} {'extra':>6}  "
          + "  ".join(f"degraded>{t:<5}" for t in ts))
    for name, c in s["classes"].items():
        lo, hi = c["mean_emd_norm_interval"]
        print(f"  {name:<16} {c['faults']:7d} {c['mean_emd_norm']:9.4f} [{lo:.4f}, {hi:.4f}] "
              f"{c['with_lost_outputs']:6d} {c['with_extra_outputs']:6d}  "
              + "  ".join(f"{100 * c['degraded'][t]['fraction']:13.2f}%" for t in ts))
    print(f"  results      -> {out}/faults.csv, campaign.csv, outputs.npz, summary.json")
