"""The errors fkhw raises for a user to act on, under one base.

Everything a user can fix (a file, an option, a model, a path) is an
:class:`InputError`; a tool that failed underneath (Verilator, Yosys, a
compiler, a simulator) is a :class:`ToolFailure`. Both are
:class:`FkhwError`, which is all the CLI catches to print one line; any
other exception is a bug and keeps its traceback. Each package defines its
own subclasses (``SiteError``, ``CampaignError``, ...) beside the code that
raises them, so a message is written where the fault is known.
"""

from __future__ import annotations


class FkhwError(Exception):
    """Base of every error fkhw raises for its user; its message is one line
    that names the file, entry, option or layer at fault."""


class InputError(FkhwError, ValueError):
    """Input that cannot be used: a file, an entry in it, an option, a model
    or a path. A ValueError too, for callers that catch those."""


class ToolFailure(FkhwError, RuntimeError):
    """A tool fkhw drives failed or stalled (build, simulation, synthesis)."""


class UserError(InputError):
    """Options of one command that cannot go together."""
