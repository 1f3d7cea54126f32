"""fkhw tmr: the selective-TMR map, annotations, hardened RTL, area and proof."""

from fkhw.commands.options import (EMD_NORM, POSITIVE, SEED, add_metric_arguments, auto_or_positive, campaign_inputs,
                                  in_path, input_paths, model_help, model_inputs, out_path)

NOT_STABLE = 1  # exit status: every file written, but the map failed its held-out check
HELP = "select the weight bits to triplicate from a campaign; write the TMR map, annotations, hardened RTL, area, proof"
DESCRIPTION = (
    "Reads a campaign (fkhw campaign --out DIR) and protects either every bit with emd_norm > T "
    "(--threshold, default 1.0: the seed's rule) or the N / P% most damaging bits (--budget). Writes "
    "tmr_map.json/.csv (site, layer, tensor, index, bit, reg, reg_bit, emd_norm, emd_norm_lo, emd_norm_hi; the "
    "rule's figure per bit, emd_norm or with --rule upper emd_norm_hi, is the one each row exceeds T in), "
    "TMRG-annotated RTL, synthesis constraints and a Yosys check of the hardened RTL (annotations/), the hardened "
    "encoder (hardened_rtl/, with regmap.csv and a tmr_err output), figures (tradeoff.png drawn from tradeoff.json: "
    "the bits protected at each threshold, the one count the map, the report and the summary show), the Yosys area "
    "table of plain / selective / full TMR, and the proof by fault injection on the hardened RTL (Verilator). The "
    "map is checked on modules the campaign did not use (--validate-inputs other modules of the same data, or "
    "--validate-data FILE): coverage and the worst unprotected held-out emd_norm are printed and in "
    "tmr_report.json. --inputs auto runs the software campaigns itself, doubling the modules from 32 until the map "
    "is stable (coverage >= 99%, worst <= T + 0.01) or a cap. "
    f"Exit status: 0 = done (and the map stable on the held-out modules, unless --no-validate); {NOT_STABLE} = every "
    "file written, but the map is NOT stable on the held-out modules (a hint says what to do: more modules, a higher "
    "threshold, and which bits); 2 = bad input, nothing done; 130 = interrupted.")


def add_arguments(p):
    p.add_argument("--campaign", type=in_path, default=None,
                   help="campaign folder (campaign.csv, summary.json, outputs.npz); not with --inputs")
    p.add_argument("--out", type=out_path, required=True, help="output folder")
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--threshold", type=EMD_NORM, default=None, metavar="T",
                      help="protect every bit with emd_norm > T (default 1.0)")
    rule.add_argument("--budget", default=None, metavar="N|P%",
                      help="protect the N (or P%% of all) bits with the highest emd_norm")
    p.add_argument("--rule", default="mean", choices=["mean", "upper"],
                   help="which figure per bit the rule reads: mean = emd_norm (default), upper = the upper end of its "
                        "confidence interval (conservative: protect when the interval reaches above T)")
    p.add_argument("--inputs", type=auto_or_positive, default=None, metavar="auto|N",
                   help="run the software campaign here instead of --campaign: N modules, or auto = 32, 64, ... "
                        "until the map is stable on the held-out modules (or --max-inputs / the data runs out)")
    p.add_argument("--max-inputs", type=POSITIVE, default=4096, metavar="N", help="cap of --inputs auto (default 4096)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the module choice with --inputs (default 0)")
    p.add_argument("--data", default=None,
                   help="HGCAL CSV for --inputs (default: the vendored sample), or an array file with --metric")
    add_metric_arguments(p, "--inputs campaigns' damage")
    p.add_argument("--validate-inputs", type=POSITIVE, default=1024, metavar="N",
                   help="held-out modules the map is checked on (default 1024)")
    p.add_argument("--validate-data", default=None, metavar="PATH",
                   help="take the held-out modules from this CSV (another sample) instead of the campaign's data")
    p.add_argument("--no-validate", action="store_true", help="skip the held-out check")
    p.add_argument("--model", default=None,
                   help=model_help(" (default: the one the campaign names; econt-bol with --inputs)"))
    p.add_argument("--no-synth", action="store_true", help="skip the Yosys area table")
    p.add_argument("--no-prove", action="store_true", help="skip the fault-injection proof on the hardened RTL")
    p.add_argument("--jobs", type=POSITIVE, default=None, help="simulator processes for the proof (default: all cores)")
    p.add_argument("--protect-control", action="store_true",
                   help="also triplicate every pipeline stage's valid flag (the map lists them as class control): a "
                        "valid upset loses or adds an output every time, the most damage per flip-flop, for 2 more "
                        "flip-flops a stage; the proof upsets each of their replicas at every window cycle")
    p.add_argument("--pipeline-campaign", type=in_path, default=None, metavar="DIR",
                   help="a `fkhw campaign --faults pipeline` folder of the plain design: also triplicate the pipeline "
                        "data bits whose upsets exceed the threshold in more than --pipeline-threshold of the cycles "
                        "(a data upset corrupts the one vector it hits: opt in when single vectors matter)")
    p.add_argument("--pipeline-threshold", type=float, default=0.5, metavar="F",
                   help="with --pipeline-campaign: the fraction of a data bit's upsets that must degrade (default 0.5)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the proof and the hardened campaign on an existing Dask cluster (tcp://HOST:PORT; "
                        "default: this machine, --jobs simulator processes)")
    p.add_argument("--gate-level", action="store_true",
                   help="also run the proof on the Yosys netlist of the hardened RTL (replicas counted after synthesis)")


def run(args) -> int:
    from fkhw.campaign.run import campaign_model
    from fkhw.campaign.files import read_outputs
    from fkhw.errors import UserError
    from fkhw.model.bundle import load_model
    from fkhw.outpaths import check_out_dir
    from fkhw.host.resources import local_jobs
    from fkhw.tmr.flow import TmrOptions, run_tmr
    from fkhw.tmr.report import report_lines, stability_hint
    from fkhw.tmr.select import CampaignTable, parse_rule, select
    from fkhw.tmr.stable import HeldOut, find_stable, validate_campaign

    if (args.campaign is None) == (args.inputs is None):
        raise UserError("give either --campaign DIR or --inputs auto|N")
    if not 0 <= args.pipeline_threshold < 1:
        raise UserError(f"--pipeline-threshold {args.pipeline_threshold:g}: give a fraction of upsets in [0, 1)")
    if args.pipeline_campaign is not None:  # a campaign of another kind is named before any work
        from fkhw.campaign.files import kind_of, read_summary

        found = kind_of(read_summary(args.pipeline_campaign, "--pipeline-campaign"))
        if found != "pipeline":
            raise UserError(f"--pipeline-campaign {args.pipeline_campaign}: a {found} campaign; give one run with "
                            "--faults pipeline")
    if args.scheduler is not None:
        from fkhw.campaign.executors import probe_scheduler, scheduler_address

        args.scheduler = scheduler_address(args.scheduler)
        probe_scheduler(args.scheduler)  # a port that is not Dask is named now, not after the synthesis
    args.jobs = local_jobs(args.jobs)  # the proof's simulator processes run here, whatever --scheduler says
    counts = None if args.inputs in (None, "auto") else args.inputs
    held = HeldOut(args.validate_inputs, args.validate_data)
    rule = parse_rule(args.threshold, args.budget, args.rule)
    held.check()
    table = None
    if args.campaign is not None:  # damaged files are named before the model loads
        table = CampaignTable.load(args.campaign)
        if not args.no_prove:
            read_outputs(args.campaign, table.summary)  # the proof compares with the campaign's own outputs
    check_out_dir(args.out, inputs=campaign_inputs("--campaign", args.campaign)
                  + campaign_inputs("--pipeline-campaign", args.pipeline_campaign) + model_inputs(args.model)
                  + input_paths("--data", args.data) + input_paths("--validate-data", args.validate_data)
                  + input_paths("--labels", args.labels))
    # campaign_model checks the model digest: a campaign of another model is refused here
    bundle = campaign_model(table.summary, args.model) if table is not None else load_model(args.model or "econt-bol")
    evidence = {}
    campaign = args.campaign
    if table is not None:  # a rule the campaign cannot satisfy is refused before any work
        select(table, rule, bundle.ir.n_param_bits())
    if args.inputs is not None:
        metric = {} if args.metric == "emd" and args.labels is None else \
            {"metric": args.metric, "labels": None if args.labels is None else str(args.labels)}
        auto = find_stable(bundle, rule, args.out, args.seed, args.data, held,
                           max_inputs=counts or args.max_inputs, start=counts or 32, metric=metric)
        campaign = auto.campaign
        evidence = {"auto": auto.to_dict(), "validation": auto.validation.to_dict()}
    elif not args.no_validate:
        evidence = {"validation": validate_campaign(bundle, campaign, rule, held, args.out / "heldout").to_dict()}
    options = TmrOptions(synth=not args.no_synth, prove=not args.no_prove, jobs=args.jobs,
                         gate_level=args.gate_level, scheduler=args.scheduler, protect_control=args.protect_control,
                         pipeline_campaign=args.pipeline_campaign, pipeline_threshold=args.pipeline_threshold)
    report = run_tmr(campaign, args.out, rule, bundle, options, evidence=evidence)
    print("\n".join(report_lines(report, args.out)))
    hint = stability_hint(report)
    for line in hint:
        print(line)
    return NOT_STABLE if hint else 0
