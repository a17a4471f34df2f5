"""Meaning checks: each mistake a designer makes is reported at its document path with an actionable message."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.errors import Finding
from engine.language.model import PathwaySpec
from engine.language.semantics import check
from engine.language.suggest import unknown
from engine.plan.build import compile_plan
from engine.plan.mermaid import mermaid
from engine.plan.text import plan_table

LADDER = [{"after": "0h", "to": "care-coordinator"}, {"after": "24h", "to": "supervisor"}]

BASE: dict[str, Any] = {
    "id": "detox-to-aftercare",
    "version": 1,
    "title": "Detox to aftercare",
    "description": "Synthetic test pathway",
    "asam_edition": 3,
    "parameters": {"residential_max": {"description": "Longest residential stay", "default": "30d", "max": "60d"}},
    "roles": {
        "care-coordinator": {"title": "Care coordinator"},
        "supervisor": {"title": "Supervisor"},
        "residential-intake": {"title": "Residential intake"},
        "prescriber": {"title": "Prescriber"},
        "peer-recovery-coach": {"title": "Peer recovery coach"},
    },
    "facts": {
        "insurance": {"type": "enum", "values": ["commercial", "medicaid", "self-pay"]},
        "authorization_denied": {"type": "boolean"},
        "risk_score": {"type": "number"},
    },
    "events": {
        "detox.completed": {
            "description": "Detox unit discharges",
            "payload": {"insurance": {"type": "enum", "values": ["commercial", "medicaid", "self-pay"]}},
        },
        "insurance.decided": {
            "description": "Payer decides",
            "payload": {"authorization_denied": {"type": "boolean"}},
        },
        "residential.completed": {"description": "Residential discharge"},
        "relapse.reported": {"description": "A relapse is reported"},
        "screening.completed": {"description": "A screening is done"},
        "contact.made": {"description": "A contact is recorded"},
        "peer.contacted": {"description": "First peer contact"},
        "family.updated": {"description": "Family was updated"},
    },
    "stages": [
        {
            "id": "detox",
            "name": "Withdrawal management",
            "level": "3.7-WM",
            "owner": "care-coordinator",
            "expected_duration": {"min": "3d", "max": "14d"},
            "on_entry": [
                {
                    "id": "screen-medical",
                    "title": "Medical screening",
                    "owner": "care-coordinator",
                    "within": "24h",
                    "done_on": "screening.completed",
                    "escalate": LADDER,
                }
            ],
            "before_leaving": ["screen-medical"],
        },
        {
            "id": "residential",
            "name": "Residential",
            "level": "3.5",
            "owner": "care-coordinator",
            "expected_duration": {"min": "7d", "max": "residential_max"},
            "family": {
                "consent_purpose": "family-involvement",
                "update_every": "1w",
                "owner": "care-coordinator",
                "done_on": "family.updated",
            },
        },
        {
            "id": "aftercare",
            "name": "Aftercare",
            "level": "1",
            "terminal": True,
            "check_ins": [
                {
                    "every": "1d",
                    "window": "12h",
                    "for": "14d",
                    "owner": "peer-recovery-coach",
                    "done_on": "contact.made",
                },
                {"every": "1w", "window": "2d", "owner": "peer-recovery-coach", "done_on": "contact.made"},
            ],
            "peer_support": {
                "role": "peer-recovery-coach",
                "first_contact_within": "72h",
                "done_on": "peer.contacted",
                "escalate": LADDER,
            },
        },
    ],
    "transitions": [
        {
            "from": "detox",
            "to": "residential",
            "event": "detox.completed",
            "when": {
                "all": [
                    {"fact": "insurance", "is_set": True},
                    {"not": {"fact": "authorization_denied", "equals": True}},
                ]
            },
            "handoff": {
                "receiver": {"program": "Riverside Residential", "role": "residential-intake"},
                "mode": "warm",
                "introduced_by": "care-coordinator",
                "consent_purpose": "treatment",
                "authorization": {
                    "required": True,
                    "within": "72h",
                    "unless": {"fact": "insurance", "equals": "self-pay"},
                    "escalate": LADDER,
                },
                "steps": [
                    {"kind": "accepted", "within": "24h", "escalate": LADDER},
                    {"kind": "visit-kept", "within": "72h"},
                ],
                "fallback": "aftercare",
            },
            "reconcile": {"within": "24h", "critical_to": ["prescriber"], "escalate": LADDER},
        },
        {"from": "detox", "to": "aftercare", "event": "detox.completed"},
        {"from": "residential", "to": "aftercare", "event": "residential.completed"},
        {"from": "residential", "to": "detox", "event": "relapse.reported"},
    ],
    "medications": {"critical": [{"name": "buprenorphine", "class": "MOUD", "rxnorm": ["1819"]}]},
    "social_needs": {"housing": {"refer_within": "3d", "owner": "care-coordinator", "escalate": LADDER}},
}


def base() -> dict[str, Any]:
    """A fresh copy of a small valid pathway to mutate."""
    return copy.deepcopy(BASE)


def findings(doc: dict[str, Any]) -> list[Finding]:
    return check(PathwaySpec.model_validate(doc))


def error(path: tuple[str | int, ...], message: str) -> Finding:
    return Finding(path, message, "error")


def warning(path: tuple[str | int, ...], message: str) -> Finding:
    return Finding(path, message, "warning")


def test_base_pathway_is_clean() -> None:
    assert findings(base()) == []


# -- identities -------------------------------------------------------------------------------------------------


def test_duplicate_stage_id() -> None:
    doc = base()
    doc["stages"].append({**doc["stages"][2], "name": "Second aftercare"})
    assert findings(doc) == [error(("stages", 3, "id"), "duplicate stage id 'aftercare'")]


def test_duplicate_task_id_in_a_stage() -> None:
    doc = base()
    tasks = doc["stages"][0]["on_entry"]
    tasks.append({**tasks[0], "title": "Again"})
    assert findings(doc) == [
        error(("stages", 0, "on_entry", 1, "id"), "duplicate task id 'screen-medical' in stage 'detox'")
    ]


def test_same_task_id_in_two_stages_is_fine() -> None:
    doc = base()
    doc["stages"][1]["on_entry"] = copy.deepcopy(doc["stages"][0]["on_entry"])
    assert findings(doc) == []


def test_duplicate_handoff_step() -> None:
    doc = base()
    doc["transitions"][0]["handoff"]["steps"].append({"kind": "accepted", "within": "96h"})
    assert findings(doc) == [
        error(("transitions", 0, "handoff", "steps", 2, "kind"), "duplicate handoff step 'accepted'")
    ]


# -- references -------------------------------------------------------------------------------------------------


def test_unknown_transition_target_suggests_the_close_stage() -> None:
    doc = base()
    doc["transitions"][0]["to"] = "residental"
    found = findings(doc)
    assert error(("transitions", 0, "to"), "unknown stage 'residental' (did you mean 'residential'?)") in found


def test_unknown_source_in_a_list_is_addressed_by_position() -> None:
    doc = base()
    doc["transitions"][2]["from"] = ["residential", "iop"]
    assert findings(doc) == [error(("transitions", 2, "from", 1), "unknown stage 'iop'")]


def test_unknown_fallback_stage() -> None:
    doc = base()
    doc["transitions"][0]["handoff"]["fallback"] = "aftercar"
    assert findings(doc) == [
        error(("transitions", 0, "handoff", "fallback"), "unknown stage 'aftercar' (did you mean 'aftercare'?)")
    ]


@pytest.mark.parametrize(
    ("where", "path"),
    [
        (lambda d: d["stages"][0]["on_entry"][0], ("stages", 0, "on_entry", 0, "owner")),
        (lambda d: d["stages"][2]["check_ins"][1], ("stages", 2, "check_ins", 1, "owner")),
        (lambda d: d["stages"][1]["family"], ("stages", 1, "family", "owner")),
        (lambda d: d["social_needs"]["housing"], ("social_needs", "housing", "owner")),
        (lambda d: d["stages"][1], ("stages", 1, "owner")),
        (
            lambda d: d["transitions"][0]["handoff"]["authorization"],
            ("transitions", 0, "handoff", "authorization", "owner"),
        ),
    ],
)
def test_unknown_owner_role(where: Any, path: tuple[str | int, ...]) -> None:
    doc = base()
    where(doc)["owner"] = "care-cordinator"
    assert findings(doc) == [error(path, "unknown role 'care-cordinator' (did you mean 'care-coordinator'?)")]


def test_unknown_roles_in_handoff_reconcile_peer_support_and_ladders() -> None:
    doc = base()
    t = doc["transitions"][0]
    t["handoff"]["receiver"]["role"] = "intake"
    t["handoff"]["introduced_by"] = "nurse"
    t["reconcile"]["critical_to"] = ["prescriber", "prescribr"]
    t["handoff"]["steps"][0]["escalate"] = [{"after": "0h", "to": "supervisr"}]
    doc["stages"][2]["peer_support"]["role"] = "peer"
    assert findings(doc) == [
        error(("stages", 2, "peer_support", "role"), "unknown role 'peer'"),
        error(("transitions", 0, "handoff", "receiver", "role"), "unknown role 'intake'"),
        error(("transitions", 0, "handoff", "introduced_by"), "unknown role 'nurse'"),
        error(
            ("transitions", 0, "reconcile", "critical_to", 1), "unknown role 'prescribr' (did you mean 'prescriber'?)"
        ),
        error(
            ("transitions", 0, "handoff", "steps", 0, "escalate", 0, "to"),
            "unknown role 'supervisr' (did you mean 'supervisor'?)",
        ),
    ]


def test_before_leaving_names_an_unknown_task() -> None:
    doc = base()
    doc["stages"][0]["before_leaving"] = ["screen-medicl"]
    assert findings(doc) == [
        error(("stages", 0, "before_leaving", 0), "unknown task 'screen-medicl' (did you mean 'screen-medical'?)")
    ]


def test_before_leaving_only_sees_its_own_stage_tasks() -> None:
    doc = base()
    doc["stages"][1]["before_leaving"] = ["screen-medical"]
    assert findings(doc) == [error(("stages", 1, "before_leaving", 0), "unknown task 'screen-medical'")]


def test_duration_naming_an_unknown_parameter() -> None:
    doc = base()
    doc["stages"][1]["expected_duration"]["max"] = "residential_mx"
    doc["transitions"][0]["handoff"]["steps"][0]["escalate"] = [{"after": "grace", "to": "supervisor"}]
    assert findings(doc) == [
        error(
            ("stages", 1, "expected_duration", "max"),
            "unknown parameter 'residential_mx' (did you mean 'residential_max'?)",
        ),
        error(("transitions", 0, "handoff", "steps", 0, "escalate", 0, "after"), "unknown parameter 'grace'"),
    ]


def test_unknown_event_in_transition_and_done_on() -> None:
    doc = base()
    doc["transitions"][2]["event"] = "residential.complete"
    doc["stages"][2]["check_ins"][0]["done_on"] = "contact.mad"
    found = findings(doc)
    assert found == [
        error(
            ("transitions", 2, "event"),
            "unknown event 'residential.complete' (did you mean 'residential.completed'?)",
        ),
        error(("stages", 2, "check_ins", 0, "done_on"), "unknown event 'contact.mad' (did you mean 'contact.made'?)"),
        warning(("events", "residential.completed"), "event 'residential.completed' is declared but never used"),
    ]


def test_builtin_events_need_no_declaration() -> None:
    doc = base()
    doc["stages"][0]["on_entry"][0]["done_on"] = "medications.reconciled"
    doc["events"].pop("screening.completed")
    assert findings(doc) == []


def test_declared_event_never_used_is_a_warning() -> None:
    doc = base()
    doc["events"]["naloxone.given"] = {"description": "Naloxone kit handed over"}
    assert findings(doc) == [warning(("events", "naloxone.given"), "event 'naloxone.given' is declared but never used")]


def test_event_that_only_sets_a_fact_counts_as_used() -> None:
    doc = base()
    assert "insurance.decided" not in {t["event"] for t in doc["transitions"]}
    assert findings(doc) == []


# -- durations --------------------------------------------------------------------------------------------------


def test_a_stage_with_a_max_stay_and_no_owner_is_a_warning() -> None:
    doc = base()
    del doc["stages"][0]["owner"]
    assert findings(doc) == [
        warning(
            ("stages", 0, "expected_duration", "max"),
            "stage 'detox' has no owner: nobody would be alerted when a stay passes its max (add owner)",
        )
    ]
    doc["stages"][0]["expected_duration"]["escalate"] = [{"after": "1d", "to": "supervisor"}]
    assert findings(doc) == [], "a ladder of its own reaches someone"
    del doc["stages"][1]["owner"]
    doc["stages"][1]["expected_duration"] = {"min": "7d"}
    assert findings(doc) == [], "an open-ended stay needs nobody"


def test_a_stay_ladder_is_checked_like_any_other() -> None:
    doc = base()
    doc["stages"][0]["expected_duration"]["escalate"] = [
        {"after": "1d", "to": "supervisr"},
        {"after": "0h", "to": "supervisor"},
    ]
    assert findings(doc) == [
        error(
            ("stages", 0, "expected_duration", "escalate", 0, "to"),
            "unknown role 'supervisr' (did you mean 'supervisor'?)",
        ),
        error(
            ("stages", 0, "expected_duration", "escalate", 1, "after"),
            "after 0h is not later than the rung before (1d)",
        ),
    ]


def test_an_authorization_nobody_would_hear_about_is_a_warning() -> None:
    doc = base()
    handoff = doc["transitions"][0]["handoff"]
    handoff["mode"] = "standard"
    del handoff["introduced_by"], handoff["authorization"]["escalate"]
    assert findings(doc) == [
        warning(
            ("transitions", 0, "handoff", "authorization"),
            "authorization has no owner: nobody would be alerted of a denial (add owner)",
        )
    ]
    handoff["authorization"]["owner"] = "care-coordinator"
    assert findings(doc) == []


def test_min_greater_than_max() -> None:
    doc = base()
    doc["stages"][0]["expected_duration"] = {"min": "14d", "max": "3d"}
    assert findings(doc) == [error(("stages", 0, "expected_duration", "max"), "max 3d is less than min 14d")]


def test_min_greater_than_a_parameter_max_shows_the_parameter() -> None:
    doc = base()
    doc["stages"][1]["expected_duration"]["min"] = "6w"
    assert findings(doc) == [
        error(("stages", 1, "expected_duration", "max"), "max residential_max (30d) is less than min 6w")
    ]


def test_escalation_ladder_must_increase() -> None:
    doc = base()
    doc["social_needs"]["housing"]["escalate"] = [
        {"after": "24h", "to": "care-coordinator"},
        {"after": "1d", "to": "supervisor"},
        {"after": "12h", "to": "supervisor"},
        {"after": "3d", "to": "supervisor"},
    ]
    assert findings(doc) == [
        error(("social_needs", "housing", "escalate", 1, "after"), "after 1d is not later than the rung before (24h)"),
        error(("social_needs", "housing", "escalate", 2, "after"), "after 12h is not later than the rung before (24h)"),
    ]


def test_parameter_default_outside_its_range() -> None:
    doc = base()
    doc["parameters"]["residential_max"]["default"] = "90d"
    doc["parameters"]["grace"] = {"description": "Grace", "default": "1h", "min": "2h"}
    assert findings(doc) == [
        error(("parameters", "residential_max", "default"), "default 90d is above max 60d"),
        error(("parameters", "grace", "default"), "default 1h is below min 2h"),
    ]


def test_parameter_min_above_max() -> None:
    doc = base()
    doc["parameters"]["residential_max"]["min"] = "9w"
    assert findings(doc) == [error(("parameters", "residential_max", "max"), "max 60d is less than min 9w")]


def test_parameter_cannot_name_another_parameter() -> None:
    doc = base()
    doc["parameters"]["residential_max"]["default"] = "other"
    assert findings(doc) == [
        error(("parameters", "residential_max", "default"), "'other' is not a duration (e.g. 10d)")
    ]


# -- facts and guards -------------------------------------------------------------------------------------------


def test_enum_fact_without_values() -> None:
    doc = base()
    doc["facts"]["housing_status"] = {"type": "enum"}
    assert findings(doc) == [error(("facts", "housing_status"), "enum fact 'housing_status' needs values")]


def test_guard_naming_an_undeclared_fact() -> None:
    doc = base()
    doc["transitions"][0]["when"]["all"][1]["not"]["fact"] = "authorisation_denied"
    assert findings(doc) == [
        error(
            ("transitions", 0, "when", "all", 1, "not", "fact"),
            "unknown fact 'authorisation_denied' (did you mean 'authorization_denied'?)",
        )
    ]


def test_authorization_unless_is_checked_like_a_guard() -> None:
    doc = base()
    doc["transitions"][0]["handoff"]["authorization"]["unless"] = {"fact": "insurance", "equals": "selfpay"}
    assert findings(doc) == [
        error(
            ("transitions", 0, "handoff", "authorization", "unless", "equals"),
            "'selfpay' is not a value of 'insurance' (commercial, medicaid, self-pay)",
        )
    ]


def test_guard_value_not_in_enum_values() -> None:
    doc = base()
    doc["transitions"][1]["when"] = {"any": [{"fact": "insurance", "in": ["medicaid", "medicare"]}]}
    assert findings(doc) == [
        error(
            ("transitions", 1, "when", "any", 0, "in", 1),
            "'medicare' is not a value of 'insurance' (commercial, medicaid, self-pay)",
        )
    ]


def test_guard_value_of_the_wrong_type() -> None:
    doc = base()
    doc["transitions"][1]["when"] = {
        "any": [{"fact": "authorization_denied", "equals": "no"}, {"fact": "risk_score", "not_equals": "high"}]
    }
    assert findings(doc) == [
        error(
            ("transitions", 1, "when", "any", 0, "equals"),
            "'no' is not true or false ('authorization_denied' is boolean)",
        ),
        error(("transitions", 1, "when", "any", 1, "not_equals"), "'high' is not a number ('risk_score' is number)"),
    ]


def test_at_least_on_a_non_number_fact() -> None:
    doc = base()
    doc["transitions"][1]["when"] = {"fact": "insurance", "at_least": 2}
    assert findings(doc) == [
        error(("transitions", 1, "when", "at_least"), "at_least needs a number fact; 'insurance' is enum")
    ]


def test_at_most_on_a_number_fact_is_fine() -> None:
    doc = base()
    doc["transitions"][1]["when"] = {"fact": "risk_score", "at_most": 2}
    assert findings(doc) == []


def test_payload_field_named_like_a_fact_with_another_type() -> None:
    doc = base()
    doc["events"]["insurance.decided"]["payload"]["authorization_denied"]["type"] = "string"
    assert findings(doc) == [
        warning(
            ("events", "insurance.decided", "payload", "authorization_denied", "type"),
            "field 'authorization_denied' is string but fact 'authorization_denied' is boolean",
        )
    ]


# -- check-ins and handoffs -------------------------------------------------------------------------------------


def test_only_last_check_in_series_may_omit_for() -> None:
    doc = base()
    del doc["stages"][2]["check_ins"][0]["for"]
    assert findings(doc) == [error(("stages", 2, "check_ins", 0), "only the last check-in series may omit 'for'")]


def test_zero_cadence() -> None:
    doc = base()
    doc["stages"][2]["check_ins"][1]["every"] = "0d"
    doc["stages"][2]["check_ins"][1]["window"] = "0h"
    assert findings(doc) == [error(("stages", 2, "check_ins", 1, "every"), "every must be longer than 0")]


def test_window_longer_than_cadence_is_a_warning() -> None:
    doc = base()
    doc["stages"][2]["check_ins"][0]["window"] = "36h"
    assert findings(doc) == [
        warning(("stages", 2, "check_ins", 0, "window"), "window 36h is longer than every 1d; contacts overlap")
    ]


def test_warm_handoff_without_introduced_by() -> None:
    doc = base()
    del doc["transitions"][0]["handoff"]["introduced_by"]
    assert findings(doc) == [error(("transitions", 0, "handoff"), "a warm handoff needs introduced_by")]


def test_standard_handoff_needs_no_introduction() -> None:
    doc = base()
    del doc["transitions"][0]["handoff"]["introduced_by"]
    doc["transitions"][0]["handoff"]["mode"] = "standard"
    assert findings(doc) == []


# -- the stage graph --------------------------------------------------------------------------------------------


def test_unreachable_stage() -> None:
    doc = base()
    doc["stages"].append({"id": "iop", "name": "IOP", "level": "2.1"})
    doc["transitions"].append({"from": "iop", "to": "aftercare", "event": "residential.completed"})
    assert findings(doc) == [error(("stages", 3), "stage 'iop' cannot be reached from 'detox'")]


def test_fallback_makes_a_stage_reachable() -> None:
    doc = base()
    doc["stages"].append({"id": "iop", "name": "IOP", "level": "2.1"})
    doc["transitions"].append({"from": "iop", "to": "aftercare", "event": "residential.completed"})
    doc["transitions"][0]["handoff"]["fallback"] = "iop"
    assert findings(doc) == []


def test_non_terminal_stage_without_a_way_out() -> None:
    doc = base()
    doc["transitions"] = [t for t in doc["transitions"] if t["from"] != "residential"]
    doc["events"]["relapse.reported"]["payload"] = {"risk_score": {"type": "number"}}
    doc["events"]["residential.completed"]["payload"] = {"risk_score": {"type": "number"}}
    assert findings(doc) == [error(("stages", 1), "stage 'residential' has no way out and is not terminal")]


def test_terminal_stage_with_an_outgoing_transition() -> None:
    doc = base()
    doc["transitions"].append({"from": ["residential", "aftercare"], "to": "detox", "event": "relapse.reported"})
    found = findings(doc)
    assert error(("transitions", 4, "from", 1), "transition leaves terminal stage 'aftercare'") in found


def test_unguarded_self_transition_is_a_warning() -> None:
    doc = base()
    doc["transitions"].append({"from": "residential", "to": "residential", "event": "screening.completed"})
    assert findings(doc) == [
        warning(("transitions", 4, "to"), "transition from 'residential' to itself has no guard"),
    ]


def test_guarded_self_transition_is_fine() -> None:
    doc = base()
    doc["transitions"].append(
        {
            "from": "residential",
            "to": "residential",
            "event": "screening.completed",
            "when": {"fact": "risk_score", "at_least": 3},
        }
    )
    assert findings(doc) == []


def test_transition_after_an_unguarded_one_on_the_same_stage_and_event_never_fires() -> None:
    doc = base()
    doc["transitions"].append({"from": ["residential", "detox"], "to": "aftercare", "event": "detox.completed"})
    assert findings(doc) == [
        error(
            ("transitions", 4, "event"),
            "never fires: transitions[1] already leaves 'detox' on 'detox.completed' without a guard",
        )
    ]


def test_guarded_transition_before_unguarded_one_is_the_normal_pattern() -> None:
    doc = base()
    assert doc["transitions"][0]["when"] and "when" not in doc["transitions"][1]
    assert findings(doc) == []


def test_every_problem_is_reported_not_only_the_first() -> None:
    doc = base()
    doc["transitions"][0]["to"] = "residental"
    doc["stages"][0]["expected_duration"] = {"min": "14d", "max": "3d"}
    doc["facts"]["housing_status"] = {"type": "enum"}
    doc["stages"][0]["on_entry"][0]["owner"] = "nobody"
    assert len({f.path for f in findings(doc)}) >= 4


def test_unknown_names_get_a_suggestion_only_when_one_is_close() -> None:
    assert unknown("stage", "zzz", ["detox", "residential"]) == "unknown stage 'zzz'"
    assert unknown("stage", "detx", ["detox", "residential"]) == "unknown stage 'detx' (did you mean 'detox'?)"


# -- robustness -------------------------------------------------------------------------------------------------


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] + ([path] if path else [])
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))] + ([path] if path else [])
    return [path]


_PATHS = _leaves(BASE)
_VALUES = st.sampled_from(
    [
        "detox",
        "residential",
        "aftercare",
        "nowhere",
        "care-coordinator",
        "supervisor",
        "ghost",
        "0h",
        "24h",
        "14d",
        "residential_max",
        "unknown_param",
        "detox.completed",
        "contact.made",
        "x.y",
        True,
        False,
        0,
        3,
        [],
        None,
        {"fact": "insurance", "equals": "medicaid"},
        {"fact": "risk_score", "at_least": 1},
        {"fact": "nope", "is_set": True},
        ["detox", "residential"],
        "DELETE",
    ]
)


def _mutate(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    parent: Any = doc
    for part in path[:-1]:
        parent = parent[part]
    if value == "DELETE":
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_PATHS), _VALUES), min_size=1, max_size=4))
def test_any_model_valid_pathway_is_checked_planned_and_drawn_without_a_crash(
    edits: list[tuple[tuple[Any, ...], Any]],
) -> None:
    doc = base()
    for path, value in edits:
        try:
            _mutate(doc, path, value)
        except (KeyError, IndexError, TypeError):
            continue
    try:
        spec = PathwaySpec.model_validate(doc)
    except ValidationError:
        return
    found = check(spec)
    assert all(f.message and f.message == f.message.rstrip(".") for f in found)
    if any(f.severity == "error" for f in found):
        return
    plan = compile_plan(spec)
    assert plan_table(plan) and mermaid(plan).startswith("flowchart LR")
