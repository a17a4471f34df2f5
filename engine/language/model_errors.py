"""Pydantic errors -> findings at document paths, one per problem: of a union's members, only the one meant.

Shared by every input checked against a model after its schema (a pathway, a program file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from engine.errors import Finding
from engine.language.positions import KeyFinding

__all__ = ["model_findings"]

Path = tuple[str | int, ...]


@dataclass
class _Leaf:
    path: Path  # where the finding is placed
    kind: str  # "missing", "extra" or "other"
    message: str


@dataclass
class _Node:
    """A trie over pydantic ``loc``: document keys, and union member tags where a union was tried."""

    leaves: list[_Leaf] = field(default_factory=list)
    keys: dict[str | int, _Node] = field(default_factory=dict)
    tags: dict[str, _Node] = field(default_factory=dict)


def model_findings(exc: ValidationError, document: Any) -> list[Finding]:
    """One finding per problem, at document paths; of a union's members only the one the designer meant."""
    root = _Node()
    for error in exc.errors(include_url=False):
        path: tuple[str | int, ...] = ()
        node, current = root, document
        loc = tuple(error["loc"])
        for i, part in enumerate(loc):
            if _has(current, part):
                node, current, path = node.keys.setdefault(part, _Node()), current[part], (*path, part)
            elif i == len(loc) - 1 and error["type"] == "missing":
                break
            else:
                node = node.tags.setdefault(str(part), _Node())
        node.leaves.append(_leaf(error, path))
    findings: list[Finding] = []
    for leaf in _collapse(root, 0):
        finding = (KeyFinding if leaf.kind == "extra" else Finding)(leaf.path, leaf.message)
        if finding not in findings:
            findings.append(finding)
    return findings


def _has(value: Any, part: Any) -> bool:
    if isinstance(value, dict):
        return isinstance(part, str) and part in value
    return isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)


def _leaf(error: Any, path: Path) -> _Leaf:
    kind = error["type"]
    if kind == "missing":
        return _Leaf(path, "missing", f"missing required field '{error['loc'][-1]}'")
    if kind == "extra_forbidden":
        return _Leaf(path, "extra", f"unexpected field '{path[-1] if path else error['loc'][-1]}'")
    cause = (error.get("ctx") or {}).get("error")
    message = str(cause) if kind in ("value_error", "assertion_error") and cause is not None else error["msg"]
    return _Leaf(path, "other", _tidy(message))


def _collapse(node: _Node, depth: int) -> list[_Leaf]:
    out = list(node.leaves)
    for child in node.keys.values():
        out += _collapse(child, depth + 1)
    if node.tags:
        options = [_collapse(child, depth) for child in node.tags.values()]
        best = min(range(len(options)), key=lambda i: (_misfit(options[i], depth), len(options[i]), i))
        out += options[best]
    return out


def _misfit(leaves: list[_Leaf], depth: int) -> int:
    """Missing or unexpected fields of the union member itself: the signs it is not the one meant."""
    return sum(
        1
        for leaf in leaves
        if (leaf.kind == "missing" and len(leaf.path) == depth)
        or (leaf.kind == "extra" and len(leaf.path) == depth + 1)
    )


def _tidy(message: str) -> str:
    message = message.strip().rstrip(".")
    return message[:1].lower() + message[1:] if message[:2] != message[:2].upper() else message
