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
