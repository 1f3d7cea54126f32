"""The Python API: each common task of fkhw as one call.

``import fkhw`` exposes these names without importing them (the package's
``__getattr__`` loads this module on first use), so importing fkhw stays
cheap and never starts TensorFlow::

    import fkhw

    model = fkhw.load_model("econt-bol")                  # a name, a directory, an .h5 / .keras file
    camp = fkhw.run_campaign(model, level="software", inputs=32, seed=0, out="c")
    camp.table                                            # per-site damage, a numpy structured array
    tmr = fkhw.select_tmr(camp, threshold=1.05)           # the map; tmr.write("t") writes RTL + annotations
    rtl = fkhw.run_campaign(model, level="rtl", sites=tmr.sites, out="r")
    fkhw.agree(camp, rtl)                                 # site by site: identical outputs?

The calls run the same functions as the ``fkhw`` commands (a campaign
folder written here is the one ``fkhw campaign`` writes, and the reverse),
and raise the package's own errors (``ValueError`` subclasses naming the
argument or file at fault), never ``SystemExit``. Every result is a frozen
dataclass holding the folder it was written to; what a call returns can be
read again later from that folder (:func:`open_campaign`).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence, Union

import numpy as np

if TYPE_CHECKING:  # for the annotations only: importing them here would load the whole package
    from fkhw.campaign.agreement import Agreement
    from fkhw.model.bundle import ModelBundle
    from fkhw.model.ir import IntegerModel
    from fkhw.tmr.select import Rule

__all__ = [
    "Model", "Campaign", "TmrMap", "Rtl", "Rates", "Ranking",
    "load_model", "run_campaign", "open_campaign", "agree", "select_tmr", "harden", "generate_rtl", "rate", "rank",
    "replay", "sim",
]

PathLike = Union[str, "os.PathLike[str]"]
# the campaign's own default thresholds (fkhw.campaign.run.DEFAULT_THRESHOLDS), repeated here so that the
# signature can show them without importing the campaign module; a test checks they agree
DEFAULT_THRESHOLDS = (1.0, 1.01, 1.05, 1.1)


# --- models -------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Model:
    """A model ready for every level: its files, integer IR and decoder.

    Attributes:
        name: the model's name (``econt-bol``, or the directory's name).
        directory: the folder holding its files.
        digest: the content hash of the model files; every campaign records it.
        source: the name or path it was loaded from, as given (what a
            campaign records, so that later readers find the model again).
        bundle: the underlying :class:`fkhw.model.bundle.ModelBundle`.
    """

    name: str
    directory: Path
    digest: str
    source: str
    bundle: "ModelBundle" = field(repr=False)

    @property
    def ir(self) -> "IntegerModel":
        """The integer IR (:class:`fkhw.model.ir.IntegerModel`) every level reads."""
        return self.bundle.ir

    @property
    def n_sites(self) -> int:
        """The number of fault sites, every stored parameter bit (the ids of a ``seu`` campaign)."""
        return int(self.bundle.ir.n_param_bits())

    @property
    def n_flip_flops(self) -> int:
        """Every flip-flop of the plain RTL (parameter bits, pipeline data bits, valid flags)."""
        from fkhw.faults.space import FlipFlopSpace

        return int(FlipFlopSpace.of(self.bundle.ir).n_ff)

    @property
    def has_decoder(self) -> bool:
        """Whether the model has a decoder (the ``emd`` metric needs one)."""
        return self.bundle.decoder is not None


def load_model(name_or_path: PathLike) -> Model:
    """Load a model: a vendored name (``econt-bol``, ``econt-eol``,
    ``fkeras-eol``, ``digits``), a directory in the Keras 2 / QKeras layout
    (``encoder*.json`` + ``encoder*.hdf5``, optionally the decoder pair), or
    a full-model file saved by ``model.save`` (``.h5``, ``.keras``).

    The extraction to the integer IR is cached by the files' content hash
    (``~/.cache/fkhw``; ``FKHW_CACHE`` moves it, ``FKHW_CACHE=off`` disables
    it), so only the first load of a model imports TensorFlow.

    Raises:
        fkhw.model.files.ModelFileError: no such model, or files fkhw cannot read.
        fkhw.model.extract.UnsupportedLayerError: a layer no level supports, named.
    """
    from fkhw.model.bundle import load_model as _load

    source = os.fspath(name_or_path)
    bundle = _load(source)
    return Model(bundle.name, Path(bundle.files.directory), bundle.files.digest(), source, bundle)


def _model(model: Model | PathLike) -> Model:
    return model if isinstance(model, Model) else load_model(model)


# --- campaigns ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Campaign:
    """A finished campaign folder (``fkhw campaign --out FOLDER`` or
    :func:`run_campaign`).

    Attributes:
        folder: the campaign folder.
        summary: ``summary.json``: what ran (model, digest, level, inputs,
            fault kind, metric) and the totals (see the file formats page).
    """

    folder: Path
    summary: dict = field(repr=False)

    @property
    def level(self) -> str:
        """The level the faults ran on (``software``, ``hls``, ``rtl`` or ``netlist``)."""
        return self.summary["level"]

    @property
    def kind(self) -> str:
        """The fault kind, ``seu`` (rows keyed by site), or ``mbu:K``, ``pipeline``, ``accumulate:K``,
        ``replicas``, ``replica-pairs``, ``file`` (rows keyed by fault id)."""
        from fkhw.campaign.files import kind_of

        return kind_of(self.summary)

    @property
    def model(self) -> str:
        """The name of the model the campaign ran on."""
        return self.summary["model"]

    @property
    def inputs(self) -> int:
        """The number of input vectors (modules, rows) every fault ran on."""
        return int(self.summary["inputs"])

    @property
    def damage_column(self) -> str:
        """The name of the normalised damage column (``emd_norm``, or the metric's, ``accuracy_norm``, ...)."""
        from fkhw.campaign.files import damage_column

        return damage_column(self.summary)

    @functools.cached_property
    def table(self) -> np.ndarray:
        """``campaign.csv`` as a numpy structured array, one row per site
        (``seu``) or per fault (other kinds), validated on reading (a damaged
        or cut table raises :class:`fkhw.campaign.files.CampaignFileError`).
        Text columns (``layer``, ``tensor``, ``classes``) are strings, the
        others integers or floats; ``table[campaign.damage_column]`` is the
        normalised damage, 1 = fault-free."""
        from fkhw.campaign.files import read_fault_table, read_table

        if self.kind == "seu":
            t = read_table(self.folder, self.summary)
            columns = {"site": t.site, "layer": np.array(t.layer), "tensor": np.array(t.tensor), "index": t.index,
                       "bit": t.bit, t.column: t.damage}
            columns.update({name: _column(values) for name, values in t.extra.items()})
            return _structured(columns, _header(t.path))
        t = read_fault_table(self.folder, self.summary)
        col = self.damage_column
        columns = {"fault": t.fault, "n_upsets": t.n_upsets, "classes": t.classes.astype(str), col: t.emd_norm,
                   "n_touched": t.n_touched, "lost": t.lost, "extra": t.extra, f"{col}_lo": t.emd_norm_lo,
                   f"{col}_hi": t.emd_norm_hi}
        columns.update({name: _column(values) for name, values in _text_columns(t.path).items()
                        if name not in columns})
        return _structured(columns, _header(t.path))

    @property
    def outputs(self):
        """The recorded outputs (``outputs.npz``): inputs, fault-free and faulty outputs (a
        :class:`fkhw.campaign.outputs.CampaignOutputs`; ``.latent()`` rebuilds
        the dense outputs)."""
        from fkhw.campaign.files import read_outputs

        return read_outputs(self.folder, self.summary)

    def sensitive(self, threshold: float, rule: str = "mean") -> np.ndarray:
        """Site (or fault) ids whose normalised damage exceeds ``threshold``;
        ``rule="upper"`` reads the upper end of each interval instead."""
        if rule not in ("mean", "upper"):
            from fkhw.tmr.select import TmrError

            raise TmrError(f"rule {rule!r}: use mean or upper")
        col = self.damage_column + ("_hi" if rule == "upper" else "")
        key = "site" if self.kind == "seu" else "fault"
        return np.sort(self.table[key][self.table[col] > threshold])

    def plot(self, out: PathLike | None = None) -> Path:
        """Draw the campaign's figure (``fkhw plot``): the Figure 1 heat map of
        a ``seu`` campaign, damage by flip-flop class of any other kind.
        Returns the PNG's path (default: inside the folder)."""
        from fkhw.analysis.figures import campaign_figure1, damage_figure
        from fkhw.campaign.run import campaign_model
        from fkhw.faults.sites import SiteSpace

        png = None if out is None else Path(out)
        if self.kind != "seu":
            return damage_figure(self.folder, png)
        bundle = campaign_model(self.summary)
        return campaign_figure1(SiteSpace.of(bundle.ir), bundle.name, self.folder, self.level, self.inputs, png)


def _header(path: Path) -> list:
    """campaign.csv's column order, which the structured array keeps."""
    import csv

    with Path(path).open(newline="") as f:
        return next(csv.reader(f))


def _text_columns(path: Path) -> dict:
    """Every column of a table the reader has already validated, as text."""
    import csv

    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {name: [r[name] for r in rows] for name in (rows[0] if rows else {})}


def _column(values: list) -> np.ndarray:
    """A column the table reader passes on as text: integers, else floats, else text."""
    for kind in (int, float):
        try:
            return np.array([kind(v) for v in values])
        except (TypeError, ValueError):
            continue
    return np.array(values, dtype=str)


def _structured(columns: dict, order: list) -> np.ndarray:
    names = [c for c in order if c in columns] + [c for c in columns if c not in order]
    arrays = [np.asarray(columns[c]) for c in names]
    table = np.empty(arrays[0].shape[0], dtype=[(n, a.dtype) for n, a in zip(names, arrays)])
    for n, a in zip(names, arrays):
        table[n] = a
    return table


def open_campaign(folder: PathLike) -> Campaign:
    """A finished campaign folder, its ``summary.json`` checked now and its
    table read when first used.

    Raises:
        fkhw.campaign.files.CampaignFileError: no such folder, an unfinished
            campaign, or a damaged ``summary.json``.
    """
    from fkhw.campaign.files import read_summary

    folder = Path(folder)
    return Campaign(folder, read_summary(folder, "folder"))


def _campaign(c: Campaign | PathLike) -> Campaign:
    return c if isinstance(c, Campaign) else open_campaign(c)


def _site_list(sites, space) -> tuple:
    """``sites``: site ids, or a file of them (one per line, or a CSV with a ``site`` column)."""
    from fkhw.faults.sites import read_site_list

    if isinstance(sites, (str, os.PathLike)):
        return tuple(read_site_list(Path(sites), space).tolist())
    return tuple(int(s) for s in np.asarray(list(sites) if not isinstance(sites, np.ndarray) else sites).ravel())


def _hardening(tmr: "TmrMap | PathLike | None", refresh: bool, m: Model):
    """The hardened design a campaign upsets (None: the plain one)."""
    from fkhw.campaign.run import CampaignError, hardening_from_map
    from fkhw.faults.space import Hardening

    if refresh and tmr is None:
        raise CampaignError("refresh is a variant of the hardened design: give tmr as well")
    if isinstance(tmr, TmrMap):
        if tmr.folder is None:
            return Hardening(tuple(int(s) for s in tmr.protect), bool(refresh), f"map of {tmr.campaign}")
        return hardening_from_map(tmr.folder, m.bundle, refresh)
    return None if tmr is None else hardening_from_map(Path(tmr), m.bundle, refresh)


def run_campaign(model: Model | PathLike, *, out: PathLike, level: str = "software", faults: str = "seu",
                 inputs: int = 32, seed: int = 0, sites: Iterable[int] | PathLike | None = None,
                 jobs: int | None = None, metric: str = "emd", labels: PathLike | None = None,
                 data: PathLike | None = None, tmr: "TmrMap | PathLike | None" = None, refresh: bool = False,
                 faults_file: PathLike | None = None, cycle: int | None = None, samples: int | None = None,
                 order: str = "site", stop_after: int | None = None, stop_sensitive: int | None = None,
                 sensitive_threshold: float = 1.0, thresholds: Sequence[float] = (),
                 baseline: str = "modules", confidence: float = 0.95, scheduler: str | None = None,
                 chunk: int | None = None, fresh: bool = False, plot: bool = False,
                 quiet: bool = True) -> Campaign:
    """Run (or resume) a fault-injection campaign into ``out``: what
    ``fkhw campaign`` does, with the same options under the same names.

    Args:
        model: a :class:`Model`, or a name / path for :func:`load_model`.
        out: the campaign folder. A folder holding a campaign run with other
            arguments is refused unless ``fresh``; one killed half way resumes.
        level: ``software``, ``hls``, ``rtl`` or ``netlist`` (the registry ``fkhw.levels.LEVELS``).
        faults: ``seu`` (each parameter bit once), ``mbu:K``, ``pipeline``,
            ``accumulate:K``, and on a hardened design ``replicas``,
            ``replica-pairs``.
        inputs: input vectors (modules, rows), drawn with ``seed``.
        sites: with ``seu``: only these site ids (or a file of them).
        jobs: simulator processes or Dask workers (default: in process for
            software, every core for hls / rtl / netlist).
        metric: ``emd`` (HGCAL, needs a decoder), ``accuracy`` (needs
            ``labels``), ``mse``, or ``module:function``.
        labels: class ids or targets, with array ``data``.
        data: an HGCAL CSV (default: the vendored sample) or an array file
            (``.npy``, ``.npz``, ``.h5``) in the model's input shape.
        tmr: a :class:`TmrMap` (written), a ``fkhw tmr`` folder or a
            ``tmr_map.json``: upset the selectively hardened design;
            ``refresh``: its self-correcting variant.
        faults_file: an explicit list of faults (CSV or JSON) instead of ``faults``.
        cycle, samples: the upsets' cycle; the draws of ``accumulate:K``.
        order, stop_after, stop_sensitive, sensitive_threshold: injection
            order and early stops of a ``seu`` campaign.
        thresholds: further thresholds for the summary (1.0, 1.01, 1.05 and
            1.1 are always there).
        baseline: ``modules`` (the default) or ``data``: the normalised
            damage's denominator.
        confidence: of the per-site interval of the normalised damage.
        scheduler: the address of a running Dask scheduler to run on.
        chunk: faults per work chunk (what a kill can lose).
        fresh: replace a campaign already in ``out``.
        plot: also draw the campaign's figure (as ``fkhw campaign`` does).
        quiet: no progress lines.

    Raises:
        fkhw.campaign.run.CampaignError: options that do not go together, an
            output folder holding another campaign.
        fkhw.levels.LevelError, fkhw.faults.space.FaultError,
        fkhw.damage.metrics.MetricError, fkhw.model.data.DataError: a level,
            fault kind, metric or data file that cannot be used, named.
    """
    import dataclasses

    from fkhw.campaign.executors import probe_scheduler, scheduler_address
    from fkhw.campaign.run import CampaignSpec, check_fault_options
    from fkhw.campaign.run import run_campaign as _run
    from fkhw.faults.sites import SiteSpace
    from fkhw.outpaths import check_out_dir

    m = _model(model)
    out = check_out_dir(out, "out")
    if scheduler is not None:
        scheduler = scheduler_address(scheduler)
        probe_scheduler(scheduler)
    hardening = _hardening(tmr, refresh, m)
    spec = CampaignSpec(
        model=m.source, level=level, n_inputs=inputs, seed=seed,
        data=None if data is None else os.fspath(data), order=order, sites=None if sites is None else (),
        stop_after=stop_after, stop_sensitive=stop_sensitive, sensitive_threshold=sensitive_threshold,
        thresholds=tuple(DEFAULT_THRESHOLDS) + tuple(float(t) for t in thresholds), jobs=jobs, chunk=chunk,
        scheduler=scheduler, baseline=baseline, confidence=confidence, faults=faults,
        faults_file=None if faults_file is None else os.fspath(faults_file), cycle=cycle, samples=samples,
        hardening=hardening, metric=metric, labels=None if labels is None else os.fspath(labels))
    check_fault_options(spec)
    if sites is not None:
        spec = dataclasses.replace(spec, sites=_site_list(sites, SiteSpace.of(m.ir)))
    _run(spec, m.bundle, out, fresh=fresh, quiet=quiet)
    campaign = open_campaign(out)  # as written: the same summary a later reader gets
    if plot:
        campaign.plot()
    return campaign


def agree(a: Campaign | PathLike, b: Campaign | PathLike, out: PathLike | None = None) -> "Agreement":
    """Join two campaigns of any two levels on site (or fault id) and compare
    their recorded outputs, as ``fkhw agree`` does. With ``out``, also write
    ``agreement.json`` there.

    Returns:
        :class:`fkhw.campaign.agreement.Agreement`: ``disagreeing_sites``
        (empty when every common site recorded identical outputs),
        ``common_sites``, ``baseline_identical``, ``mismatching_values``.

    Raises:
        fkhw.campaign.agreement.AgreementError: campaigns of different
            models, inputs or faults (a comparison that would mean nothing).
    """
    from fkhw.campaign.agreement import Campaign as Loaded, compare
    from fkhw.outpaths import check_out_file

    ca, cb = _campaign(a), _campaign(b)
    target = None if out is None else check_out_file(out, "out")
    ag = compare(Loaded.load(ca.folder, "a"), Loaded.load(cb.folder, "b"))
    if target is not None:
        _write_text(target, json.dumps({"a": str(ca.folder), "b": str(cb.folder), **ag.to_dict()}, indent=2) + "\n")
    return ag


def _write_text(path: Path, text: str) -> None:
    """Written beside, then moved into place: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- TMR ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TmrMap:
    """A selective-TMR map chosen from a campaign (:func:`select_tmr`).

    Attributes:
        campaign: the ``seu`` campaign folder it was chosen from.
        rule: the rule (:class:`fkhw.tmr.select.Rule`).
        sites: the protected parameter bits (site ids, ascending).
        n_sites: all parameter bits of the model.
        protect_control: whether every pipeline stage's valid flag is
            triplicated too.
        folder: where :meth:`write` wrote it (None until then).
        report: ``tmr_report.json`` of the write (empty until then).
    """

    campaign: Path
    rule: "Rule"
    sites: np.ndarray = field(repr=False)
    n_sites: int
    protect_control: bool = False
    pipeline_campaign: Path | None = None
    pipeline_threshold: float = 0.5
    folder: Path | None = None
    report: dict = field(default_factory=dict, repr=False)

    @property
    def protected_bits(self) -> int:
        """How many parameter bits the map triplicates."""
        return int(self.sites.size)

    @property
    def overhead_pct(self) -> float:
        """Extra weight flip-flops in percent (2 x protected bits / all parameter bits)."""
        return 100.0 * 2 * self.sites.size / self.n_sites

    @property
    def protect(self) -> np.ndarray:
        """Every flip-flop id the hardened RTL triplicates (the protected
        sites), then the valid flags with ``protect_control`` (and, once
        written, the pipeline data bits a ``pipeline_campaign`` chose)."""
        if self.folder is not None:
            from fkhw.faults.tmrmap import TmrMap as Stored

            return Stored.load(self.folder).protect
        extra = []
        if self.protect_control:
            from fkhw.campaign.run import campaign_model
            from fkhw.faults.space import FlipFlopSpace

            space = FlipFlopSpace.of(campaign_model(open_campaign(self.campaign).summary).ir)
            extra = list(range(space.first_control, space.first_control + space.latency))
        return np.array(sorted(self.sites.tolist() + extra), dtype=np.int64)

    def write(self, out: PathLike, *, area: bool = False, prove: bool = False, validate: bool = False,
              validate_inputs: int = 1024, validate_data: PathLike | None = None, jobs: int | None = None,
              gate_level: bool = False, scheduler: str | None = None) -> "TmrMap":
        """Write the map and what follows from it into ``out``, as ``fkhw tmr``
        does: ``tmr_map.json`` / ``.csv``, the TMRG and synthesis annotations
        (``annotations/``), the hardened RTL (``hardened_rtl/``), the figures
        and ``tmr_report.json``. ``area``: the Yosys area table (minutes on
        econt-bol); ``prove``: the fault-injection proof on the hardened RTL
        (Verilator); ``validate``: the held-out check on ``validate_inputs``
        other modules (or ``validate_data``). Returns the map with its
        ``folder`` and ``report``.

        Raises:
            fkhw.tmr.select.TmrError: the proof failed, or the campaign no
                longer matches its model.
        """
        from fkhw.campaign.run import campaign_model
        from fkhw.outpaths import check_out_dir
        from fkhw.tmr.flow import TmrOptions, run_tmr
        from fkhw.tmr.stable import HeldOut, validate_campaign

        out = check_out_dir(out, "out")
        summary = open_campaign(self.campaign).summary
        bundle = campaign_model(summary)
        evidence = {}
        if validate:
            held = HeldOut(validate_inputs, None if validate_data is None else os.fspath(validate_data))
            held.check()
            evidence = {"validation": validate_campaign(bundle, self.campaign, self.rule, held,
                                                        out / "heldout", quiet=True).to_dict()}
        if scheduler is not None:
            from fkhw.campaign.executors import probe_scheduler, scheduler_address

            scheduler = scheduler_address(scheduler)
            probe_scheduler(scheduler)
        options = TmrOptions(synth=area, prove=prove, jobs=jobs, gate_level=gate_level, scheduler=scheduler,
                             protect_control=self.protect_control, pipeline_campaign=self.pipeline_campaign,
                             pipeline_threshold=self.pipeline_threshold)
        report = run_tmr(self.campaign, out, self.rule, bundle, options, evidence=evidence)
        import dataclasses

        return dataclasses.replace(self, folder=out, report=report)


def select_tmr(campaign: Campaign | PathLike, threshold: float | None = 1.05, rule: str = "upper",
               budget: str | int | None = None, protect_control: bool = False,
               pipeline_campaign: Campaign | PathLike | None = None, pipeline_threshold: float = 0.5) -> TmrMap:
    """Choose the bits to triplicate from a ``seu`` campaign: every bit whose
    normalised damage exceeds ``threshold`` (``rule="mean"``), or whose
    interval's upper end does (``rule="upper"``, the conservative default
    ``fkhw sim`` uses); or, with ``budget`` (``300`` bits or ``"3%"``), the
    most damaging bits. Nothing is written until :meth:`TmrMap.write`.

    ``protect_control`` also triplicates every stage's valid flag;
    ``pipeline_campaign`` (a plain ``pipeline`` campaign) the pipeline data
    bits whose upsets degrade more than ``pipeline_threshold`` of the time.

    Raises:
        fkhw.tmr.select.TmrError: a rule the campaign cannot satisfy.
        fkhw.campaign.files.CampaignFileError: not a ``seu`` campaign, or a
            damaged one.
    """
    from fkhw.campaign.run import campaign_model
    from fkhw.tmr.select import CampaignTable, TmrError, parse_rule, select

    c = _campaign(campaign)
    if budget is not None:
        threshold = None
    if not 0 <= pipeline_threshold < 1:
        raise TmrError(f"pipeline_threshold {pipeline_threshold:g}: give a fraction of upsets in [0, 1)")
    r = parse_rule(threshold, None if budget is None else str(budget), rule)
    table = CampaignTable.load(c.folder)
    n_sites = campaign_model(c.summary).ir.n_param_bits()
    chosen = select(table, r, n_sites)
    pipe = None if pipeline_campaign is None else _campaign(pipeline_campaign)
    if pipe is not None and pipe.kind != "pipeline":
        raise TmrError(f"pipeline_campaign {pipe.folder}: a {pipe.kind} campaign; give one run with faults='pipeline'")
    return TmrMap(c.folder, r, np.sort(table.site[chosen.rows]), int(n_sites), protect_control,
                  None if pipe is None else pipe.folder, pipeline_threshold)


# --- RTL ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Rtl:
    """Generated Verilog in a folder.

    Attributes:
        folder: where the files are (``fkhw_encoder.v``, the templates,
            ``regmap.csv``, ``fkhw_encoder.json``).
        files: the Verilog files, in the order a tool reads them.
        meta: ``fkhw_encoder.json``: latency, ports, register map, expected
            flip-flops; for a hardened design its key ``tmr``.
    """

    folder: Path
    files: tuple
    meta: dict = field(repr=False)


def generate_rtl(model: Model | PathLike, out: PathLike) -> Rtl:
    """The plain encoder's Verilog into ``out`` (``fkhw rtl``).

    Raises:
        fkhw.rtlgen.emit.RtlUnsupported: a model the generator cannot build, named.
    """
    from fkhw.outpaths import check_out_dir
    from fkhw.rtlgen.emit import generate

    m = _model(model)
    out = check_out_dir(out, "out")
    design = generate(m.ir)
    design.write(out)
    return Rtl(out, tuple(design.verilog_files(out)), design.meta)


def harden(model: Model | PathLike, sites: Iterable[int], out: PathLike, refresh: bool = False) -> Rtl:
    """The selectively hardened encoder into ``out``: exactly the flip-flops
    ``sites`` (site ids; pipeline data bits and valid flags by flip-flop id)
    held in three replicas behind a majority voter, with a ``tmr_err``
    output; ``refresh``: the self-correcting variant. Same ports and
    ``regmap.csv`` as the plain design otherwise.

    Raises:
        fkhw.faults.sites.SiteError: an id out of range.
    """
    from fkhw.outpaths import check_out_dir
    from fkhw.rtlgen.harden import harden as _harden

    m = _model(model)
    out = check_out_dir(out, "out")
    design = _harden(m.ir, np.asarray(list(sites) if not isinstance(sites, np.ndarray) else sites, dtype=np.int64),
                     refresh=refresh)
    design.write(out)
    return Rtl(out, tuple(design.verilog_files(out)), design.meta)


# --- rates --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Rates:
    """Failure rates against the scrub interval (:func:`rate`).

    Attributes:
        folder: where ``rate.json`` and ``rate.png`` are.
        result: ``rate.json`` (see the file formats page).
    """

    folder: Path
    result: dict = field(repr=False)

    @property
    def designs(self) -> tuple:
        """The designs evaluated (plain, full, selective with a map; each TMR design also ``+ refresh``)."""
        return tuple(self.result["designs"])

    def longest_scrub_interval_s(self, design: str) -> float | None:
        """The longest scrub interval (seconds) that keeps P(degraded output)
        below the target; ``inf`` when never exceeded, None when even the
        shortest interval exceeds it."""
        d = self.result["designs"][design]
        if d["longest_scrub_interval_s"] is not None:
            return float(d["longest_scrub_interval_s"])
        return float("inf") if d["longest_scrub_interval_note"] and "never" in d["longest_scrub_interval_note"] \
            else None


def rate(campaign: Campaign | PathLike, out: PathLike, *, tmr: TmrMap | PathLike | None = None,
         transients: Campaign | PathLike | None = None, flux: float | None = None, sigma: float | None = None,
         clock_hz: float | None = None, scrubs: Sequence[str] = ("1s", "1min", "1h", "1d"), target: float = 1e-3,
         threshold: float | None = None, k_max: int = 6, samples: int = 500, seed: int = 0, check_rtl: int = 0,
         check_full_tmr: bool = False, jobs: int = 1, quiet: bool = True) -> Rates:
    """Failure rates of the plain, selectively and fully triplicated encoder
    (``fkhw rate``): P(degraded output) and mean damage against the time
    since the last scrub, for a flux and a per-flip-flop cross-section.

    Args:
        campaign: an exhaustive ``seu`` campaign.
        out: the folder for ``rate.json`` and ``rate.png``.
        tmr: a written :class:`TmrMap`, a ``fkhw tmr`` folder or its
            ``tmr_map.json``: the selective design.
        transients: a plain ``pipeline`` campaign (else transients are not counted).
        flux, sigma, clock_hz: particles cm^-2 s^-1, cm^2 per flip-flop,
            vectors per second (defaults: ``fkhw.rates.model``; sigma is
            a placeholder: use your technology's beam-test value).
        scrubs: intervals to report (``ms``, ``s``, ``min``, ``h``, ``d``).
        target: the probability of a degraded output to stay below.
        check_rtl: replay this many Monte Carlo scenarios on each design's RTL.

    Raises:
        fkhw.rates.model.RateError: inputs the rate model cannot use, named.
    """
    from fkhw.outpaths import check_out_dir
    from fkhw.rates import model as rm
    from fkhw.rates.flow import RateOptions, run_rate

    out = check_out_dir(out, "out")
    env = rm.Environment(rm.DEFAULT_FLUX if flux is None else flux, rm.DEFAULT_SIGMA if sigma is None else sigma,
                         rm.DEFAULT_CLOCK_HZ if clock_hz is None else clock_hz)
    if check_full_tmr and not check_rtl:
        raise rm.RateError("check_full_tmr replays scenarios: give check_rtl > 0 as well")
    if isinstance(tmr, TmrMap):
        if tmr.folder is None:
            raise rm.RateError("tmr: write the map first (TmrMap.write(folder))")
        tmr = tmr.folder
    options = RateOptions(threshold=threshold, k_max=k_max, samples=samples, seed=seed, check_rtl=check_rtl,
                          jobs=jobs, check_full=check_full_tmr)
    result = run_rate(_campaign(campaign).folder, out, env, [rm.parse_duration(s) for s in scrubs], target, options,
                      tmr=None if tmr is None else Path(tmr),
                      transients=None if transients is None else _campaign(transients).folder,
                      log=(lambda msg: None) if quiet else print)
    return Rates(out, result)


# --- replays ------------------------------------------------------------------------------------


def replay(campaign: Campaign | PathLike, out: PathLike, *, site: int | None = None, fault: int | None = None,
           module: int | None = None, level: str | None = None, waves: PathLike | None = None):
    """One campaign row run again (``fkhw replay``): its fault on the
    campaign's modules and design, every output compared with the record and
    the damage with the row's; ``replay.json`` and ``replay.png`` (the module
    it hurts most, or ``module``) written into ``out``.

    Args:
        campaign: a finished campaign (:class:`Campaign` or its folder).
        site: the row of a ``seu`` campaign; ``fault``: of another kind.
        level: where to run it (default: the campaign's level).
        waves: a ``.vcd`` (or ``.fst``) file for the run's waveform: the rtl level.

    Returns:
        fkhw.replays.Replay: ``matches`` (the row's outputs and damage
        again), ``waves_match`` (the waveform shows the upset and the
        changed outputs), the upsets' registers, the numbers.

    Raises:
        fkhw.replays.ReplayError: a row, module, level or waveform file the replay cannot use, named.
    """
    from fkhw.outpaths import check_out_dir
    from fkhw.replays import ReplayRequest, replay_to

    folder = _campaign(campaign).folder
    out = check_out_dir(out, "out", inputs=(("campaign", folder),))
    return replay_to(ReplayRequest(folder, site, fault, module, level, None if waves is None else Path(waves)), out)


# --- rankings -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Ranking:
    """How well bit scores find a campaign's sensitive bits (:func:`rank`).

    Attributes:
        rows: one dict per (threshold, score): ``n_sensitive``, ``spearman``,
            and the injections needed to find 50 / 90 / 100 % of the
            sensitive bits (``inj_50``, ``inj_90``, ``inj_100``), next to the
            ``oracle`` and ``random_expected`` rows.
        folder: where ``rank.csv`` and ``rank.png`` were written, or None.
    """

    rows: tuple = field(repr=False)
    folder: Path | None = None

    def injections(self, score: str, threshold: float, fraction: int = 90) -> float | None:
        """Injections in ``score`` order to find ``fraction`` % of the bits over ``threshold``."""
        for r in self.rows:
            if r["score"] == score and r["threshold"] == threshold:
                return r[f"inj_{fraction}"]
        from fkhw.faults.scores import RankingError

        raise RankingError(f"no row for score {score!r} at threshold {threshold:g}")


def rank(campaign: Campaign | PathLike, scores: PathLike, out: PathLike | None = None, rule: str = "mean",
         thresholds: Sequence[float] = ()) -> Ranking:
    """Compare bit scores (a ``fkhw hessian`` folder or its ``scores.csv``)
    with a ``seu`` campaign, as ``fkhw rank`` does; with ``out``, write
    ``rank.csv`` and ``rank.png`` there.

    Raises:
        fkhw.faults.scores.RankingError: scores of another model, or none.
    """
    from fkhw.analysis.ranking import DEFAULT_THRESHOLDS as RANK_THRESHOLDS, compare, write_rank_csv
    from fkhw.campaign.files import read_table, require_seu
    from fkhw.faults.scores import RankingError, read_scores_csv
    from fkhw.outpaths import check_out_dir

    if rule not in ("mean", "upper"):
        raise RankingError(f"rule {rule!r}: use mean or upper")
    c = _campaign(campaign)
    require_seu(c.summary, c.folder, "rank", "campaign")
    target = None if out is None else check_out_dir(out, "out")
    table = read_table(c.folder, c.summary)
    damage = table.number("emd_norm" if rule == "mean" else "emd_norm_hi")
    score_sites, columns = read_scores_csv(Path(scores))
    if not columns:
        raise RankingError(f"scores {scores}: no score column besides 'site'")
    _check_scores_model(c, Path(scores))
    n = c.summary["n_sites_model"]
    if score_sites.size != n or int(score_sites.max()) != n - 1:
        raise RankingError(f"scores {scores} cover {score_sites.size} sites, the campaign's model "
                           f"{c.summary['model']!r} has {n}: scores of another model?")
    cmp = compare(table.site, damage, score_sites, columns, sorted(set(RANK_THRESHOLDS) | set(thresholds)))
    if target is not None:
        from fkhw.analysis.hessian_figures import save_rank_curves

        target.mkdir(parents=True, exist_ok=True)
        write_rank_csv(target / "rank.csv", cmp.rows)
        save_rank_curves(target / "rank.png", cmp.curves, cmp.n_sites,
                         f"sensitive bits found vs injected ({cmp.n_sites} campaign sites)")
    return Ranking(tuple(cmp.rows), target)


def _check_scores_model(c: Campaign, scores: Path) -> None:
    """Scores and campaign of one model: the digest ``hessian.json`` records, where it is there."""
    from fkhw.faults.scores import RankingError

    report = (scores if scores.is_dir() else scores.parent) / "hessian.json"
    if not report.is_file():
        return
    try:
        digest = json.loads(report.read_text()).get("digest")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise RankingError(f"{report}: damaged (not the JSON fkhw hessian writes)") from None
    if digest is not None and digest != c.summary["model_digest"]:
        raise RankingError(f"scores {scores} are of model digest {digest}, campaign {c.folder} ran model "
                           f"{c.model!r} (digest {c.summary['model_digest']}): different models")


# --- the whole flow -----------------------------------------------------------------------------


def sim(model: Model | PathLike = "econt-bol", *, out: PathLike, **options):
    """The whole flow on one model, what ``fkhw sim`` and ``make sim`` run,
    brought up to date under ``out``: steps whose inputs did not change are
    not run again. Returns the review (``fkhw.review.report.Review``: its
    ``checks``, ``passed``, ``summary``) and writes ``report.html``,
    ``report.md``, ``results.xml`` and ``sim_summary.json`` there.

    ``options``: the fields of ``fkhw.review.options.SimOptions``
    (``inputs=32``, ``tmr_threshold=1.05``, ``rates=False``, ``force=("tmr",)``...)."""
    import dataclasses

    from fkhw.errors import InputError
    from fkhw.review.flow import prepare, run_sim
    from fkhw.review.options import SimOptions

    known = {f.name for f in dataclasses.fields(SimOptions)} - {"model", "out"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"sim(): unknown option {unknown[0]!r} (options: {', '.join(sorted(known))})")
    if "force" in options and isinstance(options["force"], str):
        options["force"] = (options["force"],)
    source = model.source if isinstance(model, Model) else os.fspath(model)
    opts = SimOptions(model=source, out=Path(out), **options)
    return run_sim(prepare(opts, inputs=[("model", Path(source))] if Path(source).exists() else []),
                   say=lambda line: print(line, flush=True))
