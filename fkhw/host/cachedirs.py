"""Where fkhw keeps what it can rebuild: one declared user cache, never the
source tree (an installed package has none to write into) and never ``--out``.

The root is ``$FKHW_CACHE``, else ``$XDG_CACHE_HOME/fkhw``, else
``~/.cache/fkhw``. Each kind of cache is a folder of its own below it, which
its own variable moves:

=============  ==========================  ======================================
kind           variable                    what
=============  ==========================  ======================================
(the root)     ``FKHW_CACHE``              extracted models (``off``: not cached)
``rtl_sim``    ``FKHW_RTL_BUILD``          Verilator builds of the testbench
``synth``      ``FKHW_SYNTH_CACHE``        Yosys area runs and their netlists
``netlist``    ``FKHW_NETLIST_CACHE``      Yosys netlists of whole designs
``ccache``     ``FKHW_CCACHE``             compiled C++ of the Verilator builds
                                           (ccache, by content)
=============  ==========================  ======================================

``FKHW_CACHE=off`` switches the model cache off only: a simulation cannot
run without its build, so the builds then go to the default root.
"""

from __future__ import annotations

import os
from pathlib import Path

OFF = "off"
KINDS = {"rtl_sim": "FKHW_RTL_BUILD", "synth": "FKHW_SYNTH_CACHE", "netlist": "FKHW_NETLIST_CACHE",
         "ccache": "FKHW_CCACHE"}


def default_root() -> Path:
    """The XDG user cache of fkhw (FKHW_CACHE not considered)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache") / "fkhw"


def cache_root() -> Path:
    """The root of every fkhw cache."""
    env = os.environ.get("FKHW_CACHE")
    return Path(env) if env and env != OFF else default_root()


def cache_dir(kind: str) -> Path:
    """The folder of one kind of cache (see the module docstring)."""
    env = os.environ.get(KINDS[kind])
    return Path(env) if env else cache_root() / kind
