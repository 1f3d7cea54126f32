"""fkhw tmr: the selective-TMR map, annotations, hardened RTL, area and proof."""

import json
from pathlib import Path

HELP = "select the weight bits to triplicate from a campaign; write the TMR map, annotations, hardened RTL, area, proof"
DESCRIPTION = (
    "Reads a campaign (fkhw campaign --out DIR) and protects either every bit with emd_norm > T "
    "(--threshold, default 1.0: the seed's rule) or the N / P%% most damaging bits (--budget). Writes "
    "tmr_map.json/.csv (site, layer, tensor, index, bit, reg, reg_bit, emd_norm), TMRG-annotated RTL and a "
    "synthesis attribute file (annotations/), the hardened encoder (hardened_rtl/, with regmap.csv and a "
    "tmr_err output), figures, the Yosys area table of plain / selective / full TMR, and the proof by fault "
    "injection on the hardened RTL (Verilator).")


def add_arguments(p):
    p.add_argument("--campaign", type=Path, required=True, help="campaign folder (campaign.csv, summary.json, outputs.npz)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--threshold", type=float, default=None, metavar="T",
                      help="protect every bit with emd_norm > T (default 1.0)")
    rule.add_argument("--budget", default=None, metavar="N|P%",
                      help="protect the N (or P%% of all) bits with the highest emd_norm")
    p.add_argument("--model", default=None, help="model (default: the one the campaign names)")
    p.add_argument("--no-synth", action="store_true", help="skip the Yosys area table")
    p.add_argument("--no-prove", action="store_true", help="skip the fault-injection proof on the hardened RTL")
    p.add_argument("--jobs", type=int, default=None, help="simulator processes for the proof (default: all cores)")
    p.add_argument("--gate-level", action="store_true",
                   help="also run the proof on the Yosys netlist of the hardened RTL (replicas counted after synthesis)")


def run(args) -> int:
    from fkhw.cli import UserError
    from fkhw.model.bundle import load_model
    from fkhw.tmr.flow import run_tmr
    from fkhw.tmr.select import TmrError, parse_rule

    summary = args.campaign / "summary.json"
    if not summary.is_file():
        raise UserError(f"--campaign {args.campaign}: not a campaign folder (no summary.json)")
    try:
        rule = parse_rule(args.threshold, args.budget)
        bundle = load_model(args.model or json.loads(summary.read_text())["model"])
        report = run_tmr(args.campaign, args.out, rule, bundle, synth=not args.no_synth, prove=not args.no_prove,
                         jobs=args.jobs, gate_level=args.gate_level)
    except TmrError as e:
        raise UserError(str(e)) from None
    print_report(report, args.out)
    return 0


def print_report(r: dict, out) -> None:
    print(f"{r['model']}: {r['rule']['text']}")
    print(f"  protected bits: {r['protected_bits']} of {r['all_bits']}  "
          f"-> weight flip-flop overhead {r['overhead_pct']:.2f}% (full TMR: 200%)")
    print(f"  worst unprotected single-upset emd_norm (campaign): {r['worst_unprotected_emd_norm_software']:.4f}")
    for row in r.get("area", []):
        print(f"  area {row['design']:<9} flip-flops {row['flip_flops']:>8}  cells {row['cells']:>9}  "
              f"transistors {row.get('transistors', 0):>10}  FF overhead {row.get('ff_overhead_pct', 0):7.2f}%  "
              f"cell overhead {row.get('cell_overhead_pct', 0):6.2f}%  "
              f"transistor overhead {row.get('transistor_overhead_pct', 0):6.2f}%")
    if "proof" in r:
        p = r["proof"]
        print(f"  proof ({p.get('seconds', '?')} s): {p['replica_upsets']} single-replica upsets on "
              f"{p['protected_sites']} protected bits -> {p['protected_output_changes']} output changes, "
              f"{p['protected_tmr_err_misses']} tmr_err misses; {p['unprotected_sites']} unprotected bits -> "
              f"{p['unprotected_mismatches']} mismatches vs the plain design; {'OK' if p['ok'] else 'FAILED'}")
        if "proof_netlist" in r:
            q = r["proof_netlist"]
            nl = q.get("netlist", {})
            print(f"  netlist proof ({q.get('seconds', '?')} s): {nl.get('replica_flip_flops_found')} of "
                  f"{nl.get('replica_flip_flops_expected')} replica flip-flops in the netlist; {q['replica_upsets']} "
                  f"single-replica upsets -> {q['protected_output_changes']} output changes, "
                  f"{q['protected_tmr_err_misses']} tmr_err misses; {q['unprotected_mismatches']} unprotected "
                  f"mismatches; {'OK' if q['ok'] else 'FAILED'}")
        h = r["hardened_campaign"]
        print(f"  hardened RTL campaign: worst emd_norm {h['worst_emd_norm_hardened']:.4f}"
              + (f" <= threshold {h['threshold']:g}" if h["threshold"] is not None else ""))
    print(f"  -> {out}/ (tmr_map.json, tmr_map.csv, annotations/, hardened_rtl/, figures, area, proof)")

