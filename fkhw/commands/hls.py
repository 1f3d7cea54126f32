"""fkhw hls: write and compile the hls4ml project of an encoder."""

from pathlib import Path

from fkhw.commands.options import NON_NEGATIVE, SEED, in_path, input_paths, model_help, model_inputs, out_path

HELP = "convert the encoder with hls4ml into a synthesizable HLS project and compile its C-simulation"
DESCRIPTION = HELP + (
    ". The project (io_parallel, Vitis or Vivado backend) builds as is with the vendor tools "
    "(vitis_hls -f build_prj.tcl); fkhw adds fkhw_project.json and a fault-injection build of the "
    "C-simulation in fkhw_faults/ for the 'hls' level. Models hls4ml would not reproduce bit-exactly "
    "are refused before anything is written.")


def add_arguments(p):
    from fkhw.hls.project import BACKENDS

    p.add_argument("--model", default="econt-bol", help=model_help(" (default: econt-bol)"))
    p.add_argument("--out", type=out_path, default=None, help="project directory (default: hls_projects/<model>)")
    p.add_argument("--backend", default="Vitis", choices=BACKENDS, help="hls4ml backend (default: Vitis)")
    p.add_argument("--check", action="store_true",
                   help="run the C-simulation on every row of --data and count mismatches against the integer engine")
    p.add_argument("--faults", type=NON_NEGATIVE, default=0, metavar="N",
                   help="with --check: also run N random single-bit faults through the C-sim (default: 0)")
    p.add_argument("--seed", type=SEED, default=0, help="seed for --faults (default: 0)")
    p.add_argument("--data", type=in_path, default=None, help="trigger-cell CSV for --check (default: the vendored sample)")


def run(args) -> int:
    from fkhw.errors import UserError
    from fkhw.hls.project import HlsProjectError, generate
    from fkhw.model.data import load_charges
    from fkhw.model.bundle import load_model
    from fkhw.outpaths import check_out_dir

    if args.faults and not args.check:
        raise UserError("--faults needs --check")
    inputs = model_inputs(args.model) + input_paths("--data", args.data)
    if args.out is not None:
        check_out_dir(args.out, inputs=inputs)
    if args.check:
        load_charges(args.data)  # a bad --data is refused before the project is written
    bundle = load_model(args.model)
    out = args.out if args.out is not None else Path("hls_projects") / bundle.name
    check_out_dir(out, "--out" if args.out is not None else "the default project folder", inputs)
    try:
        project, hls_model = generate(bundle, out, args.backend)
        print(f"hls4ml project of {bundle.name} ({args.backend}, io_parallel) -> {project.directory}")
        if args.check:
            return _check(bundle, project, hls_model, args)
    except HlsProjectError as e:
        raise UserError(str(e)) from None
    return 0


def _check(bundle, project, hls_model, args) -> int:
    import time

    import numpy as np

    from fkhw.model import engine
    from fkhw.model.data import encoder_input_codes, load_charges
    from fkhw.hls.project import csim_predict, mismatched_rows
    from fkhw.levels.hls import HlsLevel
    from fkhw.faults.sites import SiteSpace, flip

    ir = bundle.ir
    x = encoder_input_codes(load_charges(args.data), ir.input.fmt)
    want = engine.forward(ir, x)
    print(f"checking on {x.shape[0]} rows ...", flush=True)
    bad = {"hls4ml C-sim": mismatched_rows(csim_predict(hls_model, ir, x), want)}
    with HlsLevel(ir, project) as level:
        bad["fault C-sim, no fault"] = mismatched_rows(level.golden(x), want)
        if args.faults:
            space = SiteSpace.of(ir)
            n = min(args.faults, space.n_sites)
            sites = np.sort(np.random.default_rng(args.seed).choice(space.n_sites, n, replace=False))
            print(f"running {n} faults through the C-sim ...", flush=True)
            t = time.perf_counter()
            got = level.run(sites, x)
            dt = time.perf_counter() - t
            bad[f"{n} faults"] = sum(mismatched_rows(got[i], engine.forward(flip(ir, space, s), x))
                                     for i, s in enumerate(sites.tolist()))
            print(f"  {n / dt:.2f} faults/s on {x.shape[0]} rows")
    for what, count in bad.items():
        print(f"  {what}: {count} mismatched rows vs the integer engine")
    total = sum(bad.values())
    print("bit-exact" if total == 0 else f"NOT bit-exact: {total} mismatched rows")
    return 0 if total == 0 else 1
