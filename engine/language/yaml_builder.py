"""PyYAML's event stream -> plain values, a :class:`~engine.language.positions.SourceMap` and problems.

Built with an explicit stack rather than ``yaml.compose``: libyaml's composer recurses on the C stack and crashes
the interpreter on deeply nested input, and building from events lets us count nodes as aliases expand, so a YAML
bomb is refused before it is expanded. Scalars resolve as YAML 1.1 ints, floats, booleans and nulls; everything
else, timestamps included, stays the string the designer wrote. Duplicate keys, non-text keys, unsupported tags
and merges of non-mappings are all collected; a syntax error or a limit stops the stream. :mod:`.source` checks
the text first and is the way in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from engine.language.positions import Path, Position, SourceMap, SourceProblem, split_lines

__all__ = ["Builder"]

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = Resolver()
_CONSTRUCTOR = SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{name}" for name in ("str", "int", "float", "bool", "null", "timestamp", "value")}
_MAP_TAGS = {None, "!", f"{_TAG}map"}
_SEQ_TAGS = {None, "!", f"{_TAG}seq"}
_MERGE = f"{_TAG}merge"
_MERGE_KEY = object()  # stands for the ``<<`` key while its mapping is open


class _Stop(Exception):
    """Parsing cannot go on (a limit was hit or the syntax is broken); the problem is already recorded."""


@lru_cache(maxsize=4096)
def _implicit_tag(raw: str) -> str | None:
    """The YAML 1.1 tag a plain scalar resolves to, or None for text (most scalars, decided on the first char)."""
    resolvers = Resolver.yaml_implicit_resolvers
    if raw and raw[0] not in resolvers and None not in resolvers:
        return None
    tag = _RESOLVER.resolve(yaml.ScalarNode, raw, (True, False))
    return None if tag == f"{_TAG}str" else tag


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _mark(mark: Any) -> Position:
    return (mark.line + 1, mark.column + 1)


@dataclass
class _Frame:
    """An open mapping or list while its events stream in."""

    kind: str  # "map", "seq" or "key" (a list or mapping used as a key; read, then refused)
    path: Path
    value: Any
    anchor: str | None
    start: Position
    size: int = 1
    key: Any = None
    key_raw: str = ""
    key_at: Position | None = None
    has_key: bool = False
    merges: list[tuple[Any, Position]] = field(default_factory=list)


class Builder:
    """Turns the event stream into plain values, a source map and problems, without recursion."""

    def __init__(self, text: str, *, max_nodes: int, max_depth: int) -> None:
        self.text = text
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.source_map = SourceMap()
        self.problems: list[SourceProblem] = []
        self.value: Any = None
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int, Position]] = {}
        self.open_anchors: set[str] = set()
        self.nodes = 0
        self.documents = 0
        self.has_root = False
        self.last_scalar: yaml.ScalarEvent | None = None

    def fail(self, position: Position, message: str, path: Path = ()) -> None:
        self.problems.append(SourceProblem(position[0], position[1], message, path))

    def stop(self, position: Position, message: str, path: Path = ()) -> _Stop:
        self.fail(position, message, path)
        return _Stop()

    def run(self) -> None:
        handlers: dict[type, Any] = {
            yaml.ScalarEvent: self.on_scalar,
            yaml.MappingStartEvent: self.on_start,
            yaml.SequenceStartEvent: self.on_start,
            yaml.MappingEndEvent: self.on_end,
            yaml.SequenceEndEvent: self.on_end,
            yaml.AliasEvent: self.on_alias,
            yaml.DocumentStartEvent: self.on_document,
        }
        try:
            for event in yaml.parse(self.text, Loader=_Loader):
                handler = handlers.get(type(event))
                if handler is not None:
                    handler(event)
        except _Stop:
            return
        except yaml.MarkedYAMLError as exc:
            self.syntax_error(exc)
            return
        except yaml.YAMLError as exc:  # a reader error without a mark
            self.fail((1, 1), f"not readable as YAML: {exc}")
            return
        except RecursionError:  # pragma: no cover - the explicit stack and depth limit should prevent it
            self.fail((1, 1), "nesting is too deep")
            return
        if not self.has_root and not self.problems:
            self.fail((1, 1), "the file is empty (nothing but blank lines or comments)")

    def inside(self, mark: Any) -> Position:
        """A parser mark as a 1-based position within the text (libyaml may point one line past the end)."""
        lines = split_lines(self.text)
        line, col = _mark(mark)
        if line > len(lines):
            return len(lines), len(lines[-1]) + 1
        return line, min(col, len(lines[line - 1]) + 1)

    def syntax_error(self, exc: yaml.MarkedYAMLError) -> None:
        mark = exc.problem_mark or exc.context_mark
        position = self.inside(mark) if mark is not None else (1, 1)
        lines = split_lines(self.text)
        at = lines[position[0] - 1][position[1] - 1 : position[1]]
        if at == "\t":
            self.fail(position, "tab character in indentation; YAML indents with spaces only")
            return
        message = exc.problem or exc.context or "invalid YAML"
        if "nesting depth" in message:
            # LibYAML (PyYAML >= 6.0.2) has its own depth limit, met while scanning ahead of our own count
            self.fail(position, f"nesting is deeper than {self.max_depth} levels")
            return
        last = self.last_scalar
        if last is not None and last.style in ("'", '"') and last.end_mark.line > last.start_mark.line:
            # An unclosed quote swallows the lines after it; the parser only notices further down.
            line, col = self.inside(last.start_mark)
            message += f" (the quoted value at line {line}, column {col} runs to here: is a closing quote missing?)"
        elif exc.context and exc.problem and exc.context_mark is not None:
            line, col = self.inside(exc.context_mark)
            message += f" ({exc.context} at line {line}, column {col})"
        self.fail(position, message)

    # -- events -----------------------------------------------------------------------------------------------

    def on_document(self, event: yaml.DocumentStartEvent) -> None:
        self.documents += 1
        if self.documents > 1:
            raise self.stop(_mark(event.start_mark), "a second YAML document ('---'); a pathway file holds one")

    def count(self, position: Position, size: int = 1) -> None:
        self.nodes += size
        if self.nodes > self.max_nodes:
            raise self.stop(
                position, f"document expands to more than {self.max_nodes} values (YAML aliases?); refusing it"
            )

    def child_path(self) -> Path:
        """Path of the value about to be completed, from the innermost open collection."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.kind == "seq":
            return (*top.path, len(top.value))
        if top.kind == "map" and top.has_key and isinstance(top.key, str):
            return (*top.path, top.key)
        return top.path

    def on_scalar(self, event: yaml.ScalarEvent) -> None:
        self.last_scalar = event
        mark = event.start_mark
        position = (mark.line + 1, mark.column + 1)
        self.nodes += 1
        if self.nodes > self.max_nodes:
            self.count(position, 0)
        raw = event.value
        if event.tag is None and event.implicit[0]:
            tag = _implicit_tag(raw)
            if tag is None:  # the common case: plain text
                self.emit(raw, position, event.anchor, 1, raw)
                return
            if tag == _MERGE and self.stack and self.stack[-1].kind == "map" and not self.stack[-1].has_key:
                self.emit(_MERGE_KEY, position, event.anchor, 1, raw)
                return
        elif event.tag is None or event.tag == "!":  # quoted, or the non-specific tag: text
            self.emit(raw, position, event.anchor, 1, raw)
            return
        else:
            tag = event.tag
        self.emit(self.scalar_value(tag, raw, position), position, event.anchor, 1, raw)

    def scalar_value(self, tag: str, raw: str, position: Position) -> Any:
        """A scalar of a known non-text tag (``int``, ``bool``...) as a Python value; timestamps stay text."""
        if tag not in _SCALAR_TAGS:
            self.fail(position, f"YAML tag {_tag_name(tag)} is not supported here", self.child_path())
            return raw
        node = yaml.ScalarNode(tag, raw)
        try:
            if tag == f"{_TAG}int":
                return _CONSTRUCTOR.construct_yaml_int(node)
            if tag == f"{_TAG}float":
                return _CONSTRUCTOR.construct_yaml_float(node)
            if tag == f"{_TAG}bool":
                return _CONSTRUCTOR.construct_yaml_bool(node)
            if tag == f"{_TAG}null":
                return None
        except (ValueError, KeyError, TypeError, OverflowError):
            kind = {"int": "a whole number", "float": "a number", "bool": "a boolean"}.get(tag.removeprefix(_TAG), "")
            self.fail(position, f"{_short(raw)} cannot be read as {kind}", self.child_path())
        return raw

    def on_start(self, event: yaml.MappingStartEvent | yaml.SequenceStartEvent) -> None:
        position = _mark(event.start_mark)
        self.count(position)
        if len(self.stack) >= self.max_depth:
            raise self.stop(position, f"nesting is deeper than {self.max_depth} levels")
        is_map = isinstance(event, yaml.MappingStartEvent)
        allowed = _MAP_TAGS if is_map else _SEQ_TAGS
        path = self.child_path()
        if event.tag not in allowed:
            self.fail(position, f"YAML tag {_tag_name(event.tag)} is not supported here", path)
        top = self.stack[-1] if self.stack else None
        as_key = top is not None and (top.kind == "key" or (top.kind == "map" and not top.has_key))
        kind = "key" if as_key else ("map" if is_map else "seq")
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.stack.append(_Frame(kind, path, {} if is_map else [], event.anchor, position))

    def on_end(self, event: yaml.Event | None = None) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
        if frame.kind == "map":
            self.apply_merges(frame)
        value = frame.value if frame.kind != "key" else _Unhashable("a list or mapping")
        self.emit(value, frame.start, frame.anchor, frame.size)

    def on_alias(self, event: yaml.AliasEvent) -> None:
        position = _mark(event.start_mark)
        if event.anchor in self.open_anchors:
            raise self.stop(position, f"alias *{event.anchor} refers to a value that contains it", self.child_path())
        if event.anchor not in self.anchors:
            raise self.stop(
                position, f"alias *{event.anchor} has no anchor &{event.anchor} before it", self.child_path()
            )
        value, size, _ = self.anchors[event.anchor]
        self.count(position, size)
        self.emit(value, position, None, size, raw=f"*{event.anchor}")

    # -- placing a completed value ------------------------------------------------------------------------------

    def emit(self, value: Any, position: Position, anchor: str | None, size: int, raw: str = "") -> None:
        if anchor is not None:
            self.anchors[anchor] = (value, size, position)
        if not self.stack:
            self.value = value
            self.has_root = True
            self.source_map.add((), position)
            return
        top = self.stack[-1]
        top.size += size
        kind = top.kind
        if kind == "seq":
            self.source_map.place((*top.path, len(top.value)), position)
            top.value.append(value)
            return
        if kind == "key":  # inside a list or mapping used as a key: read and dropped
            return
        if not top.has_key:
            top.key, top.key_raw, top.key_at, top.has_key = value, raw, position, True
            return
        top.has_key = False
        self.put(top, value, position)

    def put(self, frame: _Frame, value: Any, at: Position) -> None:
        key, key_at = frame.key, frame.key_at or at
        if key is _MERGE_KEY:
            frame.merges.append((value, at))
            return
        if not isinstance(key, str):
            self.fail(key_at, _key_problem(key, frame.key_raw), frame.path)
            return
        path = (*frame.path, key)
        if key in frame.value:  # merged keys are added only when the mapping ends, so this is a repeat
            first = self.source_map.locate_key(path)[0]
            self.fail(key_at, f"duplicate key '{key}' (first on line {first})", path)
            return
        frame.value[key] = value
        self.source_map.place(path, at, key_at)

    def apply_merges(self, frame: _Frame) -> None:
        """``<<: *base`` (or a list of them): keys written here win, then earlier merged mappings."""
        for merged, at in frame.merges:
            sources = merged if isinstance(merged, list) else [merged]
            for source in sources:
                if not isinstance(source, dict):
                    self.fail(at, "'<<' merges mappings only", frame.path)
                    continue
                for key, value in source.items():
                    if key not in frame.value:
                        frame.value[key] = value
                        self.source_map.add((*frame.path, key), at, at)


class _Unhashable:
    """Stands for a list or mapping used as a mapping key, so the problem can say what it was."""

    def __init__(self, what: str) -> None:
        self.what = what


def _key_problem(key: Any, raw: str) -> str:
    if isinstance(key, _Unhashable):
        return f"a mapping key must be text, not {key.what}"
    if key is None and not raw.strip():
        return "a mapping key is empty"
    kind = "a boolean" if isinstance(key, bool) else ("nothing (null)" if key is None else "a number")
    hint = " or use `event`" if raw.lower() == "on" else ""
    return f"key `{raw}` is read as {kind} by YAML; quote it{hint}"


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
