"""Sphinx configuration of the fkhw documentation (MyST Markdown pages).

Built by ``make docs`` in strict mode: a warning or a broken cross-reference
fails the build. Numbers about results, timings, area and rates are never
typed into a page: the ``fkhw_docs`` extension (``_ext/fkhw_docs.py``) reads
them from the JSON snapshots of a ``fkhw sim`` run under ``results/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the fkhw package of this checkout, for autodoc and the CLI reference

import fkhw  # noqa: E402

project = "fkhw"
author = "the fkhw authors"
copyright = "the fkhw authors, Apache-2.0"
release = version = fkhw.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "fkhw_docs",
]
myst_enable_extensions = ["colon_fence", "deflist", "substitution"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "results/**/*.md"]
root_doc = "index"

# the results snapshot the Results and Performance pages show (a folder of results/, made by
# `make docs-results MODEL=...` after `make sim`)
fkhw_results = "econt-bol"
myst_substitutions = {"results_model": fkhw_results}

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# references no page here can resolve: third-party types in signatures
nitpick_ignore_regex = [
    (r"py:.*", r"(np|numpy|os|pathlib|argparse|typing|collections\.abc)\..*"),
    (r"py:.*", r"(Path|PathLike|Iterable|Sequence|Union|Model|Campaign|TmrMap|Rtl|Rates|Ranking)"),
    (r"py:.*", r"(Agreement|ModelBundle|IntegerModel|Rule|Validation|CampaignOutputs)"),
    (r"py:.*", r"fkhw\.campaign\.outputs\.CampaignOutputs"),
    (r"py:.*", r"(optional|default|callable)"),
]
intersphinx_mapping = {}

html_theme = "furo"
html_title = f"fkhw {release}"
html_static_path = []
html_show_sourcelink = False
smartquotes = False  # "--out" stays two hyphens, as typed
