"""What every Carepath process does first and last: telemetry off before Prefect is imported, and one line for any
error (never a traceback unless asked, never SQL), Ctrl-C and SIGTERM stopping quietly.

Entry points (the ``carepath`` command, ``python -m flows.serve``) call :func:`run_entry_point`; it is the only
place that sets process environment defaults, before anything reads them.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable

from engine.errors import CarepathError, one_line

__all__ = ["PROCESS_DEFAULTS", "answer_interrupts", "configure_process", "describe_unexpected", "run_entry_point"]

#: Set for every process Carepath starts unless already set: Prefect must not phone home (the machine may be
#: offline, and telemetry is not ours to send), and its console chatter is for operators, not coordinators.
#: Every flow run sends a heartbeat each minute: a run whose process died is crashed after three missed ones
#: (:func:`engine.orchestration.prefect_api.ensure_zombie_automation`); every process must agree on the interval.
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


def answer_interrupts() -> None:
    """Have SIGINT stop this process even if it was started with SIGINT ignored. A shell hands a command it starts
    in the background (``nohup carepath up &``, a CI runner's script) SIGINT ignored, and children inherit that:
    ``up`` then asked its serving processes to stop by SIGINT in vain and killed them after the grace, runs in
    flight and all. Only for processes whose stop signal is SIGINT by design (a serving process); from the main
    thread."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
        print(f"error: {_one_line_message(exc)}", file=sys.stderr)
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


def _one_line_message(exc: CarepathError) -> str:
    """An error's message on one line, whatever it quotes (a pathway's diagnostics stay one per line)."""
    from engine.errors import PathwayError, printable

    text = str(exc)
    return text if isinstance(exc, PathwayError) else printable(text)


def describe_unexpected(exc: BaseException) -> str:
    """One line for an unexpected error, never SQL: a database error shows its driver's first line only."""
    original = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error (and the SQL)
    return one_line(str(original if original is not None else exc).split("[SQL:")[0], 200)


def _terminate(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
