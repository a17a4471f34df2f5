"""The report around the measures: strata with small-cell suppression, period filtering, clear errors, the
renders (text, CSV that parses back, JSON that round-trips, HTML with plots and no person or episode id)."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from measures_data import AS_OF, PLANS, T0, ev, handoff, history, path

from engine.episode.history import EpisodeHistory
from engine.language.loader import load_pathway
from engine.measures import (
    MeasureError,
    Period,
    Result,
    compute_measures,
    render_csv,
    render_html,
    render_json,
    render_table,
)
from engine.measures.render import report_data
from engine.plan.build import compile_plan

ROOT = Path(__file__).resolve().parents[1]


def discharged(n: int, insurance: str | None, *, met: bool = True, day: float = 0) -> EpisodeHistory:
    """A residential stay ending on ``day`` + 10, followed two days later by a visit when ``met``."""
    visits = [ev("session.attended", day + 12)] if met else []
    facts = {"insurance": insurance} if insurance else {}
    return history(n, path(("residential", day), ("outpatient", day + 10)), visits, facts=facts)


def cohort(**groups: int) -> list[EpisodeHistory]:
    out: list[EpisodeHistory] = []
    for insurance, size in groups.items():
        out += [discharged(len(out) + k, insurance) for k in range(size)]
    return out


def test_a_stratum_of_10_is_suppressed_and_one_of_11_is_shown() -> None:
    report = compute_measures(cohort(medicaid=11, commercial=10, uninsured=3), PLANS, as_of=AS_OF, stratify="insurance")
    strata = {s.value: (s.episodes, s.suppressed) for s in report.strata}
    assert strata == {
        "all": (24, False),
        "commercial": (None, True),
        "medicaid": (11, False),
        "uninsured": (None, True),
    }
    shown = report.result("follow-up.7d", stratum="medicaid")
    assert (shown.numerator, shown.denominator, shown.value, shown.suppressed) == (11, 11, 1.0, False)
    hidden = report.result("follow-up.7d", stratum="commercial")
    assert (hidden.numerator, hidden.denominator, hidden.value, hidden.suppressed) == (None, None, None, True)
    assert report.result("follow-up.7d").numerator == 24  # the total rests on 24 people
    text = render_table(report)
    assert "suppressed (<11)" in text and "10/10" not in text and "3/3" not in text
    assert "11/11" in text


def test_a_lone_suppressed_stratum_takes_the_next_smallest_with_it() -> None:
    """With the total shown, one hidden stratum would be the total minus the others: hide the smallest other too."""
    report = compute_measures(
        cohort(medicaid=11, commercial=12, uninsured=10), PLANS, as_of=AS_OF, stratify="insurance"
    )
    strata = {s.value: s.suppressed for s in report.strata}
    assert strata == {"all": False, "commercial": False, "medicaid": True, "uninsured": True}
    assert report.result("follow-up.7d", stratum="commercial").numerator == 12
    assert report.result("follow-up.7d", stratum="medicaid").suppressed


def test_a_rate_is_suppressed_when_the_people_it_misses_are_fewer_than_11() -> None:
    """20 of 25 met: the 5 who did not would be 25 - 20; 11 of 22 met: both sides rest on 11 people."""
    few = [discharged(k, None, met=k < 20) for k in range(25)]
    assert compute_measures(few, PLANS, as_of=AS_OF).result("follow-up.7d").suppressed
    even = [discharged(k, None, met=k < 11) for k in range(22)]
    r = compute_measures(even, PLANS, as_of=AS_OF).result("follow-up.7d")
    assert (r.numerator, r.denominator, r.value) == (11, 22, 0.5)


def test_episodes_without_the_fact_form_their_own_stratum() -> None:
    report = compute_measures(
        [*cohort(medicaid=11), discharged(99, None)], PLANS, as_of=AS_OF, stratify="insurance", min_cell=1
    )
    assert [s.value for s in report.strata] == ["all", "medicaid", "(not set)"]
    assert report.result("follow-up.7d", stratum="(not set)").denominator == 1


def test_stratifying_by_a_fact_no_pathway_declares_is_a_clear_error() -> None:
    with pytest.raises(
        MeasureError,
        match=r"cannot stratify by 'insurence': no pathway declares that fact "
        r"\(did you mean 'insurance'\?\)",
    ):
        compute_measures(cohort(medicaid=1), PLANS, as_of=AS_OF, stratify="insurence")


def test_a_history_without_its_plan_is_a_clear_error() -> None:
    stranger = history(1)
    stranger = EpisodeHistory(**{**stranger.__dict__, "pathway_version": 9})
    with pytest.raises(MeasureError, match="no plan for pathway 'jail-detox-to-outpatient' version 9"):
        compute_measures([stranger], PLANS, as_of=AS_OF)


def test_the_period_keeps_what_has_its_index_date_in_it() -> None:
    # discharges on day 10 (visit: met) and on day 40 (no visit); handoffs opened on days 0 and 35
    early = [discharged(k, None, day=0) for k in range(2)]
    late = [
        history(
            10 + k,
            path(("residential", 30), ("outpatient", 40)),
            handoffs=[handoff("Eastside Clinic", 35, outcome_returned=36)],
        )
        for k in range(3)
    ]
    early = [EpisodeHistory(**{**h.__dict__, "handoffs": (handoff("Eastside Clinic", 0),)}) for h in early]
    first = Period(T0.date(), (T0 + timedelta(days=20)).date())
    report = compute_measures(early + late, PLANS, period=first, as_of=AS_OF, min_cell=1)
    assert (report.result("follow-up.7d").numerator, report.result("follow-up.7d").denominator) == (2, 2)
    loops = report.result("handoffs.loop-closed", "Eastside Clinic")
    assert (loops.numerator, loops.denominator) == (0, 2)
    later = compute_measures(
        early + late, PLANS, as_of=AS_OF, period=Period((T0 + timedelta(days=40)).date(), None), min_cell=1
    )
    assert (later.result("follow-up.7d").numerator, later.result("follow-up.7d").denominator) == (0, 3)
    assert not [r for r in later.results if r.subject == "Eastside Clinic"]  # every handoff opened before it
    assert Period(None, T0.date()).__contains__(T0) and T0 not in Period((T0 + timedelta(days=1)).date(), None)


@pytest.fixture(scope="module")
def stratified() -> tuple[str, ...]:
    report = compute_measures(cohort(medicaid=11, commercial=12, uninsured=3), PLANS, as_of=AS_OF, stratify="insurance")
    return (
        render_csv(report),
        render_json(report),
        render_html(report, "Jail program, March 2026"),
        render_table(report),
    )


def test_csv_has_one_row_per_measure_subject_and_stratum_and_parses_back() -> None:
    report = compute_measures(cohort(medicaid=11, commercial=12, uninsured=3), PLANS, as_of=AS_OF, stratify="insurance")
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert len(rows) == len(report.results)
    for row, r in zip(rows, report.results, strict=True):
        assert (row["measure"], row["subject"], row["stratum"], row["unit"]) == (
            r.measure,
            r.subject,
            r.stratum,
            r.unit,
        )
        assert row["numerator"] == ("" if r.numerator is None else str(r.numerator))
        assert row["value"] == ("" if r.value is None else str(r.value))
        assert row["suppressed"] == str(r.suppressed).lower()
    assert {row["stratum"] for row in rows} == {"all", "commercial", "medicaid", "uninsured"}


def test_json_round_trips_with_stable_keys() -> None:
    report = compute_measures(cohort(medicaid=11, commercial=12, uninsured=3), PLANS, as_of=AS_OF, stratify="insurance")
    text = render_json(report)
    data = json.loads(text)
    assert data == json.loads(json.dumps(report_data(report)))
    assert text == render_json(
        compute_measures(cohort(medicaid=11, commercial=12, uninsured=3), PLANS, as_of=AS_OF, stratify="insurance")
    )
    assert sorted(data) == [
        "as_of",
        "definitions",
        "format",
        "min_cell",
        "pathways",
        "period",
        "results",
        "strata",
        "stratify",
    ]
    assert tuple(Result(**row) for row in data["results"]) == report.results
    assert {d["id"] for d in data["definitions"]} >= {"follow-up.7d", "initiation", "moud.180d", "reentry.daily-14d"}
    assert all(d["numerator"] and d["denominator"] and d["source"] for d in data["definitions"])


def test_html_is_one_page_with_embedded_plots_and_no_person_or_episode_id(stratified: tuple[str, ...]) -> None:
    page = stratified[2]
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 2
    assert all(base64.b64decode(img).startswith(b"\x89PNG\r\n\x1a\n") for img in images)
    assert "<title>Jail program, March 2026</title>" in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert not re.search(r"E-\d{3}", page)  # the cohort's episode ids
    assert "suppressed (&lt;11)" in page


def test_the_shipped_pathways_declare_what_their_measures_read() -> None:
    plans = {}
    for name in ("detox-to-aftercare", "reentry", "pregnancy-postpartum"):
        loaded = load_pathway(ROOT / "pathways" / f"{name}.yaml")
        assert loaded.spec is not None
        plans[name] = compile_plan(loaded.spec)
    assert plans["detox-to-aftercare"].measures.start == "assessment.completed"
    assert plans["reentry"].measures.release == "custody.released"
    assert plans["reentry"].measures.moud_fills == ("prescription.filled",)
    assert "meds.reviewed" in plans["pregnancy-postpartum"].measures.moud_events
    # a released person on the seed, contacted by the peer coach 30 hours later: contact within 72 hours
    reentry = plans["reentry"]
    h = history(
        1,
        path(("pre-release", 0), ("community-care", 20)),
        [ev("custody.released", 20), ev("peer.contacted", 21, 6)],
        plan=reentry,
    )
    report = compute_measures([h], {("reentry", reentry.version): reentry}, as_of=AS_OF, min_cell=1)
    assert report.result("reentry.contact-72h").numerator == 1
