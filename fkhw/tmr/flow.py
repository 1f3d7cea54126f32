"""The TMR flow: campaign table -> selection -> map, annotations, hardened
RTL, figures, area and proof. Used by ``fkhw tmr`` and ``fkhw sim``.

Output folder layout:

    tmr_map.json, tmr_map.csv        the map (rule, campaign, entries, totals)
    annotations/                     TMRG-annotated RTL variant + synthesis attributes
    hardened_rtl/                    the selectively triplicated encoder, its regmap.csv
    figure1_tmr.png                  Figure 1 with the protected bits marked
    tradeoff.png                     overhead vs residual worst-case emd_norm
    area.csv / area.json / area.md   plain vs selective vs full TMR (Yosys)
    proof.json                       fault injection on the hardened RTL
    hardened_netlist/                its Yosys netlist (flip-flops named, replicas counted)
    proof_netlist.json               the same fault injection on that netlist
    hardened_campaign/               campaign over the hardened RTL (worst emd_norm)
    heldout/, campaigns/             held-out campaign; with --inputs auto, the campaigns of the search
    tmr_report.json                  everything above in one summary
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from fkhw.model.bundle import ModelBundle
from fkhw.plots import heatmap_figure
from fkhw.progress import Progress
from fkhw.sites import SiteSpace
from fkhw.tmr.figures import save_tradeoff, worst_after
from fkhw.tmr.select import CampaignTable, Rule, TmrError, check_campaign_matches, select
from fkhw.tmr.tmrmap import build_map, write_map

log = logging.getLogger(__name__)
PROOF_MODULES = 32


def _step(msg: str) -> float:
    log.info("tmr: %s", msg)
    return time.monotonic()


def run_tmr(campaign: Path, out: Path, rule: Rule, bundle: ModelBundle, synth: bool = True, prove: bool = True,
            jobs: int | None = None, evidence: dict | None = None,
            gate_level: bool = False) -> dict:
    """``evidence``: the held-out validation (and the --inputs auto search)
    of this map, recorded in the report as given."""
    from fkhw.rtlgen.emit import generate
    from fkhw.tmr.harden import harden, write_tmrg_variant

    table = CampaignTable.load(campaign)
    check_campaign_matches(table, bundle.files.digest(), bundle.name)
    ir = bundle.ir
    n_all = ir.n_param_bits()
    selection = select(table, rule, n_all)
    protect = np.sort(table.site[selection.rows])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"model": bundle.name, "rule": rule.to_dict(), "campaign": str(campaign),
              "protected_bits": selection.n_protected, "all_bits": n_all,
              "campaign_sites": int(table.site.size),
              "overhead_pct": selection.overhead_pct, "campaign_modules": int(table.summary.get("inputs", 0)),
              **(evidence or {}), "artifacts": {}}
    from fkhw.campaign_files import damage_column

    column = damage_column(table.summary)
    if column != "emd_norm":  # the metric's normalised damage (fkhw.metrics): what every figure below is
        report["damage_column"] = column
        report["rule"] = {**report["rule"], "text": rule.describe(column)}
    art = report["artifacts"]

    _step(f"{rule.describe(column)}: {selection.n_protected} of {n_all} bits")
    tmr = build_map(bundle, table, selection, generate(ir).regmap)
    art["map"] = [str(p) for p in write_map(tmr, out)]

    _step("annotations (TMRG) and hardened RTL")
    art["annotations"] = [str(p) for p in write_tmrg_variant(ir, protect, out / "annotations")]
    design = harden(ir, protect)
    design.write(out / "hardened_rtl")
    art["hardened_rtl"] = str(out / "hardened_rtl")

    space = SiteSpace.of(ir)
    by_site = dict(zip(table.site.tolist(), table.emd_norm.tolist()))
    threshold = rule.value if rule.kind == "threshold" else None
    fig = heatmap_figure(space, by_site, f"{bundle.name}: protected bits ({rule.describe(column)})",
                         marked=set(protect.tolist()), threshold=threshold, column=column)
    fig.savefig(out / "figure1_tmr.png", dpi=130)
    save_tradeoff(table, n_all, selection.overhead_pct, rule.describe(column), out / "tradeoff.png")
    art["figures"] = [str(out / "figure1_tmr.png"), str(out / "tradeoff.png")]
    report["worst_unprotected_emd_norm_software"] = worst_after(table, selection.rows)

    if synth:
        from fkhw.tmr.area import area_table, write_area

        t0 = _step("area: Yosys synthesis + ABC of plain, selective and full TMR (the datapath once, cached)")
        rows = area_table(ir, protect, Path("build") / "synth", log=lambda msg: log.info("tmr:   %s", msg))
        art["area"] = [str(p) for p in write_area(rows, out)]
        report["area"] = rows
        report["area_seconds"] = round(time.monotonic() - t0, 1)

    if prove:
        report.update(_prove(bundle, table, protect, out, threshold, jobs, gate_level))
        art["proof"] = str(out / "proof.json")
        if gate_level:
            art["proof_netlist"] = str(out / "proof_netlist.json")
            art["hardened_netlist"] = str(out / "hardened_netlist")
        art["hardened_campaign"] = str(out / "hardened_campaign")

    (out / "tmr_report.json").write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
    return report


def _prove(bundle, table, protect, out: Path, threshold, jobs, gate_level: bool = False) -> dict:
    from fkhw.campaign import CampaignSpec, run_campaign
    from fkhw.tmr.proof import HardenedRtlLevel, prove

    t0 = _step(f"proof: every protected bit upset in each of its 3 replicas, every other bit once ({table.site.size} sites)")
    from fkhw.campaign_files import read_outputs

    summary = table.summary
    outputs = read_outputs(table.path, summary)
    sites = outputs.sites
    # the hardware proof needs no statistics: it runs on the campaign's first
    # PROOF_MODULES modules (a stable map may come from thousands)
    modules = np.arange(min(outputs.n_modules, PROOF_MODULES))
    inputs = outputs.inputs[modules]
    # the plain design's outputs under the same upsets: the campaign's own
    # (bit-identical across levels, as `fkhw agree` shows)
    unprotected = np.isin(sites, protect, invert=True)
    latent = outputs.latent(np.flatnonzero(unprotected), modules)
    frames = protect.size * 3 + int(unprotected.sum())
    state = {"progress": None, "done": 0}

    def advance(n_done: int) -> None:
        # the simulator reports a running total; the clock starts with the
        # simulation, not with the hardened build before it
        if state["progress"] is None:
            state["progress"] = Progress(frames, "tmr proof", unit="upsets")
        if n_done > state["done"]:
            state["progress"].advance(n_done - state["done"])
            state["done"] = n_done

    proof = prove(bundle.ir, protect, inputs, plain_outputs=latent, unprotected=sites[unprotected],
                  jobs=jobs or os.cpu_count() or 1, progress=advance)
    proof["seconds"] = round(time.monotonic() - t0, 1)
    (out / "proof.json").write_text(json.dumps(proof, indent=2, default=_jsonable) + "\n")
    if not proof.get("ok"):
        raise TmrError(f"the hardened RTL failed its proof: see {out / 'proof.json'}")

    proof_nl = _prove_netlist(bundle, protect, out, jobs, inputs, latent, sites[unprotected], advance,
                              state) if gate_level else None

    _step("campaign over the hardened RTL (replica 0 of protected bits)")
    all_modules = modules.size == outputs.n_modules
    from fkhw.campaign import metric_options

    spec = CampaignSpec(bundle.name, level="rtl", n_inputs=summary["inputs"], seed=summary["seed"], data=summary.get("data"),
                        **metric_options(summary),
                        sites=tuple(int(s) for s in table.site),
                        rows=None if all_modules else tuple(int(r) for r in outputs.rows[modules]))
    level = HardenedRtlLevel(bundle.ir, protect, replica=0, jobs=jobs or 1)
    try:
        res = run_campaign(spec, bundle, out / "hardened_campaign", level=level, fresh=True)
    finally:
        close = getattr(level, "close", None)
        if close:
            close()
    worst = float(res.emd_norm.max()) if res.emd_norm.size else 1.0
    # on a subset of the campaign's modules a bit left unprotected may exceed T there: the
    # threshold holds over the modules the map was chosen on (and is checked on held-out ones)
    checked = threshold is not None and all_modules
    verdict = {"worst_emd_norm_hardened": worst, "threshold": threshold, "modules": int(modules.size),
               "campaign_modules": outputs.n_modules,
               "within_threshold": bool(worst <= threshold) if checked else None}
    if checked and worst > threshold:
        raise TmrError(f"hardened design: worst emd_norm {worst:.4f} exceeds the threshold {threshold:g}")
    return {"proof": proof, "hardened_campaign": verdict, **({"proof_netlist": proof_nl} if proof_nl else {})}


def _prove_netlist(bundle, protect, out: Path, jobs, inputs, plain_outputs, unprotected, advance, state) -> dict:
    """The proof after synthesis: the same upsets on the flip-flops of the
    hardened design's Yosys netlist, whose replicas are counted first."""
    from fkhw.rtlgen.netlist import NetlistError, synthesize_netlist
    from fkhw.tmr.harden import harden
    from fkhw.tmr.proof import HardenedRtlLevel, prove

    t0 = _step("proof after synthesis: Yosys netlist of the hardened RTL, the same upsets on its flip-flops")
    try:
        hard_nl = synthesize_netlist(harden(bundle.ir, protect), progress=lambda msg: log.info("tmr:   %s", msg))
    except NetlistError as e:
        raise TmrError(f"the hardened netlist lost what the proof needs: {e}") from None
    hard_nl.write(out / "hardened_netlist")
    state.update(progress=None, done=0)
    nl_level = HardenedRtlLevel(bundle.ir, protect, jobs=jobs or os.cpu_count() or 1, design=hard_nl)
    proof_nl = prove(bundle.ir, protect, inputs, plain_outputs=plain_outputs, unprotected=unprotected,
                     level=nl_level, progress=advance)
    proof_nl["seconds"] = round(time.monotonic() - t0, 1)
    (out / "proof_netlist.json").write_text(json.dumps(proof_nl, indent=2, default=_jsonable) + "\n")
    if not proof_nl.get("ok"):
        raise TmrError(f"the hardened netlist failed its proof: see {out / 'proof_netlist.json'}")
    return proof_nl


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
