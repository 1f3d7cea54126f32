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
    from fkhw.tmr.flow import run_tmr
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
    report = run_tmr(campaign, args.out, rule, bundle, synth=not args.no_synth, prove=not args.no_prove,
                     jobs=args.jobs, evidence=evidence, gate_level=args.gate_level, scheduler=args.scheduler,
                     protect_control=args.protect_control, pipeline_campaign=args.pipeline_campaign,
                     pipeline_threshold=args.pipeline_threshold)
    print_report(report, args.out)
    hint = stability_hint(report)
    for line in hint:
        print(line)
    return NOT_STABLE if hint else 0


def print_report(r: dict, out) -> None:
    col = r.get("damage_column", "emd_norm")  # the metric's normalised damage
    print(f"{r['model']}: {r['rule']['text']}")
    print(f"  protected bits: {r['protected_bits']} of {r['all_bits']}  -> weight flip-flop overhead "
          f"{r['overhead_pct']:.2f}% (2 x {r['protected_bits']} / {r['all_bits']} parameter flip-flops; full TMR: 200%)")
    print_thresholds(r)
    if r["campaign_sites"] < r["all_bits"]:
        print(f"  note: the campaign covered only {r['campaign_sites']} of the {r['all_bits']} sites; bits it did "
              "not inject are unprotected whatever their damage")
    print(f"  worst unprotected single-upset {col} (campaign, {r.get('campaign_modules', '?')} modules): "
          f"{r['worst_unprotected_emd_norm_software']:.4f}")
    print_evidence(r)
    for row in r.get("area", []):
        print(f"  area {row['design']:<19} flip-flops {row['flip_flops']:>8}  cells {row['cells']:>9}  "
              f"transistors {row.get('transistors', 0):>10}  FF overhead (of all flip-flops) "
              f"{row.get('ff_overhead_pct', 0):7.2f}%  "
              f"cell overhead {row.get('cell_overhead_pct', 0):6.2f}%  "
              f"transistor overhead {row.get('transistor_overhead_pct', 0):6.2f}%")
    if r.get("area_not_counted"):
        print(f"  area: {r['area_not_counted']['text']}")
    if "proof" in r:
        p = r["proof"]
        print(f"  proof ({p.get('seconds', '?')} s): {p['replica_upsets']} single-replica upsets on "
              f"{p['protected_sites']} protected bits -> {p['protected_output_changes']} output changes, "
              f"{p['protected_tmr_err_misses']} tmr_err misses; {p['unprotected_sites']} unprotected bits -> "
              f"{p['unprotected_mismatches']} mismatches vs the plain design; {'OK' if p['ok'] else 'FAILED'}")
        if p.get("pipeline_and_valid_replica_upsets"):
            print(f"  proof, triplicated pipeline/valid flip-flops: {p['pipeline_and_valid_replica_upsets']} replica "
                  f"upsets on {p['protected_pipeline_and_valid_flip_flops']} flip-flops -> "
                  f"{p['pipeline_and_valid_output_changes']} output changes, "
                  f"{p['pipeline_and_valid_tmr_err_misses']} tmr_err misses")
        if "refresh_variant" in p:
            q = p["refresh_variant"]
            print(f"  proof, self-correcting variant ({q.get('seconds', '?')} s): "
                  f"{q['replica_upsets'] + q['pipeline_and_valid_replica_upsets']} replica upsets -> "
                  f"{q['protected_output_changes'] + q['pipeline_and_valid_output_changes']} output changes, "
                  f"{q['protected_tmr_err_misses'] + q['pipeline_and_valid_tmr_err_misses']} sticky tmr_err misses "
                  f"(cleared by a configuration write after each); {'OK' if q['ok'] else 'FAILED'}")
        for key, what in (("proof_regfiles_netlist", "register files' netlist (datapath RTL)"),
                          ("proof_netlist", "whole netlist")):
            if key not in r:
                continue
            q = r[key]
            nl = q.get("netlist", {})
            print(f"  proof on the {what} ({q.get('seconds', '?')} s): {nl.get('replica_flip_flops_found')} of "
                  f"{nl.get('replica_flip_flops_expected')} replica flip-flops in the netlist; {q['replica_upsets']} "
                  f"single-replica upsets -> {q['protected_output_changes']} output changes, "
                  f"{q['protected_tmr_err_misses']} tmr_err misses; {q['unprotected_mismatches']} unprotected "
                  f"mismatches; {'OK' if q['ok'] else 'FAILED'}")
        h = r["hardened_campaign"]
        print(f"  hardened RTL campaign: worst {col} {h['worst_emd_norm_hardened']:.4f}"
              + (f" <= threshold {h['threshold']:g}" if h.get("within_threshold") else "")
              + (f" (on {h['modules']} of the campaign's {h['campaign_modules']} modules)"
                 if h.get("modules", 0) < h.get("campaign_modules", 0) else ""))
    print(f"  -> {out}/ (tmr_map.json, tmr_map.csv, annotations/, hardened_rtl/, figures, area, proof)")



def print_thresholds(r: dict) -> None:
    """The bits the map's rule protects at each threshold (fkhw.tmr.select.threshold_table: the same count the
    map, tradeoff.png/.json and fkhw sim's summary show)."""
    rows = r.get("protected_bits_by_threshold")
    if not rows:
        return
    col = r.get("damage_column", "emd_norm")
    what = col if r["rule"].get("evidence", "mean") == "mean" else f"upper end of the {col} interval"
    chosen = r["rule"]["value"] if r["rule"]["kind"] == "threshold" else None
    print(f"  bits protected at each threshold ({what}, the campaign's {r.get('campaign_modules', '?')} modules):")
    for row in rows:
        mark = "  <- this map" if chosen is not None and row["threshold"] == chosen else ""
        print(f"    > {row['threshold']:<6g} {row['protected_bits']:8d} bits  weight flip-flop overhead "
              f"{row['overhead_pct']:6.2f}%{mark}")


def stability_hint(r: dict, inputs: str = "--inputs", threshold: str = "--threshold", rule: str = "--rule") -> list:
    """What to do about a map that is NOT stable on the held-out modules
    (lines to print; empty when it is stable or was not checked).
    ``inputs``, ``threshold``, ``rule``: the command's names of those options."""
    v = r.get("validation")
    if not v or v["stable"]:
        return []
    col = r.get("damage_column", "emd_norm")
    t = v["threshold"]
    frac = r["protected_bits"] / r["all_bits"]
    auto = r.get("auto")
    lines = [f"hint: the map is NOT stable: {v['n_missed']} bits it leaves unprotected exceed {col} {t:g} on the "
             f"{v['modules']} held-out modules (the first {min(5, v['n_missed'])} are listed above, every one in "
             "tmr_report.json under validation.missed). Either:"]
    if auto:
        lines.append(f"  - choose the map on more modules: {inputs} auto stopped at {auto['inputs']} ({auto['reason']}); "
                     "raise --max-inputs, or give a --data file with more modules")
    else:
        lines.append(f"  - choose the map on more modules: this campaign has {r.get('campaign_modules', '?')}; run "
                     f"`fkhw tmr {inputs} auto` (doubles them until the map is stable) or a campaign with more --inputs")
    higher = [row for row in r.get("protected_bits_by_threshold", []) if row["threshold"] > t]
    steps = ", ".join(f"{row['protected_bits']} at {row['threshold']:g}" for row in higher)
    lines.append(f"  - or raise {threshold}: at {t:g} the map protects {100 * frac:.0f}% of the bits"
                 + (" (a threshold this close to the fault-free damage protects bits whose effect is noise)"
                    if frac > 0.5 else "") + (f"; bits protected at higher thresholds: {steps}" if steps else ""))
    if r["rule"].get("evidence", "mean") == "mean":
        lines.append(f"  - or {rule} upper: protect a bit when its interval reaches above the threshold")
    return lines


def print_evidence(r: dict) -> None:
    """What the map rests on: the --inputs auto search and the held-out check."""
    col = r.get("damage_column", "emd_norm")
    auto = r.get("auto")
    if auto:
        for st in auto["steps"]:
            print(f"  --inputs auto: {st['inputs']:5d} modules -> {st['protected_bits']:5d} bits "
                  f"({st['overhead_pct']:.2f}%), held-out coverage {100 * st['coverage']:6.2f}%, worst unprotected "
                  f"{st['worst_unprotected_heldout_emd_norm']:.4f}{'  stable' if st['stable'] else ''}")
        print(f"  --inputs auto: {auto['reason']}")
    v = r.get("validation")
    if v:
        print(f"  held-out ({v['modules']} modules of {v['data']}): coverage {100 * v['coverage']:.2f}% "
              f"({v['protected_sensitive_bits']} of {v['sensitive_bits']} bits with {col} > {v['threshold']:g}), "
              f"worst unprotected {col} {v['worst_unprotected_emd_norm']:.4f}, "
              f"{'stable' if v['stable'] else 'NOT stable'} ({v['stable_means']})")
        for m in v["missed"][:5]:
            own = (f", campaign {m['campaign_emd_norm']:.4f} [{m['campaign_emd_norm_lo']:.4f}, "
                   f"{m['campaign_emd_norm_hi']:.4f}]" if "campaign_emd_norm" in m else "")
            print(f"    unprotected: site {m['site']} ({m['layer']} {m['tensor']}[{m['index']}] bit {m['bit']}) "
                  f"held-out {m['heldout_emd_norm']:.4f}{own}")
        if v["n_missed"] > 5:
            print(f"    ... {v['n_missed'] - 5} more in tmr_report.json")
