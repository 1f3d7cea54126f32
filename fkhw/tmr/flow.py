"""The TMR flow: campaign table -> selection -> map, annotations, hardened
RTL, figures, area and proof. Used by ``fkhw tmr`` and ``fkhw sim``.

Output folder layout:

    tmr_map.json, tmr_map.csv        the map (rule, campaign, entries, totals)
    annotations/                     TMRG-annotated RTL variant + synthesis attributes
    hardened_rtl/                    the selectively triplicated encoder, its regmap.csv
    figure1_tmr.png                  Figure 1 with the protected bits marked
    tradeoff.png, tradeoff.json      overhead vs residual worst-case figure of the rule (emd_norm or
                                     emd_norm_hi), the count at each threshold and the chosen one; the
                                     figure is drawn from the JSON
    synth/, synth_background/        Yosys sources, scripts and logs of the area runs
    area.csv / area.json / area.md   plain vs selective vs full TMR, with and without refresh (Yosys)
    proof.json                       fault injection on the hardened RTL (key refresh_variant: on its
                                     self-correcting variant)
    certificate.json, certificate/   with synthesis: the formal certificate of each TMR design's register-file
                                     netlist, the Yosys + ABC netlist the area table counts (for all register
                                     contents and port inputs; fkhw.tmr.certificate), and its work
    hardened_netlist/                with --gate-level: the whole hardened design's Yosys netlist
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.model.bundle import ModelBundle
from fkhw.outpaths import make_dir, save_figure, write_text
from fkhw.analysis.figures import heatmap_figure
from fkhw.progress import Progress
from fkhw.faults.sites import SiteSpace
from fkhw.tmr.figures import save_tradeoff, tradeoff_data, worst_after
from fkhw.tmr.select import CampaignTable, Rule, TmrError, check_campaign_matches, select, threshold_table
from fkhw.faults.tmrmap import build_map, write_map

log = logging.getLogger(__name__)
PROOF_MODULES = 32
CERTIFICATE_FILE = "certificate.json"


def _step(msg: str) -> float:
    log.info("tmr: %s", msg)
    return time.monotonic()


@dataclass(frozen=True)
class TmrOptions:
    """What the TMR step does beyond choosing the map (``fkhw tmr``'s options)."""

    synth: bool = True  # the Yosys area table (plain, selective, full TMR)
    # the proof by fault injection on the hardened RTL; with synth, also the formal certificate of the
    # register-file netlists
    prove: bool = True
    jobs: int | None = None  # simulator processes of the proof (default: the machine's)
    gate_level: bool = False  # the proof on the whole hardened netlist too
    # the map also lists every stage's valid flag (triplicated in the hardened RTL: each valid upset loses or
    # adds an output, for two flip-flops a stage)
    protect_control: bool = False
    # a plain ``pipeline`` campaign: the map also lists the pipeline data bits whose upsets exceed the rule's
    # threshold in more than ``pipeline_threshold`` of the cycles (fkhw.tmr.pipeline_select)
    pipeline_campaign: Path | None = None
    pipeline_threshold: float = 0.5
    scheduler: str | None = None  # a Dask scheduler the proof and the hardened campaign run on


def run_tmr(campaign: Path, out: Path, rule: Rule, bundle: ModelBundle, options: TmrOptions = TmrOptions(),
            evidence: dict | None = None) -> dict:
    """The map that ``rule`` chooses from ``campaign``, and what ``options``
    asks for beyond it (annotations and hardened RTL always; area, proofs),
    written under ``out``; returns the report (``tmr_report.json``).
    ``evidence``: the held-out validation (and the --inputs auto search) of
    this map, recorded in the report as given."""
    from fkhw.rtlgen.emit import generate
    from fkhw.rtlgen.harden import harden
    from fkhw.tmr.tmrg import write_tmrg_variant

    table = CampaignTable.load(campaign)
    check_campaign_matches(table, bundle.files.digest(), bundle.name)
    ir = bundle.ir
    n_all = ir.n_param_bits()
    selection = select(table, rule, n_all)
    protect = np.sort(table.site[selection.rows])
    controls = _transient_controls(bundle, rule, options)
    protect_all = np.concatenate([protect, np.array([c["ff"] for c in controls], dtype=np.int64)])
    out = Path(out)
    make_dir(out)
    report = {"model": bundle.name, "rule": rule.to_dict(), "campaign": str(campaign),
              "protected_bits": selection.n_protected, "all_bits": n_all,
              "protected_pipeline_and_valid_flip_flops": len(controls),
              "campaign_sites": int(table.site.size),
              "overhead_pct": selection.overhead_pct, "campaign_modules": int(table.summary.get("inputs", 0)),
              **(evidence or {}), "artifacts": {}}
    from fkhw.campaign.run import DEFAULT_THRESHOLDS
    from fkhw.campaign.files import damage_column

    column = damage_column(table.summary)
    if column != "emd_norm":  # the metric's normalised damage (fkhw.damage.metrics): what every figure below is
        report["damage_column"] = column
        report["rule"] = {**report["rule"], "text": rule.describe(column)}
    # one count per threshold, by the selection itself: the report, the trade-off figure and fkhw sim's summary
    report["protected_bits_by_threshold"] = threshold_table(
        table, rule, n_all, set(DEFAULT_THRESHOLDS) | ({rule.value} if rule.kind == "threshold" else set()))
    art = report["artifacts"]

    _step(f"{rule.describe(column)}: {selection.n_protected} of {n_all} bits")
    tmr = build_map(bundle, table, selection, generate(ir).regmap, controls)
    art["map"] = [str(p) for p in write_map(tmr, out)]

    _step("annotations (TMRG) and hardened RTL")
    design = harden(ir, protect_all)
    design.write(out / "hardened_rtl")
    art["hardened_rtl"] = str(out / "hardened_rtl")
    # the constraints and the Yosys check are of that very design (its files, its replicas, its flip-flop count)
    art["annotations"] = [str(p) for p in write_tmrg_variant(ir, protect_all, out / "annotations", hardened=design)]

    threshold = rule.value if rule.kind == "threshold" else None
    art["figures"] = _figures(bundle, table, selection, protect, rule, threshold, column,
                              report["protected_bits_by_threshold"], out)
    report["worst_unprotected_emd_norm_software"] = worst_after(table, selection.rows)

    # the area (single-threaded Yosys runs) and the proof (a Verilator build, simulators) run side by side
    with ThreadPoolExecutor(max_workers=1) as pool:
        area = pool.submit(_area, ir, protect, out) if options.synth else None
        if options.prove:
            report.update(_prove(bundle, table, protect_all, out, threshold, options.jobs, options.gate_level,
                                 options.scheduler))
            art["proof"] = str(out / "proof.json")
            if options.gate_level:
                art["proof_netlist"] = str(out / "proof_netlist.json")
                art["hardened_netlist"] = str(out / "hardened_netlist")
            art["hardened_campaign"] = str(out / "hardened_campaign")
        if area is not None:
            from fkhw.tmr.area import write_area

            rows, report["area_seconds"] = area.result()
            note = _area_not_counted(design, len(controls))
            art["area"] = [str(p) for p in write_area(rows, out, note)]
            report["area"] = rows
            if note:
                report["area_not_counted"] = note
    if options.synth and options.prove and protect.size:
        # the formal certificate is of the area table's register-file netlists: they are cached by now
        report["certificate"] = _certify(ir, protect, out)
        art["certificate"] = str(out / CERTIFICATE_FILE)

    write_text(out / "tmr_report.json", json.dumps(report, indent=2, default=_jsonable) + "\n")
    return report


def _transient_controls(bundle, rule: Rule, options: TmrOptions) -> list:
    """The map's entries beyond the parameter bits: every stage's valid flag
    (``protect_control``) and the pipeline data bits a ``pipeline_campaign``
    found damaging."""
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.faults.tmrmap import transient_entries

    ffspace = FlipFlopSpace.of(bundle.ir)
    controls = []
    if options.protect_control:
        valid = range(ffspace.first_control, ffspace.first_control + ffspace.latency)
        controls = transient_entries(ffspace, valid, "--protect-control: a valid-flag upset loses or adds an output "
                                                      "every time (the most damage per flip-flop, 2 more flip-flops each)")
    if options.pipeline_campaign is not None:
        from fkhw.tmr.pipeline_select import pipeline_damage, select_pipeline

        t_emd = rule.value if rule.kind == "threshold" else 1.0
        dmg = pipeline_damage(options.pipeline_campaign, ffspace, bundle.files.digest(), t_emd)
        chosen = select_pipeline(dmg, options.pipeline_threshold)
        controls = transient_entries(ffspace, chosen, f"pipeline campaign {options.pipeline_campaign}: emd_norm > "
                                                      f"{t_emd:g} in more than {options.pipeline_threshold:g} of its "
                                                      "upsets") + controls
    return controls


def _figures(bundle, table, selection, protect, rule: Rule, threshold, column: str, by_threshold, out: Path) -> list:
    """Figure 1 with the protected bits marked, and the trade-off figure of
    the rule (drawn from tradeoff.json); their paths."""
    by_site = dict(zip(table.site.tolist(), table.emd_norm.tolist()))
    # the colours are the mean: the colour bar names the threshold only when the mean is what it was applied to
    fig = heatmap_figure(SiteSpace.of(bundle.ir), by_site, f"{bundle.name}: protected bits ({rule.describe(column)})",
                         marked=set(protect.tolist()), threshold=threshold if rule.evidence == "mean" else None,
                         column=column)
    save_figure(fig, out / "figure1_tmr.png", dpi=130)
    return [str(out / "figure1_tmr.png")] + [str(p) for p in save_tradeoff(
        tradeoff_data(table, selection, by_threshold, rule.describe(column), rule.figure_name(column)),
        out / "tradeoff.png")]


def _certify(ir, protect, out: Path) -> dict:
    """The formal certificate (fkhw.tmr.certificate) of each TMR design of the
    area table, on its register-file netlist; written to certificate.json
    beside proof.json. Raises TmrError when a design is not proven."""
    from fkhw.rtlgen.emit import generate
    from fkhw.tmr.area import area_designs, design_dir, regfile_netlist
    from fkhw.tmr.certificate import certify

    t0 = _step("formal certificate: on each TMR design's register-file netlist (the area table's), every single "
               "upset of a replica, for all register contents and configuration-port inputs")
    plain = generate(ir)
    certs = []
    for name, design, _n, _refresh in area_designs(ir, protect)[1:]:
        slug = design_dir(name)
        netlist, _ = regfile_netlist(design, plain, out / "synth" / slug, log=lambda msg: log.info("tmr:   %s", msg))
        cert = certify(design, netlist, out / "certificate" / slug, name,
                       progress=lambda msg: log.info("tmr:   certificate %s", msg))
        log.info("tmr:   certificate %s: %s (%s s)", name, "PROVEN" if cert.proven else
                 "NOT proven: " + cert.counterexample.line(), cert.seconds)
        certs.append(cert.to_json())
    result = {"designs": certs, "proven": all(c["proven"] for c in certs), "seconds": round(time.monotonic() - t0, 1)}
    write_text(out / CERTIFICATE_FILE, json.dumps(result, indent=1) + "\n")
    failed = [c for c in certs if not c["proven"]]
    if failed:
        raise TmrError(f"the {failed[0]['design']} register files are not certified: "
                       f"{failed[0]['counterexample']['line']} (see {out / CERTIFICATE_FILE})")
    return result


def _area_not_counted(design, n_transient: int) -> dict | None:
    """What the area table leaves out of the hardened design: its rows
    triplicate the map's parameter bits only (the register files; the
    datapath, where the pipeline stages sit, is synthesised once for every
    design), so the map's triplicated pipeline data bits and valid flags
    (--protect-control, --pipeline-campaign) are stated beside it, with the
    hardened RTL's flip-flop count that annotations/check_replicas.ys checks."""
    if not n_transient:
        return None
    ff = design.meta["flip_flops_expected"]
    return {"pipeline_and_valid_flip_flops": n_transient, "replica_flip_flops": 2 * n_transient,
            "hardened_rtl_flip_flops": ff,
            "text": f"not in this table: the map's {n_transient} triplicated pipeline data / valid flip-flops "
                    f"(fkhw_pipe_tmr): {2 * n_transient} more replica flip-flops and {n_transient} voters than the "
                    f"selective rows; hardened_rtl/ has {ff:,} flip-flops in all (checked by Yosys: "
                    "annotations/check_replicas.ys)"}


def _executor(scheduler: str | None):
    """The proof's executor: the Dask scheduler's workers, or None (prove's
    default: the level's own simulator processes here)."""
    if not scheduler:
        return None
    from fkhw.campaign.executors import DaskExecutor

    return DaskExecutor.connect(scheduler)


def _prove_on(scheduler, *args, **kw) -> dict:
    from fkhw.tmr.proof import prove

    executor = _executor(scheduler)
    try:
        return prove(*args, executor=executor, **kw)
    finally:
        if executor is not None:
            executor.close()


def _area(ir, protect, out: Path) -> tuple:
    from fkhw.tmr.area import area_table

    t0 = _step("area: Yosys synthesis + ABC of plain, selective and full TMR, both TMR designs also with refresh "
               "(the datapath once, cached)")
    # the Yosys work (sources, scripts, logs) in the output folder: one run's own (its results are cached by content)
    rows = area_table(ir, protect, out / "synth", log=lambda msg: log.info("tmr:   area %s", msg))
    return rows, round(time.monotonic() - t0, 1)


def _prove(bundle, table, protect, out: Path, threshold, jobs, gate_level: bool = False, scheduler=None) -> dict:
    from fkhw.campaign.run import CampaignSpec, run_campaign
    from fkhw.faults.space import Hardening

    t0 = _step(f"proof: every protected bit upset in each of its 3 replicas, every other bit once ({table.site.size} sites)")
    from fkhw.campaign.files import read_outputs

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
    n_param = int((protect < SiteSpace.of(bundle.ir).n_sites).sum())
    # the pipeline / valid replicas' frames: as many as the proof makes (fkhw.tmr.proof.transient_replica_faults)
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.tmr.proof import transient_replica_faults

    n_tr = len(transient_replica_faults(FlipFlopSpace.of(bundle.ir, protect), min(outputs.n_modules,
                                                                                  PROOF_MODULES))[0])
    frames = n_param * 3 + n_tr + int(unprotected.sum())
    # the clock starts before the hardened build: chunks report when they finish, so
    # a clock started at the first report would see no time pass
    state = {"progress": Progress(frames, "tmr proof (hardened build included)", unit="upsets"), "done": 0}

    def advance(n_done: int) -> None:
        # the executor reports a running total
        if n_done > state["done"]:
            state["progress"].advance(n_done - state["done"])
            state["done"] = n_done

    proof = _prove_on(scheduler, bundle.ir, protect, inputs, plain_outputs=latent, unprotected=sites[unprotected],
                      jobs=jobs or os.cpu_count() or 1, progress=advance, bundle=bundle)
    proof["seconds"] = round(time.monotonic() - t0, 1)
    # the self-correcting variant: every replica upset again (the unprotected bits are the same single
    # flip-flops as above); its sticky tmr_err is cleared by a configuration write after every frame
    t1 = _step("proof of the self-correcting (refresh) variant: every replica upset, sticky tmr_err every time")
    proof_r = _prove_on(scheduler, bundle.ir, protect, inputs, unprotected=np.zeros(0, dtype=np.int64),
                        jobs=jobs or os.cpu_count() or 1, refresh=True, bundle=bundle)
    proof_r["seconds"] = round(time.monotonic() - t1, 1)
    proof["refresh_variant"] = proof_r
    write_text(out / "proof.json", json.dumps(proof, indent=2, default=_jsonable) + "\n")
    if not (proof.get("ok") and proof_r.get("ok")):
        raise TmrError(f"the hardened RTL failed its proof: see {out / 'proof.json'}")

    # after synthesis, the register files' netlist is proven for all inputs by the certificate (_certify);
    # a simulation of it on these modules would prove less, so it is not run (fkhw sim --gate-level
    # simulates the whole hardened netlist)
    proof_nl = _prove_netlist(bundle, protect, out, jobs, inputs, latent, sites[unprotected], advance,
                              state, scheduler) if gate_level else None

    _step("campaign over the hardened RTL (replica 0 of protected bits)")
    all_modules = modules.size == outputs.n_modules
    from fkhw.campaign.run import metric_options

    # through the campaign's executors like any campaign (--level rtl --tmr): this machine's
    # simulator processes, or the Dask workers of --scheduler
    spec = CampaignSpec(bundle.name, level="rtl", n_inputs=summary["inputs"], seed=summary["seed"], data=summary.get("data"),
                        **metric_options(summary),
                        sites=tuple(int(s) for s in table.site),
                        rows=None if all_modules else tuple(int(r) for r in outputs.rows[modules]),
                        jobs=jobs, scheduler=scheduler, hardening=Hardening(tuple(int(s) for s in protect)))
    res = run_campaign(spec, bundle, out / "hardened_campaign", fresh=True)
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


def _parameter_bits(bundle, protect) -> np.ndarray:
    """The map's parameter bits: the netlists' flip-flop maps name register-file and plain pipeline
    flip-flops, so the netlist proofs are of the parameter replicas (the valid flags are proven on the RTL)."""
    protect = np.asarray(protect)
    return protect[protect < SiteSpace.of(bundle.ir).n_sites]


def _prove_netlist(bundle, protect, out: Path, jobs, inputs, plain_outputs, unprotected, advance, state,
                   scheduler=None) -> dict:
    """The proof after synthesis: the same upsets on the flip-flops of the
    hardened design's Yosys netlist (written to hardened_netlist/), whose
    replicas are counted first; its report is proof_netlist.json. Raises
    TmrError when it fails."""
    from fkhw.rtlgen.netlist import NetlistError, synthesize_netlist
    from fkhw.rtlgen.harden import harden
    from fkhw.tmr.proof import HardenedRtlLevel

    t0 = _step("proof after synthesis: Yosys netlist of the hardened RTL, the same upsets on its flip-flops")
    protect = _parameter_bits(bundle, protect)
    try:
        hard_nl = synthesize_netlist(harden(bundle.ir, protect), progress=lambda msg: log.info("tmr:   %s", msg))
    except NetlistError as e:
        raise TmrError(f"the hardened netlist lost what the proof needs: {e}") from None
    hard_nl.write(out / "hardened_netlist")
    state.update(progress=Progress(3 * protect.size + len(unprotected), "tmr proof on the netlist (its build "
                                   "included)", unit="upsets"), done=0)
    level = HardenedRtlLevel(bundle.ir, protect, jobs=jobs or os.cpu_count() or 1, design=hard_nl)
    proof = _prove_on(scheduler, bundle.ir, protect, inputs, plain_outputs=plain_outputs, unprotected=unprotected,
                      level=level, progress=advance, bundle=bundle)
    proof["seconds"] = round(time.monotonic() - t0, 1)
    write_text(out / "proof_netlist.json", json.dumps(proof, indent=2, default=_jsonable) + "\n")
    if not proof.get("ok"):
        raise TmrError(f"the hardened netlist failed its proof: see {out / 'proof_netlist.json'}")
    return proof


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
