"""The selective-TMR map: which sites, where they live in the RTL, and why.

Written as ``tmr_map.json`` (with the rule, the campaign it came from and
totals) and ``tmr_map.csv`` (the same entries as a table). ``reg`` and
``reg_bit`` come from the RTL generator's register map, so the map names
each bit exactly as the hardware holds it.

A map may also list non-weight flip-flops (``flip_flops`` in the JSON, rows
of class ``pipeline`` / ``control`` in the CSV): pipeline data bits and valid
flags by their flip-flop id (fkhw.faults.space), the register and bit that hold
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
from fkhw.outpaths import atomic_open, make_dir, write_text
from fkhw.errors import InputError
from fkhw.validate import array, fields, integer, json_document, number, string_in

class MapError(InputError):
    """A TMR map that cannot be used (missing, damaged, or made for another
    model), naming the file and the entry."""


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
    def load(path: Path, option: str = "--tmr") -> "TmrMap":
        """tmr_map.json (a ``fkhw tmr`` folder or the file), every field
        checked for its type (fkhw.validate); raises MapError naming the
        file, the entry and the field. Ranges that depend on the design are
        checked by :func:`read_map`."""
        path = Path(path)
        if path.is_dir():
            path = path / "tmr_map.json"
        where = f"{option} {path}"
        if not path.is_file():
            raise MapError(f"{option} {path}: no tmr_map.json (run `fkhw tmr` first)")
        try:
            return _from_json(json_document(path.read_text(), where), where)
        except UnicodeDecodeError:
            raise MapError(f"{where}: a binary file, not a TMR map") from None
        except InputError as e:
            raise MapError(str(e)) from None


_ENTRY_INTS = ("index", "bit", "reg", "reg_bit")


def _from_json(d, where: str) -> TmrMap:
    fields(d, where, ("model", "model_digest", "rule", "campaign", "campaign_level", "entries", "totals"))
    for key in ("model", "model_digest", "campaign", "campaign_level"):
        string_in(d[key], f"{where} {key}")
    rule = fields(d["rule"], f"{where} rule")
    if "kind" in rule:
        string_in(rule["kind"], f"{where} rule kind", ("threshold", "budget"))
    if "value" in rule:
        number(rule["value"], f"{where} rule value", 0)
    all_bits = integer(fields(d["totals"], f"{where} totals", ("all_bits",))["all_bits"], f"{where} totals all_bits", 1)
    seen = set()
    for k, e in enumerate(array(d["entries"], f"{where} entries")):
        at = f"{where} entries[{k}]"
        site = integer(fields(e, at, ("site",))["site"], f"{at} site", 0)
        if site in seen:
            raise InputError(f"{at} site: {site} is listed twice")
        seen.add(site)
        for key in ("layer", "tensor"):
            if key in e:
                string_in(e[key], f"{at} {key}")
        for key in _ENTRY_INTS:
            if key in e:
                integer(e[key], f"{at} {key}", 0)
        if "emd_norm" in e:
            number(e["emd_norm"], f"{at} emd_norm")
    flip_flops = array(d.get("flip_flops", []), f"{where} flip_flops")
    seen = set()
    for k, f in enumerate(flip_flops):
        at = f"{where} flip_flops[{k}]"
        ff = integer(fields(f, at, ("ff",))["ff"], f"{at} ff", 0)
        if ff in seen:
            raise InputError(f"{at} ff: {ff} is listed twice")
        seen.add(ff)
        if "class" in f:
            string_in(f["class"], f"{at} class", ("pipeline", "control"))
        if "bit" in f:
            integer(f["bit"], f"{at} bit", 0)
    return TmrMap(d["model"], d["model_digest"], d["rule"], d["campaign"], d["campaign_level"], d["entries"],
                  all_bits, tuple(flip_flops))


def read_map(path, model_digest: str, model_name: str, space, option: str = "--tmr") -> TmrMap:
    """The TMR map at ``path`` for the model of ``space`` (the plain
    design's fkhw.faults.space.FlipFlopSpace): types checked (TmrMap.load), made
    for this model (digest), every site one of its parameter bits and every
    flip-flop one of its pipeline data bits or valid flags. Raises MapError
    naming ``option``, the file, the entry and the field."""
    path = Path(path)
    path = path / "tmr_map.json" if path.is_dir() else path
    tmap = TmrMap.load(path, option)
    where = f"{option} {path}"
    if tmap.model_digest != model_digest:
        raise MapError(f"{where}: the map is for model {tmap.model} (digest {tmap.model_digest}), not {model_name} "
                       f"(digest {model_digest})")
    n_sites = space.sites.n_sites
    try:
        if tmap.n_all_bits != n_sites:
            raise InputError(f"{where} totals all_bits: {tmap.n_all_bits} is not the model's {n_sites} parameter bits")
        for k, e in enumerate(tmap.entries):
            integer(e["site"], f"{where} entries[{k}] site", 0, n_sites - 1, ": the model's parameter bits")
        last = space.first_control + space.latency - 1
        for k, f in enumerate(tmap.flip_flops):
            integer(f["ff"], f"{where} flip_flops[{k}] ff", n_sites, last,
                    ": the design's pipeline data bits and valid flags")
    except InputError as e:
        raise MapError(str(e)) from None
    return tmap


def transient_entries(space, ffs, reason: str) -> list:
    """Map entries of protected pipeline data bits / valid flags (flip-flop
    ids of ``space``, a fkhw.faults.space.FlipFlopSpace)."""
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
    make_dir(out)
    write_text(out / "tmr_map.json", json.dumps(tmr.to_dict(), indent=2) + "\n")
    with atomic_open(out / "tmr_map.csv", "w", newline="") as f:
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
