"""fkhw sim: the whole flow on one model (what `make sim` runs): options in, fkhw.review does the rest."""

import textwrap

from fkhw.commands.options import (EMD_NORM, POSITIVE, SEED, add_metric_arguments, auto_or_positive, input_paths,
                                  model_help, model_inputs, out_path)
from fkhw.review.options import STEP_NAMES
from fkhw.review.report import TABLE_WIDTH

HELP = "the whole flow: hls4ml project, RTL (lint), functional test, RTL + software campaigns, agreement, TMR"
DESCRIPTION = (
    "model -> hls4ml C++ (C-sim checked against the integer engine) -> RTL (lint) -> fault-free Verilator run "
    "on every vendored row (with --gate-level: the same for the Yosys netlist) -> exhaustive SEU campaign on the "
    "RTL (cocotb + Verilator) -> the same campaign on the software engine -> software-vs-RTL agreement -> the "
    "module count at which the TMR map is stable on held-out modules (--tmr-inputs auto) -> selective-TMR map, "
    "annotations, hardened RTL, area and proof (with --gate-level: also on the hardened netlist) -> every fault "
    "kind on the plain and hardened designs -> failure rates. A step reruns only when its inputs or the files it "
    "reads changed (--force STEP reruns it). Every artifact lands under --out, with report.html (the whole review "
    "on one page), report.md and results.xml (JUnit: one test case per check). Exit status: 0 every check passes, "
    "1 a check failed (the table at the end and results.xml say which), 2 bad input, 130/143 interrupted.")


def add_arguments(p):
    p.add_argument("--model", default="econt-bol", help=model_help(" (default: econt-bol)"))
    p.add_argument("--out", type=out_path, default=None, help="output folder (default: out/<model>)")
    p.add_argument("--inputs", type=POSITIVE, default=32,
                   help="modules of the RTL campaign and of the software campaign it is compared with (default 32)")
    p.add_argument("--tmr-inputs", type=auto_or_positive, default="auto", metavar="auto|N",
                   help="modules of the software campaign the TMR map is chosen from: auto (default) doubles them "
                        "from 32 until the map is stable on the held-out modules, or N")
    p.add_argument("--tmr-rule", default="upper", choices=["mean", "upper"],
                   help="protect a bit when its emd_norm (mean) or the upper end of its interval (upper, default) "
                        "exceeds the threshold")
    p.add_argument("--max-inputs", type=POSITIVE, default=4096, metavar="N", help="cap of --tmr-inputs auto (default 4096)")
    p.add_argument("--validate-inputs", type=POSITIVE, default=1024, metavar="N",
                   help="held-out modules the map is checked on (default 1024)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the module choice")
    p.add_argument("--data", default=None, help="HGCAL CSV (default: the vendored sample)")
    p.add_argument("--jobs", type=POSITIVE, default=None, help="simulator workers (default: all cores)")
    p.add_argument("--tmr-threshold", type=EMD_NORM, default=1.05, metavar="T",
                   help="protect bits with emd_norm > T (default 1.05; see README on the choice)")
    p.add_argument("--no-synth", action="store_true", help="skip Yosys synthesis (area table)")
    p.add_argument("--no-rates", action="store_true", help="skip the failure-rate step (fkhw rate)")
    p.add_argument("--no-protect", action="store_true",
                   help="skip the protection choice (fkhw protect: TMR, SEC-DED and parity designs, their failure "
                        "probability and synthesised area; it needs the rates and the synthesis)")
    p.add_argument("--check-rtl", type=POSITIVE, default=500, metavar="N",
                   help="accumulated-upset scenarios of the rate Monte Carlo replayed on each of the plain and "
                        "hardened RTL designs (default 500 each)")
    p.add_argument("--check-full-tmr", action="store_true",
                   help="--check-rtl also replays on the full-TMR RTL, with and without refresh (off by default: "
                        "its cold Verilator builds take minutes, beyond make sim's budget)")
    p.add_argument("--fresh", action="store_true",
                   help="replace campaigns in --out that ran with other arguments although no earlier fkhw sim "
                        "recorded them (the ones it recorded are replaced when their inputs change; others are "
                        "refused by default)")
    p.add_argument("--gate-level", action="store_true",
                   help="also synthesise the plain and hardened netlists and run them on Verilator: fault-free "
                        "on every row, and the TMR proof after synthesis (small models: seconds; econt-bol: the "
                        "netlist's Verilator build takes many minutes, see README)")
    p.add_argument("--force", action="append", default=[], metavar="STEP", choices=STEP_NAMES + ("all",),
                   help="rerun STEP even when it is up to date (repeatable; all: every step). A step otherwise "
                        f"reruns only when its inputs changed. Steps: {', '.join(STEP_NAMES)}")
    add_metric_arguments(p)  # none of --data/--labels/--metric given: the model directory's example.json, if any


def run(args) -> int:
    from fkhw.review.flow import prepare, run_sim
    from fkhw.review.options import SimOptions
    from fkhw.tmr.report import stability_hint

    inputs = model_inputs(args.model) + input_paths("--data", args.data) + input_paths("--labels", args.labels)
    opts = prepare(SimOptions(
        model=args.model, out=args.out, inputs=args.inputs, tmr_inputs=args.tmr_inputs, tmr_rule=args.tmr_rule,
        tmr_threshold=args.tmr_threshold, max_inputs=args.max_inputs, validate_inputs=args.validate_inputs,
        seed=args.seed, data=args.data, labels=args.labels, metric=args.metric, jobs=args.jobs,
        synth=not args.no_synth, rates=not args.no_rates, protect=not args.no_protect, check_rtl=args.check_rtl,
        check_full_tmr=args.check_full_tmr, gate_level=args.gate_level, fresh=args.fresh,
        force=tuple(args.force)), inputs)
    review = run_sim(opts, say=lambda line: print(line, flush=True))
    print()
    for line in review.table():
        print(line)
    e = review.summary["tmr"]["evidence"]
    # everything after the step table fits a terminal 100 columns wide, as the table does
    lines = [f"TMR map evidence: chosen on {e['modules']} modules ({e['reason']}); on {e['heldout_modules']} "
             f"held-out modules it covers {100 * e['coverage']:.2f}% of the sensitive bits"]
    lines += stability_hint(review.tmr_report, "--tmr-inputs", "--tmr-threshold", "--tmr-rule")
    for line in lines:
        indent = line[:len(line) - len(line.lstrip())] + "  "
        print("\n".join(textwrap.wrap(line, width=TABLE_WIDTH, subsequent_indent=indent,
                                      break_on_hyphens=False, break_long_words=False)))
    return 0 if review.passed else 1
