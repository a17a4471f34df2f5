"""The ``carepath`` command: the designer's, coordinator's and operator's surface.

Each command imports what it needs when it runs, so ``carepath validate`` never pays for Prefect. Errors are
printed as one line each (``--verbose`` adds the traceback); exit codes: 0 ok, 1 problems found or request
refused, 2 usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence

from engine.errors import CarepathError

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]
_COMMAND_MODULES = ("engine.cli_pathways", "engine.cli_episodes", "engine.cli_safety")
_COMMANDS: dict[str, tuple[Handler, Callable[[argparse.ArgumentParser], None], str]] = {}


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    return None


def command(
    name: str, help_text: str, arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
) -> Callable[[Handler], Handler]:
    """Register ``carepath NAME``; ``arguments`` adds its options to the sub-parser."""

    def register(handler: Handler) -> Handler:
        _COMMANDS[name] = (handler, arguments, help_text)
        return handler

    return register


def _parser() -> argparse.ArgumentParser:
    for module in _COMMAND_MODULES:  # each registers its commands on import
        importlib.import_module(module)

    parser = argparse.ArgumentParser(prog="carepath", description="Care pathways that follow every handoff through.")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (handler, add_arguments, help_text) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except CarepathError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug or an outage: one line, the traceback only on request
        if args.verbose:
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with --verbose for details)", file=sys.stderr)
        return 2
