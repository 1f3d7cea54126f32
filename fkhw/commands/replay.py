"""fkhw replay: run one campaign row again, check it against the row, and show it (waveform, picture)."""

from fkhw.commands.options import NON_NEGATIVE, campaign_inputs, in_path, model_help, out_path

HELP = "rerun one campaign row (a site or fault): its numbers again, a waveform of the upset, a picture of the module"
DESCRIPTION = (HELP + ". The fault runs on the campaign's modules and design at the campaign's level (or --level); "
               "every module's output is compared with what the campaign recorded and the damage with the row's. "
               "At the rtl level --waves FILE.vcd writes the run as a waveform for GTKWave or Surfer, with the "
               "testbench's markers (run_cycle, wave_upset, out_slot, out_differs). Writes replay.json and "
               "replay.png into --out. Exit status 1 if the replay differs from the row.")


def add_arguments(p):
    from fkhw.levels import LEVELS

    p.add_argument("--campaign", type=in_path, required=True, help="a finished campaign folder")
    row = p.add_mutually_exclusive_group(required=True)
    row.add_argument("--site", type=NON_NEGATIVE, help="the row of a seu campaign: a parameter bit (site id)")
    row.add_argument("--fault", type=NON_NEGATIVE, help="the row of a campaign of another fault kind: its fault id")
    p.add_argument("--module", type=NON_NEGATIVE, default=None,
                   help="the module to draw, 0 .. N-1 among the campaign's N modules (default: the one whose damage "
                        "the fault moved most)")
    p.add_argument("--level", choices=list(LEVELS), default=None, help="the level to run it at (default: the campaign's)")
    p.add_argument("--waves", type=out_path, default=None, metavar="FILE",
                   help="write the run's waveform here (.vcd; .fst where Verilator's FST writer builds): the rtl level")
    p.add_argument("--model", default=None,
                   help=model_help(": the campaign's model, when its recorded name or path does not resolve here "
                                   "(checked against the recorded digest)"))
    p.add_argument("--out", type=out_path, required=True, help="folder for replay.json and replay.png")


def run(args) -> int:
    from fkhw.outpaths import check_out_dir
    from fkhw.replays import ReplayRequest, replay_to

    out = check_out_dir(args.out, inputs=campaign_inputs("--campaign", args.campaign))
    request = ReplayRequest(args.campaign, args.site, args.fault, args.module, args.level, args.waves, args.model)
    r = replay_to(request, out, progress=print)
    for u in r.upsets:
        print(f"  upset: {u.line()}")
    print(f"  {r.metric}_norm {r.damage_norm:.6g} (campaign {r.campaign_damage_norm:.6g}); {len(r.changed)} of "
          f"{r.n_modules} modules changed, {len(r.lost)} lost, {r.extra} extra")
    if r.mismatched:
        print(f"  DIFFERS from the campaign: modules {' '.join(map(str, r.mismatched[:20]))}")
    if r.extra != r.campaign_extra:
        print(f"  DIFFERS from the campaign: {r.extra} extra outputs, the campaign recorded {r.campaign_extra}")
    if r.waves is not None:
        print(f"  waveform {args.waves}: {r.waves.line()}; "
              f"{'shows' if r.waves_match else 'does NOT show'} the replayed upset and outputs")
    print(f"  -> {out / 'replay.json'}, {out / 'replay.png'} ({r.seconds:.1f} s)")
    return 0 if r.matches and r.waves_match is not False else 1
