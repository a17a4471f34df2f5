"""Getting people into care and keeping them there: follow-up after high-intensity care, initiation and engagement,
and the reentry measures. Each measure's definition is in :data:`DEFINITIONS`, next to the code that counts it.

Days are UTC calendar days; "within N days of X" is X's day through the Nth day after it, as HEDIS counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from engine.measures.cohort import HIGH_INTENSITY_LEVELS, Tally, View, day_end
from engine.measures.report import Definition, Period

__all__ = ["DEFINITIONS", "engagement", "follow_up", "reentry"]

_FOLLOW_UP = (
    "Stays in a stage whose ASAM level is withdrawal management (3rd edition 1-WM to 4-WM; 4th edition 1.7, 2.7), "
    "residential (3.1-3.7) or inpatient (4, 4.0), ended by a move to another stage (the discharge)"
)
_VISIT = "a kept visit (a handoff's visit-kept step, or an event the pathway's measures.visits names)"
_REENTRY_SOURCE = (
    "Reentry practice in shared/domain.md: overdose risk is highest in the first two weeks after release "
    "(Binswanger, NEJM 2007); first community fill and first appointment within days; daily contact through the "
    "high-risk weeks"
)
_REENTRY_DENOMINATOR = "Releases (the first measures.release event of an episode); only pathways that declare one"

DEFINITIONS: tuple[Definition, ...] = (
    *(
        Definition(
            id=f"follow-up.{n}d",
            family="Follow-up after high-intensity care",
            title=f"Follow-up within {n} days after withdrawal management, residential or inpatient care",
            unit="rate",
            numerator=f"Discharges followed by {_VISIT} after the discharge and by the {n}th day after it",
            denominator=_FOLLOW_UP + ", whose 30-day window has closed (or whose episode ended)",
            exclusions="A discharge followed within 30 days by another such stay (a readmission or direct transfer, "
            "as HEDIS counts only the last discharge)",
            source="HEDIS FUI (follow-up after high-intensity care for substance use disorder), 7- and 30-day rates",
            adaptation="Carepath sees the moment of discharge and of the visit, so a visit later on the discharge "
            "day counts (HEDIS drops same-day visits, which a claim cannot tell from the stay); pharmacotherapy "
            "dispensing, which HEDIS also accepts, is measured by the MOUD family instead",
        )
        for n in (7, 30)
    ),
    Definition(
        id="initiation",
        family="Initiation and engagement",
        title="Initiation of treatment within 14 days of the index event",
        unit="rate",
        numerator=f"Episodes with {_VISIT} from the index moment through the 13th day after it (14 days)",
        denominator="Episodes whose index event (measures.start, first occurrence; default: enrollment) happened "
        "and whose 47-day window (14 + 34) has closed, or whose episode ended",
        exclusions="Episodes whose index event never happened",
        source="HEDIS IET (initiation and engagement of substance use disorder treatment)",
        adaptation="The index is the pathway's own event, not a diagnosis on a claim; no 60-day negative history "
        "(Carepath sees no care before the episode)",
    ),
    Definition(
        id="engagement",
        family="Initiation and engagement",
        title="Engagement: two more visits within 34 days of initiation",
        unit="rate",
        numerator="Initiated episodes with kept visits on at least two more days after the initiation day, "
        "through the 34th day after it",
        denominator="As initiation (HEDIS uses one denominator for both rates)",
        exclusions="As initiation",
        source="HEDIS IET, engagement rate",
        adaptation="Visits count by distinct day, so one visit recorded twice (an event and a handoff step) counts "
        "once; medication treatment events count only when the pathway names them as visits",
    ),
    Definition(
        id="reentry.contact-72h",
        family="Reentry",
        title="Contact within 72 hours of release",
        unit="rate",
        numerator="Releases followed within 72 hours by a contact (measures.contacts, or a kept visit)",
        denominator=_REENTRY_DENOMINATOR + ", 72 hours past (or the episode ended)",
        exclusions="Episodes with no release",
        source=_REENTRY_SOURCE,
        adaptation="Counted from the recorded release moment, in hours",
    ),
    Definition(
        id="reentry.fill-7d",
        family="Reentry",
        title="First MOUD fill within 7 days of release",
        unit="rate",
        numerator="Releases followed within 7 days (168 hours) by a measures.moud_fills event",
        denominator=_REENTRY_DENOMINATOR + " and measures.moud_fills, 7 days past (or the episode ended)",
        exclusions="Pathways that name no fill event",
        source=_REENTRY_SOURCE,
        adaptation="Every released person is in the denominator: a reentry pathway is for people with OUD, and a "
        "missing fill is what the measure must show",
    ),
    Definition(
        id="reentry.daily-14d",
        family="Reentry",
        title="A contact in each of the first 14 days after release",
        unit="rate",
        numerator="Releases with a contact in every one of the 14 24-hour periods that follow the release moment",
        denominator=_REENTRY_DENOMINATOR + ", 14 days past (or the episode ended)",
        exclusions="Episodes with no release",
        source=_REENTRY_SOURCE,
        adaptation="Days are 24-hour periods from release, as the pathways' daily check-ins count them",
    ),
)


def follow_up(views: Iterable[View], period: Period) -> list[Tally]:
    seven, thirty = Tally("follow-up.7d"), Tally("follow-up.30d")
    for v in views:
        stays = [s for s in v.history.stays if _high_intensity(v, s.stage)]
        for stay in stays:
            out = stay.left_at
            if out is None or out not in period:
                continue
            limit = day_end(out, 30)
            if any(out <= later.entered_at < limit for later in stays if later is not stay):
                continue  # readmitted or transferred: only the last discharge counts
            if not v.judged(limit):
                continue
            for tally, n in ((seven, 7), (thirty, 30)):
                closes = day_end(out, n)
                tally.add(v.id, any(out < at < closes for at in v.visits))
    return [seven, thirty]


def _high_intensity(v: View, stage: str) -> bool:
    plan = v.plan.stages.get(stage)
    return plan is not None and plan.level in HIGH_INTENSITY_LEVELS


def engagement(views: Iterable[View], period: Period) -> list[Tally]:
    initiation, engaged = Tally("initiation"), Tally("engagement")
    for v in views:
        start = v.plan.measures.start
        index = v.first(start) if start else v.history.enrolled_at
        if index is None or index not in period or not v.judged(day_end(index, 47)):
            continue
        closes = day_end(index, 13)
        first = next((at for at in v.visits if index <= at < closes), None)
        more = 0
        if first is not None:
            day, last = first.date(), first.date() + timedelta(days=34)
            more = len({d for at in v.visits if day < (d := at.date()) <= last})
        initiation.add(v.id, first is not None)
        engaged.add(v.id, first is not None and more >= 2)
    return [initiation, engaged]


def reentry(views: Iterable[View], period: Period) -> list[Tally]:
    contact, fill, daily = Tally("reentry.contact-72h"), Tally("reentry.fill-7d"), Tally("reentry.daily-14d")
    hours_72, days_7, days_14, day = timedelta(hours=72), timedelta(days=7), timedelta(days=14), timedelta(days=1)
    for v in views:
        released = v.first(v.plan.measures.release)
        if released is None or released not in period:
            continue
        if v.judged(closes := released + hours_72):
            contact.add(v.id, any(released <= at <= closes for at in v.contacts))
        if v.plan.measures.moud_fills and v.judged(closes := released + days_7):
            fill.add(v.id, any(released <= at <= closes for at in v.fills))
        if v.judged(released + days_14):
            days = {(at - released) // day for at in v.contacts if at >= released}
            daily.add(v.id, all(k in days for k in range(14)))
    return [contact, fill, daily]
