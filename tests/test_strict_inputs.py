"""Strict inputs (issue 23): every reader of a user file, given each class of
bad value, refuses it in one line naming the file, the entry (index, row or
key) and the field, with no traceback and a non-zero exit.

Readers: faults files (JSON and CSV, ``fkhw campaign --faults-file``), TMR
maps (``fkhw campaign --tmr``, ``fkhw rate --tmr``), a campaign folder's
summary.json and campaign.csv (``fkhw tmr --campaign``), site lists
(``--sites``) and HGCAL data CSVs (``--data``). Classes: a boolean, a float
or a string where an integer is meant, a negative value, a value beyond the
design's range, beyond int64, NaN or infinity, a missing field, an unknown
(misspelt) field, a key listed twice and the wrong top-level type. Then the
extremes of ``fkhw rate`` (flux, clock, scrub), a user metric that calls
``sys.exit(0)``, and an output file whose folder is missing.

Commands run in process through ``fkhw.cli.main`` (what the console script
runs), except the metric's exit status, which is the process's own.

Nine cases were already refused in one such line at f00cdeb (a JSON fault
without upsets or not an object, a CSV fault without upsets, a map that is
not an object, and a summary.json with a float, string, negative or NaN
count or baseline, or without a field); they stay so that every class is
covered for every reader. Every other case failed there: accepted silently,
a traceback, or a line without the row, entry or field.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

INPUTS = 8
BIG = 2**70  # beyond int64


# -- good files, each mutated into a bad one by a case ---------------------------------------------

def _faults_json() -> list:
    # parameter flip-flops 1, 2 and 3; fault 1 upsets two of them and is scrubbed at cycle 3
    return [{"fault": 0, "upsets": [[1, 0]]}, {"fault": 1, "upsets": [[2, 0], [3, 1]], "scrub": 3}]


FAULTS_CSV = ["fault,upsets,scrub", "0,1@0,", "1,2@0;3@1,3"]


@dataclass(frozen=True)
class Case:
    reader: str
    bad: str  # the class of bad input
    command: tuple  # {file} is the bad file (or folder), {ws} the workspace, {model} the small model
    names: tuple  # what the one error line must hold (formatted like command), besides the file
    make: object = None  # (ws) -> text of the bad file, or a callable editing a copied folder

    @property
    def id(self) -> str:
        return f"{self.reader}-{self.bad}"


def _json_edit(edit):
    def make(ws):
        doc = copy.deepcopy(ws["faults_json"])
        return json.dumps(edit(doc, ws))
    return make


def _set(path: tuple, value):
    """An edit setting doc[path[0]][path[1]]... = value (value(ws) if callable)."""
    def edit(doc, ws):
        target = doc
        for k in path[:-1]:
            target = target[k]
        target[path[-1]] = value(ws) if callable(value) else value
        return doc
    return edit


def _drop(path: tuple):
    def edit(doc, ws):
        target = doc
        for k in path[:-1]:
            target = target[k]
        del target[path[-1]]
        return doc
    return edit


CAMPAIGN = ("campaign", "--model", "{model}", "--inputs", INPUTS, "--out", "{out}")
FAULTS = CAMPAIGN + ("--faults-file", "{file}")

FAULTS_JSON_CASES = [
    Case("faults-json", "bool-as-int", FAULTS, ("entry 1", "upsets[0] flip-flop"),
         _json_edit(_set((1, "upsets", 0, 0), True))),
    Case("faults-json", "float-as-int", FAULTS, ("entry 1", "upsets[1] cycle"),
         _json_edit(_set((1, "upsets", 1, 1), 1.5))),
    Case("faults-json", "string-as-int", FAULTS, ("entry 1", "fault"), _json_edit(_set((1, "fault"), "1"))),
    Case("faults-json", "negative-scrub", FAULTS, ("entry 1", "scrub"), _json_edit(_set((1, "scrub"), -1))),
    Case("faults-json", "flip-flop-beyond-the-design", FAULTS, ("fault 1", "flip-flop"),
         _json_edit(_set((1, "upsets", 0, 0), lambda ws: ws["n_ff"]))),
    Case("faults-json", "scrub-beyond-the-frame", FAULTS, ("fault 1", "scrub"),
         _json_edit(_set((1, "scrub"), 10**6))),
    Case("faults-json", "cycle-beyond-int64", FAULTS, ("entry 1", "upsets[1] cycle"),
         _json_edit(_set((1, "upsets", 1, 1), BIG))),
    Case("faults-json", "fault-id-beyond-int64", FAULTS, ("entry 0", "fault"), _json_edit(_set((0, "fault"), BIG))),
    Case("faults-json", "nan-cycle", FAULTS, ("entry 1", "upsets[1] cycle"),
         _json_edit(_set((1, "upsets", 1, 1), float("nan")))),
    Case("faults-json", "missing-upsets", FAULTS, ("entry 1", "upsets"), _json_edit(_drop((1, "upsets")))),
    Case("faults-json", "unknown-field", FAULTS, ("entry 1", "scrb"), _json_edit(_set((1, "scrb"), 3))),
    Case("faults-json", "upset-of-three-numbers", FAULTS, ("entry 0", "upsets[0]"),
         _json_edit(_set((0, "upsets", 0), [1, 0, 0]))),
    Case("faults-json", "entry-not-an-object", FAULTS, ("entry 1",), _json_edit(_set((1,), 5))),
    Case("faults-json", "key-twice", FAULTS, ("'scrub'", "twice"),
         lambda ws: '[{"fault": 0, "upsets": [[1, 0]], "scrub": 2, "scrub": 1}]'),
]


def _csv_row(row: str):
    return lambda ws: "\n".join(FAULTS_CSV[:2] + [row.format(n_ff=ws["n_ff"])]) + "\n"


FAULTS_CSV_CASES = [
    Case("faults-csv", "bool-as-int", FAULTS, ("row 3", "fault"), _csv_row("true,2@0,")),
    Case("faults-csv", "float-as-int", FAULTS, ("row 3", "upsets"), _csv_row("1,2@0;3@1.5,3")),
    Case("faults-csv", "string-as-int", FAULTS, ("row 3", "scrub"), _csv_row("1,2@0,soon")),
    Case("faults-csv", "negative-scrub", FAULTS, ("row 3", "scrub"), _csv_row("1,2@0,-1")),
    Case("faults-csv", "flip-flop-beyond-the-design", FAULTS, ("fault 1", "flip-flop"), _csv_row("1,{n_ff}@0,")),
    Case("faults-csv", "cycle-beyond-int64", FAULTS, ("row 3", "upsets", "cycle"), _csv_row(f"1,2@{BIG},")),
    Case("faults-csv", "fault-id-beyond-int64", FAULTS, ("row 3", "fault"), _csv_row(f"{BIG},2@0,")),
    Case("faults-csv", "nan-scrub", FAULTS, ("row 3", "scrub"), _csv_row("1,2@0,nan")),
    Case("faults-csv", "missing-upsets", FAULTS, ("row 3", "upsets"), _csv_row("1,,3")),
]


# TMR maps: {file} is a `fkhw tmr` folder whose tmr_map.json an edit changed
def _map_edit(edit):
    def make(ws):
        doc = json.loads((ws["map"] / "tmr_map.json").read_text())
        return json.dumps(edit(doc, ws))
    return make


MAP = CAMPAIGN + ("--faults", "replicas", "--tmr", "{file}")
RATE_MAP = ("rate", "--campaign", "{camp}", "--out", "{out}", "--tmr", "{file}")
MAP_CASES = [
    Case("tmr-map", "bool-as-int", MAP, ("--tmr", "entries[1] site"), _map_edit(_set(("entries", 1, "site"), True))),
    Case("tmr-map", "float-as-int", MAP, ("--tmr", "entries[1] site"), _map_edit(_set(("entries", 1, "site"), 3.0))),
    Case("tmr-map", "string-as-int", MAP, ("--tmr", "entries[1] site"), _map_edit(_set(("entries", 1, "site"), "3"))),
    Case("tmr-map", "negative-site", MAP, ("--tmr", "entries[1] site"), _map_edit(_set(("entries", 1, "site"), -1))),
    Case("tmr-map", "site-beyond-the-model", MAP, ("--tmr", "entries[1] site"),
         _map_edit(_set(("entries", 1, "site"), lambda ws: ws["n_sites"]))),
    Case("tmr-map", "site-beyond-int64", MAP, ("--tmr", "entries[1] site"),
         _map_edit(_set(("entries", 1, "site"), BIG))),
    Case("tmr-map", "nan-site", MAP, ("--tmr", "entries[1] site"),
         _map_edit(_set(("entries", 1, "site"), float("nan")))),
    Case("tmr-map", "site-listed-twice", MAP, ("--tmr", "entries[1] site"),
         _map_edit(lambda d, ws: _set(("entries", 1, "site"), d["entries"][0]["site"])(d, ws))),
    Case("tmr-map", "missing-site", MAP, ("--tmr", "entries[1]", "site"), _map_edit(_drop(("entries", 1, "site")))),
    Case("tmr-map", "flip-flop-of-a-parameter", MAP, ("--tmr", "flip_flops[0] ff"),
         _map_edit(_set(("flip_flops",), [{"ff": 3}]))),
    Case("tmr-map", "all-bits-a-boolean", MAP, ("--tmr", "totals all_bits"),
         _map_edit(_set(("totals", "all_bits"), True))),
    Case("tmr-map", "rule-value-infinite", MAP, ("--tmr", "rule value"),
         _map_edit(_set(("rule", "value"), float("inf")))),
    Case("tmr-map", "not-an-object", MAP, ("--tmr",), lambda ws: "[1, 2, 3]"),
    Case("tmr-map-rate", "bool-as-int", RATE_MAP, ("--tmr", "entries[1] site"),
         _map_edit(_set(("entries", 1, "site"), True))),
    Case("tmr-map-rate", "site-beyond-the-model", RATE_MAP, ("--tmr", "entries[1] site"),
         _map_edit(_set(("entries", 1, "site"), lambda ws: ws["n_sites"]))),
]


# campaign folders: {file} is a copy of the good campaign with summary.json or campaign.csv edited
def _summary_edit(edit):
    def change(folder: Path, ws):
        path = folder / "summary.json"
        path.write_text(json.dumps(edit(json.loads(path.read_text()), ws)))
    return change


def _table_cell(column: str, value: str):
    def change(folder: Path, ws):
        path = folder / "campaign.csv"
        lines = path.read_text().splitlines()
        header, cells = lines[0].split(","), lines[2].split(",")  # row 3 of the file
        cells[header.index(column)] = value.format(n_sites=ws["n_sites"])
        lines[2] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")
    return change


TMR = ("tmr", "--campaign", "{file}", "--no-synth", "--no-prove", "--no-validate", "--rule", "upper",
       "--out", "{out}")
SUMMARY_CASES = [
    Case("summary", "bool-as-int", TMR, ("summary.json", "inputs"), _summary_edit(_set(("inputs",), True))),
    Case("summary", "float-as-int", TMR, ("summary.json", "inputs"), _summary_edit(_set(("inputs",), 8.5))),
    Case("summary", "string-as-number", TMR, ("summary.json", "baseline_emd"),
         _summary_edit(_set(("baseline_emd",), "5.8"))),
    Case("summary", "negative-count", TMR, ("summary.json", "n_sites"), _summary_edit(_set(("n_sites",), -1))),
    Case("summary", "more-sites-than-the-model", TMR, ("summary.json", "n_sites"),
         _summary_edit(_set(("n_sites",), 10**6))),
    Case("summary", "seed-beyond-int64", TMR, ("summary.json", "seed"), _summary_edit(_set(("seed",), BIG))),
    Case("summary", "nan-baseline", TMR, ("summary.json", "baseline_emd"),
         _summary_edit(_set(("baseline_emd",), float("nan")))),
    Case("summary", "missing-field", TMR, ("summary.json", "model_digest"), _summary_edit(_drop(("model_digest",)))),
    Case("summary", "complete-not-a-boolean", TMR, ("summary.json", "complete"),
         _summary_edit(_set(("complete",), 1))),
]
TABLE_CASES = [
    Case("campaign-csv", "bool-as-int", TMR, ("campaign.csv", "row 3", "column index"), _table_cell("index", "true")),
    Case("campaign-csv", "float-as-int", TMR, ("campaign.csv", "row 3", "column site"), _table_cell("site", "1.0")),
    Case("campaign-csv", "string-as-int", TMR, ("campaign.csv", "row 3", "column site"), _table_cell("site", "abc")),
    Case("campaign-csv", "negative", TMR, ("campaign.csv", "row 3", "column bit"), _table_cell("bit", "-1")),
    Case("campaign-csv", "site-beyond-the-model", TMR, ("campaign.csv", "row 3", "column site"),
         _table_cell("site", "{n_sites}")),
    Case("campaign-csv", "site-beyond-int64", TMR, ("campaign.csv", "row 3", "column site"),
         _table_cell("site", str(BIG))),
    Case("campaign-csv", "nan-damage", TMR, ("campaign.csv", "row 3", "column emd_norm"),
         _table_cell("emd_norm", "nan")),
    Case("campaign-csv", "infinite-interval", TMR, ("campaign.csv", "row 3", "column emd_norm_hi"),
         _table_cell("emd_norm_hi", "inf")),
    Case("campaign-csv", "string-in-the-interval", TMR, ("campaign.csv", "row 3", "column emd_norm_hi"),
         _table_cell("emd_norm_hi", "high")),
]

SITES = CAMPAIGN + ("--sites", "{file}")
SITE_CASES = [
    Case("site-list", "bool-as-int", SITES, ("row 2",), lambda ws: "0\ntrue\n"),
    Case("site-list", "float-as-int", SITES, ("row 2",), lambda ws: "0\n1.5\n"),
    Case("site-list", "string-as-int", SITES, ("row 3",), lambda ws: "# sites\n0\nabc\n"),
    Case("site-list", "negative", SITES, ("row 2",), lambda ws: "0\n-1\n"),
    Case("site-list", "beyond-the-model", SITES, ("row 2",), lambda ws: f"0\n{ws['n_sites']}\n"),
    Case("site-list", "beyond-int64", SITES, ("row 2",), lambda ws: f"0\n{BIG}\n"),
    Case("site-list", "csv-string-as-int", SITES, ("row 3", "column site"), lambda ws: "layer,site\nconv,0\nconv,abc\n"),
    Case("site-list", "listed-twice", SITES, ("row 3",), lambda ws: "4\n0\n4\n"),
]

DATA = CAMPAIGN + ("--data", "{file}")
_HEADER = ",".join(f"CALQ_{i}" for i in range(48))


def _data_row(cell: str):
    return lambda ws: _HEADER + "\n" + ",".join(["1"] * 48) + "\n" + ",".join(["1"] * 7 + [cell] + ["1"] * 40) + "\n"


DATA_CASES = [
    Case("data-csv", "string-as-number", DATA, ("row 3", "column CALQ_7"), _data_row("abc")),
    Case("data-csv", "negative", DATA, ("row 3", "column CALQ_7"), _data_row("-1")),
    Case("data-csv", "nan", DATA, ("row 3", "column CALQ_7"), _data_row("nan")),
    Case("data-csv", "beyond-float", DATA, ("row 3", "column CALQ_7"), _data_row("1e999")),
]

ORDER = CAMPAIGN + ("--order", "{file}:s")
_SCORES = ["site,s", "0,2.5", "1,1.5"]
SCORES_CASES = [
    Case("scores", "bool-as-int", ORDER, ("row 3", "column site"), lambda ws: "\n".join(_SCORES[:2] + ["true,1"])),
    Case("scores", "float-as-int", ORDER, ("row 3", "column site"), lambda ws: "\n".join(_SCORES[:2] + ["1.0,1"])),
    Case("scores", "string-as-number", ORDER, ("row 3", "column s"), lambda ws: "\n".join(_SCORES[:2] + ["1,high"])),
    Case("scores", "site-beyond-int64", ORDER, ("row 3", "column site"),
         lambda ws: "\n".join(_SCORES[:2] + [f"{BIG},1"])),
    Case("scores", "nan", ORDER, ("row 3", "column s"), lambda ws: "\n".join(_SCORES[:2] + ["1,nan"])),
]

CASES = (FAULTS_JSON_CASES + FAULTS_CSV_CASES + MAP_CASES + SUMMARY_CASES + TABLE_CASES + SITE_CASES + DATA_CASES
         + SCORES_CASES)


# -- the workspace -------------------------------------------------------------------------------------------

def fkhw(*args) -> tuple:
    """(exit status, stdout, stderr) of ``fkhw ARGS`` run in this process."""
    from fkhw.cli import main

    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def ws(small_model_dir, tmp_path_factory):
    """The small model, a finished seu campaign of it and a TMR map from that
    campaign (protecting bits, and each stage's valid flag)."""
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.model.bundle import load_model

    root = tmp_path_factory.mktemp("strict")
    camp, tmap = root / "camp", root / "map"
    code, _, err = fkhw("campaign", "--model", small_model_dir, "--inputs", INPUTS, "--out", camp, "--no-plot")
    assert code == 0, err
    code, _, err = fkhw("tmr", "--campaign", camp, "--threshold", "1.0", "--protect-control", "--no-synth",
                        "--no-prove", "--no-validate", "--out", tmap)
    assert code == 0, err
    space = FlipFlopSpace.of(load_model(str(small_model_dir)).ir)
    m = json.loads((tmap / "tmr_map.json").read_text())
    assert len(m["entries"]) >= 2 and m["flip_flops"], "the map must protect bits and flip-flops to be edited"
    return {"ws": root, "model": small_model_dir, "camp": camp, "map": tmap, "n_sites": space.sites.n_sites,
            "n_ff": space.n_ff, "faults_json": _faults_json()}


def _bad_input(case: Case, ws: dict, name: str) -> Path:
    """The bad file (or folder) of ``case`` in the workspace."""
    if case.reader.startswith("tmr-map"):
        folder = ws["ws"] / name
        shutil.copytree(ws["map"], folder)
        (folder / "tmr_map.json").write_text(case.make(ws))
        return folder
    if case.reader in ("summary", "campaign-csv"):
        folder = ws["ws"] / name
        shutil.copytree(ws["camp"], folder)
        case.make(folder, ws)
        return folder
    suffix = {"faults-json": ".json", "site-list": ".txt"}.get(case.reader, ".csv")
    path = ws["ws"] / f"{name}{suffix}"
    path.write_text(case.make(ws))
    return path


def assert_one_line_naming(code: int, err: str, command: str, names) -> str:
    lines = err.strip().splitlines()
    assert code != 0, f"exit {code}: the bad input was accepted\n{err}"
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fkhw {command}: error: "), lines[0]
    for name in names:
        assert str(name) in lines[0], f"{name!r} not named in: {lines[0]}"
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_value_in_a_user_file_is_one_line_naming_file_entry_and_field(case, ws):
    bad = _bad_input(case, ws, case.id)
    out = ws["ws"] / "out" / case.id  # one per case: a run that wrongly succeeds leaves nothing in the next's way
    fill = {k: str(v) for k, v in ws.items() if not isinstance(v, list)} | {"file": str(bad), "out": str(out)}
    args = [str(a).format(**fill) for a in case.command]
    code, _, err = fkhw(*args)
    names = [bad] + [str(n).format(**fill) for n in case.names]
    assert_one_line_naming(code, err, case.command[0], names)
    assert not out.exists(), "a refused run wrote its output folder"


def test_the_good_files_the_cases_break_are_accepted(ws):
    """Each case's file before its edit is read without complaint: a case
    fails for its bad value, not for a bad fixture."""
    faults = ws["ws"] / "good_faults.json"
    faults.write_text(json.dumps(ws["faults_json"]))
    faults_csv = ws["ws"] / "good_faults.csv"
    faults_csv.write_text("\n".join(FAULTS_CSV) + "\n")
    sites = ws["ws"] / "good_sites.csv"
    sites.write_text("layer,site\nconv,0\nconv,5\n")
    data = ws["ws"] / "good_data.csv"
    data.write_text(_HEADER + "\n" + (",".join(["3"] * 48) + "\n") * 10)  # 10 modules for 8 inputs
    for i, extra in enumerate((("--faults-file", faults), ("--faults-file", faults_csv), ("--sites", sites),
                               ("--data", data), ("--faults", "replicas", "--tmr", ws["map"], "--stop-after", 3))):
        code, _, err = fkhw("campaign", "--model", ws["model"], "--inputs", INPUTS, "--out", ws["ws"] / f"good{i}",
                            "--no-plot", *extra)
        assert code == 0, (extra, err)
    code, _, err = fkhw("tmr", "--campaign", ws["camp"], "--no-synth", "--no-prove", "--no-validate", "--rule", "upper",
                        "--out", ws["ws"] / "good_tmr")
    assert code == 0, err


# -- extremes of fkhw rate: refused before any work, naming the valid range --------------------------------

@pytest.mark.parametrize("options, names", [
    (("--flux", "1e300"), ("--flux 1e+300", "--flux 4e-129 .. 4e+21")),
    (("--flux", "1e-300"), ("--flux 1e-300", "--flux 4e-129 .. 4e+21")),
    (("--sigma", "1e300", "--flux", "1e300"), ("--flux 1e+300 x --sigma 1e+300 = inf",)),
    (("--clock", "1e-300"), ("--clock 1e-300", "no --flux")),
    (("--scrub", "1e-300s"), ("--scrub 1e-300 s",)),
    (("--scrub", "1s,infh"), ("--scrub", "'infh' is not a duration")),
    (("--scrub", "1e400"), ("--scrub", "'1e400' is not a duration")),
], ids=["flux-1e300", "flux-1e-300", "flux-x-sigma-overflows", "clock-1e-300", "scrub-1e-300s", "scrub-infh",
        "scrub-beyond-float"])
def test_extreme_rate_options_are_refused_up_front_with_the_valid_range(ws, options, names, tmp_path):
    code, out, err = fkhw("rate", "--campaign", ws["camp"], "--k-max", 2, "--samples", 10, "--out", tmp_path / "rate",
                          *options)
    assert_one_line_naming(code, err, "rate", names)
    assert "P(degraded" not in out, "results were printed before the refusal"
    assert not (tmp_path / "rate").exists()


def test_transients_beyond_a_probability_of_one_name_the_flux_limit(ws):
    """A flux inside the per-flip-flop range whose transient term, summed over
    the pipeline flip-flops of a --transients campaign, exceeds 1."""
    pipe = ws["ws"] / "pipe"
    code, _, err = fkhw("campaign", "--model", ws["model"], "--inputs", INPUTS, "--faults", "pipeline", "--cycle", 2,
                        "--out", pipe, "--no-plot")
    assert code == 0, err
    code, out, err = fkhw("rate", "--campaign", ws["camp"], "--transients", pipe, "--threshold", "0", "--flux",
                          "2e21", "--k-max", 2, "--samples", 10, "--out", ws["ws"] / "rate_2e21")
    assert_one_line_naming(code, err, "rate", ("--flux 2e+21", "needs --flux <="))
    assert "accumulated scenarios" not in out, "the Monte Carlo ran before the refusal"


# -- user code, wording ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("metric, names", [
    ("quits:during_the_call", ("--metric quits:during_the_call", "SystemExit")),
    ("quits_on_import:f", ("--metric quits_on_import:f", "SystemExit")),
])
def test_a_user_metric_that_calls_sys_exit_fails_the_campaign(ws, metric, names, tmp_path):
    (tmp_path / "quits.py").write_text("import sys\ndef during_the_call(outputs, labels, baseline):\n    sys.exit(0)\n")
    (tmp_path / "quits_on_import.py").write_text("import sys\nsys.exit(0)\ndef f(outputs, labels, baseline):\n"
                                                 "    return outputs[:, 0] ** 2\n")
    fkhw_script = Path(sys.executable).parent / "fkhw"
    r = subprocess.run([str(fkhw_script), "campaign", "--model", str(ws["model"]), "--inputs", str(INPUTS), "--metric",
                        metric, "--out", str(tmp_path / "out"), "--no-plot"], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path),
                                                                                     os.environ.get("PYTHONPATH")]))})
    assert_one_line_naming(r.returncode, r.stderr, "campaign", names)
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize("command", [("sites", "--model", "{model}", "--all-flip-flops"),
                                     ("sites", "--model", "{model}"),
                                     ("plot", "--campaign", "{camp}"),
                                     ("agree", "--a", "{camp}", "--b", "{camp}")],
                         ids=["sites-flip-flops", "sites", "plot", "agree"])
def test_an_output_file_in_a_missing_folder_names_the_folder(ws, command):
    fill = {k: str(v) for k, v in ws.items() if not isinstance(v, list)}
    missing = ws["ws"] / "no_such_folder"
    code, _, err = fkhw(*(a.format(**fill) for a in command), "--out", missing / "file.png")
    line = assert_one_line_naming(code, err, command[0], ("--out", f"no folder {missing}"))
    assert ".tmp" not in line
    assert not missing.exists()


def test_a_figure_name_matplotlib_cannot_write_is_refused_before_the_work(ws, tmp_path):
    code, out, err = fkhw("plot", "--campaign", ws["camp"], "--out", tmp_path / "figure.out")
    assert_one_line_naming(code, err, "plot", (f"--out {tmp_path / 'figure.out'}", ".png"))
    assert not out and not list(tmp_path.iterdir())
