"""Analysis of campaigns: the Hessian of the training loss, bit-level
rankings and how well they find dangerous bits, where the remaining risk
sits, and the figures of all of these."""
