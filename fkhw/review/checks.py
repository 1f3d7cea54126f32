"""The verdicts of a review run: every check the flow makes, with the
figures it rests on, read from the steps' results and the TMR and rate
reports. One list feeds the terminal table, report.html, report.md and
results.xml, so they cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One verdict: ``passed`` and the figures that decide it."""

    name: str  # a short identifier (the JUnit test case)
    title: str  # what is checked, in words
    passed: bool
    figures: str  # the measured numbers, e.g. "5000 of 5000 rows equal"
    artifact: str  # the file under --out that holds the evidence


def _name(design: str) -> str:
    """A design's name ("selective + refresh") as part of a check name ("selective_refresh")."""
    return design.replace(" + ", "_").replace(" ", "_")


def _rows(name, title, result, artifact) -> Check:
    n, bad = result["rows"], result["mismatching_rows"]
    return Check(name, title, bad == 0, f"{n - bad} of {n} rows equal", artifact)


def _proof(name: str, title: str, p: dict, artifact: str) -> Check:
    figures = (f"{p['replica_upsets']} replica upsets: {p['protected_output_changes']} output changes, "
               f"{p['protected_tmr_err_misses']} tmr_err misses; {p['unprotected_mismatches']} unprotected "
               "mismatches")
    return Check(name, title, bool(p["ok"]), figures, artifact)


def checks_of(results: dict, tmr_report: dict | None, rate: dict | None, column: str) -> list:
    """Every check of a run, in flow order (``results``: the steps' results by name)."""
    out = [_rows("hls_equals_engine", "hls4ml C-simulation equals the integer engine", results["hls"],
                 "hls/fkhw_project.json")]
    rtl = results["rtl"]
    out.append(Check("rtl_lint_clean", "the RTL is lint-clean (verilator --lint-only -Wall)", rtl["lint"] == "clean",
                     rtl["lint"], "rtl/lint.log"))
    out.append(_rows("rtl_equals_engine", "the fault-free RTL on Verilator equals the integer engine",
                     results["functional"], "rtl/fkhw_encoder.v"))
    if "gate_level" in results:
        out.append(_rows("netlist_equals_engine", "the Yosys netlist on Verilator equals the integer engine",
                         results["gate_level"], "netlist/"))
    ag = results["agreement"]
    out.append(Check("software_equals_rtl", "the software and RTL campaigns agree bit for bit on every site",
                     ag["disagreeing_sites"] == 0,
                     f"{ag['common_sites'] - ag['disagreeing_sites']} of {ag['common_sites']} sites agree",
                     "campaign_rtl/agreement.json"))
    rp = results.get("replay")
    if rp:
        out.append(Check("replay_worst_site", "the most damaging upset, replayed on a traced RTL build, gives the "
                                              "campaign's outputs and its waveform shows them",
                         bool(rp["matches"] and rp["waves_match"]),
                         f"site {rp['site']}: {rp['changed_modules']} of {rp['modules']} modules changed as recorded; "
                         f"waveform {'shows' if rp['waves_match'] else 'does NOT show'} the upset and every changed "
                         "output", "replay/replay.json"))
    ev = results["tmr"]["evidence"]
    out.append(Check("tmr_map_stable", "the TMR map holds on held-out modules (coverage >= 99%, worst unprotected "
                                       "<= threshold + 0.01)", bool(ev["stable"]),
                     f"{ev['heldout_modules']} held-out modules: coverage {100 * ev['coverage']:.2f}%, worst "
                     f"{column} {ev['worst_unprotected_heldout_emd_norm']:.4f}", "tmr/tmr_report.json"))
    r = tmr_report or {}
    if "proof" in r:
        out.append(_proof("proof_hardened_rtl", "no single-replica upset of a protected bit changes an output of "
                                                "the hardened RTL", r["proof"], "tmr/proof.json"))
        q = r["proof"].get("refresh_variant")
        if q:
            out.append(Check("proof_refresh_variant", "the self-correcting variant: no replica upset changes an "
                                                      "output", bool(q["ok"]),
                             f"{q['replica_upsets'] + q['pipeline_and_valid_replica_upsets']} replica upsets -> "
                             f"{q['protected_output_changes'] + q['pipeline_and_valid_output_changes']} output "
                             "changes", "tmr/proof.json"))
    if "proof_netlist" in r:
        out.append(_proof("proof_netlist", "the proof after synthesis, on the whole hardened netlist",
                          r["proof_netlist"], "tmr/proof_netlist.json"))
    for c in (r.get("certificate") or {}).get("designs", []):
        out.append(Check(f"certificate_{_name(c['design'])}",
                         f"formal: on the {c['design']} register-file netlist no single replica upset changes an "
                         "output, for all register contents and port inputs",
                         bool(c["proven"]),
                         f"{c['protected_flip_flops']} flip-flops, proven in {c['seconds']} s" if c["proven"] else
                         c["counterexample"]["line"], "tmr/certificate.json"))
    h = r.get("hardened_campaign")
    if h and h.get("within_threshold") is not None:
        out.append(Check("hardened_within_threshold", "every single upset of the hardened RTL stays within the "
                                                      "threshold", bool(h["within_threshold"]),
                         f"worst {column} {h['worst_emd_norm_hardened']:.4f}, threshold {h['threshold']:g}",
                         "tmr/tmr_report.json"))
    synth = results["tmr"].get("synthesis")
    if synth:
        out.append(Check("synthesis_flip_flops", "synthesis keeps every flip-flop the RTL declares",
                         bool(synth["flip_flops_match"]),
                         f"{synth['flip_flops']} flip-flops synthesised, {synth['flip_flops_expected']} expected",
                         "rtl/synth_report.json"))
    proof = (results.get("protect") or {}).get("proof")
    if proof and proof["ok"] is not None:
        out.append(Check("protection_choice_proved", f"the chosen protection, {proof['design']}, keeps its promise "
                                                     "for every upset of its flip-flops on its RTL",
                         bool(proof["ok"]), f"{proof['faults']} faults, "
                         + (", ".join(proof["broken"]) if proof["broken"] else "no requirement broken"),
                         "protect/protect.json"))
    for design, c in ((rate or {}).get("rtl_check") or {}).items():
        out.append(Check(f"rate_replay_{_name(design)}",
                         f"the rate model's scenarios replayed on the {design} RTL agree with the fault model",
                         c["disagreeing"] == 0,
                         f"{c['scenarios'] - c['disagreeing']} of {c['scenarios']} scenarios agree "
                         f"({c['changing_outputs']} change an output)", "rate/rate.json"))
    return out
