"""What operators read as flow-run names in the Prefect UI: what a run did, in pathway words, nothing else."""

from __future__ import annotations

from engine.app.ports import SweepReport
from engine.orchestration.names import describe_event, sweep_run_name


def test_a_sweep_names_what_it_did_and_counts_fired_alerts_once() -> None:
    assert sweep_run_name(SweepReport(fired=5, scheduled=2)) == "sweep · fired 5 · scheduled 2"
    # alerts that a dead process left undelivered are named apart from the fired rungs' own alerts
    report = SweepReport(fired=1, scheduled=0, delivered=3, applied=1, cancelled=2, problems=["x"])
    assert sweep_run_name(report) == (
        "sweep · fired 1 · scheduled 0 · late alerts sent 3 · applied 1 · runs cancelled 2 · problems 1"
    )


def test_an_event_run_says_where_the_event_took_the_episode() -> None:
    assert describe_event("custody.released", ("pre-release", "community"), False, "pre-release") == (
        "custody.released: pre-release → community"
    )
    assert describe_event("contact.made", None, False, "iop") == "contact.made in iop"
    assert describe_event("contact.made", None, True, "iop") == "contact.made (duplicate)"


def test_a_run_that_escalated_says_so_in_its_state_and_tags_and_critical_wins() -> None:
    from engine.orchestration.names import escalation_outcome

    assert escalation_outcome([]) == (None, [])
    assert escalation_outcome([("normal", "supervisor")]) == (
        "Escalated",
        ["escalated", "severity:normal", "role:supervisor"],
    )
    name, tags = escalation_outcome([("high", "supervisor"), ("critical", "prescriber"), ("critical", "supervisor")])
    assert name == "Escalated: critical"
    assert tags == ["escalated", "severity:critical", "role:prescriber", "role:supervisor"]


def test_a_refused_event_run_names_the_event_and_the_code_only() -> None:
    from engine.orchestration.names import refused_run_name

    assert refused_run_name("ep-2dcbf08f", "custody.released", "not-expected") == (
        "ep-2dcbf08f · refused custody.released (not-expected)"
    )


def test_times_show_the_wall_time_beside_the_pathway_time_only_on_a_compressed_clock() -> None:
    from datetime import UTC, datetime, timedelta

    from engine.app.views import age, when
    from engine.clock import CompressedClock, ManualClock

    at = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    assert when(ManualClock(at), at) == "2026-12-02 09:00 UTC"
    wall = datetime(2026, 5, 1, 14, 0, 0, tzinfo=UTC)
    clock = CompressedClock(origin=at, wall_origin=wall, factor=900.0)
    assert when(clock, at + timedelta(hours=1)) == "2026-12-02 10:00 (wall 14:00:04 UTC)"
    assert [age(at, at + d) for d in (timedelta(minutes=5), timedelta(hours=6, minutes=10), timedelta(days=3))] == [
        "5m",
        "6h 10m",
        "3d 0h",
    ]


def test_every_final_state_carepath_names_counts_as_an_ending_for_the_crashed_run_automation() -> None:
    from engine.orchestration.prefect_api import CARE_STATE_NAMES, operator_automations

    assert set(CARE_STATE_NAMES) == {"Escalated", "Escalated: critical", "Met", "Rejected"}
    critical, late = operator_automations()
    assert critical.trigger.expect == {"prefect.flow-run.Escalated: critical"}  # type: ignore[union-attr]
    assert late.trigger.after == {"prefect.flow-run.Late"}  # type: ignore[union-attr]
    assert "prefect.flow-run.Met" in late.trigger.expect  # type: ignore[union-attr]
