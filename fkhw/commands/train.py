"""fkhw train: build the ECON-T autoencoder from scratch and train it."""

import sys
from pathlib import Path

from fkhw.commands.options import input_paths, out_path

HELP = "train the ECON-T autoencoder architecture from scratch (configurable bit widths)"
DESCRIPTION = (
    "Build the reference ECON-T QKeras autoencoder (QConv2D 3x3 stride 2 -> QDense latent, float decoder) "
    "with the given bit widths, train it on HGCAL trigger-cell data (MSE between the normalised 8x8 "
    "input image and the decoder output; not Ecoder's telescope loss) and save it in the Keras 2 / QKeras "
    "layout (encoder_<tag>.json/.hdf5 + decoder pair + train.json) that --model DIR accepts. "
    "Widths are QKeras (bits, integer) pairs: quantized_bits keeps a sign bit besides `integer`, "
    "quantized_relu has none. Deterministic for a given --seed on one machine."
)

# option -> (TrainConfig field, type, help); defaults come from TrainConfig
_OPTIONS = [
    ("--weight-bits", "weight_bits", int, "kernel bits, quantized_bits (default: 5)"),
    ("--weight-int", "weight_int", int, "kernel integer bits, sign excluded (default: 1)"),
    ("--bias-bits", "bias_bits", int, "bias bits (default: --weight-bits)"),
    ("--bias-int", "bias_int", int, "bias integer bits (default: --weight-int)"),
    ("--input-bits", "input_bits", int, "input quantizer bits (default: 10)"),
    ("--input-int", "input_int", int, "input quantizer integer bits (default: 3)"),
    ("--conv-act-bits", "conv_act_bits", int, "conv activation quantized_relu bits (default: 11)"),
    ("--conv-act-int", "conv_act_int", int, "conv activation integer bits (default: 3)"),
    ("--latent-bits", "latent_bits", int, "latent quantized_relu bits (default: 9)"),
    ("--latent-int", "latent_int", int, "latent integer bits (default: 1)"),
    ("--filters", "filters", int, "conv filters (default: 8)"),
    ("--latent", "latent", int, "latent size (default: 16)"),
    ("--epochs", "epochs", int, "training epochs (default: 30)"),
    ("--batch-size", "batch_size", int, "batch size (default: 64)"),
    ("--learning-rate", "learning_rate", float, "Adam learning rate (default: 0.003)"),
    ("--seed", "seed", int, "random seed: initial weights and batch order (default: 0)"),
    ("--max-rows", "max_rows", int, "use only the first N data rows (default: all)"),
    ("--tag", "tag", str, "file tag: encoder_<tag>.json (default: derived from the widths)"),
]
FLAG_OF = {field: flag for flag, field, _, _ in _OPTIONS}


def add_arguments(p):
    p.add_argument("--out", type=out_path, required=True, help="directory to write the model into (created if needed)")
    p.add_argument("--data", type=Path, default=None,
                   help="HGCAL CSV with CALQ_0..CALQ_47 (default: the vendored ttbar_0PU_5k.csv)")
    for flag, field, typ, help_ in _OPTIONS:
        p.add_argument(flag, dest=field, type=typ, default=None, metavar="N" if typ is int else None, help=help_)
    p.add_argument("--force", action="store_true", help="replace model files already in --out")


def config_from_args(args):
    """A TrainConfig from parsed options; bad values raise UserError naming the flag."""
    from fkhw.errors import UserError
    from fkhw.model.train import TrainConfig, TrainConfigError

    given = {field: getattr(args, field) for _, field, _, _ in _OPTIONS if getattr(args, field, None) is not None}
    try:
        return TrainConfig(**given)
    except TrainConfigError as e:
        raise UserError(f"{FLAG_OF.get(e.option, e.option)} {e.value}: {e.requirement}") from None


def run(args) -> int:
    from fkhw.errors import UserError
    from fkhw.model.data import DEFAULT_DATA, load_charges
    from fkhw.model.train import check_out_dir, train

    from fkhw.outpaths import check_out_dir as check_out_path

    cfg = config_from_args(args)
    check_out_path(args.out, inputs=input_paths("--data", args.data))
    data = args.data or DEFAULT_DATA
    charges = load_charges(data)
    try:
        out = check_out_dir(args.out, overwrite=args.force)
    except FileExistsError as e:
        raise UserError(f"--out {e}" + (" or pass --force" if "already holds" in str(e) else "")) from None
    except PermissionError as e:
        raise UserError(f"--out {e}") from None
    rows = charges.shape[0] if cfg.max_rows is None else min(cfg.max_rows, charges.shape[0])
    print(f"training {cfg.model_tag} on {rows} rows of {data} ({cfg.epochs} epochs, batch {cfg.batch_size}, "
          f"seed {cfg.seed}); loss = MSE of the normalised 8x8 image", flush=True)

    def progress(r):
        print(f"epoch {r.epoch:>{len(str(r.epochs))}}/{r.epochs}  loss {r.loss:.6f}  ({r.seconds:.1f} s)", flush=True)

    result = train(cfg, charges, out, progress=progress, data_file=data, overwrite=args.force)
    if result.engine_mismatches:
        print(f"warning: the integer engine differs from QKeras on {result.engine_mismatches} latent codes of the "
              "training rows (formats too wide for QKeras' float32 arithmetic?)", file=sys.stderr)
    else:
        print(f"integer engine == QKeras on all {result.rows} training rows")
    print(f"loss {result.initial_loss:.6f} -> {result.final_loss:.6f} in {result.seconds:.1f} s; "
          f"model written to {out}/ ({', '.join(p.name for p in result.files)}, train.json)")
    return 0
