"""Getting people into care: follow-up after high-intensity care (HEDIS FUI), initiation and engagement (IET), and
the reentry measures, each on a hand-built cohort whose answer is worked out here.

``min_cell=1`` so small cohorts show their numbers (suppression has its own tests in test_measures_report.py);
``as_of`` is day 200 of the cohort, so every window closes except where a test says otherwise.
"""

from __future__ import annotations

from measures_data import AS_OF, FOURTH, PLANS, ev, handoff, history, path

from engine.episode.history import EpisodeHistory
from engine.measures import MeasureReport, compute_measures


def rate(report: MeasureReport, measure: str) -> tuple[int | None, int | None]:
    r = report.result(measure)
    assert not r.suppressed
    return r.numerator, r.denominator


def test_follow_up_after_withdrawal_management_and_residential_within_7_and_30_days() -> None:
    cohort = [
        # jail-wm -> residential on day 5 is a transfer (excluded); residential discharge day 20, visit day 22: 7 and 30
        history(1, path(("jail-wm", 0), ("residential", 5), ("outpatient", 20)), [ev("session.attended", 22)]),
        # discharge day 4, the handoff's kept visit on day 14: 30 only
        history(2, path(("jail-wm", 0), ("outpatient", 4)), handoffs=[handoff("Eastside Clinic", 4, visit_kept=14)]),
        # a visit three hours after discharge, on the same day, counts; the one the day before does not
        history(
            3, path(("residential", 0), ("outpatient", 10)), [ev("session.attended", 9), ev("session.attended", 10, 3)]
        ),
        # no visit: neither
        history(4, path(("residential", 0), ("outpatient", 10))),
        # jail-wm discharge day 3, readmitted day 40 (after 30 days: both discharges count); visit day 45 is too
        # late for the first; the residential discharge on day 50 has its visit on the 7th day after (day 57)
        history(
            5,
            path(("jail-wm", 0), ("outpatient", 3), ("residential", 40), ("outpatient", 50)),
            [ev("session.attended", 45), ev("session.attended", 57, 10)],
        ),
        # no high-intensity stay
        history(6, path(("outpatient", 0)), [ev("session.attended", 3)]),
        # discharge day 190: the 30-day window is still open on day 200 (left out) ...
        history(7, path(("residential", 0), ("outpatient", 190))),
        # ... unless the episode ended: then nothing more can be recorded, and it counts as missed
        history(8, path(("residential", 0), ("outpatient", 190), ("done", 191)), status="completed"),
    ]
    report = compute_measures(cohort, PLANS, as_of=AS_OF, min_cell=1)
    # discharges: 1 residential, 2 jail-wm, 3, 4, 5 jail-wm, 5 residential, 8 = 7
    assert rate(report, "follow-up.7d") == (3, 7)  # 1, 3, 5 residential
    assert rate(report, "follow-up.30d") == (4, 7)  # and 2
    assert report.result("follow-up.7d").value == round(3 / 7, 4)


def test_follow_up_reads_4th_edition_levels_and_leaves_out_intensive_outpatient() -> None:
    plans = {(FOURTH.pathway_id, FOURTH.version): FOURTH}
    cohort = [
        # inpatient (4.0) discharge day 6, visit day 9: counted, met; the IOP (2.1) discharge day 20 is not counted
        history(1, path(("inpatient", 0), ("iop", 6), ("outpatient", 20)), [ev("visit.kept", 9)], plan=FOURTH),
        history(2, path(("inpatient", 0), ("iop", 6)), plan=FOURTH),
    ]
    report = compute_measures(cohort, plans, as_of=AS_OF, min_cell=1)
    assert rate(report, "follow-up.7d") == (1, 2)


def test_initiation_within_14_days_and_engagement_two_more_visit_days_within_34() -> None:
    def intake(n: int, *visits: tuple[float, float]) -> EpisodeHistory:
        events = [ev("intake.completed", 1), *(ev("session.attended", d, h) for d, h in visits)]
        return history(n, path(("outpatient", 0)), events)

    cohort = [
        intake(1, (3, 0), (10, 0), (20, 0)),  # initiated day 3; days 10 and 20 engage
        intake(2, (14, 0), (20, 0)),  # day 14 is the 13th day after the index: initiated; one more: not engaged
        intake(3, (16, 0)),  # 15 days after: not initiated
        intake(4, (2, 0), (2, 5), (30, 0), (30, 4)),  # initiated day 2; day 2 again and day 30 twice: one more day
        history(5, path(("outpatient", 0)), [ev("session.attended", 3)]),  # no index event: left out
        history(6, path(("outpatient", 0)), [ev("intake.completed", 180)]),  # 47-day window still open: left out
        # initiated day 5; the handoff's kept visit (day 20) and day 38 (5 + 33) engage
        history(
            7,
            path(("outpatient", 0)),
            [ev("intake.completed", 1), ev("session.attended", 5), ev("session.attended", 38)],
            handoffs=[handoff("Eastside Clinic", 4, visit_kept=20)],
        ),
    ]
    report = compute_measures(cohort, PLANS, as_of=AS_OF, min_cell=1)
    assert rate(report, "initiation") == (4, 5)  # 1, 2, 4, 7
    assert rate(report, "engagement") == (2, 5)  # 1, 7


def test_initiation_counts_from_enrollment_when_the_pathway_names_no_start() -> None:
    plans = {(FOURTH.pathway_id, FOURTH.version): FOURTH}
    cohort = [
        history(1, path(("inpatient", 0)), [ev("visit.kept", 13, 14)], plan=FOURTH),  # 23:00 on the 13th day after
        history(2, path(("inpatient", 0)), [ev("visit.kept", 14)], plan=FOURTH),
    ]
    assert rate(compute_measures(cohort, plans, as_of=AS_OF, min_cell=1), "initiation") == (1, 2)


def test_reentry_contact_in_72_hours_fill_in_7_days_and_a_contact_each_of_14_days() -> None:
    released = 2
    daily = [ev("peer.contacted", released + k, 1) for k in range(14)]  # one in each 24 hours after release
    cohort = [
        history(1, path(("jail-wm", 0)), [ev("custody.released", released), *daily, ev("prescription.filled", 5)]),
        # first contact 73 hours after release; fill 7 days and 1 hour after; no daily contacts
        history(
            2,
            path(("jail-wm", 0)),
            [ev("custody.released", released), ev("peer.contacted", released, 73), ev("prescription.filled", 9, 1)],
        ),
        # a kept visit 70 hours after release is a contact; the fill exactly 7 days after counts; day 7 has no contact
        history(
            3,
            path(("jail-wm", 0)),
            [
                ev("custody.released", released),
                ev("session.attended", released, 70),
                ev("prescription.filled", released + 7),
                *(e for k, e in enumerate(daily) if k != 6),
            ],
        ),
        history(4, path(("jail-wm", 0)), daily),  # never released: left out
        # released day 195: 72 hours have passed by day 200 (no contact), 7 and 14 days have not
        history(5, path(("jail-wm", 0)), [ev("custody.released", 195)]),
    ]
    report = compute_measures(cohort, PLANS, as_of=AS_OF, min_cell=1)
    assert rate(report, "reentry.contact-72h") == (2, 4)  # 1, 3
    assert rate(report, "reentry.fill-7d") == (2, 3)  # 1, 3
    assert rate(report, "reentry.daily-14d") == (1, 3)  # 1


def test_reentry_measures_are_empty_for_a_pathway_with_no_release() -> None:
    plans = {(FOURTH.pathway_id, FOURTH.version): FOURTH}
    report = compute_measures([history(1, path(("inpatient", 0)), plan=FOURTH)], plans, as_of=AS_OF, min_cell=1)
    for measure in ("reentry.contact-72h", "reentry.fill-7d", "reentry.daily-14d"):
        assert (report.result(measure).denominator, report.result(measure).value) == (0, None)
