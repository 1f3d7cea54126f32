"""The rate model's arithmetic on cases with known answers (fkhw.rates.model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fkhw.rates import model as rates
from fkhw.rates.model import Conditional, Design, Environment, RateError

ONE_PER_HOUR = Environment(flux=1.0 / rates.HOUR, sigma=1.0)  # lam = 1 upset per flip-flop per hour


def one_bit_design(protected: bool, refresh: bool = False, degrades: float = 1.0) -> Design:
    """A single parameter bit that degrades the encoder when wrong."""
    cond = [Conditional(0, 0, 0.0, 0.0, 1.0, 0)]
    cond.append(Conditional(0, 1, degrades, 0.0, 2.0, 0) if protected else Conditional(1, 0, degrades, 0.0, 2.0, 0))
    return Design("one", 0 if protected else 1, 1 if protected else 0, refresh, (), tuple(cond), k_max=1)


def test_one_flip_flop_is_inverted_after_an_odd_number_of_poisson_upsets():
    lam = ONE_PER_HOUR.lam
    for hours in (0.01, 0.5, 1.0, 3.0):
        t = hours * rates.HOUR
        odd = sum(math.exp(-hours) * hours ** k / math.factorial(k) for k in range(1, 60, 2))
        assert rates.inverted_probability(lam, t) == pytest.approx(odd, rel=1e-12)
    # long after the scrub a bit is a coin flip
    assert rates.inverted_probability(lam, 1e3 * rates.HOUR) == pytest.approx(0.5)


def test_plain_bit_degrades_with_its_inverted_probability():
    d = one_bit_design(protected=False)
    t = 1800.0
    pt = rates.at_time(d, ONE_PER_HOUR, t)
    r = (1 - math.exp(-2 * 0.5)) / 2
    assert pt.p_degraded == pytest.approx(r, rel=1e-12)
    assert pt.p_upper == pytest.approx(r, rel=1e-12)  # k_max covers one bit: nothing left over
    assert pt.mean_emd_norm == pytest.approx((1 - r) * 1.0 + r * 2.0)


def test_a_tmr_bit_fails_when_two_of_three_replicas_are_inverted():
    t = 1800.0
    r = (1 - math.exp(-1.0)) / 2
    want = 3 * r ** 2 * (1 - r) + r ** 3
    # enumerate the 8 replica states: at least two inverted
    states = sum(r ** k * (1 - r) ** (3 - k) * math.comb(3, k) for k in (2, 3))
    assert want == pytest.approx(states)
    pt = rates.at_time(one_bit_design(protected=True), ONE_PER_HOUR, t)
    assert pt.p_degraded == pytest.approx(want, rel=1e-12)
    assert pt.p_degraded < rates.at_time(one_bit_design(protected=False), ONE_PER_HOUR, t).p_degraded


def test_refresh_needs_two_upsets_in_one_clock():
    env = Environment(flux=1.0, sigma=1e-3, clock_hz=1e3)  # lam = 1e-3 /s, 1 ms clock
    t = 10.0
    d = 3 * (1e-3 * 1e-3) ** 2  # two of three replicas within one clock, first order
    want = (1 - (1 - 2 * d) ** (t / 1e-3)) / 2
    got = rates.tmr_wrong_probability(env.lam, t, refresh=True, t_clk=env.t_clk)
    assert got == pytest.approx(want, rel=1e-3)
    # to first order 3 lam^2 T_clk t against 3 (lam t)^2 without refresh: smaller by T_clk / t
    plain = rates.tmr_wrong_probability(env.lam, t, refresh=False, t_clk=env.t_clk)
    assert got / plain == pytest.approx(env.t_clk / t, rel=0.05)


def test_transients_add_per_output_probability_independent_of_the_scrub():
    d = Design("t", 0, 0, False, (("pipeline", 1000, 0.25), ("control", 3, 1.0)),
               (Conditional(0, 0, 0.0, 0.0, 1.0, 0),), k_max=0)
    env = Environment(flux=2e7, sigma=1e-14)
    want = env.lam * 25e-9 * (1000 * 0.25 + 3)
    assert d.transient_probability(env) == pytest.approx(want)
    assert rates.at_time(d, env, 1.0).p_degraded == pytest.approx(want)
    assert rates.at_time(d, env, 1e5).p_degraded == pytest.approx(want)


def test_a_triplicated_transient_flip_flop_is_wrong_only_when_two_replicas_are_hit_in_one_clock():
    env = Environment(flux=1e3, sigma=1e-3, clock_hz=1e3)  # lam T_clk = 1e-3: the second order term is visible
    lam_t = env.lam * env.t_clk
    r = (1 - math.exp(-2 * lam_t)) / 2  # one replica inverted within the clock
    p2 = 3 * r * r * (1 - r) + r ** 3
    voted = Design("v", 0, 0, False, (("pipeline", 10, 0.5),), (Conditional(0, 0, 0.0, 0.0, 1.0, 0),), k_max=0,
                   protected_transients=(("control", 3, 1.0),))
    assert voted.transient_probability(env) == pytest.approx(lam_t * 10 * 0.5 + p2 * 3 * 1.0, rel=1e-12)
    # second order: the three valid flags contribute ~3 lam T_clk times less than unprotected ones would
    assert (p2 * 3) / (lam_t * 3) == pytest.approx(3 * lam_t, rel=1e-2)
    # their upsets still count (replica A is one of the class's flip-flops)
    assert voted.upsets_per_hour(env)["control"] == pytest.approx(3 * env.lam * rates.HOUR)


def test_a_map_splits_transient_flip_flops_into_plain_and_triplicated():
    from fkhw.rates.flow import _split_transients

    trans = (("pipeline", np.array([100, 101, 102, 103]), np.array([0.0, 1.0, 0.5, 0.5])),
             ("control", np.array([200, 201]), np.array([1.0, 1.0])))
    plain, voted = _split_transients(trans, [101, 200, 201])
    assert plain == (("pipeline", 3, pytest.approx(1 / 3)), ("control", 0, 0.0))
    assert voted == (("pipeline", 1, 1.0), ("control", 2, 1.0))
    # n x mean fraction is the sum of the per-flip-flop fractions, whatever is protected
    assert sum(n * f for _, n, f in plain + voted) == pytest.approx(sum(f.sum() for _, _, f in trans))


def test_binomial_mixture_and_tail_bound():
    # 100 unprotected bits, each alone degrades with 10%, any two together always
    cond = (Conditional(0, 0, 0.0, 0.0, 1.0, 0), Conditional(1, 0, 0.1, 0.0, 1.5, 0),
            Conditional(2, 0, 1.0, 0.0, 3.0, 500))
    d = Design("mix", 100, 0, False, (), cond, k_max=2)
    t = 360.0  # r ~ 0.09
    r = (1 - math.exp(-2 * 0.1)) / 2
    p0, p1, p2 = ((1 - r) ** 100, 100 * r * (1 - r) ** 99, math.comb(100, 2) * r ** 2 * (1 - r) ** 98)
    pt = rates.at_time(d, ONE_PER_HOUR, t)
    assert pt.p_degraded == pytest.approx(0.1 * p1 + p2, rel=1e-9)
    assert pt.p_upper == pytest.approx(0.1 * p1 + p2 + (1 - p0 - p1 - p2), rel=1e-9)


def test_longest_interval_solves_p_equal_target():
    d = one_bit_design(protected=False)
    target = 0.01
    t = rates.longest_interval(d, ONE_PER_HOUR, target)
    assert rates.at_time(d, ONE_PER_HOUR, t).p_upper == pytest.approx(target, rel=1e-6)
    # analytic: (1 - exp(-2 lam t)) / 2 = target
    assert t == pytest.approx(-math.log(1 - 2 * target) / (2 * ONE_PER_HOUR.lam), rel=1e-6)
    assert rates.longest_interval(d, ONE_PER_HOUR, 0.6) == math.inf  # a lone bit never exceeds 1/2


def test_monte_carlo_conditionals_converge_to_the_exact_answer():
    """Two bits degrade together iff both are 'bad' (half of the pool): the
    exact probability is C(50,2)/C(100,2); the seeded estimate is within 3 SE."""
    pool = np.arange(100)
    bad = pool < 50

    def evaluate(scenarios):
        return np.array([2.0 if bad[s].all() else 1.0 for s in scenarios])

    exact = math.comb(50, 2) / math.comb(100, 2)
    for samples in (200, 5000):
        cond = rates.conditionals(pool, np.array([], dtype=np.int64), lambda s: np.where(bad[s], 2.0, 1.0), 1.5,
                                  2, evaluate, samples, seed=1)
        c2 = next(c for c in cond if (c.ku, c.kp) == (2, 0))
        assert abs(c2.p_degraded - exact) <= 3 * c2.se + 1e-12
    assert c2.se < 0.01
    c1 = next(c for c in cond if (c.ku, c.kp) == (1, 0))
    assert (c1.p_degraded, c1.samples) == (0.5, 0)


def test_a_secded_word_is_wrong_when_exactly_two_of_its_flip_flops_are_inverted():
    """One word of 13 flip-flops whose every double degrades: P = C(13,2) r^2 (1-r)^11;
    three or more inverted go to the upper bound; the counts' pmf sums to one."""
    n, t = 13, 36.0  # r ~ 0.01
    r = float(rates.inverted_probability(ONE_PER_HOUR.lam, t))
    assert sum(float(rates.exactly(r, n, k)) for k in range(n + 1)) == pytest.approx(1.0, rel=1e-12)
    assert float(rates.at_least_three(r, n)) == pytest.approx(
        1 - sum(float(rates.exactly(r, n, k)) for k in range(3)), rel=1e-9)
    cond = (Conditional(0, 0, 0.0, 0.0, 1.0, 0), Conditional(0, 1, 1.0, 0.0, 2.0, 0))
    d = Design("secded", 0, 1, False, (), cond, k_max=1, word_sizes=(n,))
    pt = rates.at_time(d, ONE_PER_HOUR, t)
    w2 = math.comb(n, 2) * r ** 2 * (1 - r) ** (n - 2)
    assert pt.p_degraded == pytest.approx(w2, rel=1e-9)
    assert pt.p_upper == pytest.approx(w2 + float(rates.at_least_three(r, n)), rel=1e-9)
    # at small r the pair term is tiny but not lost to cancellation
    tiny = float(rates.exactly(1e-12, n, 2))
    assert tiny == pytest.approx(math.comb(n, 2) * 1e-24, rel=1e-9)


@pytest.mark.parametrize("n", [13, 72, 400])
def test_a_word_design_has_a_bound_at_every_time_even_when_three_upsets_are_certain(n):
    """Words of n flip-flops (72: secded:64) long after the scrub, where
    P(3 or more upsets in a word) rounds to 1: the bound is 1, not an error,
    and the longest interval is found by bisection; log P(at most two) is
    the log of its terms there and log1p of the complement at small r."""
    cond = (Conditional(0, 0, 0.0, 0.0, 1.0, 0), Conditional(0, 1, 1.0, 0.0, 2.0, 0))
    d = Design("secded:64", 0, 3, False, (), cond, k_max=1, word_sizes=(n,) * 3)
    late = rates.at_time(d, ONE_PER_HOUR, 1e6 * 3600)
    assert late.p_upper == 1.0
    longest = rates.longest_interval(d, ONE_PER_HOUR, 1e-3)
    assert 0 < longest < math.inf and rates.at_time(d, ONE_PER_HOUR, longest).p_upper <= 1e-3
    for r in (1e-9, 0.5, 0.99):
        at_most_two = sum(float(rates.exactly(r, n, k)) for k in range(3))
        want = math.log1p(-float(rates.at_least_three(r, n))) if r < 0.01 else math.log(at_most_two)
        assert rates.log_at_most_two(r, n) == pytest.approx(want, rel=1e-9)


def test_wrong_word_scenarios_converge_to_every_pair_of_every_word():
    """kw = 1: a word in proportion to its pairs and a uniform pair in it is
    every pair of the design equally likely; the seeded estimate of 'the
    decoders pass a data bit inverted' is within 4 SE of the count over all
    pairs (through the same decoder model)."""
    from itertools import combinations

    from fkhw.faults.software import decoded
    from fkhw.faults.space import Fault, FlipFlopSpace, Upset
    from fkhw.rates.words import word_conditionals
    from fkhw.rtlgen.testing import tiny_model

    space = FlipFlopSpace.of(tiny_model(), ecc="secded:7")
    hits = lambda sites: sites.size > 0  # noqa: E731
    pairs = [p for w in space.code_words() for p in combinations(w.tolist(), 2)]
    exact = np.mean([hits(np.array([u.ff for u in decoded(space, Fault((Upset(a, 0), Upset(b, 0)))).upsets]))
                     for a, b in pairs])
    assert 0 < exact < 1
    cond = word_conditionals(space, 1.5, 2, lambda scen: np.array([2.0 if hits(s) else 1.0 for s in scen]),
                             4000, seed=3)
    c1 = next(c for c in cond if (c.ku, c.kp) == (0, 1))
    assert abs(c1.p_degraded - exact) <= 4 * c1.se and c1.se < 0.01
    c2 = next(c for c in cond if (c.ku, c.kp) == (0, 2))
    assert c2.p_degraded > c1.p_degraded  # two wrong words pass a data bit on more often than one


@pytest.mark.parametrize("kw", [dict(flux=0.0, sigma=1e-14), dict(flux=-1.0, sigma=1e-14),
                                dict(flux=2e7, sigma=0.0), dict(flux=2e7, sigma=float("nan"))])
def test_environment_refuses_non_positive_values(kw):
    with pytest.raises(RateError, match="must be a positive number"):
        Environment(**kw)


@pytest.mark.parametrize("text,seconds", [("1s", 1.0), ("250ms", 0.25), ("1min", 60.0), ("2h", 7200.0),
                                          ("1d", 86400.0), ("30", 30.0)])
def test_durations(text, seconds):
    assert rates.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0s", "-1min", "fast", ""])
def test_bad_durations(text):
    with pytest.raises(RateError):
        rates.parse_duration(text)


@pytest.mark.parametrize("target", [0.0, 1.0, -0.1, 2.0])
def test_target_outside_unit_interval(target):
    with pytest.raises(RateError, match="--target"):
        rates.longest_interval(one_bit_design(False), ONE_PER_HOUR, target)


# --- the RTL replay of accumulated-upset scenarios (fkhw.rates.flow.rtl_crosscheck) ------------

@pytest.mark.verilator
def test_rtl_replay_covers_the_full_tmr_design_when_asked():
    """`--check-rtl` with `--check-full-tmr`: scenarios of the full-TMR design
    (every parameter bit triplicated; each upset bit defeated by a second
    replica in the same clock) replay on its RTL, with and without refresh,
    equal to the fault model; by default only plain and selective run. The
    selective design carries the map's triplicated valid flag."""
    from types import SimpleNamespace

    from fkhw.faults.space import FlipFlopSpace
    from fkhw.rates.flow import RTL_CHECK_DESIGNS, rtl_crosscheck
    from fkhw.rtlgen.testing import tiny_model, toy_inputs

    ir = tiny_model()
    n = ir.n_param_bits()
    every, none = np.arange(n), np.zeros(0, dtype=np.int64)
    prot = np.arange(0, n, 4)
    pools = {"plain": (every, none), "full": (none, every), "selective": (np.setdiff1d(every, prot), prot)}
    x = toy_inputs(ir, 16, seed=4)
    # the selective design as `fkhw tmr --protect-control` proves it: its first valid flag triplicated too
    valid = FlipFlopSpace.of(ir).first_control
    rep = rtl_crosscheck(SimpleNamespace(ir=ir), x, pools, k_max=3, samples=20, seed=1, n_check=10, jobs=2,
                         log=lambda m: None, designs=RTL_CHECK_DESIGNS + ("full",), transients=(valid,))
    assert set(rep) == {"plain", "selective", "selective + refresh", "full", "full + refresh"}
    assert all(r["disagreeing"] == 0 and r["scenarios"] == 10 for r in rep.values()), rep
    # the scenarios do land: defeated replicas change outputs on the full-TMR design too
    assert all(r["changing_outputs"] > 0 for r in rep.values()), rep
    assert "full" not in RTL_CHECK_DESIGNS


@pytest.mark.verilator
@pytest.mark.parametrize("ecc", ["secded:7", "secded:5i"])
def test_rtl_replay_of_wrong_words_equals_the_fault_model_and_the_rate_model(ecc):
    """`--check-rtl` on a design of SEC-DED words: the wrong-word Monte
    Carlo's own scenarios (pairs of data or check bits, upset in one clock)
    replay on its RTL, decoders and all, equal to the fault model, which
    equals the rate model's passed-on data bits in the plain design; the
    scenarios change outputs."""
    from types import SimpleNamespace

    from fkhw.faults.space import FlipFlopSpace
    from fkhw.rates.flow import word_rtl_crosscheck
    from fkhw.rates.words import passed_on, wrong_word_scenarios
    from fkhw.rtlgen.testing import tiny_model, toy_inputs

    ir = tiny_model()
    space = FlipFlopSpace.of(ir, ecc=ecc)
    rep = word_rtl_crosscheck(SimpleNamespace(ir=ir), toy_inputs(ir, 16, seed=4), ecc, k_max=3, samples=40, seed=1,
                              n_check=24, jobs=2, log=lambda m: None)
    assert rep["scenarios"] == 24 and rep["disagreeing"] == 0, rep
    assert rep["disagreeing_with_the_fault_model"] == rep["fault_model_disagreeing_with_the_rate_model"] == 0
    assert 0 < rep["changing_outputs"] <= rep["scenarios"], rep
    # the replayed scenarios are the Monte Carlo's: each pair lies in one code word, three words each
    words = space.code_words()
    word_of = {int(f): j for j, w in enumerate(words) for f in w}
    for s in wrong_word_scenarios(words, 3, 40, 1):
        assert len(s) == 3 and all(word_of[int(a)] == word_of[int(b)] for a, b in s)
        assert len({word_of[int(a)] for a, _ in s}) == 3
        assert passed_on(space, s).size <= 6
