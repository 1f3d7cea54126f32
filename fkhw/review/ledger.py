"""Steps that rerun only when their inputs change, as make does.

Each step of the review run names its inputs (option values, the model's
and the data's digests) and the steps whose outputs it reads. Its key is a
hash of those; its outputs are the files under ``--out`` it wrote, each
recorded with its SHA-256. A step is *up to date* when its key is the one
recorded and every output it recorded is still there, unchanged; then it is
not run and its recorded result stands in. Otherwise it runs, and the
reason is printed: the inputs that changed (``tmr_threshold 1.05 -> 1.1``),
an upstream step whose outputs changed, an output that was removed or
edited, or ``--force``. A step downstream of one that reran reruns only if
the files it reads came out different.

Records live in ``<out>/.fkhw-steps/<step>.json``; deleting the folder makes
the next run cold.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from fkhw.outpaths import make_dir, write_json

RECORDS = ".fkhw-steps"
FORMAT = 1  # bump when a record's meaning changes: every step reruns once


def cpu_seconds() -> float:
    """CPU seconds of this process and of every child process it has waited
    for (Yosys, Verilator, g++, simulators): on a shared machine the wall
    time of a step moves with the others' load, its CPU time much less."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass(frozen=True)
class Step:
    """One step of a flow: ``run()`` returns its JSON-able result."""

    name: str
    title: str
    inputs: dict  # what the step depends on besides upstream outputs: option values, digests
    run: Callable[[], dict]
    after: tuple = ()  # the steps whose outputs it reads


@dataclass(frozen=True)
class Record:
    """What a step left: its key, inputs, outputs (path under --out -> [size, mtime_ns, sha256]) and result."""

    name: str
    key: str
    inputs: dict
    outputs: dict
    result: dict
    seconds: float
    cpu_seconds: float
    format: int = FORMAT


@dataclass
class Outcome:
    """How a step went in this run."""

    name: str
    title: str
    ran: bool
    reason: str  # why it ran, or that nothing it depends on changed
    seconds: float  # of this run (0 when up to date)
    cpu_seconds: float
    result: dict = field(default_factory=dict)
    ran_seconds: float = 0.0  # what the step took when it made the outputs in --out (this run or an earlier one)
    ran_cpu_seconds: float = 0.0


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_digest(path) -> str | None:
    """One hash of a file's bytes, or of every file under a folder (in name
    order); None for no path. What a step's inputs name an input file by."""
    if path is None:
        return None
    p = Path(path)
    h = hashlib.sha256()
    for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
        if f.is_file():
            h.update(_sha256(f).encode())
    return h.hexdigest()[:16]


def _stat(path: Path) -> tuple:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


class Ledger:
    """Runs steps in order under ``out``, skipping the ones that are up to date.

    ``force``: step names to run whatever their records say (``all``: every
    step). ``ignore``: paths under ``out`` that are nobody's output (files a
    background process writes while steps run). ``say``: where lines go."""

    def __init__(self, out: Path, total: int, force=(), ignore=(), say=print):
        self.out = Path(out)
        self.total, self.k = total, 0
        self.force = frozenset(force)
        self.ignore = tuple(Path(p) for p in ignore)
        self.say = say
        self.outcomes: dict[str, Outcome] = {}
        self.records: dict[str, Record] = {}
        self.t0 = time.monotonic()

    # -- records -------------------------------------------------------------------------------

    def _record_path(self, name: str) -> Path:
        return self.out / RECORDS / f"{name}.json"

    def _load(self, name: str) -> Record | None:
        path = self._record_path(name)
        if not path.is_file() or path.is_symlink():
            return None
        try:
            raw = json.loads(path.read_text())
            rec = Record(**raw)
        except (ValueError, TypeError):
            return None  # unreadable or of another shape: the step runs
        if rec.format != FORMAT or rec.name != name or not isinstance(rec.outputs, dict):
            return None
        return rec

    def _changed_output(self, rec: Record) -> str | None:
        """The first recorded output that is gone or differs, else None (size
        and mtime first, as git's index does; the hash only when they moved)."""
        for rel, (size, mtime, digest) in rec.outputs.items():
            p = self.out / rel
            if not p.is_file() or p.is_symlink():
                return f"{rel} is gone"
            if _stat(p) != (size, mtime) and _sha256(p) != digest:
                return f"{rel} changed"
        return None

    def has_record(self, name: str) -> bool:
        """Whether a run before this one recorded step ``name``."""
        return self._load(name) is not None

    def forced(self, name: str) -> bool:
        return "all" in self.force or name in self.force

    def digest(self, name: str) -> str:
        """One hash of a step's outputs (what a downstream key depends on)."""
        rec = self.records[name]
        h = hashlib.sha256()
        for rel in sorted(rec.outputs):
            h.update(rel.encode() + b"\0" + rec.outputs[rel][2].encode() + b"\0")
        return h.hexdigest()[:16]

    # -- snapshots of --out ---------------------------------------------------------------------

    def _files(self) -> dict:
        found = {}
        for root, dirs, files in os.walk(self.out):
            rel_root = Path(root).relative_to(self.out)
            dirs[:] = [d for d in dirs if d != RECORDS and not self._ignored(rel_root / d)]
            for f in files:
                rel = rel_root / f
                p = self.out / rel
                if self._ignored(rel) or p.is_symlink() or not p.is_file():
                    continue
                found[rel.as_posix()] = _stat(p)
        return found

    def _ignored(self, rel: Path) -> bool:
        return any(rel == i or i in rel.parents for i in self.ignore)

    # -- running -------------------------------------------------------------------------------

    @staticmethod
    def _difference(old: dict, new: dict) -> str:
        changed = [f"{k} {old[k]!r} -> {new[k]!r}" for k in new if k in old and old[k] != new[k]]
        changed += [f"{k} (new)" for k in new if k not in old]
        changed += [f"{k} (gone)" for k in old if k not in new]
        return ", ".join(changed)

    def _inputs(self, step: Step) -> dict:
        from fkhw import __version__

        return {**step.inputs, **{f"{u} outputs": self.digest(u) for u in step.after},
                "fkhw": f"{__version__} (source {source_digest()})"}

    def _reason(self, step: Step, inputs: dict, rec: Record | None) -> str | None:
        if self.forced(step.name):
            return "--force"
        if rec is None:
            return "no record of an earlier run"
        if rec.key != _key(inputs):
            return self._difference(rec.inputs, inputs) or "its inputs changed"
        return self._changed_output(rec)

    def run(self, step: Step) -> dict:
        """Run ``step`` unless it is up to date; its result either way."""
        inputs = self._inputs(step)
        rec = self._load(step.name)
        reason = self._reason(step, inputs, rec)
        self.k += 1
        self.say(f"[{self.k}/{self.total}] {step.title}")
        if reason is None:
            self.records[step.name] = rec
            self.outcomes[step.name] = Outcome(step.name, step.title, False,
                                              "nothing it depends on changed", 0.0, 0.0, rec.result,
                                              rec.seconds, rec.cpu_seconds)
            self.say(f"      up to date (ran {rec.seconds:.1f} s, CPU {rec.cpu_seconds:.1f} s; "
                     f"--force {step.name} reruns it)")
            return rec.result
        if rec is not None:
            self.say(f"      rerun: {reason}")
        before = self._files()
        t, c = time.monotonic(), cpu_seconds()
        result = step.run()
        dt, dc = time.monotonic() - t, cpu_seconds() - c
        after = self._files()
        outputs = {rel: [size, mtime, _sha256(self.out / rel)] for rel, (size, mtime) in sorted(after.items())
                   if before.get(rel) != (size, mtime)}
        # an output the step left as it was (a reused campaign) is still its output
        if rec is not None:
            for rel, entry in rec.outputs.items():
                if rel not in outputs and rel in after and tuple(entry[:2]) == after[rel]:
                    outputs[rel] = entry
        new = Record(step.name, _key(inputs), inputs, dict(sorted(outputs.items())), result, round(dt, 2),
                     round(dc, 2))
        make_dir(self.out / RECORDS, root=self.out)
        write_json(self._record_path(step.name), asdict(new))
        self.records[step.name] = new
        self.outcomes[step.name] = Outcome(step.name, step.title, True, reason, dt, dc, result, dt, dc)
        self.say(f"      {result.get('line', 'done')}  ({dt:.1f} s, CPU {dc:.1f} s)")
        return result


@functools.cache
def source_digest() -> str:
    """A digest of fkhw's own files (code, templates, testbench): a step that
    ran on other code is not up to date, even at the same version number
    (an area method or a model that changed between two runs)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in (".py", ".v", ".vh", ".vlt", ".json", ".ys") and "__pycache__" not in p.parts \
                and "assets" not in p.relative_to(root).parts:
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def _key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]
