"""What a review run leaves for people and for CI systems.

* ``sim_summary.json``: every step's result and time (the format in docs/formats.md);
* ``report.html``: one self-contained page (figures embedded, no network,
  printable) with what was run, every check and its verdict, the steps, the
  TMR map and its evidence, the area table, the risk by flip-flop class,
  the failure rates and every figure with a caption;
* ``report.md``: the same document for code-review tools (figures linked);
* ``results.xml``: JUnit XML, one test case per check, failing where the
  check failed, so a CI job that runs ``make sim`` shows its verdicts.

The HTML and Markdown are rendered from one list of sections, and every
check comes from :func:`fkhw.review.checks.checks_of`.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import os
import platform
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from fkhw.outpaths import write_json, write_text
from fkhw.review.checks import checks_of
from fkhw.review.ledger import Ledger

TABLE_WIDTH = 100  # the terminal summary fits this many columns

# (file under --out, caption: what to read from it)
FIGURES = (
    ("campaign_software/figure1.png", "Damage of every single upset, one square per parameter bit (rows: bit, "
                                      "0 = sign; columns: parameter index), on the software campaign's modules. "
                                      "Dark squares are the bits worth protecting."),
    ("campaign_rtl/figure1.png", "The same map measured on the RTL (cocotb + Verilator): it must look identical, "
                                 "and the agreement check says it is, bit for bit."),
    ("replay/replay.png", "The most damaging single upset, replayed on the RTL: the module it hurts most, its "
                          "input charge and the decoder's reconstruction without and with the upset (their EMDs in "
                          "the titles), and the latent codes it changed. replay/waves.vcd is the same run as a "
                          "waveform (markers: run_cycle, wave_upset, out_slot, out_differs)."),
    ("tmr/figure1_tmr.png", "The damage map with the bits the TMR map protects marked in red."),
    ("tmr/tradeoff.png", "The selective-TMR trade-off: flip-flop overhead of the weight storage (x) against the "
                         "worst single-upset damage left unprotected (y); full TMR is the dotted line at 200%."),
    ("faults/risk.png", "Where the risk sits: the share of upsets that degrade the output, per flip-flop class and "
                        "fault kind, on the plain and the selectively hardened design (bars: 95% Wilson intervals)."),
    ("protect/protect.png", "The protection choice: each design's transistor overhead over the plain encoder "
                            "against its probability of a degraded output at the scrub interval (upper bound), the "
                            "target (dashed), the Pareto front (dotted) and the chosen design (outlined)."),
    ("rate/rate.png", "Probability that an output is degraded against the scrub interval, per design; the dotted "
                      "line is the target."),
)


@dataclass(frozen=True)
class Table:
    header: tuple
    rows: tuple


@dataclass(frozen=True)
class Section:
    title: str
    text: tuple = ()  # paragraphs
    tables: tuple = ()
    figures: tuple = ()  # (path under --out, caption)
    links: tuple = ()  # paths under --out


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _provenance(run, wall: float, cpu: float) -> dict:
    from fkhw import __version__

    commit = None
    try:
        here = Path(__file__).resolve().parent
        r = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                           timeout=10, check=False)
        commit = r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    o = run.opts
    return {"model": o.model, "model_digest": run.model_digest, "data": o.data or "the vendored HGCAL sample",
            "metric": o.metric, "fkhw": __version__, "commit": commit, "python": platform.python_version(),
            "machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)",
            "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1)}


@dataclass
class Review:
    """A finished run: its summary, checks and the files written from them."""

    out: Path
    summary: dict
    checks: list
    steps: list  # fkhw.review.ledger.Outcome, in order
    tmr_report: dict | None = None  # tmr/tmr_report.json, as the checks read it
    sections: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @staticmethod
    def write(run, ledger: Ledger) -> "Review":
        out = run.out
        res = run.results
        tmr_report = _load(out / "tmr" / "tmr_report.json")
        rate = _load(out / "rate" / "rate.json") if "rates" in res else None
        checks = checks_of(res, tmr_report, rate, run.column)
        wall = time.monotonic() - ledger.t0
        outcomes = list(ledger.outcomes.values())
        summary = _summary(run, outcomes, wall)
        review = Review(out, summary, checks, outcomes, tmr_report)
        prov = _provenance(run, wall, sum(s.cpu_seconds for s in outcomes))
        review.sections = _sections(review, prov, tmr_report, rate, res)
        write_json(out / "sim_summary.json", {**summary, "provenance": prov,
                                              "checks": [c.__dict__ for c in checks]}, default=str)
        write_text(out / "results.xml", junit_xml(checks, f"fkhw sim {summary['model']}", wall))
        write_text(out / "report.md", render_markdown(review.sections, f"fkhw review: {summary['model']}"))
        write_text(out / "report.html", render_html(review.sections, f"fkhw review: {summary['model']}", out))
        return review

    def table(self) -> list:
        """The terminal summary: steps, then checks, each line at most TABLE_WIDTH columns."""
        lines = [f"{'step':<18} {'status':<11} {'wall s':>8} {'CPU s':>8}  result"]
        for s in self.steps:
            status = "ran" if s.ran else "up to date"
            brief = s.result.get("line", "").replace(f"{self.out}/", "").replace(str(self.out), ".")
            lines.append(f"{s.name:<18} {status:<11} {s.seconds:8.1f} {s.cpu_seconds:8.1f}  {brief}")
        lines.append("")
        lines.append(f"{'check':<30} {'verdict':<7}  figures")
        for c in self.checks:
            lines.append(f"{c.name:<30} {'PASS' if c.passed else 'FAIL':<7}  {c.figures}")
        n_fail = sum(not c.passed for c in self.checks)
        lines.append(f"{len(self.checks) - n_fail} of {len(self.checks)} checks pass; report: "
                     f"{self.out / 'report.html'}, {self.out / 'results.xml'}")
        return [_clip(line) for line in lines]


def _clip(line: str) -> str:
    return line if len(line) <= TABLE_WIDTH else line[:TABLE_WIDTH - 3] + "..."


def _per_hour(upsets) -> float:
    """rate.json's upsets per hour: one figure, or one per flip-flop class (summed here)."""
    return float(sum(upsets.values())) if isinstance(upsets, dict) else float(upsets)


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _summary(run, outcomes: list, wall: float) -> dict:
    """sim_summary.json, in the keys docs/formats.md lists."""
    res, out = run.results, run.out
    model = res["model"]
    s = {"model": run.bundle.name, "out": str(out), "vendored_rows": model["vendored_rows"],
         "hls": {k: res["hls"][k] for k in ("project", "mismatching_rows")},
         "rtl": {k: res["rtl"][k] for k in ("dir", "latency", "lint")},
         "functional": {k: res["functional"][k] for k in ("rows", "mismatching_rows", "build_seconds")}}
    if "gate_level" in res:
        s["netlist"] = {k: v for k, v in res["gate_level"].items() if k != "line"}
    s["agreement"] = {k: res["agreement"][k] for k in ("common_sites", "disagreeing_sites")}
    s["tmr"] = {k: v for k, v in res["tmr"].items() if k not in ("line", "synthesis")}
    if "synthesis" in res["tmr"]:
        s["rtl"]["synthesis"] = res["tmr"]["synthesis"]
    s["risk"] = {"dir": res["faults"]["dir"], "rows": res["faults"]["rows"]}
    if "rates" in res:
        s["rate"] = {k: v for k, v in res["rates"].items() if k != "line"}
    if "protect" in res:
        s["protect"] = {k: v for k, v in res["protect"].items() if k != "line"}
    s["seconds"] = round(wall, 1)
    s["step_seconds"] = [round(o.seconds, 1) for o in outcomes]
    s["step_cpu_seconds"] = [round(o.cpu_seconds, 1) for o in outcomes]
    s["steps"] = [{"name": o.name, "title": o.title, "ran": o.ran, "reason": o.reason,
                   "seconds": round(o.seconds, 1), "cpu_seconds": round(o.cpu_seconds, 1),
                   "ran_seconds": round(o.ran_seconds, 1), "ran_cpu_seconds": round(o.ran_cpu_seconds, 1)}
                  for o in outcomes]
    return s


# -- the document ------------------------------------------------------------------------------


def _sections(review: Review, prov: dict, tmr: dict | None, rate: dict | None, res: dict) -> list:
    checks = review.checks
    n_fail = sum(not c.passed for c in checks)
    verdict = "every check passes" if not n_fail else f"{n_fail} of {len(checks)} checks FAIL"
    sections = [Section("What was run", (f"{len(checks) - n_fail} of {len(checks)} checks pass: {verdict}.",),
                        (Table(("what", "value"), tuple((k.replace("_", " "), _fmt(v)) for k, v in prov.items())),))]
    sections.append(Section("Checks", ("Each check and the figures it rests on; results.xml holds the same list "
                                       "for CI systems.",),
                            (Table(("check", "verdict", "figures", "evidence"),
                                   tuple((c.title, "PASS" if c.passed else "FAIL", c.figures, c.artifact)
                                         for c in checks)),)))
    sections.append(Section("Steps", ("A step reruns only when its inputs or the files it reads changed "
                                      "(fkhw sim --force STEP reruns one).",),
                            (Table(("step", "in this run", "why", "wall (s) when it ran", "CPU (s) when it ran"),
                                   tuple((s.title, "ran" if s.ran else "up to date", s.reason,
                                          f"{s.ran_seconds:.1f}", f"{s.ran_cpu_seconds:.1f}")
                                         for s in review.steps)),)))
    if tmr:
        col = tmr.get("damage_column", "emd_norm")
        text = [f"{tmr['rule']['text']}: {tmr['protected_bits']} of {tmr['all_bits']} parameter bits protected, "
                f"weight flip-flop overhead {tmr['overhead_pct']:.2f}% (full TMR: 200%). Chosen on "
                f"{tmr.get('campaign_modules', '?')} modules."]
        v = tmr.get("validation")
        if v:
            text.append(f"Held-out check on {v['modules']} other modules: coverage {100 * v['coverage']:.2f}% "
                        f"({v['protected_sensitive_bits']} of {v['sensitive_bits']} bits with {col} > "
                        f"{v['threshold']:g} there are protected), worst unprotected {col} "
                        f"{v['worst_unprotected_emd_norm']:.4f}: {'stable' if v['stable'] else 'NOT stable'} "
                        f"({v['stable_means']}).")
        tables = [Table(("threshold", "bits protected", "weight flip-flop overhead (%)"),
                        tuple((f"> {r['threshold']:g}", str(r["protected_bits"]), f"{r['overhead_pct']:.2f}")
                              for r in tmr.get("protected_bits_by_threshold", [])))]
        if v and v["missed"]:
            tables.append(Table(("unprotected bit", f"held-out {col}"),
                                tuple((f"site {m['site']} ({m['layer']} {m['tensor']}[{m['index']}] bit {m['bit']})",
                                       f"{m['heldout_emd_norm']:.4f}") for m in v["missed"])))
        sections.append(Section("The TMR map and its evidence", tuple(text), tuple(tables)))
        if tmr.get("area"):
            sections.append(Section("Area (Yosys generic synthesis)",
                                    ((tmr.get("area_not_counted") or {}).get("text", ""),),
                                    (Table(("design", "flip-flops", "cells", "transistors", "FF overhead (%)",
                                            "cell overhead (%)"),
                                           tuple((r["design"], str(r["flip_flops"]), str(r["cells"]),
                                                  str(r.get("transistors", "")), f"{r.get('ff_overhead_pct', 0):.2f}",
                                                  f"{r.get('cell_overhead_pct', 0):.2f}") for r in tmr["area"])),)))
    rows = res["faults"]["rows"]
    sections.append(Section("Where the risk sits",
                            (f"Faults that degrade the output ({res['faults'].get('threshold', '')} threshold, or a "
                             "lost / extra output), by design, fault kind and flip-flop class, with 95% Wilson "
                             "intervals.",),
                            (Table(("design", "fault kind", "class", "faults", "degraded", "share (%)", "95% interval"),
                                   tuple((r["design"], r["kind"], r["class"], str(r["faults"]), str(r["degraded"]),
                                          f"{100 * r['fraction']:.2f}", f"[{100 * r['lo']:.2f}, {100 * r['hi']:.2f}]")
                                         for r in rows)),)))
    if rate:
        sections.append(Section("Failure rates",
                                (f"Target: P(degraded output) <= {rate['target']:g}; flux and cross-section as in "
                                 "rate/rate.json.",),
                                (Table(("design", "upsets per hour (all flip-flops)", "longest scrub interval (s)"),
                                       tuple((name, f"{_per_hour(d['upsets_per_hour']):.3g}",
                                              "never reached" if d["longest_scrub_interval_s"] is None
                                              else f"{d['longest_scrub_interval_s']:.3g}")
                                             for name, d in rate["designs"].items())),)))
    if "protect" in res:
        sections.append(_protect_section(_load(review.out / "protect" / "protect.json")))
    figures = tuple((p, c) for p, c in FIGURES if (review.out / p).is_file())
    sections.append(Section("Figures", (), (), figures))
    artifacts = [p for p in ("sim_summary.json", "results.xml", "rtl/fkhw_encoder.v", "rtl/regmap.csv",
                             "campaign_rtl/campaign.csv", "campaign_software/campaign.csv", "tmr/tmr_map.csv",
                             "tmr/tmr_report.json", "tmr/annotations/README.md", "tmr/hardened_rtl/fkhw_encoder.v",
                             "faults/risk.md", "rate/rate.json", "protect/protect.csv") if (review.out / p).is_file()]
    sections.append(Section("Artifacts", links=tuple(artifacts)))
    return sections


def _protect_section(p: dict) -> Section:
    """The protection choice: every candidate's failure probability and area (protect/protect.json)."""
    def prob(v):
        return "" if v is None else f"{v:.3g}"

    return Section("Protection choice",
                   (f"At a scrub interval of {p['scrub_interval_s']:g} s, target P(degraded output) <= "
                    f"{p['target']:g}: {p['criterion']}. Chosen: {p['chosen'] or 'none (no design meets the target)'}. "
                    + ("Pipeline and control upsets count as in the failure rates. " if p.get("transients") else
                       "Weight upsets only. ") +
                    "P(undetected): a degraded output while no error flag is up (plain: every one; parity: two "
                    "upsets in a word); not estimated for the others." + _proof_line(p.get("proof")),),
                   (Table(("design", "kind", "P(degraded), upper", "P(undetected), upper", "meets target",
                           "flip-flops", "transistors", "transistor overhead (%)"),
                          tuple((r["design"] + (" (chosen)" if r["chosen"] else ""), r["kind"], prob(r["p_upper"]),
                                 prob(r["p_undetected_upper"]), "yes" if r["meets_target"] else "no",
                                 str(r["flip_flops"]), str(r["transistors"]), f"{r['transistor_overhead_pct']:.1f}")
                                for r in p["designs"])),))


def _proof_line(proof: dict | None) -> str:
    """What the chosen design's proof on its RTL found (protect.json proof), as a sentence."""
    if not proof or proof["ok"] is None:
        return ""
    return (f" The chosen design, proved by injection on its RTL: {proof['faults']:,} faults, "
            + ("every promise kept." if proof["ok"] else f"broken: {', '.join(proof['broken'])}."))


def render_markdown(sections: list, title: str) -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for p in s.text:
            if p:
                lines += [p, ""]
        for t in s.tables:
            lines.append("| " + " | ".join(t.header) + " |")
            lines.append("|" + "---|" * len(t.header))
            lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in t.rows]
            lines.append("")
        for path, caption in s.figures:
            lines += [f"![{caption}]({path})", "", f"*{caption}*", ""]
        lines += [f"- [{path}]({path})" for path in s.links] + ([""] if s.links else [])
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:0.25em 0.6em;
text-align:left;vertical-align:top}th{background:#f3f3f3}.PASS{color:#176f2c;font-weight:bold}
.FAIL{color:#b00020;font-weight:bold}figure{margin:1em 0 2em}img{max-width:100%}
figcaption{font-size:0.9em;color:#444}@media print{figure{break-inside:avoid}}"""


def _cell(text: str) -> str:
    text = str(text)
    if text in ("PASS", "FAIL"):
        return f'<span class="{text}">{text}</span>'
    return html.escape(text)


def render_html(sections: list, title: str, out: Path) -> str:
    """One self-contained page: the figures are embedded as data: URIs."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        body += [f"<p>{html.escape(p)}</p>" for p in s.text if p]
        for t in s.tables:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
            rows = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in t.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        for path, caption in s.figures:
            data = base64.b64encode((out / path).read_bytes()).decode()
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                        f"<figcaption>{html.escape(path)}: {html.escape(caption)}</figcaption></figure>")
        if s.links:
            body.append("<ul>" + "".join(f'<li><a href="{html.escape(p)}">{html.escape(p)}</a></li>' for p in s.links)
                        + "</ul>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def junit_xml(checks: list, suite: str, seconds: float) -> str:
    """JUnit XML: one test case per check, a <failure> where it failed."""
    n_fail = sum(not c.passed for c in checks)
    suites = ET.Element("testsuites", name=suite, tests=str(len(checks)), failures=str(n_fail), errors="0",
                        time=f"{seconds:.1f}")
    ts = ET.SubElement(suites, "testsuite", name=suite, tests=str(len(checks)), failures=str(n_fail), errors="0",
                       skipped="0", time=f"{seconds:.1f}")
    for c in checks:
        case = ET.SubElement(ts, "testcase", classname=suite.replace(" ", "."), name=c.name, time="0")
        if not c.passed:
            f = ET.SubElement(case, "failure", message=f"{c.title}: {c.figures}", type="CheckFailed")
            f.text = f"{c.title}\n{c.figures}\nevidence: {c.artifact}"
        out = ET.SubElement(case, "system-out")
        out.text = f"{c.title}: {c.figures} (evidence: {c.artifact})"
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
