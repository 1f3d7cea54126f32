"""The evaluation levels, found by name: one registry for the campaign, its
executors (Dask workers build their level from it) and the commands.

A level runs a :class:`fkhw.faults.space.FaultSet` on input codes and returns an
:class:`fkhw.faults.space.Observed` (``run_faults``); ``golden`` gives the
fault-free outputs. Each entry says which faults its level can represent,
so a campaign refuses a kind a level cannot run before it does any work,
with one line naming both (never a traceback half way through).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fkhw.errors import InputError


class LevelError(InputError):
    """A level name that is not in the registry."""


def _software(bundle, jobs, hardening=None):
    from fkhw.levels.software import SoftwareLevel

    if hardening is None:
        return SoftwareLevel(bundle.ir)
    if hardening.ecc:
        return SoftwareLevel(bundle.ir, ecc=hardening.ecc)
    return SoftwareLevel(bundle.ir, protect=hardening.protect, refresh=hardening.refresh)


def _hls(bundle, jobs, hardening=None):
    from fkhw.levels.hls import HlsLevel

    if hardening is not None:
        raise LevelError("--level hls: the C-sim has no replica or check flip-flops; run a protected design (--tmr, "
                         "--protection) at the software, rtl or netlist level")
    return HlsLevel.for_bundle(bundle, jobs=jobs)


def protected_design(ir, hardening):
    """The generated RTL of a protected design (fkhw.faults.space.Hardening)."""
    from fkhw.rtlgen.emit import generate
    from fkhw.rtlgen.variant import DesignVariant

    if hardening.ecc:
        return generate(ir, DesignVariant.code_words(hardening.ecc))
    return generate(ir, DesignVariant.tmr(hardening.protect, hardening.refresh))


def _rtl(bundle, jobs, hardening=None):
    from fkhw.levels.rtl import RtlLevel

    if hardening is None:
        return RtlLevel.for_bundle(bundle, jobs=jobs)
    return RtlLevel(bundle.ir, jobs=jobs or 1, design=protected_design(bundle.ir, hardening))


def _netlist(bundle, jobs, hardening=None):
    from fkhw.levels.rtl import netlist_level

    # protected: the netlist of that design (the gate-level proof runs on it through the executors)
    design = None if hardening is None else protected_design(bundle.ir, hardening)
    return netlist_level(bundle.ir, jobs=jobs or 1, design=design)


def any_fault(fs, space) -> str | None:
    return None


def parameter_upsets(fs, space) -> str | None:
    """What a level that holds only the parameters and has no clock (a C
    simulation) cannot run: a protected design, an upset of another
    flip-flop, at a later cycle, or a scrub inside the frame."""
    if space.protected or space.coded:
        return "has no replica or check flip-flops (it runs the plain design)"
    if fs.ff.size and (space.classes(fs.ff) != "param").any():
        return "holds the parameters only (no pipeline or control flip-flops)"
    if (fs.cycle != 0).any() or (fs.scrub >= 0).any():
        return "has no clock: its upsets are present from the first input on (no --cycle, no scrub in the frame)"
    return None


@dataclass(frozen=True)
class LevelEntry:
    name: str
    factory: Callable  # (bundle, jobs, hardening=None) -> level
    # (FaultSet, FlipFlopSpace) -> None, or why the level cannot run it; kept here, next to the
    # factory, so the campaign asks before it builds anything
    cannot_run: Callable = any_fault


LEVELS = {e.name: e for e in (
    LevelEntry("software", _software),
    LevelEntry("hls", _hls, parameter_upsets),
    LevelEntry("rtl", _rtl),
    LevelEntry("netlist", _netlist),
)}


def level_entry(name: str) -> LevelEntry:
    if name not in LEVELS:
        raise LevelError(f"--level {name!r}: use {', '.join(LEVELS)}")
    return LEVELS[name]


def make_level(name: str, bundle, jobs: int | None = None, hardening=None):
    """The level ``name`` for a model bundle (``jobs``: its own parallelism;
    a campaign's executor parallelises across levels, so it passes 1);
    ``hardening`` (fkhw.faults.space.Hardening): the selectively hardened design."""
    return level_entry(name).factory(bundle, jobs, hardening)


def rtl_with_waves(bundle, waves: str, work_dir, hardening=None):
    """The rtl level (one simulator process) on a build that writes a
    waveform (``waves``: "vcd" or "fst") of each run into
    ``work_dir/job0/`` (fkhw.rtlgen.sim.WAVES_FILE): for replaying a few
    faults, not for campaigns (tracing slows the simulator)."""
    from fkhw.levels.rtl import RtlLevel

    design = None if hardening is None else protected_design(bundle.ir, hardening)
    return RtlLevel(bundle.ir, jobs=1, design=design, work_dir=work_dir, waves=waves)


def run_faults(level, fs, inputs, progress=None):
    """``level.run_faults(fs, inputs, progress)``; a level that only offers the
    older ``run(sites, inputs)`` (the qkeras reference) runs single parameter
    upsets through it and refuses anything else. ``progress``: called with the
    running total of faults done, by levels that report within a chunk."""
    if hasattr(level, "run_faults"):
        return level.run_faults(fs, inputs, progress) if progress is not None else level.run_faults(fs, inputs)
    from fkhw.faults.space import FaultError, Observed

    sites = fs.single_param_sites(level.space.n_sites)
    if sites is None:
        raise FaultError(f"the {level.name} level runs single parameter upsets only, not {fs.kind}")
    return Observed.clean(level.run(sites, inputs))
