"""fkhw.review: steps that rerun only when their inputs change, and the
report a reviewer and a CI system read. The whole review run on a real model
is in tests/review/test_digits_example.py; here the ledger and the writers, on
steps and checks made for the purpose."""

from __future__ import annotations

import json
from pathlib import Path

import html5lib
import junitparser
import pytest

from fkhw.review.checks import Check
from fkhw.review.ledger import RECORDS, Ledger, Step
from fkhw.review.report import TABLE_WIDTH, Review, Section, Table, junit_xml, render_html, render_markdown


class Flow:
    """Two steps: ``a`` writes a.txt from its input ``x``; ``b`` reads a.txt and writes b.txt."""

    def __init__(self, out: Path):
        self.out, self.calls = out, []

    def steps(self, x, y=0) -> list:
        return [Step("a", "step a", {"x": x}, lambda: self.a(x)),
                Step("b", "step b", {"y": y}, self.b, after=("a",))]

    def a(self, x) -> dict:
        self.calls.append("a")
        (self.out / "a.txt").write_text(f"x={x % 2}\n")  # x and x + 2 give the same file
        return {"line": "wrote a.txt"}

    def b(self) -> dict:
        self.calls.append("b")
        (self.out / "b.txt").write_text((self.out / "a.txt").read_text().upper())
        return {"line": "wrote b.txt", "b": (self.out / "b.txt").read_text()}

    def run(self, x, y=0, force=()) -> tuple:
        said = []
        ledger = Ledger(self.out, 2, force=force, say=said.append)
        self.calls = []
        for step in self.steps(x, y):
            ledger.run(step)
        return self.calls, said, ledger


@pytest.fixture
def flow(tmp_path) -> Flow:
    return Flow(tmp_path)


def test_a_second_run_with_nothing_changed_runs_nothing(flow):
    calls, _, _ = flow.run(1)
    assert calls == ["a", "b"]
    calls, said, ledger = flow.run(1)
    assert calls == []
    assert [line for line in said if "up to date" in line] and all(not o.ran for o in ledger.outcomes.values())
    assert ledger.outcomes["b"].result["b"] == "X=1\n"  # the recorded result stands in


def test_a_changed_input_reruns_its_step_and_says_what_changed(flow):
    flow.run(1)
    calls, said, _ = flow.run(1, y=5)
    assert calls == ["b"] and "      rerun: y 0 -> 5" in said


def test_a_step_that_ran_on_other_fkhw_code_reruns(flow, monkeypatch):
    """Every step's inputs name the digest of fkhw's own files: after a code
    change (another area method, say) nothing is up to date."""
    from fkhw.review import ledger

    flow.run(1)
    monkeypatch.setattr(ledger, "source_digest", lambda: "other-code")
    calls, said, _ = flow.run(1)
    assert calls == ["a", "b"] and any("rerun: fkhw" in line and "other-code" in line for line in said)


def test_a_downstream_step_reruns_only_when_the_files_it_reads_changed(flow):
    flow.run(1)
    calls, said, _ = flow.run(3)  # a reruns, and writes the same a.txt
    assert calls == ["a"] and "      rerun: x 1 -> 3" in said
    calls, said, _ = flow.run(2)  # a.txt changes: b reruns
    assert calls == ["a", "b"]
    assert any(line.startswith("      rerun: a outputs ") for line in said)
    assert (flow.out / "b.txt").read_text() == "X=0\n"


def test_an_edited_or_removed_output_reruns_the_step_that_wrote_it(flow):
    flow.run(1)
    (flow.out / "b.txt").write_text("edited by hand\n")
    calls, said, _ = flow.run(1)
    assert calls == ["b"] and "      rerun: b.txt changed" in said
    (flow.out / "a.txt").unlink()
    calls, said, _ = flow.run(1)
    assert calls == ["a"] and "      rerun: a.txt is gone" in said  # a.txt comes back the same: b stays


def test_force_reruns_a_step_or_all_of_them(flow):
    flow.run(1)
    assert flow.run(1, force=("b",))[0] == ["b"]
    assert flow.run(1, force=("all",))[0] == ["a", "b"]


def test_a_damaged_record_reruns_its_step(flow):
    flow.run(1)
    (flow.out / RECORDS / "a.json").write_text("{not json")
    calls, _, _ = flow.run(1)
    assert calls == ["a"]
    rec = json.loads((flow.out / RECORDS / "a.json").read_text())
    assert rec["name"] == "a" and list(rec["outputs"]) == ["a.txt"]


def test_files_a_background_process_writes_are_no_steps_output(flow, tmp_path):
    def a_with_background(x=1):
        (tmp_path / "background").mkdir(exist_ok=True)
        (tmp_path / "background" / "log").write_text("yosys ...")
        return flow.a(x)

    ledger = Ledger(tmp_path, 1, ignore=("background",), say=lambda line: None)
    ledger.run(Step("a", "step a", {"x": 1}, a_with_background))
    assert list(json.loads((tmp_path / RECORDS / "a.json").read_text())["outputs"]) == ["a.txt"]


# --- the report ---------------------------------------------------------------------------------

CHECKS = [Check("rows_equal", "the RTL equals the engine", True, "899 of 899 rows equal", "rtl/fkhw_encoder.v"),
          Check("map_stable", "the map holds on held-out modules", False, "coverage 62.50% <b>&", "tmr/report.json")]


def test_results_xml_reads_as_junit_with_a_case_per_check_and_a_failure_where_one_failed(tmp_path):
    path = tmp_path / "results.xml"
    path.write_text(junit_xml(CHECKS, "fkhw sim digits", 12.5))
    xml = junitparser.JUnitXml.fromfile(str(path))
    cases = [case for suite in xml for case in suite]
    assert [c.name for c in cases] == [c.name for c in CHECKS]
    verdicts = {c.name: c.is_passed for c in cases}
    assert verdicts == {"rows_equal": True, "map_stable": False}
    failed = next(c for c in cases if c.name == "map_stable")
    assert "coverage 62.50% <b>&" in failed.result[0].message
    assert sum(s.failures for s in xml) == 1


def test_report_html_is_valid_html5_and_holds_every_check(tmp_path):
    sections = [Section("Checks", ("every check <with> markup-like text",),
                        (Table(("check", "verdict", "figures"), tuple((c.title, "PASS" if c.passed else "FAIL",
                                                                       c.figures) for c in CHECKS)),))]
    page = render_html(sections, "fkhw review: digits", tmp_path)
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(page)  # strict: any parse error raises
    assert not parser.errors
    for c in CHECKS:
        assert c.title in page
    assert '<span class="FAIL">FAIL</span>' in page and "coverage 62.50% &lt;b&gt;&amp;" in page
    with pytest.raises(html5lib.html5parser.ParseError):  # the validator does see a broken page
        html5lib.HTMLParser(strict=True).parse(page.replace("</table>", "</tabel>"))


def test_report_md_has_one_table_row_per_check():
    md = render_markdown([Section("Checks", (), (Table(("check", "verdict"),
                                                       tuple((c.title, str(c.passed)) for c in CHECKS)),))], "t")
    rows = [line for line in md.splitlines() if line.startswith("| ") and "verdict" not in line]
    assert len(rows) == len(CHECKS)


def test_the_terminal_table_fits_100_columns(tmp_path):
    from fkhw.review.ledger import Outcome

    long = "x" * 300
    review = Review(tmp_path, {}, CHECKS + [Check("long", long, True, long, "f")],
                    [Outcome("tmr", "selective TMR", True, "no record", 1.0, 2.0, {"line": long})])
    lines = review.table()
    assert max(map(len, lines)) <= TABLE_WIDTH and any(line.endswith("...") for line in lines)
    assert "1 of 3 checks pass" not in "\n".join(lines) and "2 of 3 checks pass" in "\n".join(lines)


def test_the_step_names_force_accepts_are_the_flow_s_steps(tmp_path):
    """--force STEP takes the names in fkhw.review.options.STEP_NAMES: the
    flow's steps, every one of them (the optional gate_level and rates
    included), in the flow's order."""
    from fkhw.review.flow import Run
    from fkhw.review.options import STEP_NAMES, SimOptions

    run = Run(SimOptions(out=tmp_path, gate_level=True, rates=True), say=lambda line: None)
    assert tuple(s.name for s in run.steps(run.model_digest)) == STEP_NAMES
