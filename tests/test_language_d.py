"""Issue #9 part D: calendar months (``1mo``, ISO ``P1M``). The pure month arithmetic at month ends and in leap
years, parsing and its refusals, comparisons through a month's bounds (28 to 31 days), the plan's spelling and
JSON, and a monthly check-in series on a manual clock from January 31."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.clock import ManualClock
from engine.episode.rules import Event, apply_event, enroll
from engine.errors import Finding
from engine.language.durations import format_duration, parse_duration, parse_span, said
from engine.language.model import PathwaySpec
from engine.language.semantics import check
from engine.language.spans import MonthSpan, add, bounds, chain, exceeds, months, written
from engine.plan.build import compile_plan
from engine.plan.model import Plan
from engine.plan.text import plan_table

MINIMAL = Path(__file__).parent / "data" / "valid" / "minimal.yaml"


def at(y: int, m: int, d: int, h: int = 9) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (at(2026, 1, 31), 1, at(2026, 2, 28)),
        (at(2028, 1, 31), 1, at(2028, 2, 29)),  # leap year
        (at(2026, 3, 31), 1, at(2026, 4, 30)),
        (at(2026, 1, 31), 2, at(2026, 3, 31)),  # counted from the start, not from Feb 28
        (at(2026, 12, 15), 1, at(2027, 1, 15)),
        (at(2026, 11, 30), 3, at(2027, 2, 28)),
        (at(2026, 3, 31), -1, at(2026, 2, 28)),
        (at(2024, 2, 29), 12, at(2025, 2, 28)),
    ],
)
def test_add_keeps_the_day_clamped_to_the_month_end(start: datetime, n: int, expected: datetime) -> None:
    assert add(start, MonthSpan(n)) == expected


def test_add_keeps_the_utc_time_of_day_and_then_the_fixed_part() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 1, 31, 23, 30, tzinfo=ZoneInfo("America/New_York"))  # Feb 1, 04:30 UTC
    assert add(local, MonthSpan(1)) == datetime(2026, 3, 1, 4, 30, tzinfo=UTC)
    assert add(at(2026, 1, 31), MonthSpan(1, timedelta(days=2))) == at(2026, 3, 2)
    assert add(at(2026, 1, 31), timedelta(days=1)) == at(2026, 2, 1)
    # earlier spans applied in turn: 10 days then a month is not a month then 10 days
    assert chain(at(2026, 1, 21), [timedelta(days=10), MonthSpan(1), None]) == at(2026, 2, 28)


def test_span_arithmetic_stays_plain_without_months() -> None:
    one = MonthSpan(1)
    assert one + one == MonthSpan(2)
    assert one - one == timedelta(0) and isinstance(one - one, timedelta)
    assert 0 * one == timedelta(0) and 3 * one == MonthSpan(3)
    assert (one + timedelta(days=2)) - one == timedelta(days=2)
    assert months(0, timedelta(hours=1)) == timedelta(hours=1)
    assert bounds(one) == (timedelta(days=28), timedelta(days=31))
    assert exceeds(MonthSpan(2), one) == "always"
    assert exceeds(one, timedelta(days=30)) == "sometimes"
    assert exceeds(timedelta(days=27), one) == "never"
    assert exceeds(one, one, or_equal=True) == "always"
    assert sorted([timedelta(days=31), one, timedelta(days=30)]) == [timedelta(days=30), one, timedelta(days=31)]


def test_parse_months() -> None:
    assert parse_span("1mo") == MonthSpan(1) == parse_span("P1M")
    assert parse_span("0mo") == timedelta(0)
    assert parse_span("2w") == timedelta(weeks=2) and said(written(parse_span("2w"), "2w")) == "2w"
    assert format_duration(MonthSpan(1)) == "1mo"
    assert format_duration(MonthSpan(1, timedelta(days=2))) == "1mo+2d"
    for bad in ("1.5mo", "P1M2D", "P1MT2H"):
        with pytest.raises(ValueError, match="months are whole and alone"):
            parse_span(bad)
    with pytest.raises(ValueError, match="longer than ten years"):
        parse_span("121mo")
    with pytest.raises(ValueError, match="calendar months are not accepted here"):
        parse_duration("1mo")  # an episode's parameter values are fixed durations


def doc() -> dict[str, Any]:
    d = yaml.safe_load(MINIMAL.read_text())
    d["events"]["contact.made"] = {"description": "A contact is recorded."}
    d["stages"][0]["expected_duration"] = {"min": "3d", "max": "2mo"}
    d["stages"][0]["check_ins"] = [
        {"owner": "care-coordinator", "every": "1mo", "window": "3d", "for": "3mo", "done_on": "contact.made"},
        {"owner": "care-coordinator", "every": "2w", "window": "3d", "done_on": "contact.made"},
    ]
    return copy.deepcopy(d)


def findings(d: dict[str, Any]) -> list[Finding]:
    return check(PathwaySpec.model_validate(d))


def test_a_monthly_pathway_is_valid_and_planned_in_months() -> None:
    assert [f for f in findings(doc()) if f.severity == "error"] == []
    plan = compile_plan(PathwaySpec.model_validate(doc()))
    series = plan.stages["detox"].check_ins
    assert series[0].every == MonthSpan(1) and series[1].starts == MonthSpan(3)
    table = plan_table(plan)
    assert "1mo" in table and "3mo" in table
    data = json.loads(json.dumps(plan.model_dump(mode="json")))
    assert data["stages"]["detox"]["check_ins"][0]["every"] == "1mo"
    assert Plan.model_validate(data) == plan


def test_monthly_check_ins_from_january_31_on_a_manual_clock() -> None:
    plan = compile_plan(PathwaySpec.model_validate(doc()))
    clock = ManualClock(at(2026, 1, 31))
    state = enroll(plan, "ep-d", clock.now()).state
    opened: list[datetime] = []
    for n in range(5):
        item = next(i for i in state.items if i.kind == "check-in" and i.status == "open")
        opened.append(item.opened_at)
        assert item.due_at == item.opened_at + timedelta(days=3)
        clock.set(item.opened_at + timedelta(hours=1))
        state = apply_event(plan, state, Event(id=f"e{n}", name="contact.made", at=clock.now()), clock.now()).state
    # monthly for 3 months, then fortnightly from April 30 (Jan 31 + 3mo)
    assert opened == [at(2026, 1, 31), at(2026, 2, 28), at(2026, 3, 31), at(2026, 4, 30), at(2026, 5, 14)]
    stay = next(i for i in state.items if i.key == "s.detox.stay")
    assert stay.due_at == at(2026, 3, 31)


def test_comparisons_with_months_use_bounds_and_say_so() -> None:
    d = doc()
    d["stages"][0]["expected_duration"] = {"min": "2w", "max": "1mo"}
    assert findings(d) == []
    d["stages"][0]["expected_duration"] = {"min": "30d", "max": "1mo"}
    assert [(f.message, f.severity) for f in findings(d)] == [
        ("max 1mo is less than min 30d in some months (a month is 28 to 31 days)", "warning")
    ]
    d["stages"][0]["expected_duration"] = {"min": "5w", "max": "1mo"}
    assert [(f.message, f.severity) for f in findings(d)] == [("max 1mo is less than min 5w", "error")]
    d = doc()
    d["stages"][0]["check_ins"][0]["window"] = "30d"
    assert [(f.message, f.severity) for f in findings(d)] == [
        ("window 30d is longer than every 1mo in some months (a month is 28 to 31 days); contacts overlap", "warning")
    ]
    d = doc()
    d["stages"][0]["check_ins"][0]["every"] = "0mo"
    assert [f.message for f in findings(d)] == ["every must be longer than 0"]


def test_a_ladder_in_months_must_still_climb() -> None:
    d = doc()
    d["stages"][0]["on_entry"][0]["escalate"] = [
        {"after": "1mo", "to": "care-coordinator"},
        {"after": "30d", "to": "supervisor"},
    ]
    assert [(f.message, f.severity) for f in findings(d)] == [
        ("after 30d is not later than the rung before (1mo) in some months (a month is 28 to 31 days)", "warning")
    ]
    d["stages"][0]["on_entry"][0]["escalate"][1]["after"] = "4w"  # 4w is never later than a month
    assert [(f.message, f.severity) for f in findings(d)] == [
        ("after 4w is not later than the rung before (1mo)", "error")
    ]


def test_parameters_in_months() -> None:
    d = doc()
    d["parameters"] = {"follow_up": {"description": "Follow-up cadence.", "default": "1mo", "min": "2w", "max": "P3M"}}
    d["stages"][0]["check_ins"][0]["every"] = "follow_up"
    assert findings(d) == []
    plan = compile_plan(PathwaySpec.model_validate(d))
    assert plan.parameters["follow_up"] == MonthSpan(1)
    assert plan.stages["detox"].check_ins[0].every == MonthSpan(1)
    d["parameters"]["follow_up"]["min"] = "2mo"
    assert [f.message for f in findings(d)] == ["default 1mo is below min 2mo"]


def test_re_engage_within_cannot_be_in_months() -> None:
    d = doc()
    d["transitions"][0]["handoff"]["re_engage_within"] = "1mo"
    assert [(f.path, f.message) for f in findings(d)] == [
        (
            ("transitions", 0, "handoff", "re_engage_within"),
            "re_engage_within cannot be in calendar months; write days (e.g. 30d)",
        )
    ]


def test_a_time_guard_in_months_counts_calendar_months() -> None:
    from engine.language.guards import evaluate, possible_from
    from engine.language.moments import SinceGuard

    guard = SinceGuard.model_validate({"since": "detox.completed", "at_least": "1mo"})
    times = {"detox.completed": at(2026, 1, 31)}
    assert not evaluate(guard, {}, now=at(2026, 2, 27), times=times)
    assert evaluate(guard, {}, now=at(2026, 2, 28), times=times)
    assert possible_from(guard, {}, times) == at(2026, 2, 28)
