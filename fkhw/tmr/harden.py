"""The selectively hardened encoder and the annotations for TMR tools.

``harden(ir, protect_sites)``: the encoder with exactly the protected bits
held in three flip-flops behind a majority voter, plus a ``tmr_err`` output
(see ``fkhw/rtlgen/templates/fkhw_regfile_tmr.v``); everything else is the
plain design's. Its regmap.csv is the plain one (same registers, addresses
and bits); its metadata (``fkhw_encoder.json``, key ``tmr``) lists per
register file the protection mask and per protected site the three replica
flip-flops.

``write_tmrg_variant(ir, protect_sites, out_dir, hardened)``: see :mod:`fkhw.tmr.tmrg`.
"""

from __future__ import annotations

from pathlib import Path

from fkhw.model.ir import IntegerModel
from fkhw.rtlgen.emit import RtlDesign, generate

__all__ = ["harden", "write_hardened", "write_tmrg_variant"]


def harden(ir: IntegerModel, protect_sites, refresh: bool = False) -> RtlDesign:
    """The hardened encoder for ``protect_sites`` (flip-flop ids of
    fkhw.faults: site ids, any subset, all sites = full TMR of the weights;
    pipeline data bits and valid flags too, fkhw_pipe_tmr); ``refresh``: self-correcting TMR
    (the voted value written back every clock, a sticky ``tmr_err``).
    Raises SiteError (a ValueError) for ids out of range, ValueError for
    duplicates. Nothing is written."""
    if protect_sites is None:
        raise ValueError("protect_sites: give the site ids to protect (an empty list hardens nothing)")
    return generate(ir, protect=protect_sites, refresh=refresh)


def write_hardened(ir: IntegerModel, protect_sites, out_dir: Path) -> RtlDesign:
    design = harden(ir, protect_sites)
    design.write(out_dir)
    return design


def write_tmrg_variant(ir: IntegerModel, protect_sites, out_dir: Path, hardened: RtlDesign | None = None) -> list:
    from fkhw.tmr.tmrg import write_tmrg_variant as _write

    return _write(ir, protect_sites, out_dir, hardened=hardened)
