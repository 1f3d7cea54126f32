"""The TMR step's report as text: what `fkhw tmr` prints and what `fkhw sim`'s
review shows (the map, the bits per threshold, the held-out evidence, the
area table, the proofs) and what to do about a map that is NOT stable."""

from __future__ import annotations


def report_lines(r: dict, out) -> list:
    """The TMR report as the terminal shows it: the map, its thresholds, its evidence, area and proofs."""
    lines = []
    col = r.get("damage_column", "emd_norm")  # the metric's normalised damage
    lines.append(f"{r['model']}: {r['rule']['text']}")
    lines.append(f"  protected bits: {r['protected_bits']} of {r['all_bits']}  -> weight flip-flop overhead "
                 f"{r['overhead_pct']:.2f}% (2 x {r['protected_bits']} / {r['all_bits']} parameter flip-flops; full TMR: 200%)")
    lines += threshold_lines(r)
    if r["campaign_sites"] < r["all_bits"]:
        lines.append(f"  note: the campaign covered only {r['campaign_sites']} of the {r['all_bits']} sites; bits it did "
                     "not inject are unprotected whatever their damage")
    lines.append(f"  worst unprotected single-upset {col} (campaign, {r.get('campaign_modules', '?')} modules): "
                 f"{r['worst_unprotected_emd_norm_software']:.4f}")
    lines += evidence_lines(r)
    for row in r.get("area", []):
        lines.append(f"  area {row['design']:<19} flip-flops {row['flip_flops']:>8}  cells {row['cells']:>9}  "
                     f"transistors {row.get('transistors', 0):>10}  FF overhead (of all flip-flops) "
                     f"{row.get('ff_overhead_pct', 0):7.2f}%  "
                     f"cell overhead {row.get('cell_overhead_pct', 0):6.2f}%  "
                     f"transistor overhead {row.get('transistor_overhead_pct', 0):6.2f}%")
    if r.get("area_not_counted"):
        lines.append(f"  area: {r['area_not_counted']['text']}")
    if "proof" in r:
        p = r["proof"]
        lines.append(f"  proof ({p.get('seconds', '?')} s): {p['replica_upsets']} single-replica upsets on "
                     f"{p['protected_sites']} protected bits -> {p['protected_output_changes']} output changes, "
                     f"{p['protected_tmr_err_misses']} tmr_err misses; {p['unprotected_sites']} unprotected bits -> "
                     f"{p['unprotected_mismatches']} mismatches vs the plain design; {'OK' if p['ok'] else 'FAILED'}")
        if p.get("pipeline_and_valid_replica_upsets"):
            lines.append(f"  proof, triplicated pipeline/valid flip-flops: {p['pipeline_and_valid_replica_upsets']} replica "
                         f"upsets on {p['protected_pipeline_and_valid_flip_flops']} flip-flops -> "
                         f"{p['pipeline_and_valid_output_changes']} output changes, "
                         f"{p['pipeline_and_valid_tmr_err_misses']} tmr_err misses")
        if "refresh_variant" in p:
            q = p["refresh_variant"]
            lines.append(f"  proof, self-correcting variant ({q.get('seconds', '?')} s): "
                         f"{q['replica_upsets'] + q['pipeline_and_valid_replica_upsets']} replica upsets -> "
                         f"{q['protected_output_changes'] + q['pipeline_and_valid_output_changes']} output changes, "
                         f"{q['protected_tmr_err_misses'] + q['pipeline_and_valid_tmr_err_misses']} sticky tmr_err misses "
                         f"(cleared by a configuration write after each); {'OK' if q['ok'] else 'FAILED'}")
        if "proof_netlist" in r:
            q = r["proof_netlist"]
            nl = q.get("netlist", {})
            lines.append(f"  proof on the whole netlist ({q.get('seconds', '?')} s): {nl.get('replica_flip_flops_found')} of "
                         f"{nl.get('replica_flip_flops_expected')} replica flip-flops in the netlist; {q['replica_upsets']} "
                         f"single-replica upsets -> {q['protected_output_changes']} output changes, "
                         f"{q['protected_tmr_err_misses']} tmr_err misses; {q['unprotected_mismatches']} unprotected "
                         f"mismatches; {'OK' if q['ok'] else 'FAILED'}")
        for c in (r.get("certificate") or {}).get("designs", []):
            lines.append(f"  formal certificate, {c['design']} register-file netlist ({c['seconds']} s): "
                         + (f"PROVEN for all register contents and port inputs ({c['protected_flip_flops']} replica "
                            "flip-flops, any one upset)" if c["proven"] else
                            f"NOT proven: {c['counterexample']['line']}"))
        h = r["hardened_campaign"]
        lines.append(f"  hardened RTL campaign: worst {col} {h['worst_emd_norm_hardened']:.4f}"
                     + (f" <= threshold {h['threshold']:g}" if h.get("within_threshold") else "")
                     + (f" (on {h['modules']} of the campaign's {h['campaign_modules']} modules)"
                        if h.get("modules", 0) < h.get("campaign_modules", 0) else ""))
    lines.append(f"  -> {out}/ (tmr_map.json, tmr_map.csv, annotations/, hardened_rtl/, figures, area, proof)")
    return lines


def threshold_lines(r: dict) -> list:
    """The bits the map's rule protects at each threshold (fkhw.tmr.select.threshold_table: the same count the
    map, tradeoff.png/.json and fkhw sim's summary show)."""
    rows = r.get("protected_bits_by_threshold")
    if not rows:
        return []
    lines = []
    col = r.get("damage_column", "emd_norm")
    what = col if r["rule"].get("evidence", "mean") == "mean" else f"upper end of the {col} interval"
    chosen = r["rule"]["value"] if r["rule"]["kind"] == "threshold" else None
    lines.append(f"  bits protected at each threshold ({what}, the campaign's {r.get('campaign_modules', '?')} modules):")
    for row in rows:
        mark = "  <- this map" if chosen is not None and row["threshold"] == chosen else ""
        lines.append(f"    > {row['threshold']:<6g} {row['protected_bits']:8d} bits  weight flip-flop overhead "
                     f"{row['overhead_pct']:6.2f}%{mark}")
    return lines


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


def evidence_lines(r: dict) -> list:
    """What the map rests on: the --inputs auto search and the held-out check."""
    col = r.get("damage_column", "emd_norm")
    lines = []
    auto = r.get("auto")
    if auto:
        for st in auto["steps"]:
            lines.append(f"  --inputs auto: {st['inputs']:5d} modules -> {st['protected_bits']:5d} bits "
                         f"({st['overhead_pct']:.2f}%), held-out coverage {100 * st['coverage']:6.2f}%, worst unprotected "
                         f"{st['worst_unprotected_heldout_emd_norm']:.4f}{'  stable' if st['stable'] else ''}")
        lines.append(f"  --inputs auto: {auto['reason']}")
    v = r.get("validation")
    if v:
        lines.append(f"  held-out ({v['modules']} modules of {v['data']}): coverage {100 * v['coverage']:.2f}% "
                     f"({v['protected_sensitive_bits']} of {v['sensitive_bits']} bits with {col} > {v['threshold']:g}), "
                     f"worst unprotected {col} {v['worst_unprotected_emd_norm']:.4f}, "
                     f"{'stable' if v['stable'] else 'NOT stable'} ({v['stable_means']})")
        for m in v["missed"][:5]:
            own = (f", campaign {m['campaign_emd_norm']:.4f} [{m['campaign_emd_norm_lo']:.4f}, "
                   f"{m['campaign_emd_norm_hi']:.4f}]" if "campaign_emd_norm" in m else "")
            lines.append(f"    unprotected: site {m['site']} ({m['layer']} {m['tensor']}[{m['index']}] bit {m['bit']}) "
                         f"held-out {m['heldout_emd_norm']:.4f}{own}")
        if v["n_missed"] > 5:
            lines.append(f"    ... {v['n_missed'] - 5} more in tmr_report.json")
    return lines
