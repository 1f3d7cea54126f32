"""The campaign folder: its file names, one reader that validates them, and
the lock a run holds on it.

A campaign folder holds ``summary.json`` (what ran, the model digest, the
site counts), ``campaign.csv`` (one row per site; readers take the columns
they need and ignore others), ``outputs.npz`` (inputs, fault-free and faulty
latent codes) and, while a run is going, ``.partial/`` and ``.lock``. A
campaign of another fault kind than seu (``summary.json`` key ``faults``)
has one row per fault in ``campaign.csv`` and ``faults.csv`` beside it. Every
command that reads a campaign (plot, tmr, agree, rank, resume) reads it
here, so a damaged, truncated or foreign file is one error naming it.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.errors import InputError
from fkhw.outpaths import open_lock
from fkhw.validate import boolean, fields, integer, integer_column, number, number_column, string_in, \
    unique_keys

SUMMARY = "summary.json"
TABLE = "campaign.csv"
OUTPUTS = "outputs.npz"
TIMING = "timing.json"
PARTIAL = ".partial"
MANIFEST = "manifest.json"
LOCK = ".lock"
# every file a campaign run writes, or that is derived from its results in
# its folder (fkhw agree's default output): a --fresh run removes them all
FIGURE1 = "figure1.png"
AGREEMENT = "agreement.json"
FAULTS = "faults.csv"  # a campaign of another kind than seu: what each fault is (a faults file itself)
DAMAGE_FIGURE = "damage_by_class.png"  # its figure (fkhw plot)
ARTIFACTS = (TABLE, OUTPUTS, SUMMARY, TIMING, FIGURE1, AGREEMENT, FAULTS, DAMAGE_FIGURE)
TABLE_COLUMNS = ("site", "layer", "tensor", "index", "bit", "emd_norm")
SUMMARY_KEYS = ("model", "model_digest", "level", "inputs", "n_sites_model")
# the normalised damage column: emd_norm (the EMD metric, today's files) or the metric's (fkhw.damage.metrics)
DAMAGE = "emd_norm"
FAULT_TABLE_COLUMNS = ("fault", "n_upsets", "classes", "emd", "emd_norm", "n_changed", "n_touched", "lost", "extra",
                       "emd_norm_lo", "emd_norm_hi")


class CampaignFileError(InputError):
    """A campaign file that is missing, damaged, truncated or inconsistent."""


def _folder(path: Path, option: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise CampaignFileError(f"{option} {path}: no such campaign folder (run `fkhw campaign --out {path}` first)")
    return path


def read_summary(folder, option: str = "--campaign") -> dict:
    """summary.json of a finished campaign, with the keys readers rely on."""
    path = _folder(folder, option) / SUMMARY
    if not path.is_file():
        raise CampaignFileError(f"{option} {folder}: not a finished campaign folder (no {SUMMARY})")
    try:
        summary = json.loads(path.read_text(), object_pairs_hook=unique_keys(str(path)))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CampaignFileError(f"{path}: damaged ({e})") from None
    except InputError as e:
        raise CampaignFileError(str(e)) from None
    if not isinstance(summary, dict):
        raise CampaignFileError(f"{path}: damaged (not a JSON object)")
    missing = [k for k in SUMMARY_KEYS + (baseline_key(summary), rows_key(summary)) if k not in summary]
    if missing:
        raise CampaignFileError(f"{path}: damaged or not from fkhw campaign (no {', '.join(missing)})")
    try:
        _check_summary(summary, str(path))
    except InputError as e:
        raise CampaignFileError(str(e)) from None
    _check_model_entries(summary, path)
    return summary


def _check_summary(summary: dict, where: str) -> None:
    """The type and range of every summary field a reader uses (fkhw.validate)."""
    for key in ("model", "model_digest", "level"):
        string_in(summary[key], f"{where} {key}")
    n_sites_model = integer(summary["n_sites_model"], f"{where} n_sites_model", 0)
    integer(summary["inputs"], f"{where} inputs", 1)
    if "metric" in summary:
        metric = fields(summary["metric"], f"{where} metric", ("name", "column"))
        for key in ("name", "column", "raw"):
            if key in metric:
                string_in(metric[key], f"{where} metric {key}")
    if "faults" in summary:
        string_in(fields(summary["faults"], f"{where} faults", ("kind",))["kind"], f"{where} faults kind")
    rows = rows_key(summary)
    integer(summary[rows], f"{where} {rows}", 0, n_sites_model if rows == "n_sites" else None)
    number(summary[baseline_key(summary)], f"{where} {baseline_key(summary)}", above=0)
    if rows == "n_sites" and denominator_key(summary) in summary:  # a fault campaign's says what it is in words
        number(summary[denominator_key(summary)], f"{where} {denominator_key(summary)}", above=0)
    if "seed" in summary:
        integer(summary["seed"], f"{where} seed", 0)
    if summary.get("data") is not None:
        string_in(summary["data"], f"{where} data")
    if "complete" in summary:
        boolean(summary["complete"], f"{where} complete")
    if "design" in summary and "hardened" in fields(summary["design"], f"{where} design"):
        boolean(summary["design"]["hardened"], f"{where} design hardened")


def _check_model_entries(summary: dict, path: Path) -> None:
    """The entries that name the campaign's model, which a reader may load:
    names and a digest, never anything else (a folder can come from anyone)."""
    spec = summary.get("spec", {})
    if not isinstance(spec, dict):
        raise CampaignFileError(f"{path}: damaged (spec is not an object)")
    for key, value in (("model", summary["model"]), ("spec.model", spec.get("model", ""))):
        if not isinstance(value, str):
            raise CampaignFileError(f"{path}: {key} {value!r} is not a model name or path")
    digest = summary["model_digest"]
    if not (isinstance(digest, str) and len(digest) == 16 and all(c in "0123456789abcdef" for c in digest)):
        raise CampaignFileError(f"{path}: model_digest {digest!r} is not a model digest (16 hex digits)")


def damage_column(summary: dict | None) -> str:
    """The campaign's normalised damage column: ``emd_norm`` for the EMD
    (summaries without a ``metric``), else the metric's (accuracy_norm, ...)."""
    m = (summary or {}).get("metric")
    return m["column"] if isinstance(m, dict) else DAMAGE


def baseline_key(summary: dict) -> str:
    """The summary's fault-free mean damage: ``baseline_emd`` or ``baseline_damage``."""
    return "baseline_damage" if "metric" in summary else "baseline_emd"


def denominator_key(summary: dict) -> str:
    return "damage_denominator" if "metric" in summary else "emd_norm_denominator"


def _find_damage(header: list, path: Path) -> str:
    """The normalised damage column of a table header."""
    if DAMAGE in header:
        return DAMAGE
    found = [c for c in header if c.endswith("_norm")]
    if len(found) != 1:
        raise CampaignFileError(f"{path}: damaged or not a campaign table (no normalised damage column "
                                f"{DAMAGE} or <metric>_norm)")
    return found[0]


def kind_of(summary: dict) -> str:
    """The fault kind a campaign ran: ``seu`` (single upsets, keyed by site;
    summaries written before faults were data have no ``faults`` key)."""
    faults = summary.get("faults")
    return faults.get("kind") if isinstance(faults, dict) else "seu"


def rows_key(summary: dict) -> str:
    """The summary's row count: ``n_sites`` (seu) or ``n_faults``."""
    return "n_sites" if kind_of(summary) == "seu" else "n_faults"


def require_seu(summary: dict, folder, command: str, option: str = "--campaign") -> None:
    """Commands that choose parameter bits read a seu campaign only."""
    kind = kind_of(summary)
    if kind != "seu":
        raise CampaignFileError(f"{option} {folder} is a --faults {kind} campaign; fkhw {command} chooses "
                                "parameter bits from a --faults seu campaign (the default of fkhw campaign)")


@dataclass(frozen=True, eq=False)
class Table:
    """campaign.csv: the columns every reader needs, and any others as text."""

    path: Path
    site: np.ndarray
    layer: list
    tensor: list
    index: np.ndarray
    bit: np.ndarray
    damage: np.ndarray  # the metric's normalised damage (1 = fault-free)
    extra: dict  # column -> list of str (columns this reader does not interpret)
    column: str = DAMAGE  # its name: emd_norm, accuracy_norm, ...

    @property
    def emd_norm(self) -> np.ndarray:
        """The normalised damage under its EMD-era name (readers written before metrics)."""
        return self.damage

    def _named(self, column: str) -> str:
        return column.replace(DAMAGE, self.column, 1) if column.startswith(DAMAGE) else column

    def has(self, column: str) -> bool:
        """Whether the table holds ``column`` (``emd_norm*``: the metric's own)."""
        return self._named(column) == self.column or self._named(column) in self.extra

    def number(self, column: str) -> np.ndarray:
        """A further numeric column (e.g. ``emd_norm_hi``), checked like the
        damage; ``emd_norm*`` names the metric's own (``accuracy_norm_hi``)."""
        column = self._named(column)
        if column == self.column:
            return self.damage
        if column not in self.extra:
            raise CampaignFileError(f"{self.path}: no column {column!r} (written by an older fkhw? run the "
                                    "campaign again)")
        try:
            return number_column(self.extra[column], _cell(self.path, column))
        except InputError as e:
            raise CampaignFileError(str(e)) from None


def read_table(path, summary: dict | None = None, option: str = "--campaign") -> Table:
    """campaign.csv (a folder holding it, or the file), checked: every
    column present, integers and finite numbers, each site once, and as
    many rows as ``summary`` says (a cut file is refused, not read short)."""
    path = Path(path)
    if path.is_dir():
        path = path / TABLE
    if not path.is_file():
        raise CampaignFileError(f"{option} {path}: no campaign table (run `fkhw campaign` first)")
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            damage = _find_damage(header, path) if "site" in header else DAMAGE
            missing = [c for c in TABLE_COLUMNS if c.replace(DAMAGE, damage) not in header]
            if missing and "fault" in header:
                raise CampaignFileError(f"{path}: a table of faults (a --faults campaign other than seu), not of "
                                        "sites")
            if missing:
                raise CampaignFileError(f"{path}: damaged or not a campaign table (no column {', '.join(missing)})")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise CampaignFileError(f"{path}: damaged ({e})") from None
    if not rows:
        raise CampaignFileError(f"{path}: campaign table has no rows")
    cols = {c: [r.get(c) for r in rows] for c in header}
    named = [c.replace(DAMAGE, damage) for c in TABLE_COLUMNS]
    for k, r in enumerate(rows):
        if None in r or any(r.get(c) in (None, "") for c in named):
            raise CampaignFileError(f"{path}:{k + 2}: row is cut short or has empty fields")

    if summary is not None and len(rows) != summary["n_sites"]:
        raise CampaignFileError(f"{path}: {len(rows)} rows, but {SUMMARY} says {summary['n_sites']} sites "
                                "(cut short or from another run)")
    n_sites = None if summary is None else summary["n_sites_model"]
    try:
        site = _ints(cols["site"], path, "site", n_sites, ": the model's sites")
        index, bit = _ints(cols["index"], path, "index"), _ints(cols["bit"], path, "bit")
        emd_norm = number_column(cols[damage], _cell(path, damage))
    except InputError as e:
        raise CampaignFileError(str(e)) from None
    if np.unique(site).size != site.size:
        raise CampaignFileError(f"{path}: a site is listed twice")
    extra = {c: v for c, v in cols.items() if c not in named}
    return Table(path, site, cols["layer"], cols["tensor"], index, bit, emd_norm, extra, damage)


def _cell(path: Path, column: str):
    """Names the cell of data row i of a table (row 1 is the header)."""
    return lambda i: f"{path} row {i + 2} column {column}"


def _ints(cells: list, path: Path, column: str, n: int | None = None, what: str = "") -> np.ndarray:
    """A column of non-negative integers (below ``n`` if given), int64."""
    return np.array(integer_column(cells, _cell(path, column), 0, None if n is None else n - 1, what),
                    dtype=np.int64)


@dataclass(frozen=True, eq=False)
class FaultTable:
    """campaign.csv of a campaign of another kind than seu (one row per fault)."""

    path: Path
    fault: np.ndarray
    n_upsets: np.ndarray
    classes: np.ndarray  # str: the flip-flop classes the fault hits (param, pipeline, control, a+b)
    emd_norm: np.ndarray
    n_touched: np.ndarray
    lost: np.ndarray
    extra: np.ndarray
    emd_norm_lo: np.ndarray
    emd_norm_hi: np.ndarray


def read_fault_table(folder, summary: dict, option: str = "--campaign") -> FaultTable:
    """campaign.csv of a non-seu campaign, checked like read_table: every
    column, integers and finite numbers, each fault once, as many rows as
    ``summary`` says."""
    path = _folder(folder, option) / TABLE
    if not path.is_file():
        raise CampaignFileError(f"{option} {folder}: no campaign table (run `fkhw campaign` first)")
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            damage = damage_column(summary)
            wanted = [_metric_name(c, damage, summary) for c in FAULT_TABLE_COLUMNS]
            missing = [c for c in wanted if c not in (reader.fieldnames or [])]
            if missing:
                raise CampaignFileError(f"{path}: damaged or not a table of faults (no column {', '.join(missing)})")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise CampaignFileError(f"{path}: damaged ({e})") from None
    for k, r in enumerate(rows):
        if None in r or any(r.get(c) in (None, "") for c in wanted):
            raise CampaignFileError(f"{path}:{k + 2}: row is cut short or has empty fields")
    if len(rows) != summary[rows_key(summary)]:
        raise CampaignFileError(f"{path}: {len(rows)} rows, but {SUMMARY} says {summary[rows_key(summary)]} faults "
                                "(cut short or from another run)")

    def column(name, kind):
        name = _metric_name(name, damage, summary)
        cells = [r[name] for r in rows]
        try:
            return _ints(cells, path, name) if kind is int else number_column(cells, _cell(path, name))
        except InputError as e:
            raise CampaignFileError(str(e)) from None

    fault = column("fault", int)
    if np.unique(fault).size != fault.size:
        raise CampaignFileError(f"{path}: a fault is listed twice")
    return FaultTable(path, fault, column("n_upsets", int), np.array([r["classes"] for r in rows], dtype=object),
                      column("emd_norm", float), column("n_touched", int), column("lost", int), column("extra", int),
                      column("emd_norm_lo", float), column("emd_norm_hi", float))


def _metric_name(column: str, damage: str, summary: dict) -> str:
    """A table column under the campaign's metric (emd -> its raw column,
    emd_norm* -> its normalised column); today's names for the EMD."""
    if damage == DAMAGE:
        return column
    if column == "emd":
        return summary["metric"].get("raw", "damage")
    return column.replace(DAMAGE, damage, 1) if column.startswith(DAMAGE) else column


def read_outputs(folder, summary: dict, option: str = "--campaign"):
    """outputs.npz as a :class:`fkhw.campaign.outputs.CampaignOutputs` (inputs,
    fault-free and faulty latent codes), its shapes checked against
    ``summary``: a damaged, cut-short or foreign file is one error naming it."""
    from fkhw.campaign.outputs import CampaignOutputs, OutputsError

    path = _folder(folder, option) / OUTPUTS
    if not path.is_file():
        raise CampaignFileError(f"{option} {folder}: not a finished campaign folder (no {OUTPUTS})")
    try:
        z = CampaignOutputs.load(path)
    except OutputsError as e:
        raise CampaignFileError(str(e)) from None
    n, n_in = summary[rows_key(summary)], summary["inputs"]
    if z.kind != kind_of(summary):
        raise CampaignFileError(f"{path}: holds a {z.kind} campaign, {SUMMARY} says {kind_of(summary)}")
    if z.lost_indptr is not None and (z.lost_indptr.shape != (n + 1,) or int(z.lost_indptr[-1]) != z.lost_module.size
                                      or z.extra.shape != (n,) or len(z.fault_set) != n):
        raise CampaignFileError(f"{path}: lost/extra/fault arrays do not fit {SUMMARY} ({n} faults)")
    n_pairs = z.module.shape[0]
    if (z.sites.shape != (n,) or z.baseline.ndim != 2 or z.inputs.shape[0] != z.baseline.shape[0]
            or z.inputs.shape[0] != n_in or z.indptr.shape != (n + 1,) or int(z.indptr[-1]) != n_pairs
            or np.any(np.diff(z.indptr) < 0) or z.changed_latent.shape != (n_pairs, z.baseline.shape[1])
            or (n_pairs and (z.module.min() < 0 or z.module.max() >= n_in))):
        raise CampaignFileError(f"{path}: array shapes do not fit {SUMMARY} ({n} {rows_key(summary)[2:]} x {n_in} inputs): "
                                f"sites {z.sites.shape}, baseline {z.baseline.shape}, "
                                f"changed entries {z.changed_latent.shape}")
    return z


def read_manifest(folder) -> str:
    """The identity of the unfinished run in ``folder/.partial``."""
    path = Path(folder) / PARTIAL / MANIFEST
    try:
        identity = json.loads(path.read_text()).get("identity")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        identity = None
    if not isinstance(identity, str):
        raise CampaignFileError(f"{path}: damaged; start again with --fresh to discard the unfinished run")
    return identity


def finished_identity(folder) -> str | None:
    """The identity recorded by the finished campaign in ``folder``: None if
    there is none, "" if its summary.json is damaged or predates identities."""
    path = Path(folder) / SUMMARY
    if not path.exists():
        return None
    try:
        identity = json.loads(path.read_text()).get("identity")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        identity = None
    return identity if isinstance(identity, str) else ""


def remove_artifacts(folder) -> None:
    """What a run in ``folder`` wrote, so that a --fresh run leaves nothing stale."""
    for name in ARTIFACTS:
        (Path(folder) / name).unlink(missing_ok=True)


class FolderLock:
    """An exclusive lock on a campaign folder for one run (``flock`` on
    ``.lock``, which holds the owner's pid). The kernel drops it when the
    process dies, so the lock of a killed run is taken over, never stale."""

    def __init__(self, folder, option: str = "--out"):
        self.path, self.option, self.fd = Path(folder) / LOCK, option, None

    def __enter__(self) -> "FolderLock":
        while True:
            fd = open_lock(self.path)  # never through a link planted as .lock
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise CampaignFileError(f"{self.option} {self.path.parent}: another campaign (pid {self._owner()}) "
                                        "is running in this folder; wait for it or choose another --out") from None
            # the holder before us may have removed the file after we opened it: lock the one on disk
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def _owner(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


@dataclass(frozen=True, eq=False)
class FlipFlopDamage:
    """Per upset flip-flop of a single-upset campaign (a ``pipeline`` one):
    its upsets and the fraction of them that degrade an output."""

    ff: np.ndarray  # flip-flop ids, ascending
    fraction: np.ndarray  # of its upsets: damage > threshold, a lost or an extra output
    upsets: np.ndarray  # its upsets in the campaign

    def of(self, lo: int, hi: int) -> "FlipFlopDamage":
        """The flip-flops with ids in [lo, hi)."""
        sel = (self.ff >= lo) & (self.ff < hi)
        return FlipFlopDamage(self.ff[sel], self.fraction[sel], self.upsets[sel])


def flip_flop_damage(folder, summary: dict, space, threshold: float, option: str) -> FlipFlopDamage:
    """Per flip-flop damage of the campaign at ``folder`` whose faults are
    one upset each (``faults.csv`` beside ``campaign.csv``), every id checked
    against ``space`` (fkhw.faults.space.FlipFlopSpace)."""
    from fkhw.faults.space import FaultError, read_faults_file

    table = read_fault_table(folder, summary, option)
    try:
        fs = read_faults_file(_folder(folder, option) / FAULTS)
        space.check(fs.ff)
    except FaultError as e:
        raise CampaignFileError(f"{option} {folder}: {e}") from None
    if len(fs) != table.fault.size or not np.array_equal(fs.ids, table.fault) or (fs.n_upsets() != 1).any():
        raise CampaignFileError(f"{option} {folder}: faults.csv does not list one upset per fault of campaign.csv")
    bad = (table.emd_norm > threshold) | (table.lost > 0) | (table.extra > 0)
    ff, pos = np.unique(fs.ff, return_inverse=True)
    n = np.bincount(pos, minlength=ff.size)
    return FlipFlopDamage(ff, np.bincount(pos, weights=bad, minlength=ff.size) / n, n)
