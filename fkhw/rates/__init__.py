"""Failure rates: the Poisson model of upsets between scrubs and ``fkhw
rate``, which turns a campaign and a protection map into rates against flux
and scrub interval, replayed by Monte Carlo on the RTL."""
