"""The documentation builds strictly, and everything it tells a reader to
run runs.

* The site (``docs/``) builds with ``sphinx-build -W -n``: a warning, a
  broken cross-reference or a results key a page names and the snapshot
  lacks fails.
* Every page of ``docs/`` and the README: its ``python`` blocks and its
  ``console`` / ``bash`` commands run in document order, in a fresh folder
  per page (which holds ``fkhw/assets`` and ``examples`` as in a checkout),
  with the ``fkhw`` of this checkout. A block may be left out only with
  ``<!-- no-run: REASON -->`` on the line before it (or ``:class: no-run``
  on a ``{code-block}``), and a left-out ``make sim`` / ``fkhw sim`` must
  name the test that runs it elsewhere (``tests/<package>/test_x.py::test_name``,
  which must exist). A command exits 0 unless the line before its block
  says ``<!-- exits: N: REASON -->`` (then the block's last command must
  exit N, and the page says why). A page may say ``<!-- docs-test: model NAME -> small -->``:
  its commands then run ``--model NAME`` on the suite's small model.
* The README is short and names no issue.
* A script that uses only ``fkhw``'s documented API runs a software campaign,
  an RTL campaign on a few sites, the agreement of the two and a TMR map, on
  econt-bol and on a model directory.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import resource
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent
PAGES = sorted(p for p in DOCS.rglob("*.md") if "results" not in p.relative_to(DOCS).parts
               and not p.relative_to(DOCS).parts[0].startswith("_"))
RUN_LANGS = {"python", "console", "bash", "shell"}

pytestmark = pytest.mark.docs


# --- reading the pages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    skip: str | None  # the reason it is not run
    exits: int = 0  # the status its last command must end with (<!-- exits: N: REASON -->)


_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_NO_RUN = re.compile(r"^<!--\s*no-run:(?P<reason>.*?)-->\s*$")
_EXITS = re.compile(r"^<!--\s*exits:\s*(?P<code>[0-9]+)\s*:(?P<reason>.+?)-->\s*$")
_MODEL_SUB = re.compile(r"<!--\s*docs-test:\s*model\s+(?P<name>\S+)\s*->\s*small\s*-->")


def blocks(page: Path) -> list:
    """The fenced code blocks of a Markdown page, with the language they run as."""
    lines = page.read_text().splitlines()
    out, k = [], 0
    while k < len(lines):
        m = _FENCE.match(lines[k])
        if not m:
            k += 1
            continue
        fence, info = m.group("fence"), m.group("info").strip()
        start, body = k, []
        k += 1
        while k < len(lines) and not lines[k].startswith(fence):
            body.append(lines[k])
            k += 1
        k += 1
        lang, skip = info, None
        if info.startswith("{code-block}"):
            lang = info.split(None, 1)[1].strip() if len(info.split()) > 1 else ""
            options = [b for b in body if b.startswith(":")]
            body = [b for b in body if not b.startswith(":")]
            if any(o.startswith(":class:") and "no-run" in o for o in options):
                skip = "marked :class: no-run"
        prev = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        nr = _NO_RUN.match(prev.strip())
        if nr:
            skip = nr.group("reason").strip()
        ex = _EXITS.match(prev.strip())
        out.append(Block(page, start + 1, lang, "\n".join(body), skip, int(ex.group("code")) if ex else 0))
    return out


def commands(text: str) -> list:
    """``$ command`` lines of a console block, continuation lines joined."""
    out, current = [], None
    for raw in text.splitlines():
        line = raw.rstrip()
        if current is not None:
            current += " " + line.rstrip("\\").strip()
            if not line.endswith("\\"):
                out.append(current)
                current = None
            continue
        if line.startswith("$ "):
            cmd = line[2:]
            if cmd.endswith("\\"):
                current = cmd.rstrip("\\").strip()
            else:
                out.append(cmd)
    return out


def _all_blocks() -> list:
    return [b for page in PAGES + [ROOT / "README.md"] for b in blocks(page)]


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


# --- the rules the pages follow -------------------------------------------------------------------


def test_every_block_that_is_not_run_says_why_and_long_runs_name_their_test():
    problems = []
    for b in _all_blocks():
        where = f"{_id(b.page)}:{b.line}"
        if b.lang in RUN_LANGS and b.skip is not None and not b.skip:
            problems.append(f"{where}: no-run without a reason")
        if b.lang in RUN_LANGS and b.skip is None:
            for cmd in commands(b.text) if b.lang != "python" else []:
                if re.match(r"(make\s+(sim|test|bench|install)\b|fkhw\s+sim\b)", cmd):
                    problems.append(f"{where}: `{cmd}` would run for minutes; mark the block no-run and name the "
                                    "test that runs it")
        if b.skip and re.search(r"\b(make sim|fkhw sim)\b", b.text):
            named = re.findall(r"(tests/(?:\w+/)?test_\w+\.py)::(\w+)", b.skip)
            if not named:
                problems.append(f"{where}: a skipped `sim` must name the test that runs it (tests/<package>/test_x.py::test_y)")
            for path, name in named:
                f = ROOT / path
                if not f.is_file() or not re.search(rf"^def {name}\(", f.read_text(), flags=re.M):
                    problems.append(f"{where}: names {path}::{name}, which does not exist")
        if b.lang in {"console", "bash", "shell"} and b.skip is None and not commands(b.text):
            problems.append(f"{where}: a {b.lang} block without `$ ` command lines")
    assert not problems, "\n".join(problems)


def test_the_block_reader_sees_no_run_marks_and_continuations(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(textwrap.dedent("""\
        text
        <!-- no-run: covered by tests/commands/test_cli.py::test_sim_runs_to_completion -->
        ```console
        $ make sim
        ```

        ```console
        $ fkhw campaign --model m \\
              --out c
        $ fkhw plot --campaign c
        ```

        ```{code-block} python
        :class: no-run

        print(1)
        ```

        <!-- exits: 1: the map is NOT stable -->
        ```console
        $ fkhw tmr --campaign c --out t
        ```
        """))
    found = blocks(page)
    assert [b.skip for b in found] == ["covered by tests/commands/test_cli.py::test_sim_runs_to_completion", None,
                                       "marked :class: no-run", None]
    assert [b.exits for b in found] == [0, 0, 0, 1]
    assert commands(found[1].text) == ["fkhw campaign --model m --out c", "fkhw plot --campaign c"]


# --- the build ------------------------------------------------------------------------------------


def test_the_site_builds_in_strict_mode_in_under_a_minute_of_cpu(tmp_path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n", "-E", "-q",
                        str(DOCS), str(tmp_path / "html")], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 60, f"the strict build took {cpu:.0f} s of CPU"
    for page in PAGES:
        html = tmp_path / "html" / page.relative_to(DOCS).with_suffix(".html")
        assert html.is_file(), f"{page} was not built"


def test_the_cli_reference_is_generated_from_the_parser():
    """Every subcommand and every one of its options appears in the reference (a new option
    cannot be missing: the page reads the parser when it is built)."""
    spec = importlib.util.spec_from_file_location("fkhw_docs", DOCS / "_ext" / "fkhw_docs.py")
    fkhw_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fkhw_docs)
    from fkhw.cli import build_parser

    subs = fkhw_docs._subparsers(build_parser())
    for name, sub in subs.items():
        flags = {f for a in sub._actions for f in a.option_strings if f not in ("-h", "--help")}
        shown = " ".join(row[0] for row in fkhw_docs._options(sub))
        assert all(f in shown.split(", ") or f in shown for f in flags), name


def test_each_report_picture_shows_the_report_beside_it():
    """docs/results/<model>/report.png is made from the report.html beside it
    (docs/_ext/screenshot.py names the report's SHA-256 in the PNG): a
    snapshot refreshed without its picture would show an older report."""
    from PIL import Image

    spec = importlib.util.spec_from_file_location("screenshot", DOCS / "_ext" / "screenshot.py")
    screenshot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(screenshot)
    pictures = sorted((DOCS / "results").glob("*/report.png"))
    assert pictures, "no report picture in docs/results/ (make docs-results makes one)"
    for png in pictures:
        with Image.open(png) as image:
            named = image.text.get(screenshot.REPORT_KEY)
        assert named == screenshot.report_digest(png.parent / "report.html"), (
            f"{png.relative_to(ROOT)} is not a picture of the report.html beside it: rerun "
            f"python docs/_ext/screenshot.py {(png.parent / 'report.html').relative_to(ROOT)} {png.relative_to(ROOT)}")


# --- the README -----------------------------------------------------------------------------------


def test_the_readme_is_short_and_names_no_issue():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150, f"README.md has {len(text.splitlines())} lines"
    found = re.findall(r"(?i)\bissues?\s+#?\d+|(?<![\w&])#\d+\b", text)
    assert not found, f"README.md names issues: {found}"
    for link in re.findall(r"\]\(([^)#]+)\)", text):  # every relative link and figure exists
        if "://" not in link:
            assert (ROOT / link).exists(), f"README.md links to {link}, which does not exist"


def test_the_layouts_in_the_readme_and_the_developer_guide_name_every_package():
    """A package added, moved or removed shows in both trees (or this fails)."""
    packages = {p.parent.name for p in (ROOT / "fkhw").glob("*/__init__.py")} - {"assets"}
    readme = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^fkhw/(\w+)\s", readme, flags=re.M)) == packages
    guide = (ROOT / "docs" / "developer.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^  (\w+)/\s", guide, flags=re.M)) - {"assets"} == packages


# --- running the pages ----------------------------------------------------------------------------


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MPLBACKEND": "Agg"}


def _workdir(tmp_path: Path) -> Path:
    """A fresh folder laid out as a checkout's top: relative paths to the
    vendored data and the examples resolve as they do for a reader."""
    work = tmp_path / "work"
    (work / "fkhw").mkdir(parents=True)
    (work / "fkhw" / "assets").symlink_to(ROOT / "fkhw" / "assets")
    (work / "examples").symlink_to(ROOT / "examples")
    return work


def _substitute(cmd: str, page_text: str, small: Path | None) -> str:
    for m in _MODEL_SUB.finditer(page_text):
        name = re.escape(m.group("name"))
        cmd = re.sub(rf"--model\s+{name}(?=\s|$)", f"--model {shlex.quote(str(small))}", cmd)
    return cmd


def _run_page(page: Path, tmp_path: Path, small: Path | None) -> int:
    text = page.read_text()
    work = _workdir(tmp_path)
    ran = 0
    for b in blocks(page):
        if b.lang not in RUN_LANGS or b.skip:
            continue
        where = f"{_id(page)}:{b.line}"
        if b.lang == "python":
            script = work / f"block_{b.line}.py"
            script.write_text(b.text + "\n")
            r = subprocess.run([sys.executable, script.name], cwd=work, env=_env(), capture_output=True, text=True,
                               timeout=1800)
            assert r.returncode == 0, f"{where}: python block failed\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
            ran += 1
            continue
        cmds = commands(b.text)
        for k, cmd in enumerate(cmds):
            cmd = _substitute(cmd, text, small)
            r = subprocess.run(["bash", "-c", cmd], cwd=work, env=_env(), capture_output=True, text=True,
                               timeout=1800)
            expected = b.exits if k == len(cmds) - 1 else 0
            assert r.returncode == expected, (f"{where}: `{cmd}` -> {r.returncode}, the page says {expected}\n"
                                              f"{r.stdout[-3000:]}\n{r.stderr[-5000:]}")
            assert "Traceback" not in r.stderr, f"{where}: `{cmd}`\n{r.stderr[-5000:]}"
            ran += 1
    return ran


RUNNABLE = [p for p in PAGES + [ROOT / "README.md"]
            if any(b.lang in RUN_LANGS and not b.skip for b in blocks(p))]


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=_id)
def test_the_page_runs_as_written(page, tmp_path, request):
    small = request.getfixturevalue("small_model_dir") if _MODEL_SUB.search(page.read_text()) else None
    assert _run_page(page, tmp_path, small) > 0


def test_a_failing_block_fails_its_page(tmp_path):
    page = tmp_path / "bad.md"
    page.write_text("```console\n$ fkhw campaign --model no-such-model --out x\n```\n")
    with pytest.raises(AssertionError, match="no-such-model"):
        _run_page(page, tmp_path, None)


# --- the documented API, end to end ---------------------------------------------------------------

API_SCRIPT = '''
import sys

import fkhw

model_name, out = sys.argv[1], sys.argv[2]
model = fkhw.load_model(model_name)
sw = fkhw.run_campaign(model, level="software", inputs=8, seed=0, out=f"{out}/software")
assert sw.table.shape == (model.n_sites,) and sw.kind == "seu" and sw.level == "software"
tmr = fkhw.select_tmr(sw, threshold=1.0, rule="upper")
assert tmr.protected_bits > 0 and tmr.overhead_pct > 0
few = list(tmr.sites[:4]) + [s for s in range(0, model.n_sites, max(1, model.n_sites // 4)) if s not in tmr.sites][:4]
rtl = fkhw.run_campaign(model, level="rtl", sites=few, inputs=8, seed=0, jobs=1, out=f"{out}/rtl")
assert sorted(rtl.table["site"].tolist()) == sorted(int(s) for s in few)
ag = fkhw.agree(sw, rtl, out=f"{out}/agreement.json")
assert ag.common_sites == len(few) and ag.disagreeing_sites == [] and ag.baseline_identical, ag
written = tmr.write(f"{out}/tmr")
assert written.folder is not None and written.report["protected_bits"] == tmr.protected_bits
again = fkhw.open_campaign(f"{out}/software")
assert (again.table["emd_norm"] == sw.table["emd_norm"]).all()
print("ok", model.name, len(few), "sites in the RTL,", tmr.protected_bits, "bits protected")
'''


def test_the_api_script_uses_only_the_documented_api():
    tree = ast.parse(API_SCRIPT)
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == {"sys", "fkhw"}
    import fkhw

    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "fkhw"}
    assert used <= set(fkhw.__all__), used - set(fkhw.__all__)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["econt-bol", "model directory"])
def test_the_api_script_runs(which, tmp_path, request):
    model = "econt-bol" if which == "econt-bol" else str(request.getfixturevalue("small_model_dir"))
    script = tmp_path / "api_script.py"
    script.write_text(API_SCRIPT)
    r = subprocess.run([sys.executable, str(script), model, str(tmp_path / "out")], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    assert r.stdout.startswith("ok"), r.stdout
