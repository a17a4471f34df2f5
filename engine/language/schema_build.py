"""The pathway JSON Schema (Draft 2020-12), generated from the model and tidied for editors and for messages.

Every fixed-field object keeps ``additionalProperties: false``; every map (``roles``, ``events``, ...) names its
keys with ``propertyNames`` and its values with ``additionalProperties``, so no key goes unchecked; id, name and
event patterns carry an ``x-error`` text. The output is committed twice: ``schemas/pathway.schema.json`` for
editors (the YAML language server reads it through each pathway's modeline) and, beside
:mod:`engine.language.schema`, the copy validation loads. ``python -m engine.language.schema_build`` rewrites both;
a test fails until you do after changing :mod:`engine.language.model`.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.language.fields import EVENT_PATTERN, FACT_PATTERN, ID_PATTERN
from engine.language.model import PathwaySpec
from engine.language.schema import PACKAGED_SCHEMA, SCHEMA_ID

__all__ = ["EDITOR_SCHEMA", "EXAMPLE", "build_schema", "schema_text", "write_schema"]

#: The copy editors read (each shipped pathway's modeline points at it).
EDITOR_SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "pathway.schema.json"

_PATTERN_ERRORS = {
    ID_PATTERN: "is not a valid id (lowercase letters, digits, dashes; starting with a letter)",
    FACT_PATTERN: "is not a valid name (lowercase letters, digits, underscores; starting with a letter)",
    EVENT_PATTERN: "is not a valid event name (lowercase words joined by dots, e.g. detox.completed)",
}

#: A small complete pathway, shown by editors and checked by the tests.
EXAMPLE: dict[str, Any] = {
    "id": "detox-to-iop",
    "version": 1,
    "title": "Detox to intensive outpatient",
    "description": "Withdrawal management, then a warm handoff to an IOP program.",
    "asam_edition": 3,
    "roles": {
        "care-coordinator": {"title": "Care coordinator"},
        "supervisor": {"title": "Supervisor"},
        "iop-intake": {"title": "IOP intake nurse"},
    },
    "events": {
        "detox.completed": {"description": "The detox unit discharges the person."},
        "iop.completed": {"description": "The IOP program discharges the person."},
    },
    "stages": [
        {"id": "detox", "name": "Withdrawal management", "level": "3.7-WM", "expected_duration": {"min": "3d"}},
        {"id": "iop", "name": "Intensive outpatient", "level": "2.1"},
        {"id": "done", "name": "Discharged", "terminal": True},
    ],
    "transitions": [
        {
            "from": "detox",
            "to": "iop",
            "event": "detox.completed",
            "handoff": {
                "receiver": {"program": "Riverside IOP", "role": "iop-intake"},
                "mode": "warm",
                "introduced_by": "care-coordinator",
                "consent_purpose": "treatment",
                "steps": [
                    {
                        "kind": "accepted",
                        "within": "24h",
                        "escalate": [{"after": "0h", "to": "care-coordinator"}, {"after": "24h", "to": "supervisor"}],
                    }
                ],
            },
        },
        {"from": "iop", "to": "done", "event": "iop.completed"},
    ],
}


def build_schema() -> dict[str, Any]:
    """The pathway JSON Schema as a fresh dict: generated from the model, then tidied (see the module doc)."""
    return copy.deepcopy(_built())


@lru_cache(maxsize=1)
def _built() -> dict[str, Any]:
    generated = PathwaySpec.model_json_schema()
    _tidy(generated, is_property=False)
    generated.pop("title", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Carepath care pathway",
        **generated,
        "description": (
            "A care pathway for substance use disorder treatment transitions: stages of care, the events that "
            "move a person between them, handoffs to other providers with deadlines and escalation ladders, "
            "medication reconciliation, check-ins and referrals. Durations are written 30m, 36h, 3d, 2w or P3D."
        ),
        "examples": [EXAMPLE],
    }


def _tidy(node: Any, *, is_property: bool) -> None:
    """Make every key checked, drop generated property titles, attach ``x-error`` to known patterns."""
    if isinstance(node, list):
        for item in node:
            _tidy(item, is_property=False)
        return
    if not isinstance(node, dict):
        return
    if is_property:
        node.pop("title", None)
    patterns = node.pop("patternProperties", None)
    if patterns:
        ((pattern, values),) = patterns.items()
        node["propertyNames"] = {**node.get("propertyNames", {}), "pattern": pattern}
        node["additionalProperties"] = values
    if isinstance(node.get("pattern"), str) and node["pattern"] in _PATTERN_ERRORS:
        node.setdefault("x-error", _PATTERN_ERRORS[node["pattern"]])
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            for prop in value.values():
                _tidy(prop, is_property=True)
        elif key not in ("examples", "default", "enum", "const"):
            _tidy(value, is_property=False)


def schema_text() -> str:
    """The schema as ``carepath schema`` prints it and ``schemas/pathway.schema.json`` holds it."""
    return json.dumps(_built(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schema(path: Path = EDITOR_SCHEMA) -> Path:
    """Write :func:`schema_text` to ``path`` (the committed copy editors read)."""
    path.write_text(schema_text(), encoding="utf-8")
    return path


if __name__ == "__main__":
    for target in (EDITOR_SCHEMA, PACKAGED_SCHEMA):
        print(write_schema(target))
