"""The worklist's rules, pure: which stays and events open a risk window, and the order of the rows. Stages come
from pathways written for these tests (their ASAM levels and names, as a coordinator's pathway would say them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.app.triage import RISK_WINDOW, Stay, Urgency, is_return_to_use, rank_key, risk_window
from engine.language.loader import load_pathway_text
from engine.plan.build import compile_plan

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)

PATHWAY = """
id: triage-test
version: 1
title: Every kind of stay
description: Written for the triage tests.
asam_edition: 3
roles: { coordinator: { title: Coordinator } }
events:
  stage.left: { description: Next stage. }
  relapse.reported: { description: A return to use is reported. }
stages:
  - { id: jail, name: County jail }
  - { id: detox, name: Withdrawal management, level: 3.7-WM }
  - { id: residential, name: Residential, level: "3.5" }
  - { id: inpatient, name: Medically managed inpatient, level: "4" }
  - { id: iop, name: Intensive outpatient, level: "2.1" }
  - { id: outpatient, name: Outpatient, level: "1" }
  - { id: ambulatory-wm, name: Ambulatory withdrawal management, level: 2-WM }
  - { id: done, name: Done, terminal: true }
transitions:
  - { from: jail, to: detox, event: stage.left }
  - { from: detox, to: residential, event: stage.left }
  - { from: residential, to: inpatient, event: stage.left }
  - { from: inpatient, to: iop, event: stage.left }
  - { from: iop, to: outpatient, event: stage.left }
  - { from: outpatient, to: ambulatory-wm, event: stage.left }
  - { from: ambulatory-wm, to: done, event: stage.left }
"""

_LOADED = load_pathway_text(PATHWAY, "triage-test.yaml")
assert _LOADED.spec is not None, _LOADED.diagnostics
_PLAN = compile_plan(_LOADED.spec)


def stay(stage: str, left: timedelta | None) -> Stay:
    s = _PLAN.stages[stage]
    return Stay(s.id, s.name, s.level, NOW - left if left is not None else None)


@pytest.mark.parametrize(
    ("stage", "window"),
    [
        ("jail", True),  # released from custody
        ("detox", True),  # withdrawal management, 3.7-WM
        ("ambulatory-wm", True),  # any -WM level
        ("residential", True),
        ("inpatient", True),
        ("iop", False),  # outpatient levels lower no one's tolerance
        ("outpatient", False),
    ],
)
def test_leaving_custody_withdrawal_management_or_residential_care_opens_a_window(stage: str, window: bool) -> None:
    risk = risk_window([stay(stage, timedelta(days=3))], [], NOW)
    assert (risk is not None) is window
    if risk is not None:
        assert risk.until == NOW - timedelta(days=3) + RISK_WINDOW


def test_the_window_lasts_fourteen_days_and_not_while_still_there() -> None:
    assert risk_window([stay("jail", timedelta(days=13, hours=23))], [], NOW) is not None
    assert risk_window([stay("jail", timedelta(days=14))], [], NOW) is None
    assert risk_window([stay("jail", None)], [], NOW) is None  # still in custody


def test_a_return_to_use_opens_a_window_and_the_latest_cause_wins() -> None:
    events = [("relapse.reported", NOW - timedelta(days=1)), ("contact.made", NOW)]
    risk = risk_window([stay("jail", timedelta(days=5))], events, NOW)
    assert risk is not None and risk.reason == "return to use reported (relapse.reported)"
    assert is_return_to_use("use.return-to-use") and not is_return_to_use("relapse-prevention")
    assert risk_window([], [("relapse.reported", NOW - timedelta(days=20))], NOW) is None


def urgency(critical: bool = False, risk: bool = False, overdue: int | None = None, esc: int | None = None) -> Urgency:
    window = risk_window([stay("jail", timedelta(days=1))], [], NOW) if risk else None
    return Urgency(
        critical=critical,
        risk=window,
        oldest_overdue=NOW - timedelta(hours=overdue) if overdue is not None else None,
        oldest_escalation=NOW - timedelta(hours=esc) if esc is not None else None,
    )


def test_rows_rank_critical_then_overdue_in_a_window_then_overdue_then_the_rest_oldest_first() -> None:
    rows = {
        "only-an-escalation": urgency(esc=100),
        "overdue-long": urgency(overdue=50),
        "overdue-short": urgency(overdue=2),
        "risk-short": urgency(risk=True, overdue=1),
        "risk-long": urgency(risk=True, overdue=10),
        "critical-new": urgency(critical=True, esc=1),
        "critical-old": urgency(critical=True, overdue=3, esc=5),
    }
    ranked = sorted(rows, key=lambda name: rank_key(rows[name], name))
    assert ranked == [
        "critical-old",
        "critical-new",
        "risk-long",
        "risk-short",
        "overdue-long",
        "overdue-short",
        "only-an-escalation",
    ]
