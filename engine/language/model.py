"""The typed pathway model: what a pathway YAML file says, as frozen pydantic ``*Spec`` classes.

Every class forbids unknown keys, so a typo is an error rather than a silent default. The JSON Schema in
``schemas/pathway.schema.json`` is generated from these classes (``carepath schema``), so descriptions and
examples written here are what a designer sees as hover help in an editor. The field types they share live in
:mod:`engine.language.fields`, the handoff step kinds and built-in events in :mod:`engine.language.builtins`.

What a pathway declares (roles, parameters, facts, events) is :mod:`engine.language.declarations`; the guard
grammar's classes are :mod:`engine.language.guard_specs`; the ``measures:`` key is
:mod:`engine.language.measure_spec`; all are re-exported here.

Semantics that span several parts (unknown references, reachability, ladders) live in
:mod:`engine.language.semantics`, not here: this module only says what each part may contain.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from engine.language.builtins import STEP_KINDS, HandoffStepKind
from engine.language.continuity import LASTS_DESCRIPTION, Lasts, MedicationChangeSpec
from engine.language.declarations import EventSpec, FactSpec, ParameterSpec, PayloadFieldSpec, RoleSpec
from engine.language.fields import LEVEL_HELP, Duration, EventName, FactName, Id, Spec
from engine.language.guard_specs import AllGuard, AnyGuard, FactGuard, Guard, NotGuard
from engine.language.measure_spec import MeasuresSpec
from engine.language.moments import Anchor, FactRef, SinceGuard
from engine.language.triggers import TriggerSpec

__all__ = [
    "AllGuard",
    "Anchor",
    "AnyGuard",
    "AuthorizationSpec",
    "CheckInSpec",
    "CriticalMedicationSpec",
    "DurationRangeSpec",
    "EventSpec",
    "FactGuard",
    "FactRef",
    "FactSpec",
    "FamilySpec",
    "Guard",
    "HandoffSpec",
    "HandoffStepSpec",
    "Ladder",
    "MeasuresSpec",
    "MedicationChangeSpec",
    "MedicationsSpec",
    "NotGuard",
    "ParameterSpec",
    "PathwaySpec",
    "PayloadFieldSpec",
    "PeerSupportSpec",
    "ReceiverSpec",
    "ReconcileSpec",
    "RoleSpec",
    "RungSpec",
    "Rungs",
    "SinceGuard",
    "SocialNeedSpec",
    "StageSpec",
    "TaskSpec",
    "TransitionSpec",
]


class RungSpec(Spec):
    """One rung of an escalation ladder: ``after`` the deadline passes unmet, alert ``to``."""

    after: Duration = Field(description="Time after the deadline at which this rung fires.", examples=["24h"])
    to: Id = Field(description="Role alerted by this rung.", examples=["supervisor"])


Rungs = Annotated[
    list[RungSpec],
    Field(
        description="Escalation ladder, in increasing `after` order.",
        examples=[[{"after": "0h", "to": "care-coordinator"}, {"after": "24h", "to": "supervisor"}]],
    ),
]
Ladder = Annotated[
    Rungs | Id,
    Field(
        description="Escalation ladder: rungs in increasing `after` order, or the name of a ladder declared under "
        "`ladders`; omitted: the pathway's `default_ladder` if it has one (`[]`: no ladder).",
        examples=[[{"after": "0h", "to": "care-coordinator"}, {"after": "24h", "to": "supervisor"}], "standard"],
    ),
]


class DurationRangeSpec(Spec):
    """Expected length of stay in a stage: a stay past ``max`` escalates, a stay shorter than ``min`` is recorded."""

    min: Duration = Field(description="Shortest expected stay; a shorter one is recorded on leaving.", examples=["3d"])
    max: Duration | None = Field(
        None, description="Longest expected stay, a deadline from entering; omit for open-ended.", examples=["14d"]
    )
    escalate: Ladder = Field(
        default_factory=list,
        description="Escalation ladder once a stay passes max; default: alert the stage's owner at max.",
    )


class TaskSpec(Spec):
    """Work a role must do, by a deadline counted from entering the stage, done when an event arrives."""

    id: Id = Field(description="Unique id within the stage.", examples=["screen-medical"])
    title: str = Field(description="What must be done.", examples=["Medical risk screening"])
    owner: Id = Field(description="Role responsible.", examples=["care-coordinator"])
    within: Duration = Field(description="Deadline, counted from entering the stage.", examples=["24h"])
    done_on: EventName = Field(description="Event that marks the task done.", examples=["screening.completed"])
    escalate: Ladder = Field(default_factory=list)
    from_: Anchor | None = Field(
        None,
        alias="from",
        description="Count the deadline from this moment instead of entering the stage; until it has happened, "
        "from entering.",
    )
    when: Guard | None = Field(
        None, description="Create the task on entry only if this holds then (a re-admission task on a return)."
    )
    lasts: Lasts = Field("stage", description=LASTS_DESCRIPTION, examples=["episode"])


class CheckInSpec(Spec):
    """A recurring contact: every ``every``, with ``window`` to make it, for ``for`` (omit: until the stage ends).

    Series of a stage run one after another: daily for the first 14 days, then weekly. Series with different
    ``track`` names run side by side (weekly therapy, weekly peer contact, monthly medication management), each
    track's series one after another.
    """

    track: Id | None = Field(
        None,
        description="Name of a parallel series: series of one track run in order, tracks run at the same time; "
        "omit for the stage's single track.",
        examples=["therapy"],
    )

    every: Duration = Field(description="Cadence.", examples=["1d"])
    window: Duration = Field(description="Time allowed for each contact after it opens.", examples=["12h"])
    for_: Duration | None = Field(
        None, alias="for", description="How long this series runs; omit on the last series.", examples=["14d"]
    )
    owner: Id = Field(description="Role that makes the contact.", examples=["peer-recovery-coach"])
    done_on: EventName = Field(description="Event that records a contact.", examples=["contact.made"])
    escalate: Ladder = Field(default_factory=list)


class PeerSupportSpec(Spec):
    """Peer recovery support offered in a stage."""

    role: Id = Field(description="Role that gives peer support.", examples=["peer-recovery-coach"])
    first_contact_within: Duration = Field(description="First contact deadline from stage entry.", examples=["72h"])
    done_on: EventName = Field(description="Event that records the first contact.", examples=["peer.contacted"])
    escalate: Ladder = Field(default_factory=list)


class FamilySpec(Spec):
    """Family involvement, only with the person's consent for that purpose."""

    consent_purpose: Id = Field(description="Consent purpose required.", examples=["family-involvement"])
    update_every: Duration = Field(description="Cadence of family updates.", examples=["1w"])
    owner: Id = Field(description="Role that updates the family.", examples=["care-coordinator"])
    done_on: EventName = Field(description="Event that records an update.", examples=["family.updated"])


class StageSpec(Spec):
    """A setting of care (detox, residential, IOP, ...)."""

    id: Id = Field(description="Unique stage id.", examples=["withdrawal-management"])
    name: str = Field(description="Human name.", examples=["Withdrawal management"])
    level: str | None = Field(None, description=LEVEL_HELP, examples=["3.7-WM", "2.1"])
    description: str | None = Field(None, description="What happens in this stage.")
    terminal: bool = Field(False, description="Episodes end here; a terminal stage has no way out.")
    owner: Id | None = Field(
        None,
        description="Role responsible for people in this stage; alerted when a stay passes its expected max.",
        examples=["care-coordinator"],
    )
    expected_duration: DurationRangeSpec | None = Field(None, description="Expected length of stay.")
    screenings: list[Literal["medical", "psychiatric", "social-needs", "family", "legal"]] = Field(
        default_factory=list,
        description="Screenings done in this stage.",
        examples=[["medical", "social-needs"]],
    )
    on_entry: list[TaskSpec] = Field(default_factory=list, description="Work scheduled on entering the stage.")
    check_ins: list[CheckInSpec] = Field(default_factory=list, description="Recurring contacts, in order.")
    before_leaving: list[Id] = Field(
        default_factory=list,
        description="Ids of on_entry tasks that must be done before a planned move out (one with a handoff); "
        "an unplanned exit (contact lost, re-arrest) cancels them instead.",
    )
    peer_support: PeerSupportSpec | None = Field(None, description="Peer recovery support in this stage.")
    family: FamilySpec | None = Field(None, description="Family involvement in this stage.")
    requires_medication: list[str] = Field(
        default_factory=list,
        description="Medications (declared in medications) the receiving list must hold whenever lists are "
        "compared in this stage; one missing is a critical discrepancy, whatever the sending list says.",
        examples=[["buprenorphine"]],
    )


class ReceiverSpec(Spec):
    """Who receives a handoff."""

    program: str = Field(description="Receiving program or provider.", examples=["Riverside Residential"])
    role: Id = Field(description="Receiving role (intake, prescriber...).", examples=["residential-intake"])


class AuthorizationSpec(Spec):
    """Insurance authorization needed before the receiver admits."""

    required: bool = Field(description="Whether authorization is required.")
    within: Duration = Field(description="Deadline for a decision, from the transition.", examples=["72h"])
    unless: Guard | None = Field(None, description="Condition under which no authorization is needed (self-pay).")
    owner: Id | None = Field(
        None,
        description="Role that requests the authorization and is alerted at once on a denial; default: the "
        "handoff's introduced_by, else the first rung's role.",
        examples=["utilization-review"],
    )
    escalate: Ladder = Field(default_factory=list)


class HandoffStepSpec(Spec):
    """A step of a closed-loop handoff, met when the receiver reaches it (event ``handoff.<kind>``)."""

    kind: HandoffStepKind = Field(
        description=f"Which milestone: {', '.join(STEP_KINDS)}.",
        examples=["accepted"],
    )
    within: Duration = Field(description="Deadline, counted from the transition.", examples=["24h"])
    escalate: Ladder = Field(default_factory=list)
    from_: Anchor | None = Field(
        None,
        alias="from",
        description="Count the deadline from this moment (ED discharge, the last methadone dose) instead of the "
        "move or a late consent; until it has happened, as without it.",
    )


class HandoffSpec(Spec):
    """A transfer of care to another provider, followed until the loop is closed."""

    receiver: ReceiverSpec = Field(description="Receiving program and role.")
    mode: Literal["warm", "standard"] = Field(description="Warm: the sender introduces the person.")
    introduced_by: Id | None = Field(None, description="Role that makes the warm introduction.")
    consent_purpose: Id = Field(description="Consent purpose required to send information.", examples=["treatment"])
    authorization: AuthorizationSpec | None = Field(None, description="Insurance authorization, if needed.")
    steps: list[HandoffStepSpec] = Field(min_length=1, description="Milestones with deadlines, in order.")
    consent_within: Duration | None = Field(
        None,
        description="If no consent covers the referral, deadline (from the move) to record one; "
        "default: the first step's deadline and ladder.",
        examples=["24h"],
    )
    consent_escalate: Ladder = Field(default_factory=list)
    re_engage_within: Duration | None = Field(None, description="After a no-show, re-engagement deadline.")
    re_engage_owner: Id | None = Field(None, description="Role that re-engages after a no-show; default: the receiver.")
    re_engage_escalate: Ladder = Field(
        default_factory=list,
        description="Ladder of a missed re-engagement, counted from its deadline; default: the visit-kept step's.",
    )
    alert_to: list[Id] = Field(
        default_factory=list,
        description="Roles alerted at once when the handoff goes wrong (no-show, declined, cancelled, failed); "
        "default: the first rung of the first step, else introduced_by.",
        examples=[["care-coordinator", "supervisor"]],
    )
    fallback: Id | None = Field(None, description="Stage to go to if the receiver declines.")
    lasts: Lasts = Field("stage", description=LASTS_DESCRIPTION, examples=["episode"])


class ReconcileSpec(Spec):
    """Medication reconciliation at a transition."""

    within: Duration = Field(description="Deadline from the transition.", examples=["24h"])
    owner: Id | None = Field(None, description="Role that reconciles; default: none (the ladder alone).")
    critical_to: list[Id] = Field(
        min_length=1,
        description="Roles alerted at once on a critical discrepancy.",
        examples=[["prescriber"]],
    )
    escalate: Ladder = Field(default_factory=list)


class TransitionSpec(TriggerSpec):
    """A move between stages on an event (or on what did not happen), optionally guarded, with a handoff."""

    from_: Id | list[Id] = Field(alias="from", description="Stage (or stages) the move leaves.")
    to: Id = Field(description="Stage the move enters.", examples=["residential"])
    when: Guard | None = Field(None, description="Condition over episode facts; the move happens only if true.")
    description: str | None = Field(None, description="Why this move exists.")
    handoff: HandoffSpec | None = Field(None, description="Transfer of care to another provider.")
    reconcile: ReconcileSpec | None = Field(None, description="Medication reconciliation at this move.")
    medication_changes: list[MedicationChangeSpec] = Field(
        default_factory=list, description="Switches this move intends; reconciliation records them as intentional."
    )
    requires_medication: list[str] = Field(
        default_factory=list,
        description="Medications (declared in medications) the receiving list must hold after this move.",
        examples=[["buprenorphine"]],
    )

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.from_,) if isinstance(self.from_, str) else tuple(self.from_)


class CriticalMedicationSpec(Spec):
    """A medication whose omission at a transition is critical (MOUD)."""

    name: str = Field(description="Generic name.", examples=["buprenorphine"])
    medication_class: str = Field(alias="class", description="Class.", examples=["MOUD"])
    rxnorm: list[str] = Field(default_factory=list, description="RxNorm ingredient codes.", examples=[["1819"]])
    aliases: list[str] = Field(default_factory=list, description="Brand names.", examples=[["Suboxone"]])


class MedicationsSpec(Spec):
    """Medication rules of the pathway."""

    critical: list[CriticalMedicationSpec] = Field(min_length=1, description="Critical medications.")


class SocialNeedSpec(Spec):
    """Referral rules for one social need found at screening."""

    refer_within: Duration = Field(description="Referral deadline after the need is identified.", examples=["3d"])
    owner: Id = Field(description="Role that makes the referral.", examples=["care-coordinator"])
    escalate: Ladder = Field(default_factory=list)


class PathwaySpec(Spec):
    """A care pathway: stages, the events that move a person between them, and the work each move schedules."""

    id: Id = Field(description="Pathway id, used in flow names.", examples=["reentry"])
    version: int = Field(ge=1, description="Increase on every change; episodes stay on their version.")
    title: str = Field(description="Human title.", examples=["Prison and jail reentry"])
    description: str = Field(description="What the pathway is for.")
    asam_edition: Literal[3, 4] = Field(description="ASAM Criteria edition of the level codes.", examples=[3])
    include: str | list[str] | None = Field(
        None,
        description="Program files (`*.program.yaml`, relative to this file) whose roles, medications and ladders "
        "this pathway shares; its own definitions extend them.",
        examples=["shared.program.yaml"],
    )
    parameters: dict[FactName, ParameterSpec] = Field(
        default_factory=dict, description="Durations set per episode at enrollment."
    )
    roles: dict[Id, RoleSpec] = Field(min_length=1, description="Roles that work is assigned to.")
    ladders: dict[Id, Rungs] = Field(
        default_factory=dict,
        description="Named escalation ladders, used by name wherever a ladder is accepted (`escalate: standard`).",
        examples=[{"standard": [{"after": "0h", "to": "care-coordinator"}, {"after": "24h", "to": "supervisor"}]}],
    )
    default_ladder: Id | None = Field(
        None,
        description="Ladder (a name under `ladders`) used wherever `escalate` is omitted; `escalate: []` opts out.",
        examples=["standard"],
    )
    facts: dict[FactName, FactSpec] = Field(default_factory=dict, description="Episode facts guards may test.")
    events: dict[EventName, EventSpec] = Field(min_length=1, description="Events the pathway reacts to.")
    stages: list[StageSpec] = Field(min_length=1, description="Stages; the first is where episodes start.")
    transitions: list[TransitionSpec] = Field(default_factory=list, description="Moves between stages.")
    medications: MedicationsSpec | None = Field(None, description="Critical medications for reconciliation.")
    social_needs: dict[
        Literal["housing", "transport", "employment", "legal", "benefits", "identification", "food"],
        SocialNeedSpec,
    ] = Field(default_factory=dict, description="Referral rules per social need.")
    measures: MeasuresSpec | None = Field(
        None, description="Which events the quality measures read as visits, release, contacts and MOUD evidence."
    )


TaskSpec.model_rebuild()
AllGuard.model_rebuild()
AnyGuard.model_rebuild()
NotGuard.model_rebuild()
AuthorizationSpec.model_rebuild()
TransitionSpec.model_rebuild()
