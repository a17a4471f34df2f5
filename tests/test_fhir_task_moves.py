"""A receiver's change of a Task read as a handoff move: every receiver move from every reachable state round-trips
through the Task; anything else is refused in one line naming the states."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from fhir_data import EPISODE, PSEUDONYM, T0, VISIT, handoff_record, reachable_states

from engine.episode.domain.handoff import HandoffState, legal_moves, move
from engine.fhir import TaskChangeError, TaskMove, apply_json_patch, move_from_task_change, task
from engine.fhir.ids import instant
from engine.fhir.task_moves import CHANGEABLE, _receiver_targets

STATES = reachable_states()
#: Details unlike the walk's, so a re-schedule changes the Task.
LATER = VISIT + timedelta(days=1)
NEW: dict[str, Any] = {"reason": "waiting list full", "appointment_at": LATER, "outcome": "engaged in care"}
EXPECTED_DETAILS = {
    "schedule": ("appointment_at", instant(LATER)),
    "return-outcome": ("outcome", "engaged in care"),
    **{a: ("reason", "waiting list full") for a in ("decline", "hold", "fail", "cancel")},
}


def as_task(state: HandoffState) -> dict[str, Any]:
    return task(handoff_record(state), EPISODE, PSEUDONYM, [], now=T0)


def changed_task(current: dict[str, Any], new_state: HandoffState) -> dict[str, Any]:
    """``current`` with what a receiver may change taken from the Task of ``new_state``."""
    new = as_task(new_state)
    out = {k: v for k, v in current.items() if k not in CHANGEABLE}
    return out | {k: new[k] for k in CHANGEABLE if k in new}


def _cases() -> list[tuple[str, str]]:
    return [
        ("/".join(str(p) for p in key), action)
        for key, state in sorted(STATES.items(), key=str)
        for action, parties in legal_moves(state)
        if "receiver" in parties
    ]


CASES = _cases()
BY_NAME = {"/".join(str(p) for p in key): state for key, state in STATES.items()}


def test_every_receiver_move_is_covered() -> None:
    assert {a for _s, a in CASES} == {
        "receive",
        "accept",
        "decline",
        "schedule",
        "no-show",
        "cancel-visit",
        "keep",
        "return-outcome",
        "hold",
        "resume",
        "fail",
        "cancel",
    }
    assert len(CASES) >= 50


@pytest.mark.parametrize(("name", "action"), CASES, ids=[f"{s}:{a}" for s, a in CASES])
def test_each_receiver_move_round_trips_through_the_task(name: str, action: str) -> None:
    state = BY_NAME[name]
    new_state, _ = move(state, action, "receiver", T0 + timedelta(days=5), **NEW)
    current = as_task(state)
    got = move_from_task_change(current, changed_task(current, new_state))
    field, value = EXPECTED_DETAILS.get(action, (None, None))
    if field == "reason":  # acknowledging a cancellation request keeps the sender's reason
        value = new_state.status_reason
    assert got == TaskMove(action, **({field: value} if field else {}))


def _at(status: str, business: str, held: str | None = None) -> dict[str, Any]:
    return as_task(STATES[(status, business, held)])


def _with(current: dict[str, Any], status: str, code: str, **more: Any) -> dict[str, Any]:
    out = copy.deepcopy(current)
    out["status"] = status
    out["businessStatus"] = {"coding": [{"system": current["businessStatus"]["coding"][0]["system"], "code": code}]}
    return out | more


def test_an_illegal_change_names_both_states_and_the_moves_there_are() -> None:
    current = _at("accepted", "accepted")
    with pytest.raises(TaskChangeError) as err:
        move_from_task_change(current, _with(current, "completed", "7.0"))
    message = str(err.value)
    assert message.startswith(
        "handoff ep-1a2b3c4d/2/handoff is 'accepted'; no receiver move leads to completed / fulfillment-completed "
        "from there (receiver moves now: schedule -> accepted / event-scheduled, "
    )
    assert "keep -> in-progress / event-completed" in message and "\n" not in message


def test_the_senders_cancellation_request_is_not_a_receiver_move() -> None:
    current = _at("accepted", "accepted")
    with pytest.raises(TaskChangeError, match="no receiver move leads to cancelled / cancellation-requested"):
        move_from_task_change(current, _with(current, "cancelled", "5.2", statusReason={"text": "moved away"}))


def test_a_closed_handoff_has_no_moves() -> None:
    current = _at("rejected", "declined")
    with pytest.raises(TaskChangeError, match=r"is 'rejected'; .* \(no receiver move is possible now\)"):
        move_from_task_change(current, _with(current, "accepted", "3.0"))


def test_only_the_four_fields_may_change() -> None:
    current = _at("requested", "created")
    changed = _with(current, "received", "2.0", owner={"reference": "Organization/elsewhere"})
    with pytest.raises(TaskChangeError) as err:
        move_from_task_change(current, changed)
    assert str(err.value) == (
        "only status, businessStatus, statusReason and output can be changed; 'owner' was changed"
    )
    changed.pop("for")
    with pytest.raises(TaskChangeError, match="'for', 'owner' were changed"):
        move_from_task_change(current, changed)


def test_nothing_changed() -> None:
    current = _at("accepted", "accepted")
    with pytest.raises(TaskChangeError, match=r"^nothing changed$"):
        move_from_task_change(current, copy.deepcopy(current))


def test_a_decline_needs_a_reason_and_a_schedule_a_time() -> None:
    current = _at("received", "created")
    with pytest.raises(TaskChangeError, match="'decline' needs a reason"):
        move_from_task_change(current, _with(current, "rejected", "4.0"))
    accepted = _at("accepted", "accepted")
    with pytest.raises(TaskChangeError, match="'schedule' needs an appointment time"):
        move_from_task_change(accepted, _with(accepted, "accepted", "5.1.1"))
    bad = [{"type": {"text": "appointment"}, "valueDateTime": "next Tuesday"}]
    with pytest.raises(TaskChangeError, match="the appointment time 'next Tuesday' is not a date and time"):
        move_from_task_change(accepted, _with(accepted, "accepted", "5.1.1", output=bad))


def test_output_changes_only_with_the_moves_that_write_it() -> None:
    current = _at("requested", "created")
    outcome = [{"type": {"text": "outcome"}, "valueString": "admitted"}]
    with pytest.raises(TaskChangeError, match="'accept' changes no output"):
        move_from_task_change(current, _with(current, "accepted", "3.0", output=outcome))


def test_other_shapes_of_the_details() -> None:
    accepted = _at("accepted", "accepted")
    period = [{"type": {"text": "appointment"}, "valuePeriod": {"start": "2025-03-04T10:00:00+00:00"}}]
    got = move_from_task_change(accepted, _with(accepted, "accepted", "5.1.1", output=period))
    assert got == TaskMove("schedule", appointment_at="2025-03-04T10:00:00+00:00")
    kept = _at("in-progress", "event-completed")
    concept = [{"type": {"text": "outcome"}, "valueCodeableConcept": {"text": "admitted"}}]
    got = move_from_task_change(kept, _with(kept, "completed", "7.0", output=concept))
    assert got == TaskMove("return-outcome", outcome="admitted")


def test_resume_returns_to_where_the_hold_began() -> None:
    for held in ("received", "accepted", "in-progress"):
        key = next(k for k in STATES if k[0] == "on-hold" and k[2] == held)
        current = as_task(STATES[key])
        code = current["businessStatus"]["coding"][0]["code"]
        assert move_from_task_change(current, _with(current, held, code)) == TaskMove("resume")


def test_unknown_status_or_business_code_is_refused() -> None:
    current = _at("requested", "created")
    with pytest.raises(TaskChangeError, match="status 'done' is not a Task status"):
        move_from_task_change(current, _with(current, "done", "2.0"))
    with pytest.raises(TaskChangeError, match="businessStatus has no BSeR TaskBusinessStatusCS code"):
        move_from_task_change(current, _with(current, "received", "9.9"))


def test_json_patch_replace_status_is_a_receive() -> None:
    current = _at("requested", "created")
    patched = apply_json_patch(current, [{"op": "replace", "path": "/status", "value": "received"}])
    assert current["status"] == "requested" and patched["status"] == "received"
    assert move_from_task_change(current, patched) == TaskMove("receive")


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "replace", "path": "/nope/deeper", "value": 1}],
        [{"op": "remove", "path": "/statusReason"}],
        [{"op": "move", "path": "/status"}],
        [{"op": "test", "path": "/status", "value": "received"}],
        [{"op": "frobnicate", "path": "/status"}],
    ],
)
def test_a_bad_json_patch_is_one_line(patch: list[dict[str, Any]]) -> None:
    with pytest.raises(TaskChangeError) as err:
        apply_json_patch(_at("requested", "created"), patch)
    assert str(err.value).startswith("the JSON Patch cannot be applied: ") and "\n" not in str(err.value)


def test_a_bad_json_patch_names_the_operation_not_the_document() -> None:
    patch = [{"op": "replace", "path": "/status", "value": "received"}, {"op": "replace", "path": "/x/y", "value": 1}]
    with pytest.raises(TaskChangeError) as err:
        apply_json_patch(_at("requested", "created"), patch)
    assert str(err.value) == "the JSON Patch cannot be applied: operation 2 ('replace' '/x/y'): no such member"


def test_a_json_patch_must_be_a_list_of_operations() -> None:
    with pytest.raises(TaskChangeError, match="a JSON Patch is a list of operations"):
        apply_json_patch({}, {"op": "replace"})  # type: ignore[arg-type]
    with pytest.raises(TaskChangeError, match="not an object"):
        apply_json_patch({"a": 1}, [{"op": "replace", "path": "", "value": [1]}])


def test_no_two_receiver_moves_lead_to_the_same_state() -> None:
    """The change names the move only because, from any state, each receiver move leads somewhere else."""
    for state in STATES.values():
        pairs = [pair for _action, pair in _receiver_targets(state)]
        assert len(pairs) == len(set(pairs)), state
