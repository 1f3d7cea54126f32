"""The ``fkhw`` command: one subcommand per stage of the flow.

Each subcommand lives in ``fkhw/commands/<name>.py`` and provides ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Errors a user can fix
(bad files, options, models, paths, tools) are printed as one line and exit
with 2, the parser's own included; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import signal
import sys
import traceback

from fkhw import __version__
from fkhw.errors import FkhwError

COMMANDS = ["sites", "train", "campaign", "plot", "hessian", "rank", "hls", "rtl", "agree", "tmr", "rate", "protect", "replay",
            "sim"]


# what a user can act on: fkhw's own errors (one base, fkhw.errors) and the
# operating system's (a file that cannot be read or written names itself)
USER_ERRORS = (FkhwError, OSError)


def _one_line(e: BaseException) -> str:
    """The message of an expected failure as one line; an OSError names its file."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return " ".join(str(e).split()) or type(e).__name__


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (exit 2) like every other fkhw error."""

    def error(self, message):
        # "argument --seed: -1: out of range" -> "--seed -1: out of range"
        m = re.fullmatch(r"argument ([^:/\s]+)(?:/\S+)?: (.*)", message, flags=re.S)
        if m:
            message = f"{m.group(1)} {m.group(2)}"
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _available(names) -> dict:
    found = {}
    for name in names:
        try:
            found[name] = importlib.import_module(f"fkhw.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"fkhw.commands.{name}":
                raise
    return found


def _named_command(argv: list) -> str | None:
    """The command ``argv`` names (its first word that is not an option), if
    it is one of COMMANDS and no --help comes before it. (fkhw's own options
    take no value: one that did would need skipping here.)"""
    for a in argv:
        if a in ("-h", "--help"):
            return None
        if not a.startswith("-"):
            return a if a in COMMANDS else None
    return None


def build_parser(commands=COMMANDS) -> argparse.ArgumentParser:
    """fkhw's parser with a subcommand for each of ``commands``."""
    parser = _Parser(
        prog="fkhw",
        description="Radiation fault tolerance of quantized neural networks, from QKeras to RTL: "
        "fault-injection campaigns (software, hls4ml C-sim, Verilator RTL), Hessian rankings, "
        "and selective-TMR maps with hardened RTL.",
    )
    parser.add_argument("--version", action="version", version=f"fkhw {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for name, mod in _available(commands).items():
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # a command's module (and what it imports) loads only when that command runs: the whole list is for
    # `fkhw --help` and for a word that is no command
    named = _named_command(argv)
    try:
        args = build_parser([named] if named else COMMANDS).parse_args(argv)
    except SystemExit as e:
        if e.code in (0, None):  # --help, --version
            raise
        return int(e.code)  # the parser has printed its one-line error
    # only fkhw's own logger speaks at INFO; third-party chatter stays at WARNING
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("fkhw").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    # Dask configures its own loggers when imported; tell it before it is
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    logging.getLogger("distributed").setLevel(logging.ERROR)  # cluster start/stop chatter
    from fkhw.host.children import ChildProcesses

    with ChildProcesses() as children:  # the processes the command starts end with it, interrupted or not
        try:
            return int(args._run(args) or 0)
        except KeyboardInterrupt:
            return _interrupted(args.command, children.signum or signal.SIGINT)
        except USER_ERRORS as e:
            if children.signum is not None:  # what the interrupt left behind failed: the interrupt is the news
                return _interrupted(args.command, children.signum)
            if args.verbose:  # where an expected error came from, for a report
                traceback.print_exc()
            print(f"fkhw {args.command}: error: {_one_line(e)}", file=sys.stderr)
            return 2
        except Exception:
            if children.signum is not None:
                return _interrupted(args.command, children.signum)
            raise


def _interrupted(command: str, signum: int) -> int:
    """Ctrl-C (SIGINT) or SIGTERM: one line, and the shell's exit status 128 + signal."""
    print(f"fkhw {command}: {'interrupted' if signum == signal.SIGINT else 'terminated'}", file=sys.stderr)
    return 128 + int(signum)


if __name__ == "__main__":
    sys.exit(main())
