"""Subcommands of the ``fkhw`` CLI, one module each."""
