"""The review run's steps, in the order the data flows: model -> hls4ml
C-sim -> RTL and lint -> fault-free RTL -> (netlist) -> RTL and software
campaigns -> their agreement -> the module count at which the TMR map holds
on held-out modules -> the map, hardened RTL, area and proofs -> every fault
kind on the plain and hardened designs -> failure rates -> the protection
choice (TMR, SEC-DED and parity designs side by side). Each step is one
function of the run's :class:`Run` state that returns its JSON-able result;
:class:`fkhw.review.ledger.Ledger` decides which of them need to run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from functools import cached_property
from pathlib import Path

import numpy as np

from fkhw.campaign.agreement import Campaign, compare
from fkhw.campaign.run import CampaignSpec, hardening_from_map, run_campaign
from fkhw.damage.metrics import get_metric
from fkhw.errors import UserError
from fkhw.host.resources import local_jobs
from fkhw.model.bundle import load_model
from fkhw.model.data import ARRAY_SUFFIXES, all_input_codes, check_image_input, load_arrays, model_example, row_pool, \
    select_modules
from fkhw.model.files import resolve
from fkhw.outpaths import check_out_dir, make_dir, open_new, write_json, write_text
from fkhw.review.ledger import Ledger, Step, content_digest
from fkhw.review.options import SimOptions
from fkhw.review.report import Review
from fkhw.tmr.select import parse_rule

REPLAY_WAVES = "waves.vcd"  # the replay step's waveform, in out/<model>/replay/

# files a background process writes while the steps run: nobody's output
BACKGROUND = ("tmr/synth_background", "tmr/area_background.log")
RISK_THRESHOLDS = (1.0, 1.01, 1.05, 1.1)
# the protection choice of a review: SEC-DED words of one register each and of a byte (as the ECON-T's
# configuration is written), in a row and bit-interleaved, and parity words of one register each, beside plain,
# full and selective TMR (each with and without refresh), at a scrub interval and a target a front-end ASIC's
# review would ask about. fkhw protect's defaults add wider words
REVIEW_PROTECTIONS = ("secded", "secded:8", "secded:8i", "parity")
REVIEW_SCRUB, REVIEW_TARGET = "10min", 1e-3


def prepare(opts: SimOptions, inputs=()) -> SimOptions:
    """The options completed (a model directory's example data and metric,
    the machine's simulator workers) and checked before anything is built.
    ``inputs``: (option, path) of every input, which --out must not hold."""
    if opts.out is not None:
        check_out_dir(opts.out, inputs=inputs)
    opts = dataclasses.replace(opts, jobs=local_jobs(opts.jobs))
    if opts.data is None and opts.labels is None and opts.metric == "emd":
        ex = model_example(resolve(opts.model).directory)  # e.g. the digits example: its data, labels and metric
        opts = dataclasses.replace(opts, data=ex.get("data"), labels=ex.get("labels"),
                                   metric=ex.get("metric", "emd"),
                                   validate_inputs=int(ex.get("validate_inputs", opts.validate_inputs))
                                   if opts.validate_inputs == SimOptions.validate_inputs else opts.validate_inputs)
    if get_metric(opts.metric).needs_labels and opts.labels is None:
        raise UserError(f"--metric {opts.metric} needs --labels (one class per row of --data)")
    if opts.labels is not None:
        if opts.data is None or Path(opts.data).suffix not in ARRAY_SUFFIXES:
            raise UserError(f"--labels {opts.labels}: labels go with array inputs (--data x.npy/.npz/.h5)")
        load_arrays(opts.data, opts.labels)  # lengths, before anything is built
    charges = row_pool(opts.data)  # a bad --data is refused before anything is built
    bundle = load_model(opts.model)
    if not opts.metric_options:  # the EMD compares decoded HGCAL images
        bundle.require_decoder()
        check_image_input(bundle.ir.input.shape, bundle.name)
    select_modules(charges, opts.inputs, opts.seed)  # --inputs the data can give
    out = opts.out or Path("out") / bundle.name
    check_out_dir(out, "--out" if opts.out is not None else "the default output folder", inputs)
    make_dir(out)
    return dataclasses.replace(opts, out=out)


class Run:
    """One review run's state: the options, the model (loaded on first use)
    and the results of the steps so far."""

    def __init__(self, opts: SimOptions, say=print):
        self.opts, self.out, self.say = opts, Path(opts.out), say
        self.results: dict = {}
        self.background: list = []
        self.ledger: Ledger | None = None
        self.model_digest = resolve(opts.model).digest()

    @cached_property
    def bundle(self):
        return load_model(self.opts.model)

    @cached_property
    def rows(self):
        """Every vendored row (or every row of --data): what the fault-free checks run on."""
        return all_input_codes(self.bundle.ir, self.opts.data)

    @cached_property
    def want(self):
        from fkhw.model import engine

        return engine.forward(self.bundle.ir, self.rows)

    @cached_property
    def rule(self):
        return parse_rule(self.opts.tmr_threshold, None, self.opts.tmr_rule)

    @property
    def column(self) -> str:
        return get_metric(self.opts.metric).column  # the metric's normalised damage, in what is printed

    @property
    def campaign_options(self) -> dict:
        o = self.opts
        return dict(n_inputs=o.inputs, seed=o.seed, data=o.data, **o.metric_options)

    # -- the steps -----------------------------------------------------------------------------

    def steps(self, model_digest: str) -> list:
        o = self.opts
        data = {"data": o.data, "data digest": content_digest(o.data), "labels digest": content_digest(o.labels),
                "metric": o.metric}
        model = {"model digest": model_digest}
        camp = {**model, **data, "inputs": o.inputs, "seed": o.seed}
        rule = {"tmr_threshold": o.tmr_threshold, "tmr_rule": o.tmr_rule}
        steps = [
            Step("model", f"model {o.model}: integer IR and fault sites", model, self.model),
            Step("hls", "hls4ml project (C++), C-simulation vs integer engine on every row", {**model, **data},
                 self.hls),
            Step("rtl", "RTL: Verilog with weights in flip-flops, regmap, lint (verilator -Wall)", model, self.rtl),
            Step("functional", "functional test: fault-free RTL on Verilator vs integer engine on every row",
                 {**model, **data}, self.functional, after=("rtl",)),
        ]
        if o.gate_level:
            steps.append(Step("gate_level", "gate level: Yosys netlist (generic gates, ABC) of the RTL on Verilator "
                                            "vs integer engine on every row", {**model, **data}, self.gate_level,
                              after=("rtl",)))
        what = "auto: 32, 64, ... modules" if o.tmr_inputs == "auto" else f"{o.tmr_inputs} modules"
        steps += [
            Step("campaign_rtl", "exhaustive SEU campaign on the RTL (cocotb + Verilator)", camp, self.campaign_rtl,
                 after=("rtl",)),
            Step("campaign_software", "the same campaign on the software engine", camp, self.campaign_software),
            Step("agreement", "software vs RTL agreement, joined on site", {}, self.agreement,
                 after=("campaign_rtl", "campaign_software")),
            Step("replay", "the most damaging upset of the RTL campaign replayed on the RTL: waveform and picture",
                 {}, self.replay, after=("campaign_rtl",)),
            Step("tmr_inputs", f"inputs for the TMR map ({what}), each map checked on {o.validate_inputs} held-out "
                               "modules",
                 {**model, **data, **rule, "seed": o.seed, "tmr_inputs": o.tmr_inputs, "max_inputs": o.max_inputs,
                  "validate_inputs": o.validate_inputs}, self.tmr_inputs),
            Step("tmr", f"selective TMR ({self.rule.describe(self.column)}): map, annotations, hardened RTL, area, "
                        "proof",
                 {**model, **rule, "synth": o.synth, "gate_level": o.gate_level}, self.tmr,
                 after=("rtl", "tmr_inputs")),
            Step("faults", "every flip-flop: fault kinds on the plain and the selectively hardened design "
                           "(software engine)", {**camp, **rule}, self.faults, after=("tmr",)),
        ]
        if o.rates:
            steps.append(Step("rates", f"failure rates vs scrub interval (fkhw rate), {o.check_rtl} scenarios "
                                       "replayed on each design's RTL",
                              {"check_rtl": o.check_rtl, "check_full_tmr": o.check_full_tmr}, self.rates,
                              after=("campaign_software", "tmr", "faults")))
        if o.rates and o.synth and o.protect:
            steps.append(Step("protect", f"the protection choice (fkhw protect): plain, TMR and "
                                         f"{', '.join(REVIEW_PROTECTIONS)} at a {REVIEW_SCRUB} scrub, target "
                                         f"{REVIEW_TARGET:g}: failure probability and synthesised area; the "
                                         "chosen design proved on its RTL",
                              {"protections": list(REVIEW_PROTECTIONS), "scrub": REVIEW_SCRUB,
                               "target": REVIEW_TARGET, "transients": "faults/plain/pipeline", "prove": True},
                              self.protect,
                              after=("campaign_software", "tmr", "faults")))
        return steps

    def model(self) -> dict:
        ir = self.bundle.ir
        return {"layers": len(ir.layers), "parameter_bits": ir.n_param_bits(), "vendored_rows": int(self.rows.shape[0]),
                "line": f"{len(ir.layers)} layers, {ir.n_param_bits()} parameter bits = fault sites"}

    def hls(self) -> dict:
        from fkhw.hls.project import project_for
        from fkhw.levels.hls import HlsLevel

        project = project_for(self.bundle, self.out / "hls")
        with HlsLevel(self.bundle.ir, project) as level:
            bad = int((level.golden(self.rows) != self.want).any(axis=1).sum())
        n = self.rows.shape[0]
        result = {"project": str(self.out / "hls"), "rows": n, "mismatching_rows": bad,
                  "line": f"{self.out / 'hls'}: C-sim == engine on {n - bad}/{n} rows"}
        if bad:
            self.say(f"      {result['line']}")
            raise UserError(f"hls4ml C-sim differs from the integer engine on {bad} rows")
        return result

    def rtl(self) -> dict:
        from fkhw.rtlgen.emit import write_rtl
        from fkhw.rtlgen.lint import lint

        rtl = self.out / "rtl"
        design = write_rtl(self.bundle.ir, rtl)
        linted = lint(design.verilog_files(rtl), design.meta["top"], include_dirs=[rtl])
        text = "clean" if linted.ok else f"{linted.warnings} warnings/errors"
        write_text(rtl / "lint.log", " ".join(map(str, linted.command)) + "\n" + linted.output + "\n")
        if not linted.ok:
            raise UserError(f"verilator --lint-only -Wall: {text}; see {rtl / 'lint.log'}")
        return {"dir": str(rtl), "latency": design.meta["latency"], "lint": text,
                "flip_flops_expected": design.meta["flip_flops_expected"],
                "flip_flops_breakdown": design.meta["flip_flops_breakdown"],
                "line": f"{rtl}: latency {design.meta['latency']} cycles, II=1, lint {text}"}

    def functional(self) -> dict:
        from fkhw.levels.rtl import RtlLevel

        level = RtlLevel(self.bundle.ir, jobs=1)
        bad = int((level.golden(self.rows) != self.want).any(axis=1).sum())
        n = self.rows.shape[0]
        if bad:
            raise UserError(f"the RTL differs from the integer engine on {bad} rows")
        return {"rows": n, "mismatching_rows": bad, "build_seconds": level.stats.get("build_seconds"),
                "line": f"RTL == engine on {n - bad}/{n} rows"}

    def gate_level(self) -> dict:
        from fkhw.levels.rtl import netlist_level
        from fkhw.rtlgen.netlist import NetlistError

        try:
            gl = netlist_level(self.bundle.ir, jobs=1, log=lambda msg: self.say(f"      {msg}"))
        except NetlistError as e:
            raise UserError(str(e)) from None
        gl.design.write(self.out / "netlist")
        bad = int((gl.golden(self.rows) != self.want).any(axis=1).sum())
        n, nl = self.rows.shape[0], gl.meta["netlist"]
        if bad:
            raise UserError(f"the synthesised netlist differs from the integer engine on {bad} rows")
        return {"dir": str(self.out / "netlist"), "rows": n, "mismatching_rows": bad,
                "cells": nl["synthesis"]["cells"], "flip_flops": nl["flip_flops"],
                "parameter_bits_found": nl["parameter_bits_found"], "unmapped_flip_flops": nl["unmapped"],
                "synth_seconds": nl["synthesis"]["seconds"], "build_seconds": gl.stats.get("build_seconds"),
                "line": f"{self.out / 'netlist'}: {nl['synthesis']['cells']:,} cells, {nl['flip_flops']:,} "
                        f"flip-flops ({nl['parameter_bits_found']:,} parameter bits found, {nl['unmapped']} "
                        f"unmapped); netlist == engine on {n - bad}/{n} rows"}

    def _campaign(self, level: str, **extra) -> dict:
        from fkhw.analysis.figures import campaign_figure1
        from fkhw.faults.sites import SiteSpace

        folder = self.out / f"campaign_{level}"
        t = time.monotonic()
        res = run_campaign(CampaignSpec(self.opts.model, level=level, **extra, **self.campaign_options), self.bundle,
                           folder, fresh=self.fresh(f"campaign_{level}"))
        n = res.summary["n_sites"]
        rate = n / max(time.monotonic() - t, 1e-9)  # of the campaign, not of its figure
        campaign_figure1(SiteSpace.of(self.bundle.ir), self.bundle.name, folder, level, self.opts.inputs)
        return {"dir": str(folder), "n_sites": n, "inputs": res.summary["inputs"],
                "line": f"{folder}: {n} sites x {res.summary['inputs']} modules"
                        + (f", {rate:.0f} injections/s" if level == "rtl" else "")}

    def campaign_rtl(self) -> dict:
        return self._campaign("rtl", jobs=self.opts.jobs)

    def campaign_software(self) -> dict:
        return self._campaign("software")

    def agreement(self) -> dict:
        sw, rtl = self.out / "campaign_software", self.out / "campaign_rtl"
        ag = compare(Campaign.load(sw), Campaign.load(rtl))
        write_json(rtl / "agreement.json", {"a": str(sw), "b": str(rtl), **ag.to_dict()})
        return {"common_sites": ag.common_sites, "disagreeing_sites": len(ag.disagreeing_sites),
                "line": f"{len(ag.disagreeing_sites)} disagreeing sites of {ag.common_sites}"}

    def replay(self) -> dict:
        """The RTL campaign's most damaging site (fkhw replay): run again on a
        traced build, its waveform, the picture of the module it hurts most,
        and the check that both show the campaign's row."""
        from fkhw.campaign.files import read_summary, read_table
        from fkhw.replays import ReplayRequest, replay_to

        camp, folder = self.out / "campaign_rtl", make_dir(self.out / "replay", root=self.out)
        table = read_table(camp, read_summary(camp))
        site = int(table.site[int(np.argmax(table.damage))])  # the first of equals in table order
        r = replay_to(ReplayRequest(camp, site=site, waves=folder / REPLAY_WAVES), folder,
                      progress=lambda line: self.say(f"      {line}"))
        u = r.upsets[0]
        return {"dir": str(folder), "site": site, "matches": r.matches, "waves_match": bool(r.waves_match),
                "changed_modules": len(r.changed), "modules": r.n_modules, "damage_norm": r.damage_norm,
                "upset": u.line(),
                "line": f"{folder}: site {site} ({u.register} bit {u.bit}), {len(r.changed)} of {r.n_modules} "
                        f"modules changed; {REPLAY_WAVES} for GTKWave or Surfer"}

    def tmr_inputs(self) -> dict:
        from fkhw.tmr.stable import HeldOut, find_stable

        o = self.opts
        counts = None if o.tmr_inputs == "auto" else o.tmr_inputs
        auto = find_stable(self.bundle, self.rule, self.out / "tmr", o.seed, o.data, HeldOut(o.validate_inputs),
                           max_inputs=counts or o.max_inputs, start=counts or 32, metric=o.metric_options)
        v = auto.validation
        return {"campaign": str(auto.campaign), "auto": auto.to_dict(), "validation": v.to_dict(),
                "line": f"{auto.reason}; coverage {100 * v.coverage:.2f}%, worst unprotected held-out {self.column} "
                        f"{v.worst_unprotected_emd_norm:.4f}"}

    def tmr(self) -> dict:
        from fkhw.tmr.flow import TmrOptions, run_tmr
        from fkhw.tmr.report import report_lines

        found = self.results["tmr_inputs"]
        options = TmrOptions(synth=self.opts.synth, prove=True, jobs=self.opts.jobs, gate_level=self.opts.gate_level,
                             protect_control=True)
        report = run_tmr(Path(found["campaign"]), self.out / "tmr", self.rule, self.bundle, options,
                         evidence={"auto": found["auto"], "validation": found["validation"]})
        for proc in self.background:
            proc.wait()  # done: the area table waited for its runs
        for line in report_lines(report, self.out / "tmr"):
            self.say(f"      {line}")
        result = {k: report[k] for k in ("rule", "protected_bits", "all_bits", "overhead_pct", "campaign_modules",
                                          "protected_bits_by_threshold")}
        v, auto = found["validation"], found["auto"]
        result["evidence"] = {"stable": auto["stable"], "reason": auto["reason"], "modules": auto["inputs"],
                              "heldout_modules": v["modules"], "coverage": v["coverage"],
                              "worst_unprotected_heldout_emd_norm": v["worst_unprotected_emd_norm"]}
        plain = next((row for row in report.get("area", []) if row["design"] == "plain"), None)
        if plain is not None:
            # the plain encoder's synthesis comes out of the area table; it belongs next to its RTL too
            rtl = self.results["rtl"]
            synth = {"source": "Yosys generic synthesis + ABC via fkhw.tmr.area (datapath + register files)",
                     "flip_flops": plain["flip_flops"], "cells": plain["cells"], "transistors": plain["transistors"],
                     "flip_flops_expected": rtl["flip_flops_expected"], "breakdown": rtl["flip_flops_breakdown"],
                     "flip_flops_match": plain["flip_flops"] == rtl["flip_flops_expected"]}
            write_json(self.out / "rtl" / "synth_report.json", synth)
            result["synthesis"] = synth
        result["line"] = f"{self.out / 'tmr'}"
        return result

    def faults(self) -> dict:
        """Campaigns of every fault kind on the plain design and on the one the
        TMR step hardened (software engine, the campaign's modules), and the
        table and figure of the risk left by class (fkhw.analysis.risk)."""
        from fkhw.analysis.risk import rows_of, write_risk
        from fkhw.faults.space import Hardening

        rule, out, bundle = self.rule, self.out, self.bundle
        threshold = rule.value if rule.kind == "threshold" else 1.05
        # the map's design (its weight bits and, from the TMR step's --protect-control, the valid flags) and the
        # same map's weight bits alone: what protecting the control flip-flops adds
        ctrl = hardening_from_map(out / "tmr", bundle)
        hard = Hardening(ctrl.sites(bundle.ir.n_param_bits()), False, ctrl.source)
        designs = ("plain", "selective", "selective+control")
        plan = [("plain", None, k) for k in ("seu", "mbu:2", "pipeline", "accumulate:4")]
        plan += [("selective", hard, k) for k in ("seu", "mbu:2", "accumulate:4", "replicas", "replica-pairs")]
        plan += [("selective+control", ctrl, k) for k in ("pipeline", "replicas", "replica-pairs")]
        rows = []
        for design, hardening, kind in plan:
            folder = make_dir(out / "faults" / design.replace("+", "_") / kind.replace(":", "_"), root=out)
            spec = CampaignSpec(self.opts.model, level="software", faults=kind, hardening=hardening,
                                thresholds=tuple(sorted({*RISK_THRESHOLDS, threshold})), **self.campaign_options)
            run_campaign(spec, bundle, folder, fresh=self.fresh("faults"), quiet=True)
            rows += rows_of(folder, design, threshold)
            if kind == "pipeline" and design == "plain":  # the selective design triplicates no pipeline flip-flop
                rows += [{**r, "design": "selective"} for r in rows_of(folder, "plain", threshold)]
            if design == "selective" and kind in ("seu", "mbu:2", "accumulate:4"):  # the same weight bits triplicated
                rows += [{**r, "design": "selective+control"} for r in rows_of(folder, "selective", threshold)]
        kinds = list(dict.fromkeys(k for _, _, k in plan))
        rows.sort(key=lambda r: (kinds.index(r["kind"]), r["class"], designs.index(r["design"])))
        n_ctrl = len(ctrl.protect) - len(hard.protect)
        write_risk(rows, out / "faults", threshold,
                   f"{bundle.name}: where the risk sits, plain vs selective TMR ({len(hard.protect)} weight bits) and "
                   f"with the {n_ctrl} valid flags triplicated", self.column)
        return {"dir": str(out / "faults"), "rows": rows, "threshold": threshold,
                "line": f"{out / 'faults'}: risk.md, risk.png ({len(rows)} rows by design, kind and class)"}

    def rates(self) -> dict:
        from fkhw.rates.flow import DEFAULT_SCRUBS, RateOptions, run_rate
        from fkhw.rates.model import DEFAULT_FLUX, DEFAULT_SIGMA, Environment, parse_duration

        out = self.out
        options = RateOptions(check_rtl=self.opts.check_rtl, jobs=self.opts.jobs or 1,
                              check_full=self.opts.check_full_tmr)
        rate = run_rate(out / "campaign_software", out / "rate", Environment(DEFAULT_FLUX, DEFAULT_SIGMA),
                        [parse_duration(d) for d in DEFAULT_SCRUBS], 1e-3, options, tmr=out / "tmr",
                        transients=out / "faults" / "plain" / "pipeline", log=lambda msg: self.say(f"      {msg}"))
        return {"dir": str(out / "rate"), "rtl_check": rate.get("rtl_check"),
                "longest_scrub_interval_s": {k: d["longest_scrub_interval_s"] for k, d in rate["designs"].items()},
                "line": f"{out / 'rate'}: rate.json, rate.png"}

    def protect(self) -> dict:
        from fkhw.protect.choice import PROTECT_JSON, ProtectError, ProtectOptions, run_protect
        from fkhw.rates.model import DEFAULT_FLUX, DEFAULT_SIGMA, Environment, parse_duration

        out = self.out / "protect"
        try:
            run_protect(self.out / "campaign_software", out, Environment(DEFAULT_FLUX, DEFAULT_SIGMA),
                        parse_duration(REVIEW_SCRUB), REVIEW_TARGET,
                        ProtectOptions(protections=REVIEW_PROTECTIONS, prove=True, jobs=self.opts.jobs or 1),
                        tmr=self.out / "tmr", transients=self.out / "faults" / "plain" / "pipeline",
                        log=lambda msg: self.say(f"      {msg}"))
        except ProtectError as e:  # no design meets the target, or the chosen one fails its proof: a finding of
            self.say(f"      {e}")  # the review (a failed check), the table is written
        result = json.loads((out / PROTECT_JSON).read_text())
        proof = result.get("proof")
        return {"dir": str(out), "chosen": result["chosen"], "scrub_interval_s": result["scrub_interval_s"],
                "target": result["target"],
                "proof": {k: proof[k] for k in ("design", "level", "ok", "faults", "broken", "seconds")} if proof
                else None,
                "line": f"{out}: protect.json, protect.csv, protect.png (chosen: {result['chosen'] or 'none'})"}

    # -- helpers -------------------------------------------------------------------------------

    def fresh(self, name: str) -> bool:
        """Whether step ``name`` replaces the campaigns in its folders: with
        --fresh, or when this flow recorded the step before (the folders are
        its own, and the step reruns because something it depends on
        changed). A step that never finished resumes what it left."""
        return self.opts.fresh or (self.ledger is not None and self.ledger.has_record(name))

    def start_area_synthesis(self) -> None:
        """The Yosys runs of the area table that do not depend on the TMR map
        (the datapath, the plain and the full-TMR register files), started now
        in a process of their own so that they use the CPU the next steps leave
        idle; the TMR step finds them in the synthesis cache (or waits for them)."""
        log = self.out / BACKGROUND[1]
        make_dir(log.parent, root=self.out)
        cmd = [sys.executable, "-m", "fkhw.tmr.area", "independent", self.opts.model, str(self.out / BACKGROUND[0])]
        with open_new(log) as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        self.background.append(proc)
        self.say(f"      Yosys area synthesis of the map-independent parts started in the background (log: {log})")


def run_sim(opts: SimOptions, say=print) -> Review:
    """Run (or bring up to date) the whole flow on a prepared ``opts`` (see
    :func:`prepare`); the review's checks, report and JUnit file are written
    under ``opts.out``."""
    run = Run(opts, say)
    steps = run.steps(run.model_digest)
    ledger = Ledger(run.out, len(steps), force=opts.force, ignore=BACKGROUND, say=say)
    run.ledger = ledger
    try:
        if opts.synth and (not ledger.has_record("tmr") or ledger.forced("tmr")):
            run.start_area_synthesis()
        for step in steps:
            run.results[step.name] = ledger.run(step)
        return Review.write(run, ledger)
    finally:
        for proc in run.background:  # a process group of its own: Yosys under it too
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
