"""fkhw sites: list every parameter bit of the encoder as a fault site."""

from pathlib import Path

from fkhw.commands.options import out_path

HELP = "list every encoder parameter bit as a fault site (site,layer,tensor,index,bit,code)"
DESCRIPTION = HELP + (". Site ids are stable: parameter layers in model order, kernel before bias, "
                      "C-order flat index, bit 0 = MSB (sign bit).")


def add_arguments(p):
    p.add_argument("--model", default="econt-bol", help="econt-bol, econt-eol, or a model directory (default: econt-bol)")
    p.add_argument("--out", type=out_path, default=Path("sites.csv"), help="CSV to write (default: sites.csv)")


def run(args) -> int:
    from fkhw.model.bundle import load_model
    from fkhw.outpaths import check_out_file
    from fkhw.sites import write_sites_csv

    check_out_file(args.out)
    bundle = load_model(args.model)
    n = write_sites_csv(bundle.ir, args.out)
    print(f"{n} sites ({bundle.ir.n_param_bits()} parameter bits) of {bundle.name} -> {args.out}")
    return 0
