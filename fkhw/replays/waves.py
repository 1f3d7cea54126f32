"""What a replay's waveform shows, read back from the file with pywellen
(the waveform library of the Surfer viewer; VCD and FST).

The testbench (fkhw/rtlgen/tb/hdl/fkhw_tb.v, FKHW_TB_WAVES) writes the run
from its last configuration write on, with marker signals for the reader:
``run_cycle`` (the cycle of the clock now running), ``wave_upset`` and
``wave_pipe_upset`` (an upset was deposited in this clock), ``out_slot`` /
``out_live`` (the window slot ``out_data`` holds) and ``out_differs`` (it
is not the fault-free output). :func:`read_evidence` finds, in the file:

* each upset: the cycle its marker is high in, and whether its register's
  Verilog bit (and only that bit) flipped at that moment;
* every window slot whose output differs from the fault-free one, with the
  ``out_data`` codes it holds then.

A replay compares these with the fault it ran and the outputs it recorded,
so the waveform a user opens is known to show the campaign row.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.errors import InputError

TOP = "fkhw_tb"


class WaveError(InputError):
    """A waveform file that cannot be read or lacks the testbench's signals."""


@dataclass(frozen=True)
class UpsetSeen:
    """One upset as the waveform shows it."""

    register: str  # the RTL register (fkhw_tb.u_enc...)
    bit: int  # its Verilog bit
    time_ps: int | None  # when the marker rose for it (None: no marker at its cycle)
    cycle: int | None  # run_cycle then
    flipped: bool  # the register changed in exactly that bit at that moment


@dataclass(frozen=True, eq=False)
class WaveEvidence:
    path: str
    format: str  # VCD or FST, as the file says
    time_unit: str
    upsets: tuple  # of UpsetSeen
    differing_slots: tuple  # window slots whose out_data differs from the fault-free output
    differing_data: np.ndarray  # (len(differing_slots), n_out) the codes out_data holds then
    first_time_ps: int
    last_time_ps: int

    def line(self) -> str:
        ups = ", ".join(f"{u.register} bit {u.bit} flips at {u.time_ps} ps (cycle {u.cycle})" if u.flipped
                        else f"{u.register} bit {u.bit}: no flip seen" for u in self.upsets) or "no upset"
        return f"{ups}; out_data differs from fault-free in {len(self.differing_slots)} window slot(s)"

    def to_json(self) -> dict:
        return {"path": self.path, "format": self.format,
                "upsets": [{"register": u.register, "bit": u.bit, "time_ps": u.time_ps, "cycle": u.cycle,
                            "flipped": u.flipped} for u in self.upsets],
                "differing_slots": list(self.differing_slots),
                "time_ps": [self.first_time_ps, self.last_time_ps]}


def _wellen_name(register: str) -> str:
    """pywellen names an array element ``mem.[12]`` (a scope ``mem`` holding ``[12]``)."""
    return re.sub(r"\[(\d+)\]$", r".[\1]", register)


class _Trace:
    """Value changes of the signals asked for, with values at any time."""

    def __init__(self, path: Path):
        import pywellen

        try:
            self.wave = pywellen.Waveform(str(path))
        except Exception as e:  # the Rust reader raises its own exception types
            raise WaveError(f"{path}: not a readable waveform ({' '.join(str(e).split())})") from None
        self.path = path
        self._vars = {v.full_name: v for v in self.wave.all_vars()}
        self._tv: dict = {}

    def has(self, name: str) -> bool:
        return _wellen_name(name) in self._vars

    def changes(self, name: str) -> list:
        if name not in self._tv:
            var = self._vars.get(_wellen_name(name))
            if var is None:
                raise WaveError(f"{self.path}: no signal {name} (not a waveform of fkhw's testbench?)")
            self._tv[name] = list(var.tv)
        return self._tv[name]

    def at(self, name: str, t: int) -> int | None:
        """The value at time ``t`` (after the changes at ``t``)."""
        tv = self.changes(name)
        k = bisect.bisect_right(tv, (t, float("inf"))) - 1
        return None if k < 0 else tv[k][1]

    def before(self, name: str, t: int) -> int | None:
        tv = self.changes(name)
        k = bisect.bisect_left(tv, (t, -1)) - 1
        return None if k < 0 else tv[k][1]


def read_evidence(path: Path, upsets, n_vectors: int, out_port: dict) -> WaveEvidence:
    """The upsets (fkhw.replays.row.Upset: their RTL register, bit and cycle)
    and the differing outputs the waveform at ``path`` shows; ``out_port``:
    the design's out_data port (fkhw_encoder.json ports.out_data)."""
    from fkhw.rtlgen.sim import unpack_hex

    tr = _Trace(Path(path))
    marks = []
    for name in (f"{TOP}.wave_upset", f"{TOP}.wave_pipe_upset"):
        if tr.has(name):
            marks += [t for t, v in tr.changes(name) if v == 1]
    marks.sort()
    seen = []
    for u in upsets:
        if not u.rtl:
            seen.append(UpsetSeen(u.rtl, u.rtl_bit, None, None, False))
            continue
        at = [t for t in marks if tr.at(f"{TOP}.run_cycle", t) == u.cycle]
        flipped, when = False, at[0] if at else None
        for t in at:
            old, new = tr.before(u.rtl, t), tr.at(u.rtl, t)
            if old is not None and new is not None and old ^ new == 1 << u.rtl_bit:
                flipped, when = True, t
                break
        seen.append(UpsetSeen(u.rtl, u.rtl_bit, when, None if when is None else tr.at(f"{TOP}.run_cycle", when),
                              flipped))
    # each window slot is at the output from the edge out_slot takes its number (slot 0: out_live rises)
    slots, words = [], []
    starts = sorted({t for t, _ in tr.changes(f"{TOP}.out_slot")} | {t for t, _ in tr.changes(f"{TOP}.out_live")})
    for t in starts:
        slot = tr.at(f"{TOP}.out_slot", t)
        if tr.at(f"{TOP}.out_live", t) == 1 and slot is not None and slot < n_vectors and slot not in slots[-1:] \
                and tr.at(f"{TOP}.out_differs", t) == 1:
            slots.append(int(slot))
            words.append(format(tr.at(f"{TOP}.out_data", t) or 0, f"0{(out_port['bits'] + 3) // 4}x"))
    data = unpack_hex(words, out_port["elements"], out_port["element_bits"], out_port["signed"])
    clock = tr.changes(f"{TOP}.clk")
    unit = str(tr.wave.timescale)
    if unit != "1ps":
        raise WaveError(f"{path}: time unit {unit}, the testbench writes 1ps")
    return WaveEvidence(str(path), str(tr.wave.file_format), unit, tuple(seen), tuple(slots), data,
                        int(clock[0][0]) if clock else 0, int(clock[-1][0]) if clock else 0)
