"""YAML text -> plain Python values plus a separate source map (validation stage 1).

Values stay plain (``dict``/``list``/``str``/``int``/``float``/``bool``/``None``) so the JSON Schema and the
pydantic model see exactly what the designer wrote; positions live apart in a
:class:`~engine.language.positions.SourceMap`, looked up by document path when a later stage reports a problem
(the Dagster shape).

Whatever the input (binary junk, NUL bytes, an empty file, a bomb, a huge file), :func:`parse_yaml` returns
problems; it never raises. This module checks the text (size, encoding, characters YAML refuses) and hands it to
:mod:`engine.language.yaml_builder`, which reads PyYAML's event stream into values and positions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.language.positions import Position, SourceMap, SourceProblem, split_lines
from engine.language.yaml_builder import Builder

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "ParsedYaml", "parse_yaml"]

#: Largest file accepted; a care pathway is a few kilobytes.
MAX_BYTES = 5 * 1024 * 1024
#: Most values a document may hold once aliases are expanded (refuses "billion laughs").
MAX_NODES = 200_000
#: Deepest nesting of mappings and lists accepted.
MAX_DEPTH = 64


# Characters YAML 1.1 allows in a stream (tab, line breaks, printable Unicode); anything else is a clean error
# here rather than a reader error whose position counts bytes on one parser and characters on the other.
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class ParsedYaml:
    """The outcome of :func:`parse_yaml`: the plain value, where it came from, and any problems."""

    value: Any
    source_map: SourceMap
    problems: list[SourceProblem] = field(default_factory=list)
    text: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_yaml(
    source: str | bytes,
    *,
    max_bytes: int = MAX_BYTES,
    max_nodes: int = MAX_NODES,
    max_depth: int = MAX_DEPTH,
) -> ParsedYaml:
    """Parse one YAML document into plain values and a :class:`SourceMap`; every problem is returned, none raised.

    ``source`` may be bytes (decoded as UTF-8, a BOM allowed) or text. Problems that stop the parser (syntax,
    limits) end the stage; duplicate and non-text keys are all collected.
    """
    size = len(source)
    if isinstance(source, str) and size * 4 > max_bytes:
        size = len(source.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        return _failed(f"file is too large ({_megabytes(size)}); the limit is {_megabytes(max_bytes)}")
    if isinstance(source, bytes):
        try:
            text = source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line, col = _byte_position(source, exc.start)
            return _failed(f"file is not UTF-8 text (byte 0x{source[exc.start]:02x}); save it as UTF-8", line, col)
    else:
        text = source.removeprefix("\ufeff")
    bad = _NOT_PRINTABLE.search(text)
    if bad:
        line, col = _char_position(text, bad.start())
        char = bad.group()
        kind = "NUL byte" if char == "\0" else f"character U+{ord(char):04X}"
        parsed = _failed(f"{kind} is not allowed in YAML; is this a text file?", line, col)
        parsed.text = text
        return parsed
    builder = Builder(text, max_nodes=max_nodes, max_depth=max_depth)
    builder.run()
    return ParsedYaml(builder.value, builder.source_map, builder.problems, text)


def _failed(message: str, line: int = 1, col: int = 1) -> ParsedYaml:
    return ParsedYaml(None, SourceMap(), [SourceProblem(line, col, message)])


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _byte_position(data: bytes, offset: int) -> Position:
    return _char_position(data[:offset].decode("utf-8", "replace"), None)


def _char_position(text: str, offset: int | None) -> Position:
    before = split_lines(text if offset is None else text[:offset])
    return len(before), len(before[-1]) + 1
