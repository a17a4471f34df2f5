"""Views of a plan: the Mermaid graph (stages, moves, handoffs, escalations; sane text), the table and JSON."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from engine.language.durations import show_duration
from engine.language.model import PathwaySpec
from engine.plan.build import compile_plan
from engine.plan.mermaid import mermaid, node_id
from engine.plan.model import Plan
from engine.plan.text import plan_json, plan_table

LADDER = [{"after": "0h", "to": "care-coordinator"}, {"after": "24h", "to": "supervisor"}]

DOC: dict[str, Any] = {
    "id": "detox",
    "version": 1,
    "title": "Detox",
    "description": "Synthetic test pathway",
    "asam_edition": 3,
    "roles": {
        "care-coordinator": {"title": "Care coordinator"},
        "supervisor": {"title": "Supervisor"},
        "intake": {"title": "Intake"},
        "prescriber": {"title": "Prescriber"},
    },
    "facts": {"insurance": {"type": "enum", "values": ["medicaid", "self-pay"]}},
    "events": {
        "detox.completed": {
            "description": "Done",
            "payload": {"insurance": {"type": "enum", "values": ["medicaid", "self-pay"]}},
        },
        "episode.ended": {"description": "Ended"},
        "contact.made": {"description": "Contact"},
    },
    "stages": [
        {"id": "detox", "name": 'Detox "unit" <A&B>', "level": "3.7-WM"},
        {
            "id": "end",
            "name": "Residential",
            "level": "3.5",
            "check_ins": [{"every": "1w", "window": "2d", "owner": "care-coordinator", "done_on": "contact.made"}],
        },
        {"id": "done", "name": "Done | closed", "terminal": True},
    ],
    "transitions": [
        {
            "from": "detox",
            "to": "end",
            "event": "detox.completed",
            "when": {"fact": "insurance", "in": ["medicaid"]},
            "handoff": {
                "receiver": {"program": "Riverside #1", "role": "intake"},
                "mode": "warm",
                "introduced_by": "care-coordinator",
                "consent_purpose": "treatment",
                "steps": [{"kind": "accepted", "within": "24h", "escalate": LADDER}],
                "fallback": "done",
            },
            "reconcile": {"within": "24h", "critical_to": ["prescriber"]},
        },
        {"from": ["detox", "end"], "to": "done", "event": "episode.ended"},
    ],
}

NODE = re.compile(r'^  (\w+)(\[|\(\[|\{\{|\[/|\(\()"[^"]*"(\]|\]\)|\}\}|/\]|\)\))$')
EDGE = re.compile(r'^  (\w+) (-->|-\.->)(\|"[^"]*"\|)? (\w+)$')
CLASS = re.compile(r"^  (classDef \w+ [\w:#,-]+|class [\w,]+ \w+)$")


def diagram() -> str:
    return mermaid(compile_plan(PathwaySpec.model_validate(DOC)))


def test_every_line_is_a_header_node_edge_or_class() -> None:
    lines = diagram().splitlines()
    assert lines[0] == "flowchart LR"
    for line in lines[1:]:
        assert NODE.match(line) or EDGE.match(line) or CLASS.match(line), line


def test_edges_only_join_declared_nodes() -> None:
    lines = diagram().splitlines()
    nodes = {m[1] for line in lines if (m := NODE.match(line))}
    for line in lines:
        if m := EDGE.match(line):
            assert {m[1], m[4]} <= nodes, line


def test_stages_are_nodes_with_name_and_level_and_ids_avoid_keywords() -> None:
    text = diagram()
    assert node_id("end") == "s_end"
    assert '  s_end["Residential<br/>ASAM 3.5"]' in text
    assert '  s_done(["Done #124; closed"])' in text
    assert "class s_done terminal" in text


def test_designer_text_is_escaped() -> None:
    text = diagram()
    assert '  s_detox["Detox #quot;unit#quot; #lt;A&B#gt;<br/>ASAM 3.7-WM"]' in text
    assert "Riverside #35;1" in text


def test_transitions_show_event_guard_and_every_source() -> None:
    text = diagram()
    assert '  s_detox -->|"detox.completed [insurance in [medicaid]]"| t0' in text
    assert "  t0 --> s_end" in text
    assert '  s_detox -->|"episode.ended"| s_done' in text
    assert '  s_end -->|"episode.ended"| s_done' in text


def test_handoff_and_escalations_are_visible() -> None:
    text = diagram()
    assert (
        '  t0{{"handoff: Riverside #35;1 (warm)<br/>accepted by 24h: 24h→care-coordinator, 48h→supervisor'
        '<br/>reconcile medications by 24h"}}'
    ) in text
    assert '  t0 -.->|"declined"| s_done' in text
    assert "class t0 move" in text


def test_table_lists_transition_work_with_rungs_and_check_ins() -> None:
    table = plan_table(compile_plan(PathwaySpec.model_validate(DOC)))
    lines = table.splitlines()
    assert "t0: detox -> end on detox.completed [insurance in [medicaid]]" in lines
    accepted = next(i for i, line in enumerate(lines) if "referral accepted" in line)
    assert lines[accepted].split()[:2] == ["24h", "handoff-step"]
    assert lines[accepted + 1].split() == ["24h", "+0h", "->", "care-coordinator"]
    assert lines[accepted + 2].split() == ["48h", "+24h", "->", "supervisor"]
    assert "t1: detox, end -> done on episode.ended" in lines
    weekly = next(line for line in lines if "contact.made" in line)
    assert weekly.split() == [
        "0h",
        "7d",
        "48h",
        "until",
        "left",
        "care-coordinator",
        "contact.made",
        "+0h",
        "->",
        "care-coordinator",
    ]


def test_json_uses_document_keys_for_guards_and_reads_back() -> None:
    plan = compile_plan(PathwaySpec.model_validate(DOC))
    text = plan_json(plan)
    assert '"in": [' in text and '"in_"' not in text
    assert Plan.model_validate(json.loads(text)) == plan


def test_show_duration() -> None:
    assert [show_duration(timedelta(hours=h)) for h in (0, 12, 24, 48, 72, 84, 24 * 14)] == [
        "0h",
        "12h",
        "24h",
        "48h",
        "3d",
        "84h",
        "14d",
    ]
    assert show_duration(timedelta(minutes=90)) == "90m"
