"""fkhw sites: list every parameter bit of the encoder as a fault site, or
every flip-flop of its RTL (--all-flip-flops)."""

from pathlib import Path

from fkhw.commands.options import PROTECTION_METAVAR, model_help, model_inputs, out_path, protection

HELP = ("list every encoder parameter bit as a fault site (site,layer,tensor,index,bit,code), or with "
        "--all-flip-flops every flip-flop of the RTL (ff,class,register,bit,site,stage)")
DESCRIPTION = HELP + (". Site ids are stable: parameter layers in model order, kernel before bias, "
                      "C-order flat index, bit 0 = MSB (sign bit). Flip-flop ids extend them: the parameter bits "
                      "(ff = site), then the pipeline data registers stage by stage (bit 0 = MSB of an element), "
                      "then the valid flag of each stage (fkhw/faults/space.py); their count is Yosys' flip-flop count of "
                      "the same RTL. A --faults-file names flip-flops by these ids.")


def add_arguments(p):
    p.add_argument("--model", default="econt-bol", help=model_help(" (default: econt-bol)"))
    p.add_argument("--out", type=out_path, default=Path("sites.csv"), help="CSV to write (default: sites.csv)")
    p.add_argument("--all-flip-flops", action="store_true",
                   help="every flip-flop (param, pipeline, control) instead of the parameter bits")
    p.add_argument("--protection", type=protection, default=None, metavar=PROTECTION_METAVAR,
                   help="with --all-flip-flops: of the design whose register files are SEC-DED words (its check "
                        "bits too, class check)")


def run(args) -> int:
    from fkhw.model.bundle import load_model
    from fkhw.outpaths import check_out_file
    from fkhw.faults.sites import write_sites_csv

    from fkhw.errors import InputError
    from fkhw.faults.space import FlipFlopSpace

    check_out_file(args.out, inputs=model_inputs(args.model))
    if args.protection is not None and not args.all_flip_flops:
        raise InputError(f"--protection {args.protection}: a design's flip-flops, with --all-flip-flops")
    bundle = load_model(args.model)
    if args.all_flip_flops:
        return _flip_flops(bundle, FlipFlopSpace.of(bundle.ir, ecc=args.protection or ""), args.out)
    n = write_sites_csv(bundle.ir, args.out)
    print(f"{n} sites ({bundle.ir.n_param_bits()} parameter bits) of {bundle.name} -> {args.out}")
    return 0


def _flip_flops(bundle, space, out: Path) -> int:
    import csv

    from fkhw.outpaths import atomic_open

    table = space.table()
    with atomic_open(out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(list(table))
        w.writerows(zip(*table.values()))
    counts = {k: v for k, v in space.counts().items() if v}
    parts = " + ".join(f"{v:,} {k}" for k, v in counts.items())
    print(f"{space.n_ff:,} flip-flops of {bundle.name} = {parts} -> {out}")
    return 0
