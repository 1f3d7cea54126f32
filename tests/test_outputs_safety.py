"""Outputs are written, never followed (issue 23): no command writes outside
``--out``, through a link it did not make, or over one of its inputs.

A link planted where an output goes (``figure1.png``, ``rate.json``,
``.lock``, a ``hardened_rtl`` folder, ...) pointing outside must leave its
target untouched (content and modification time): the run either replaces
the link with its own file or stops with one line naming it. ``--out /``,
``--out $HOME`` and an ``--out`` that is (or holds) an input are refused
before anything is written. Then the writing API of fkhw.outpaths itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fkhw import outpaths
from fkhw.outpaths import OutputError

FKHW = Path(sys.executable).parent / "fkhw"  # the console script, as a user runs it
INPUTS = 8
ROOT_OUTPUTS = {"campaign.csv", "outputs.npz", "summary.json", "timing.json", "figure1.png", ".lock", ".partial",
                "rate.json", "rate.png"}


def run(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([str(FKHW), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def ok(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout[-2000:] + r.stderr[-3000:]


def refused(r: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2, one error line on stderr (the last: a command that started
    work has logged its steps before) holding ``words``, no traceback."""
    lines = r.stderr.strip().splitlines()
    errors = [line for line in lines if ": error: " in line]
    assert r.returncode == 2 and errors == lines[-1:] and "Traceback" not in r.stderr, \
        r.stdout[-2000:] + r.stderr[-3000:]
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


class Outside:
    """Files and a folder outside the output folder that links point at."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir()
        self.folder = root / "folder"
        self.folder.mkdir()
        (self.folder / "keep.txt").write_text("keep\n")
        self.files = {}

    def file(self, name: str) -> Path:
        p = self.root / name
        p.write_text(f"precious {name}\n")
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))  # a time no write would leave
        self.files[p] = p.read_bytes()
        return p

    def assert_unchanged(self) -> None:
        for p, content in self.files.items():
            assert p.read_bytes() == content, f"{p} was written through a link"
            assert p.stat().st_mtime_ns == 1_000_000_000, f"{p} was touched through a link"
        assert sorted(q.name for q in self.folder.iterdir()) == ["keep.txt"], f"{self.folder} received files"


@pytest.fixture
def outside(tmp_path) -> Outside:
    return Outside(tmp_path / "outside")


def plant(folder: Path, name: str, target: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / name
    link.symlink_to(target)
    return link


def assert_replaced(link: Path) -> None:
    assert not link.is_symlink() and link.is_file(), f"{link} is still a link"


@pytest.fixture(scope="module")
def campaign_dir(small_model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("safety") / "campaign"
    ok(run("campaign", "--model", small_model_dir, "--level", "software", "--inputs", INPUTS, "--out", out))
    return out


def campaign(model, out, *extra, env=None):
    return run("campaign", "--model", model, "--level", "software", "--inputs", INPUTS, "--out", out, *extra, env=env)


# -- links planted in --out -----------------------------------------------------------------------

def test_sites_replaces_a_link_at_its_output(small_model_dir, tmp_path, outside):
    link = plant(tmp_path / "out", "sites.csv", outside.file("sites_target"))
    ok(run("sites", "--model", small_model_dir, "--out", link))
    outside.assert_unchanged()
    assert_replaced(link)
    assert link.read_text().startswith("site,layer")


def test_campaign_replaces_links_planted_at_its_outputs(small_model_dir, tmp_path, outside):
    out = tmp_path / "out"
    # (a summary.json link is read as a damaged finished campaign: refused, with --fresh to replace it)
    links = [plant(out, name, outside.file(name)) for name in
             ("figure1.png", "timing.json", "campaign.csv", "outputs.npz", "campaign.csv.tmp", "outputs.npz.tmp")]
    ok(campaign(small_model_dir, out))
    outside.assert_unchanged()
    for link in links[:4]:
        assert_replaced(link)


def test_campaign_refuses_a_lock_file_that_is_a_link(small_model_dir, tmp_path, outside):
    out = tmp_path / "out"
    plant(out, ".lock", outside.file("lock_target"))
    refused(campaign(small_model_dir, out), ".lock", "link")
    outside.assert_unchanged()
    assert not (out / "campaign.csv").exists()


def test_campaign_refuses_a_partial_folder_that_is_a_link(small_model_dir, tmp_path, outside):
    out = tmp_path / "out"
    plant(out, ".partial", outside.folder)
    refused(campaign(small_model_dir, out), ".partial", "link")
    outside.assert_unchanged()


def test_campaign_refuses_an_out_folder_that_is_a_link(small_model_dir, tmp_path, outside):
    link = plant(tmp_path, "out", outside.folder)
    refused(campaign(small_model_dir, link), f"--out {link}", "link")
    outside.assert_unchanged()


def test_plot_replaces_a_link_planted_in_a_campaign_folder(campaign_dir, tmp_path, outside):
    camp = tmp_path / "handed_over"
    shutil.copytree(campaign_dir, camp)
    (camp / "figure1.png").unlink()
    link = plant(camp, "figure1.png", outside.file("figure_target"))
    ok(run("plot", "--campaign", camp))
    outside.assert_unchanged()
    assert_replaced(link)


def test_rate_replaces_links_planted_at_its_outputs(campaign_dir, tmp_path, outside):
    out = tmp_path / "rate"
    links = [plant(out, name, outside.file(name)) for name in ("rate.json", "rate.png")]
    ok(run("rate", "--campaign", campaign_dir, "--samples", 10, "--k-max", 1, "--out", out))
    outside.assert_unchanged()
    for link in links:
        assert_replaced(link)


def test_rate_refuses_a_default_folder_that_is_a_link(campaign_dir, tmp_path, outside):
    """A handed-over folder holding the campaign and a ``rate`` link next to it."""
    camp = tmp_path / "handed_over" / "campaign"
    shutil.copytree(campaign_dir, camp)
    plant(camp.parent, "rate", outside.folder)
    refused(run("rate", "--campaign", camp, "--samples", 10, "--k-max", 1), "--campaign", "rate", "link")
    outside.assert_unchanged()


def test_tmr_refuses_a_hardened_rtl_folder_that_is_a_link(campaign_dir, tmp_path, outside):
    out = tmp_path / "tmr"
    plant(out, "hardened_rtl", outside.folder)
    link = plant(out, "tmr_map.json", outside.file("map_target"))
    refused(run("tmr", "--campaign", campaign_dir, "--out", out, "--threshold", 1.0, "--no-synth", "--no-prove",
                "--no-validate"), "hardened_rtl", "link")
    outside.assert_unchanged()
    assert_replaced(link)  # written before the folder was reached: replaced, not followed


def test_rtl_replaces_links_planted_at_its_files(small_model_dir, tmp_path, outside):
    out = tmp_path / "rtl"
    links = [plant(out, name, outside.file(name)) for name in ("fkhw_encoder.v", "regmap.csv")]
    ok(run("rtl", "--model", small_model_dir, "--out", out))
    outside.assert_unchanged()
    for link in links:
        assert_replaced(link)


# -- --out at a root, or on an input --------------------------------------------------------------

@pytest.mark.parametrize("command", ["campaign", "rate"])
def test_out_at_the_filesystem_root_is_refused(command, small_model_dir, campaign_dir):
    before = set(os.listdir("/"))
    args = (("campaign", "--model", small_model_dir, "--inputs", INPUTS) if command == "campaign" else
            ("rate", "--campaign", campaign_dir, "--samples", 10, "--k-max", 1))
    try:
        r = run(*args, "--out", "/")
    finally:
        new = set(os.listdir("/")) - before
        for name in new & ROOT_OUTPUTS:  # what the unfixed command wrote there: its own outputs only
            p = Path("/") / name
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    assert not new, f"new entries in /: {sorted(new)}"
    refused(r, "--out /", "filesystem root")


def test_out_at_the_home_folder_is_refused(small_model_dir, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    r = campaign(small_model_dir, home, env={"HOME": str(home)})
    refused(r, f"--out {home}", "home folder")
    assert not any(home.iterdir())


def test_sites_refuses_to_write_over_the_model(small_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(small_model_dir, model)
    encoder = model / "encoder_small.json"
    before = encoder.read_bytes()
    refused(run("sites", "--model", model, "--out", encoder), f"--out {encoder}", "--model")
    assert encoder.read_bytes() == before


def test_agree_refuses_to_write_over_a_campaign(campaign_dir, tmp_path):
    a = tmp_path / "a"
    shutil.copytree(campaign_dir, a)
    table = a / "campaign.csv"
    before = table.read_bytes()
    refused(run("agree", "--a", a, "--b", campaign_dir, "--out", table), f"--out {table}", "--a")
    assert table.read_bytes() == before


def test_campaign_refuses_an_out_folder_holding_its_site_list(small_model_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    sites = out / "campaign.csv"  # a site list kept under the name the campaign writes
    sites.write_text("site\n0\n1\n2\n")
    refused(campaign(small_model_dir, out, "--sites", sites), f"--out {out}", "--sites")
    assert sites.read_text() == "site\n0\n1\n2\n"


def test_rate_refuses_the_campaign_folder_as_out(campaign_dir, tmp_path):
    camp = tmp_path / "campaign"
    shutil.copytree(campaign_dir, camp)
    refused(run("rate", "--campaign", camp, "--samples", 10, "--k-max", 1, "--out", camp), f"--out {camp}",
            "--campaign")
    assert not (camp / "rate.json").exists()


# -- the writing API ------------------------------------------------------------------------------

@pytest.mark.parametrize("write", [
    lambda p: outpaths.write_text(p, "new\n"),
    lambda p: outpaths.write_bytes(p, b"new\n"),
    lambda p: outpaths.write_json(p, {"a": 1}),
    lambda p: outpaths.save_npy(p, np.arange(3)),
    lambda p: outpaths.save_npz(p, x=np.arange(3)),
    lambda p: outpaths.copy_file(Path(__file__), p),
], ids=["text", "bytes", "json", "npy", "npz", "copy"])
def test_writers_replace_a_link_and_leave_its_target(write, tmp_path, outside):
    link = plant(tmp_path / "out", "target", outside.file("t"))
    write(link)
    outside.assert_unchanged()
    assert_replaced(link)
    assert [p.name for p in link.parent.iterdir()] == ["target"]  # no temporary file left


def test_save_figure_keeps_the_format_of_the_name(tmp_path, outside):
    from matplotlib.figure import Figure

    link = plant(tmp_path, "f.png", outside.file("png"))
    outpaths.save_figure(Figure(figsize=(1, 1)), link, dpi=50)
    outside.assert_unchanged()
    assert link.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_atomic_open_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with outpaths.atomic_open(path, "w") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_files_get_the_mode_open_gives(tmp_path):
    old = os.umask(0o022)
    try:
        outpaths.write_text(tmp_path / "f.txt", "x")
        with outpaths.atomic_path(tmp_path / "g.h5") as tmp:
            tmp.write_bytes(b"y")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "g.h5").read_bytes() == b"y" and (tmp_path / "g.h5").stat().st_mode & 0o777 == 0o644


def test_open_new_replaces_a_link(tmp_path, outside):
    link = plant(tmp_path, "run.log", outside.file("log"))
    with outpaths.open_new(link) as f:
        f.write("line\n")
    outside.assert_unchanged()
    assert_replaced(link)


def test_open_lock_refuses_a_link(tmp_path, outside):
    link = plant(tmp_path, ".lock", outside.file("lock"))
    with pytest.raises(OutputError, match=r"\.lock.*link"):
        outpaths.open_lock(link)
    outside.assert_unchanged()
    fd = outpaths.open_lock(tmp_path / "real.lock")
    os.close(fd)


def test_make_dir_refuses_links_below_its_root(tmp_path, outside):
    out = tmp_path / "out"
    made = outpaths.make_dir(out / "a" / "b", root=out)
    assert made.is_dir()
    plant(out, "faults", outside.folder)
    with pytest.raises(OutputError, match="faults: is a link"):
        outpaths.make_dir(out / "faults" / "plain" / "seu", root=out)
    with pytest.raises(OutputError, match="faults: is a link"):
        outpaths.make_dir(out / "faults")
    outpaths.make_dir(out / "a" / "b")  # an existing folder is fine
    (out / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        outpaths.make_dir(out / "file")
    outside.assert_unchanged()


def test_check_no_links_names_the_link(tmp_path, outside):
    outpaths.check_no_links(tmp_path / "missing")
    plant(tmp_path / "project" / "firmware", "weights", outside.folder)
    with pytest.raises(OutputError, match="firmware/weights"):
        outpaths.check_no_links(tmp_path / "project")


@pytest.mark.parametrize("path", ["/", "/usr", "/etc"])
def test_check_out_dir_refuses_system_folders(path):
    with pytest.raises(OutputError, match=f"--out {path}: cannot write there"):
        outpaths.check_out_dir(path)


def test_check_out_file_refuses_a_file_in_the_root():
    with pytest.raises(OutputError, match="--out /sites.csv: cannot write there .a file in the filesystem root"):
        outpaths.check_out_file("/sites.csv")


def test_check_out_dir_refuses_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(OutputError, match="home folder"):
        outpaths.check_out_dir(tmp_path)
    outpaths.check_out_dir(tmp_path / "runs")  # a folder in it is fine


def test_check_out_paths_refuse_inputs(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("x\n")
    inputs = [("--data", data), ("--sites", None)]
    with pytest.raises(OutputError, match="is the input .*data.csv \\(--data\\)"):
        outpaths.check_out_file(tmp_path / "." / "data.csv", inputs=inputs)  # the same file, spelt otherwise
    with pytest.raises(OutputError, match="holds the input .*data.csv \\(--data\\)"):
        outpaths.check_out_dir(tmp_path, inputs=inputs)
    with pytest.raises(OutputError, match="is the input"):
        outpaths.check_out_dir(tmp_path, inputs=[("--campaign", tmp_path)])
    outpaths.check_out_dir(tmp_path / "sub", inputs=inputs)  # beside an input: nothing to overwrite
    outpaths.check_out_file(tmp_path / "other.csv", inputs=inputs)
