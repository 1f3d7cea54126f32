"""Reading a testbench waveform in the tests, with pywellen directly (not
through fkhw.replays.waves, whose reading these tests check): the signals of
fkhw_tb that mark an upset and the output slots."""

from __future__ import annotations

import bisect
import re
from pathlib import Path


class Probe:
    def __init__(self, path: Path):
        import pywellen

        self.wave = pywellen.Waveform(str(path))
        self.vars = {v.full_name: v for v in self.wave.all_vars()}
        self._tv = {}

    def changes(self, name: str) -> list:
        """(time, value) pairs of ``name`` (``mem[12]`` as written in the RTL)."""
        key = re.sub(r"\[(\d+)\]$", r".[\1]", name)
        if key not in self._tv:
            self._tv[key] = list(self.vars[key].tv)
        return self._tv[key]

    def at(self, name: str, t: int) -> int:
        tv = self.changes(name)
        return tv[bisect.bisect_right(tv, (t, float("inf"))) - 1][1]

    def before(self, name: str, t: int) -> int:
        tv = self.changes(name)
        return tv[bisect.bisect_left(tv, (t, -1)) - 1][1]

    def upsets(self) -> list:
        """(time, frame, cycle) of every clock with the upset marker high."""
        return [(t, self.at("fkhw_tb.run_frame", t), self.at("fkhw_tb.run_cycle", t))
                for t, v in self.changes("fkhw_tb.wave_upset") if v == 1]

    def differing(self, frame: int, n_vectors: int) -> dict:
        """window slot -> out_data, for every slot of ``frame`` whose output differs from the fault-free one."""
        starts = sorted({t for t, _ in self.changes("fkhw_tb.out_slot")}
                        | {t for t, _ in self.changes("fkhw_tb.out_live")})
        out = {}
        for t in starts:
            slot = self.at("fkhw_tb.out_slot", t)
            if (self.at("fkhw_tb.out_live", t) == 1 and self.at("fkhw_tb.out_frame", t) == frame
                    and slot < n_vectors and self.at("fkhw_tb.out_differs", t) == 1):
                out.setdefault(slot, self.at("fkhw_tb.out_data", t))
        return out
