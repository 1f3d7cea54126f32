"""Which bits to triplicate: a selection rule applied to a campaign table.

Rules: ``threshold`` (protect every site with emd_norm > T, the seed's
rule with T = 1.0) or ``budget`` (protect the N, or P% of all, most
damaging sites; ties broken by site id so the choice is reproducible).
Either reads one figure per site: the measured emd_norm (``mean``, as
before), or the upper end of its confidence interval (``upper``,
conservative: a bit is protected when its interval reaches above T).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.errors import InputError
from fkhw.campaign.files import read_summary, read_table, require_seu


class TmrError(InputError):
    """A selection rule or campaign that cannot give a TMR map."""


EVIDENCE = {"mean": "emd_norm", "upper": "emd_norm_hi"}


@dataclass(frozen=True)
class Rule:
    kind: str  # 'threshold' | 'budget'
    value: float  # T, or a number of bits
    percent: bool = False  # budget given as % of all parameter bits
    evidence: str = "mean"  # which figure per site: 'mean' (emd_norm) or 'upper' (emd_norm_hi)

    @property
    def column(self) -> str:
        return EVIDENCE[self.evidence]

    def describe(self, column: str = "emd_norm") -> str:
        """``column``: the campaign's normalised damage (fkhw.damage.metrics; emd_norm for the EMD)."""
        what = self.figure_name(column)
        if self.kind == "threshold":
            return f"protect every bit with {what} > {self.value:g}"
        unit = "% of all parameter bits" if self.percent else " bits"
        return f"protect the {self.value:g}{unit} with the highest {what}"

    def figure_name(self, column: str = "emd_norm") -> str:
        """What the rule reads per bit, in words."""
        return column if self.evidence == "mean" else f"upper end of the {column} interval"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "value": self.value, "percent": self.percent, "evidence": self.evidence,
                "column": self.column, "text": self.describe()}

    def at(self, threshold: float) -> "Rule":
        """The threshold rule that reads the same figure per bit, at ``threshold``."""
        return Rule("threshold", float(threshold), evidence=self.evidence)


def parse_rule(threshold: float | None, budget: str | None, evidence: str = "mean") -> Rule:
    if evidence not in EVIDENCE:
        raise TmrError(f"--rule {evidence!r}: use {' or '.join(EVIDENCE)}")
    if threshold is not None and budget is not None:
        raise TmrError("give either --threshold or --budget, not both")
    if budget is not None:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%?)\s*", budget)
        if not m:
            raise TmrError(f"--budget {budget!r}: give a number of bits (e.g. 300) or a percentage (e.g. 3%)")
        value, percent = float(m.group(1)), m.group(2) == "%"
        if not percent and value != int(value):
            raise TmrError(f"--budget {budget!r}: a number of bits must be a whole number")
        return Rule("budget", value, percent, evidence)
    t = 1.0 if threshold is None else float(threshold)
    if not np.isfinite(t) or t < 0:
        raise TmrError(f"--threshold {t:g}: the threshold is a non-negative emd_norm (1.0 = the fault-free EMD)")
    return Rule("threshold", t, evidence=evidence)


@dataclass(frozen=True, eq=False)
class CampaignTable:
    path: Path
    summary: dict
    site: np.ndarray
    layer: list
    tensor: list
    index: np.ndarray
    bit: np.ndarray
    emd_norm: np.ndarray
    emd_norm_lo: np.ndarray | None = None  # the interval (None in tables written before it existed)
    emd_norm_hi: np.ndarray | None = None

    def figure(self, column: str) -> np.ndarray:
        values = getattr(self, column)
        if values is None:
            raise TmrError(f"--campaign {self.path}: campaign.csv has no {column} column "
                           "(written by an older fkhw; run the campaign again for --rule upper)")
        return values

    @staticmethod
    def load(path: Path) -> "CampaignTable":
        path = Path(path)
        summary = read_summary(path)
        require_seu(summary, path, "tmr")  # the map is of parameter bits, from single upsets
        t = read_table(path, summary)
        interval = [t.number(k) if t.has(k) else None for k in ("emd_norm_lo", "emd_norm_hi")]
        return CampaignTable(path, summary, t.site, t.layer, t.tensor, t.index, t.bit, t.emd_norm, *interval)


@dataclass(frozen=True, eq=False)
class Selection:
    rule: Rule
    rows: np.ndarray  # row numbers in the campaign table, most damaging first
    n_all_bits: int

    @property
    def n_protected(self) -> int:
        return int(self.rows.size)

    @property
    def overhead_pct(self) -> float:
        """Extra flip-flops of selective TMR over the plain weight storage:
        two more per protected bit."""
        return 100.0 * 2 * self.n_protected / self.n_all_bits


def check_campaign_matches(table: CampaignTable, model_digest: str, model_name: str) -> None:
    found = table.summary.get("model_digest")
    if found != model_digest:
        raise TmrError(f"--campaign {table.path} was run on model {table.summary.get('model')!r} "
                       f"(digest {found}), not on {model_name!r} (digest {model_digest})")


def select(table: CampaignTable, rule: Rule, n_all_bits: int) -> Selection:
    figure = table.figure(rule.column)
    order = np.lexsort((table.site, -figure))  # most damaging first, ties by site id
    if rule.kind == "threshold":
        rows = order[figure[order] > rule.value]
    else:
        n = int(round(rule.value * n_all_bits / 100.0)) if rule.percent else int(rule.value)
        if n > table.site.size:
            raise TmrError(f"--budget {rule.value:g}{'%' if rule.percent else ''} = {n} bits is more than the "
                           f"{table.site.size} sites in the campaign")
        if n < 0:
            raise TmrError("--budget must not be negative")
        rows = order[:n]
    return Selection(rule, rows, n_all_bits)


def residual_curve(table: CampaignTable, n_all_bits: int, column: str = "emd_norm") -> tuple:
    """(overhead %, worst unprotected figure) when protecting the k bits with
    the highest ``column`` (the rule's figure: emd_norm or emd_norm_hi), for
    k = 0..n-1: the trade-off a designer chooses from. (With every bit
    protected no single upset is left to measure.)"""
    ordered = np.sort(table.figure(column))[::-1]
    k = np.arange(ordered.size)
    return 100.0 * 2 * k / n_all_bits, ordered


def threshold_table(table: CampaignTable, rule: Rule, n_all_bits: int, thresholds) -> list:
    """The bits ``rule``'s figure protects at each threshold, by :func:`select`
    itself: the one count per threshold that the map, the report, the
    trade-off figure and `fkhw sim`'s summary all show."""
    rows = []
    for t in sorted({float(t) for t in thresholds}):
        sel = select(table, rule.at(t), n_all_bits)
        rows.append({"threshold": t, "column": rule.column, "protected_bits": sel.n_protected,
                     "overhead_pct": sel.overhead_pct})
    return rows
