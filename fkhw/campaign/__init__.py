"""Campaigns: (fault set x level x inputs) -> a table keyed by site or fault,
with its folder format, recorded outputs, injection orders, executors (in
process or on Dask) and the agreement check between two campaigns."""
