"""From upsets to failure rates: a Poisson model of upsets between scrubs.

Every flip-flop is upset at rate ``lam = flux * sigma`` (s^-1), independently
(a Poisson process per flip-flop). Formulas, each used by ``fkhw rate``:

* expected upsets per hour of a class of ``n`` flip-flops: ``n * lam * 3600``.
* a plain parameter bit ``t`` seconds after the scrub is inverted iff it was
  upset an odd number of times: ``r(t) = (1 - exp(-2 lam t)) / 2``
  (``P(at least one upset) = 1 - exp(-lam t)`` is its first-order value).
* a triplicated bit without refresh reads wrong iff at least two of its three
  replicas are inverted: ``p2(r) = 3 r^2 (1 - r) + r^3`` with ``r = r(t)``.
* a triplicated bit with refresh (self-correcting TMR: the voted value is
  written back every clock) goes wrong only when two replicas are upset in
  the same clock, ``d = p2(r(T_clk))`` per clock, and then stays wrong (the
  refresh writes the wrong majority back) until another such event:
  ``(1 - (1 - 2 d)^(t / T_clk)) / 2``.
* the number of inverted unprotected bits is ``Binomial(n_u, r(t))``, of
  wrong protected bits ``Binomial(n_p, b(t))``; the encoder's weights are
  degraded with ``P_w(t) = sum_{ku, kp} Bin(ku) Bin(kp) P(deg | ku, kp)``
  where ``P(deg | 1, 0)`` and ``P(deg | 0, 1)`` are the exact fractions of
  the seu campaign's unprotected / protected bits over the threshold, and
  ``P(deg | ku, kp)`` for ``ku + kp >= 2`` comes from a seeded Monte Carlo of
  accumulated upsets on the software engine (its binomial standard error is
  carried). Compositions with more than ``k_max`` bits are counted as
  degraded: ``p_upper`` adds their probability mass (a bound, stated).
* a SEC-DED word of n flip-flops (data and check bits) reads wrong when
  exactly two of them are inverted: ``w2(r) = C(n, 2) r^2 (1 - r)^(n-2)``
  (its decoder corrects one; two are detected and passed on). The number of
  wrong words is ``Binomial(words, mean w2)``; ``P(deg | kw words)`` comes
  from a Monte Carlo of words drawn in proportion to their pairs, a uniform
  pair in each, through the decoder (fkhw.faults.software.decoded). Three or
  more inverted in one word (a decoder may miscorrect them) are counted as
  degraded in ``p_upper``: ``1 - prod_w (1 - P(>= 3 of n_w))``.
* transients: a vector meets each pipeline and control flip-flop for one
  clock, so the probability that one output is degraded by a transient is
  ``P_tr = lam * T_clk * sum_class n_class * f_class`` with ``f_class`` the
  fraction of that class's (flip-flop, cycle) upsets that degrade it; a
  triplicated pipeline or valid flip-flop (the TMR map's) is wrong for a
  vector only when two of its replicas are upset in that clock, so its
  term is ``p2(r(T_clk)) * sum n f`` (second order in ``lam T_clk``).
* one output degraded at time ``t``: ``P(t) = 1 - (1 - P_w(t)) (1 - P_tr)``;
  the mean normalised damage is ``E[emd_norm | k <= k_max] = sum Bin Bin E[emd_norm | ku, kp] / covered``
  (``covered``: the probability of at most ``k_max`` upsets, reported with it).
* the longest scrub interval keeping ``P`` below a target: ``P(t)`` grows
  with ``t``, so the interval is where ``P(t) = target`` (bisection in log t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fkhw.errors import InputError

import numpy as np

HOUR = 3600.0
# ECON-T: the CMS HGCAL front end sees about 2e7 hadrons cm^-2 s^-1 above 20 MeV at the inner radius
# (the ECON-T/ECON-D radiation requirement, CMS HGCAL TDR CERN-LHCC-2017-023)
DEFAULT_FLUX = 2e7
# a per-flip-flop SEU cross-section of 65 nm CMOS flip-flops for high-energy hadrons (order of magnitude;
# it must come from the user's technology and beam tests)
DEFAULT_SIGMA = 1e-14
DEFAULT_CLOCK_HZ = 40e6  # the LHC bunch-crossing clock: one vector per 25 ns

# The range of the rate model, in upsets per flip-flop per clock (u = lam x T_clk) and in the probability
# r = lam x t of an upset within the shortest time it evaluates:
# * u <= U_MAX = 1: at most one upset per flip-flop per clock on average; beyond it the per-clock terms (a
#   transient meets one clock, the refresh votes every clock) do not hold, and at u ~ 18 the refresh formula
#   leaves its domain (log1p(-2 d) with d -> 1/2);
# * u >= U_MIN: two replicas upset in one clock (~3 u^2, the refresh term) stays a normal float, not 0;
# * r >= R_MIN: scipy's binomial pmf fails (OverflowError) or returns 0 for p below ~1e-306.
U_MIN, U_MAX, R_MIN = 1e-150, 1.0, 1e-300
# the times the longest scrub interval is searched between (the shortest time the flow evaluates, with T_clk)
INTERVAL_LO, INTERVAL_HI = 1e-3, 1e8
SCRUB_MAX_S = 1e300  # the rate curve runs to 10x the longest interval: it stays a float


class RateError(InputError):
    """Options or inputs a rate calculation cannot use."""


@dataclass(frozen=True)
class Environment:
    flux: float  # particles cm^-2 s^-1
    sigma: float  # cm^2 per flip-flop
    clock_hz: float = DEFAULT_CLOCK_HZ

    def __post_init__(self):
        for name in ("flux", "sigma", "clock_hz"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise RateError(f"--{name.replace('_', '-')} must be a positive number, got {v}")

    @property
    def lam(self) -> float:
        """Upsets per flip-flop per second."""
        return self.flux * self.sigma

    @property
    def t_clk(self) -> float:
        return 1.0 / self.clock_hz


def inverted_probability(lam: float, t) -> np.ndarray:
    """r(t): a single flip-flop inverted after t seconds (odd number of upsets)."""
    return -np.expm1(-2.0 * lam * np.asarray(t, dtype=np.float64)) / 2.0


def two_of_three(r) -> np.ndarray:
    """p2(r): at least two of three independent replicas inverted."""
    r = np.asarray(r, dtype=np.float64)
    return 3.0 * r * r * (1.0 - r) + r ** 3


def exactly(r, n: int, k: int) -> np.ndarray:
    """P(exactly k of n independent flip-flops inverted), each with probability r."""
    r = np.asarray(r, dtype=np.float64)
    return math.comb(n, k) * r ** k * np.exp((n - k) * np.log1p(-np.minimum(r, 0.5)))


def at_least_three(r, n: int) -> np.ndarray:
    """P(3 or more of n inverted), summed term by term (no cancellation at small r)."""
    r = np.asarray(r, dtype=np.float64)
    return sum((exactly(r, n, k) for k in range(3, n + 1)), np.zeros_like(r))


def log_at_most_two(r: float, n: int) -> float:
    """log P(at most 2 of n inverted), accurate at both ends: log1p of the
    complement while it is small (small r: the sum itself rounds to 1), the
    log of the sum once the complement nears 1 (large r, a wide word: the
    complement rounds to 1 and its log1p would be -inf or undefined)."""
    a3 = float(at_least_three(r, n))
    if a3 < 0.5:
        return math.log1p(-a3)
    at_most_two = sum(float(exactly(r, n, k)) for k in range(3))
    return math.log(at_most_two) if at_most_two > 0 else -math.inf


def tmr_wrong_probability(lam: float, t, refresh: bool, t_clk: float) -> np.ndarray:
    """A triplicated bit reads wrong after t seconds (see the module formulas)."""
    t = np.asarray(t, dtype=np.float64)
    if not refresh:
        return two_of_three(inverted_probability(lam, t))
    d = float(two_of_three(inverted_probability(lam, t_clk)))
    clocks = t / t_clk
    # (1 - (1-2d)^m) / 2, stable for tiny d
    return -np.expm1(clocks * math.log1p(-2.0 * d)) / 2.0


@dataclass(frozen=True)
class Conditional:
    """What the encoder does given ``ku`` inverted unprotected and ``kp`` wrong
    protected parameter bits: P(degraded), its standard error, E[emd_norm]."""

    ku: int
    kp: int
    p_degraded: float
    se: float
    mean_emd_norm: float
    samples: int  # 0: exact (from the exhaustive seu campaign)


@dataclass(frozen=True)
class Design:
    """One design's flip-flops: unprotected / protected parameter bits, and
    transient (pipeline, control) flip-flops with their degrading fractions."""

    name: str
    n_unprotected: int
    n_protected: int
    refresh: bool
    transients: tuple  # of (class, n flip-flops, fraction of its upsets that degrade an output)
    conditionals: tuple  # of Conditional, every (ku, kp) with ku + kp <= k_max that this design can have
    k_max: int
    replica_flip_flops: int = 0
    protected_transients: tuple = ()  # as ``transients``, the triplicated ones (voted every clock)
    # a design of SEC-DED words: the flip-flops of each word (data and check bits); its protected units
    # (n_protected) are the words, wrong when two of their flip-flops are inverted
    word_sizes: tuple = ()

    def conditional(self, ku: int, kp: int) -> Conditional:
        for c in self.conditionals:
            if c.ku == ku and c.kp == kp:
                return c
        raise RateError(f"design {self.name}: no evaluation of {ku} unprotected + {kp} protected upsets")

    def upsets_per_hour(self, env: Environment) -> dict:
        per = {"param": (self.n_unprotected + self.n_protected) * env.lam * HOUR}
        if self.word_sizes:
            per = {"param+check": sum(self.word_sizes) * env.lam * HOUR}
        for cls, n, _ in self.transients + self.protected_transients:
            per[cls] = per.get(cls, 0.0) + n * env.lam * HOUR
        if self.replica_flip_flops:
            per["replica"] = self.replica_flip_flops * env.lam * HOUR
        return per

    def transient_probability(self, env: Environment) -> float:
        voted = float(two_of_three(inverted_probability(env.lam, env.t_clk)))
        return (env.lam * env.t_clk * sum(n * f for _, n, f in self.transients)
                + voted * sum(n * f for _, n, f in self.protected_transients))


@dataclass(frozen=True)
class Point:
    t: float
    p_degraded: float  # one output degraded at time t after the scrub
    p_upper: float  # with compositions beyond k_max counted as degraded
    se: float  # Monte Carlo standard error of p_degraded
    mean_emd_norm: float  # over the evaluated compositions (k <= k_max), see ``covered``
    p_weights: float  # the weights alone degraded
    covered: float  # probability mass of the compositions evaluated (the rest: more than k_max upsets)


def composition_weights(design: Design, env: Environment, t: float) -> tuple:
    """pmfs of ku (unprotected bits inverted) and kp (protected bits wrong) at t."""
    r = float(inverted_probability(env.lam, t))
    if design.word_sizes:  # a wrong word: exactly two of its flip-flops inverted
        b = float(np.mean([exactly(r, n, 2) for n in design.word_sizes]))
    else:
        b = float(tmr_wrong_probability(env.lam, t, design.refresh, env.t_clk))
    ku = np.arange(design.k_max + 1)
    from scipy.stats import binom  # scipy.stats costs ~0.3 s at import: only where it is used

    pu = binom.pmf(ku, design.n_unprotected, r) if design.n_unprotected else (ku == 0).astype(float)
    pp = binom.pmf(ku, design.n_protected, b) if design.n_protected else (ku == 0).astype(float)
    return pu, pp


def at_time(design: Design, env: Environment, t: float) -> Point:
    """P(one output degraded) and E[emd_norm] t seconds after a scrub."""
    if not t > 0:
        raise RateError(f"a time since the scrub must be positive, got {t}")
    pu, pp = composition_weights(design, env, t)
    p = var = mean = covered = 0.0
    for c in design.conditionals:
        w = pu[c.ku] * pp[c.kp]
        covered += w
        p += w * c.p_degraded
        var += (w * c.se) ** 2
        mean += w * c.mean_emd_norm
    tail = max(0.0, 1.0 - covered)
    if design.word_sizes:  # three or more upsets in one word: counted as degraded in the bound
        r = float(inverted_probability(env.lam, t))
        sizes, counts = np.unique(np.asarray(design.word_sizes), return_counts=True)
        clean = sum(float(c) * log_at_most_two(r, int(n)) for n, c in zip(sizes, counts))
        tail = min(1.0, tail + -math.expm1(clean))
    p_tr = design.transient_probability(env)
    both = lambda pw: 1.0 - (1.0 - pw) * (1.0 - p_tr)  # noqa: E731
    return Point(t, both(p), both(min(1.0, p + tail)), math.sqrt(var) * (1.0 - p_tr),
                 mean / covered if covered > 0 else math.nan, p, covered)


def longest_interval(design: Design, env: Environment, target: float, lo: float = INTERVAL_LO,
                     hi: float = INTERVAL_HI, upper: bool = True) -> float | None:
    """The longest time since the scrub at which P(degraded) (its upper bound
    with ``upper``) stays <= ``target``: None if even ``lo`` exceeds it, ``inf``
    if ``hi`` does not."""
    if not 0 < target < 1:
        raise RateError(f"--target must be between 0 and 1 (exclusive), got {target}")

    def p(t):
        pt = at_time(design, env, t)
        return pt.p_upper if upper else pt.p_degraded

    if p(lo) > target:
        return None
    if p(hi) <= target:
        return math.inf
    a, b = math.log(lo), math.log(hi)
    for _ in range(80):
        m = (a + b) / 2
        if p(math.exp(m)) <= target:
            a = m
        else:
            b = m
    return math.exp(a)


def check_extremes(env: Environment, scrubs) -> None:
    """Refuse, before any work, a flux, cross-section, clock or scrub interval
    whose probabilities the formulas cannot hold (see U_MIN, U_MAX, R_MIN),
    naming the valid --flux range at the given --sigma and --clock."""
    lam = env.flux * env.sigma
    u = lam * env.t_clk
    shortest = min(INTERVAL_LO, env.t_clk)
    lo = max(U_MIN / env.t_clk, R_MIN / shortest) / env.sigma
    hi = U_MAX / env.t_clk / env.sigma
    if not (math.isfinite(u) and U_MIN <= u <= U_MAX and lam * shortest >= R_MIN):
        valid = f"--flux {lo:.3g} .. {hi:.3g}" if lo <= hi else "no --flux"
        raise RateError(f"--flux {env.flux:g} x --sigma {env.sigma:g} = {lam:.3g} upsets per flip-flop per second, "
                        f"{u:.3g} per clock of --clock {env.clock_hz:g} Hz: the rate model holds for {U_MIN:g} .. "
                        f"{U_MAX:g} upsets per flip-flop per clock (at most one on average), i.e. {valid} at this "
                        "--sigma and --clock")
    for t in scrubs:
        if not math.isfinite(t) or t > SCRUB_MAX_S:
            raise RateError(f"--scrub {t:g} s: out of range (give at most {SCRUB_MAX_S:g} s)")
        if lam * t < R_MIN:
            raise RateError(f"--scrub {t:g} s: {lam:.3g} upsets per second x {t:g} s is below {R_MIN:g}, where the "
                            f"binomial probabilities underflow (give intervals >= {R_MIN / lam:.3g} s at this --flux "
                            "and --sigma)")


def check_transients(design: Design, env: Environment) -> None:
    """The transient term lam T_clk sum n f is a first-order probability: it
    must stay <= 1 (raises RateError naming the valid --flux)."""
    p = design.transient_probability(env)
    if not p <= 1.0:
        limit = env.flux / p
        raise RateError(f"--flux {env.flux:g}: design {design.name}'s transient upsets give a probability {p:.3g} "
                        f"per output (lam x T_clk x transient flip-flops > 1): the first-order model needs --flux <= "
                        f"{limit:.3g} at this --sigma and --clock")


def parse_duration(text: str) -> float:
    """``1s``, ``250ms``, ``1min``, ``2h``, ``1d`` or plain seconds -> seconds."""
    units = {"ms": 1e-3, "s": 1.0, "min": 60.0, "h": HOUR, "d": 24 * HOUR}
    s = str(text).strip()
    for u in sorted(units, key=len, reverse=True):
        if s.endswith(u):
            num, scale = s[: -len(u)], units[u]
            break
    else:
        num, scale = s, 1.0
    try:
        v = float(num) * scale
    except ValueError:
        v = math.nan
    if not math.isfinite(v):  # not a number, nan, inf, or beyond the float range in seconds
        raise RateError(f"{text!r} is not a duration: write a finite number and a unit, e.g. 1s, 250ms, 1min, 2h, 1d")
    if not v > 0:
        raise RateError(f"a scrub interval must be positive, got {text!r}")
    return v


def draw_scenarios(unprotected: np.ndarray, protected: np.ndarray, ku: int, kp: int, samples: int, seed: int) -> list:
    """The Monte Carlo's scenarios of one composition: ``ku`` unprotected and
    ``kp`` protected sites each, without replacement, seeded by (seed, ku, kp)."""
    rng = np.random.default_rng([seed, ku, kp])
    return [np.sort(np.concatenate([rng.choice(unprotected, ku, replace=False),
                                    rng.choice(protected, kp, replace=False)])) for _ in range(samples)]


def sampled_compositions(n_unprotected: int, n_protected: int, k_max: int) -> list:
    """(ku, kp) of the compositions the Monte Carlo samples: ku + kp from 2 to
    ``k_max`` (one upset is exact), each count within its pool."""
    return [(ku, total - ku) for total in range(2, k_max + 1) for ku in range(total, -1, -1)
            if ku <= n_unprotected and total - ku <= n_protected]


# scenarios evaluated between progress reports (a multiple of the evaluator's own batch of 256)
PROGRESS_BLOCK = 8192


def conditionals(unprotected: np.ndarray, protected: np.ndarray, emd_norm_of_site, threshold: float, k_max: int,
                 evaluate, samples: int, seed: int, progress=None) -> tuple:
    """P(deg | ku, kp) and E[emd_norm | ku, kp] for every ku + kp <= k_max.

    ``emd_norm_of_site(sites)``: the seu campaign's emd_norm of single sites
    (the exact one-bit answers); ``evaluate(list of site arrays)``: emd_norm of
    scenarios with all those bits inverted together (the software engine).
    Sampled compositions draw ``samples`` scenarios, bits without replacement,
    seeded per composition. ``progress(n)``: called as each block of n
    scenarios is evaluated (``--samples 1000000`` is minutes per design)."""
    unprotected, protected = np.asarray(unprotected, dtype=np.int64), np.asarray(protected, dtype=np.int64)
    out = [Conditional(0, 0, 0.0, 0.0, 1.0, 0)]
    for pool, key in ((unprotected, (1, 0)), (protected, (0, 1))):
        if pool.size and k_max >= 1:
            e = np.asarray(emd_norm_of_site(pool), dtype=np.float64)
            out.append(Conditional(*key, float((e > threshold).mean()), 0.0, float(e.mean()), 0))
    for ku, kp in sampled_compositions(unprotected.size, protected.size, k_max):
        scen = draw_scenarios(unprotected, protected, ku, kp, samples, seed)
        parts = []
        for lo in range(0, len(scen), PROGRESS_BLOCK):  # each scenario is evaluated on its own: blocks change nothing
            parts.append(np.asarray(evaluate(scen[lo:lo + PROGRESS_BLOCK]), dtype=np.float64))
            if progress is not None:
                progress(len(parts[-1]))
        e = np.concatenate(parts)
        p = float((e > threshold).mean())
        out.append(Conditional(ku, kp, p, math.sqrt(p * (1 - p) / samples), float(e.mean()), samples))
    return tuple(out)
