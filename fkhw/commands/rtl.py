"""fkhw rtl: generate the encoder's Verilog from the integer IR."""

from __future__ import annotations

import json
import time
from fkhw.commands.options import model_help, model_inputs, out_path

HELP = "generate synthesizable Verilog of the encoder (weights in a register file) with its register map"
DESCRIPTION = HELP + (". Writes fkhw_encoder.v and its template modules, regmap.csv (site,reg,bit), "
                      "fkhw_encoder.json (latency, ports, address map) into --out; --lint runs "
                      "`verilator --lint-only -Wall`, --synth runs Yosys and writes synth_report.json/.txt.")


def add_arguments(p):
    p.add_argument("--model", default="econt-bol", help=model_help(" (default: econt-bol)"))
    p.add_argument("--out", type=out_path, required=True, help="directory to write the Verilog into")
    p.add_argument("--lint", action="store_true", help="run verilator --lint-only -Wall on the result")
    p.add_argument("--synth", action="store_true", help="synthesize with Yosys; write the report next to the Verilog")
    p.add_argument("--no-abc", action="store_true", help="with --synth: skip ABC (faster; cell count less optimised)")


def run(args) -> int:
    from fkhw.errors import UserError
    from fkhw.model.bundle import load_model
    from fkhw.outpaths import check_out_dir, write_text
    from fkhw.rtlgen.emit import DEFS_FILE, META_FILE, REGMAP_FILE, TOP, TOP_FILE, RtlUnsupported, generate
    from fkhw.rtlgen.tools import ToolError

    check_out_dir(args.out, inputs=model_inputs(args.model))
    bundle = load_model(args.model)
    try:
        design = generate(bundle.ir)  # validates everything before a file is written
    except RtlUnsupported as e:
        raise UserError(f"cannot generate RTL for {bundle.name}: {e}") from None
    files = design.write(args.out)
    meta = design.meta
    print(f"{bundle.name}: {meta['n_registers']} parameter registers ({meta['n_param_bits']} flip-flops), "
          f"latency {meta['latency']} cycles, II 1 -> {args.out}/{TOP_FILE} (+{len(files) - 1} files: "
          f"templates, {DEFS_FILE}, {META_FILE}, {REGMAP_FILE})")
    verilog = design.verilog_files(args.out)
    status = 0
    if args.lint:
        from fkhw.rtlgen.lint import lint

        print("lint: verilator --lint-only -Wall ...", flush=True)
        try:
            res = lint(verilog, TOP, include_dirs=[args.out])
        except ToolError as e:
            raise UserError(str(e)) from None
        write_text(args.out / "lint.log", res.output + "\n")
        print(f"lint: {'clean' if res.ok else f'{res.warnings} warning(s)/error(s), see lint.log'}")
        status = status or (0 if res.ok else 1)
    if args.synth:
        from fkhw.rtlgen.synth import synth

        print("synth: yosys synth + ABC, each distinct fkhw_dot once (the first yowasp run compiles Yosys, ~35 s) ...",
              flush=True)
        t0 = time.time()
        try:
            rep = synth(verilog, TOP, work_dir=args.out / "synth", abc=not args.no_abc, keep=("fkhw_dot",),
                        progress=lambda msg: print(f"synth: {msg}", flush=True))
        except ToolError as e:
            raise UserError(str(e)) from None
        report = synth_report(meta, rep)
        write_text(args.out / "synth_report.json", json.dumps(report, indent=1) + "\n")
        write_text(args.out / "synth_report.txt", report["text"])
        print(report["text"], end="")
        print(f"synth: {time.time() - t0:.0f} s -> {args.out}/synth_report.txt")
        status = status or (0 if report["match"] else 1)
    return status


def synth_report(meta: dict, rep: dict) -> dict:
    """The synthesis figures next to what the generator expects."""
    b = meta["flip_flops_breakdown"]
    exp = meta["flip_flops_expected"]
    match = rep["flip_flops"] == exp
    lines = [
        f"Yosys synthesis of {meta['top']} ({meta['model']}, digest {meta['source'].get('digest', '?')}, "
        f"fkhw {meta['fkhw_version']})",
        f"  flip-flops      : {rep['flip_flops']}",
        f"  expected        : {exp} = {b['parameter_bits']} parameter bits + {b['pipeline_data_bits']} pipeline "
        f"data bits + {b['valid_bits']} valid bits -> {'MATCH' if match else 'MISMATCH'}",
        f"  cells (total)   : {rep['cells']}{'' if rep['abc'] else ' (no ABC)'}",
        f"  transistors     : {rep.get('transistors', 0)} (Yosys' CMOS estimate, stat -tech cmos)",
        "  cell types      : " + ", ".join(f"{k}={v}" for k, v in sorted(rep["cell_types"].items())),
    ]
    return {"model": meta["model"], "flip_flops": rep["flip_flops"], "flip_flops_expected": exp, "match": match,
            "breakdown": b, "cells": rep["cells"], "cell_types": rep["cell_types"], "abc": rep["abc"],
            "transistors": rep.get("transistors"),
            "seconds": rep["seconds"], "text": "\n".join(lines) + "\n"}
