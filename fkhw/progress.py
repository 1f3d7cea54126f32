"""Progress lines on stderr: done/total, rate, time left. No global state."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    total: int
    label: str
    unit: str = "sites"
    stream: object = None
    every: float = 1.0
    after: float = 0.0  # seconds before the first line: a loop that ends sooner prints nothing
    done: int = 0
    _start: float = field(default_factory=time.monotonic)
    _last: float = 0.0

    def __post_init__(self):
        self.stream = self.stream or sys.stderr

    def advance(self, n: int) -> None:
        if n == 0 and self._last and self.done >= self.total:
            return  # the last line is printed once
        self.done += n
        now = time.monotonic()
        if now - self._start < self.after:
            return
        if now - self._last >= self.every or self.done >= self.total:
            self._last = now
            self._print(now)

    def _print(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = f"{left:6.1f}s left" if left != float("inf") else "  ?s left"
        print(f"{self.label}: {self.done}/{self.total} {self.unit} ({pct:5.1f}%)  {rate:8.0f} {self.unit}/s  {eta}",
              file=self.stream, flush=True)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start
