"""The package as a user installs it: ``python -m build`` gives a wheel and an
sdist holding the Verilog templates, the vendored models and data and the
cocotb testbench; the wheel, installed into a fresh venv outside the
repository, gives a working ``fkhw``.

The fresh venv gets the wheel alone (``--no-deps``); its dependencies are
this test interpreter's (a ``.pth`` file in the new venv's site-packages
names this interpreter's site-packages), so nothing is downloaded to
install it. Every command runs from a folder outside the repository, with
no PYTHONPATH, so only the installed package can answer; the model cache
and the Verilator build go to folders of the test, and the installed
package gains no file.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.packaging, pytest.mark.slow]

# what the installed package needs besides its Python modules (paths inside the package)
NEEDED = {
    "the Verilog templates": ("fkhw/rtlgen/templates/fkhw_regfile.v", "fkhw/rtlgen/templates/fkhw_dot.v"),
    "the vendored models": ("fkhw/assets/models/econt-bol/", "fkhw/assets/models/econt-eol/",
                            "fkhw/assets/models/fkeras-eol/", "fkhw/assets/models/digits/model.h5"),
    "the vendored data": ("fkhw/assets/hgcal/ttbar_0PU_5k.csv", "fkhw/assets/hgcal/geometry.json"),
    "the cocotb testbench": ("/test_encoder.py", "/fkhw_tb.v"),
}


def _missing(names: list, prefix: str = "") -> dict:
    out = {}
    for what, parts in NEEDED.items():
        lost = [p for p in parts if not any(n.startswith(prefix + p) if not p.startswith("/") else
                                            (n.startswith(prefix + "fkhw/") and n.endswith(p)) for n in names)]
        if lost:
            out[what] = lost
    return out


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("fkhw-*.whl")
    return wheel


def test_the_wheel_and_the_sdist_hold_templates_models_data_and_testbench(dist):
    names = zipfile.ZipFile(_wheel(dist)).namelist()
    assert not _missing(names), f"the wheel lacks {_missing(names)}"
    (sdist,) = dist.glob("fkhw-*.tar.gz")
    with tarfile.open(sdist) as t:
        members = t.getnames()
    top = members[0].split("/")[0] + "/"
    assert not _missing(members, top), f"the sdist lacks {_missing(members, top)}"


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    """A fresh venv outside the repository with the wheel installed, the
    dependencies seen through this interpreter's site-packages."""
    root = tmp_path_factory.mktemp("venv")
    assert ROOT not in root.parents
    env = _clean_env()
    subprocess.run(["python3.11", "-m", "venv", str(root)], check=True, timeout=300, env=env)
    py = root / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(_wheel(dist))],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    new_site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True, env=env).stdout.strip()
    # this interpreter's site-packages, where the dependencies are (never a path typed here)
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(new_site) / "fkhw_test_dependencies.pth").write_text("\n".join(ours) + "\n")
    return root


def _clean_env(**extra) -> dict:
    """No PYTHONPATH and no venv of ours on PATH: only the installed package answers."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    ours = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != ours)
    return {**env, **extra}


def _package_files(venv: Path) -> set:
    pkg = next(venv.glob("lib/python*/site-packages/fkhw"))
    return {p for p in pkg.rglob("*") if "__pycache__" not in p.parts}


def test_the_installed_package_is_the_wheel_not_the_checkout(venv, tmp_path):
    r = subprocess.run([str(venv / "bin" / "python"), "-c", "import fkhw; print(fkhw.__file__)"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300, env=_clean_env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert Path(r.stdout.strip()).is_relative_to(venv), r.stdout


def test_fkhw_runs_from_the_fresh_venv(venv, small_model_dir, tmp_path):
    fkhw = venv / "bin" / "fkhw"
    work = tmp_path / "work"
    work.mkdir()
    env = _clean_env(FKHW_CACHE=str(tmp_path / "model_cache"), FKHW_RTL_BUILD=str(tmp_path / "rtl_build"),
                     FKHW_SYNTH_CACHE=str(tmp_path / "synth"), FKHW_NETLIST_CACHE=str(tmp_path / "netlist"),
                     MPLBACKEND="Agg")
    before = _package_files(venv)

    def run(*args):
        r = subprocess.run([str(fkhw), *map(str, args)], cwd=work, capture_output=True, text=True, timeout=1800,
                           env=env)
        assert r.returncode == 0, f"fkhw {' '.join(map(str, args))} -> {r.returncode}\n{r.stdout[-3000:]}\n" \
                                  f"{r.stderr[-3000:]}"
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        return r

    from fkhw import __version__

    assert run("--version").stdout.strip() == f"fkhw {__version__}"
    # a vendored model and the vendored data, from the package
    run("campaign", "--model", "econt-bol", "--inputs", 4, "--out", "sw")
    assert (work / "sw" / "summary.json").is_file()
    # an RTL campaign on a few sites (the testbench from the package, its build in the test's folder), and the
    # agreement with the software level
    (work / "few.txt").write_text("0\n1\n2\n5\n9\n")
    run("campaign", "--model", small_model_dir, "--inputs", 4, "--out", "small_sw", "--no-plot")
    run("campaign", "--model", small_model_dir, "--level", "rtl", "--sites", "few.txt", "--inputs", 4, "--jobs", 1,
        "--out", "small_rtl", "--no-plot")
    r = run("agree", "--a", "small_sw", "--b", "small_rtl")
    assert "disagreeing sites: 0" in r.stdout, r.stdout
    assert any((tmp_path / "rtl_build").iterdir()), "the Verilator build went elsewhere"
    assert _package_files(venv) == before, "running fkhw wrote into the installed package"
