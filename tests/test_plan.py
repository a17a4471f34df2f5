"""The compiled plan: keys, absolute offsets, ladder math, check-in series and parameters."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest

from engine.errors import PlanError
from engine.language.guards import describe
from engine.language.model import PathwaySpec
from engine.plan.build import compile_plan
from engine.plan.model import Plan, RungPlan

H = timedelta(hours=1)
D = timedelta(days=1)
LADDER = [{"after": "0h", "to": "care-coordinator"}, {"after": "24h", "to": "supervisor"}]

BASE: dict[str, Any] = {
    "id": "reentry",
    "version": 3,
    "title": "Reentry",
    "description": "Synthetic test pathway",
    "asam_edition": 3,
    "parameters": {
        "pre_release_window": {"description": "Pre-release window", "default": "30d", "min": "7d", "max": "90d"}
    },
    "roles": {
        "care-coordinator": {"title": "Care coordinator"},
        "supervisor": {"title": "Supervisor"},
        "community-prescriber": {"title": "Community prescriber"},
        "peer-recovery-coach": {"title": "Peer recovery coach"},
        "prescriber": {"title": "Prescriber"},
    },
    "facts": {"insurance": {"type": "enum", "values": ["medicaid", "self-pay"]}},
    "events": {
        "enrolled.in-custody": {
            "description": "Enrolled",
            "payload": {"insurance": {"type": "enum", "values": ["medicaid", "self-pay"]}},
        },
        "custody.released": {"description": "Released from custody"},
        "moud.started": {"description": "MOUD started"},
        "contact.made": {"description": "Contact made"},
        "peer.contacted": {"description": "Peer contact"},
        "family.updated": {"description": "Family updated"},
        "episode.closed": {"description": "Closed"},
    },
    "stages": [
        {
            "id": "pre-release",
            "name": "Pre-release",
            "expected_duration": {"min": "1d", "max": "pre_release_window"},
            "on_entry": [
                {
                    "id": "start-moud",
                    "title": "Start or continue MOUD",
                    "owner": "prescriber",
                    "within": "pre_release_window",
                    "done_on": "moud.started",
                    "escalate": LADDER,
                },
                {
                    "id": "plan-release",
                    "title": "Release plan",
                    "owner": "care-coordinator",
                    "within": "7d",
                    "done_on": "moud.started",
                },
            ],
            "before_leaving": ["start-moud"],
        },
        {
            "id": "community",
            "name": "Community",
            "level": "1",
            "check_ins": [
                {
                    "every": "1d",
                    "window": "12h",
                    "for": "14d",
                    "owner": "peer-recovery-coach",
                    "done_on": "contact.made",
                },
                {
                    "every": "1w",
                    "window": "2d",
                    "for": "10w",
                    "owner": "care-coordinator",
                    "done_on": "contact.made",
                    "escalate": [{"after": "1d", "to": "supervisor"}],
                },
                {"every": "4w", "window": "3d", "owner": "care-coordinator", "done_on": "contact.made"},
            ],
            "peer_support": {
                "role": "peer-recovery-coach",
                "first_contact_within": "72h",
                "done_on": "peer.contacted",
                "escalate": LADDER,
            },
            "family": {
                "consent_purpose": "family-involvement",
                "update_every": "2w",
                "owner": "care-coordinator",
                "done_on": "family.updated",
            },
        },
        {"id": "closed", "name": "Closed", "terminal": True},
    ],
    "transitions": [
        {
            "from": "pre-release",
            "to": "community",
            "event": "custody.released",
            "handoff": {
                "receiver": {"program": "Eastside Clinic", "role": "community-prescriber"},
                "mode": "warm",
                "introduced_by": "care-coordinator",
                "consent_purpose": "treatment",
                "authorization": {
                    "required": True,
                    "within": "72h",
                    "unless": {"fact": "insurance", "equals": "self-pay"},
                    "escalate": [{"after": "12h", "to": "supervisor"}],
                },
                "steps": [
                    {"kind": "visit-kept", "within": "7d", "escalate": LADDER},
                    {"kind": "accepted", "within": "24h", "escalate": LADDER},
                ],
                "re_engage_within": "48h",
                "fallback": "pre-release",
            },
            "reconcile": {"within": "24h", "critical_to": ["prescriber", "supervisor"], "escalate": LADDER},
        },
        {"from": ["pre-release", "community"], "to": "closed", "event": "episode.closed"},
    ],
    "medications": {
        "critical": [{"name": "buprenorphine", "class": "MOUD", "rxnorm": ["1819"], "aliases": ["Suboxone"]}]
    },
    "social_needs": {
        "housing": {"refer_within": "3d", "owner": "care-coordinator", "escalate": LADDER},
        "identification": {"refer_within": "7d", "owner": "care-coordinator"},
    },
}


def spec(doc: dict[str, Any] | None = None) -> PathwaySpec:
    return PathwaySpec.model_validate(doc if doc is not None else BASE)


def plan(doc: dict[str, Any] | None = None, params: dict[str, timedelta] | None = None) -> Plan:
    return compile_plan(spec(doc), params)


def rungs(*pairs: tuple[timedelta, str]) -> tuple[RungPlan, ...]:
    return tuple(RungPlan(index=i, at=at, to=to) for i, (at, to) in enumerate(pairs))


def test_identity_and_initial_stage() -> None:
    p = plan()
    assert (p.pathway_id, p.version, p.initial_stage) == ("reentry", 3, "pre-release")
    assert list(p.stages) == ["pre-release", "community", "closed"]


def test_transition_work_is_ordered_by_deadline_with_absolute_rungs() -> None:
    t = plan().transitions[0]
    assert [(w.key, w.kind, w.due) for w in t.work] == [
        ("t0.handoff.accepted", "handoff-step", 24 * H),
        ("t0.reconcile", "reconcile", 24 * H),
        ("t0.authorization", "authorization", 72 * H),
        ("t0.handoff.visit-kept", "handoff-step", 7 * D),
    ]
    accepted, reconcile, auth, visit = t.work
    assert accepted.ladder == rungs((24 * H, "care-coordinator"), (48 * H, "supervisor"))
    assert visit.ladder == rungs((7 * D, "care-coordinator"), (8 * D, "supervisor"))
    assert auth.ladder == rungs((84 * H, "supervisor"))
    assert reconcile.ladder == rungs((24 * H, "care-coordinator"), (48 * H, "supervisor"))


def test_handoff_steps_are_met_by_builtin_events_and_need_consent() -> None:
    t = plan().transitions[0]
    step = next(w for w in t.work if w.key == "t0.handoff.visit-kept")
    assert step.done_on == "handoff.visit-kept"
    assert step.owner == "community-prescriber"
    assert step.consent_purpose == "treatment"
    assert step.title == "Eastside Clinic: first visit kept"
    assert t.handoff is not None
    assert (t.handoff.program, t.handoff.mode, t.handoff.introduced_by) == (
        "Eastside Clinic",
        "warm",
        "care-coordinator",
    )
    assert (t.handoff.re_engage_within, t.handoff.fallback) == (48 * H, "pre-release")


def test_authorization_carries_its_unless_guard_as_skip_if_and_reconcile_its_critical_roles() -> None:
    work = {w.kind: w for w in plan().transitions[0].work}
    assert work["authorization"].done_on == "authorization.approved"
    assert work["authorization"].skip_if is not None
    assert describe(work["authorization"].skip_if) == "insurance = self-pay"
    assert work["reconcile"].done_on == "medications.reconciled"
    assert work["reconcile"].critical_to == ("prescriber", "supervisor")


def test_authorization_owner_defaults_to_the_introducer_then_the_first_rung() -> None:
    def owner(doc: dict[str, Any]) -> str | None:
        return next(w.owner for w in plan(doc).transitions[0].work if w.kind == "authorization")

    doc = copy.deepcopy(BASE)
    assert owner(doc) == "care-coordinator"
    doc["transitions"][0]["handoff"]["authorization"]["owner"] = "prescriber"
    assert owner(doc) == "prescriber"
    del doc["transitions"][0]["handoff"]["authorization"]["owner"]
    doc["transitions"][0]["handoff"] |= {"mode": "standard", "introduced_by": None}
    assert owner(doc) == "supervisor"


def test_a_max_stay_is_a_deadline_for_the_stage_owner() -> None:
    doc = copy.deepcopy(BASE)
    stay = next(w for w in plan(doc).stages["pre-release"].entry_work if w.kind == "stay")
    assert (stay.key, stay.due, stay.owner, stay.ladder) == ("s.pre-release.stay", 30 * D, None, ())
    doc["stages"][0]["owner"] = "care-coordinator"
    stay = next(w for w in plan(doc).stages["pre-release"].entry_work if w.kind == "stay")
    assert (stay.title, stay.owner) == ("Pre-release: stay within the expected 30d", "care-coordinator")
    assert stay.ladder == rungs((30 * D, "care-coordinator")), "no ladder: the owner hears at max"
    doc["stages"][0]["expected_duration"]["escalate"] = [{"after": "1d", "to": "supervisor"}]
    stay = next(
        w for w in plan(doc, {"pre_release_window": 60 * D}).stages["pre-release"].entry_work if w.kind == "stay"
    )
    assert (stay.due, stay.ladder) == (60 * D, rungs((61 * D, "supervisor")))
    assert not [w for s in plan(doc).stages.values() if s.terminal for w in s.entry_work if w.kind == "stay"]


def test_authorization_not_required_schedules_nothing() -> None:
    doc = copy.deepcopy(BASE)
    doc["transitions"][0]["handoff"]["authorization"]["required"] = False
    assert "authorization" not in {w.kind for w in plan(doc).transitions[0].work}


def test_transition_without_handoff_or_reconcile_has_no_work() -> None:
    t = plan().transitions[1]
    assert (t.sources, t.target, t.handoff, t.work) == (("pre-release", "community"), "closed", None, ())


def test_stage_entry_work_tasks_peer_contact_and_family_update() -> None:
    p = plan()
    pre = p.stages["pre-release"]
    assert [(w.key, w.due) for w in pre.entry_work] == [
        ("s.pre-release.task.plan-release", 7 * D),
        ("s.pre-release.stay", 30 * D),
        ("s.pre-release.task.start-moud", 30 * D),
    ]
    assert pre.before_leaving == ("start-moud",)
    community = {w.kind: w for w in p.stages["community"].entry_work}
    peer = community["peer-contact"]
    assert (peer.key, peer.owner, peer.due, peer.done_on) == (
        "s.community.peer-contact",
        "peer-recovery-coach",
        72 * H,
        "peer.contacted",
    )
    assert peer.ladder == rungs((72 * H, "care-coordinator"), (96 * H, "supervisor"))
    family = community["family-update"]
    assert (family.key, family.due, family.every, family.consent_purpose) == (
        "s.community.family-update",
        14 * D,
        14 * D,
        "family-involvement",
    )


def test_check_in_series_follow_one_another() -> None:
    series = plan().stages["community"].check_ins
    assert [(s.key, s.starts, s.span, s.every, s.window) for s in series] == [
        ("s.community.checkin.0", timedelta(0), 14 * D, D, 12 * H),
        ("s.community.checkin.1", 14 * D, 70 * D, 7 * D, 2 * D),
        ("s.community.checkin.2", 84 * D, None, 28 * D, 3 * D),
    ]


def test_check_in_without_ladder_alerts_its_owner_when_the_window_closes() -> None:
    daily, weekly, monthly = plan().stages["community"].check_ins
    assert daily.ladder == rungs((12 * H, "peer-recovery-coach"))
    assert monthly.ladder == rungs((3 * D, "care-coordinator"))
    assert weekly.ladder == rungs((3 * D, "supervisor"))  # window 2d + after 1d, counted from the opening


def test_referral_per_social_need() -> None:
    referrals = plan().referrals
    assert list(referrals) == ["housing", "identification"]
    housing = referrals["housing"]
    assert (housing.key, housing.kind, housing.due, housing.done_on, housing.match) == (
        "r.housing",
        "referral",
        3 * D,
        "referral.made",
        {"need": "housing"},
    )
    assert housing.ladder == rungs((3 * D, "care-coordinator"), (4 * D, "supervisor"))
    assert referrals["identification"].ladder == ()


def test_stay_limits_resolve_parameters() -> None:
    pre = plan().stages["pre-release"]
    assert (pre.min_stay, pre.max_stay) == (D, 30 * D)
    assert (plan().stages["closed"].min_stay, plan().stages["closed"].max_stay) == (None, None)


def test_parameter_given_at_enrollment_overrides_the_default_everywhere() -> None:
    p = plan(params={"pre_release_window": 90 * D})
    assert p.parameters == {"pre_release_window": 90 * D}
    assert p.stages["pre-release"].max_stay == 90 * D
    moud = next(w for w in p.stages["pre-release"].entry_work if w.key.endswith("start-moud"))
    assert moud.due == 90 * D
    assert moud.ladder == rungs((90 * D, "care-coordinator"), (91 * D, "supervisor"))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"pre_release_window": 120 * D}, "parameter 'pre_release_window' is 120d, above its max 90d"),
        ({"pre_release_window": 3 * D}, "parameter 'pre_release_window' is 3d, below its min 7d"),
        ({"release_window": 30 * D}, "unknown parameter 'release_window' (known: pre_release_window)"),
        ({"pre_release_window": "30d"}, "parameter 'pre_release_window' is not a duration: '30d'"),
    ],
)
def test_bad_parameters_raise_plan_error(params: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError) as caught:
        plan(params=params)
    assert str(caught.value) == message


def test_keys_are_unique_across_the_plan() -> None:
    p = plan()
    keys = [w.key for t in p.transitions for w in t.work]
    keys += [w.key for s in p.stages.values() for w in s.entry_work]
    keys += [c.key for s in p.stages.values() for c in s.check_ins]
    keys += [w.key for w in p.referrals.values()]
    assert len(keys) == len(set(keys)) == 14


def test_schedule_merges_transition_work_with_target_entry_work_by_deadline() -> None:
    p = plan()
    assert [(w.due, w.key) for w in p.schedule(p.transitions[0])] == [
        (24 * H, "t0.handoff.accepted"),
        (24 * H, "t0.reconcile"),
        (72 * H, "s.community.peer-contact"),
        (72 * H, "t0.authorization"),
        (7 * D, "t0.handoff.visit-kept"),
        (14 * D, "s.community.family-update"),
    ]


def test_transitions_on_stage_and_event() -> None:
    p = plan()
    assert [t.index for t in p.transitions_on("community", "episode.closed")] == [1]
    assert p.transitions_on("community", "custody.released") == []


def test_events_include_builtins_and_declared_payloads() -> None:
    events = plan().events
    assert events["handoff.accepted"]["builtin"] is True
    assert events["need.identified"]["payload"] == {"need": {"type": "string", "required": True}}
    assert events["enrolled.in-custody"] == {
        "description": "Enrolled",
        "builtin": False,
        "payload": {"insurance": {"type": "enum", "required": True, "values": ["medicaid", "self-pay"]}},
    }


def test_facts_and_critical_medications_are_plain_data() -> None:
    p = plan()
    assert p.facts == {"insurance": {"type": "enum", "values": ["medicaid", "self-pay"], "description": None}}
    assert p.critical_medications == (
        {"name": "buprenorphine", "class": "MOUD", "rxnorm": ["1819"], "aliases": ["Suboxone"]},
    )


def test_plan_round_trips_through_json() -> None:
    p = plan()
    text = json.dumps(p.model_dump(mode="json"))
    again = Plan.model_validate(json.loads(text))
    assert again == p
    assert json.loads(text)["transitions"][0]["work"][0]["due"] == "P1D"


def test_only_last_series_may_be_open_ended() -> None:
    doc = copy.deepcopy(BASE)
    del doc["stages"][1]["check_ins"][0]["for"]
    with pytest.raises(PlanError, match="only the last check-in series may omit 'for'"):
        plan(doc)


def test_duplicate_task_ids_cannot_give_duplicate_keys() -> None:
    doc = copy.deepcopy(BASE)
    doc["stages"][0]["on_entry"][1]["id"] = "start-moud"
    with pytest.raises(PlanError) as caught:
        plan(doc)
    assert str(caught.value) == "two pieces of work have the key 's.pre-release.task.start-moud' (duplicate ids?)"


def test_compiling_is_deterministic() -> None:
    assert plan() == plan()
