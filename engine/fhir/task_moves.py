"""A receiver's change of a Task (PUT or JSON Patch) read as a handoff move, using the domain's table.

The legality rules stay in :data:`engine.episode.domain.handoff.MOVES`: the current Task becomes a
:class:`~engine.episode.domain.handoff.HandoffState`, every move the receiver may make from it is tried with
:func:`~engine.episode.domain.handoff.move`, and the one whose resulting (status, business status) is the requested
pair is the answer. The details come from the changed Task (``statusReason.text``; the ``output`` typed
``appointment`` or ``outcome``), and the domain checks them as it would any move.

:class:`TaskChangeError` (one line) is raised when the change is not a receiver's move: fields other than
``status``, ``businessStatus``, ``statusReason`` and ``output`` changed, nothing changed, a status or code is
unknown, no move leads there, a detail is missing, ``output`` changed on a move that writes none, or a JSON Patch
cannot be applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

import jsonpatch
import jsonpointer

from engine.episode.domain.handoff import MOVES, HandoffState, label, legal_moves, move
from engine.episode.domain.handoff_terms import BSER_CODES, TaskStatus
from engine.errors import EventRejected, one_line, quote
from engine.fhir.handoffs import APPOINTMENT, OUTCOME
from engine.fhir.ids import BSER_SYSTEM, HANDOFF_ID_SYSTEM, source_id

__all__ = ["CHANGEABLE", "TaskChangeError", "TaskMove", "apply_json_patch", "move_from_task_change"]

#: What a receiver may change in a Task; everything else is Carepath's.
CHANGEABLE = ("status", "businessStatus", "statusReason", "output")
_STATUSES: tuple[str, ...] = get_args(TaskStatus)
_BY_CODE = {code: name for name, (code, _display) in BSER_CODES.items()}
#: The moves whose detail is a reason / an appointment time, as the table says.
_WITH_REASON = {m.action for m in MOVES if m.needs == "reason"}
_WITH_APPOINTMENT = {m.action for m in MOVES if m.needs == "appointment_at"}
#: Stand-ins while trying the moves: the state's times and details do not decide where a move leads.
_SOME_TIME = datetime(2000, 1, 1, tzinfo=UTC)


class TaskChangeError(EventRejected):
    """A changed Task is not a move the receiver can make now (a refused move, like the domain's own); the message
    is one line, nothing was changed."""


@dataclass(frozen=True)
class TaskMove:
    """The receiver's move a Task change asks for, with the details it carries (ISO text, as the Task had it)."""

    action: str
    reason: str | None = None
    appointment_at: str | None = None
    outcome: str | None = None


def _pair(task: dict[str, Any], which: str) -> tuple[str, str]:
    status = task.get("status")
    if status not in _STATUSES:
        raise TaskChangeError(
            f"the {which} Task's status {quote(status)} is not a Task status ({', '.join(_STATUSES)})"
        )
    concept = task.get("businessStatus")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    for coding in codings if isinstance(codings, list) else []:
        ours = isinstance(coding, dict) and coding.get("system", BSER_SYSTEM) == BSER_SYSTEM
        if ours and (name := _BY_CODE.get(str(coding.get("code")))) is not None:
            return str(status), name
    codes = ", ".join(_BY_CODE)
    raise TaskChangeError(f"the {which} Task's businessStatus has no BSeR TaskBusinessStatusCS code ({codes})")


def _held_from(business: str) -> str | None:
    """Where an on-hold Task was held from: the table's ``hold`` sources have one status per business status."""
    return next((s for m in MOVES if m.action == "hold" for s, b in m.sources if b == business), None)


def _handoff_id(task: dict[str, Any]) -> str:
    for ident in task.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == HANDOFF_ID_SYSTEM and ident.get("value"):
            return str(ident["value"])
    tid = str(task.get("id"))
    return source_id(tid) or tid


def _state(task: dict[str, Any], pair: tuple[str, str]) -> HandoffState:
    status, business = pair
    return HandoffState.model_validate(
        {
            "id": _handoff_id(task),
            "status": status,
            "business_status": business,
            "held_from": _held_from(business) if status == "on-hold" else None,
            "opened_at": _SOME_TIME,
            "updated_at": _SOME_TIME,
        }
    )


def _receiver_targets(state: HandoffState) -> list[tuple[str, tuple[str, str]]]:
    """(action, resulting pair) for every move the receiver may make from ``state``, in table order."""
    out: list[tuple[str, tuple[str, str]]] = []
    for action, parties in legal_moves(state):
        if "receiver" in parties:
            new, _effects = move(
                state, action, "receiver", _SOME_TIME, reason="-", appointment_at=_SOME_TIME, outcome="-"
            )
            out.append((action, (new.status, new.business_status)))
    return out


def _text(concept: Any) -> str | None:
    return concept.get("text") or None if isinstance(concept, dict) else None


def _output(task: dict[str, Any], kind: str) -> dict[str, Any] | None:
    entries = task.get("output")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and _text(entry.get("type")) == kind:
            return entry
    return None


def _appointment(task: dict[str, Any]) -> tuple[str | None, datetime | None]:
    entry = _output(task, APPOINTMENT) or {}
    text = entry.get("valueDateTime") or (entry.get("valuePeriod") or {}).get("start")
    if text is None:
        return None, None
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise TaskChangeError(f"the appointment time {quote(text)} is not a date and time with a time zone")
    return str(text), when


def _outcome(task: dict[str, Any]) -> str | None:
    entry = _output(task, OUTCOME) or {}
    value = entry.get("valueString") or _text(entry.get("valueCodeableConcept"))
    return str(value) if value else None


def move_from_task_change(current: dict[str, Any], changed: dict[str, Any]) -> TaskMove:
    """The receiver's move that turns ``current`` (the Task as Carepath serves it) into ``changed``."""
    others = sorted(k for k in {*current, *changed} if k not in CHANGEABLE and current.get(k) != changed.get(k))
    if others:
        names = ", ".join(repr(k) for k in others)
        raise TaskChangeError(
            f"only status, businessStatus, statusReason and output can be changed; {names} "
            f"{'was' if len(others) == 1 else 'were'} changed"
        )
    if all(current.get(k) == changed.get(k) for k in CHANGEABLE):
        raise TaskChangeError("nothing changed")
    state = _state(current, _pair(current, "current"))
    wanted = _pair(changed, "changed")
    targets = _receiver_targets(state)
    action = next((a for a, pair in targets if pair == wanted), None)
    if action is None:
        now = ", ".join(f"{a} -> {s} / {b}" for a, (s, b) in targets)
        raise TaskChangeError(
            f"handoff {state.id} is '{label(state)}'; no receiver move leads to {wanted[0]} / {wanted[1]} from there "
            f"({'receiver moves now: ' + now if now else 'no receiver move is possible now'})"
        )
    if current.get("output") != changed.get("output") and action not in (*_WITH_APPOINTMENT, "return-outcome"):
        raise TaskChangeError(f"'{action}' changes no output; schedule (appointment) and return-outcome (outcome) do")
    reason = _text(changed.get("statusReason")) if action in _WITH_REASON else None
    appointment, when = _appointment(changed) if action in _WITH_APPOINTMENT else (None, None)
    outcome = _outcome(changed) if action == "return-outcome" else None
    try:  # the domain checks the details (a decline needs a reason, a schedule a time)
        move(state, action, "receiver", _SOME_TIME, reason=reason, appointment_at=when, outcome=outcome)
    except EventRejected as exc:
        raise TaskChangeError(str(exc)) from exc
    return TaskMove(action, reason, appointment, outcome)


def apply_json_patch(resource: dict[str, Any], patch: list[Any]) -> dict[str, Any]:
    """``resource`` with an RFC 6902 ``patch`` applied (a copy; ``resource`` is unchanged). A refusal names the
    operation that failed, never the document (whose values it would otherwise quote)."""
    if not isinstance(patch, list) or not all(isinstance(op, dict) for op in patch):
        raise TaskChangeError("a JSON Patch is a list of operations, e.g. [{'op': 'replace', 'path': '/status', ...}]")
    result: Any = resource
    for n, op in enumerate(patch, start=1):
        where = f"operation {n} ({quote(op.get('op'), 20)} {quote(op.get('path'), 60)})"
        try:
            result = jsonpatch.apply_patch(result, [op], in_place=False)
        except jsonpointer.JsonPointerException as exc:
            raise TaskChangeError(f"the JSON Patch cannot be applied: {where}: no such member") from exc
        except jsonpatch.JsonPatchTestFailed as exc:
            raise TaskChangeError(f"the JSON Patch cannot be applied: {where}: the value there is different") from exc
        except (jsonpatch.JsonPatchException, TypeError, KeyError, ValueError) as exc:
            why = one_line(str(exc) or type(exc).__name__, 120)
            raise TaskChangeError(f"the JSON Patch cannot be applied: {where}: {why}") from exc
    if not isinstance(result, dict):
        raise TaskChangeError("the JSON Patch replaces the whole resource with something that is not an object")
    return result
