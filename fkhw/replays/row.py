"""One campaign row, run again: its fault on the campaign's modules, at the
campaign's level or another, compared output by output with what the
campaign recorded, and measured with the campaign's own damage meter.

A row is a site of a ``--faults seu`` campaign (``site``) or a fault of any
other kind (``fault``). The replay runs the campaign's design (the plain
encoder, or the hardened one its summary names through its TMR map) on the
campaign's modules, so its outputs must equal the recorded ones bit for bit
and its damage must equal the row's: a replay that differs is reported
(``matches`` False, the modules that differ), never averaged away. At the RTL
level it can also write the waveform of the run (fkhw.replays.waves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fkhw.errors import InputError


class ReplayError(InputError):
    """A row, module, level or waveform file the replay cannot use."""


@dataclass(frozen=True)
class ReplayRequest:
    """What to replay (``fkhw replay``'s options)."""

    campaign: Path  # a finished campaign folder
    site: int | None = None  # the row of a seu campaign
    fault: int | None = None  # the row of a campaign of another kind
    module: int | None = None  # the module to draw (position among the campaign's modules); default: the most damaged
    level: str | None = None  # default: the campaign's level
    waves: Path | None = None  # a waveform file (.vcd or .fst) of the run: the rtl level
    model: str | None = None  # the campaign's model, when its recorded name or path does not resolve here


@dataclass(frozen=True)
class Upset:
    """One upset of the replayed fault, where a hardware engineer finds it."""

    flip_flop: int  # fkhw.faults.space id
    cls: str  # param, pipeline, control, replica
    register: str  # readable: conv2d_0_m.kernel[12], s1_data[5], ...
    bit: int  # 0 = MSB of the register word
    cycle: int  # right after rising edge `cycle` of the frame
    rtl: str  # the RTL register (fkhw_tb.u_enc...), "" where the flip-flop has none (the tmr_err flag)
    rtl_bit: int  # its Verilog bit

    def line(self) -> str:
        where = f", RTL {self.rtl} bit {self.rtl_bit}" if self.rtl else ""
        return f"{self.cls} flip-flop {self.flip_flop} ({self.register} bit {self.bit}{where}) at cycle {self.cycle}"


@dataclass(frozen=True, eq=False)
class Replay:
    """What the replay of one row gave, next to what the campaign recorded."""

    campaign: str
    kind: str  # the campaign's fault kind (seu, mbu:2, pipeline, ...)
    key: str  # "site" or "fault"
    row_id: int  # the site or fault id
    level: str  # the level that ran it
    campaign_level: str
    upsets: tuple  # of Upset
    scrub: int | None
    n_modules: int
    metric: str  # the damage's name (emd, ...)
    damage: float  # the row's mean damage over the touched modules (the table's `emd`)
    damage_norm: float  # ... normalised (the table's `emd_norm`)
    campaign_damage_norm: float  # what the table says
    changed: tuple  # modules (positions) whose output differs from the fault-free one
    lost: tuple  # modules whose valid flag was dropped
    extra: int  # valid outputs in the drain slots
    campaign_extra: int  # ... as the campaign recorded them
    mismatched: tuple  # modules whose replayed output differs from the campaign's record
    module: int  # the module drawn
    module_row: int  # its row in the data file
    charges: np.ndarray = field(repr=False)  # (48,) its input charges
    latent_free: np.ndarray = field(repr=False)  # (n_out,) fault-free latent codes
    latent_faulty: np.ndarray = field(repr=False)  # (n_out,) with the fault
    latent: np.ndarray = field(default=None, repr=False)  # (N, n_out) every module's replayed codes
    latent_frac: int = 0  # fractional bits of a latent code
    recon_free: np.ndarray | None = field(default=None, repr=False)  # (48,) the decoder's fault-free cells (EMD)
    recon_faulty: np.ndarray | None = field(default=None, repr=False)  # (48,) with the fault
    module_damage_free: float = math.nan
    module_damage_faulty: float = math.nan
    waves: object = None  # fkhw.replays.waves.WaveEvidence, with a waveform
    seconds: float = 0.0

    @property
    def matches(self) -> bool:
        """Every module's output as the campaign recorded it, and the row's damage."""
        return (not self.mismatched and self.extra == self.campaign_extra
                and _same(self.damage_norm, self.campaign_damage_norm))

    @property
    def waves_match(self) -> bool | None:
        """The waveform shows each upset flipping its register bit at its cycle,
        and out_data differing from the fault-free output in exactly the
        changed (or dropped) window slots, with the replayed codes (None: no waveform)."""
        w = self.waves
        if w is None:
            return None
        slots = sorted(set(self.changed) | set(self.lost))
        return (all(s.flipped and s.cycle == u.cycle for s, u in zip(w.upsets, self.upsets) if u.rtl)
                and list(w.differing_slots) == slots
                and np.array_equal(w.differing_data, self.latent[list(w.differing_slots)]))

    def to_json(self) -> dict:
        return {
            "campaign": self.campaign, "kind": self.kind, self.key: self.row_id, "level": self.level,
            "campaign_level": self.campaign_level,
            "upsets": [{"flip_flop": u.flip_flop, "class": u.cls, "register": u.register, "bit": u.bit,
                        "cycle": u.cycle, "rtl": u.rtl, "rtl_bit": u.rtl_bit} for u in self.upsets],
            "scrub": self.scrub, "modules": self.n_modules, "metric": self.metric,
            self.metric: self.damage, f"{self.metric}_norm": self.damage_norm,
            f"campaign_{self.metric}_norm": self.campaign_damage_norm,
            "changed_modules": list(self.changed), "lost_modules": list(self.lost), "extra": self.extra,
            "campaign_extra": self.campaign_extra,
            "mismatched_modules": list(self.mismatched), "matches": self.matches, "waves_match": self.waves_match,
            "module": {"position": self.module, "row": self.module_row,
                       f"{self.metric}_fault_free": self.module_damage_free,
                       f"{self.metric}_faulty": self.module_damage_faulty,
                       "latent_fault_free": self.latent_free.tolist(), "latent_faulty": self.latent_faulty.tolist()},
            "waves": None if self.waves is None else self.waves.to_json(),
            "seconds": self.seconds,
        }


def _same(a: float, b: float) -> bool:
    """Equal to the last digits a CSV round trip and a different summation order can move."""
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def _row(request: ReplayRequest, summary: dict, outs, folder: Path) -> tuple:
    """(key, id, position in outputs.npz, the table's normalised damage) of the row asked for."""
    from fkhw.campaign.files import kind_of, read_fault_table, read_table

    kind = kind_of(summary)
    if (request.site is None) == (request.fault is None):
        raise ReplayError("name one row: --site S (a seu campaign) or --fault F (a campaign of another fault kind)")
    if kind == "seu":
        if request.site is None:
            raise ReplayError(f"--campaign {folder} is a seu campaign: its rows are sites, name one with --site")
        key, want = "site", request.site
        table = read_table(folder, summary)
        ids, damage = table.site, table.damage
    else:
        if request.fault is None:
            raise ReplayError(f"--campaign {folder} is a --faults {kind} campaign: its rows are faults, name one "
                              "with --fault")
        key, want = "fault", request.fault
        table = read_fault_table(folder, summary)
        ids, damage = table.fault, table.emd_norm
    where = np.flatnonzero(outs.sites == want)
    if where.size != 1:
        lo, hi = (int(outs.sites.min()), int(outs.sites.max())) if outs.sites.size else (0, -1)
        raise ReplayError(f"--{key} {want}: not a row of --campaign {folder} ({outs.sites.size} {key}s, "
                          f"ids {lo}..{hi}{', not all' if outs.sites.size and hi - lo + 1 != outs.sites.size else ''})")
    t = np.flatnonzero(ids == want)
    if t.size != 1:
        raise ReplayError(f"{folder}: {key} {want} is in outputs.npz but not once in campaign.csv (damaged folder)")
    return key, int(want), int(where[0]), float(damage[t[0]])


def _hardening(summary: dict, bundle, folder: Path):
    """The design the campaign upset: None (plain) or the hardened one its summary names."""
    design = summary.get("design")
    if not isinstance(design, dict) or not design.get("hardened"):
        return None
    from fkhw.campaign.run import CampaignError, hardening_from_map

    if "protection" in design:
        from fkhw.faults.space import FaultError, Hardening

        try:
            return Hardening.code_words(str(design["protection"]))
        except FaultError as e:  # a CodeError is one too
            raise ReplayError(f"{folder}: summary design: {e}") from None
    source = design.get("tmr_map")
    if not isinstance(source, str) or not source:
        raise ReplayError(f"{folder}: the campaign ran a hardened design but its summary names no TMR map")
    refresh = design.get("refresh", False)
    if not isinstance(refresh, bool):
        raise ReplayError(f"{folder}: design refresh {refresh!r} is not true or false")
    if not Path(source).exists():
        raise ReplayError(f"{folder}: the campaign ran the design hardened by {source}, which is not there (run "
                          "the replay from where the campaign ran)")
    try:
        whole = hardening_from_map(source, bundle, refresh)
    except CampaignError as e:
        raise ReplayError(str(e)) from None
    # the campaign hardened the map's flip-flops, or only its weight bits (fkhw sim's "selective" design)
    sites = type(whole)(whole.sites(bundle.ir.n_param_bits()), refresh, whole.source)
    for hard in (whole, sites):
        if design.get("digest", hard.digest()) == hard.digest() and len(hard.protect) == design.get("protected_bits"):
            return hard
    raise ReplayError(f"{folder}: the campaign's design protected {design.get('protected_bits')} flip-flops, "
                      f"{source} now protects {len(whole.protect)} ({len(sites.protect)} weight bits): the map "
                      "changed since the campaign ran")


def _upsets(fs, space, meta: dict | None) -> tuple:
    from fkhw.faults.space import FaultError
    from fkhw.levels.rtl import rtl_register

    out = []
    for ff, cyc in zip(fs.ff.tolist(), fs.cycle.tolist()):
        d = space.describe(ff)
        try:
            r = rtl_register(space, meta, ff) if meta is not None else None
            rtl, rtl_bit = ("fkhw_tb." + r.name, r.bit) if r is not None else ("", 0)
        except FaultError:  # the tmr_err flag: a flip-flop with no datapath register
            rtl, rtl_bit = "", 0
        out.append(Upset(int(ff), d.cls, d.register, int(d.bit), int(cyc), rtl, rtl_bit))
    return tuple(out)


def _check_waves_path(path: Path, folder: Path) -> str:
    from fkhw.outpaths import check_out_file
    from fkhw.rtlgen.sim import WAVE_FORMATS

    fmt = path.suffix.lower().lstrip(".")
    if fmt not in WAVE_FORMATS:
        raise ReplayError(f"--waves {path}: unknown waveform format {path.suffix or '(no extension)'!r}; name a "
                          f"{' or '.join('.' + f for f in WAVE_FORMATS)} file")
    check_out_file(path, "--waves", inputs=(("--campaign", folder),))
    return fmt


def replay(request: ReplayRequest, work_dir: Path, progress=None) -> Replay:
    """Run one row again (see the module docstring). ``work_dir``: the
    simulator's folder (a waveform is made there, then moved to
    ``request.waves``). ``progress``: called with a line per step."""
    import time

    from fkhw.campaign.files import kind_of, read_outputs, read_summary
    from fkhw.campaign.outputs import damage_meter
    from fkhw.campaign.run import campaign_model
    from fkhw.damage.metrics import metric_of
    from fkhw.faults.space import FaultSet, FlipFlopSpace, touched
    from fkhw.levels import make_level, rtl_with_waves, run_faults

    say = progress or (lambda line: None)
    t0 = time.monotonic()
    folder = Path(request.campaign)
    summary = read_summary(folder)
    outs = read_outputs(folder, summary)
    key, row_id, pos, table_norm = _row(request, summary, outs, folder)
    n = outs.n_modules
    if request.module is not None and not 0 <= request.module < n:
        raise ReplayError(f"--module {request.module}: the campaign ran {n} modules, 0..{n - 1}")
    level_name = request.level or summary["level"]
    fmt = _check_waves_path(Path(request.waves), folder) if request.waves is not None else None
    if fmt is not None and level_name != "rtl":
        raise ReplayError(f"--waves {request.waves}: waveforms come from the rtl level, not {level_name} "
                          "(add --level rtl)")
    if fmt == "fst":
        _require_fst()
    bundle = campaign_model(summary, request.model)
    hardening = _hardening(summary, bundle, folder)
    kind = kind_of(summary)
    fs = FaultSet.single("seu", [row_id], [row_id]) if kind == "seu" else outs.fault_set.take([pos])
    level = make_level(level_name, bundle, jobs=1, hardening=hardening) if fmt is None else \
        rtl_with_waves(bundle, fmt, work_dir, hardening)
    # the campaign's own flip-flop numbering (fkhw.campaign.run), and the RTL's register names where there is RTL
    space = FlipFlopSpace.of(bundle.ir) if hardening is None else hardening.space(bundle.ir)
    meta = getattr(level, "meta", None) or _meta_of(bundle.ir, hardening)
    upsets = _upsets(fs, space, meta)
    say(f"replaying {key} {row_id} ({kind}, {len(upsets)} upset{'s' * (len(upsets) != 1)}) at the {level_name} level "
        f"on {n} modules")
    obs = run_faults(level, fs, outs.inputs)
    latent, lost, extra = obs.latent, obs.lost, obs.extra
    rec_latent, rec_lost, rec_extra = outs.latent([pos]), outs.lost([pos]), outs.extras([pos])
    mismatched = np.flatnonzero((latent[0] != rec_latent[0]).any(axis=1) | (lost[0] != rec_lost[0]))
    hit = touched(fs, space, n) if kind != "seu" else None
    meter = damage_meter(outs, summary, bundle)
    dmg = meter.measure(latent, hit, lost, extra, ids=fs.ids)
    damage = float(dmg.emd[0])
    if kind != "seu" and summary.get("baseline", "modules") == "modules":
        norm = damage / float(dmg.baseline[0])
    else:
        from fkhw.campaign.files import denominator_key

        norm = damage / float(summary[denominator_key(summary)])
    changed = np.flatnonzero((latent[0] != outs.baseline).any(axis=1))
    per = np.array(meter.baseline_emd, dtype=float)
    per[dmg.pair_module] = dmg.pair_emd
    module = request.module if request.module is not None else _worst_module(per, meter.baseline_emd, changed)
    recon = _reconstructions(bundle, summary, np.stack([outs.baseline[module], latent[0, module]]))
    evidence = None
    if fmt is not None:
        from fkhw.outpaths import copy_file
        from fkhw.replays.waves import read_evidence
        from fkhw.rtlgen.sim import WAVES_FILE

        made = Path(work_dir) / "job0" / f"{WAVES_FILE}{fmt}"  # the only simulator process's folder
        if not made.is_file():
            raise ReplayError(f"the simulator wrote no waveform ({made})")
        copy_file(made, request.waves)  # a new file in place of whatever was there (a link is replaced, not followed)
        made.unlink()
        evidence = read_evidence(Path(request.waves), upsets, n, meta["ports"]["out_data"])
        say(f"waveform: {request.waves} ({evidence.line()})")
    return Replay(str(folder), kind, key, row_id, level_name, str(summary["level"]), upsets,
                  None if fs.scrub[0] < 0 else int(fs.scrub[0]), n, metric_of(summary).name, damage, norm, table_norm,
                  tuple(int(m) for m in changed), tuple(int(m) for m in np.flatnonzero(lost[0])), int(extra[0]),
                  int(rec_extra[0]),
                  tuple(int(m) for m in mismatched), int(module), int(outs.rows[module]),
                  np.asarray(outs.charges[module], dtype=float), outs.baseline[module].astype(np.int64),
                  latent[0, module].astype(np.int64), latent[0].astype(np.int64), int(bundle.ir.output_spec.frac),
                  recon[0], recon[1], float(meter.baseline_emd[module]), float(per[module]), evidence,
                  time.monotonic() - t0)


REPLAY_JSON, REPLAY_PNG = "replay.json", "replay.png"


def replay_to(request: ReplayRequest, out: Path, progress=None) -> Replay:
    """:func:`replay` in a work folder of its own under the Verilator build
    cache, then ``replay.json`` and ``replay.png`` into ``out`` (made only
    once the replay ran: a refused request writes nothing there). What
    ``fkhw replay``, :func:`fkhw.replay` and ``fkhw sim`` run."""
    import tempfile

    from fkhw.outpaths import make_dir, write_json
    from fkhw.replays.figure import replay_figure
    from fkhw.rtlgen.sim import default_root

    work_root = make_dir(default_root() / "work")
    with tempfile.TemporaryDirectory(dir=work_root, prefix="replay-") as work:
        r = replay(request, Path(work), progress)
    make_dir(out)
    write_json(Path(out) / REPLAY_JSON, r.to_json())
    replay_figure(r, Path(out) / REPLAY_PNG)
    return r


def _reconstructions(bundle, summary: dict, latent: np.ndarray) -> tuple:
    """The decoder's 48 cells for each row of latent codes (the EMD's other
    side); (None, None) for a metric without a decoder."""
    from fkhw.damage.metrics import metric_of
    from fkhw.model.data import from_image

    if not metric_of(summary).needs_decoder:
        return None, None
    cells = from_image(bundle.require_decoder()(latent.astype(np.float64) * 2.0 ** -bundle.ir.output_spec.frac))
    return cells[0], cells[1]


def _worst_module(per: np.ndarray, free: np.ndarray, changed: np.ndarray) -> int:
    """The changed module whose damage moved most (the first module when none changed)."""
    if not changed.size:
        return 0
    return int(changed[np.argmax(np.abs(per[changed] - free[changed]))])


def _meta_of(model, hardening) -> dict | None:
    """The RTL metadata of the design, for the RTL register names at a level
    that has no RTL (None: a model fkhw generates no RTL for)."""
    from fkhw.levels import protected_design
    from fkhw.rtlgen.emit import RtlUnsupported, generate

    try:
        design = generate(model) if hardening is None else protected_design(model, hardening)
    except RtlUnsupported:
        return None
    return design.meta


def _require_fst() -> None:
    """Verilator's FST writer compiles against the lz4 library's header; say so before a build fails on it."""
    import subprocess

    from fkhw.rtlgen.tools import tool_env

    probe = subprocess.run(["g++", "-E", "-x", "c++", "-"], input=b"#include <lz4.h>\n", capture_output=True,
                           env=tool_env())
    if probe.returncode != 0:
        raise ReplayError("--waves *.fst: Verilator's FST writer needs the lz4 header (lz4.h), which this machine "
                          "lacks (Debian/Ubuntu: apt-get install liblz4-dev); write a .vcd instead (GTKWave and "
                          "Surfer read both)")
