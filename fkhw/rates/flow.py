"""``fkhw rate``: a campaign and a TMR map -> failure rates against flux and scrub interval.

Reads an exhaustive seu campaign (the exact one-bit answers and the inputs
it ran on), optionally the TMR map and a ``pipeline`` campaign (transients),
evaluates accumulated upsets on the software engine (fkhw.rates.model.conditionals)
and writes ``rate.json`` and ``rate.png`` (the formulas: fkhw.rates.model).
Designs: plain, selective TMR (the map), full TMR of the weights; the TMR
designs each without and with refresh (self-correcting TMR).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from fkhw.errors import InputError
from fkhw.rates import model as rates
from fkhw.campaign.files import damage_column
from fkhw.progress import Progress
from fkhw.rates.model import Design, Environment, RateError, draw_scenarios
from fkhw.outpaths import make_dir, save_figure, write_text

DEFAULT_SCRUBS = ("1s", "1min", "1h", "1d")
FIGURE = "rate.png"
RESULT = "rate.json"


def _seu_table(campaign: Path, summary: dict, n_sites: int):
    from fkhw.campaign.files import kind_of, read_table

    kind = kind_of(summary)
    if kind != "seu":
        raise RateError(f"--campaign {campaign}: a {kind} campaign; the rate model needs the exhaustive seu campaign "
                        "(one upset per parameter bit)")
    if summary.get("design"):
        raise RateError(f"--campaign {campaign}: a campaign of a protected design; the rate model needs the plain "
                        "design's one-bit answers (a campaign without --tmr or --protection)")
    table = read_table(campaign, summary)
    emd_norm = np.full(n_sites, np.nan)
    emd_norm[table.site] = table.emd_norm
    if np.isnan(emd_norm).any():
        raise RateError(f"--campaign {campaign}: {int(np.isnan(emd_norm).sum())} of {n_sites} parameter bits have no "
                        "result; the rate model needs every bit (run the campaign without --stop-after / --sites)")
    return emd_norm


def _transients(path: Path | None, threshold: float, space, space_digest: str) -> tuple:
    """(class, flip-flop ids, fraction of each one's upsets that degrade) per
    transient class from a plain-design pipeline campaign, or ()."""
    if path is None:
        return ()
    from fkhw.campaign.files import flip_flop_damage, kind_of, read_summary

    summary = read_summary(path, "--transients")
    if kind_of(summary) != "pipeline":
        raise RateError(f"--transients {path}: not a pipeline campaign (kind {kind_of(summary)!r}); run "
                        "`fkhw campaign --faults pipeline`")
    if summary.get("model_digest") != space_digest:
        raise RateError(f"--transients {path}: a campaign of another model (digest {summary.get('model_digest')})")
    if summary.get("design", {}).get("hardened"):
        raise RateError(f"--transients {path}: a campaign of a hardened design; give the plain design's")
    damage = flip_flop_damage(path, summary, space, threshold, "--transients")
    counts = space.counts()
    out = []
    for cls, lo, hi in (("pipeline", space.sites.n_sites, space.first_control),
                        ("control", space.first_control, space.first_control + counts["control"])):
        if counts[cls]:
            d = damage.of(lo, hi)
            if d.ff.size != counts[cls]:
                raise RateError(f"--transients {path}: upsets of {d.ff.size} of the {counts[cls]} {cls} flip-flops "
                                "(run it without --cycle)")
            out.append((cls, d.ff, d.fraction))
    return tuple(out)


def _split_transients(trans: tuple, protected) -> tuple:
    """((class, n, mean fraction) of the unprotected, of the triplicated) flip-flops."""
    plain, voted = [], []
    for cls, ff, frac in trans:
        tmr = np.isin(ff, np.asarray(protected, dtype=np.int64))
        plain.append((cls, int((~tmr).sum()), float(frac[~tmr].mean()) if (~tmr).any() else 0.0))
        if tmr.any():
            voted.append((cls, int(tmr.sum()), float(frac[tmr].mean())))
    return tuple(plain), tuple(voted)


def _evaluator(bundle, campaign: Path, summary: dict):
    """emd_norm of scenarios (arrays of sites inverted together) on the campaign's inputs."""
    from fkhw.campaign.files import denominator_key
    from fkhw.campaign.outputs import CampaignOutputs, damage_meter
    from fkhw.faults.space import FaultSet
    from fkhw.levels.software import SoftwareLevel

    outs = CampaignOutputs.load(campaign)
    level = SoftwareLevel(bundle.ir)
    meter = damage_meter(outs, summary, bundle)
    denominator = float(summary[denominator_key(summary)])

    def evaluate(scenarios: list) -> np.ndarray:
        res = []
        for lo in range(0, len(scenarios), 256):
            part = scenarios[lo:lo + 256]
            fs = FaultSet("accumulate", np.arange(len(part)),
                          np.concatenate([[0], np.cumsum([s.size for s in part])]).astype(np.int64),
                          np.concatenate(part).astype(np.int64), np.zeros(sum(s.size for s in part), dtype=np.int64),
                          np.full(len(part), -1, dtype=np.int64))
            latent = level.run_faults(fs, outs.inputs).latent
            res.append(meter.measure(latent).emd / denominator)
        return np.concatenate(res) if res else np.zeros(0)

    return evaluate


def _map_transients(tmap) -> tuple:
    """The map's protected pipeline data bits and valid flags (flip-flop ids)."""
    return tuple(int(f["ff"]) for f in tmap.flip_flops) if tmap is not None else ()


# the designs `--check-rtl` replays on by default ("full" is opt-in: its build is the largest)
RTL_CHECK_DESIGNS = ("plain", "selective")


@dataclass(frozen=True)
class RateOptions:
    """How the rates are estimated (``fkhw rate``'s options)."""

    threshold: float | None = None  # degraded: damage above it (default: the TMR map's threshold, else 1.05)
    k_max: int = 6  # accumulated upsets per scenario, at most
    samples: int = 500  # Monte Carlo scenarios per composition of k upsets
    seed: int = 0
    check_rtl: int = 0  # scenarios replayed on each design's RTL (0: none)
    jobs: int = 1  # simulator processes of that replay
    check_full: bool = False  # the replay also on the full-TMR RTL (with and without refresh): the largest build
    protections: tuple = ()  # designs of code words to add: "secded[:N[i]]", "parity[:N[i]]" (fkhw.faults.codes.code_word)


def _check_options(target: float, options: RateOptions) -> None:
    if not 0 < target < 1:
        raise RateError(f"--target must be between 0 and 1 (exclusive), got {target}")
    if options.k_max < 1:
        raise RateError(f"--k-max must be at least 1, got {options.k_max}")
    if options.samples < 10:
        raise RateError(f"--samples must be at least 10, got {options.samples}")


def _tmr_designs(pools: dict, trans: tuple, tmap, site_emd, threshold: float, evaluate, env: Environment,
                 options: RateOptions, log) -> list:
    """The plain and TMR designs (each TMR pool without and with refresh),
    with P(degraded | k upsets) from one Monte Carlo per pool; as
    [(pool name, Design)]."""
    designs = []
    for name, (u, p) in pools.items():
        for refresh in ((False,) if name == "plain" else (False, True)):
            label = name if name == "plain" else f"{name}{' + refresh' if refresh else ''}"
            plain_tr, voted_tr = _split_transients(trans, _map_transients(tmap) if name == "selective" else ())
            designs.append((name, Design(label, int(u.size), int(p.size), refresh, plain_tr, (), options.k_max,
                                         replica_flip_flops=2 * int(p.size) + 2 * sum(n for _, n, _ in voted_tr),
                                         protected_transients=voted_tr)))
            rates.check_transients(designs[-1][1], env)  # before the Monte Carlo, not after it
    conds = {}
    for name, (u, p) in pools.items():
        t1 = time.monotonic()
        n_scen = options.samples * len(rates.sampled_compositions(u.size, p.size, options.k_max))
        progress = Progress(n_scen, f"  {name}: accumulated scenarios", unit="scenarios", every=5.0, after=2.0)
        conds[name] = rates.conditionals(u, p, site_emd, threshold, options.k_max, evaluate, options.samples,
                                         options.seed, progress=progress.advance)
        log(f"  {name}: P(degraded | k upsets) for k <= {options.k_max}: "
            f"{sum(c.samples for c in conds[name])} accumulated scenarios in {time.monotonic() - t1:.1f} s")
    return [(name, replace(d, conditionals=conds[name])) for name, d in designs]


def _word_design(ir, ecc: str, trans: tuple, threshold: float, evaluate, env: Environment,
                 options: RateOptions, log) -> Design:
    """The design whose register files are code words (``ecc``), with
    P(degraded | k wrong words) from its own Monte Carlo: a word is wrong
    when two of its flip-flops are inverted (SEC-DED: an error it cannot
    correct; parity: one it cannot see)."""
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.rates.words import word_conditionals, word_design

    t1 = time.monotonic()
    try:
        wspace = FlipFlopSpace.of(ir, ecc=ecc)
    except InputError as e:
        raise RateError(f"--protection {e}") from None
    wd = word_design(wspace, _split_transients(trans, ())[0], options.k_max)
    rates.check_transients(wd, env)
    progress = Progress(options.samples * min(options.k_max, wd.n_protected), f"  {ecc}: wrong-word scenarios",
                        unit="scenarios", every=5.0, after=2.0)
    wd = replace(wd, conditionals=word_conditionals(wspace, threshold, options.k_max, evaluate, options.samples,
                                                    options.seed, progress=progress.advance))
    log(f"  {ecc}: P(degraded | k wrong words) for k <= {options.k_max}: {wd.n_protected:,} words of "
        f"{min(wd.word_sizes)}..{max(wd.word_sizes)} flip-flops, {options.samples * (len(wd.conditionals) - 1)} "
        f"scenarios in {time.monotonic() - t1:.1f} s")
    return wd


PARITY_NOTE = ("parity corrects nothing: every data-bit upset is passed on (and flagged) until the next rewrite, so "
               "P(degraded) is the plain design's; 'undetected' is P(a degraded output while no flag is up): two "
               "upsets in one word keep its parity (single-upset words are not counted as flagging, so it is an "
               "upper bound)")


def _code_designs(ir, plain: Design, trans: tuple, threshold: float, evaluate, env: Environment,
                  options: RateOptions, log) -> tuple:
    """([Design] of each of ``options.protections``, {parity spelling: its
    Design of undetected degraded outputs}). SEC-DED: its words' Design.
    Parity corrects nothing: every upset of a data bit reaches the datapath
    until the next rewrite, as in the ``plain`` design (check bits only raise
    the flag), and its wrong words (two upsets, parity kept) are the outputs
    no flag warns of."""
    from fkhw.faults.codes import code_word

    designs, undetected = [], {}
    for ecc in options.protections:
        words = _word_design(ir, ecc, trans, threshold, evaluate, env, options, log)
        if code_word(ecc).code == "secded":
            designs.append(words)
        else:
            designs.append(replace(plain, name=ecc))
            undetected[ecc] = replace(words, name=f"{ecc} undetected")
    return designs, undetected


def _design_entry(d: Design, env: Environment, scrubs: list, target: float, n_sites: int, times, log) -> dict:
    """One design's entry of ``rate.json``: its rates at each scrub interval,
    the longest interval that meets the target, and its curve."""
    pts = [rates.at_time(d, env, float(t)) for t in scrubs]
    longest = rates.longest_interval(d, env, target)
    entry = {
        "unprotected_param_bits": d.n_unprotected, "refresh": d.refresh,
        "protected_param_bits": n_sites if d.word_sizes else d.n_protected,  # a code's words hold every bit
        **({"words": len(d.word_sizes), "word_flip_flops": sum(d.word_sizes)} if d.word_sizes else {}),
        "upsets_per_hour": d.upsets_per_hour(env),
        "transient_probability_per_output": d.transient_probability(env),
        "at_scrub_interval": [{"interval_s": p.t, "p_degraded": p.p_degraded, "p_upper": p.p_upper,
                               "mc_se": p.se, "mean_emd_norm": p.mean_emd_norm, "p_weights": p.p_weights,
                               "covered": p.covered}
                              for p in pts],
        "longest_scrub_interval_s": None if longest is None else (None if math.isinf(longest) else longest),
        "longest_scrub_interval_note": ("even the shortest interval exceeds the target" if longest is None else
                                        "never exceeds the target" if math.isinf(longest) else None),
        "conditionals": [asdict(c) for c in d.conditionals],
        "curve": _curve(d, env, times),
    }
    best = entry["longest_scrub_interval_s"]
    log(f"  {d.name:20s} P(degraded) at " + ", ".join(f"{_dur(p.t)}: {p.p_upper:.3g}" for p in pts)
        + f"; longest scrub interval for P <= {target:g}: " + (_dur(best) if best else entry["longest_scrub_interval_note"]))
    return entry


def run_rate(campaign: Path, out: Path, env: Environment, scrubs: list, target: float,
             options: RateOptions = RateOptions(), *, tmr: Path | None = None, transients: Path | None = None,
             model: str | None = None, log=print) -> dict:
    """The probability of a degraded output against the scrub interval, for
    the plain, selective (``tmr``: a TMR map) and full-TMR designs and any
    designs of SEC-DED words (``options.protections``), from the single-upset
    ``campaign`` (and a ``transients`` pipeline campaign); ``rate.json`` and
    ``rate.png`` under ``out``."""
    from fkhw.campaign.run import campaign_model
    from fkhw.campaign.files import read_summary
    from fkhw.faults.space import FlipFlopSpace
    from fkhw.faults.tmrmap import MapError, read_map

    t0 = time.monotonic()
    _check_options(target, options)
    rates.check_extremes(env, scrubs)
    summary = read_summary(campaign)
    bundle = campaign_model(summary, model)
    tmap = None
    space = FlipFlopSpace.of(bundle.ir)
    if tmr is not None:
        try:
            tmap = read_map(tmr, bundle.files.digest(), bundle.name, space)
        except MapError as e:
            raise RateError(str(e)) from None
    threshold = options.threshold
    if threshold is None:
        threshold = float(tmap.rule.get("value", 1.05)) if tmap and tmap.rule.get("kind") == "threshold" else 1.05
    n_sites = space.sites.n_sites
    emd_norm = _seu_table(campaign, summary, n_sites)
    trans = _transients(transients, threshold, space, bundle.files.digest())
    evaluate = _evaluator(bundle, campaign, summary)
    all_sites = np.arange(n_sites, dtype=np.int64)
    protected = tmap.sites if tmap is not None else np.zeros(0, dtype=np.int64)

    def site_emd(sites):
        return emd_norm[np.asarray(sites, dtype=np.int64)]

    log(f"fkhw rate: {bundle.name}, lam = {env.lam:.3g} upsets per flip-flop per second "
        f"(flux {env.flux:.3g} cm^-2 s^-1 x sigma {env.sigma:.3g} cm^2), degraded: {damage_column(summary)} > {threshold}")
    pools = {"plain": (all_sites, np.zeros(0, dtype=np.int64)), "full": (np.zeros(0, dtype=np.int64), all_sites)}
    if tmap is not None:
        pools["selective"] = (np.setdiff1d(all_sites, protected), protected)
    designs = [d for _, d in _tmr_designs(pools, trans, tmap, site_emd, threshold, evaluate, env, options, log)]
    coded, undetected = _code_designs(bundle.ir, designs[0], trans, threshold, evaluate, env, options, log)
    designs += coded
    times = np.logspace(-1, math.log10(max(max(scrubs), 86400.0) * 10), 120)
    result = {"model": bundle.name, "model_digest": bundle.files.digest(), "campaign": str(campaign),
              "tmr": str(tmr) if tmr else None, "transients": str(transients) if transients else None,
              "environment": {**asdict(env), "lam_per_s": env.lam}, "threshold": threshold, "target": target,
              "k_max": options.k_max, "samples": options.samples, "seed": options.seed,
              **({} if damage_column(summary) == "emd_norm" else {"damage_column": damage_column(summary)}),
              "sigma_note": "sigma is a placeholder order of magnitude: use your technology's measured "
                            "per-flip-flop cross-section for the particle spectrum at your location",
              "transients_note": None if trans else "no --transients campaign: pipeline and control upsets are "
                                                    "not counted",
              "flip_flops": space.counts(),
              "designs": {d.name: _design_entry(d, env, scrubs, target, n_sites, times, log) for d in designs}}
    for ecc, d in undetected.items():
        result["designs"][ecc].update(parity_note=PARITY_NOTE,
                                      undetected=_design_entry(d, env, scrubs, target, n_sites, times, log))
    if options.check_rtl:
        from fkhw.campaign.outputs import CampaignOutputs

        inputs = CampaignOutputs.load(campaign).inputs
        result["rtl_check"] = rtl_crosscheck(bundle, inputs, pools, options.k_max, options.samples, options.seed,
                                             options.check_rtl, jobs=options.jobs, log=log,
                                             designs=RTL_CHECK_DESIGNS + (("full",) if options.check_full else ()),
                                             transients=_map_transients(tmap))
        for ecc in options.protections:
            result["rtl_check"][ecc] = word_rtl_crosscheck(bundle, inputs, ecc, options.k_max, options.samples,
                                                           options.seed, options.check_rtl, jobs=options.jobs,
                                                           log=log)
    out = Path(out)
    make_dir(out)
    write_text(out / RESULT, json.dumps(result, indent=1) + "\n")
    bad = {k: v["disagreeing"] for k, v in result.get("rtl_check", {}).items() if v["disagreeing"]}
    if bad:
        raise RuntimeError(f"the RTL disagrees with the fault model on accumulated upsets: {bad} (see {out / RESULT})")
    figure(result, out / FIGURE)
    log(f"rate -> {out / RESULT}, {out / FIGURE} ({time.monotonic() - t0:.1f} s)")
    return result


def word_rtl_crosscheck(bundle, inputs: np.ndarray, ecc: str, k_max: int, samples: int, seed: int, n_check: int,
                        jobs: int = 1, log=print) -> dict:
    """Replay ``n_check`` of the wrong-word Monte Carlo's scenarios (the
    draws of fkhw.rates.words, the same seeds) on the RTL of the design of
    code words ``ecc``: both flip-flops of every pair, data or check bits,
    upset in the same clock, the generated decoders doing the rest. Outputs
    are compared with the fault model (fkhw.faults.software) and with what
    the rate model evaluates: the data bits the decoders pass on inverted
    (fkhw.rates.words.passed_on), inverted in the plain design. Returns the
    counts of disagreeing scenarios (0 expected) and of scenarios that change
    an output (a replay where nothing landed proves nothing)."""
    from fkhw.faults.software import simulate_set
    from fkhw.faults.space import Fault, FaultSet, FlipFlopSpace, Hardening, Upset
    from fkhw.levels import protected_design
    from fkhw.rates.words import passed_on, wrong_word_scenarios

    ir = bundle.ir
    space = FlipFlopSpace.of(ir, ecc=ecc)
    words = space.code_words()
    scen = _equal_share([wrong_word_scenarios(words, kw, samples, seed) for kw in range(1, min(k_max, len(words)) + 1)],
                        n_check, seed)
    fs = FaultSet.of("accumulate", np.arange(len(scen)),
                     [Fault(tuple(sorted(Upset(int(f), 0) for pair in s for f in pair))) for s in scen])
    entry, want = _replay(ir, ecc, protected_design(ir, Hardening.code_words(ecc)), space, fs, inputs, jobs, log)
    # the rate model's view of the same scenarios: the passed-on data bits, upset in the plain design
    passed = FaultSet.of("accumulate", np.arange(len(scen)),
                         [Fault(tuple(Upset(int(b), 0) for b in passed_on(space, s))) for s in scen])
    model = simulate_set(ir, FlipFlopSpace.of(ir), passed, inputs)
    bad, bad_model = entry["disagreeing"], int((want.latent != model.latent).any(axis=(1, 2)).sum())
    entry.update(disagreeing=bad + bad_model, disagreeing_with_the_fault_model=bad,
                 fault_model_disagreeing_with_the_rate_model=bad_model)
    log(f"  RTL replay, {ecc}: {len(fs)} wrong-word scenarios, {bad} disagreeing with the fault model, {bad_model} "
        f"fault-model outputs differing from the rate model's ({entry['seconds']:.1f} s, of which Verilator build "
        f"{entry['build_seconds']:.1f} s)")
    return entry


def _equal_share(groups: list, n: int, seed: int) -> list:
    """``n`` of the Monte Carlo's scenarios, an equal share from each group
    (its scenarios of one composition, in order), picked by a generator
    seeded by (seed, 0x5EC)."""
    rng = np.random.default_rng([seed, 0x5EC])
    out = []
    for drawn in groups:
        out += [drawn[i] for i in rng.choice(len(drawn), min(len(drawn), -(-n // len(groups))), replace=False)]
    return out[:n]


def _replay(ir, label: str, design, space, fs, inputs: np.ndarray, jobs: int, log) -> tuple:
    """``fs`` on the RTL of ``design`` (None: the plain encoder) and on the
    fault model of ``space``: (the report entry: scenarios, disagreeing,
    changing_outputs, seconds, build_seconds; the fault model's outputs)."""
    from fkhw.faults.software import simulate_set
    from fkhw.levels.rtl import RtlLevel
    from fkhw.model import engine

    t1 = time.monotonic()
    level = RtlLevel(ir, jobs=jobs, design=design, log=log)
    replay = Progress(len(fs), f"  RTL replay, {label}", unit="scenarios", every=5.0, after=2.0)
    got = level.run_faults(fs, inputs, lambda total: replay.advance(total - replay.done))
    want = simulate_set(ir, space, fs, inputs)
    # how many scenarios change an output at all: 0 disagreeing must not be 0 upsets landed
    hit = int((got.latent != engine.forward(ir, inputs)[None]).any(axis=(1, 2)).sum())
    return {"scenarios": len(fs), "disagreeing": int(got.mismatches(want).sum()), "changing_outputs": hit,
            "seconds": round(time.monotonic() - t1, 1),
            "build_seconds": round(level.stats.get("build_seconds", 0.0), 1)}, want


def _curve(d: Design, env: Environment, times: np.ndarray) -> dict:
    pts = [rates.at_time(d, env, float(t)) for t in times]
    return {"t_s": times.tolist(), "p_upper": [p.p_upper for p in pts], "p_degraded": [p.p_degraded for p in pts],
            "mean_emd_norm": [p.mean_emd_norm for p in pts], "covered": [p.covered for p in pts]}


def _dur(s: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if s >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s * 1e3:.3g} ms"


def figure(result: dict, path: Path) -> Path:
    from matplotlib.figure import Figure

    column = result.get("damage_column", "emd_norm")  # the metric's normalised damage (fkhw.damage.metrics)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_p, ax_e = fig.subplots(1, 2)
    for name, d in result["designs"].items():
        c = d["curve"]
        line, = ax_p.loglog(c["t_s"], np.maximum(c["p_upper"], 1e-30), label=name,
                            linestyle="--" if d["refresh"] else "-")
        # the mean is shown where the evaluated compositions hold >= 99% of the probability
        mean = np.where(np.asarray(c["covered"]) >= 0.99, c["mean_emd_norm"], np.nan)
        ax_e.semilogx(c["t_s"], mean, color=line.get_color(), linestyle=line.get_linestyle(), label=name)
    ax_p.axhline(result["target"], color="grey", linewidth=0.8, linestyle=":")
    ax_p.set(xlabel="time since the last scrub [s]", ylabel="P(output degraded) (upper bound)",
             title=f"{result['model']}: {column} > {result['threshold']:g}, lam = "
                   f"{result['environment']['lam_per_s']:.2g}/s per flip-flop")
    ax_p.set_ylim(1e-12, 1.5)
    ax_e.set(xlabel="time since the last scrub [s]", ylabel=f"mean {column}",
             title=f"mean damage (where <= {result['k_max']} upsets cover 99%)")
    ax_p.legend(fontsize=8)
    save_figure(fig, path, dpi=110)
    return path


def rtl_crosscheck(bundle, inputs: np.ndarray, pools: dict, k_max: int, samples: int, seed: int, n_check: int,
                   jobs: int = 1, log=print, designs=RTL_CHECK_DESIGNS, transients=()) -> dict:
    """Replay ``n_check`` of the Monte Carlo's accumulated-upset scenarios on
    each design variant's RTL: the plain design's on the plain RTL, the selective (and, with
    "full" in ``designs``, the full-TMR) design's on its hardened RTL (with and
    without refresh), each protected bit defeated by
    upsetting two of its replicas in the same clock. Outputs are compared
    with the fault model (fkhw.faults.software, the software truth): the counts of
    disagreeing scenarios per design are returned (0 expected).
    ``transients``: the TMR map's triplicated pipeline / valid flip-flops,
    triplicated in the selective design's RTL too: it is then the design
    ``fkhw tmr`` proved, and its Verilator build is shared."""
    from fkhw.faults.space import Fault, FaultSet, FlipFlopSpace, Upset
    from fkhw.rtlgen.harden import harden

    # full TMR of every weight bit is opt-in ("full" in designs, `fkhw rate --check-full-tmr`): its
    # Verilator model is the largest build, and the plain and selective designs already exercise
    # every path (single bits, defeated replicas, refresh)
    variants = [(name, refresh) for name in pools if name in designs
                for refresh in ((False,) if name == "plain" else (False, True))]
    report = {}
    for name, refresh in variants:
        unprot, prot = pools[name]
        scen = _equal_share([draw_scenarios(unprot, prot, ku, kp, samples, seed)
                             for ku, kp in rates.sampled_compositions(unprot.size, prot.size, k_max)], n_check, seed)
        hardened = np.concatenate([prot, np.asarray(transients if name == "selective" else (), dtype=np.int64)])
        space = FlipFlopSpace.of(bundle.ir, np.sort(hardened) if name != "plain" else None, refresh)
        protected = set(space.protected)
        faults = []
        for s in scen:
            ups = []
            for site in s.tolist():
                ups.append(Upset(site, 0))
                if site in protected:  # replica B in the same clock: two of three replicas wrong
                    ups.append(Upset(space.first_replica + 2 * space.protected.index(site), 0))
            faults.append(tuple(sorted(ups)))
        fs = FaultSet.of("accumulate", np.arange(len(faults)), [Fault(u) for u in faults])
        design = None if name == "plain" else harden(bundle.ir, space.protected, refresh=refresh)
        label = name if name == "plain" else f"{name}{' + refresh' if refresh else ''}"
        report[label], _ = _replay(bundle.ir, label, design, space, fs, inputs, jobs, log)
        log(f"  RTL replay, {label}: {len(fs)} accumulated-upset scenarios, {report[label]['disagreeing']} "
            f"disagreeing with the fault model ({report[label]['seconds']:.1f} s, of which Verilator build "
            f"{report[label]['build_seconds']:.1f} s)")
    return report
