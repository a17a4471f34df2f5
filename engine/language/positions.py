"""Where things are in a YAML file: the map from document paths to 1-based (line, column) positions.

Kept apart from the values (the Dagster shape): :mod:`engine.language.yaml_builder` fills a :class:`SourceMap` as it
reads, and later stages (schema, model, meaning, a roster's checks) look a document path up in it when they report
a problem, a missing key at its parent, an unexpected key at the key itself (:class:`KeyFinding`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import Finding

__all__ = ["KeyFinding", "Path", "Position", "SourceMap", "SourceProblem", "split_lines"]

Path = tuple[str | int, ...]
Position = tuple[int, int]

_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def split_lines(text: str) -> list[str]:
    """The lines of ``text`` as YAML (and so the parser's marks) counts them: CRLF, CR, LF, NEL, LS, PS."""
    return _LINE_BREAK.split(text)


@dataclass(frozen=True, order=True)
class KeyFinding(Finding):
    """A :class:`~engine.errors.Finding` about a mapping *key* (an unexpected or badly named key).

    The loader places it with :meth:`SourceMap.locate_key`, so the diagnostic points at the key itself rather
    than at its value. Sort :class:`~engine.errors.Diagnostic` objects, not findings of mixed classes.
    """


@dataclass(frozen=True)
class SourceProblem:
    """A YAML-level problem at a known position (1-based); ``path`` is where in the document, if known."""

    line: int
    col: int
    message: str
    path: Path = ()


class SourceMap:
    """Where each value (and each mapping key) of a document starts in its file, by document path."""

    def __init__(self) -> None:
        self._values: dict[Path, Position] = {}
        self._keys: dict[Path, Position] = {}

    def add(self, path: Path, position: Position, key: Position | None = None) -> None:
        """Record the 1-based start of the value at ``path`` (and of its key, inside a mapping); the first wins."""
        self._values.setdefault(path, position)
        if key is not None:
            self._keys.setdefault(path, key)

    def place(self, path: Path, position: Position, key: Position | None = None) -> None:
        """Record where the value at ``path`` (and its key) starts, replacing what was recorded."""
        self._values[path] = position
        if key is not None:
            self._keys[path] = key

    def locate(self, path: Path) -> Position:
        """1-based (line, col) of the value at ``path``, or of its nearest existing ancestor; (1, 1) if none."""
        for end in range(len(path), -1, -1):
            found = self._values.get(tuple(path[:end]))
            if found is not None:
                return found
        return (1, 1)

    def locate_key(self, path: Path) -> Position:
        """1-based (line, col) of the key of the mapping entry at ``path``; falls back to :meth:`locate`."""
        return self._keys.get(tuple(path)) or self.locate(path)

    def __len__(self) -> int:
        return len(self._values)
