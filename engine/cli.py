"""The ``carepath`` command: the designer's, coordinator's and operator's surface.

Each command imports what it needs when it runs, so ``carepath validate`` never pays for Prefect. Errors are
printed as one line each (``--verbose`` adds the traceback); exit codes: 0 ok, 1 problems found or request
refused, 2 usage.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence

from engine.errors import CarepathError

__all__ = ["PROCESS_DEFAULTS", "configure_process", "describe_unexpected", "main", "run_entry_point"]

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


#: Set for every process Carepath starts unless already set: Prefect must not phone home (the machine may be
#: offline, and telemetry is not ours to send), and its console chatter is for operators, not coordinators.
#: Every flow run sends a heartbeat each minute: a run whose process died is crashed after three missed ones
#: (:func:`engine.prefect_ops.ensure_zombie_automation`); every process must agree on the interval.
PROCESS_DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL": "CRITICAL",
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "60",
}


def configure_process() -> None:
    """An entry point's first step, before anything imports Prefect (it reads these once, at import)."""
    for key, value in PROCESS_DEFAULTS.items():
        os.environ.setdefault(key, value)


def run_entry_point(body: Callable[[], int], verbose: bool = False) -> int:
    """Run a command body: a Carepath error is one line on stderr (exit 1), anything else one line too (exit 2,
    the traceback only with ``--verbose``); Ctrl-C and SIGTERM stop quietly."""
    configure_process()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(body())
    except CarepathError as exc:
        if verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug or an outage: one line, the traceback only on request
        if verbose:
            traceback.print_exc()
        detail = describe_unexpected(exc)
        print(f"error: unexpected {type(exc).__name__}: {detail} (run with --verbose for details)", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)


def describe_unexpected(exc: BaseException) -> str:
    """One line for an unexpected error, never SQL: a database error shows its driver's first line only."""
    from engine.errors import one_line

    original = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error (and the SQL)
    return one_line(str(original if original is not None else exc).split("[SQL:")[0], 200)


def _terminate(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    return run_entry_point(lambda: args.handler(args), verbose=args.verbose)
