"""The selective-TMR map: which sites, where they live in the RTL, and why.

Written as ``tmr_map.json`` (with the rule, the campaign it came from and
totals) and ``tmr_map.csv`` (the same entries as a table). ``reg`` and
``reg_bit`` come from the RTL generator's register map, so the map names
each bit exactly as the hardware holds it.

A map may also list non-weight flip-flops (``flip_flops`` in the JSON, rows
of class ``pipeline`` / ``control`` in the CSV): pipeline data bits and valid
flags by their flip-flop id (fkhw.faults), the register and bit that hold
them and why they are protected. The hardened RTL triplicates them too
(fkhw_pipe_tmr).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw import __version__

# emd_norm: the campaign's mean; emd_norm_lo/_hi: its interval. The rule (tmr_map.json, key rule.column) chose the
# bits by one of them: emd_norm, or emd_norm_hi for --rule upper; each row's value of it is in its own column
INTERVAL_COLUMNS = ["emd_norm_lo", "emd_norm_hi"]
ENTRY_COLUMNS = ["site", "layer", "tensor", "index", "bit", "reg", "reg_bit", "emd_norm"] + INTERVAL_COLUMNS
CSV_COLUMNS = ["class", "flip_flop"] + ENTRY_COLUMNS + ["register", "reason"]


@dataclass(frozen=True, eq=False)
class TmrMap:
    model: str
    model_digest: str
    rule: dict
    campaign: str
    campaign_level: str
    entries: list  # dicts with ENTRY_COLUMNS, most damaging first
    n_all_bits: int
    flip_flops: tuple = ()  # protected pipeline data bits and valid flags: dicts ff, class, register, bit, reason

    @property
    def sites(self) -> np.ndarray:
        """The protected parameter bits (site ids, ascending)."""
        return np.array(sorted(e["site"] for e in self.entries), dtype=np.int64)

    @property
    def protect(self) -> np.ndarray:
        """Every protected flip-flop id (parameter bits = site ids, then
        pipeline data bits and valid flags), ascending: what the hardened
        RTL triplicates."""
        return np.array(sorted([e["site"] for e in self.entries] + [f["ff"] for f in self.flip_flops]),
                        dtype=np.int64)

    @property
    def overhead_pct(self) -> float:
        return 100.0 * 2 * len(self.entries) / self.n_all_bits

    def to_dict(self) -> dict:
        return {
            "fkhw": __version__,
            "model": self.model,
            "model_digest": self.model_digest,
            "rule": self.rule,
            "campaign": self.campaign,
            "campaign_level": self.campaign_level,
            "totals": {
                "protected_bits": len(self.entries),
                "all_bits": self.n_all_bits,
                "overhead_pct": self.overhead_pct,
                "note": "overhead = 2 x protected bits / all parameter bits (two extra flip-flops per protected bit)",
                "protected_pipeline_and_valid_flip_flops": len(self.flip_flops),
            },
            "entries": self.entries,
            "flip_flops": list(self.flip_flops),
        }

    @staticmethod
    def load(path: Path) -> "TmrMap":
        path = Path(path)
        if path.is_dir():
            path = path / "tmr_map.json"
        d = json.loads(path.read_text())
        return TmrMap(d["model"], d["model_digest"], d["rule"], d["campaign"], d["campaign_level"],
                      d["entries"], d["totals"]["all_bits"], tuple(d.get("flip_flops", [])))


def transient_entries(space, ffs, reason: str) -> list:
    """Map entries of protected pipeline data bits / valid flags (flip-flop
    ids of ``space``, a fkhw.faults.FlipFlopSpace)."""
    out = []
    for ff in sorted(int(f) for f in ffs):
        d = space.describe(ff)
        if d.cls not in ("pipeline", "control") or ff == space.tmr_err_flag:
            raise ValueError(f"flip-flop {ff} ({d.register}) is not a pipeline data bit or valid flag")
        out.append({"ff": ff, "class": d.cls, "register": d.register, "bit": d.bit, "stage": d.stage,
                    "reason": reason})
    return out


def build_map(bundle, table, selection, regmap: np.ndarray, flip_flops=()) -> TmrMap:
    """``regmap``: (n_sites, 3) rows of site, reg, bit from the RTL generator;
    ``flip_flops``: entries of protected pipeline / valid flip-flops
    (:func:`transient_entries`)."""
    reg_of = {int(s): (int(r), int(b)) for s, r, b in regmap}
    entries = []
    for row in selection.rows.tolist():
        site = int(table.site[row])
        reg, reg_bit = reg_of[site]
        entries.append({
            "site": site, "layer": table.layer[row], "tensor": table.tensor[row], "index": int(table.index[row]),
            "bit": int(table.bit[row]), "reg": reg, "reg_bit": reg_bit, "emd_norm": float(table.emd_norm[row]),
            **{k: float(getattr(table, k)[row]) for k in INTERVAL_COLUMNS if getattr(table, k) is not None},
        })
    return TmrMap(bundle.name, bundle.files.digest(), selection.rule.to_dict(), str(table.path),
                  table.summary.get("level", "?"), entries, selection.n_all_bits, tuple(flip_flops))


def write_map(tmr: TmrMap, out: Path) -> list:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tmr_map.json").write_text(json.dumps(tmr.to_dict(), indent=2) + "\n")
    with (out / "tmr_map.csv").open("w", newline="") as f:
        if not tmr.flip_flops:  # the parameter-only map keeps its columns
            w = csv.DictWriter(f, fieldnames=ENTRY_COLUMNS)
            w.writeheader()
            for e in tmr.entries:
                w.writerow({**e, **_exact(e)})
        else:
            w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            w.writeheader()
            for e in tmr.entries:
                w.writerow({"class": "param", "flip_flop": e["site"], **e, **_exact(e)})
            for e in tmr.flip_flops:
                w.writerow({"class": e["class"], "flip_flop": e["ff"], "bit": e["bit"], "register": e["register"],
                            "reason": e["reason"]})
    return [out / "tmr_map.json", out / "tmr_map.csv"]


def _exact(entry: dict) -> dict:
    """The damage figures as Python writes them back exactly (a row compared with the threshold must compare
    as it did when it was chosen)."""
    return {k: repr(entry[k]) for k in ["emd_norm"] + INTERVAL_COLUMNS if k in entry}
