"""The ``carepath`` command: the designer's, coordinator's and operator's surface.

Each command imports what it needs when it runs, so ``carepath validate`` never pays for Prefect. Errors are
printed as one line each (``--verbose`` adds the traceback); exit codes: 0 ok, 1 problems found or request
refused, 2 usage.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import NoReturn

from engine.cli import episodes, measures, pathways, safety, simulate, tokens  # noqa: F401  (each registers its commands on import)
from engine.cli.registry import COMMANDS
from engine.errors import one_line, printable
from engine.process import run_entry_point

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``carepath ack: error: ...``), a long value in it shortened."""

    def error(self, message: str) -> NoReturn:
        shortened = re.sub(r"'([^']{60})[^']+'", r"'\1…'", printable(message))
        self.exit(2, f"{self.prog}: error: {one_line(shortened)} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="carepath", description="Care pathways that follow every handoff through.")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (handler, add_arguments, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    return run_entry_point(lambda: args.handler(args), verbose=args.verbose)
