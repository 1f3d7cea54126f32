"""The package passes static checks: no undefined names, no unused imports,
and no ``from fkhw.x import name`` of a name that ``fkhw.x`` lacks (the bug
that once broke ``fkhw hessian`` with every other test green). Settings live
in pyproject.toml."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["fkhw", "bench", "tests"]  # the testbench is in fkhw/rtlgen/tb
# pylint looks for imports of names a module lacks: the tests' own imports fail when they run, so it reads
# the package and the benchmarks only, in one process (the suite already keeps both cores busy)
TOOLS = {"ruff": ["ruff", "check", *CHECKED], "pylint": ["pylint", "--score=n", "--jobs=1", "fkhw", "bench"]}


@pytest.mark.parametrize("tool", TOOLS)
def test_static_check_is_clean(tool):
    exe, *args = TOOLS[tool]
    r = subprocess.run([str(Path(sys.executable).parent / exe), *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_layers_hold():
    """import-linter's contracts in pyproject.toml: the CLI on top, the model
    below everything that reads it, siblings (tmr | rates, hls | rtlgen,
    faults | damage) independent; imports inside functions count."""
    exe = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 kept, 0 broken" in r.stdout, r.stdout


def test_no_import_cycle_anywhere():
    """No module of fkhw imports another that imports it back, however far
    round, imports inside functions included (grimp's graph, which
    import-linter builds on)."""
    import grimp

    graph = grimp.build_graph("fkhw")
    cycles = [(a, b) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
              if a != b and graph.chain_exists(importer=b, imported=a)]
    assert not cycles, f"{len(cycles)} imports close a cycle, e.g. {cycles[:3]}"


def test_tests_mirror_the_packages():
    """Each folder of tests is named after the package of fkhw it tests, and
    every test file is in such a folder or, for the top-level modules and the
    repository-wide checks, at the top."""
    packages = {p.parent.name for p in (ROOT / "fkhw").glob("*/__init__.py")}
    folders = {p.parent.relative_to(ROOT / "tests") for p in (ROOT / "tests").rglob("test_*.py")}
    strays = sorted(str(f) for f in folders if str(f) != "." and (len(f.parts) > 1 or f.name not in packages))
    assert not strays, f"test folders that name no package of fkhw: {strays}"
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), "two test files of one name: pytest's rootdir imports need unique names"


def test_the_slowest_first_list_names_files_of_the_suite():
    """conftest.SLOWEST_FIRST orders the suite for pytest-xdist: an entry that
    names no test file (a file renamed or moved) would silently order nothing."""
    from conftest import SLOWEST_FIRST

    for entry in SLOWEST_FIRST:
        path, _, test = entry.partition("::")
        assert (ROOT / path).is_file(), f"conftest.SLOWEST_FIRST: {path} is not a test file"
        if test:
            name = test.split("[")[0]
            assert f"def {name}(" in (ROOT / path).read_text(), f"conftest.SLOWEST_FIRST: {path} has no {name}"



MAX_FUNCTION_LINES = 80  # the "no function over ~80 lines"; a docstring is not code


def _function_lengths(path: Path) -> list:
    """(name, first line, lines without the docstring) of every function of a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first = node.body[0]
        doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
        lines = node.end_lineno - node.lineno + 1 - ((first.end_lineno - first.lineno + 1) if doc else 0)
        found.append((node.name, node.lineno, lines))
    return found


def test_no_function_is_longer_than_a_screen():
    """A function has one job: none of fkhw's is longer than MAX_FUNCTION_LINES
    lines of signature and code."""
    long = [f"{path.relative_to(ROOT)}:{line} {name} ({n} lines)" for path in sorted((ROOT / "fkhw").rglob("*.py"))
            for name, line, n in _function_lengths(path) if n > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_function_length_check_counts_code_not_docstrings(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    doc = '    """' + "\n" * 40 + '    """\n'
    (tmp_path / "m.py").write_text(f"def documented():\n{doc}{body}\n\n\ndef longer():\n{body}\n    return 0\n")
    assert [(name, n) for name, _, n in _function_lengths(tmp_path / "m.py")] == [
        ("documented", MAX_FUNCTION_LINES + 1), ("longer", MAX_FUNCTION_LINES + 2)]
