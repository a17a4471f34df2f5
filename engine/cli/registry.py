"""Where commands register: ``@command("enroll", "help", add_arguments)`` on a handler ``(args) -> exit code``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from engine.errors import CarepathError, quote

__all__ = ["COMMANDS", "Handler", "command", "whole_number"]

Handler = Callable[[argparse.Namespace], int]
Arguments = Callable[[argparse.ArgumentParser], None]
#: name -> (handler, add its arguments, help), in registration order (the order ``carepath --help`` lists them).
COMMANDS: dict[str, tuple[Handler, Arguments, str]] = {}


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    return None


def command(name: str, help_text: str, arguments: Arguments = _no_arguments) -> Callable[[Handler], Handler]:
    """Register ``carepath NAME``; ``arguments`` adds its options to the sub-parser."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = (handler, arguments, help_text)
        return handler

    return register


def whole_number(option: str, text: str, low: int, high: int) -> int:
    """An option's whole number in ``low..high``, or one line saying what is wrong with it."""
    try:
        value = int(text)
    except ValueError:
        raise CarepathError(f"{option}: {quote(text)} is not a whole number") from None
    if not low <= value <= high:
        raise CarepathError(f"{option}: {value} is outside {low}..{high:,}")
    return value
