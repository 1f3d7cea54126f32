"""The one interval of fractions (risk tables, campaign summaries): the Wilson score interval on textbook values."""

import pytest

from fkhw.damage.intervals import wilson


def test_wilson_interval_on_known_values():
    # 8 of 10: the 95% Wilson interval is [0.4902, 0.9433] (Newcombe 1998, method 3)
    lo, hi = wilson(8, 10)
    assert (lo, hi) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    # none of 96: 0 to the rule-of-three-like bound 3.84 / (96 + 3.84)
    lo, hi = wilson(0, 96)
    assert lo == 0.0 and hi == pytest.approx(3.8415 / (96 + 3.8415), rel=1e-3)
    assert wilson(96, 96)[1] == 1.0
    # no trials: every fraction possible (the campaign summary and the risk table once disagreed: nan vs [0, 1])
    assert wilson(0, 0) == (0.0, 1.0)
    # the confidence is a parameter: 99% is wider than 95%
    (lo95, hi95), (lo99, hi99) = wilson(8, 10), wilson(8, 10, confidence=0.99)
    assert lo99 < lo95 and hi99 > hi95
