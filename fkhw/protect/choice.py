"""The protection a design review picks: of the candidate designs, the one
with the fewest transistors whose output stays below a failure-probability
target at the scrub interval.

Candidates: the plain encoder, full TMR of every weight bit (with and
without refresh), the selective map's design when a TMR map is given (with
and without refresh), and the register files kept as code words
(``secded``, ``secded:N``, ``parity:N``; parity corrects nothing, so its
P(degraded) is the plain design's, and the table adds P(undetected)). For
each, the rate model (fkhw.rates: the campaign's one-bit answers, a Monte Carlo of accumulated upsets or of wrong
words) gives P(degraded output) at the scrub interval, its upper bound
used, and the area table's synthesis (fkhw.tmr.area: Yosys + ABC, the
datapath once, each design's register files) its flip-flops and
transistors. The choice is the cheapest design that meets the target; none
that does is an error naming the best one.

    result = run_protect(campaign, out, env, scrub_s=3600, target=1e-3,
                         options=ProtectOptions(protections=("secded:8", "secded:32")))
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.errors import InputError
from fkhw.faults.codes import CODES
from fkhw.outpaths import atomic_open, make_dir, save_figure, write_text
from fkhw.rates.flow import RateOptions, run_rate
from fkhw.rates.model import Environment

__all__ = ["ProtectError", "ProtectOptions", "prove_choice", "run_protect", "PROTECT_JSON", "PROTECT_CSV", "PROTECT_PNG"]

PROTECT_JSON, PROTECT_CSV, PROTECT_PNG = "protect.json", "protect.csv", "protect.png"
# a word per register, words of 8 to 64 bits packed across the registers, and bytes bit-interleaved (the spelling
# that also corrects an upset of two adjacent cells); and byte parity, the ECON-T's detect-only kind; fkhw
# protect's help names these (a test holds it)
DEFAULT_PROTECTIONS = ("secded", "secded:8", "secded:8i", "secded:16", "secded:32", "secded:64", "parity:8")
COLUMNS = ["design", "kind", "p_degraded", "p_upper", "p_undetected_upper", "meets_target", "longest_scrub_interval_s",
           "flip_flops",
           "transistors", "transistor_overhead_pct", "ff_overhead_pct", "chosen"]


class ProtectError(InputError):
    """A choice fkhw cannot make: options it cannot use, a target no candidate meets."""


@dataclass(frozen=True)
class ProtectOptions:
    """What ``fkhw protect`` considers and how it estimates."""

    protections: tuple = DEFAULT_PROTECTIONS  # the code-word designs
    threshold: float | None = None  # degraded: damage above it (the rate model's default when None)
    k_max: int = 6
    samples: int = 500
    seed: int = 0
    prove: bool = False  # prove the chosen design by injection on its RTL (prove_choice)
    jobs: int = 1  # simulator processes of the proof


def _designs(ir, names: list, tmr_sites) -> dict:
    """name -> RtlDesign of each candidate the rate model evaluated (the
    rate model's names: plain, full, selective, each TMR one "+ refresh",
    and the SEC-DED spellings)."""
    from fkhw.faults.space import Hardening
    from fkhw.levels import protected_design
    from fkhw.rtlgen.emit import generate

    out = {}
    for name in names:
        base, _, refresh = name.partition(" + ")
        if base == "plain":
            out[name] = generate(ir)
        elif base in ("full", "selective"):
            sites = range(ir.n_param_bits()) if base == "full" else tmr_sites
            out[name] = protected_design(ir, Hardening(tuple(int(s) for s in sites), bool(refresh)))
        else:
            out[name] = protected_design(ir, Hardening.code_words(base))
    return out


def _kind(name: str) -> str:
    """The kind of a candidate by the rate model's name: plain, tmr (full, selective, + refresh) or a code."""
    if name == "plain":
        return "plain"
    code = name.partition(":")[0]
    return code if code in CODES else "tmr"


def _undetected(name: str, entry: dict) -> float | None:
    """P(a degraded output while no flag is up) at the scrub interval, upper
    bound, where the rate model estimates it: the plain design (it has no
    flag: every degraded output) and parity words; None for the others."""
    if name == "plain":
        return entry["at_scrub_interval"][0]["p_upper"]
    if "undetected" in entry:
        return entry["undetected"]["at_scrub_interval"][0]["p_upper"]
    return None


def run_protect(campaign: Path, out: Path, env: Environment, scrub_s: float, target: float,
                options: ProtectOptions | None = None, *, tmr: Path | None = None, transients: Path | None = None,
                model: str | None = None, log=print) -> dict:
    """The candidates' failure probabilities and areas, and the choice
    (``protect.json``, ``protect.csv``, ``protect.png``; the rate model's own
    ``rate/`` and the synthesis under ``synth/`` in ``out``). ``options``:
    ProtectOptions() when None."""
    options = ProtectOptions() if options is None else options
    from fkhw.campaign.files import read_summary
    from fkhw.campaign.run import campaign_model
    from fkhw.faults.tmrmap import read_map
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.tmr.area import design_dir, synth_hierarchical

    t0 = time.monotonic()
    if not 0 < target < 1:
        raise ProtectError(f"--target must be between 0 and 1 (exclusive), got {target}")
    if not (math.isfinite(scrub_s) and scrub_s > 0):
        raise ProtectError(f"--scrub must be a positive time, got {scrub_s}")
    out = Path(out)
    bundle = campaign_model(read_summary(campaign), model)
    tmr_sites = None
    if tmr is not None:
        tmr_sites = read_map(tmr, bundle.files.digest(), bundle.name, FlipFlopSpace.of(bundle.ir)).sites
    rate = run_rate(campaign, out / "rate", env, [scrub_s], target,
                    RateOptions(threshold=options.threshold, k_max=options.k_max, samples=options.samples,
                                seed=options.seed, protections=tuple(options.protections)),
                    tmr=tmr, transients=transients, model=model, log=log)
    names = list(rate["designs"])
    designs = _designs(bundle.ir, names, tmr_sites)
    rows, base = [], None
    for k, name in enumerate(names):
        log(f"protect: area of {name} ({k + 1}/{len(names)}; Yosys results are cached)")
        res = synth_hierarchical(designs[name], designs["plain"], out / "synth" / design_dir(name).replace(":", "_"),
                                 log=log)
        base = base or res
        at = rate["designs"][name]["at_scrub_interval"][0]
        rows.append({
            "design": name, "kind": _kind(name), "p_degraded": at["p_degraded"], "p_upper": at["p_upper"],
            "p_undetected_upper": _undetected(name, rate["designs"][name]),
            "meets_target": bool(at["p_upper"] <= target),
            "longest_scrub_interval_s": rate["designs"][name]["longest_scrub_interval_s"],
            "flip_flops": res["flip_flops"], "transistors": res["transistors"],
            "transistor_overhead_pct": 100.0 * (res["transistors"] - base["transistors"]) / base["transistors"],
            "ff_overhead_pct": 100.0 * (res["flip_flops"] - base["flip_flops"]) / base["flip_flops"],
            "chosen": False})
    feasible = [r for r in rows if r["meets_target"]]
    result = {"model": bundle.name, "campaign": str(campaign), "tmr": str(tmr) if tmr else None,
              "transients": str(transients) if transients else None,
              "environment": rate["environment"], "scrub_interval_s": scrub_s, "target": target,
              "threshold": rate["threshold"], "criterion": "P(degraded output) upper bound at the scrub interval "
              "<= target; of those, the fewest transistors (Yosys' CMOS estimate with flip-flops, fkhw.tmr.area)",
              "designs": rows, "chosen": None, "seconds": None}
    if feasible:
        best = min(feasible, key=lambda r: (r["transistors"], r["p_upper"]))
        best["chosen"] = True
        result["chosen"] = best["design"]
    if options.prove and result["chosen"]:
        from fkhw.campaign.outputs import CampaignOutputs

        result["proof"] = prove_choice(bundle.ir, result["chosen"], designs[result["chosen"]],
                                       CampaignOutputs.load(campaign).inputs, tmr_sites=tmr_sites, jobs=options.jobs,
                                       log=log)
    result["seconds"] = round(time.monotonic() - t0, 1)
    make_dir(out)
    write_text(out / PROTECT_JSON, json.dumps(result, indent=1) + "\n")
    with atomic_open(out / PROTECT_CSV, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    figure(result, out / PROTECT_PNG)
    if not result.get("proof", {}).get("ok", True):
        proof = result["proof"]
        raise ProtectError(f"the chosen design, {proof['design']}, fails its proof on the RTL: "
                           f"{', '.join(proof['broken'])} (see {out / PROTECT_JSON})")
    if not feasible:
        best = min(rows, key=lambda r: r["p_upper"])
        raise ProtectError(f"--target {target:g}: no design meets it at a scrub interval of {scrub_s:g} s; the "
                           f"best, {best['design']}, reaches {best['p_upper']:.3g} (a shorter --scrub, a higher "
                           f"--target; the table is in {out / PROTECT_CSV})")
    return result


def prove_choice(ir, name: str, design, inputs: np.ndarray, *, tmr_sites=None, jobs: int = 1, log=print) -> dict:
    """The design ``name`` (a candidate of run_protect; ``design`` its RTL)
    proved by injection on its RTL (Verilator), as ``fkhw tmr`` proves its
    map: a TMR design's every replica of every protected weight bit, and
    every unprotected bit as the plain design (fkhw.tmr.proof.prove); a
    design of code words' every flip-flop of every word alone and every two
    of one word together, each as its code decodes it
    (fkhw.protect.proof.prove_words). Returns {"design", "level", "ok",
    "faults", "counts", "broken" (each requirement broken, with its count),
    "failures" (the first faults that broke one), "seconds"}; the plain
    design promises nothing and is not run ("ok": None)."""
    from fkhw.levels.rtl import RtlLevel
    from fkhw.protect.proof import prove_words
    from fkhw.tmr.proof import prove

    t0, kind = time.monotonic(), _kind(name)
    if kind == "plain":
        return {"design": name, "level": None, "ok": None, "faults": 0, "counts": {}, "broken": [], "failures": [],
                "seconds": 0.0, "note": "the plain design promises nothing to prove"}
    log(f"protect: proving {name} on its RTL (Verilator, {len(inputs)} inputs)")
    if kind == "tmr":
        base, _, refresh = name.partition(" + ")
        sites = np.arange(ir.n_param_bits()) if base == "full" else np.asarray(tmr_sites, dtype=np.int64)
        report = prove(ir, sites, inputs, jobs=jobs, refresh=bool(refresh))
        counts = {k: v for k, v in report.items()
                  if isinstance(v, int) and not isinstance(v, bool) and k not in ("inputs", "frames", "jobs")}
        # an unprotected bit may change an output (as in the plain design); nothing else may happen
        broken = [f"{k} {v}" for k, v in counts.items() if v and k.endswith(("_changes", "_misses", "_mismatches",
                                                                              "_raised"))
                  and k != "unprotected_output_changes"]
        if not report["fault_free_equals_engine"]:
            broken.append("fault-free outputs differ from the integer engine's")
        return {"design": name, "level": "rtl", "ok": report["ok"], "faults": report["frames"], "counts": counts,
                "broken": broken, "failures": [f"{k}: {v}" for k, v in report["failures"].items() if v],
                "seconds": round(time.monotonic() - t0, 1)}
    proof = prove_words(RtlLevel(ir, jobs=jobs, design=design), inputs)
    counts = {k: v for k, v in proof.to_dict().items() if k not in ("ecc", "failures", "ok")}
    return {"design": name, "level": "rtl", "ok": proof.ok, "faults": proof.singles + proof.pairs, "counts": counts,
            "broken": [f"{k} {v}" for k, v in counts.items() if v and k not in ("words", "singles", "pairs")],
            "failures": list(proof.failures), "seconds": round(time.monotonic() - t0, 1)}


def figure(result: dict, path: Path) -> Path:
    """Transistor overhead against P(degraded) at the scrub interval: the
    candidates, the target, the choice and the Pareto front."""
    from matplotlib.figure import Figure

    rows = result["designs"]
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    colours = {"plain": "tab:gray", "tmr": "tab:blue", "secded": "tab:green", "parity": "tab:orange"}
    p = np.maximum([r["p_upper"] for r in rows], 1e-30)
    cost = np.array([r["transistor_overhead_pct"] for r in rows])
    order = np.lexsort((cost, p))  # by P, then the cheaper first: of equally reliable designs only it is on the front
    front, best = [], math.inf
    for i in order:  # the Pareto front: no other design both more reliable and cheaper
        if cost[i] < best:
            front.append(i)
            best = cost[i]
    ax.plot(p[front], cost[front], color="0.7", linestyle=":", zorder=1, label="Pareto front")
    span = max(float(cost.max() - cost.min()), 1e-9)
    placed = []  # (log10 P, cost) of the labels so far: a label near others goes to their left, then below
    for i, r in enumerate(rows):
        ax.scatter(p[i], cost[i], s=90 if r["chosen"] else 40, color=colours[r["kind"]],
                   edgecolors="black" if r["chosen"] else "none", zorder=3)
        here = (math.log10(p[i]), float(cost[i]))
        near = sum(abs(x - here[0]) < 0.6 and abs(y - here[1]) < 0.05 * span for x, y in placed)
        placed.append(here)
        ax.annotate(r["design"] + ("  (chosen)" if r["chosen"] else ""), (p[i], cost[i]), textcoords="offset points",
                    xytext=(-6 if near % 2 else 6, 4 - 10 * (near // 2)), ha="right" if near % 2 else "left",
                    fontsize=8)
    ax.axvline(result["target"], color="tab:red", linestyle="--", label=f"target {result['target']:g}")
    for kind, c in colours.items():
        ax.scatter([], [], color=c, label=kind)
    ax.set_xscale("log")
    ax.set_xlabel(f"P(degraded output) at a scrub interval of {result['scrub_interval_s']:g} s (upper bound)")
    ax.set_ylabel("transistor overhead over the plain encoder (%)")
    ax.set_title(f"{result['model']}: protection choices ({len(rows)} designs; chosen: {result['chosen'] or 'none'})",
                 fontsize=10)
    ax.legend(fontsize=8, loc="lower left")  # the front runs from the top left to the bottom right
    return save_figure(fig, path)
