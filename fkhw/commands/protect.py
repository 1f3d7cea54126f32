"""fkhw protect: the cheapest protection of the weight registers (TMR, SEC-DED words) that keeps the failure
probability below a target at a scrub interval."""

from fkhw.commands.options import (PROTECTION_METAVAR, EMD_NORM, SEED, campaign_inputs, distinct_protections, finite_above, fraction_open,
                                  in_path, input_paths, int_at_least, model_help, model_inputs, out_path, protection)

HELP = ("choose the protection (plain, full or selective TMR, SEC-DED or parity words) with the fewest transistors whose "
        "P(degraded output) at the scrub interval stays below a target")
DESCRIPTION = HELP + (
    ". From an exhaustive seu campaign (the one-bit answers and the inputs): the rate model (fkhw rate) of every "
    "candidate at --scrub, and the area (Yosys + ABC, the area table's method) of each; the candidates are the plain "
    "encoder, full TMR with and without refresh, the --tmr map's design with and without refresh, and the register "
    "files as code words (--protection, repeatable; default secded, secded:8, secded:8i, secded:16, secded:32, "
    "secded:64, parity:8). Parity corrects nothing: its P(degraded) is the plain design's, and p_undetected_upper is "
    "P(a degraded output while no flag is up). "
    "Writes OUT/protect.json, protect.csv (design, kind, p_degraded, p_upper, p_undetected_upper, meets_target, "
    "longest_scrub_interval_s, flip_flops, transistors, transistor_overhead_pct, ff_overhead_pct, chosen), "
    "protect.png (overhead against failure probability: the Pareto front, the target, the choice), rate/ and "
    "synth/. Exit status 2 with one line when no candidate meets the target (the table is still written).")


def add_arguments(p):
    from fkhw.rates.model import DEFAULT_CLOCK_HZ, DEFAULT_FLUX, DEFAULT_SIGMA

    p.add_argument("--campaign", type=in_path, required=True, help="an exhaustive seu campaign folder")
    p.add_argument("--tmr", type=in_path, default=None,
                   help="a `fkhw tmr` folder (tmr_map.json): its selective design is a candidate too")
    p.add_argument("--transients", type=in_path, default=None, metavar="DIR",
                   help="a pipeline campaign of the plain design (fkhw campaign --faults pipeline): its upsets count "
                        "in every design's P(degraded), as in fkhw rate (default: weight upsets only)")
    p.add_argument("--scrub", required=True, metavar="T",
                   help="the scrub (configuration rewrite) interval, e.g. 10min, 1h (units ms, s, min, h, d)")
    p.add_argument("--target", type=fraction_open, required=True,
                   help="the probability of a degraded output to stay below at the scrub interval")
    p.add_argument("--protection", type=protection, action="append", default=None, metavar=PROTECTION_METAVAR,
                   help="a design of code words to consider (repeatable; default: secded, secded:8, secded:8i, "
                        "secded:16, secded:32, secded:64, parity:8)")
    p.add_argument("--flux", type=finite_above(0.0), default=DEFAULT_FLUX, help="particles cm^-2 s^-1")
    p.add_argument("--sigma", type=finite_above(0.0), default=DEFAULT_SIGMA,
                   help="SEU cross-section per flip-flop, cm^2 (an assumption: use your technology's)")
    p.add_argument("--clock", type=finite_above(0.0), default=DEFAULT_CLOCK_HZ, help="vectors per second")
    p.add_argument("--threshold", type=EMD_NORM, default=None, help="degraded = emd_norm above this (default 1.05)")
    p.add_argument("--k-max", type=int_at_least(1, 64), default=6, help="accumulated upsets evaluated per design")
    p.add_argument("--samples", type=int_at_least(10, 10**6), default=500,
                   help="Monte Carlo scenarios per composition (default 500)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--prove", action="store_true",
                   help="prove the chosen design by injection on its RTL (Verilator): every replica of every "
                        "protected bit of a TMR design, every flip-flop of every code word alone and every two of "
                        "one word together (protect.json proof; exit status 2 when it fails)")
    p.add_argument("--jobs", type=int_at_least(1, 256), default=1, help="simulator processes of --prove (default 1)")
    p.add_argument("--model", default=None, help=model_help(" (default: the one the campaign ran on)"))
    p.add_argument("--out", type=out_path, required=True, help="output folder")


def run(args) -> int:
    from fkhw.errors import InputError
    from fkhw.outpaths import check_out_dir
    from fkhw.protect.choice import ProtectOptions, run_protect
    from fkhw.rates.model import Environment, parse_duration

    protections = distinct_protections(args.protection) if args.protection else ProtectOptions().protections
    try:
        scrub = parse_duration(args.scrub)
    except InputError as e:
        raise InputError(f"--scrub {args.scrub}: {e}") from None
    check_out_dir(args.out, inputs=campaign_inputs("--campaign", args.campaign)
                  + input_paths("--tmr", args.tmr, ("tmr_map.json",)) + campaign_inputs("--transients", args.transients)
                  + model_inputs(args.model))
    print(f"note: sigma = {args.sigma:g} cm^2 per flip-flop is an assumption: the cross-section must come from your "
          "technology and beam tests")
    options = ProtectOptions(protections=protections, threshold=args.threshold, k_max=args.k_max,
                             samples=args.samples, seed=args.seed, prove=args.prove, jobs=args.jobs)
    result = run_protect(args.campaign, args.out, Environment(args.flux, args.sigma, args.clock), scrub, args.target,
                         options, tmr=args.tmr, transients=args.transients, model=args.model)
    print(f"{'design':<22} {'P(degraded)':>12} {'meets':>6} {'flip-flops':>11} {'transistors':>12} {'overhead':>9}")
    for r in result["designs"]:
        print(f"{r['design']:<22} {r['p_upper']:>12.3g} {'yes' if r['meets_target'] else 'no':>6} "
              f"{r['flip_flops']:>11,} {r['transistors']:>12,} {r['transistor_overhead_pct']:>8.1f}%"
              + ("  <- chosen" if r["chosen"] else ""))
    proof = result.get("proof")
    if proof and proof["ok"] is not None:
        print(f"proof of {proof['design']} on its RTL: {proof['faults']:,} faults, every requirement held "
              f"({proof['seconds']:g} s)")
    elif proof:
        print(f"proof: {proof['note']}")
    print(f"protect -> {args.out / 'protect.json'}, protect.csv, protect.png")
    return 0
