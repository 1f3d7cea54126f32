"""What a review run is asked to do: one frozen value the CLI (or a script)
fills and the flow reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fkhw.validate import boolean, integer, number, string_in

STEP_NAMES = ("model", "hls", "rtl", "functional", "gate_level", "campaign_rtl", "campaign_software", "agreement",
              "replay", "tmr_inputs", "tmr", "faults", "rates", "protect")


@dataclass(frozen=True)
class SimOptions:
    """The options of ``fkhw sim`` (see ``fkhw sim --help`` for each)."""

    model: str = "econt-bol"
    out: Path | None = None  # default: out/<model name>
    inputs: int = 32  # modules of the RTL campaign and of the software campaign it is compared with
    tmr_inputs: int | str = "auto"  # modules the TMR map is chosen on: "auto" doubles them from 32 until stable
    tmr_rule: str = "upper"  # mean | upper: which figure of a bit's damage is compared with the threshold
    tmr_threshold: float = 1.05
    max_inputs: int = 4096  # cap of tmr_inputs="auto"
    validate_inputs: int = 1024  # held-out modules each map is checked on
    seed: int = 0
    data: str | None = None  # default: the model's example data or the vendored HGCAL sample
    labels: str | None = None
    metric: str = "emd"
    jobs: int | None = None  # simulator workers (default: what the machine's cores and memory hold)
    synth: bool = True  # Yosys area table
    rates: bool = True  # failure rates vs scrub interval
    check_rtl: int = 500  # rate scenarios replayed on each design's RTL
    check_full_tmr: bool = False
    protect: bool = True  # the protection choice (fkhw protect); it needs synth and rates
    gate_level: bool = False
    fresh: bool = False  # replace campaigns in --out that ran with other arguments
    force: tuple = ()  # steps to rerun whatever their records say ("all": every step)

    def __post_init__(self):
        """Strict types and ranges, for options that come from Python rather than the CLI's parser."""
        for name in ("inputs", "max_inputs", "validate_inputs", "check_rtl"):
            integer(getattr(self, name), f"option {name}", lo=1)
        integer(self.seed, "option seed", lo=0)
        if self.jobs is not None:
            integer(self.jobs, "option jobs", lo=1)
        if self.tmr_inputs != "auto":
            integer(self.tmr_inputs, "option tmr_inputs (or \"auto\")", lo=1)
        string_in(self.tmr_rule, "option tmr_rule", ("mean", "upper"))
        number(self.tmr_threshold, "option tmr_threshold", above=0)
        for name in ("synth", "rates", "check_full_tmr", "protect", "gate_level", "fresh"):
            boolean(getattr(self, name), f"option {name}")
        for step in self.force:
            string_in(step, "option force", STEP_NAMES + ("all",))

    @property
    def metric_options(self) -> dict:
        """The campaign arguments that choose the metric (none for the default EMD)."""
        if self.metric == "emd" and self.labels is None:
            return {}
        return {"metric": self.metric, "labels": None if self.labels is None else str(self.labels)}
