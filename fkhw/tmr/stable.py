"""Enough inputs for a map that holds: held-out validation of a campaign's
map, and the search for the module count at which the map is stable.

``--inputs auto`` runs software campaigns on 32, 64, 128, ... modules (the
same seed, so each is the campaign ``fkhw campaign --inputs N`` would run),
builds the map of each and validates it on one held-out set that none of
them touches; it stops at the first stable map (fkhw.tmr.heldout) or at the cap:
``--max-inputs``, or the largest count for which the data file still has
the held-out modules left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fkhw.model import data
from fkhw.tmr.heldout import DEFAULT_MODULES, Validation, heldout_rows, run_heldout, validate
from fkhw.outpaths import make_dir
from fkhw.tmr.select import CampaignTable, Rule, TmrError, select

log = logging.getLogger(__name__)

AUTO_START = 32
DEFAULT_MAX_INPUTS = 4096
# the threshold a --budget map is judged at (a budget rule has none of its own)
BUDGET_VALIDATION_THRESHOLD = 1.05


def validation_threshold(rule: Rule) -> float:
    return rule.value if rule.kind == "threshold" else BUDGET_VALIDATION_THRESHOLD


@dataclass(frozen=True)
class HeldOut:
    """Where the held-out modules come from: ``validate_data`` (another file)
    or, when None, the campaign's own data file minus the campaign's modules."""

    modules: int = DEFAULT_MODULES
    validate_data: str | None = None

    def check(self) -> None:
        """Refuse a bad --validate-data before any work."""
        if self.modules < 1:
            raise data.DataError(f"--validate-inputs must be at least 1, got {self.modules}")
        if self.validate_data is not None:
            data.row_pool(self.validate_data)


def heldout_table(bundle, held: HeldOut, out: Path, data_path, exclude, seed: int, quiet: bool = False,
                  metric: dict | None = None):
    """Choose the held-out modules and run the software campaign on them."""
    if held.validate_data is not None:
        path, option, exclude = held.validate_data, "--validate-data", ()
    else:
        path, option = data_path or data.DEFAULT_DATA, "--data"
    rows = heldout_rows(data.row_pool(path), exclude, held.modules, seed, path, option)
    log.info("tmr: held-out campaign on %d modules of %s (software, every site)", rows.size, path)
    return run_heldout(bundle, out, rows, path, seed, quiet=quiet, metric=metric)


def validate_campaign(bundle, campaign: Path, rule: Rule, held: HeldOut, out: Path, quiet: bool = False) -> Validation:
    """The held-out check of the map ``rule`` picks from ``campaign``."""
    from fkhw.campaign.outputs import CampaignOutputs

    table = CampaignTable.load(campaign)
    rows = CampaignOutputs.load(campaign).rows
    if held.validate_data is None and table.summary.get("data") is None:
        raise TmrError(f"--campaign {campaign}: summary.json does not name its data file")
    protected = table.site[select(table, rule, bundle.ir.n_param_bits()).rows]
    from fkhw.campaign.run import metric_options

    heldout = heldout_table(bundle, held, out, table.summary.get("data"), rows, int(table.summary.get("seed", 0)),
                            quiet, metric_options(table.summary))
    return validate(protected, heldout, validation_threshold(rule), table)


@dataclass(frozen=True)
class AutoStep:
    inputs: int
    campaign: str
    protected_bits: int
    overhead_pct: float
    validation: Validation

    def to_dict(self) -> dict:
        return {"inputs": self.inputs, "campaign": self.campaign, "protected_bits": self.protected_bits,
                "overhead_pct": self.overhead_pct, "coverage": self.validation.coverage,
                "worst_unprotected_heldout_emd_norm": self.validation.worst_unprotected_emd_norm,
                "stable": self.validation.stable}


@dataclass(frozen=True)
class AutoResult:
    steps: tuple
    stable: bool
    cap: int
    reason: str

    @property
    def campaign(self) -> Path:
        return Path(self.steps[-1].campaign)

    @property
    def validation(self) -> Validation:
        return self.steps[-1].validation

    def to_dict(self) -> dict:
        return {"stable": self.stable, "inputs": self.steps[-1].inputs, "cap": self.cap, "reason": self.reason,
                "steps": [s.to_dict() for s in self.steps]}


def plan_counts(charges: np.ndarray, seed: int, start: int, max_inputs: int, heldout_modules: int,
                same_file: bool, path) -> tuple:
    """Module counts start, 2 start, ... up to the cap, and the union of
    their modules (the held-out set must avoid all of them)."""
    nonzero = int((charges.sum(axis=1) > 0).sum())
    counts, used, n = [], np.zeros(0, dtype=np.int64), start
    while n <= max_inputs and n <= nonzero:
        union = np.union1d(used, data.select_modules(charges, n, seed))
        if same_file and nonzero - union.size < heldout_modules:
            break
        counts.append(n)
        used = union
        n *= 2
    if not counts:
        raise data.DataError(
            f"--inputs auto: {path} has {nonzero} modules with non-zero charge, too few for {start} campaign modules "
            f"and {heldout_modules} held-out ones (give --validate-inputs, --validate-data or a bigger --data)")
    return counts, used


def find_stable(bundle, rule: Rule, out: Path, seed: int, data_path, held: HeldOut,
                max_inputs: int = DEFAULT_MAX_INPUTS, start: int = AUTO_START, quiet: bool = False,
                metric: dict | None = None) -> AutoResult:
    """``metric``: CampaignSpec's metric and labels (fkhw.campaign.run.metric_options), default the EMD."""
    """Double the campaign's modules until its map is stable on the held-out set."""
    from fkhw.campaign.run import CampaignSpec, run_campaign

    if rule.kind != "threshold":
        raise TmrError("--inputs auto needs a --threshold rule (stability is judged at that threshold)")
    if max_inputs < start:
        raise TmrError(f"--max-inputs {max_inputs}: the search starts at {start} modules")
    path = data_path or data.DEFAULT_DATA
    charges = data.row_pool(path)
    counts, used = plan_counts(charges, seed, start, max_inputs, held.modules, held.validate_data is None, path)
    out = Path(out)
    heldout = heldout_table(bundle, held, out / "heldout", path, used, seed, quiet, metric)
    steps = []
    for n in counts:
        camp = make_dir(out / "campaigns", root=out) / f"inputs_{n:05d}"  # run_campaign checks the last folder
        log.info("tmr: --inputs auto: campaign on %d modules", n)
        run_campaign(CampaignSpec(bundle.name, level="software", n_inputs=n, seed=seed,
                                  data=None if data_path is None else str(data_path), **(metric or {})), bundle, camp,
                     quiet=quiet)
        table = CampaignTable.load(camp)
        sel = select(table, rule, bundle.ir.n_param_bits())
        v = validate(table.site[sel.rows], heldout, validation_threshold(rule), table)
        steps.append(AutoStep(n, str(camp), sel.n_protected, sel.overhead_pct, v))
        log.info("tmr:   %d modules: %d bits protected (%.2f%% overhead); %s", n, sel.n_protected, sel.overhead_pct,
                 v.line())
        if v.stable:
            return AutoResult(tuple(steps), True, counts[-1], f"stable at {n} modules")
    why = (f"--max-inputs {max_inputs}" if counts[-1] * 2 > max_inputs
           else f"the data file's {int((charges.sum(axis=1) > 0).sum())} modules (held-out {held.modules} kept apart)")
    return AutoResult(tuple(steps), False, counts[-1],
                      f"NOT stable: cap of {counts[-1]} modules reached ({why}); the map is the last one's")
