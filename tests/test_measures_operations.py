"""How the program runs: handoff loops per receiving program, escalations per 100 episodes by rung and their
acknowledgement, critical discrepancies by how they ended, and stays against expected durations; each on a
hand-built cohort whose answer is worked out here (``min_cell=1``; suppression is tested elsewhere)."""

from __future__ import annotations

from measures_data import AS_OF, PLANS, finding, handoff, history, path, raised

from engine.measures import compute_measures


def test_handoff_loops_closed_and_median_times_per_receiving_program() -> None:
    cohort = [
        history(1, handoffs=[handoff("Harbor Residential", 0, accepted=0.25, visit_kept=3, outcome_returned=10)]),
        history(2, handoffs=[handoff("Harbor Residential", 0, accepted=0.5, visit_kept=5)]),
        history(3, handoffs=[handoff("Harbor Residential", 0)]),
        history(4, handoffs=[handoff("Eastside Clinic", 1, accepted=2, outcome_returned=9)]),
        history(5, handoffs=[handoff("Eastside Clinic", 1, accepted=2)]),
        history(6, handoffs=[handoff("Eastside Clinic", 1, accepted=2, visit_kept=6)]),
    ]
    report = compute_measures(cohort, PLANS, as_of=AS_OF, min_cell=1)
    harbor = report.result("handoffs.loop-closed", "Harbor Residential")
    # Harbor asks acceptance only: 1 returned the outcome, 2 was accepted, 3 never was
    assert (harbor.numerator, harbor.denominator) == (2, 3)
    assert report.result("handoffs.accepted-hours", "Harbor Residential").value == 9.0  # median of 6 h and 12 h
    assert report.result("handoffs.first-visit-days", "Harbor Residential").value == 4.0  # of 3 and 5 days
    eastside = report.result("handoffs.loop-closed", "Eastside Clinic")
    # Eastside asks acceptance and a kept first visit: 4 returned the outcome, 5 only accepted, 6 did both
    assert (eastside.numerator, eastside.denominator) == (2, 3)
    assert report.result("handoffs.accepted-hours", "Eastside Clinic").value == 24.0
    assert report.result("handoffs.first-visit-days", "Eastside Clinic").value == 5.0  # day 1 to day 6


def test_escalations_per_100_episodes_by_rung_and_time_to_acknowledgement() -> None:
    cohort = [
        history(1, escalations=[raised(0, 1, ack_hours=2), raised(1, 2, ack_hours=10)]),
        history(2, escalations=[raised(0, 1, ack_hours=4)]),
        history(3, escalations=[raised(0, 3)]),
        history(4),
    ]
    report = compute_measures(cohort, PLANS, as_of=AS_OF, min_cell=1)
    first, second = report.result("escalations.per-100", "rung 1"), report.result("escalations.per-100", "rung 2")
    assert (first.numerator, first.denominator, first.value) == (3, 4, 75.0)
    assert (second.numerator, second.denominator, second.value) == (1, 4, 25.0)
    acked = report.result("escalations.acknowledged")
    assert (acked.numerator, acked.denominator) == (3, 4)
    assert report.result("escalations.ack-median-hours").value == 4.0  # of 2, 4, 10
    assert report.result("escalations.ack-p90-hours").value == 10.0  # rank ceil(0.9 * 3) = 3


def test_critical_discrepancies_by_how_they_ended() -> None:
    stays = path(("jail-wm", 0), ("residential", 5))
    cohort = [
        history(1, stays, findings=[finding(2, "resolved"), finding(2, "unintentional")]),
        history(2, stays, findings=[finding(2, "intentional-documented")]),
        history(3, stays, findings=[finding(2, "unintentional", critical=False)]),  # not critical: left out
    ]
    report = compute_measures(cohort, PLANS, as_of=AS_OF, min_cell=1)
    for ending in ("resolved", "intentional", "still open"):
        r = report.result("discrepancies.critical", ending)
        assert (r.numerator, r.denominator) == (1, 3), ending


def test_stays_against_each_stages_expected_duration() -> None:
    # jail-wm expects 3 to 10 days, residential 7 to 30; outpatient declares nothing
    cohort = [
        history(1, path(("jail-wm", 0), ("residential", 2), ("outpatient", 40))),  # 2 d (short), 38 d (long)
        history(2, path(("jail-wm", 0), ("residential", 5), ("outpatient", 12))),  # 5 d, 7 d (exactly min: not short)
        history(3, path(("jail-wm", 0), ("residential", 11))),  # 11 d (long); residential still running
    ]
    report = compute_measures(cohort, PLANS, as_of=AS_OF, min_cell=1)
    wm, res = "jail-detox-to-outpatient/jail-wm", "jail-detox-to-outpatient/residential"
    assert report.result("stays.median-days", wm).value == 5.0  # of 2, 5, 11
    assert report.result("stays.median-days", res).value == 22.5  # of 38, 7
    counts = {
        (m, s): (report.result(m, s).numerator, report.result(m, s).denominator)
        for m in ("stays.shorter-than-min", "stays.longer-than-max")
        for s in (wm, res)
    }
    assert counts == {
        ("stays.shorter-than-min", wm): (1, 3),
        ("stays.shorter-than-min", res): (0, 2),
        ("stays.longer-than-max", wm): (1, 3),
        ("stays.longer-than-max", res): (1, 2),
    }
    assert not any(r.subject.endswith("/outpatient") for r in report.results)
