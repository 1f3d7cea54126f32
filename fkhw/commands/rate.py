"""fkhw rate: failure rates of the plain, selectively and fully hardened encoder against flux and scrub interval."""

from fkhw.commands.options import (PROTECTION_METAVAR, EMD_NORM, SEED, campaign_inputs, distinct_protections, finite_above, fraction_open,
                                  in_path, input_paths, int_at_least, model_help, model_inputs, out_path, protection)

HELP = "failure rates: P(degraded output) and mean damage vs time since the scrub, for flux x cross-section"


def _scrubs(text: str) -> list:
    import argparse

    from fkhw.rates.model import RateError, parse_duration

    try:
        return [parse_duration(s) for s in text.split(",")]
    except RateError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(p):
    from fkhw.rates.model import DEFAULT_CLOCK_HZ, DEFAULT_FLUX, DEFAULT_SIGMA
    from fkhw.rates.flow import DEFAULT_SCRUBS

    p.add_argument("--campaign", type=in_path, required=True,
                   help="an exhaustive seu campaign folder (the one-bit answers and the inputs)")
    p.add_argument("--tmr", type=in_path, default=None, help="a `fkhw tmr` folder (tmr_map.json): the selective design")
    p.add_argument("--transients", type=in_path, default=None,
                   help="a `fkhw campaign --faults pipeline` folder: pipeline and control upsets (else not counted)")
    p.add_argument("--flux", type=finite_above(0.0), default=DEFAULT_FLUX,
                   help=f"particles cm^-2 s^-1 (default {DEFAULT_FLUX:g}: hadrons above 20 MeV at the HGCAL front end, "
                        "the ECON-T radiation requirement, CMS HGCAL TDR CERN-LHCC-2017-023)")
    p.add_argument("--sigma", type=finite_above(0.0), default=DEFAULT_SIGMA,
                   help=f"SEU cross-section per flip-flop, cm^2 (default {DEFAULT_SIGMA:g}, an order of magnitude for "
                        "65 nm flip-flops: use your technology's beam-test value)")
    p.add_argument("--clock", type=finite_above(0.0), default=DEFAULT_CLOCK_HZ,
                   help=f"vectors per second (default {DEFAULT_CLOCK_HZ:g}: the LHC bunch crossing)")
    p.add_argument("--scrub", type=_scrubs, default=",".join(DEFAULT_SCRUBS),
                   help=f"scrub intervals to report (default {','.join(DEFAULT_SCRUBS)}; units ms, s, min, h, d)")
    p.add_argument("--target", type=fraction_open, default=1e-3,
                   help="the probability of a degraded output to stay below (default 1e-3): gives the longest "
                        "scrub interval per design")
    p.add_argument("--threshold", type=EMD_NORM, default=None,
                   help="degraded = emd_norm above this (default: the TMR map's threshold, else 1.05)")
    p.add_argument("--k-max", type=int_at_least(1, 64), default=6,
                   help="accumulated upsets evaluated per design (more: counted as degraded in the upper bound)")
    p.add_argument("--samples", type=int_at_least(10, 10**6), default=500,
                   help="Monte Carlo scenarios per composition of accumulated upsets (default 500)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--check-rtl", type=int_at_least(0, 10**6), default=0, metavar="N",
                   help="replay N of the Monte Carlo's scenarios on each design's RTL (plain; hardened, with and "
                        "without refresh) and require the same outputs as the software model (default 0: off)")
    p.add_argument("--check-full-tmr", action="store_true",
                   help="--check-rtl also replays on the full-TMR RTL, with and without refresh (its Verilator "
                        "build is the largest: minutes cold)")
    p.add_argument("--jobs", type=int_at_least(1, 256), default=1, help="simulator processes for --check-rtl")
    p.add_argument("--protection", type=protection, action="append", default=[], metavar=PROTECTION_METAVAR,
                   help="also the design whose register files are code words: SEC-DED (a word is wrong when two "
                        "of its flip-flops are inverted) or parity (degraded as the plain design, every data upset "
                        "passed on until the next rewrite; rate.json adds P(undetected): two upsets in one word, no "
                        "flag up); repeat for several")
    p.add_argument("--model", default=None, help=model_help(" (default: the one the campaign ran on)"))
    p.add_argument("--out", type=out_path, default=None, help="folder for rate.json and rate.png (default: CAMPAIGN/../rate)")


def run(args) -> int:
    from fkhw.outpaths import check_out_dir
    from fkhw.rates.flow import RateOptions, run_rate
    from fkhw.rates.model import Environment
    from fkhw.host.resources import local_jobs

    if args.check_full_tmr and not args.check_rtl:
        from fkhw.errors import UserError

        raise UserError("--check-full-tmr replays scenarios: give --check-rtl N (N > 0) as well")
    protections = distinct_protections(args.protection)
    if args.check_rtl:
        args.jobs = local_jobs(args.jobs)  # simulator processes of the replay
    out = args.out if args.out is not None else args.campaign.parent / "rate"
    check_out_dir(out, "--out" if args.out is not None else "--campaign",
                  inputs=campaign_inputs("--campaign", args.campaign) + input_paths("--tmr", args.tmr, ("tmr_map.json",))
                  + campaign_inputs("--transients", args.transients) + model_inputs(args.model))
    env = Environment(args.flux, args.sigma, args.clock)
    print(f"note: sigma = {args.sigma:g} cm^2 per flip-flop is an assumption: the cross-section must come from your "
          "technology and beam tests")
    options = RateOptions(threshold=args.threshold, k_max=args.k_max, samples=args.samples, seed=args.seed,
                          check_rtl=args.check_rtl, jobs=args.jobs, check_full=args.check_full_tmr,
                          protections=protections)
    run_rate(args.campaign, out, env, args.scrub, args.target, options, tmr=args.tmr, transients=args.transients,
             model=args.model)
    return 0
