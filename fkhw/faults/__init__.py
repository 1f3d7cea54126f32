"""Faults as data: the site space of parameter bits, the flip-flop space of the
generated encoder, fault sets and their kinds, and the software fault model
that defines what an upset does."""
