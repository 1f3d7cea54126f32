"""fkhw sim: the whole flow on one model (what `make sim` runs)."""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from fkhw.commands.options import (EMD_NORM, POSITIVE, SEED, add_metric_arguments, auto_or_positive, input_paths,
                                  model_help, model_inputs, out_path)
from fkhw.outpaths import make_dir, open_new, write_text

HELP = "the whole flow: hls4ml project, RTL (lint), functional test, RTL + software campaigns, agreement, TMR"
DESCRIPTION = (
    "model -> hls4ml C++ (C-sim checked against the integer engine) -> RTL (lint) -> fault-free Verilator run "
    "on every vendored row (with --gate-level: the same for the Yosys netlist) -> exhaustive SEU campaign on the "
    "RTL (cocotb + Verilator) -> the same campaign on the software engine -> software-vs-RTL agreement -> the "
    "module count at which the TMR map is stable on held-out modules (--tmr-inputs auto) -> selective-TMR map, "
    "annotations, hardened RTL, area and proof (with --gate-level: also on the hardened netlist). Every artifact "
    "lands under --out; a summary is printed at the end.")


def add_arguments(p):
    p.add_argument("--model", default="econt-bol", help=model_help(" (default: econt-bol)"))
    p.add_argument("--out", type=out_path, default=None, help="output folder (default: out/<model>)")
    p.add_argument("--inputs", type=POSITIVE, default=32,
                   help="modules of the RTL campaign and of the software campaign it is compared with (default 32)")
    p.add_argument("--tmr-inputs", type=auto_or_positive, default="auto", metavar="auto|N",
                   help="modules of the software campaign the TMR map is chosen from: auto (default) doubles them "
                        "from 32 until the map is stable on the held-out modules, or N")
    p.add_argument("--tmr-rule", default="upper", choices=["mean", "upper"],
                   help="protect a bit when its emd_norm (mean) or the upper end of its interval (upper, default) "
                        "exceeds the threshold")
    p.add_argument("--max-inputs", type=POSITIVE, default=4096, metavar="N", help="cap of --tmr-inputs auto (default 4096)")
    p.add_argument("--validate-inputs", type=POSITIVE, default=1024, metavar="N",
                   help="held-out modules the map is checked on (default 1024)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the module choice")
    p.add_argument("--data", default=None, help="HGCAL CSV (default: the vendored sample)")
    p.add_argument("--jobs", type=POSITIVE, default=None, help="simulator workers (default: all cores)")
    p.add_argument("--tmr-threshold", type=EMD_NORM, default=1.05, metavar="T",
                   help="protect bits with emd_norm > T (default 1.05; see README on the choice)")
    p.add_argument("--no-synth", action="store_true", help="skip Yosys synthesis (area table)")
    p.add_argument("--no-rates", action="store_true", help="skip the failure-rate step (fkhw rate)")
    p.add_argument("--check-rtl", type=POSITIVE, default=500, metavar="N",
                   help="accumulated-upset scenarios of the rate Monte Carlo replayed on each of the plain and "
                        "hardened RTL designs (default 500 each)")
    p.add_argument("--check-full-tmr", action="store_true",
                   help="--check-rtl also replays on the full-TMR RTL, with and without refresh (off by default: "
                        "its cold Verilator builds take minutes, beyond make sim's budget)")
    p.add_argument("--fresh", action="store_true",
                   help="replace campaigns already in --out that ran with other arguments (default: refuse them)")
    p.add_argument("--gate-level", action="store_true",
                   help="also synthesise the plain and hardened netlists and run them on Verilator: fault-free "
                        "on every row, and the TMR proof after synthesis (small models: seconds; econt-bol: the "
                        "netlist's Verilator build takes many minutes, see README)")
    add_metric_arguments(p)  # none of --data/--labels/--metric given: the model directory's example.json, if any


def cpu_seconds() -> float:
    """CPU seconds of this process and of every child process it has waited
    for (Yosys, Verilator, g++, simulators): on a shared machine the wall
    time of a step moves with the others' load, its CPU time much less."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Steps:
    """Numbered steps with their time (wall and CPU), so a user sees where the flow is."""

    def __init__(self, total: int):
        self.total, self.k, self.t0 = total, 0, time.monotonic()
        self.times, self.cpu = [], []

    def start(self, what: str) -> None:
        self.k += 1
        self._t, self._c = time.monotonic(), cpu_seconds()
        print(f"[{self.k}/{self.total}] {what}", flush=True)

    @property
    def elapsed(self) -> float:
        """Seconds since the current step started."""
        return time.monotonic() - self._t

    def done(self, result: str) -> None:
        dt, dc = time.monotonic() - self._t, cpu_seconds() - self._c
        self.times.append(dt)
        self.cpu.append(dc)
        print(f"      {result}  ({dt:.1f} s, CPU {dc:.1f} s)", flush=True)


def run(args) -> int:
    background = []  # processes the flow starts alongside its steps: ended if it stops early
    try:
        return _run(args, background)
    finally:
        for proc in background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _start_area_synthesis(model: str, out: Path) -> subprocess.Popen:
    """The Yosys runs of the area table that do not depend on the TMR map
    (the datapath, the plain and the full-TMR register files), started now
    in a process of their own so that they use the CPU the next steps leave
    idle; the TMR step finds them in the synthesis cache (or waits for them)."""
    log = out / "tmr" / "area_background.log"
    make_dir(log.parent, root=out)
    cmd = [sys.executable, "-m", "fkhw.tmr.area", "independent", model, str(out / "tmr" / "synth_background")]
    with open_new(log) as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    print(f"      Yosys area synthesis of the map-independent parts started in the background (log: {log})",
          flush=True)
    return proc


def _run(args, background: list) -> int:

    from fkhw.model import engine
    from fkhw.campaign.run import CampaignSpec, run_campaign
    from fkhw.errors import UserError
    from fkhw.commands.tmr import print_report, stability_hint
    from fkhw.model.data import all_input_codes, check_image_input, row_pool, select_modules
    from fkhw.model.bundle import load_model
    from fkhw.analysis.figures import campaign_figure1
    from fkhw.faults.sites import SiteSpace

    from fkhw.outpaths import check_out_dir
    from fkhw.host.resources import local_jobs

    inputs = model_inputs(args.model) + input_paths("--data", args.data) + input_paths("--labels", args.labels)
    if args.out is not None:
        check_out_dir(args.out, inputs=inputs)
    args.jobs = local_jobs(args.jobs)  # simulator workers of this machine: no more than its cores and memory hold
    _example_defaults(args)
    _check_metric(args)
    from fkhw.damage.metrics import get_metric

    col = get_metric(args.metric).column  # the metric's normalised damage, in what is printed
    metric = {} if args.metric == "emd" and args.labels is None else \
        {"metric": args.metric, "labels": None if args.labels is None else str(args.labels)}
    charges = row_pool(args.data)  # a bad --data is refused before anything is built
    tmr_counts = None if args.tmr_inputs == "auto" else args.tmr_inputs
    steps = Steps(12 if args.gate_level else 11) if args.no_rates else Steps(13 if args.gate_level else 12)
    steps.start(f"model {args.model}: integer IR and fault sites")
    bundle = load_model(args.model)
    if not metric:  # the EMD compares decoded HGCAL images
        bundle.require_decoder()
        check_image_input(bundle.ir.input.shape, bundle.name)
    select_modules(charges, args.inputs, args.seed)  # --inputs the data can give
    out = args.out or Path("out") / bundle.name
    check_out_dir(out, "--out" if args.out is not None else "the default output folder", inputs)
    make_dir(out)
    ir = bundle.ir
    space = SiteSpace.of(ir)
    steps.done(f"{len(ir.layers)} layers, {ir.n_param_bits()} parameter bits = fault sites")
    if not args.no_synth:
        background.append(_start_area_synthesis(args.model, out))

    all_rows = all_input_codes(ir, args.data)
    want = engine.forward(ir, all_rows)
    summary = {"model": bundle.name, "out": str(out), "vendored_rows": int(all_rows.shape[0])}

    steps.start("hls4ml project (C++), C-simulation vs integer engine on every row")
    from fkhw.hls.project import project_for
    from fkhw.levels.hls import HlsLevel

    project = project_for(bundle, out / "hls")
    with HlsLevel(ir, project) as hls:
        bad = int((hls.golden(all_rows) != want).any(axis=1).sum())
    summary["hls"] = {"project": str(out / "hls"), "mismatching_rows": bad}
    steps.done(f"{out / 'hls'}: C-sim == engine on {all_rows.shape[0] - bad}/{all_rows.shape[0]} rows")
    if bad:
        raise UserError(f"hls4ml C-sim differs from the integer engine on {bad} rows")

    steps.start("RTL: Verilog with weights in flip-flops, regmap, lint (verilator -Wall)")
    from fkhw.rtlgen.emit import write_rtl
    from fkhw.rtlgen.lint import lint

    design = write_rtl(ir, out / "rtl")
    linted = lint(design.verilog_files(out / "rtl"), design.meta["top"], include_dirs=[out / "rtl"])
    lint_text = "clean" if linted.ok else f"{linted.warnings} warnings/errors"
    write_text(out / "rtl" / "lint.log", " ".join(map(str, linted.command)) + "\n" + linted.output + "\n")
    summary["rtl"] = {"dir": str(out / "rtl"), "latency": design.meta["latency"], "lint": lint_text}
    steps.done(f"{out / 'rtl'}: latency {design.meta['latency']} cycles, II=1, lint {lint_text}")
    if not linted.ok:
        raise UserError(f"verilator --lint-only -Wall: {lint_text}; see {out / 'rtl' / 'lint.log'}")

    steps.start("functional test: fault-free RTL on Verilator vs integer engine on every row")
    from fkhw.levels.rtl import RtlLevel

    rtl = RtlLevel(ir, jobs=1)
    got = rtl.golden(all_rows)
    bad = int((got != want).any(axis=1).sum())
    summary["functional"] = {"rows": int(all_rows.shape[0]), "mismatching_rows": bad,
                             "build_seconds": rtl.stats.get("build_seconds")}
    steps.done(f"RTL == engine on {all_rows.shape[0] - bad}/{all_rows.shape[0]} rows")
    if bad:
        raise UserError(f"the RTL differs from the integer engine on {bad} rows")

    if args.gate_level:
        _gate_level(steps, ir, out, all_rows, want, summary)

    common = dict(n_inputs=args.inputs, seed=args.seed, data=args.data, **metric)
    steps.start("exhaustive SEU campaign on the RTL (cocotb + Verilator)")
    rtl_dir = out / "campaign_rtl"
    res_rtl = run_campaign(CampaignSpec(args.model, level="rtl", jobs=args.jobs, **common), bundle, rtl_dir,
                           fresh=args.fresh)
    rate = res_rtl.summary["n_sites"] / max(steps.elapsed, 1e-9)
    campaign_figure1(space, bundle.name, rtl_dir, "rtl", args.inputs)
    steps.done(f"{rtl_dir}: {res_rtl.summary['n_sites']} sites, {rate:.0f} injections/s")

    steps.start("the same campaign on the software engine")
    sw_dir = out / "campaign_software"
    res_sw = run_campaign(CampaignSpec(args.model, level="software", **common), bundle, sw_dir, fresh=args.fresh)
    campaign_figure1(space, bundle.name, sw_dir, "software", args.inputs)
    steps.done(f"{sw_dir}")

    steps.start("software vs RTL agreement, joined on site")
    from fkhw.campaign.agreement import Campaign, compare

    ag = compare(Campaign.load(sw_dir), Campaign.load(rtl_dir))
    write_text(rtl_dir / "agreement.json", json.dumps({"a": str(sw_dir), "b": str(rtl_dir), **ag.to_dict()},
                                                      indent=2) + "\n")
    summary["agreement"] = {"common_sites": ag.common_sites, "disagreeing_sites": len(ag.disagreeing_sites)}
    steps.done(f"{len(ag.disagreeing_sites)} disagreeing sites of {ag.common_sites}")

    from fkhw.tmr.flow import run_tmr
    from fkhw.tmr.select import parse_rule
    from fkhw.tmr.stable import HeldOut, find_stable

    rule = parse_rule(args.tmr_threshold, None, args.tmr_rule)
    what = "auto: 32, 64, ... modules" if tmr_counts is None else f"{tmr_counts} modules"
    steps.start(f"inputs for the TMR map ({what}), each map checked on {args.validate_inputs} held-out modules")
    auto = find_stable(bundle, rule, out / "tmr", args.seed, args.data, HeldOut(args.validate_inputs),
                       max_inputs=tmr_counts or args.max_inputs, start=tmr_counts or 32, metric=metric)
    v = auto.validation
    steps.done(f"{auto.reason}; coverage {100 * v.coverage:.2f}%, worst unprotected held-out {col} "
               f"{v.worst_unprotected_emd_norm:.4f}")

    steps.start(f"selective TMR ({rule.describe(col)}, {auto.steps[-1].inputs} modules): map, annotations, "
                "hardened RTL, area, proof")
    tmr_report = run_tmr(auto.campaign, out / "tmr", rule, bundle, synth=not args.no_synth, prove=True,
                         jobs=args.jobs, evidence={"auto": auto.to_dict(), "validation": v.to_dict()},
                         gate_level=args.gate_level, protect_control=True)
    summary["tmr"] = {k: tmr_report[k] for k in ("rule", "protected_bits", "all_bits", "overhead_pct",
                                                 "campaign_modules", "protected_bits_by_threshold")}
    summary["tmr"]["evidence"] = {"stable": auto.stable, "reason": auto.reason, "modules": auto.steps[-1].inputs,
                                  "heldout_modules": v.modules, "coverage": v.coverage,
                                  "worst_unprotected_heldout_emd_norm": v.worst_unprotected_emd_norm}
    for proc in background:
        proc.wait()  # done: the area table waited for its runs
    plain = next((row for row in tmr_report.get("area", []) if row["design"] == "plain"), None)
    if plain is not None:
        # the plain encoder's synthesis comes out of the area table; it belongs next to its RTL too
        expected = design.meta["flip_flops_expected"]
        report = {"source": "Yosys generic synthesis + ABC via fkhw.tmr.area (datapath + register files)",
                  "flip_flops": plain["flip_flops"], "cells": plain["cells"], "transistors": plain["transistors"],
                  "flip_flops_expected": expected, "breakdown": design.meta["flip_flops_breakdown"],
                  "flip_flops_match": plain["flip_flops"] == expected}
        write_text(out / "rtl" / "synth_report.json", json.dumps(report, indent=2) + "\n")
        summary["rtl"]["synthesis"] = report
    steps.done(f"{out / 'tmr'}")

    steps.start("every flip-flop: fault kinds on the plain and the selectively hardened design (software engine)")
    risk = _every_flip_flop(bundle, out, common, args, rule)
    summary["risk"] = {"dir": str(out / "faults"), "rows": risk}
    steps.done(f"{out / 'faults'}: risk.md, risk.png; " + "; ".join(
        f"{r['design']} {r['kind']} {r['class']}: {100 * r['fraction']:.2f}%" for r in risk
        if r["class"] in ("param", "pipeline", "control", "replica", "param+replica")))

    if not args.no_rates:
        steps.start(f"failure rates vs scrub interval (fkhw rate), {args.check_rtl} scenarios replayed on each design's RTL")
        from fkhw.rates.flow import run_rate
        from fkhw.rates.model import DEFAULT_FLUX, DEFAULT_SIGMA, Environment, parse_duration
        from fkhw.rates.flow import DEFAULT_SCRUBS

        rate = run_rate(sw_dir, out / "rate", Environment(DEFAULT_FLUX, DEFAULT_SIGMA),
                        [parse_duration(d) for d in DEFAULT_SCRUBS], 1e-3, tmr=out / "tmr",
                        transients=out / "faults" / "plain" / "pipeline", check_rtl=args.check_rtl,
                        jobs=args.jobs or 1, check_full=args.check_full_tmr,
                        log=lambda msg: print(f"      {msg}", flush=True))
        summary["rate"] = {"dir": str(out / "rate"), "rtl_check": rate.get("rtl_check"),
                           "longest_scrub_interval_s": {k: d["longest_scrub_interval_s"]
                                                        for k, d in rate["designs"].items()}}
        steps.done(f"{out / 'rate'}: rate.json, rate.png")

    steps.start("summary")
    # the campaigns' own per-threshold tables (their summary.json: the mean over their few modules) are not
    # printed: the one table of bits per threshold is the TMR map's, by the rule that chose it (print_report)
    s_sw = res_sw.summary
    print(f"{bundle.name}: RTL and software campaigns, {s_sw['n_sites']} sites x {s_sw['inputs']} modules each -> "
          f"{rtl_dir}, {sw_dir}; agreement software vs RTL: {len(ag.disagreeing_sites)} disagreeing sites of "
          f"{ag.common_sites}")
    print_report(tmr_report, out / "tmr")
    e = summary["tmr"]["evidence"]
    print(f"TMR map evidence: chosen on {e['modules']} modules ({e['reason']}); on {e['heldout_modules']} held-out "
          f"modules it covers {100 * e['coverage']:.2f}% of the sensitive bits, worst unprotected {col} "
          f"{e['worst_unprotected_heldout_emd_norm']:.4f}; {tmr_report['protected_bits']} bits protected, weight "
          f"flip-flop overhead {tmr_report['overhead_pct']:.2f}%")
    for line in stability_hint(tmr_report, "--tmr-inputs", "--tmr-threshold", "--tmr-rule"):
        print(line)
    summary["seconds"] = round(time.monotonic() - steps.t0, 1)
    summary["step_seconds"] = [round(t, 1) for t in steps.times]
    summary["step_cpu_seconds"] = [round(c, 1) for c in steps.cpu]
    write_text(out / "sim_summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    steps.done(f"all artifacts under {out}/ (sim_summary.json)")
    return 0 if not ag.disagreeing_sites else 1


def _check_metric(args) -> None:
    """--metric, --labels and array --data that cannot go together, before anything is built."""
    from fkhw.errors import UserError
    from fkhw.model.data import ARRAY_SUFFIXES, load_arrays
    from fkhw.damage.metrics import get_metric

    if get_metric(args.metric).needs_labels and args.labels is None:
        raise UserError(f"--metric {args.metric} needs --labels (one class per row of --data)")
    if args.labels is not None:
        if args.data is None or Path(args.data).suffix not in ARRAY_SUFFIXES:
            raise UserError(f"--labels {args.labels}: labels go with array inputs (--data x.npy/.npz/.h5)")
        load_arrays(args.data, args.labels)  # lengths, before anything is built


def _example_defaults(args) -> None:
    """A model directory may name its own data, labels, metric and held-out
    size (example.json, e.g. the digits example); used when the command
    line gives no --data, --labels or --metric."""
    from fkhw.model.data import model_example
    from fkhw.model.files import resolve

    if args.data is not None or args.labels is not None or args.metric != "emd":
        return
    ex = model_example(resolve(args.model).directory)
    args.data, args.labels = ex.get("data"), ex.get("labels")
    args.metric = ex.get("metric", "emd")
    if "validate_inputs" in ex and args.validate_inputs == 1024:
        args.validate_inputs = int(ex["validate_inputs"])


def _every_flip_flop(bundle, out: Path, common: dict, args, rule) -> list:
    """Campaigns of every fault kind on the plain design and on the one the
    TMR step hardened (software engine, the campaign's modules), and the table
    and figure of the risk left by class (fkhw.analysis.risk)."""
    from fkhw.campaign.run import CampaignSpec, hardening_from_map, run_campaign
    from fkhw.faults.space import Hardening
    from fkhw.damage.metrics import get_metric
    from fkhw.analysis.risk import rows_of, write_risk

    threshold = rule.value if rule.kind == "threshold" else 1.05
    # the map's design (its weight bits and, from the TMR step's --protect-control, the valid flags) and the
    # same map's weight bits alone: what protecting the control flip-flops adds
    ctrl = hardening_from_map(out / "tmr", bundle)
    n_sites = bundle.ir.n_param_bits()
    hard = Hardening(ctrl.sites(n_sites), False, ctrl.source)
    designs = ("plain", "selective", "selective+control")
    plan = [("plain", None, k) for k in ("seu", "mbu:2", "pipeline", "accumulate:4")]
    plan += [("selective", hard, k) for k in ("seu", "mbu:2", "accumulate:4", "replicas", "replica-pairs")]
    plan += [("selective+control", ctrl, k) for k in ("pipeline", "replicas", "replica-pairs")]
    rows = []
    for design, hardening, kind in plan:
        folder = make_dir(out / "faults" / design.replace("+", "_") / kind.replace(":", "_"), root=out)
        spec = CampaignSpec(args.model, level="software", faults=kind, hardening=hardening,
                            thresholds=tuple(sorted({1.0, 1.01, 1.05, 1.1, threshold})), **common)
        run_campaign(spec, bundle, folder, fresh=args.fresh, quiet=True)
        rows += rows_of(folder, design, threshold)
        if kind == "pipeline" and design == "plain":  # the selective design triplicates no pipeline flip-flop
            rows += [{**r, "design": "selective"} for r in rows_of(folder, "plain", threshold)]
        if design == "selective" and kind in ("seu", "mbu:2", "accumulate:4"):  # the same weight bits triplicated
            rows += [{**r, "design": "selective+control"} for r in rows_of(folder, "selective", threshold)]
    kinds = list(dict.fromkeys(k for _, _, k in plan))
    rows.sort(key=lambda r: (kinds.index(r["kind"]), r["class"], designs.index(r["design"])))
    n_ctrl = len(ctrl.protect) - len(hard.protect)
    write_risk(rows, out / "faults", threshold, f"{bundle.name}: where the risk sits, plain vs selective TMR "
                                                f"({len(hard.protect)} weight bits) and with the {n_ctrl} valid "
                                                f"flags triplicated",
               get_metric(common.get("metric", "emd")).column)
    return rows


def _gate_level(steps, ir, out, all_rows, want, summary) -> None:
    from fkhw.errors import UserError
    from fkhw.levels.rtl import netlist_level
    from fkhw.rtlgen.netlist import NetlistError

    steps.start("gate level: Yosys netlist (generic gates, ABC) of the RTL on Verilator vs integer engine on every row")
    try:
        gl = netlist_level(ir, jobs=1, log=lambda msg: print(f"      {msg}", flush=True))
    except NetlistError as e:
        raise UserError(str(e)) from None
    gl.design.write(out / "netlist")
    got = gl.golden(all_rows)
    bad = int((got != want).any(axis=1).sum())
    nl = gl.meta["netlist"]
    summary["netlist"] = {"dir": str(out / "netlist"), "rows": int(all_rows.shape[0]), "mismatching_rows": bad,
                          "cells": nl["synthesis"]["cells"], "flip_flops": nl["flip_flops"],
                          "parameter_bits_found": nl["parameter_bits_found"], "unmapped_flip_flops": nl["unmapped"],
                          "synth_seconds": nl["synthesis"]["seconds"], "build_seconds": gl.stats.get("build_seconds")}
    steps.done(f"{out / 'netlist'}: {nl['synthesis']['cells']:,} cells, {nl['flip_flops']:,} flip-flops "
               f"({nl['parameter_bits_found']:,} parameter bits found, {nl['unmapped']} unmapped); "
               f"netlist == engine on {all_rows.shape[0] - bad}/{all_rows.shape[0]} rows")
    if bad:
        raise UserError(f"the synthesised netlist differs from the integer engine on {bad} rows")
