"""The shipped pathways: they load cleanly, and they say what the clinical domain requires.

Each assertion is a fact from ``shared/domain.md`` a program relies on (authorization before residential,
MOUD critical at every move into treatment, daily contact for the first 14 days after release, ...), so an
edit to a seed that breaks one fails here with the fact in the test name.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.language.durations import parse_span
from engine.language.fields import ParamRef
from engine.language.ladders import rungs
from engine.language.model import FactGuard, PathwaySpec, StageSpec, TransitionSpec
from engine.language.spans import Span
from engine.plan.build import compile_plan
from engine.plan.model import Plan

PATHWAYS = Path(__file__).resolve().parents[1] / "pathways"
SEEDS = ("detox-to-aftercare.yaml", "reentry.yaml", "pregnancy-postpartum.yaml")
MOUD = {"buprenorphine": "1819", "methadone": "6813", "naltrexone": "7243"}


def d(text: str) -> Span:
    return parse_span(text)


def _spec(name: str) -> PathwaySpec:
    return PathwaySpec.model_validate(yaml.safe_load((PATHWAYS / name).read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def detox() -> PathwaySpec:
    return _spec("detox-to-aftercare.yaml")


@pytest.fixture(scope="module")
def reentry() -> PathwaySpec:
    return _spec("reentry.yaml")


def _stage(spec: PathwaySpec, stage_id: str) -> StageSpec:
    return next(s for s in spec.stages if s.id == stage_id)


def _into(spec: PathwaySpec, stage_id: str) -> list[TransitionSpec]:
    return [t for t in spec.transitions if t.to == stage_id]


def _treatment_moves(spec: PathwaySpec) -> list[TransitionSpec]:
    """Moves into a setting with an ASAM level: a change of provider, so a handoff and reconciliation."""
    levelled = {s.id for s in spec.stages if s.level}
    moves = [t for t in spec.transitions if t.to in levelled]
    assert moves, "a seed has no move into a treatment setting"
    return moves


def _next_stage(spec: PathwaySpec, stage: str, event: str, facts: dict[str, Any]) -> str | None:
    """Where ``event`` takes an episode in ``stage``: the first transition in file order whose guard holds."""
    evaluate = pytest.importorskip("engine.language.guards").evaluate
    for t in spec.transitions:
        if stage in t.sources and t.event == event and (t.when is None or evaluate(t.when, facts)):
            return t.to
    return None


# -- both seeds -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SEEDS)
def test_seed_loads_with_no_diagnostics(name: str) -> None:
    loader = pytest.importorskip("engine.language.loader")
    result = loader.load_pathway(PATHWAYS / name)
    assert [str(diag) for diag in result.diagnostics] == []
    assert result.ok


@pytest.mark.parametrize("name", SEEDS)
def test_seed_has_no_meaning_findings(name: str) -> None:
    semantics = pytest.importorskip("engine.language.semantics")
    assert semantics.check(_spec(name)) == []


@pytest.mark.parametrize("name", SEEDS)
def test_seed_starts_with_the_schema_modeline_for_editors(name: str) -> None:
    first = (PATHWAYS / name).read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/pathway.schema.json"


@pytest.mark.parametrize("name", SEEDS)
def test_every_move_into_treatment_is_a_closed_loop_handoff_with_ladders(name: str) -> None:
    spec = _spec(name)
    for t in _treatment_moves(spec):
        assert t.handoff is not None, f"{t.sources} -> {t.to} has no handoff"
        steps = {step.kind: step for step in t.handoff.steps}
        assert {"accepted", "visit-kept"} <= set(steps), f"{t.sources} -> {t.to}"
        assert steps["accepted"].within < steps["visit-kept"].within
        for step in t.handoff.steps:
            ladder = [rung.to for rung in rungs(spec, step)]
            assert ladder[0] == "care-coordinator" and "supervisor" in ladder, f"{t.to} {step.kind}: {ladder}"
        assert t.handoff.mode == "warm" and t.handoff.introduced_by in _spec(name).roles
        assert t.handoff.consent_purpose == "treatment"


@pytest.mark.parametrize("name", SEEDS)
def test_every_move_into_treatment_reconciles_with_moud_critical(name: str) -> None:
    spec = _spec(name)
    for t in _treatment_moves(spec):
        assert t.reconcile is not None, f"{t.sources} -> {t.to} does not reconcile medications"
        assert t.reconcile.within <= d("48h")
        assert {"prescriber", "supervisor"} <= set(t.reconcile.critical_to)
    assert spec.medications is not None
    critical = {m.name: m for m in spec.medications.critical}
    assert {name: m.rxnorm for name, m in critical.items()} == {name: [code] for name, code in MOUD.items()}
    assert all(m.medication_class == "MOUD" and m.aliases for m in critical.values())


# -- detox to aftercare -----------------------------------------------------------------------------------------


def test_detox_phases_follow_the_domain_timeframes(detox: PathwaySpec) -> None:
    assert detox.asam_edition == 3
    ranges = {s.id: s.expected_duration for s in detox.stages if s.expected_duration}
    assert (ranges["assessment"].min, ranges["assessment"].max) == (d("1d"), d("3d"))
    assert (ranges["withdrawal-management"].min, ranges["withdrawal-management"].max) == (d("3d"), d("14d"))
    assert (ranges["residential"].min, ranges["residential"].max) == (d("7d"), None)  # 7-30+ days
    levels = {s.id: s.level for s in detox.stages}
    assert (levels["withdrawal-management"], levels["residential"], levels["iop"]) == ("3.7-WM", "3.5", "2.1")
    assert detox.stages[0].id == "assessment"


def test_assessment_screens_medical_psychiatric_and_social_needs_with_a_task_each(detox: PathwaySpec) -> None:
    assessment = _stage(detox, "assessment")
    assert set(assessment.screenings) == {"medical", "psychiatric", "social-needs"}
    tasks = {t.id: t for t in assessment.on_entry}
    assert set(tasks) == {"screen-medical", "screen-psychiatric", "screen-social-needs"}
    assert all(t.within <= d("3d") and t.escalate for t in tasks.values())
    assert "screen-medical" in assessment.before_leaving


def test_residential_needs_authorization_within_72h_unless_self_pay(detox: PathwaySpec) -> None:
    into = _into(detox, "residential")
    assert len(into) >= 3  # from assessment, from detox, and relapse
    for t in into:
        assert t.handoff is not None and t.handoff.authorization is not None
        auth = t.handoff.authorization
        assert auth.required and auth.within == d("72h")
        assert auth.unless == FactGuard(fact="insurance", equals="self-pay")
        assert [rung.to for rung in rungs(detox, auth)] == ["care-coordinator", "supervisor"]
    assert "self-pay" in (detox.facts["insurance"].values or [])


def test_authorization_is_waived_only_for_self_pay(detox: PathwaySpec) -> None:
    evaluate = pytest.importorskip("engine.language.guards").evaluate
    unless = _into(detox, "residential")[0].handoff.authorization.unless  # type: ignore[union-attr]
    assert unless is not None
    waived = {payer for payer in detox.facts["insurance"].values or [] if evaluate(unless, {"insurance": payer})}
    assert waived == {"self-pay"}


def test_withdrawal_management_keeps_moud_and_plans_the_transfer_before_discharge(detox: PathwaySpec) -> None:
    wm = _stage(detox, "withdrawal-management")
    assert {"moud-plan", "transfer-plan"} <= set(wm.before_leaving)
    assert next(t for t in wm.on_entry if t.id == "moud-plan").owner == "prescriber"


def test_main_route_runs_assessment_detox_residential_iop_aftercare(detox: PathwaySpec) -> None:
    route = [
        ("assessment", "assessment.completed", {"needs_withdrawal_management": True}, "withdrawal-management"),
        ("withdrawal-management", "detox.completed", {}, "residential"),
        ("residential", "residential.completed", {}, "iop"),
        ("iop", "iop.completed", {}, "aftercare"),
        ("aftercare", "aftercare.completed", {}, "completed"),
    ]
    for stage, event, facts, expected in route:
        assert _next_stage(detox, stage, event, facts) == expected
    no_detox = {"needs_withdrawal_management": False}
    assert _next_stage(detox, "assessment", "assessment.completed", no_detox) == "residential"


@pytest.mark.parametrize("stage", ["iop", "aftercare"])
def test_relapse_steps_back_up_to_a_higher_level(detox: PathwaySpec, stage: str) -> None:
    withdrawal = {"needs_withdrawal_management": True}
    assert _next_stage(detox, stage, "relapse.reported", withdrawal) == "withdrawal-management"
    no_withdrawal = {"needs_withdrawal_management": False}
    assert _next_stage(detox, stage, "relapse.reported", no_withdrawal) == "residential"
    assert "needs_withdrawal_management" in detox.events["relapse.reported"].payload


def test_aftercare_cadence_is_weekly_then_biweekly_with_monthly_medication_management(detox: PathwaySpec) -> None:
    aftercare = _stage(detox, "aftercare")
    tracks: dict[str | None, list[tuple[Span, Span | None]]] = {}
    for s in aftercare.check_ins:  # parallel tracks, each with its own series in order
        tracks.setdefault(s.track, []).append((s.every, s.for_))
    assert tracks["therapy"] == [(d("1w"), d("12w")), (d("2w"), None)]  # therapy weekly to biweekly
    assert tracks["peer"] == [(d("1w"), None)]  # peer support weekly
    assert tracks["medication"] == [(d("1mo"), d("1mo")), (d("1mo"), None)]  # first within a month, then monthly
    first = next(s for s in aftercare.check_ins if s.track == "medication")
    assert first.owner == "prescriber" and first.window == d("1mo")
    assert aftercare.peer_support is not None and aftercare.peer_support.first_contact_within == d("7d")


def test_residential_family_updates_need_consent(detox: PathwaySpec) -> None:
    family = _stage(detox, "residential").family
    assert family is not None
    assert family.consent_purpose == "family-involvement" and family.update_every == d("1w")


@pytest.mark.parametrize("name", SEEDS)
def test_social_needs_have_referral_deadlines(name: str) -> None:
    needs = _spec(name).social_needs
    assert {"housing", "transport", "employment", "legal", "benefits"} <= set(needs)
    assert needs["housing"].refer_within <= d("2d")
    assert all(need.escalate for need in needs.values())


# -- reentry ----------------------------------------------------------------------------------------------------


def test_reentry_window_is_a_parameter_default_30d_up_to_90d(reentry: PathwaySpec) -> None:
    window = reentry.parameters["pre_release_window"]
    assert (window.default, window.min, window.max) == (d("30d"), d("1d"), d("90d"))
    pre = reentry.stages[0]
    assert pre.id == "pre-release"
    assert pre.expected_duration is not None
    assert pre.expected_duration.max == ParamRef(param="pre_release_window")


def test_pre_release_starts_moud_and_prepares_release(reentry: PathwaySpec) -> None:
    pre = _stage(reentry, "pre-release")
    tasks = {t.id: t for t in pre.on_entry}
    assert {"moud-start", "naloxone-kit", "housing-referral", "identification", "benefits", "wallet-card"} <= set(tasks)
    assert tasks["moud-start"].owner == "prescriber"
    assert all(t.escalate for t in tasks.values())
    assert pre.before_leaving == []  # a release date is not the program's to hold


def test_wallet_card_declares_medication_dose_and_prescriber_contact(reentry: PathwaySpec) -> None:
    card = next(t for t in _stage(reentry, "pre-release").on_entry if t.id == "wallet-card")
    payload = reentry.events[card.done_on].payload
    assert set(payload) == {"medication", "dose", "prescriber_contact"}
    assert set(payload["medication"].values or []) == set(MOUD)


def test_release_is_a_warm_handoff_with_first_fill_and_visit_within_days(reentry: PathwaySpec) -> None:
    (release,) = [t for t in reentry.transitions if t.event == "custody.released"]
    assert (release.sources, release.to) == (("pre-release",), "community-care")
    assert release.handoff is not None and release.handoff.receiver.role == "community-prescriber"
    steps = {s.kind: s.within for s in release.handoff.steps}
    assert steps["accepted"] <= d("24h") and steps["visit-kept"] <= d("7d")
    fill = next(t for t in _stage(reentry, "community-care").on_entry if t.id == "first-fill")
    assert fill.within <= d("3d")


def test_reentry_contact_is_daily_for_14_days_then_weekly(reentry: PathwaySpec) -> None:
    series = _stage(reentry, "community-care").check_ins
    assert [(s.every, s.for_) for s in series] == [(d("1d"), d("14d")), (d("1w"), None)]
    assert series[0].window < d("1d")
    assert all(s.escalate for s in series)


def test_reentry_ends_engaged_only_after_90_days_of_moud(reentry: PathwaySpec) -> None:
    confirmed = "continuity.confirmed"
    assert _next_stage(reentry, "community-care", confirmed, {"days_on_moud": 89}) is None
    assert _next_stage(reentry, "community-care", confirmed, {"days_on_moud": 90}) == "engaged"
    assert _stage(reentry, "engaged").terminal


# -- compiled plans (run once engine.plan.build.compile_plan is implemented) -----------------------------------------


def _plan(spec: PathwaySpec, params: dict[str, timedelta] | None = None) -> Plan:
    try:
        return compile_plan(spec, params)
    except NotImplementedError:
        pytest.skip("engine.plan.build.compile_plan is not implemented yet")


def test_plan_resolves_the_reentry_window_and_enforces_its_bounds(reentry: PathwaySpec) -> None:
    assert _plan(reentry).stages["pre-release"].max_stay == d("30d")
    assert _plan(reentry, {"pre_release_window": d("90d")}).stages["pre-release"].max_stay == d("90d")
    from engine.errors import PlanError

    with pytest.raises(PlanError):
        _plan(reentry, {"pre_release_window": d("91d")})


def test_plan_runs_daily_contact_for_14_days_then_weekly(reentry: PathwaySpec) -> None:
    series = _plan(reentry).stages["community-care"].check_ins
    assert [(s.every, s.starts, s.span) for s in series] == [
        (d("1d"), timedelta(0), d("14d")),
        (d("1w"), d("14d"), None),
    ]


def test_plan_schedules_release_work_in_deadline_order(reentry: PathwaySpec) -> None:
    plan = _plan(reentry)
    (release,) = plan.transitions_on("pre-release", "custody.released")
    schedule = plan.schedule(release)
    assert [w.due for w in schedule] == sorted(w.due for w in schedule)
    kinds = {(w.kind, w.done_on) for w in schedule}
    assert {("handoff-step", "handoff.accepted"), ("handoff-step", "handoff.visit-kept")} <= kinds
    assert ("reconcile", "medications.reconciled") in kinds
    assert ("task", "prescription.filled") in kinds
    for work in schedule:  # each ladder starts at the deadline and climbs
        at = [rung.at for rung in work.ladder]
        assert at and at[0] >= work.due and at == sorted(at)


def test_plan_moves_into_residential_carry_authorization_and_reconciliation(detox: PathwaySpec) -> None:
    plan = _plan(detox)
    into = [t for t in plan.transitions if t.target == "residential"]
    assert len(into) >= 3
    for t in into:
        by_kind = {w.kind: w for w in t.work}
        assert by_kind["authorization"].due == d("72h")
        assert by_kind["reconcile"].due == d("24h")
        assert t.handoff is not None and t.handoff.role == "residential-intake"


def test_plan_refers_each_social_need_by_its_deadline(detox: PathwaySpec) -> None:
    referrals = _plan(detox).referrals
    assert referrals["housing"].due == d("2d") and referrals["housing"].match == {"need": "housing"}
    assert referrals["employment"].owner == "peer-recovery-coach"


# -- pregnancy and the postpartum year --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pregnancy() -> PathwaySpec:
    return _spec("pregnancy-postpartum.yaml")


def test_pregnancy_keeps_moud_through_delivery_and_requires_the_persons_moud_at_each_move(
    pregnancy: PathwaySpec,
) -> None:
    for into in ("delivery-hospital", "postpartum-early"):
        moves = _into(pregnancy, into)
        required = {(t.when.equals if isinstance(t.when, FactGuard) else None): t.requires_medication for t in moves}
        assert required == {"buprenorphine": ["buprenorphine"], "methadone": ["methadone"], None: []}
        assert all(t.reconcile is not None and t.handoff is not None for t in moves)
        assert moves[-1].when is None  # an unconfirmed MOUD still moves, and still reconciles


def test_pregnancy_handoffs_to_the_hospital_and_back_outlive_their_stages(pregnancy: PathwaySpec) -> None:
    for t in _into(pregnancy, "delivery-hospital") + _into(pregnancy, "postpartum-early"):
        assert t.handoff is not None and t.handoff.lasts == "episode"
    back = _into(pregnancy, "postpartum-early")[0].handoff
    assert back is not None
    steps = {s.kind: s.within for s in back.steps}
    assert steps["visit-kept"] == d("7d") and steps["outcome-returned"] == d("12w")  # ACOG 736: by 12 weeks
    safe_care = next(t for t in _stage(pregnancy, "prenatal").on_entry if t.id == "safe-care-plan")
    assert safe_care.lasts == "episode"  # an early delivery must not drop the infant's Plan of Safe Care


def test_postpartum_year_runs_peer_therapy_and_medication_contacts_side_by_side(pregnancy: PathwaySpec) -> None:
    year = _stage(pregnancy, "postpartum-year")
    assert {s.track: s.every for s in year.check_ins} == {"peer": d("1w"), "therapy": d("2w"), "medication": d("1mo")}
    assert year.expected_duration is not None and year.expected_duration.min == d("46w")  # to 12 months postpartum


# -- every shipped pathway on a manual clock ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SEEDS)
def test_a_silent_year_escalates_every_miss_once_and_never_crashes(name: str) -> None:
    """Enrolled and then nothing recorded for a year: each due rung fires once, and the open work stays finite."""
    from engine.clock import ManualClock
    from engine.episode.rules import enroll, fire_rung

    plan = compile_plan(_spec(name))
    clock = ManualClock()
    state = enroll(plan, "ep-silent", clock.now()).state
    fired: list[str] = []
    for _ in range(365):
        clock.advance(timedelta(days=1))
        while due := sorted(
            (r for i in state.items for r in i.rungs if r.status == "pending" and r.due_at <= clock.now()),
            key=lambda r: r.due_at,
        ):
            out = fire_rung(plan, state, due[0].id, clock.now())
            state, fired = out.state, fired + out.fired_rungs
    assert len(fired) == len(set(fired)) > 0
    assert len(state.items) < 50


def test_pregnancy_end_to_end_on_a_manual_clock() -> None:
    """Prenatal care, delivery and the postpartum year: the hospital's handoff outlives its stage, the outpatient
    handoff outlives the first six weeks, and the person's own MOUD is required on the hospital's list."""
    from engine.clock import ManualClock
    from engine.episode.rules import Event, apply_event, enroll

    plan = compile_plan(_spec("pregnancy-postpartum.yaml"))
    clock = ManualClock()
    state = enroll(plan, "ep-preg", clock.now()).state
    state.person = "P-TEST-1"
    from test_episode import tpo_consent

    state.consents = [tpo_consent()]
    n = 0

    def event(name: str, **data: Any) -> Any:
        nonlocal state, n
        n += 1
        out = apply_event(plan, state, Event(id=f"e{n}", name=name, data=data, at=clock.now()), clock.now())
        state = out.state
        return out

    event("moud.confirmed", moud="methadone")
    assert {i.key for i in state.items if i.kind == "check-in"} == {"s.prenatal.checkin.0", "s.prenatal.checkin.1"}
    clock.advance(timedelta(days=20))
    assert event("labor.admitted").moved == ("prenatal", "delivery-hospital")
    assert {i.key.rsplit(".", 1)[-1] for i in state.items if i.kind == "task"} == {"safe-care-plan", "delivery-plan"}
    event("medications.sending-list", medications=[{"name": "methadone", "dose": "90 mg"}])
    out = event("medications.receiving-list", medications=[{"name": "oxytocin", "reason": "delivery"}])
    alerts = [i for i in out.opened if i.kind == "alert" and i.severity == "critical"]
    assert len(alerts) == 1 and "methadone" in (alerts[0].note or "")
    event("handoff.accepted")
    event("handoff.visit-kept")
    clock.advance(timedelta(days=3))
    assert event("hospital.discharged").moved == ("delivery-hospital", "postpartum-early")
    assert len(state.handoffs) == 2  # the hospital's summary is still due, and the way back is open
    event("handoff.accepted")  # only the way back waits for an acceptance
    event("handoff.outcome-returned", handoff=state.handoffs[0].id)  # the hospital's discharge summary
    assert len(state.handoffs) == 1
    event("handoff.visit-kept")
    clock.advance(timedelta(weeks=6))
    assert event("early-postpartum.completed").moved == ("postpartum-early", "postpartum-year")
    assert [h.steps_met for h in state.handoffs] == [["accepted", "visit-kept"]]  # outcome by 12 weeks, still due
    tracks = {i.key for i in state.items if i.kind == "check-in"}
    assert tracks == {"s.postpartum-year.checkin.0", "s.postpartum-year.checkin.1", "s.postpartum-year.checkin.2"}
    event("handoff.outcome-returned")
    assert state.handoffs == []
    clock.advance(timedelta(weeks=46))
    assert event("postpartum-year.completed").moved == ("postpartum-year", "completed")
    assert state.status == "completed" and {i.kind for i in state.items} == {"alert"}  # an alert is delivered
