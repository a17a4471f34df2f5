"""Carepath's exceptions and diagnostics.

Exception tree (each says when it is raised)::

    CarepathError                 base of everything Carepath raises on purpose
    ├── InvalidInput              a value someone typed breaks a rule of :mod:`engine.app.inputs`; nothing was read
    │                             for it or changed
    ├── PathwayError              a pathway file failed a validation stage; carries every Diagnostic
    ├── PlanError                 a valid pathway cannot be planned with the given parameters
    ├── EpisodeError              a coordinator's request cannot be applied to an episode
    │   ├── UnknownEpisode        no episode with that id
    │   └── EventRejected         the event is not allowed now (stage, guard, payload); nothing changed
    ├── StoreError                the store was asked for something it does not do (a bug in the caller, or a
    │   │                         database other than SQLite and PostgreSQL); nothing was changed
    │   └── StoreBusy             the store stayed locked by other writers for the whole retry budget of a unit
    │                             of work (a burst on SQLite); nothing was changed, the request can be repeated
    ├── RosterError               a roster file cannot be used (:mod:`engine.notify.roster`); carries every
    │                             Diagnostic of its first failing stage
    ├── ModelError                a behaviour model for ``carepath simulate`` cannot be used
    │                             (:mod:`engine.simulate.model`); carries every Diagnostic found
    └── OrchestrationError        Prefect could not be reached or refused a call
        └── PartlyScheduled       some timers got their runs and some did not; carries those that did

A :class:`Finding` is a problem found by a pure check, addressed by its path in the document; the loader turns
it into a :class:`Diagnostic` by looking the path up in the source map (file, 1-based line and column).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CarepathError",
    "Diagnostic",
    "EpisodeError",
    "EventRejected",
    "Finding",
    "InvalidInput",
    "OrchestrationError",
    "PartlyScheduled",
    "PathwayError",
    "PlanError",
    "Severity",
    "StoreBusy",
    "StoreError",
    "UnknownEpisode",
    "format_path",
    "one_line",
    "printable",
    "quote",
]

Severity = Literal["error", "warning"]
PathPart = str | int


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (whitespace runs become one space), at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def quote(value: object, limit: int = 60) -> str:
    """``value`` for an error message: escaped (a newline cannot split the line) and at most ``limit`` characters."""
    text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 2] + "…'"


def format_path(path: tuple[PathPart, ...]) -> str:
    """``('stages', 2, 'expected_duration')`` -> ``$.stages[2].expected_duration``."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if _plain(part) else f"[{part!r}]")
    return out


def _plain(key: str) -> bool:
    return key.replace("_", "a").replace("-", "a").isalnum()


@dataclass(frozen=True, order=True)
class Finding:
    """A problem at ``path`` in a pathway document, before it is placed in a file."""

    path: tuple[PathPart, ...]
    message: str
    severity: Severity = "error"


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One reportable problem: ``file:line:col: severity: $.path: message`` (1-based line and column)."""

    file: str
    line: int
    col: int
    json_path: str
    message: str
    severity: Severity = field(default="error")

    def __str__(self) -> str:
        where = f"{_shown_file(self.file)}:{self.line}:{self.col}"
        return f"{where}: {self.severity}: {self.json_path}: {printable(self.message)}"


def printable(text: str) -> str:
    """``text`` with every unprintable character escaped (``\\n``, ``\\x00``): what it says stays on one line."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _shown_file(name: str) -> str:
    """A file name as diagnostics show it: as given, unless unprintable or absurdly long (then quoted, shortened)."""
    return name if name.isprintable() and len(name) <= 200 else quote(name, 100)


class CarepathError(Exception):
    """Base of every error Carepath raises on purpose; the CLI prints these without a traceback."""


class InvalidInput(CarepathError):
    """A value someone typed breaks an input rule: ``field: 'value' rule`` on one line, the value escaped and
    shortened (``person id: 'P-1\\nX' contains '\\n', ...``). Raised before anything is stored or Prefect is asked."""

    def __init__(self, field: str, rule: str, value: object = None) -> None:
        self.field, self.rule = field, rule
        shown = f"{quote(value)} " if value is not None else ""
        super().__init__(f"{field}: {shown}{rule}")


class PathwayError(CarepathError):
    """A pathway file failed validation; ``diagnostics`` holds every problem found, sorted."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class PlanError(CarepathError):
    """A pathway cannot be planned, e.g. a parameter value outside its declared range."""


class EpisodeError(CarepathError):
    """A request about an episode cannot be applied."""


class NotFound(EpisodeError):
    """No such object, or none the asker may see: the two are one answer, so a refusal never hints that it exists."""


class UnknownEpisode(NotFound):
    """No episode has the given id."""


class EventRejected(EpisodeError):
    """The event is not allowed now (wrong stage, failed guard, bad payload); the episode is unchanged.

    ``code`` is a short category (``not-expected``, ``id-reused`` ...): what Prefect may show of a refusal, since
    the message can quote what someone typed.
    """

    def __init__(self, message: str, *, code: str = "rejected") -> None:
        super().__init__(message)
        self.code = code


class Forbidden(CarepathError):
    """The asker's role may not do this at all (whatever the object): nothing was read or changed."""


class StoreError(CarepathError):
    """The store was asked for something it does not do (a caller's bug, or an unsupported database)."""


class StoreBusy(StoreError):
    """A unit of work could not get the store's write lock within its retry budget; it changed nothing.

    Raised instead of the driver's error so the coordinator reads one line, never SQL.
    """


class OrchestrationError(CarepathError):
    """Prefect could not be reached or refused a request."""


class PartlyScheduled(OrchestrationError):
    """Prefect made the runs of some timers of a batch and refused others (a busy SQLite server's 503s): the runs
    made are kept (``scheduled``: rung id -> run id), so only the others are left for the sweep."""

    def __init__(self, message: str, scheduled: dict[str, str]) -> None:
        super().__init__(message)
        self.scheduled = scheduled
