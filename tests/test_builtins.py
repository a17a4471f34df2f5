"""One table per concept: the handoff step kinds and the built-in events are written once, in
:mod:`engine.language.builtins`, and every other place is derived from them (the model's type and the JSON Schema,
the plan's titles, the lifecycle's met steps, the CLI help, the README). These tests fail if a second copy appears.
"""

from __future__ import annotations

import ast
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest

from engine.cli.entry import _parser
from engine.episode.domain.effects import StepMet
from engine.episode.domain.handoff import MOVES, HandoffState, move
from engine.episode.domain.handoff_terms import ACTIONS
from engine.language.builtins import (
    AUTHORIZATION_EVENTS,
    BUILTIN_EVENTS,
    HANDOFF_STEPS,
    STEP_KINDS,
    BuiltinField,
)
from engine.language.model import HandoffStepSpec, PathwaySpec
from engine.language.schema import PACKAGED_SCHEMA
from engine.plan.build import compile_plan

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BEGIN, END = "<!-- built-in events: begin -->", "<!-- built-in events: end -->"


# -- the step kinds ---------------------------------------------------------------------------------------------


def test_the_model_and_the_schema_take_their_step_kinds_from_the_table() -> None:
    assert get_args(HandoffStepSpec.model_fields["kind"].annotation) == STEP_KINDS
    schema = json.loads(PACKAGED_SCHEMA.read_text(encoding="utf-8"))
    kind = schema["$defs"]["HandoffStepSpec"]["properties"]["kind"]
    assert kind["enum"] == list(STEP_KINDS)
    assert kind["description"] == f"Which milestone: {', '.join(STEP_KINDS)}."


def test_the_plan_titles_each_step_and_waits_for_its_event_from_the_table() -> None:
    spec = PathwaySpec.model_validate(
        {
            "id": "steps",
            "version": 1,
            "title": "Steps",
            "description": "Every step kind once",
            "asam_edition": 3,
            "roles": {"intake": {"title": "Intake"}},
            "events": {"moved.on": {"description": "Moved"}},
            "stages": [{"id": "a", "name": "A"}, {"id": "b", "name": "B", "terminal": True}],
            "transitions": [
                {
                    "from": "a",
                    "to": "b",
                    "event": "moved.on",
                    "handoff": {
                        "receiver": {"program": "Main Street Clinic", "role": "intake"},
                        "mode": "standard",
                        "consent_purpose": "treatment",
                        "steps": [{"kind": kind, "within": f"{n + 1}d"} for n, kind in enumerate(STEP_KINDS)],
                    },
                }
            ],
        }
    )
    steps = [w for w in compile_plan(spec).transitions[0].work if w.kind == "handoff-step"]
    assert [(w.title, w.done_on) for w in steps] == [
        (f"Main Street Clinic: {step.title}", step.event) for step in HANDOFF_STEPS
    ]


@pytest.mark.parametrize("step", HANDOFF_STEPS, ids=lambda step: step.kind)
def test_the_receivers_move_meets_the_step_the_table_names(step: Any) -> None:
    assert step.move in ACTIONS
    row = next(m for m in MOVES if m.action == step.move and "receiver" in m.parties)
    status, business = row.sources[0]
    state = HandoffState(
        id="h-1", status=status, business_status=business, consent_id="cn-1", opened_at=T0, updated_at=T0
    )
    _, effects = move(state, step.move, "receiver", T0, appointment_at=T0 + timedelta(days=1))
    assert StepMet(step.kind) in effects


def test_every_step_is_a_built_in_event() -> None:
    assert {step.event for step in HANDOFF_STEPS} <= set(BUILTIN_EVENTS)


def _sources() -> list[Path]:
    own = ROOT / "engine" / "language" / "builtins.py"
    return [p for p in sorted([*(ROOT / "engine").rglob("*.py"), *(ROOT / "flows").rglob("*.py")]) if p != own]


def test_no_other_module_writes_a_table_of_step_kinds() -> None:
    """A list, set, tuple or dict literal naming two step kinds, two step events or two step titles is a copy."""
    words = {
        "kinds": set(STEP_KINDS),
        "events": {step.event for step in HANDOFF_STEPS},
        "titles": {step.title for step in HANDOFF_STEPS},
    }
    copies = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
            if not isinstance(node, ast.Dict | ast.List | ast.Set | ast.Tuple) or items is None:
                continue
            found = {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}
            copies += [(path.name, node.lineno, what) for what, known in words.items() if len(found & known) > 1]
    assert copies == [], "derive these from engine.language.builtins.HANDOFF_STEPS"


# -- the CLI ------------------------------------------------------------------------------------------------------


def _help(command: str) -> tuple[str, dict[str, Any]]:
    sub = next(a for a in _parser()._actions if a.dest == "command")
    parser = sub.choices[command]  # type: ignore[index]
    return parser.description or "", {a.dest: a for a in parser._actions}


def test_the_cli_help_names_the_moves_and_events_from_the_tables() -> None:
    summary, arguments = _help("handoff")
    assert all(step.move in summary for step in HANDOFF_STEPS)
    assert arguments["action"].help.startswith(f"{', '.join(ACTIONS[:-1])} or {ACTIONS[-1]} ")
    _, arguments = _help("auth")
    assert arguments["action"].choices == tuple(AUTHORIZATION_EVENTS.values())
    _, arguments = _help("event")
    assert HANDOFF_STEPS[0].event in arguments["event"].help


# -- the README ---------------------------------------------------------------------------------------------------


def _field(name: str, field: BuiltinField) -> str:
    notes = [n for n in ("required" if field.required else "", "a list" if field.type == "list" else "") if n]
    return f"`{name}`" + (f" ({', '.join(notes)})" if notes else "")


def built_in_events_table() -> str:
    """The README's list of built-in events, rendered from :data:`BUILTIN_EVENTS`."""
    rows = [
        f"| `{name}` | {', '.join(_field(f, b) for f, b in fields.items()) or '(none)'} |"
        for name, fields in BUILTIN_EVENTS.items()
    ]
    return "\n".join([BEGIN, "| built-in event | payload fields |", "|---|---|", *rows, END])


def test_the_readme_lists_the_built_in_events_of_the_table() -> None:
    text = README.read_text(encoding="utf-8")
    block = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert block == built_in_events_table(), f"replace the README's block with:\n{built_in_events_table()}"
    assert text.count(BEGIN) == 1


def test_the_readme_names_the_step_kinds_of_the_table_and_the_move_that_meets_each() -> None:
    text = README.read_text(encoding="utf-8")
    reference = re.search(r"^\| `handoff` \|.*`steps` \(([^)]*)\)", text, re.M)
    assert reference is not None
    assert re.findall(r"`([^`]+)`", reference.group(1)) == list(STEP_KINDS)
    for step in HANDOFF_STEPS:
        row = re.search(rf"^\| `{re.escape(step.move)}`.*$", text, re.M)
        assert row is not None and f"step `{step.kind}` met" in row.group(0), step
