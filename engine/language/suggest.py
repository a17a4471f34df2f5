""" "Did you mean": the one place a misspelt name gets its suggestion (pathways, the schema, rosters)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["hint", "unknown"]


def hint(name: object, known: Iterable[str], cutoff: float = 0.6) -> str:
    """`` (did you mean 'residential'?)`` for the closest known name, or ``""`` when nothing is close."""
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=cutoff)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown(kind: str, name: str, known: Iterable[str]) -> str:
    """``unknown stage 'residental' (did you mean 'residential'?)``."""
    return f"unknown {kind} '{name}'{hint(name, known)}"
