"""The package passes static checks: no undefined names, no unused imports,
and no ``from fkhw.x import name`` of a name that ``fkhw.x`` lacks (the bug
that once broke ``fkhw hessian`` with every other test green). Settings live
in pyproject.toml."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["fkhw", "bench", "tests"]  # the testbench is in fkhw/rtlgen/tb


def test_ruff_is_clean():
    """Undefined names and unused imports (ruff's F rules, pyproject.toml)."""
    r = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", *CHECKED], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def _bound_names(tree: ast.Module) -> set | None:
    """The names a module binds at its top level: definitions, imports and
    every name stored outside a function or class (assignment, for and with
    targets, :=, except ... as), plus the names a function declares
    ``global``; None when it star-imports or defines a module
    ``__getattr__``, since then any name may exist."""
    names, todo = set(), list(tree.body)
    names.update(n for node in ast.walk(tree) if isinstance(node, ast.Global) for n in node.names)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                if a.name == "*":
                    return None
                names.add(a.asname or a.name.split(".")[0])
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        todo.extend(ast.iter_child_nodes(node))
    return names


def _guarded(tree: ast.Module) -> set:
    """The import statements inside a ``try`` that catches ImportError (an
    optional dependency: the module copes when it is missing)."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                h.type is None or any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
                                      for n in ast.walk(h.type)) for h in node.handlers):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt)
                           if isinstance(n, (ast.Import, ast.ImportFrom)))
    return guarded


def unresolved_imports(root: Path, package: str, folders: list) -> list:
    """Every import in ``folders`` (below ``root``) that cannot work: a
    ``from package.x import name`` of a name that ``package.x`` neither binds
    nor has as a submodule, an ``import package.x`` of no such module, or a
    third-party top-level module that is not installed. Imports inside
    functions count. As "file:line: what" strings. (The check pylint's
    no-name-in-module and import-error made, read from the source in a
    second instead of inferred in half a minute.)"""
    import importlib.util

    def module_file(dotted: str) -> Path | None:
        base = root.joinpath(*dotted.split("."))
        return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)

    bound = {}
    found = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            optional = _guarded(tree)
            parts = path.relative_to(root).with_suffix("").parts
            home = list(parts[:-1])  # the package a relative import starts from, for a module and an __init__ alike
            for node in ast.walk(tree):
                where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
                if id(node) in optional:
                    continue
                if isinstance(node, ast.ImportFrom):
                    if node.level > len(home):
                        found.append(f"{where}: a relative import above the top package")
                        continue
                    base = home[: len(home) - node.level + 1] if node.level else []
                    dotted = ".".join(base + ([node.module] if node.module else []))
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.Import):
                    dotted, names = None, [a.name for a in node.names]
                else:
                    continue
                for target in ([dotted] if dotted is not None else names):
                    top = target.split(".")[0]
                    if top != package:  # a script's own folder is on its path (bench/common.py)
                        if not (path.parent / f"{top}.py").is_file() and importlib.util.find_spec(top) is None:
                            found.append(f"{where}: no module named {top!r}")
                        continue
                    if module_file(target) is None:
                        found.append(f"{where}: no module {target}")
                        continue
                    if dotted is None:
                        continue
                    if target not in bound:
                        bound[target] = _bound_names(ast.parse(module_file(target).read_text()))
                    for name in names:
                        if bound[target] is not None and name not in bound[target] and \
                                module_file(f"{target}.{name}") is None:
                            found.append(f"{where}: {target} has no {name!r}")
    return found


def test_every_import_names_something_that_exists():
    """The bug that once broke ``fkhw hessian`` with every other test green:
    ``from fkhw.x import name`` of a name fkhw.x lacks, found in the package
    and the benchmarks, imports inside functions included (the tests' own
    imports fail when they run)."""
    assert unresolved_imports(ROOT, "fkhw", ["fkhw", "bench"]) == []


def test_the_import_check_finds_a_missing_name_a_missing_module_and_a_missing_package(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .leaf import there\n")
    (pkg / "sub" / "leaf.py").write_text("import os\ntry:\n    there = 1\nexcept ImportError:\n    pass\n"
                                         "for looped in ():\n    pass\nwith open(os.devnull) as fh:\n    pass\n"
                                         "def f():\n    global declared\n    declared = 1\n"
                                         "try:\n    import optional_package_fkhw\nexcept ImportError:\n    pass\n")
    (pkg / "user.py").write_text("from pkg.sub import there, leaf\nfrom pkg.sub.leaf import os, there, looped, fh, "
                                 "declared\n\n\n"
                                 "def f():\n    from pkg.sub.leaf import gone\n    import pkg.nowhere\n"
                                 "    from .sub import missing\n    import no_such_package_fkhw\n")
    assert unresolved_imports(tmp_path, "pkg", ["pkg"]) == [
        "pkg/user.py:6: pkg.sub.leaf has no 'gone'", "pkg/user.py:7: no module pkg.nowhere",
        "pkg/user.py:8: pkg.sub has no 'missing'", "pkg/user.py:9: no module named 'no_such_package_fkhw'"]


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
