"""Sphinx extension of the fkhw documentation: pages that cannot drift.

* ``{fkhw-cli}``: the CLI reference, generated from the argparse parser
  (``fkhw.cli.build_parser()``): one section per command, its usage and
  every option with its default.
* ``{fkhw-table} NAME``: a table of results read from the JSON files of a
  ``fkhw sim`` run kept under ``docs/results/<model>/`` (``:model:``,
  default the ``fkhw_results`` setting of conf.py). No figure on a page is
  typed by hand: each table is one renderer below, reading the keys the
  writers in fkhw write.
* ``{fkhw-figure} FILE``: a figure of the snapshot, as the run drew it.
* ``{fkhw-keys} FILE``: the table of a JSON file's keys with their meaning,
  checked against the snapshot: a key the page does not describe warns.
* ``{fkhw-layers}``: the package's import layers, from ``pyproject.toml``.
* ``{fkhw-const}`fkhw.module.NAME```: a constant of the code (a column
  list, a format version, a default), imported at build time.
* ``{fkhw-value}`FILE:KEY.PATH|FORMAT```: one number (or text) from such a
  file inline, e.g. ``{fkhw-value}`tmr/tmr_report.json:overhead_pct|.2f```
  (FORMAT also ``%``, ``duration``, or ``len``: how many entries a list has);
  a path step ``name[key=value]`` picks the list element whose ``key`` is
  ``value``; ``model/`` in front of FILE picks another snapshot.

A file or key that is missing is a warning, and ``make docs`` builds with
``-W``: a page naming a result the snapshot does not have fails the build.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, SphinxRole

log = logging.getLogger(__name__)
RESULTS = Path(__file__).resolve().parents[1] / "results"


class ResultError(Exception):
    """A results file or key a page names and the snapshot does not have."""


# --- reading the snapshot -----------------------------------------------------------------------


def load(model: str, name: str):
    path = RESULTS / model / name
    if not path.is_file():
        raise ResultError(f"{path.relative_to(RESULTS.parent)}: no such results file (run `make sim` and "
                          f"`make docs-results MODEL={model}`)")
    return json.loads(path.read_text())


_STEP = re.compile(r"^(?P<key>[^\[\]]+)(?:\[(?P<field>[^=\]]+)=(?P<value>[^\]]+)\])?$")


def lookup(data, path: str, where: str):
    """``a.b[design=plain].c``, list indexes as integers."""
    value = data
    for part in path.split("."):
        m = _STEP.match(part)
        if not m:
            raise ResultError(f"{where}: bad key step {part!r}")
        key = m.group("key")
        if isinstance(value, list) and key.isdigit():
            if int(key) >= len(value):
                raise ResultError(f"{where}: index {key} beyond the {len(value)} entries")
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            raise ResultError(f"{where}: no key {key!r} (have: {', '.join(map(str, value)) if isinstance(value, dict) else type(value).__name__})")
        if m.group("field"):
            found = [e for e in value if isinstance(e, dict) and str(e.get(m.group("field"))) == m.group("value")]
            if len(found) != 1:
                raise ResultError(f"{where}: {len(found)} entries of {key} with {m.group('field')} = {m.group('value')}")
            value = found[0]
    return value


def fmt(value, spec: str | None = None) -> str:
    """A value as text: ``spec`` a Python format spec; ``%`` multiplies a fraction by 100."""
    if value is None:
        return "-"
    if spec:
        return format(value, spec)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isinf(value):
            return "never"
        return f"{value:,.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"
    return str(value)


def duration(seconds) -> str:
    """Seconds as the largest unit that fits (``fkhw rate`` prints them so)."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds * 1e3:.3g} ms"


def pct(fraction: float, digits: int = 2) -> str:
    return f"{100 * fraction:.{digits}f}%"


# --- the tables ---------------------------------------------------------------------------------
# each renderer: model -> (header, rows); every number comes from the snapshot


def table_levels(model):
    s = load(model, "sim_summary.json")
    rows = s["vendored_rows"]
    out = [["hls4ml C-simulation vs the integer engine", f"{rows - s['hls']['mismatching_rows']:,} of {rows:,} rows equal"],
           ["RTL on Verilator vs the integer engine",
            f"{s['functional']['rows'] - s['functional']['mismatching_rows']:,} of {s['functional']['rows']:,} rows equal"]]
    if "netlist" in s:
        n = s["netlist"]
        out.append(["Yosys netlist on Verilator vs the integer engine", f"{n['rows'] - n['mismatching_rows']:,} of "
                                                                        f"{n['rows']:,} rows equal"])
    a = s["agreement"]
    out.append(["software vs RTL campaign, site by site", f"{a['disagreeing_sites']:,} of {a['common_sites']:,} sites "
                                                         "disagree"])
    out.append(["RTL lint (verilator --lint-only -Wall)", s["rtl"]["lint"]])
    return ["check", "result"], out


def table_thresholds(model):
    s = load(model, "campaign_software/summary.json")
    col = s["metric"]["column"] if isinstance(s.get("metric"), dict) else "emd_norm"
    rows = [[f"{col} > {fmt(r['threshold'])}", fmt(r["sensitive_bits"]), pct(r["fraction"]),
             f"{r['tmr_overhead_pct']:.2f}%"] for r in s["thresholds"].values()]
    return ["threshold", "sensitive bits", "fraction of all bits", "TMR overhead (2 x bits / all)"], rows


def table_auto(model):
    r = load(model, "tmr/tmr_report.json")
    rows = [[fmt(st["inputs"]), fmt(st["protected_bits"]), f"{st['overhead_pct']:.2f}%", pct(st["coverage"]),
             f"{st['worst_unprotected_heldout_emd_norm']:.4f}", "yes" if st["stable"] else "no"]
            for st in r["auto"]["steps"]]
    return ["modules", "protected bits", "overhead", "held-out coverage", "worst unprotected held-out", "stable"], rows


def table_area(model):
    r = load(model, "tmr/tmr_report.json")
    rows = [[a["design"], fmt(a["protected_bits"]), fmt(a["flip_flops"]), f"{a['ff_overhead']:+,d} ({a['ff_overhead_pct']:.2f}%)",
             fmt(a["cells"]), f"{a['cell_overhead']:+,d} ({a['cell_overhead_pct']:.2f}%)", fmt(a["transistors"]),
             f"{a['transistor_overhead']:+,d} ({a['transistor_overhead_pct']:.2f}%)"] for a in r["area"]]
    return ["design", "protected bits", "flip-flops", "FF overhead", "cells", "cell overhead", "transistors",
            "transistor overhead"], rows


def table_proof(model):
    r = load(model, "tmr/tmr_report.json")
    out = []
    for what, key in (("hardened RTL", "proof"), ("hardened RTL, self-correcting variant", "proof.refresh_variant"),
                      ("whole netlist after synthesis", "proof_netlist")):
        try:
            p = lookup(r, key, "tmr_report.json")
        except ResultError:
            continue
        out.append([what, fmt(p["replica_upsets"] + p.get("pipeline_and_valid_replica_upsets", 0)),
                    fmt(p["protected_output_changes"] + p.get("pipeline_and_valid_output_changes", 0)),
                    fmt(p["protected_tmr_err_misses"] + p.get("pipeline_and_valid_tmr_err_misses", 0)),
                    fmt(p["unprotected_sites"]) if p.get("unprotected_sites") else "-",
                    fmt(p["unprotected_mismatches"]) if p.get("unprotected_sites") else "-",
                    "ok" if p["ok"] else "FAILED"])
    return ["design", "single-replica upsets", "output changes", "tmr_err misses", "unprotected bits upset",
            "mismatches vs plain", "verdict"], out


def table_certificate(model):
    c = lookup(load(model, "tmr/tmr_report.json"), "certificate", "tmr_report.json")
    rows = [[d["design"], fmt(d["protected_flip_flops"]), fmt(d["register_bits"]), f"{d['seconds']:.1f}",
             "proven" if d["proven"] else "NOT proven: " + d["counterexample"]["line"], d["netlist_sha256"][:12]]
            for d in c["designs"]]
    return ["design", "replica flip-flops (any one upset)", "register bits (all contents)", "seconds", "verdict",
            "netlist SHA-256"], rows


def table_risk(model):
    r = load(model, "faults/risk.json")
    rows = [[x["design"], x["kind"], x["class"], fmt(x["faults"]),
             f"{pct(x['fraction'])} [{100 * x['lo']:.2f}, {100 * x['hi']:.2f}]", f"{x['mean_emd_norm']:.4f}"]
            for x in r["rows"]]
    return ["design", "kind", "class", "faults", f"degraded (> {fmt(r['threshold'])} or lost / extra output), 95% interval",
            "mean normalised damage"], rows


def table_rates(model):
    r = load(model, "rate/rate.json")
    first = next(iter(r["designs"].values()))
    times = [p["interval_s"] for p in first["at_scrub_interval"]]
    rows = []
    for name, d in r["designs"].items():
        pts = [f"{p['p_upper']:.3g}" + ("" if p["covered"] >= 0.99 else " (bound)") for p in d["at_scrub_interval"]]
        longest = d["longest_scrub_interval_s"]
        rows.append([name, f"{fmt(d['unprotected_param_bits'])} / {fmt(d['protected_param_bits'])}", *pts,
                     duration(longest) if longest else d["longest_scrub_interval_note"]])
    return (["design", "weight bits unprotected / triplicated", *[f"P(degraded) at {duration(t)}" for t in times],
             f"longest scrub interval for P <= {r['target']:g}"], rows)


def table_rate_environment(model):
    r = load(model, "rate/rate.json")
    e = r["environment"]
    return ["quantity", "value"], [["flux (cm^-2 s^-1)", f"{e['flux']:g}"], ["cross-section per flip-flop (cm^2)", f"{e['sigma']:g}"],
                                   ["clock (vectors per second)", f"{e['clock_hz']:g}"],
                                   ["upsets per flip-flop per second", f"{e['lam_per_s']:.3g}"],
                                   ["degraded: normalised damage above", fmt(r["threshold"])],
                                   ["accumulated upsets evaluated (k_max)", fmt(r["k_max"])],
                                   ["Monte Carlo scenarios per composition", fmt(r["samples"])]]


def table_rtl_check(model):
    r = load(model, "rate/rate.json")
    rows = [[name, fmt(c["scenarios"]), fmt(c["changing_outputs"]), fmt(c["disagreeing"])]
            for name, c in r.get("rtl_check", {}).items()]
    return ["design", "scenarios replayed on the RTL", "changing an output", "disagreeing with the fault model"], rows


def table_protect(model):
    p = load(model, "protect/protect.json")

    def prob(v):
        return "not estimated" if v is None else f"{v:.3g}"

    rows = [[r["design"] + (" (chosen)" if r["chosen"] else ""), r["kind"], prob(r["p_upper"]),
             prob(r["p_undetected_upper"]), "yes" if r["meets_target"] else "no", fmt(r["flip_flops"]),
             fmt(r["transistors"]), f"{r['transistor_overhead_pct']:.1f}"] for r in p["designs"]]
    return ["design", "kind", f"P(degraded) at {duration(p['scrub_interval_s'])}, upper bound",
            "P(undetected), upper bound", f"meets P <= {p['target']:g}", "flip-flops", "transistors",
            "transistor overhead (%)"], rows


def table_steps(model):
    s = load(model, "sim_summary.json")
    if "steps" not in s:
        raise ResultError(f"results/{model}/sim_summary.json names no steps: snapshot a run of this fkhw "
                          "(make sim, then make docs-results)")
    # the run names its steps, and what each took when it made the outputs
    rows = [[str(k + 1), st["title"], f"{st['ran_seconds']:.1f}", f"{st['ran_cpu_seconds']:.1f}"]
            for k, st in enumerate(s["steps"])]
    rows.append(["", "every step", f"{sum(st['ran_seconds'] for st in s['steps']):.1f}",
                 f"{sum(st['ran_cpu_seconds'] for st in s['steps']):.1f}"])
    return ["step", "what", "wall (s)", "CPU (s), fkhw and every tool"], rows


def table_checks(model):
    s = load(model, "sim_summary.json")
    rows = [[c["title"], "PASS" if c["passed"] else "FAIL", c["figures"]] for c in s["checks"]]
    return ["check", "verdict", "figures"], rows


def table_provenance(model):
    p = load(model, "provenance.json")
    rows = [["command", p["command"]], ["fkhw commit", p["commit"] + (" (with uncommitted changes)" if p.get("dirty") else "")],
            ["run finished", p["finished"]], ["machine", p["machine"]], ["cores", fmt(p["cores"])],
            ["memory", f"{p['memory_gib']:.1f} GiB"]]
    if p.get("note"):
        rows.append(["note", p["note"]])
    return ["the run", ""], rows


TABLES = {name[len("table_"):].replace("_", "-"): fn for name, fn in globals().items() if name.startswith("table_")}


# --- the CLI reference --------------------------------------------------------------------------


def _subparsers(parser):
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def _options(parser) -> list:
    """(flags, default, help) per option, as ``--help`` would show them."""
    import argparse

    formatter = parser._get_formatter()
    out = []
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction) or a.help == argparse.SUPPRESS:
            continue
        flags = ", ".join(a.option_strings) or a.dest
        if a.nargs != 0 and a.option_strings:
            flags += " " + formatter._format_args(a, formatter._get_default_metavar_for_optional(a))
        default = "" if a.default in (None, False, argparse.SUPPRESS) or a.nargs == 0 else str(a.default)
        if isinstance(a.default, list) and not a.default:
            default = ""
        help_ = formatter._expand_help(a) if a.help else ""
        if a.choices and not isinstance(a, argparse._SubParsersAction):
            help_ += f" (one of: {', '.join(map(str, a.choices))})"
        if a.required:
            help_ = "required. " + help_
        out.append((flags, default, help_))
    return out


def _table(header: list, rows: list, widths=None, literal_first: bool = False) -> nodes.table:
    table = nodes.table(classes=["fkhw-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for w in widths or [1] * len(header):
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    group += head
    head += _row(header)
    body = nodes.tbody()
    group += body
    for r in rows:
        body += _row(r, literal_first)
    return table


def _row(cells, literal_first: bool = False) -> nodes.row:
    row = nodes.row()
    for k, text in enumerate(cells):
        entry = nodes.entry()
        para = nodes.paragraph()
        para += nodes.literal(text=text) if (literal_first and k == 0 and text) else nodes.Text(str(text))
        entry += para
        row += entry
    return row


class CliReference(SphinxDirective):
    """Every subcommand of ``fkhw``: description, usage and options, from the parser itself."""

    has_content = False

    def run(self):
        from fkhw.cli import build_parser

        parser = build_parser()
        doc = self.state.document
        out = []
        for name, sub in _subparsers(parser).items():
            ident = f"cli-{name}"
            section = nodes.section(ids=[ident], names=[ident])
            section += nodes.title(text=f"fkhw {name}")
            doc.note_explicit_target(section, section)
            if sub.description:
                section += nodes.paragraph(text=sub.description)
            usage = " ".join(sub.format_usage().split())
            section += nodes.literal_block(usage, usage, language="text")
            rows = _options(sub)
            table = nodes.table(classes=["fkhw-table"])
            group = nodes.tgroup(cols=3)
            table += group
            for w in (3, 1, 6):
                group += nodes.colspec(colwidth=w)
            head = nodes.thead()
            group += head
            head += _row(["option", "default", "what it does"])
            body = nodes.tbody()
            group += body
            for r in rows:
                body += _row(r, literal_first=True)
            section += table
            out.append(section)
        return out


class ResultTable(SphinxDirective):
    """``{fkhw-table} NAME`` with ``:model:``: a table of a results snapshot."""

    required_arguments = 1
    option_spec = {"model": directives.unchanged}

    def run(self):
        name = self.arguments[0]
        model = self.options.get("model", self.config.fkhw_results)
        if name not in TABLES:
            raise self.error(f"fkhw-table {name!r}: no such table (have: {', '.join(sorted(TABLES))})")
        try:
            header, rows = TABLES[name](model)
        except ResultError as e:
            log.warning(f"fkhw-table {name}: {e}", location=self.get_location())
            return []
        except (KeyError, TypeError, IndexError) as e:
            log.warning(f"fkhw-table {name}: results/{model} lack {e!r} (a snapshot of another fkhw version?)",
                        location=self.get_location())
            return []
        return [_table(header, rows)]


class JsonKeys(SphinxDirective):
    """``{fkhw-keys} FILE`` with ``key: meaning`` lines: the table of a JSON
    file's top-level keys, checked against the snapshot's copy of the file.
    A key the file has and the page does not describe is a warning, and so
    is a described key the file lacks (unless written ``?key``: optional)."""

    required_arguments = 1
    has_content = True
    option_spec = {"model": directives.unchanged}

    def run(self):
        model = self.options.get("model", self.config.fkhw_results)
        described, rows = {}, []
        for line in self.content:
            if not line.strip():
                continue
            key, sep, meaning = line.partition(":")
            if not sep:
                raise self.error(f"fkhw-keys: {line!r} is not 'key: meaning'")
            optional = key.startswith("?")
            key = key.strip().lstrip("?")
            described[key] = optional
            rows.append([key + (" (optional)" if optional else ""), meaning.strip()])
        try:
            data = load(model, self.arguments[0])
        except ResultError as e:
            log.warning(f"fkhw-keys: {e}", location=self.get_location())
            return [_table(["key", "meaning"], rows)]
        undescribed = [k for k in data if k not in described]
        absent = [k for k, optional in described.items() if not optional and k not in data]
        if undescribed:
            log.warning(f"fkhw-keys {self.arguments[0]}: keys of results/{model} not described here: "
                        f"{', '.join(undescribed)}", location=self.get_location())
        if absent:
            log.warning(f"fkhw-keys {self.arguments[0]}: described keys results/{model} does not have: "
                        f"{', '.join(absent)} (mark optional ones ?key)", location=self.get_location())
        return [_table(["key", "meaning"], rows, literal_first=True)]


class ResultFigure(SphinxDirective):
    """``{fkhw-figure} FILE`` (``:model:``) with a caption as content: a
    figure of the results snapshot, as the run drew it."""

    required_arguments = 1
    has_content = True
    option_spec = {"model": directives.unchanged, "alt": directives.unchanged}

    def run(self):
        model = self.options.get("model", self.config.fkhw_results)
        path = RESULTS / model / self.arguments[0]
        if not path.is_file():
            log.warning(f"fkhw-figure: results/{model}/{self.arguments[0]}: no such file (run `make sim` and "
                        f"`make docs-results MODEL={model}`)", location=self.get_location())
            return []
        # image paths are relative to the page's own folder
        page_dir = Path(self.env.doc2path(self.env.docname)).parent
        uri = os.path.relpath(path, page_dir)
        caption = " ".join(self.content).strip()
        figure = nodes.figure()
        figure += nodes.image(uri=uri, alt=self.options.get("alt", caption))
        if caption:
            figure += nodes.caption(text=caption)
        return [figure]


class ResultValue(SphinxRole):
    """``{fkhw-value}`[model/]file.json:key.path|format```."""

    def run(self):
        text = self.text
        spec = None
        if "|" in text:
            text, spec = text.rsplit("|", 1)
        if ":" not in text:
            log.warning(f"fkhw-value {self.text!r}: give FILE:KEY", location=self.get_location())
            return [], []
        name, key = text.split(":", 1)
        model = self.config.fkhw_results
        first, _, rest = name.partition("/")
        if rest and (RESULTS / first).is_dir() and not (RESULTS / model / first).is_dir():
            model, name = first, rest
        try:
            value = lookup(load(model, name), key, f"results/{model}/{name}")
            if spec == "%":
                shown = pct(value)
            elif spec == "duration":
                shown = duration(value)
            elif spec == "len":  # the number of entries of a list
                shown = fmt(len(value))
            else:
                shown = fmt(value, spec)
        except (ResultError, ValueError, TypeError) as e:
            log.warning(f"fkhw-value {self.text!r}: {e}", location=self.get_location())
            return [], []
        return [nodes.Text(shown)], []


class CodeConstant(SphinxRole):
    """``{fkhw-const}`fkhw.module.NAME```: a constant of the code (column lists,
    format versions, defaults) as the code defines it, so a page cannot
    drift from what the writers write."""

    def run(self):
        import importlib

        module, _, name = self.text.rpartition(".")
        try:
            value = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as e:
            log.warning(f"fkhw-const {self.text!r}: {e}", location=self.get_location())
            return [], []
        if isinstance(value, dict):  # a registry: its names
            value = list(value)
        if isinstance(value, (list, tuple)):
            out = []
            for k, v in enumerate(value):
                if k:
                    out.append(nodes.Text(", "))
                out.append(nodes.literal(text=str(v)))
            return out, []
        return [nodes.literal(text=str(value))], []


class ImportLayers(SphinxDirective):
    """``{fkhw-layers}``: the layers of the package as ``pyproject.toml``'s
    import-linter contract states them (``lint-imports`` enforces them)."""

    def run(self):
        import tomllib

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        contracts = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
        out = []
        for c in contracts:
            if c.get("type") != "layers":
                continue
            rows = [[str(k + 1), " | ".join(f"{m.strip()}" for m in layer.split("|"))]
                    for k, layer in enumerate(c["layers"])]
            out += [nodes.paragraph(text=c["name"]), _table(["layer (top first)", "packages (| = siblings)"], rows)]
        return out


def setup(app):
    app.add_config_value("fkhw_results", "econt-bol", "env")
    app.add_directive("fkhw-cli", CliReference)
    app.add_directive("fkhw-table", ResultTable)
    app.add_directive("fkhw-keys", JsonKeys)
    app.add_directive("fkhw-figure", ResultFigure)
    app.add_directive("fkhw-layers", ImportLayers)
    app.add_role("fkhw-value", ResultValue())
    app.add_role("fkhw-const", CodeConstant())
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

